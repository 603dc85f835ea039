//! The process life cycle, through process handles: exit statuses; `wait` for any child, a
//! given child, with and without timeouts, on handles that name no process; `kill` of
//! running, sleeping, reading, waiting, unstarted and ended children, and without a handle;
//! a process leaving the table when it ends; handle numbers that belong to another process;
//! `spawn` and its limits; orphans, which keep their parent's pid and go to nobody;
//! preemption; `sleep`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{E2BIG, EAGAIN, EBADF, ECHILD, ENOENT, EPERM, ESRCH, ETIMEDOUT};
use abi::handle::{HANDLE_MAX, Kind, NO_HANDLE, rights};
use abi::ipc::FOREVER;
use abi::status::KILLED;
use abi::syscall::{KILL, PROCESS_PID, SLEEP, WAIT};
use abi::{ARGV_BYTES_MAX, ARGV_MAX, ExitInfo, ProcessState, WAIT_ANY};
use userlib::check;
use userlib::ipc::{self, Endpoint, Message, OwnedHandle};
use userlib::process::{self, Ending};
use userlib::sys::{self, Child, Errno, Pid};
use userlib::testing::{Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here exit_status,
    here wait_any_collects_all,
    here wait_for_specific_child,
    here wait_no_children,
    here wait_needs_a_process_handle,
    here wait_closes_the_handle,
    here wait_timeout_zero_is_eagain,
    here wait_timeout_expires,
    here foreign_handle_numbers_mean_nothing,
    here wait_null_status,
    here kill_spinning_child,
    here kill_sleeping_child,
    here kill_reading_child,
    here kill_waiting_child,
    here kill_unstarted_child,
    here kill_ended_child,
    here kill_needs_a_process_handle,
    here kill_without_a_handle_refused,
    here kill_self,
    here ended_process_leaves_the_table,
    here process_pid_names_the_child,
    here pids_increase,
    here spawn_missing_program,
    here spawn_passes_arguments,
    here spawn_argument_limits,
    here spawn_limit,
    here spawn_bomb,
    here orphan_keeps_its_parent_pid,
    here orphan_goes_to_nobody,
    here preemption,
    here preemption_with_interrupts_cleared,
    here sleep_never_ends_early,
    here sleep_zero,
    here sleep_huge_is_killable,
];

fn exit_status() -> Outcome {
    for status in [0, 1, 42, 255, 256, 1000, -1, i32::MAX, i32::MIN] {
        expect_child_status("exit_with", &[&format!("{status}")], status)?;
    }
    Ok(())
}

fn wait_any_collects_all() -> Outcome {
    let mut expected = Vec::new();
    for index in 0..6 {
        let status = 10 + index;
        expected.push((spawn_child("exit_with", &[&format!("{status}")])?, status));
    }
    for _ in 0..expected.len() {
        let (handle, info) = sys::wait(None).context("wait for any child")?;
        let position = expected
            .iter()
            .position(|(child, _)| child.handle == handle)
            .ok_or(format!("wait returned handle {handle}, which names none of the children"))?;
        let (child, wanted) = expected.swap_remove(position);
        expect_exit(&format!("pid {}", child.pid), info, wanted)?;
    }
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait after every child was waited for did not return ECHILD");
    Ok(())
}

fn wait_for_specific_child() -> Outcome {
    let slow = spawn_child("exit_after", &["30", "7"])?;
    let fast = spawn_child("exit_with", &["8"])?;
    expect_exit("the slow child", wait_for(slow)?, 7)?;
    expect_exit("the fast child", wait_for(fast)?, 8)?;
    Ok(())
}

fn wait_no_children() -> Outcome {
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait for any process without a process handle");
    let result = sys::wait_handle(WAIT_ANY as u64, 0);
    check!(result == Err(Errno(ECHILD)), "wait for any process with timeout 0 returned {result:?}");
    Ok(())
}

/// Raw `wait` on `handle` with an `ExitInfo` to write and timeout 0.
fn raw_wait(handle: u64, info: &mut ExitInfo) -> i64 {
    call(WAIT, [handle, info as *mut ExitInfo as u64, 0, 0, 0, 0])
}

