//! Threads: several threads of one process run at once (on several CPUs), share its memory
//! and handles, block one at a time, end alone (`thread_exit`, a kill of the thread) or all
//! together (`exit`, a kill of the process, a fault); futexes and the locks built on them.
//!
//! The hostile cases run their threads in helper processes (each in a job of its own, killed
//! afterwards, so nothing a helper started outlives the case) and watch them from the suite:
//! a process is listed blocked only when every thread of it is, which is how a case knows
//! the threads it kills or ends are really asleep in the call it names.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::errno::{EAGAIN, EBADF, EFAULT, EINVAL, EPERM, ESRCH, ETIMEDOUT};
use abi::fault::{PF_USER, PF_WRITE};
use abi::handle::{Kind, rights};
use abi::ipc::FOREVER;
use abi::status::KILLED;
use abi::stream::PIPE_CAPACITY;
use abi::syscall::{FUTEX_WAIT, FUTEX_WAKE, READ, WRITE};
use abi::{ExitInfo, PROT_READ, ProcessInfo, ProcessState};
use userlib::check;
use userlib::ipc::{Endpoint, Message, Notification, OwnedHandle, SharedMemory, Transfer};
use userlib::println;
use userlib::process::Ending;
use userlib::sync::{Condvar, Mutex, Once};
use userlib::sys::{self, Child, EntryPath, Errno, Pid};
use userlib::testing::{self, Case, Context, Expected, Helper, Outcome};
use userlib::thread::{self, JoinHandle};

use crate::common::*;
use crate::helpers::arg;

pub const CASES: &[Case] = userlib::cases![
    here threads_a_thread_returns_its_result_to_join,
    here threads_share_memory_and_have_their_own_ids,
    here threads_a_mutex_keeps_a_counter_exact,
    here threads_futex_wait_returns_eagain_when_the_word_differs,
    here threads_futex_wait_times_out,
    here threads_condvar_hands_items_from_producer_to_consumer,
    here threads_once_runs_once,
    here threads_bad_entry_or_stack_is_einval,
    here threads_run_on_several_cpus_at_once,
    here threads_killed_in_call_ends_alone,
    here threads_killed_in_recv_ends_alone,
    here threads_killed_in_notification_wait_ends_alone,
    here threads_killed_in_pipe_read_ends_alone,
    here threads_killed_in_pipe_write_ends_alone,
    here threads_killed_in_sleep_ends_alone,
    here threads_killed_in_futex_wait_ends_alone,
    here threads_killed_in_wait_for_a_process_ends_alone,
    here threads_killed_in_wait_for_a_thread_ends_alone,
    here threads_exit_ends_a_sibling_blocked_in_call,
    here threads_exit_ends_a_sibling_blocked_in_recv,
    here threads_exit_ends_a_sibling_blocked_in_notification_wait,
    here threads_exit_ends_a_sibling_blocked_in_pipe_read,
    here threads_exit_ends_a_sibling_blocked_in_pipe_write,
    here threads_exit_ends_a_sibling_blocked_in_sleep,
    here threads_exit_ends_a_sibling_blocked_in_futex_wait,
    here threads_exit_ends_a_sibling_blocked_in_wait_for_a_process,
    here threads_exit_ends_a_sibling_blocked_in_wait_for_a_thread,
    here threads_exit_ends_siblings_blocked_in_every_call,
    here threads_exit_from_one_thread_ends_spinning_siblings,
    here threads_kill_of_the_process_ends_threads_blocked_in_every_call,
    here threads_kill_of_the_process_ends_spinning_threads,
    fault threads_a_fault_in_a_second_thread_kills_the_process => fault_in_a_second_thread,
    here threads_the_last_threads_thread_exit_status_is_the_processs,
    here threads_a_process_lives_on_after_its_first_thread_leaves,
    here threads_a_kill_status_beats_the_last_thread_exit,
    child threads_a_process_has_at_most_the_thread_limit,
    here threads_slots_come_back_after_join,
    here threads_the_system_has_at_most_threads_max_threads,
    here threads_a_thread_handle_is_a_thread_with_its_rights,
    here threads_wait_and_kill_need_their_rights,
    here threads_an_ended_thread_cannot_be_killed_and_its_wait_returns_at_once,
    here threads_a_thread_handle_sent_to_another_process_kills_the_thread,
    here threads_a_thread_handle_sent_to_another_process_waits_for_the_thread,
    here threads_process_list_counts_live_threads,
    here threads_futex_ping_pong_loses_no_wake_up,
    here threads_futex_wait_sees_a_change_made_just_before_it_sleeps,
    here threads_futex_rejects_bad_addresses,
    here threads_futex_wake_with_no_waiter_wakes_none,
    here threads_futex_in_shared_memory_is_one_word_for_two_processes,
    here threads_futex_private_words_are_private_to_their_process,
    here threads_futex_wake_wakes_at_most_the_count_and_says_how_many,
    here threads_futex_wakes_the_oldest_waiter_first,
    here threads_futex_a_killed_waiter_leaves_the_queue,
    here threads_futex_a_timed_out_waiter_leaves_the_queue,
    here threads_futex_a_wake_taken_by_a_dying_waiter_is_passed_on,
    here threads_ipc_between_two_threads_of_one_process,
    here threads_several_threads_serve_one_endpoint,
    child threads_a_buffer_unmapped_under_a_siblings_write_is_efault_or_a_count,
    child threads_a_buffer_unmapped_under_a_siblings_read_is_efault_or_a_count,
    child threads_mmap_and_munmap_storms_from_several_threads_stay_consistent,
    here threads_a_mutex_holds_under_contention_from_many_threads,
    here threads_a_condvar_serves_many_producers_and_consumers,
    here threads_once_makes_every_caller_wait_for_the_one_run,
    here threads_a_condvar_wait_times_out_and_is_woken_by_notify,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("blocked_threads", helper_blocked_threads),
    ("spinning_threads", helper_spinning_threads),
    ("main_leaves_first", helper_main_leaves_first),
    ("thread_hog", helper_thread_hog),
    ("thread_handle_user", helper_thread_handle_user),
    ("futex_waiter", helper_futex_waiter),
    ("futex_private_waiter", helper_futex_private_waiter),
    ("thread_server_client", helper_thread_server_client),
];

fn threads_a_thread_returns_its_result_to_join() -> Outcome {
    let objects = live_objects()?;
    let worker = thread::spawn(|| (1..=10u64).product::<u64>()).context("spawn")?;
    check!(worker.join() == Ok(3_628_800), "join did not return the closure's result");
    expect_objects_back(objects, "after the thread was joined")
}

fn threads_share_memory_and_have_their_own_ids() -> Outcome {
    let shared = Arc::new(AtomicU64::new(0));
    let seen = shared.clone();
    let main_tid = sys::gettid();
    check!(main_tid == sys::getpid(), "the first thread's id {main_tid} is not the pid {}", sys::getpid());
    let worker = thread::spawn(move || {
        seen.store(7, Ordering::SeqCst);
        (sys::gettid(), sys::getpid())
    })
    .context("spawn")?;
    let (tid, pid) = worker.join().map_err(|info| format!("thread ended {info:?}"))?;
    check!(pid == sys::getpid(), "the thread saw pid {pid}");
    check!(tid != main_tid && tid != 0, "the thread's id {tid} is not its own");
    check!(shared.load(Ordering::SeqCst) == 7, "the thread's store is not seen");
    Ok(())
}

fn threads_a_mutex_keeps_a_counter_exact() -> Outcome {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 2000;
    let counter = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut value = counter.lock();
                    let read = *value;
                    // Give another thread the chance to slip in if the lock did not hold.
                    core::hint::spin_loop();
                    *value = read + 1;
                }
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    for worker in workers {
        worker.join().map_err(|info| format!("a worker ended {info:?}"))?;
    }
    let total = *counter.lock();
    check!(total == THREADS as u64 * ROUNDS, "the counter is {total}, not {}", THREADS as u64 * ROUNDS);
    Ok(())
}

fn threads_futex_wait_returns_eagain_when_the_word_differs() -> Outcome {
    let word = AtomicU32::new(5);
    expect_errno_of("futex_wait on a word that differs", sys::futex_wait(&word, 4, abi::ipc::FOREVER), EAGAIN)
}

fn threads_futex_wait_times_out() -> Outcome {
    let word = AtomicU32::new(5);
    expect_errno_of("futex_wait for 1 ms", sys::futex_wait(&word, 5, 1_000_000), ETIMEDOUT)?;
    expect_errno_of("futex_wait that may not block", sys::futex_wait(&word, 5, 0), ETIMEDOUT)
}

fn threads_condvar_hands_items_from_producer_to_consumer() -> Outcome {
    const ITEMS: u64 = 200;
    let state = Arc::new((Mutex::new((0u64, 0u64)), Condvar::new()));
    let consumer_state = state.clone();
    let consumer = thread::spawn(move || {
        let (queue, ready) = &*consumer_state;
        let mut sum = 0;
        let mut taken = 0;
        let mut guard = queue.lock();
        while taken < ITEMS {
            while guard.0 == 0 {
                ready.wait(&mut guard);
            }
            sum += guard.1;
            guard.0 -= 1;
            guard.1 = 0;
            taken += 1;
            ready.notify_all();
        }
        sum
    })
    .context("spawn")?;
    let (queue, ready) = &*state;
    for item in 1..=ITEMS {
        let mut guard = queue.lock();
        while guard.0 != 0 {
            ready.wait(&mut guard);
        }
        guard.0 = 1;
        guard.1 = item;
        ready.notify_all();
    }
    let sum = consumer.join().map_err(|info| format!("the consumer ended {info:?}"))?;
    check!(sum == ITEMS * (ITEMS + 1) / 2, "the consumer summed {sum}");
    Ok(())
}

fn threads_once_runs_once() -> Outcome {
    let once = Arc::new(Once::new());
    let runs = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (once, runs) = (once.clone(), runs.clone());
            thread::spawn(move || once.call_once(|| {
                runs.fetch_add(1, Ordering::SeqCst);
            }))
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    for worker in workers {
        worker.join().map_err(|info| format!("a worker ended {info:?}"))?;
    }
    check!(once.is_completed(), "the Once is not complete");
    check!(runs.load(Ordering::SeqCst) == 1, "the initialisation ran {} times", runs.load(Ordering::SeqCst));
    Ok(())
}

extern "C" fn never_runs(_: u64) -> ! {
    sys::thread_exit(0)
}