fn wait_needs_a_process_handle() -> Outcome {
    let mut info = ExitInfo::exited(-1);
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let closed = Endpoint::create().context("endpoint_create")?.into_raw();
    ipc::close(closed).context("handle_close")?;
    let mut refused = alloc::vec![
        (0, "the console (input)"),
        (1, "the console (output)"),
        (endpoint.handle().raw(), "an endpoint"),
        (closed, "a closed handle"),
        (HANDLE_MAX as u64, "HANDLE_MAX"),
        (u64::from(u32::MAX), "u32::MAX"),
        (1 << 32 | 1, "2^32 + 1"),
        (-2i64 as u64, "-2"),
        (i64::MIN as u64, "i64::MIN"),
    ];
    if let Some(free) = free_handle_number() {
        refused.push((free, "a free number"));
    }
    for (handle, what) in refused {
        expect_errno(&format!("wait on {what}"), raw_wait(handle, &mut info), EBADF)?;
    }
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        let no_wait = OwnedHandle::from_raw(ipc::duplicate(child.handle, rights::ALL & !rights::WAIT).context("handle_duplicate")?);
        expect_errno("wait through a process handle without WAIT", raw_wait(no_wait.raw(), &mut info), EPERM)?;
        let result = sys::wait_handle(WAIT_ANY as u64, 0);
        check!(result == Err(Errno(EAGAIN)), "wait for any process while one runs returned {result:?}");
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome?;
    check!(info == ExitInfo::exited(-1), "refused waits wrote {info:?}");
    Ok(())
}

/// The lowest handle number this process does not use, if any.
pub fn free_handle_number() -> Option<u64> {
    (0..HANDLE_MAX as u64).find(|&number| ipc::handle_info(number) == Err(Errno(EBADF)))
}

fn wait_closes_the_handle() -> Outcome {
    let child = spawn_child("exit_with", &["6"])?;
    expect_exit("the child", wait_for(child)?, 6)?;
    let info = ipc::handle_info(child.handle);
    check!(info == Err(Errno(EBADF)), "handle_info of a waited-for process handle returned {info:?}");
    let again = sys::wait(Some(child));
    check!(again == Err(Errno(EBADF)), "a second wait on the same handle returned {again:?}");
    Ok(())
}

fn wait_timeout_zero_is_eagain() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let start = now();
    let polled = sys::wait_handle(child.handle, 0);
    let elapsed = now() - start;
    let still_held = ipc::handle_info(child.handle);
    kill_and_reap(&[child])?;
    check!(polled == Err(Errno(EAGAIN)), "wait with timeout 0 on a running child returned {polled:?}");
    check!(elapsed < HANG_NS, "wait with timeout 0 took {} ms", elapsed / MS);
    check!(
        matches!(still_held, Ok((Some(Kind::Process), _))),
        "the handle did not stay open after the refused wait: {still_held:?}"
    );
    Ok(())
}

fn wait_timeout_expires() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let start = now();
    let waited = sys::wait_handle(child.handle, 30 * MS);
    let elapsed = now() - start;
    let start_any = now();
    let waited_any = sys::wait_handle(WAIT_ANY as u64, 20 * MS);
    let elapsed_any = now() - start_any;
    kill_and_reap(&[child])?;
    check!(waited == Err(Errno(ETIMEDOUT)), "wait with a 30 ms timeout on a running child returned {waited:?}");
    check!(
        (30 * MS..30 * MS + HANG_NS).contains(&elapsed),
        "wait with a 30 ms timeout returned after {} ms",
        elapsed / MS
    );
    check!(waited_any == Err(Errno(ETIMEDOUT)), "wait for any process with a 20 ms timeout returned {waited_any:?}");
    check!(
        (20 * MS..20 * MS + HANG_NS).contains(&elapsed_any),
        "wait for any process with a 20 ms timeout returned after {} ms",
        elapsed_any / MS
    );
    Ok(())
}