fn threads_bad_entry_or_stack_is_einval() -> Outcome {
    let good_stack = 0x10_0000;
    // SAFETY: both calls are refused before any thread starts.
    expect_errno_of("a kernel-half stack", unsafe { sys::thread_create(never_runs, 0xffff_8000_0000_0000, 0) }, EINVAL)?;
    expect_value(
        "a kernel-half entry",
        call(abi::syscall::THREAD_CREATE, [0xffff_8000_0000_1000, good_stack, 0, 0, 0, 0]),
        -EINVAL,
    )
}

// ===================================================================================
// The hostile part: blocked threads killed one by one, exits and kills that reach every
// thread, faults, limits, handles, futexes between processes, IPC between threads, memory
// changed under a sibling's syscall, and the locks under contention.
// ===================================================================================

/// The status an `exit` from a helper's thread gives its process.
const EXIT_STATUS: i32 = 42;

/// Where cases map pages at fixed addresses (nothing else maps there).
const THREADS_FIXED: u64 = 0x3400_0000_0000;

/// How a thread ended, as a message.
fn joined<T>(handle: JoinHandle<T>, what: &str) -> Result<T, String> {
    handle.join().map_err(|info| format!("{what} ended: {}", Ending(info)))
}

/// The row of process `pid`, if it is in the table.
fn row_of(pid: Pid) -> Result<Option<ProcessInfo>, String> {
    Ok(Table::read()?.find(pid).copied())
}

/// This process's live threads, as `process_list` counts them.
fn own_threads() -> Result<u32, String> {
    row_of(sys::getpid())?.map(|row| row.threads).ok_or_else(|| String::from("own row missing from process_list"))
}

/// Waits until this process has `count` live threads (threads that were joined have left).
fn expect_own_threads(count: u32, what: &str) -> Outcome {
    let mut seen = 0;
    let reached = wait_until(CHILD_LIMIT, || {
        seen = own_threads()?;
        Ok(seen == count)
    })?;
    check!(reached, "{what}: process_list counts {seen} threads, expected {count}");
    Ok(())
}

/// Waits until every one of `threads` threads of process `pid` is blocked (the process's
/// state is blocked only when none of its threads runs or is ready).
fn wait_until_all_blocked(pid: Pid, threads: u32, what: &str) -> Outcome {
    let mut last = None;
    let blocked = wait_until(CHILD_LIMIT, || {
        last = row_of(pid)?;
        Ok(last.is_some_and(|row| row.state == ProcessState::Blocked as u32 && row.threads == threads))
    })?;
    check!(
        blocked,
        "{what} (pid {pid}) never had all of {threads} threads blocked; last row: {}",
        last.map_or(String::from("gone"), |row| format!("state {}, {} threads", row.state, row.threads))
    );
    Ok(())
}

/// A new job below this process's, to start a helper in: killing it afterwards ends
/// whatever the helper left behind (a grandchild whose waiter was ended, say).
fn new_job() -> Result<OwnedHandle, String> {
    sys::job_create(None).map(OwnedHandle::from_raw).context("job_create")
}

/// Starts `usertests --child ROLE EXTRA...` in `job` with exactly `handles`.
fn spawn_in(job: &OwnedHandle, role: &str, extra: &[&str], handles: &[u32]) -> Result<Child, String> {
    let mut argv = vec!["usertests", "--child", role];
    argv.extend_from_slice(extra);
    testing::spawn_self_in(Some(job.raw()), &argv, handles).context(&format!("spawn of usertests --child {role}"))
}

/// Kills `job` (everything still in it) and closes it.
fn end_job(job: OwnedHandle) {
    let _ = sys::kill_handle(job.raw());
    drop(job);
}

// ----- A thread killed, or its process ended, while it is blocked -------------------------

/// The blocking calls a thread can be ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Call,
    Recv,
    Notification,
    PipeRead,
    PipeWrite,
    Sleep,
    Futex,
    WaitProcess,
    WaitThread,
}

const BLOCKS: [(&str, Block); 9] = [
    ("call", Block::Call),
    ("recv", Block::Recv),
    ("notification", Block::Notification),
    ("pipe_read", Block::PipeRead),
    ("pipe_write", Block::PipeWrite),
    ("sleep", Block::Sleep),
    ("futex", Block::Futex),
    ("wait_process", Block::WaitProcess),
    ("wait_thread", Block::WaitThread),
];

impl Block {
    /// Threads a helper starts for it (the blocked one, and for `WaitThread` the one it
    /// waits for).
    fn threads(self) -> u32 {
        if self == Self::WaitThread { 2 } else { 1 }
    }

    fn named(name: &str) -> Option<Self> {
        BLOCKS.iter().find(|(known, _)| *known == name).map(|&(_, block)| block)
    }
}

/// What checks, after the blocked thread was killed, that nothing of it stayed queued.
type After = Box<dyn FnOnce() -> Outcome>;

/// Starts a thread blocked in `block` (on objects of its own); returns it (its result says
/// what the call returned, if it ever did) and the check for afterwards.
fn start_blocked(block: Block) -> Result<(JoinHandle<String>, After), String> {
    match block {
        Block::Call | Block::Recv => {
            let endpoint = Arc::new(endpoint()?);
            let blocked = endpoint.clone();
            let thread = thread::spawn(move || match block {
                Block::Call => format!("call returned {:?}", blocked.call(&Message::new(1, [0; 4]))),
                _ => format!("recv returned {:?}", blocked.recv(&mut [], FOREVER).map(|request| request.message)),
            })
            .context("spawn")?;
            let after: After = Box::new(move || {
                let serving = endpoint.clone();
                let server = thread::spawn(move || -> Outcome {
                    let request = serving.recv(&mut [], HANG_NS).context("recv after the kill")?;
                    check!(
                        request.message.label == 2,
                        "the server received label {}, not the live caller's 2 (the killed caller's call stayed queued)",
                        request.message.label
                    );
                    request.reply.ok_or_else(|| String::from("a call came without a reply handle"))?.send(&Message::new(7, [0; 4])).context("reply")
                })
                .context("spawn of a server thread")?;
                let answer = endpoint.call_with(&Message::new(2, [0; 4]), &mut Transfer::default(), HANG_NS);
                joined(server, "the server thread")??;
                let (reply, _) = answer.context("call after the kill")?;
                check!(reply.label == 7, "the call after the kill was answered with label {}", reply.label);
                Ok(())
            });
            Ok((thread, after))
        }
        Block::Notification => {
            let notification = Arc::new(Notification::create().context("notification_create")?);
            let blocked = notification.clone();
            let thread = thread::spawn(move || format!("wait returned {:?}", blocked.wait(FOREVER))).context("spawn")?;
            let after: After = Box::new(move || {
                notification.signal(4).context("signal")?;
                let bits = notification.wait(HANG_NS).context("wait after the kill")?;
                check!(bits & 4 != 0, "the bits signalled after the kill were not seen (got {bits:#x})");
                let waiting = notification.clone();
                let waiter = thread::spawn(move || waiting.wait(HANG_NS)).context("spawn of a waiter")?;
                notification.signal(8).context("signal")?;
                let bits = joined(waiter, "the new waiter")?.context("the new waiter's wait")?;
                check!(bits & 8 != 0, "the new waiter got {bits:#x}, not the bit signalled");
                Ok(())
            });
            Ok((thread, after))
        }
        Block::PipeRead | Block::PipeWrite => {
            let (read_end, write_end) = sys::pipe_create().context("pipe_create")?;
            let thread = thread::spawn(move || match block {
                Block::PipeRead => format!("read returned {:?}", sys::read(read_end, &mut [0; 64])),
                _ => format!("write returned {:?}", sys::write(write_end, &vec![0x5a; 3 * PIPE_CAPACITY])),
            })
            .context("spawn")?;
            let after: After = Box::new(move || {
                let mut room = vec![0u8; PIPE_CAPACITY];
                if block == Block::PipeWrite {
                    let got = sys::read(read_end, &mut room).context("read of what the killed writer wrote")?;
                    check!(got > 0 && room[..got].iter().all(|&byte| byte == 0x5a), "read {got} bytes, not the writer's 0x5a");
                }
                let wrote = sys::write(write_end, b"after").context("write after the kill")?;
                check!(wrote == 5, "write after the kill wrote {wrote} bytes");
                let got = sys::read(read_end, &mut room).context("read after the kill")?;
                check!(&room[..got] == b"after", "read after the kill got {:?}", &room[..got]);
                let _ = userlib::ipc::close(read_end);
                let _ = userlib::ipc::close(write_end);
                Ok(())
            });
            Ok((thread, after))
        }
        Block::Sleep => {
            let thread = thread::spawn(|| format!("sleep returned {:?}", sys::sleep_ns(u64::MAX))).context("spawn")?;
            Ok((thread, Box::new(|| sleep_ms(1))))
        }
        Block::Futex => {
            let word = Arc::new(AtomicU32::new(0));
            let blocked = word.clone();
            let thread = thread::spawn(move || format!("futex_wait returned {:?}", sys::futex_wait(&blocked, 0, FOREVER)))
                .context("spawn")?;
            let after: After = Box::new(move || {
                let woken = sys::futex_wake(&word, 1).context("futex_wake")?;
                check!(woken == 0, "futex_wake after the kill woke {woken} (the killed waiter stayed queued)");
                let waiting = word.clone();
                let waiter = thread::spawn(move || sys::futex_wait(&waiting, 0, CHILD_LIMIT.as_nanos() as u64)).context("spawn")?;
                let mut woke = 0;
                wait_until(HANG_LIMIT, || {
                    woke = sys::futex_wake(&word, 1).context("futex_wake")?;
                    Ok(woke == 1)
                })?;
                let waited = joined(waiter, "the new waiter")?;
                check!(woke == 1 && waited.is_ok(), "the new waiter was not woken (wake: {woke}, wait: {waited:?})");
                Ok(())
            });
            Ok((thread, after))
        }
        Block::WaitProcess => {
            let grandchild = spawn_child("sleeper", &["forever"])?;
            let handle = grandchild.handle;
            let thread = thread::spawn(move || format!("wait returned {:?}", sys::wait_handle(handle, FOREVER))).context("spawn")?;
            let after: After = Box::new(move || {
                sys::kill(grandchild).context("kill of the grandchild")?;
                expect_exit("the grandchild", wait_for(grandchild)?, KILLED)
            });
            Ok((thread, after))
        }
        Block::WaitThread => {
            let target = thread::spawn(|| sys::sleep_ns(u64::MAX)).context("spawn of the thread waited for")?;
            let handle = target.raw_handle();
            let thread = thread::spawn(move || format!("wait returned {:?}", sys::wait_handle(handle, FOREVER))).context("spawn")?;
            let after: After = Box::new(move || {
                sys::kill_handle(handle).context("kill of the thread waited for")?;
                match target.join() {
                    Err(info) if info == ExitInfo::exited(KILLED) => Ok(()),
                    other => Err(format!("the thread waited for ended {other:?}, not killed")),
                }
            });
            Ok((thread, after))
        }
    }
}

/// `blocked_threads KIND|all ACTION`, with a notification as handle 3 and this program's
/// image as 4: starts threads blocked in KIND (every kind for `all`), waits for the
/// notification, then `kill`: kills each blocked thread through its handle, checks it ended
/// killed, that the objects it was blocked on work normally, and exits 0; `exit`: exits with
/// [`EXIT_STATUS`] with every thread still blocked; `stay`: waits again (to be killed).
fn helper_blocked_threads(args: &[&str]) -> i32 {
    testing::set_own_image(4);
    let go = Notification::from_raw(3);
    let blocks: Vec<Block> = match args.first() {
        Some(&"all") => BLOCKS.iter().map(|&(_, block)| block).collect(),
        Some(name) => match Block::named(name) {
            Some(block) => vec![block],
            None => return 2,
        },
        None => return 2,
    };
    let mut started = Vec::new();
    for block in blocks {
        match start_blocked(block) {
            Ok(pair) => started.push((block, pair)),
            Err(why) => {
                println!("  blocked_threads: setting up {block:?}: {why}");
                return 3;
            }
        }
    }
    if go.wait(FOREVER).is_err() {
        return 4;
    }
    match args.get(1).copied() {
        Some("exit") => sys::exit(EXIT_STATUS),
        Some("kill") => {
            for (block, (thread, after)) in started {
                let outcome = (|| -> Outcome {
                    sys::kill_handle(thread.raw_handle()).context("kill of the blocked thread")?;
                    match thread.join() {
                        Err(info) => check!(info == ExitInfo::exited(KILLED), "the killed thread ended: {}", Ending(info)),
                        Ok(what) => return Err(format!("the thread was not killed: {what}")),
                    }
                    after()
                })();
                if let Err(why) = outcome {
                    println!("  blocked_threads: {block:?}: {why}");
                    return 5;
                }
            }
            if let Err(why) = expect_own_threads(1, "after the kills") {
                println!("  blocked_threads: {why}");
                return 6;
            }
            0
        }
        _ => {
            let _ = go.wait(FOREVER);
            REACHED_END
        }
    }
}

/// Runs `blocked_threads KIND ACTION` in a job of its own, waits until all its threads are
/// blocked, then signals it (`kill`, `exit`) or kills it from outside (`stay`), and checks
/// how it ended and that every kernel object came back.
fn run_blocked(kind: &str, action: &str) -> Outcome {
    let threads = 1 + match Block::named(kind) {
        Some(block) => block.threads(),
        None => BLOCKS.iter().map(|(_, block)| block.threads()).sum(),
    };
    let objects = live_objects()?;
    let go = Notification::create().context("notification_create")?;
    let job = new_job()?;
    let child = spawn_in(&job, "blocked_threads", &[kind, action], &[0, 1, 2, go.handle().raw() as u32, own_image() as u32])?;
    let outcome = (|| -> Outcome {
        wait_until_all_blocked(child.pid, threads, "the helper")?;
        let start = now();
        if action == "stay" {
            sys::kill(child).context("kill of the helper")?;
        } else {
            go.signal(1).context("signal")?;
        }
        let ended = finish_within(child, "the helper")?;
        let took = now() - start;
        let expected = match action {
            "kill" => 0,
            "exit" => EXIT_STATUS,
            _ => KILLED,
        };
        expect_exit("the helper", ended, expected)?;
        check!(action == "kill" || took < HANG_NS, "the helper took {took} ns to end");
        Ok(())
    })();
    end_job(job);
    drop(go);
    outcome?;
    expect_objects_back(objects, "after the helper ended")
}

macro_rules! blocked_cases {
    ($($name:ident => $kind:literal, $action:literal;)*) => {
        $(fn $name() -> Outcome { run_blocked($kind, $action) })*
    };
}

blocked_cases! {
    threads_killed_in_call_ends_alone => "call", "kill";
    threads_killed_in_recv_ends_alone => "recv", "kill";
    threads_killed_in_notification_wait_ends_alone => "notification", "kill";
    threads_killed_in_pipe_read_ends_alone => "pipe_read", "kill";
    threads_killed_in_pipe_write_ends_alone => "pipe_write", "kill";
    threads_killed_in_sleep_ends_alone => "sleep", "kill";
    threads_killed_in_futex_wait_ends_alone => "futex", "kill";
    threads_killed_in_wait_for_a_process_ends_alone => "wait_process", "kill";
    threads_killed_in_wait_for_a_thread_ends_alone => "wait_thread", "kill";
    threads_exit_ends_a_sibling_blocked_in_call => "call", "exit";
    threads_exit_ends_a_sibling_blocked_in_recv => "recv", "exit";
    threads_exit_ends_a_sibling_blocked_in_notification_wait => "notification", "exit";
    threads_exit_ends_a_sibling_blocked_in_pipe_read => "pipe_read", "exit";
    threads_exit_ends_a_sibling_blocked_in_pipe_write => "pipe_write", "exit";
    threads_exit_ends_a_sibling_blocked_in_sleep => "sleep", "exit";
    threads_exit_ends_a_sibling_blocked_in_futex_wait => "futex", "exit";
    threads_exit_ends_a_sibling_blocked_in_wait_for_a_process => "wait_process", "exit";
    threads_exit_ends_a_sibling_blocked_in_wait_for_a_thread => "wait_thread", "exit";
    threads_exit_ends_siblings_blocked_in_every_call => "all", "exit";
    threads_kill_of_the_process_ends_threads_blocked_in_every_call => "all", "stay";
}

// ----- Spinning threads -----------------------------------------------------------------

/// `spinning_threads N MODE`: N threads spin (each bumping a counter of its own); with
/// `exit`, one more thread waits until every spinner has made progress and calls `exit`
/// with [`EXIT_STATUS`] while they spin; with `stay` the process spins until killed.
fn helper_spinning_threads(args: &[&str]) -> i32 {
    let count: usize = arg(args, 0);
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let mut spinners = Vec::new();
    for index in 0..count {
        let counters = counters.clone();
        match thread::spawn(move || loop {
            counters[index].fetch_add(1, Ordering::Relaxed);
            core::hint::spin_loop();
        }) {
            Ok(spinner) => spinners.push(spinner),
            Err(_) => return 2,
        }
    }
    if args.get(1) == Some(&"exit") {
        let watched = counters.clone();
        let exiter = thread::spawn(move || {
            let deadline = now() + LIMIT_NS;
            while watched.iter().any(|counter| counter.load(Ordering::Relaxed) == 0) {
                if now() > deadline {
                    sys::exit(3);
                }
                sys::yield_now();
            }
            sys::exit(EXIT_STATUS)
        });
        if exiter.is_err() {
            return 4;
        }
    }
    let _ = sys::sleep_ns(u64::MAX);
    REACHED_END
}

fn threads_exit_from_one_thread_ends_spinning_siblings() -> Outcome {
    let objects = live_objects()?;
    let start = now();
    let child = spawn_child("spinning_threads", &["3", "exit"])?;
    let ended = finish_within(child, "spinning_threads")?;
    let took = now() - start;
    expect_exit("spinning_threads", ended, EXIT_STATUS)?;
    check!(took < CHILD_LIMIT.as_nanos() as u64, "the process took {took} ns to end");
    expect_objects_back(objects, "after the spinners ended")
}

fn threads_kill_of_the_process_ends_spinning_threads() -> Outcome {
    let objects = live_objects()?;
    let child = spawn_child("spinning_threads", &["3", "stay"])?;
    let outcome = (|| -> Outcome {
        // Every thread started, and the process has used CPU time since.
        let mut first = None;
        let spinning = wait_until(CHILD_LIMIT, || {
            let Some(row) = row_of(child.pid)? else { return Ok(false) };
            if row.threads != 4 {
                return Ok(false);
            }
            let base = *first.get_or_insert(row.cpu_time_ns);
            Ok(row.cpu_time_ns > base + 20 * MS)
        })?;
        check!(spinning, "the spinners never all started and ran");
        Ok(())
    })();
    let start = now();
    sys::kill(child).context("kill")?;
    let ended = wait_for(child)?;
    let took = now() - start;
    outcome?;
    expect_exit("spinning_threads", ended, KILLED)?;
    check!(took < HANG_NS, "the kill took {took} ns to end the process");
    expect_objects_back(objects, "after the kill")
}