/// A child reports the number its own table gives its grandchild (and the grandchild's pid);
/// that number names nothing in this process, so nothing here can wait for, kill or name the
/// grandchild through it, while the child can.
fn foreign_handle_numbers_mean_nothing() -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let send = endpoint.handle().duplicate(rights::DUPLICATE | rights::SEND).context("handle_duplicate")?;
    let child = spawn_with_handles("report_grandchild", &[], &[0, 1, 2, send.raw() as u32, own_image() as u32])?;
    drop(send);
    let outcome: Outcome = (|| {
        let mut room = [0u8; 0];
        let request = endpoint.recv(&mut room, CHILD_LIMIT.as_nanos() as u64).context("recv of the child's report")?;
        let theirs = request.message.label;
        let grandchild = request.message.words[0] as Pid;
        check!(state_of(grandchild)?.is_some(), "the grandchild (pid {grandchild}) is not running");
        check!(
            ipc::handle_info(theirs) == Err(Errno(EBADF)),
            "the child's handle number {theirs} is taken in this process too; the case cannot tell"
        );
        let mut info = ExitInfo::exited(-1);
        expect_errno("wait on the child's number for the grandchild", raw_wait(theirs, &mut info), EBADF)?;
        expect_errno("kill through the child's number", call(KILL, [theirs, 0, 0, 0, 0, 0]), EBADF)?;
        expect_errno("process_pid of the child's number", call(PROCESS_PID, [theirs, 0, 0, 0, 0, 0]), EBADF)?;
        check!(state_of(grandchild)?.is_some(), "the grandchild ended after this process used the child's number");
        // The child then kills and waits for the grandchild through its own handle.
        request.reply.ok_or("the report came without a reply handle")?.send(&Message::default()).context("reply")?;
        Ok(())
    })();
    let ended = finish_within(child, "report_grandchild")?;
    outcome?;
    expect_exit("report_grandchild (0: the grandchild ended killed)", ended, 0)
}

fn wait_null_status() -> Outcome {
    let child = spawn_child("exit_with", &["9"])?;
    let closed = call(WAIT, [child.handle, 0, FOREVER, 0, 0, 0]);
    expect_value("wait with a null status pointer", closed, child.handle as i64)?;
    check!(state_of(child.pid)?.is_none(), "the child is still in the table after wait");
    check!(ipc::handle_info(child.handle) == Err(Errno(EBADF)), "wait with a null status pointer left the handle open");
    Ok(())
}

fn kill_spinning_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    sleep_ms(5)?;
    let state = state_of(child.pid)?;
    // Running on another CPU, or waiting for this one.
    check!(matches!(state, Some(ProcessState::Ready | ProcessState::Running)), "the spinner is not runnable: {state:?}");
    kill_and_reap(&[child])
}

fn kill_sleeping_child() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let started = wait_until(CHILD_LIMIT, || Ok(state_of(child.pid)? == Some(ProcessState::Blocked)))?;
    let start = now();
    kill_and_reap(&[child])?;
    let elapsed = now() - start;
    check!(started, "the sleeper never blocked");
    check!(elapsed < HANG_NS, "killing a sleeper took {} ms", elapsed / MS);
    Ok(())
}

fn kill_reading_child() -> Outcome {
    let child = spawn_child("console_reader", &[])?;
    let blocked = wait_until(CHILD_LIMIT, || Ok(state_of(child.pid)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "the reader never blocked in read");
    Ok(())
}

/// Starts `parent_of_caller` and finds the grandchild it started: (child, grandchild pid).
fn start_parent_of_caller() -> Result<(Child, Pid), String> {
    let child = spawn_child("parent_of_caller", &[])?;
    let mut grandchild = None;
    let found = wait_until(CHILD_LIMIT, || {
        grandchild = Table::read()?.rows().iter().find(|row| row.parent == child.pid).map(|row| row.pid);
        Ok(grandchild.is_some())
    })?;
    match grandchild {
        Some(grandchild) if found => Ok((child, grandchild)),
        _ => {
            kill_and_reap(&[child])?;
            Err(String::from("parent_of_caller did not start its caller"))
        }
    }
}

fn kill_waiting_child() -> Outcome {
    let (child, grandchild) = start_parent_of_caller()?;
    let waiting = wait_until(CHILD_LIMIT, || Ok(state_of(child.pid)? == Some(ProcessState::Blocked)));
    let killed = kill_and_reap(&[child]);
    // Its endpoint died with it, so the grandchild's call failed and it ended by itself.
    let gone = wait_until_gone(grandchild, "the grandchild calling the killed child");
    check!(waiting?, "parent_of_caller never blocked in wait");
    killed.and(gone)
}

fn kill_unstarted_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    kill_and_reap(&[child])
}

fn kill_ended_child() -> Outcome {
    let child = spawn_child("exit_with", &["3"])?;
    let left = wait_until_gone(child.pid, "the exited child");
    let killed = sys::kill(child);
    let ended = wait_for(child)?;
    left?;
    check!(killed == Err(Errno(ESRCH)), "kill of a process that has ended returned {killed:?}");
    expect_exit("the ended child", ended, 3)?;
    Ok(())
}

fn kill_needs_a_process_handle() -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let closed = Endpoint::create().context("endpoint_create")?.into_raw();
    ipc::close(closed).context("handle_close")?;
    for (handle, what) in [
        (0, "the console"),
        (endpoint.handle().raw(), "an endpoint"),
        (closed, "a closed handle"),
        (999_999, "999999"),
        (HANDLE_MAX as u64, "HANDLE_MAX"),
        (u64::from(u32::MAX), "u32::MAX"),
        (1 << 32 | 1, "2^32 + 1"),
        (u64::MAX, "u64::MAX"),
    ] {
        expect_errno(&format!("kill({what})"), call(KILL, [handle, 0, 0, 0, 0, 0]), EBADF)?;
    }
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        let no_kill = OwnedHandle::from_raw(ipc::duplicate(child.handle, rights::ALL & !rights::KILL).context("handle_duplicate")?);
        expect_errno("kill through a process handle without KILL", call(KILL, [no_kill.raw(), 0, 0, 0, 0, 0]), EPERM)?;
        // Until it has run (on another CPU, perhaps not yet) it is ready, not asleep; a
        // refused kill that went through would end it, and it would never be seen asleep.
        let asleep = wait_until(HANG_LIMIT, || Ok(state_of(child.pid)? == Some(ProcessState::Blocked)))?;
        check!(asleep, "the child did not survive the refused kill: {:?}", state_of(child.pid)?);
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome
}

/// A child holds handles to nothing but the console: no number it can name reaches its
/// parent (this process) or any other process.
fn kill_without_a_handle_refused() -> Outcome {
    expect_child_status("kill_every_number", &[], 0)?;
    check!(state_of(sys::getpid())?.is_some(), "this process is gone from the table");
    Ok(())
}

/// A process that is sent a handle to itself can kill itself with it; `kill` then does not
/// return, the process ends `KILLED`, and the call that sent it the handle fails with
/// `EPIPE` (its reply handle died with it).
fn kill_self() -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let child = spawn_with_handles("kill_self", &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let handles = [child.handle as u32 | abi::ipc::COPY_HANDLE];
    let mut transfer = ipc::Transfer { send_handles: &handles, ..ipc::Transfer::default() };
    let called = endpoint.call_with(&Message::default(), &mut transfer, CHILD_LIMIT.as_nanos() as u64);
    let ended = finish_within(child, "kill_self")?;
    expect_exit("kill_self (status 3: its kill returned)", ended, KILLED)?;
    check!(called.as_ref().err() == Some(&Errno(abi::errno::EPIPE)), "the call to the child returned {called:?}, expected EPIPE");
    Ok(())
}