fn threads_run_on_several_cpus_at_once() -> Outcome {
    let cpus = info()?.cpus;
    let stop = Arc::new(AtomicU32::new(0));
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let spinners: Vec<_> = (0..2)
        .map(|index| {
            let (stop, counters) = (stop.clone(), counters.clone());
            thread::spawn(move || {
                while stop.load(Ordering::Relaxed) == 0 {
                    counters[index].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    let outcome = (|| -> Outcome {
        // Both make progress, whatever the CPU count.
        let before = [counters[0].load(Ordering::Relaxed), counters[1].load(Ordering::Relaxed)];
        let progressed = wait_until(CHILD_LIMIT, || {
            Ok((0..2).all(|index| counters[index].load(Ordering::Relaxed) > before[index] + 1000))
        })?;
        check!(progressed, "the two spinning threads did not both make progress");
        if cpus < 2 {
            userlib::println!("  threads_run_on_several_cpus_at_once: one CPU: checked only that both threads progress");
            return Ok(());
        }
        // With several CPUs, the process's CPU time must at some point grow faster than
        // the clock: only threads running at the same time can do that.
        let deadline = now() + LIMIT_NS;
        let mut best = 0;
        while now() < deadline {
            let (start, used_before) = (now(), own_cpu_time()?);
            sleep_ms(50)?;
            let (wall, used) = (now() - start, own_cpu_time()? - used_before);
            best = best.max(used * 100 / wall.max(1));
            if used * 10 > wall * 13 {
                return Ok(());
            }
        }
        Err(format!("with {cpus} CPUs two spinning threads never used more than {best}% of one CPU's time"))
    })();
    stop.store(1, Ordering::Relaxed);
    for spinner in spinners {
        joined(spinner, "a spinner")?;
    }
    outcome
}

/// The CPU time of this process (every thread of it).
fn own_cpu_time() -> Result<u64, String> {
    row_of(sys::getpid())?.map(|row| row.cpu_time_ns).ok_or_else(|| String::from("own row missing"))
}

// ----- Faults and statuses -------------------------------------------------------------

fn threads_a_fault_in_a_second_thread_kills_the_process() -> Outcome {
    // A sibling spins and another sleeps: the fault must end them too.
    let _spinner = thread::spawn(|| loop {
        core::hint::spin_loop();
    })
    .context("spawn")?;
    let _sleeper = thread::spawn(|| sys::sleep_ns(u64::MAX)).context("spawn")?;
    let faulter = thread::spawn(|| poke(HOLE)).context("spawn")?;
    let ended = faulter.join();
    Err(format!("the faulting thread's join returned {ended:?}"))
}

fn fault_in_a_second_thread() -> Expected {
    Expected::page_fault(HOLE).at(poke_site()).error(PF_USER | PF_WRITE)
}

/// `main_leaves_first THEN`, with a notification as handle 3: the first thread starts a
/// second, which waits for the notification, and leaves with `thread_exit(3)`; the second,
/// once signalled, checks it is alone and ends as THEN says: `thread_exit` (status 7) or
/// `exit` (status 9).
fn helper_main_leaves_first(args: &[&str]) -> i32 {
    let then = args.first().copied().unwrap_or("");
    let exit_with = then == "exit";
    let second = thread::spawn(move || {
        let go = Notification::from_raw(3);
        if go.wait(FOREVER).is_err() {
            sys::thread_exit(4);
        }
        if own_threads() != Ok(1) || sys::gettid() == sys::getpid() {
            sys::thread_exit(5);
        }
        if exit_with {
            sys::exit(9);
        }
        sys::thread_exit(7)
    });
    if second.is_err() {
        return 2;
    }
    core::mem::forget(second);
    sys::thread_exit(3)
}

/// Runs `main_leaves_first THEN`, waits until its first thread has left and the second is
/// blocked, then signals it (or kills the process, for `kill`); returns how it ended.
fn run_main_leaves_first(then: &str) -> Result<ExitInfo, String> {
    let go = Notification::create().context("notification_create")?;
    let child = spawn_with_handles("main_leaves_first", &[then], &[0, 1, 2, go.handle().raw() as u32])?;
    let blocked = wait_until_all_blocked(child.pid, 1, "main_leaves_first");
    if then == "kill" || blocked.is_err() {
        let _ = sys::kill(child);
    } else {
        go.signal(1).context("signal")?;
    }
    let ended = finish_within(child, "main_leaves_first")?;
    blocked?;
    Ok(ended)
}

fn threads_the_last_threads_thread_exit_status_is_the_processs() -> Outcome {
    expect_exit("the process", run_main_leaves_first("thread_exit")?, 7)
}

fn threads_a_process_lives_on_after_its_first_thread_leaves() -> Outcome {
    expect_exit("the process", run_main_leaves_first("exit")?, 9)
}

fn threads_a_kill_status_beats_the_last_thread_exit() -> Outcome {
    expect_exit("the process", run_main_leaves_first("kill")?, KILLED)
}

// ----- Limits ----------------------------------------------------------------------------

/// Starts threads that wait on `word` until it is nonzero, until `thread_create` fails;
/// returns them and the failure.
fn fill_with_waiters(word: &Arc<AtomicU32>) -> (Vec<JoinHandle<()>>, i64) {
    let mut threads = Vec::new();
    loop {
        let word = word.clone();
        match thread::spawn(move || {
            while word.load(Ordering::Acquire) == 0 {
                let _ = sys::futex_wait(&word, 0, FOREVER);
            }
        }) {
            Ok(thread) => threads.push(thread),
            Err(Errno(errno)) => return (threads, errno),
        }
        if threads.len() > abi::THREADS_MAX {
            return (threads, 0);
        }
    }
}

/// Lets every waiter of [`fill_with_waiters`] go and joins them.
fn release_waiters(word: &AtomicU32, threads: Vec<JoinHandle<()>>) -> Outcome {
    word.store(1, Ordering::Release);
    let _ = sys::futex_wake(word, u64::MAX);
    for thread in threads {
        joined(thread, "a waiter")?;
    }
    Ok(())
}

fn threads_a_process_has_at_most_the_thread_limit() -> Outcome {
    let word = Arc::new(AtomicU32::new(0));
    let (threads, errno) = fill_with_waiters(&word);
    let created = threads.len();
    let counted = own_threads();
    let again = {
        let spare = thread::spawn(|| ());
        spare.map(|_| ()).map_err(|Errno(errno)| errno)
    };
    release_waiters(&word, threads)?;
    check!(errno == EAGAIN, "thread_create past the limit failed with {}, not EAGAIN", abi::errno::name(errno));
    check!(
        created + 1 == abi::THREADS_PER_PROCESS_MAX,
        "{created} threads were created besides the first, expected {}",
        abi::THREADS_PER_PROCESS_MAX - 1
    );
    check!(counted == Ok(abi::THREADS_PER_PROCESS_MAX as u32), "process_list counted {counted:?} threads at the limit");
    check!(again == Err(EAGAIN), "a second try at the limit: {again:?}");
    // Every slot came back.
    let after = thread::spawn(|| 5).context("spawn after the limit")?;
    check!(joined(after, "the thread after the limit")? == 5, "the thread after the limit returned the wrong value");
    Ok(())
}

fn threads_slots_come_back_after_join() -> Outcome {
    let objects = live_objects()?;
    let frames = system_frames()?;
    let rounds = 4 * abi::THREADS_MAX as u64;
    let mut sum = 0;
    for round in 0..rounds {
        let thread = thread::spawn(move || round * 2).context(&format!("spawn in round {round}"))?;
        sum += joined(thread, "a thread")?;
    }
    check!(sum == rounds * (rounds - 1), "the threads returned a sum of {sum}");
    expect_own_threads(1, "after the joins")?;
    expect_objects_back(objects, "after the joins")?;
    let now_frames = system_frames()?;
    check!(now_frames == frames, "{now_frames} frames free after the joins, {frames} before");
    Ok(())
}

/// `thread_hog`, with an endpoint as handle 3: starts threads until `thread_create` fails,
/// calls the endpoint with how many it started (label) and the errno (first word), then
/// waits to be killed.
fn helper_thread_hog(_: &[&str]) -> i32 {
    let word = Arc::new(AtomicU32::new(0));
    let (threads, errno) = fill_with_waiters(&word);
    let endpoint = Endpoint::from_raw(3);
    let _ = endpoint.call(&Message::new(threads.len() as u64, [errno as u64, 0, 0, 0]));
    core::mem::forget(threads);
    let _ = sys::sleep_ns(u64::MAX);
    REACHED_END
}

fn threads_the_system_has_at_most_threads_max_threads() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let mut hogs: Vec<Child> = Vec::new();
    let outcome = (|| -> Outcome {
        let last_errno = loop {
            check!(hogs.len() <= abi::THREADS_MAX, "{} hogs started", hogs.len());
            let hog = match spawn_with_handles("thread_hog", &[], &[0, 1, 2, endpoint.handle().raw() as u32]) {
                Ok(hog) => hog,
                Err(_) => break None,
            };
            hogs.push(hog);
            let request = endpoint.recv(&mut [], LIMIT_NS).context("recv of a hog's count")?;
            let (count, errno) = (request.message.label, request.message.words[0] as i64);
            if let Some(reply) = request.reply {
                reply.send(&Message::default()).context("reply")?;
            }
            check!(errno != 0, "a hog started {count} threads without a refusal");
            if count + 1 < abi::THREADS_PER_PROCESS_MAX as u64 {
                break Some(errno);
            }
            check!(errno == EAGAIN, "a hog's thread_create failed with {}", abi::errno::name(errno));
        };
        check!(last_errno.is_none_or(|errno| errno == EAGAIN), "the last hog was refused with {last_errno:?}, not EAGAIN");
        let total: u32 = Table::read()?.rows().iter().map(|row| row.threads).sum();
        check!(total as usize == abi::THREADS_MAX, "with the table full, process_list counts {total} threads, not {}", abi::THREADS_MAX);
        let refused = thread::spawn(|| ()).map(|_| ());
        check!(refused == Err(Errno(EAGAIN)), "thread_create with every thread in use: {refused:?}");
        match spawn_child("exit_with", &["0"]) {
            Ok(child) => {
                let _ = wait_for(child);
                return Err(String::from("spawn succeeded with every thread in use"));
            }
            Err(why) => check!(why.contains("EAGAIN"), "spawn with every thread in use: {why}"),
        }
        Ok(())
    })();
    let reaped = kill_and_reap(&hogs);
    outcome?;
    reaped?;
    let after = thread::spawn(|| 1).context("spawn after the hogs ended")?;
    joined(after, "the thread after the hogs")?;
    drop(endpoint);
    expect_objects_back(objects, "after the hogs ended")
}

// ----- Thread handles --------------------------------------------------------------------

/// A thread that waits on `word` until it is nonzero.
fn parked(word: &Arc<AtomicU32>) -> Result<JoinHandle<()>, String> {
    let word = word.clone();
    thread::spawn(move || {
        while word.load(Ordering::Acquire) == 0 {
            let _ = sys::futex_wait(&word, 0, FOREVER);
        }
    })
    .context("spawn")
}

/// Lets a [`parked`] thread go.
fn unpark(word: &AtomicU32) {
    word.store(1, Ordering::Release);
    let _ = sys::futex_wake(word, u64::MAX);
}

fn threads_a_thread_handle_is_a_thread_with_its_rights() -> Outcome {
    let word = Arc::new(AtomicU32::new(0));
    let thread = parked(&word)?;
    let outcome = (|| -> Outcome {
        expect_handle("the thread handle", thread.raw_handle(), Kind::Thread, rights::THREAD_HANDLE)?;
        let copy = userlib::ipc::duplicate(thread.raw_handle(), rights::WAIT).map(OwnedHandle::from_raw).context("handle_duplicate")?;
        expect_handle("a copy with WAIT alone", copy.raw(), Kind::Thread, rights::WAIT)?;
        expect_errno_of("pid of a thread handle", sys::process_pid(thread.raw_handle()), EBADF)
    })();
    unpark(&word);
    joined(thread, "the thread")?;
    outcome
}

fn threads_wait_and_kill_need_their_rights() -> Outcome {
    let word = Arc::new(AtomicU32::new(0));
    let thread = parked(&word)?;
    let outcome = (|| -> Outcome {
        let all_but = |right: u32| {
            userlib::ipc::duplicate(thread.raw_handle(), rights::THREAD_HANDLE & !right).map(OwnedHandle::from_raw).context("handle_duplicate")
        };
        let (no_wait, no_kill) = (all_but(rights::WAIT)?, all_but(rights::KILL)?);
        expect_errno_of("wait without WAIT", sys::wait_handle(no_wait.raw(), 0).map(|_| ()), EPERM)?;
        expect_errno_of("kill without KILL", sys::kill_handle(no_kill.raw()), EPERM)?;
        // Refused, so the thread still runs, and the handle without KILL can wait.
        expect_errno_of("wait that only looks", sys::wait_handle(no_kill.raw(), 0).map(|_| ()), EAGAIN)?;
        expect_errno_of("the wait-any of processes", sys::wait_handle(abi::WAIT_ANY as u64, 0).map(|_| ()), abi::errno::ECHILD)?;
        // The handle without WAIT kills.
        sys::kill_handle(no_wait.raw()).context("kill through the handle without WAIT")?;
        Ok(())
    })();
    unpark(&word);
    let ended = thread.join();
    outcome?;
    check!(ended == Err(ExitInfo::exited(KILLED)), "the thread killed through a copy ended {ended:?}");
    Ok(())
}

fn threads_an_ended_thread_cannot_be_killed_and_its_wait_returns_at_once() -> Outcome {
    let thread = thread::spawn(|| 3).context("spawn")?;
    let copy = |rights: u32| userlib::ipc::duplicate(thread.raw_handle(), rights).context("handle_duplicate");
    let (first, killer, looker) = (copy(rights::WAIT)?, copy(rights::KILL)?, copy(rights::WAIT)?);
    let (_, ended) = sys::wait_handle(first, FOREVER).context("wait for the thread")?;
    check!(ended == ExitInfo::exited(0), "the thread ended {}", Ending(ended));
    expect_errno_of("kill of an ended thread", sys::kill_handle(killer), ESRCH)?;
    let _ = userlib::ipc::close(killer);
    let (closed, again) = sys::wait_handle(looker, 0).context("wait that only looks, on an ended thread")?;
    check!(closed == looker && again == ended, "the second wait returned handle {closed}, {again:?}");
    expect_no_handle("the handle a wait returned", looker)?;
    check!(joined(thread, "the thread")? == 3, "join returned the wrong value");
    Ok(())
}

/// `thread_handle_user ACTION`, with an endpoint as handle 3: receives a thread handle from
/// its parent and `kill`s it and waits for it (which must say killed), or `wait`s for it
/// (which must say it exited 0). Exits 0 if all went as expected.
fn helper_thread_handle_user(args: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    let Ok(request) = endpoint.recv(&mut [], FOREVER) else { return 2 };
    let [handle] = request.arrived.handles() else { return 3 };
    let handle = u64::from(*handle);
    if !matches!(userlib::ipc::handle_info(handle), Ok((Some(Kind::Thread), _))) {
        return 4;
    }
    if let Some(reply) = request.reply {
        let _ = reply.send(&Message::default());
    }
    let expected = if args.first() == Some(&"kill") {
        if sys::kill_handle(handle).is_err() {
            return 5;
        }
        ExitInfo::exited(KILLED)
    } else {
        ExitInfo::exited(0)
    };
    match sys::wait_handle(handle, FOREVER) {
        Ok((_, ended)) if ended == expected => 0,
        Ok(_) => 6,
        Err(_) => 7,
    }
}

/// Sends a copy of a parked thread's handle to `thread_handle_user ACTION`; returns the
/// helper's end and the thread's.
fn hand_over_thread(action: &str) -> Result<(ExitInfo, core::result::Result<(), ExitInfo>), String> {
    let word = Arc::new(AtomicU32::new(0));
    let thread = parked(&word)?;
    let endpoint = endpoint()?;
    let outcome = (|| -> Result<ExitInfo, String> {
        let child = spawn_with_handles("thread_handle_user", &[action], &[0, 1, 2, endpoint.handle().raw() as u32])?;
        let copy = userlib::ipc::duplicate(thread.raw_handle(), rights::THREAD_HANDLE).context("handle_duplicate");
        let sent = copy.and_then(|copy| {
            let mut transfer = Transfer { send_handles: &[copy as u32], ..Transfer::default() };
            endpoint.call_with(&Message::default(), &mut transfer, LIMIT_NS).context("call with the thread handle")
        });
        if action == "wait" && sent.is_ok() {
            // The helper now waits for the thread: let it end.
            if let Err(why) = wait_until_blocked(child.pid, "thread_handle_user") {
                let _ = sys::kill(child);
                let _ = wait_for(child);
                return Err(why);
            }
            unpark(&word);
        }
        let ended = finish_within(child, "thread_handle_user")?;
        sent?;
        Ok(ended)
    })();
    unpark(&word);
    let thread_ended = thread.join();
    Ok((outcome?, thread_ended))
}

fn threads_a_thread_handle_sent_to_another_process_kills_the_thread() -> Outcome {
    let (helper, thread) = hand_over_thread("kill")?;
    expect_exit("thread_handle_user", helper, 0)?;
    check!(thread == Err(ExitInfo::exited(KILLED)), "the thread ended {thread:?}, not killed");
    Ok(())
}

fn threads_a_thread_handle_sent_to_another_process_waits_for_the_thread() -> Outcome {
    let (helper, thread) = hand_over_thread("wait")?;
    expect_exit("thread_handle_user", helper, 0)?;
    check!(thread == Ok(()), "the thread ended {thread:?}");
    Ok(())
}

fn threads_process_list_counts_live_threads() -> Outcome {
    let base = own_threads()?;
    check!(base == 1, "the suite has {base} threads before the case");
    let words: Vec<Arc<AtomicU32>> = (0..3).map(|_| Arc::new(AtomicU32::new(0))).collect();
    let mut threads = Vec::new();
    for (count, word) in (1..=3u32).zip(&words) {
        threads.push(parked(word)?);
        let seen = own_threads()?;
        check!(seen == 1 + count, "after {count} creates process_list counts {seen} threads");
    }
    // One at a time: let a thread go, join it, count.
    let mut left = 4;
    for (thread, word) in threads.into_iter().zip(&words) {
        unpark(word);
        joined(thread, "a thread")?;
        left -= 1;
        let seen = own_threads()?;
        check!(seen == left, "after a join process_list counts {seen} threads, expected {left}");
    }
    Ok(())
}

// ----- Futexes -------------------------------------------------------------------------

/// Rounds of [`threads_futex_ping_pong_loses_no_wake_up`].
const PING_PONG_ROUNDS: u32 = 2000;

fn threads_futex_ping_pong_loses_no_wake_up() -> Outcome {
    let turn = Arc::new(AtomicU32::new(0));
    let player = |parity: u32, turn: Arc<AtomicU32>| {
        move || -> Outcome {
            for round in 0..PING_PONG_ROUNDS {
                let mine = 2 * round + parity;
                loop {
                    let seen = turn.load(Ordering::Acquire);
                    if seen == mine {
                        break;
                    }
                    match sys::futex_wait(&turn, seen, LIMIT_NS) {
                        Ok(()) | Err(Errno(EAGAIN)) => {}
                        Err(errno) => return Err(format!("round {round}: futex_wait: {errno} (a wake-up was lost)")),
                    }
                }
                turn.store(mine + 1, Ordering::Release);
                sys::futex_wake(&turn, 1).context("futex_wake")?;
            }
            Ok(())
        }
    };
    let odd = thread::spawn(player(1, turn.clone())).context("spawn")?;
    let even = player(0, turn.clone())();
    let odd = joined(odd, "the other player")?;
    even?;
    odd?;
    let end = turn.load(Ordering::Acquire);
    check!(end == 2 * PING_PONG_ROUNDS, "the turn ended at {end}");
    Ok(())
}

fn threads_futex_wait_sees_a_change_made_just_before_it_sleeps() -> Outcome {
    const ROUNDS: u32 = 2000;
    let word = Arc::new(AtomicU32::new(0));
    let armed = Arc::new(AtomicU32::new(0));
    let (waker_word, waker_armed) = (word.clone(), armed.clone());
    // The waker changes the word as soon as the waiter has read it, just before it sleeps.
    let waker = thread::spawn(move || -> Outcome {
        for round in 1..=ROUNDS {
            let deadline = now() + LIMIT_NS;
            while waker_armed.load(Ordering::Acquire) != round {
                check!(now() < deadline, "round {round}: the waiter never armed");
                core::hint::spin_loop();
            }
            waker_word.store(round, Ordering::Release);
            sys::futex_wake(&waker_word, 1).context("futex_wake")?;
        }
        Ok(())
    })
    .context("spawn")?;
    let mut slept = 0;
    let mut refused = 0;
    let mut waits: Outcome = Ok(());
    for round in 1..=ROUNDS {
        let seen = word.load(Ordering::Acquire);
        armed.store(round, Ordering::Release);
        loop {
            match sys::futex_wait(&word, seen, LIMIT_NS) {
                Ok(()) => slept += 1,
                Err(Errno(EAGAIN)) => refused += 1,
                Err(errno) => {
                    waits = Err(format!("round {round}: futex_wait: {errno} (the change or its wake was lost)"));
                    break;
                }
            }
            if word.load(Ordering::Acquire) == round {
                break;
            }
        }
        if waits.is_err() {
            break;
        }
    }
    if waits.is_err() {
        // Let the waker finish (it waits for rounds that will not come).
        armed.store(u32::MAX, Ordering::Release);
    }
    let woke = joined(waker, "the waker")?;
    waits?;
    woke?;
    userlib::println!("  threads_futex_wait_sees_a_change_made_just_before_it_sleeps: {slept} sleeps woken, {refused} EAGAIN");
    Ok(())
}

fn threads_futex_rejects_bad_addresses() -> Outcome {
    let word = AtomicU32::new(0);
    let aligned = word.as_ptr() as u64;
    for (address, what, errno) in [
        (aligned + 1, "an unaligned word", EINVAL),
        (aligned + 2, "a half-aligned word", EINVAL),
        (KERNEL_ADDRESS, "kernel memory", EINVAL),
        (0xffff_ffff_ffff_fffc, "the last kernel word", EINVAL),
        (0x0000_8000_0000_0000, "the first non-canonical address", EINVAL),
        (0xdead_beef_0000_0000, "a non-canonical address", EINVAL),
        (HOLE, "an unmapped word", EFAULT),
    ] {
        expect_errno(&format!("futex_wait on {what}"), call(FUTEX_WAIT, [address, 0, 0, 0, 0, 0]), errno)?;
        expect_errno(&format!("futex_wait with a timeout on {what}"), call(FUTEX_WAIT, [address, 0, MS, 0, 0, 0]), errno)?;
        expect_errno(&format!("futex_wake on {what}"), call(FUTEX_WAKE, [address, 1, 0, 0, 0, 0]), errno)?;
    }
    expect_errno("futex_wait for a value above u32", call(FUTEX_WAIT, [aligned, 1 << 32, 0, 0, 0, 0]), EINVAL)
}

fn threads_futex_wake_with_no_waiter_wakes_none() -> Outcome {
    let word = AtomicU32::new(0);
    for count in [0, 1, 5, u64::MAX] {
        let woken = sys::futex_wake(&word, count).context("futex_wake")?;
        check!(woken == 0, "futex_wake({count}) on a word nobody waits on woke {woken}");
    }
    Ok(())
}

/// `futex_waiter INDEX TIMEOUT_MS`, with a shared-memory object as handle 3: maps it (where
/// the kernel chooses), stores the address it got in word 8-9, and waits on word 0 while it
/// holds 0 (`forever` for no timeout). Woken, it records INDEX in the next slot of the wake
/// order (word 1 counts, words 2.. hold it) and exits 0; timed out it exits 3.
fn helper_futex_waiter(args: &[&str]) -> i32 {
    let index: u32 = arg(args, 0);
    let timeout = match args.get(1) {
        Some(&"forever") => FOREVER,
        _ => arg::<u64>(args, 1) * MS,
    };
    let Ok(address) = SharedMemory::from_raw(3).map(0, RW) else { return 2 };
    // SAFETY: the page was just mapped read-write and stays mapped until the process ends.
    let words = unsafe { core::slice::from_raw_parts(address as *const AtomicU32, 16) };
    words[8].store(address as u32, Ordering::Relaxed);
    words[9].store((address >> 32) as u32, Ordering::Relaxed);
    match sys::futex_wait(&words[0], 0, timeout) {
        Ok(()) => {
            let slot = words[1].fetch_add(1, Ordering::AcqRel);
            words[2 + (slot as usize % 6)].store(index, Ordering::Release);
            0
        }
        Err(Errno(ETIMEDOUT)) => 3,
        Err(Errno(errno)) => errno_status(errno),
    }
}

/// A page of shared memory mapped here at a fixed address, for the futex cases between
/// processes, and its words.
struct SharedWords {
    memory: SharedMemory,
    address: u64,
}

impl SharedWords {
    fn new() -> Result<Self, String> {
        let memory = SharedMemory::create(1).context("memory_create")?;
        let address = memory.map(THREADS_FIXED, RW).context("memory_map")?;
        check!(address == THREADS_FIXED, "memory_map at {THREADS_FIXED:#x} returned {address:#x}");
        Ok(Self { memory, address })
    }

    fn words(&self) -> &[AtomicU32] {
        // SAFETY: the page is mapped read-write while `self` lives.
        unsafe { core::slice::from_raw_parts(self.address as *const AtomicU32, 16) }
    }

    /// Starts `futex_waiter INDEX TIMEOUT` on this memory and waits until it sleeps.
    fn waiter(&self, index: u32, timeout: &str) -> Result<Child, String> {
        let child = spawn_with_handles("futex_waiter", &[&format!("{index}"), timeout], &[0, 1, 2, self.memory.handle().raw() as u32])?;
        if let Err(why) = wait_until_blocked(child.pid, "futex_waiter") {
            let _ = kill_and_reap(&[child]);
            return Err(why);
        }
        Ok(child)
    }

    fn wake(&self, count: u64) -> Result<u64, String> {
        sys::futex_wake(&self.words()[0], count).context("futex_wake")
    }

    /// The wake order the waiters recorded.
    fn order(&self) -> Vec<u32> {
        let words = self.words();
        let count = words[1].load(Ordering::Acquire) as usize;
        (0..count.min(6)).map(|slot| words[2 + slot].load(Ordering::Acquire)).collect()
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        let _ = unmap(self.address, 1);
    }
}

/// Runs `body` with `waiters`, killing and reaping whatever is left of them afterwards.
impl SharedWords {
    /// A waiter on each of words 0, 1, ... in that order, with the timeouts given; none left
    /// behind if one cannot start.
    fn waiters(&self, timeouts: &[&str]) -> Result<Vec<Child>, String> {
        let mut waiters = Vec::new();
        for (index, timeout) in (0..).zip(timeouts) {
            match self.waiter(index, timeout) {
                Ok(waiter) => waiters.push(waiter),
                Err(why) => {
                    with_waiters(&waiters, || Ok(()))?;
                    return Err(why);
                }
            }
        }
        Ok(waiters)
    }
}

fn with_waiters(waiters: &[Child], body: impl FnOnce() -> Outcome) -> Outcome {
    let outcome = body();
    for &waiter in waiters {
        if state_of(waiter.pid)?.is_some() || sys::wait_handle(waiter.handle, 0).is_err() {
            let _ = sys::kill(waiter);
            let _ = sys::wait(Some(waiter));
        }
    }
    outcome
}

fn threads_futex_in_shared_memory_is_one_word_for_two_processes() -> Outcome {
    let shared = SharedWords::new()?;
    let waiter = shared.waiter(0, "forever")?;
    with_waiters(&[waiter], || {
        let theirs = u64::from(shared.words()[8].load(Ordering::Relaxed)) | u64::from(shared.words()[9].load(Ordering::Relaxed)) << 32;
        check!(theirs != shared.address, "the waiter mapped the memory at the same address {theirs:#x}");
        let woken = shared.wake(1)?;
        check!(woken == 1, "a wake here at {:#x} woke {woken} waiters of the word mapped at {theirs:#x}", shared.address);
        expect_exit("the waiter", finish_within(waiter, "futex_waiter")?, 0)
    })
}

/// `futex_private_waiter`: maps a page at [`THREADS_FIXED`] and waits on its first word;
/// exits 0 if woken.
fn helper_futex_private_waiter(_: &[&str]) -> i32 {
    if map_page_at(THREADS_FIXED).is_err() {
        return 2;
    }
    // SAFETY: mapped read-write just above, never unmapped.
    let word = unsafe { &*(THREADS_FIXED as *const AtomicU32) };
    match sys::futex_wait(word, 0, FOREVER) {
        Ok(()) => 0,
        Err(Errno(errno)) => errno_status(errno),
    }
}

fn threads_futex_private_words_are_private_to_their_process() -> Outcome {
    let child = spawn_child("futex_private_waiter", &[])?;
    with_waiters(&[child], || {
        wait_until_blocked(child.pid, "futex_private_waiter")?;
        let page = map_page_at(THREADS_FIXED)?;
        // SAFETY: mapped just above; unmapped below, after the last use.
        let word = unsafe { &*(page as *const AtomicU32) };
        let woken = sys::futex_wake(word, u64::MAX).context("futex_wake");
        unmap(page, 1)?;
        let woken = woken?;
        check!(woken == 0, "a wake of this process's private word woke {woken} threads of another process");
        check!(state_of(child.pid)? == Some(ProcessState::Blocked), "the other process's waiter stopped waiting");
        Ok(())
    })
}

fn threads_futex_wake_wakes_at_most_the_count_and_says_how_many() -> Outcome {
    let shared = SharedWords::new()?;
    let waiters = shared.waiters(&["forever"; 3])?;
    with_waiters(&waiters.clone(), || {
        let first = shared.wake(2)?;
        check!(first == 2, "wake(2) with three waiters woke {first}");
        expect_exit("the oldest waiter", finish_within(waiters[0], "futex_waiter 0")?, 0)?;
        expect_exit("the second waiter", finish_within(waiters[1], "futex_waiter 1")?, 0)?;
        check!(state_of(waiters[2].pid)? == Some(ProcessState::Blocked), "the third waiter was woken too");
        let second = shared.wake(5)?;
        check!(second == 1, "wake(5) with one waiter left woke {second}");
        expect_exit("the third waiter", finish_within(waiters[2], "futex_waiter 2")?, 0)?;
        let third = shared.wake(1)?;
        check!(third == 0, "wake(1) with no waiter left woke {third}");
        Ok(())
    })
}

fn threads_futex_wakes_the_oldest_waiter_first() -> Outcome {
    let shared = SharedWords::new()?;
    let waiters = shared.waiters(&["forever"; 4])?;
    with_waiters(&waiters.clone(), || {
        for (index, &waiter) in waiters.iter().enumerate() {
            let woken = shared.wake(1)?;
            check!(woken == 1, "wake {index} woke {woken}");
            expect_exit(&format!("waiter {index}"), finish_within(waiter, "futex_waiter")?, 0)?;
        }
        let order = shared.order();
        check!(order == [0, 1, 2, 3], "the waiters were woken in the order {order:?}, not oldest first");
        Ok(())
    })
}

fn threads_futex_a_killed_waiter_leaves_the_queue() -> Outcome {
    let shared = SharedWords::new()?;
    let [first, second] = shared.waiters(&["forever", "forever"])?[..] else { unreachable!("two waiters were asked for") };
    with_waiters(&[first, second], || {
        sys::kill(first).context("kill of the oldest waiter")?;
        expect_exit("the killed waiter", wait_for(first)?, KILLED)?;
        let woken = shared.wake(1)?;
        check!(woken == 1, "wake(1) after the kill woke {woken}");
        expect_exit("the second waiter", finish_within(second, "futex_waiter 1")?, 0)?;
        check!(shared.order() == [1], "the wake order was {:?}", shared.order());
        Ok(())
    })
}

fn threads_futex_a_timed_out_waiter_leaves_the_queue() -> Outcome {
    let shared = SharedWords::new()?;
    let [first, second] = shared.waiters(&["100", "forever"])?[..] else { unreachable!("two waiters were asked for") };
    with_waiters(&[first, second], || {
        expect_exit("the waiter with a timeout", finish_within(first, "futex_waiter 0")?, 3)?;
        let woken = shared.wake(1)?;
        check!(woken == 1, "wake(1) after the timeout woke {woken}");
        expect_exit("the second waiter", finish_within(second, "futex_waiter 1")?, 0)?;
        check!(shared.order() == [1], "the wake order was {:?}", shared.order());
        Ok(())
    })
}

fn threads_futex_a_wake_taken_by_a_dying_waiter_is_passed_on() -> Outcome {
    // Rounds of: two threads wait on a word (the older first, as far as sleeps can make it);
    // the word changes, one wake(1), and at once a kill of the older one. Whichever of the
    // kill and the wake reaches it first, the younger one must not sleep on: the wake is
    // passed on to it, or reaches it because the older one had left the queue, or it saw
    // the word changed and never slept (EAGAIN). A timeout means the wake was lost.
    const ROUNDS: u32 = 50;
    let cpus = info()?.cpus;
    let mut passed_on = 0;
    let mut ambiguous = 0;
    for round in 0..ROUNDS {
        let word = Arc::new(AtomicU32::new(0));
        let younger_done = Arc::new(AtomicU32::new(0));
        let waiter = |timeout: u64, done: Arc<AtomicU32>| {
            let word = word.clone();
            thread::spawn(move || {
                let result = sys::futex_wait(&word, 0, timeout);
                done.store(1, Ordering::Release);
                result
            })
            .context("spawn")
        };
        let older = waiter(FOREVER, Arc::new(AtomicU32::new(0)))?;
        sleep_ms(2)?;
        let younger = waiter(HANG_NS, younger_done.clone())?;
        sleep_ms(2)?;
        word.store(1, Ordering::Release);
        let woken = sys::futex_wake(&word, 1).context("futex_wake")?;
        let killed = sys::kill_handle(older.raw_handle());
        let older_ended = older.join();
        if older_ended == Ok(Ok(())) {
            // The older one took the wake and returned before the kill (which then found it
            // ended): that wake was used, so the younger one needs one of its own.
            wait_until(HANG_LIMIT, || {
                Ok(younger_done.load(Ordering::Acquire) == 1 || sys::futex_wake(&word, 1).context("futex_wake")? == 1)
            })?;
        }
        let younger_result = joined(younger, "the younger waiter")?;
        // With several CPUs the older one may have returned to ring 3 with the wake (and been
        // killed there, before its closure stored the result): then the wake was rightly
        // spent, and nothing tells that apart from a lost one. Only one CPU makes the order
        // certain: the kill lands before the woken thread runs.
        if cpus > 1 && woken == 1 && older_ended.is_err() && younger_result == Err(Errno(ETIMEDOUT)) {
            ambiguous += 1;
            continue;
        }
        check!(
            matches!(younger_result, Ok(()) | Err(Errno(EAGAIN))),
            "round {round}: the younger waiter's wait returned {younger_result:?} (the wake was lost); \
             the wake woke {woken}, the kill returned {killed:?}, the older waiter ended {older_ended:?}"
        );
        if woken == 1 && older_ended.is_err() && younger_result.is_ok() {
            passed_on += 1;
        }
    }
    userlib::println!("  threads_futex_a_wake_taken_by_a_dying_waiter_is_passed_on: {passed_on} of {ROUNDS} rounds woke the younger after the kill, {ambiguous} undecided (several CPUs)");
    Ok(())
}

// ----- IPC between threads ------------------------------------------------------------

fn threads_ipc_between_two_threads_of_one_process() -> Outcome {
    let endpoint = Arc::new(endpoint()?);
    let serving = endpoint.clone();
    let server = thread::spawn(move || -> Result<Vec<u8>, String> {
        let mut room = [0u8; 64];
        let request = serving.recv(&mut room, LIMIT_NS).context("recv")?;
        let got = room[..request.arrived.len.min(64)].to_vec();
        let mut answer: Vec<u8> = got.iter().rev().copied().collect();
        answer.push(b'!');
        let mut transfer = Transfer { send: &answer, ..Transfer::default() };
        request
            .reply
            .ok_or_else(|| String::from("no reply handle"))?
            .send_with(&Message::new(request.message.label + 1, [sys::gettid() as u64, 0, 0, 0]), &mut transfer)
            .context("reply")?;
        Ok(got)
    })
    .context("spawn")?;
    let mut room = [0u8; 64];
    let mut transfer = Transfer { send: b"threads", receive: Some(&mut room), ..Transfer::default() };
    let answer = endpoint.call_with(&Message::new(41, [0; 4]), &mut transfer, LIMIT_NS);
    let received = joined(server, "the server thread")??;
    let (reply, arrived) = answer.context("call")?;
    check!(received == b"threads", "the server thread received {received:?}");
    check!(reply.label == 42, "the reply's label is {}", reply.label);
    check!(reply.words[0] != u64::from(sys::gettid()) && reply.words[0] != 0, "the reply came from thread {}", reply.words[0]);
    check!(&room[..arrived.len] == b"sdaerht!", "the reply's bytes are {:?}", &room[..arrived.len]);
    Ok(())
}

/// `thread_server_client ROUNDS`, with an endpoint as handle 3: calls it ROUNDS times with
/// a number each time, and exits 0 if every answer is the number doubled.
fn helper_thread_server_client(args: &[&str]) -> i32 {
    let rounds: u64 = arg(args, 0);
    let endpoint = Endpoint::from_raw(3);
    for round in 0..rounds {
        let value = u64::from(sys::getpid()) * 1000 + round;
        match endpoint.call(&Message::new(1, [value, 0, 0, 0])) {
            Ok(answer) if answer.words[0] == 2 * value => {}
            Ok(_) => return 2,
            Err(Errno(errno)) => return errno_status(errno),
        }
    }
    0
}

fn threads_several_threads_serve_one_endpoint() -> Outcome {
    const SERVERS: usize = 4;
    const CLIENTS: usize = 4;
    const STOP: u64 = 99;
    let endpoint = Arc::new(endpoint()?);
    let served: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let servers: Vec<_> = (0..SERVERS)
        .map(|_| {
            let (endpoint, served) = (endpoint.clone(), served.clone());
            thread::spawn(move || -> Outcome {
                loop {
                    let request = endpoint.recv(&mut [], LIMIT_NS).context("recv")?;
                    let reply = request.reply.ok_or_else(|| String::from("no reply handle"))?;
                    if request.message.label == STOP {
                        return reply.send(&Message::default()).context("reply");
                    }
                    served.lock().push(sys::gettid());
                    // Hold the request a moment, so that other calls meet other threads.
                    sleep_ms(1)?;
                    reply.send(&Message::new(0, [2 * request.message.words[0], 0, 0, 0])).context("reply")?;
                }
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    let clients: Result<Vec<Child>, String> =
        (0..CLIENTS).map(|_| spawn_with_handles("thread_server_client", &["25"], &[0, 1, 2, endpoint.handle().raw() as u32])).collect();
    let outcome = clients.and_then(|clients| {
        let mut outcome = Ok(());
        for client in clients {
            let ended = finish_within(client, "thread_server_client");
            outcome = outcome.and(ended.and_then(|ended| expect_exit("a client", ended, 0)));
        }
        outcome
    });
    for _ in 0..SERVERS {
        let _ = endpoint.call_with(&Message::new(STOP, [0; 4]), &mut Transfer::default(), LIMIT_NS);
    }
    for server in servers {
        joined(server, "a server thread")??;
    }
    outcome?;
    let served = served.lock();
    check!(served.len() == CLIENTS * 25, "the servers answered {} calls", served.len());
    let mut threads: Vec<u32> = served.clone();
    threads.sort_unstable();
    threads.dedup();
    check!(threads.len() >= 2, "only {} server thread(s) answered calls from {CLIENTS} clients at once", threads.len());
    Ok(())
}

// ----- Memory changed under a sibling --------------------------------------------------

/// Pages of the buffer the memory cases unmap under a sibling's syscall.
const BUFFER_PAGES: u64 = 16;
const FILL: u8 = 0xa7;

/// Maps the buffer of the memory cases at its fixed address and fills it.
fn map_buffer() -> Outcome {
    let address = sys::mmap(THREADS_FIXED, BUFFER_PAGES * PAGE, RW).context("mmap of the buffer")?;
    check!(address == THREADS_FIXED, "mmap at {THREADS_FIXED:#x} returned {address:#x}");
    // SAFETY: just mapped read-write; the threads of the case only pass its address to the
    // kernel (no Rust reference into it outlives this fill).
    unsafe { core::ptr::write_bytes(address as *mut u8, FILL, (BUFFER_PAGES * PAGE) as usize) };
    Ok(())
}

fn threads_a_buffer_unmapped_under_a_siblings_write_is_efault_or_a_count() -> Outcome {
    let (read_end, write_end) = sys::pipe_create().context("pipe_create")?;
    map_buffer()?;
    let stop = Arc::new(AtomicU32::new(0));
    let writer_stop = stop.clone();
    // Big writes from the buffer, which the main thread unmaps and maps again meanwhile.
    let writer = thread::spawn(move || -> Result<(u64, u64), String> {
        let (mut written, mut refused) = (0, 0);
        while writer_stop.load(Ordering::Acquire) == 0 {
            // SAFETY: the kernel reads the buffer or refuses it (EFAULT); nothing is written.
            let result = unsafe { sys::raw(EntryPath::Syscall, WRITE, [write_end, THREADS_FIXED, BUFFER_PAGES * PAGE, 0, 0, 0]) };
            match result {
                count if count >= 0 => written += count as u64,
                errno if errno == -EFAULT => refused += 1,
                errno => return Err(format!("write returned {}", show(errno))),
            }
        }
        Ok((written, refused))
    })
    .context("spawn of the writer")?;
    let reader = thread::spawn(move || -> Result<u64, String> {
        let mut room = vec![0u8; PIPE_CAPACITY];
        let mut total = 0;
        loop {
            let got = sys::read(read_end, &mut room).context("read")?;
            if got == 0 {
                return Ok(total);
            }
            if let Some(bad) = room[..got].iter().find(|&&byte| byte != FILL && byte != 0) {
                return Err(format!("read a byte {bad:#x} that was never in the buffer"));
            }
            total += got as u64;
        }
    })
    .context("spawn of the reader")?;
    let mut storm: Outcome = Ok(());
    for _ in 0..300 {
        storm = unmap(THREADS_FIXED, BUFFER_PAGES).and_then(|()| map_buffer());
        if storm.is_err() {
            break;
        }
    }
    stop.store(1, Ordering::Release);
    let written = joined(writer, "the writer");
    let _ = userlib::ipc::close(write_end);
    let read = joined(reader, "the reader");
    let _ = userlib::ipc::close(read_end);
    let _ = unmap(THREADS_FIXED, BUFFER_PAGES);
    storm?;
    let (written, refused) = written??;
    let read = read??;
    check!(read == written, "the writes reported {written} bytes, the reader got {read}");
    userlib::println!("  threads_a_buffer_unmapped_under_a_siblings_write_is_efault_or_a_count: {written} bytes written, {refused} writes refused");
    Ok(())
}

fn threads_a_buffer_unmapped_under_a_siblings_read_is_efault_or_a_count() -> Outcome {
    let (read_end, write_end) = sys::pipe_create().context("pipe_create")?;
    map_buffer()?;
    let stop = Arc::new(AtomicU32::new(0));
    let writer_stop = stop.clone();
    let writer = thread::spawn(move || -> Outcome {
        let chunk = [FILL; 512];
        while writer_stop.load(Ordering::Acquire) == 0 {
            sys::write(write_end, &chunk).context("write")?;
        }
        Ok(())
    })
    .context("spawn of the writer")?;
    let reader_stop = stop.clone();
    // Reads into the buffer, which the main thread unmaps and maps again meanwhile.
    let reader = thread::spawn(move || -> Result<(u64, u64), String> {
        let (mut read, mut refused) = (0, 0);
        while reader_stop.load(Ordering::Acquire) == 0 {
            // SAFETY: the kernel writes into the buffer or refuses it; no Rust reference
            // points into it meanwhile.
            let result = unsafe { sys::raw(EntryPath::Syscall, READ, [read_end, THREADS_FIXED, BUFFER_PAGES * PAGE, 0, 0, 0]) };
            match result {
                count if count >= 0 && count as u64 <= BUFFER_PAGES * PAGE => read += count as u64,
                errno if errno == -EFAULT => refused += 1,
                other => return Err(format!("read returned {}", show(other))),
            }
        }
        Ok((read, refused))
    })
    .context("spawn of the reader")?;
    let mut storm: Outcome = Ok(());
    for _ in 0..300 {
        storm = unmap(THREADS_FIXED, BUFFER_PAGES).and_then(|()| map_buffer());
        if storm.is_err() {
            break;
        }
    }
    stop.store(1, Ordering::Release);
    // The writer may be blocked on a full pipe and the reader on an empty one: closing the
    // ends ends both.
    let _ = userlib::ipc::close(read_end);
    let written = joined(writer, "the writer");
    let _ = userlib::ipc::close(write_end);
    let read = joined(reader, "the reader");
    let _ = unmap(THREADS_FIXED, BUFFER_PAGES);
    storm?;
    let (bytes, refused) = read??;
    // The writer's last write may fail with the read end closed.
    if let Err(why) = written? {
        check!(why.contains("EPIPE"), "the writer: {why}");
    }
    userlib::println!("  threads_a_buffer_unmapped_under_a_siblings_read_is_efault_or_a_count: {bytes} bytes read, {refused} reads refused");
    Ok(())
}

fn threads_mmap_and_munmap_storms_from_several_threads_stay_consistent() -> Outcome {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 150;
    let memory = my_memory()?;
    let frames = system_frames()?;
    let workers: Vec<_> = (0..THREADS)
        .map(|index| {
            thread::spawn(move || -> Outcome {
                let mark = 0x10 + index as u8;
                for round in 0..ROUNDS {
                    let pages = 1 + (round * 7 + index) % 16;
                    let address = sys::mmap(0, pages * PAGE, RW).context("mmap")?;
                    // SAFETY: just mapped read-write for this thread alone.
                    let bytes = unsafe { core::slice::from_raw_parts_mut(address as *mut u8, (pages * PAGE) as usize) };
                    check!(bytes.iter().all(|&byte| byte == 0), "a fresh mapping at {address:#x} is not zero");
                    bytes.fill(mark);
                    sys::yield_now();
                    check!(bytes.iter().all(|&byte| byte == mark), "another thread's mapping overlapped {address:#x}");
                    if round % 3 == 0 {
                        // SAFETY: this thread's own mapping; read again only after.
                        unsafe { sys::mprotect(address, pages * PAGE, PROT_READ) }.context("mprotect")?;
                        check!(bytes[0] == mark, "mprotect lost the contents");
                    }
                    // SAFETY: `bytes` is not used after this.
                    unsafe { sys::munmap(address, pages * PAGE) }.context("munmap")?;
                }
                Ok(())
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    let mut outcome = Ok(());
    for worker in workers {
        outcome = outcome.and(joined(worker, "a worker").and_then(|result| result));
    }
    outcome?;
    let after = my_memory()?;
    check!(after == memory, "this process maps {after} bytes after the storm, {memory} before");
    let now_frames = system_frames()?;
    check!(now_frames == frames, "{now_frames} frames free after the storm, {frames} before");
    Ok(())
}

// ----- The locks under contention ------------------------------------------------------

fn threads_a_mutex_holds_under_contention_from_many_threads() -> Outcome {
    const THREADS: u64 = 8;
    const ROUNDS: u64 = 3000;
    let counter = Arc::new(Mutex::new((0u64, 0u64)));
    let workers: Vec<_> = (0..THREADS)
        .map(|index| {
            let counter = counter.clone();
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut guard = if round % 5 == 0 {
                        loop {
                            if let Some(guard) = counter.try_lock() {
                                break guard;
                            }
                            sys::yield_now();
                        }
                    } else {
                        counter.lock()
                    };
                    // Two words that must move together: a torn update shows.
                    let (a, b) = *guard;
                    if a != b {
                        return false;
                    }
                    if (round + index) % 64 == 0 {
                        sys::yield_now();
                    }
                    *guard = (a + 1, b + 1);
                }
                true
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    for worker in workers {
        check!(joined(worker, "a worker")?, "a worker saw the two words apart");
    }
    let total = *counter.lock();
    check!(total == (THREADS * ROUNDS, THREADS * ROUNDS), "the counter ended at {total:?}");
    Ok(())
}

fn threads_a_condvar_serves_many_producers_and_consumers() -> Outcome {
    const PRODUCERS: u64 = 3;
    const CONSUMERS: u64 = 3;
    const ITEMS: u64 = 300;
    const ROOM: usize = 4;
    let state = Arc::new((Mutex::new((Vec::<u64>::new(), 0u64)), Condvar::new(), Condvar::new()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|index| {
            let state = state.clone();
            thread::spawn(move || {
                let (queue, not_empty, not_full) = &*state;
                for item in 0..ITEMS {
                    let mut guard = queue.lock();
                    while guard.0.len() >= ROOM {
                        not_full.wait(&mut guard);
                    }
                    guard.0.push(index * ITEMS + item + 1);
                    not_empty.notify_one();
                }
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn of a producer")?;
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let state = state.clone();
            thread::spawn(move || {
                let (queue, not_empty, not_full) = &*state;
                let (mut sum, mut count) = (0u64, 0u64);
                loop {
                    let mut guard = queue.lock();
                    while guard.0.is_empty() && guard.1 < PRODUCERS * ITEMS {
                        not_empty.wait(&mut guard);
                    }
                    let Some(item) = guard.0.pop() else { return (sum, count) };
                    guard.1 += 1;
                    if guard.1 == PRODUCERS * ITEMS {
                        // The last item: wake every consumer still waiting, to end.
                        not_empty.notify_all();
                    }
                    not_full.notify_one();
                    drop(guard);
                    sum += item;
                    count += 1;
                }
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn of a consumer")?;
    for producer in producers {
        joined(producer, "a producer")?;
    }
    let (mut sum, mut count) = (0, 0);
    for consumer in consumers {
        let (part, items) = joined(consumer, "a consumer")?;
        sum += part;
        count += items;
    }
    let n = PRODUCERS * ITEMS;
    check!(count == n && sum == n * (n + 1) / 2, "the consumers took {count} items summing to {sum}");
    Ok(())
}

fn threads_once_makes_every_caller_wait_for_the_one_run() -> Outcome {
    const THREADS: usize = 8;
    let once = Arc::new(Once::new());
    let value = Arc::new(AtomicU64::new(0));
    let runs = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (once, value, runs) = (once.clone(), value.clone(), runs.clone());
            thread::spawn(move || {
                once.call_once(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Long enough that the others find it running and sleep.
                    let _ = sys::sleep_ms(20);
                    value.store(42, Ordering::Relaxed);
                });
                value.load(Ordering::Relaxed)
            })
        })
        .collect::<Result<_, _>>()
        .context("spawn")?;
    for worker in workers {
        let seen = joined(worker, "a worker")?;
        check!(seen == 42, "a caller returned from call_once before the run finished (saw {seen})");
    }
    check!(runs.load(Ordering::SeqCst) == 1, "the initialisation ran {} times", runs.load(Ordering::SeqCst));
    Ok(())
}

fn threads_a_condvar_wait_times_out_and_is_woken_by_notify() -> Outcome {
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    {
        let (lock, condvar) = &*state;
        let mut guard = lock.lock();
        let start = now();
        let timed_out = condvar.wait_timeout(&mut guard, 20 * MS);
        let took = now() - start;
        check!(timed_out, "wait_timeout with no notify did not time out");
        check!(took >= 20 * MS, "wait_timeout returned after {took} ns, before its 20 ms");
    }
    let waiting = state.clone();
    let waiter = thread::spawn(move || {
        let (lock, condvar) = &*waiting;
        let mut guard = lock.lock();
        let mut timeouts = 0;
        while !*guard {
            if condvar.wait_timeout(&mut guard, LIMIT_NS) {
                timeouts += 1;
            }
        }
        timeouts
    })
    .context("spawn")?;
    sleep_ms(5)?;
    {
        let (lock, condvar) = &*state;
        *lock.lock() = true;
        condvar.notify_one();
    }
    let timeouts = joined(waiter, "the waiter")?;
    check!(timeouts == 0, "the waiter timed out {timeouts} times instead of being notified");
    Ok(())
}