/// There are no zombies: a process that ends leaves the table at once, and its handle still
/// says how it ended.
fn ended_process_leaves_the_table() -> Outcome {
    let child = spawn_child("exit_with", &["12"])?;
    let left = wait_until_gone(child.pid, "the exited child");
    let kind = ipc::handle_info(child.handle);
    let pid = sys::process_pid(child.handle);
    let ended = wait_for(child)?;
    left?;
    check!(matches!(kind, Ok((Some(Kind::Process), _))), "the handle of an ended process reports {kind:?}");
    check!(pid == Ok(child.pid), "process_pid of an ended process returned {pid:?}, expected {}", child.pid);
    expect_exit("the ended child", ended, 12)
}

fn process_pid_names_the_child() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let outcome: Outcome = (|| {
        let row = Table::read()?.find(child.pid).copied().ok_or("the child is not in the process table")?;
        check!(row.parent == sys::getpid(), "the child's parent is {}", row.parent);
        let bare = OwnedHandle::from_raw(ipc::duplicate(child.handle, 0).context("handle_duplicate with no rights")?);
        expect_value("process_pid through a handle without rights", call(PROCESS_PID, [bare.raw(), 0, 0, 0, 0, 0]), i64::from(child.pid))?;
        for (handle, what) in [(1, "the console"), (HANDLE_MAX as u64, "HANDLE_MAX"), (NO_HANDLE, "NO_HANDLE")] {
            expect_errno(&format!("process_pid of {what}"), call(PROCESS_PID, [handle, 0, 0, 0, 0, 0]), EBADF)?;
        }
        Ok(())
    })();
    kill_and_reap(&[child])?;
    outcome
}

fn pids_increase() -> Outcome {
    let first = spawn_child("exit_with", &["0"])?;
    wait_for(first)?;
    let second = spawn_child("exit_with", &["0"])?;
    wait_for(second)?;
    check!(second.pid > first.pid, "pid {} came after pid {}", second.pid, first.pid);
    Ok(())
}

fn spawn_missing_program() -> Outcome {
    for name in ["no_such_program", "usertest", "USERTESTS", "usertests ", "/bin/no_such_program", "/no/such/dir/hello"] {
        let result = process::spawn(name, &[name]);
        check!(result == Err(Errno(ENOENT)), "spawn({name:?}) returned {result:?}, not ENOENT");
    }
    let result = process::spawn("/bin", &["/bin"]);
    check!(result == Err(Errno(abi::errno::EISDIR)), "spawn of a directory returned {result:?}, not EISDIR");
    let result = process::spawn("/etc/motd", &["motd"]);
    check!(result == Err(Errno(abi::errno::EINVAL)), "spawn of a text file returned {result:?}, not EINVAL");
    Ok(())
}

/// Arguments `spawn_passes_arguments` sends and `echo_args` expects.
pub const ECHO_ARGS: [&str; 5] = ["a", "bb", "", "ünïcødé", "with space"];

fn spawn_passes_arguments() -> Outcome {
    expect_child_status("echo_args", &ECHO_ARGS, 0)
}

fn spawn_argument_limits() -> Outcome {
    let fixed = ["usertests", "--child", "arg_stats"];
    let fixed_bytes: usize = fixed.iter().map(|arg| arg.len()).sum();
    let filler_count = ARGV_MAX - fixed.len();
    let per_arg = (ARGV_BYTES_MAX - fixed_bytes) / filler_count;
    let last = ARGV_BYTES_MAX - fixed_bytes - per_arg * (filler_count - 1);
    let text = "x".repeat(last);
    let mut extra: Vec<&str> = (0..filler_count - 1).map(|_| &text[..per_arg]).collect();
    extra.push(&text);
    let expected = ((ARGV_MAX as i32) << 16) | ARGV_BYTES_MAX as i32;
    expect_child_status("arg_stats", &extra, expected)?;
    let longer = "x".repeat(last + 1);
    *extra.last_mut().ok_or("no arguments")? = &longer;
    let mut argv = fixed.to_vec();
    argv.extend_from_slice(&extra);
    let result = process::spawn("usertests", &argv);
    check!(result == Err(Errno(E2BIG)), "spawn with ARGV_BYTES_MAX + 1 argument bytes returned {result:?}");
    Ok(())
}

fn spawn_limit() -> Outcome {
    let before = info()?;
    let frames = system_frames()?;
    let (children, errno) = fill_process_table()?;
    let again = process::spawn("usertests", &["usertests", "--child", "exit_with", "0"]);
    let full = info()?.processes;
    kill_and_reap(&children)?;
    let expected = before.max_processes as usize - before.processes as usize;
    check!(errno == Errno(EAGAIN), "spawn at the limit failed with {errno}, not EAGAIN");
    check!(children.len() == expected, "{} spawns succeeded before EAGAIN, expected {expected}", children.len());
    check!(again == Err(Errno(EAGAIN)), "a second spawn at the limit returned {again:?}");
    check!(full == before.max_processes, "sysinfo counted {full} processes at the limit");
    let after = info()?;
    check!(
        after.processes == before.processes,
        "{} processes after reaping, {} before",
        after.processes,
        before.processes
    );
    // Not more than before: `fs` may let go meanwhile of what it held for the spawns before
    // this case (on a loaded host, 38 objects before and 36 after).
    check!(
        after.kernel_objects <= before.kernel_objects,
        "{} kernel objects after reaping, {} before",
        after.kernel_objects,
        before.kernel_objects
    );
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after reaping", frames.saturating_sub(frames_after));
    Ok(())
}

fn spawn_bomb() -> Outcome {
    let processes = info()?.processes;
    let frames = system_frames()?;
    let ended = run_child("bomb", &["6"])?;
    // Whether the table fills depends on how fast the host runs the bomb (on a loaded host
    // its leaves can end before it does); `spawn_limit` checks the refusal itself. Here: no
    // spawn fails any other way, and everything comes back.
    check!(
        ended.status >= 0 && ended.fault().is_none(),
        "the bomb {} (0 or more: spawns refused with EAGAIN or ENOMEM; negative: another error)",
        Ending(ended)
    );
    let after = info()?.processes;
    check!(after == processes, "{after} processes after the bomb, {processes} before");
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after the bomb", frames.saturating_sub(frames_after));
    Ok(())
}

/// A grandchild whose parent has ended keeps that parent's pid (`getppid` and its row say
/// so); nothing is given to this process, which holds no handle to it.
fn orphan_keeps_its_parent_pid() -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let send = endpoint.handle().duplicate(rights::DUPLICATE | rights::SEND).context("handle_duplicate")?;
    let parent =
        spawn_with_handles("orphan_parent", &["orphan_grandchild"], &[0, 1, 2, send.raw() as u32, own_image() as u32])?;
    drop(send);
    let ended = finish_within(parent, "orphan_parent")?;
    check!(ended.status > 0 && ended.fault().is_none(), "orphan_parent {}", Ending(ended));
    let grandchild = ended.status as Pid;
    let mut room = [0u8; 0];
    let request = endpoint.recv(&mut room, CHILD_LIMIT.as_nanos() as u64).context("recv of the orphan's report")?;
    let row = Table::read()?.find(grandchild).copied();
    let nothing_here = sys::wait(None);
    drop(request.reply);
    wait_until_gone(grandchild, "the orphan")?;
    let [first_parent, ..] = request.message.words;
    check!(first_parent == u64::from(parent.pid), "the orphan first saw parent {first_parent}, not {}", parent.pid);
    check!(
        request.message.label == u64::from(parent.pid),
        "after its parent ended, the orphan's getppid returned {}, not {}",
        request.message.label,
        parent.pid
    );
    let row = row.ok_or("the orphan was not in the process table while it waited for the reply")?;
    check!(row.parent == parent.pid, "the orphan's row names parent {}, not {}", row.parent, parent.pid);
    check!(nothing_here == Err(Errno(ECHILD)), "wait for any process here returned {nothing_here:?}: the orphan came to this process");
    Ok(())
}

/// An orphan that ends leaves the table and its object at once: nobody holds a handle to it,
/// and there is nothing for anyone to wait for.
fn orphan_goes_to_nobody() -> Outcome {
    let objects = live_objects()?;
    let parent = spawn_child("orphan_parent", &["exit_after", "50", "0"])?;
    let ended = finish_within(parent, "orphan_parent")?;
    check!(ended.status > 0 && ended.fault().is_none(), "orphan_parent {}", Ending(ended));
    let grandchild = ended.status as Pid;
    let waited = sys::wait(None);
    wait_until_gone(grandchild, "the orphan")?;
    check!(waited == Err(Errno(ECHILD)), "wait for any process returned {waited:?} while the orphan ran");
    expect_objects_back(objects, "after the orphan ended")
}

/// Where a `spin_window` pair starts after now, and how long it lasts: wide, so that a
/// spinner a loaded host starts late still runs inside it.
const WINDOW_START_NS: u64 = 100 * MS;
const WINDOW_NS: u64 = 500 * MS;

fn preemption() -> Outcome {
    let start = now() + WINDOW_START_NS;
    let end = start + WINDOW_NS;
    let (start_text, end_text) = (format!("{start}"), format!("{end}"));
    let first = spawn_child("spin_window", &[&start_text, &end_text])?;
    let second = spawn_child("spin_window", &[&start_text, &end_text])?;
    let asked = end + 20 * MS - now();
    let before = now();
    let slept = sys::sleep_ns(asked).context("sleep");
    let elapsed = now() - before;
    let endings = (wait_for(first)?, wait_for(second)?);
    slept?;
    check!(
        elapsed <= asked + HANG_NS,
        "the parent asked for {} ms of sleep and got the CPU back after {} ms",
        asked / MS,
        elapsed / MS
    );
    // Each spinner exits 0 when it made progress in the shared window.
    expect_exit("the first spinner", endings.0, 0)?;
    expect_exit("the second spinner", endings.1, 0)?;
    Ok(())
}

fn preemption_with_interrupts_cleared() -> Outcome {
    let child = spawn_child("interrupts_off_spinner", &[])?;
    sleep_ms(5)?;
    let before = now();
    let slept = sleep_ms(30);
    let elapsed = now() - before;
    let state = state_of(child.pid)?;
    sys::kill(child).context("kill of the spinner")?;
    let ended = wait_for(child)?;
    slept?;
    // The spinner exits 2 at once if `popfq` cleared IF.
    expect_exit("the spinner", ended, KILLED)?;
    // Running on another CPU, or waiting for this one.
    check!(matches!(state, Some(ProcessState::Ready | ProcessState::Running)), "the spinner was not runnable: {state:?}");
    check!(elapsed <= 30 * MS + HANG_NS, "a 30 ms sleep took {} ms next to the spinner", elapsed / MS);
    Ok(())
}

/// A sleep never ends more than a tick early (the clock is read between ticks), and ends.
/// How late it ends depends on the host's load under TCG, so that is not judged here.
fn sleep_never_ends_early() -> Outcome {
    let tick = 1_000_000_000 / u64::from(info()?.timer_hz);
    for duration in [MS, 2 * MS, 5 * MS, 10 * MS, 25 * MS] {
        let start = now();
        sys::sleep_ns(duration).context("sleep")?;
        let slept = now() - start;
        check!(slept + tick >= duration, "sleep({} ms) returned after {slept} ns, early", duration / MS);
        check!(slept < duration + HANG_NS, "sleep({} ms) returned after {slept} ns, hung", duration / MS);
    }
    Ok(())
}

fn sleep_zero() -> Outcome {
    let start = now();
    expect_value("sleep(0)", call(SLEEP, [0; 6]), 0)?;
    expect_value("sleep(1 ns)", call(SLEEP, [1, 0, 0, 0, 0, 0]), 0)?;
    let elapsed = now() - start;
    check!(elapsed < HANG_NS, "sleep(0) and sleep(1 ns) took {elapsed} ns");
    Ok(())
}

fn sleep_huge_is_killable() -> Outcome {
    let child = spawn_child("sleep_ns", &[&format!("{}", u64::MAX)])?;
    let blocked = wait_until(CHILD_LIMIT, || Ok(state_of(child.pid)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "a sleep of u64::MAX ns never blocked");
    Ok(())
}
