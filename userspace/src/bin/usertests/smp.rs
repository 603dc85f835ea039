//! Several CPUs: what holds only when processes really run at the same time. Each case asks
//! `sysinfo` how many CPUs there are and checks what must hold with that many: with two or
//! more, that processes ran on different CPUs at once (two spinners use two CPUs' worth of
//! time, a kill interrupts a process running elsewhere, IPC and shared memory work between
//! partners on different CPUs, a page unmapped on one CPU is gone on another); with one, what
//! one CPU allows (the spinners share it, the partners take turns, nothing is ever seen on
//! another CPU, the unmapped page faults on the CPU that unmapped it). So the suite passes
//! at every CPU count, and a kernel that ran one process at a time fails it with two. With
//! one CPU each case prints that it checked the one-CPU outcome, since "another CPU" was
//! not exercised. Timing bounds are hang limits ([`HANG_LIMIT`]): how fast a kill reaches
//! another CPU depends on the host's load under TCG, so it is printed, not judged.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::ProcessState;
use abi::fault::{PF_USER, PF_WRITE};
use abi::status::KILLED;
use userlib::check;
use userlib::ipc::{Endpoint, Message, SharedMemory};
use userlib::sys::{self, Child};
use userlib::testing::{Case, Context, Expected, Helper, Outcome};
use userlib::time::Duration;

use crate::common::*;
use crate::helpers::arg;

pub const CASES: &[Case] = userlib::cases![
    here spinners_use_a_cpu_each,
    here kill_ends_a_process_running_on_another_cpu,
    here ipc_ping_pong_across_cpus,
    here shared_memory_handshake_across_cpus,
    here page_unmapped_on_one_cpu_faults_on_another,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("cpu_reporting_server", helper_cpu_reporting_server),
    ("handshake_peer", helper_handshake_peer),
    ("touch_after_munmap_elsewhere", helper_touch_after_munmap_elsewhere),
];

/// The CPUs the machine runs.
fn cpus() -> Result<u32, String> {
    Ok(info()?.cpus)
}

/// The CPU this process ran its last `sysinfo` on (it may move at any time).
fn this_cpu() -> Result<u32, String> {
    Ok(info()?.current_cpu)
}

/// With one CPU, says that `case` checked the one-CPU outcome (`what`) rather than what it
/// names across CPUs.
fn note_one_cpu(cpus: u32, case: &str, what: &str) {
    if cpus == 1 {
        userlib::println!("  {case}: one CPU, so no other CPU to exercise: checked that {what}");
    }
}

/// The CPU time `children` have used so far, together.
fn cpu_time_of(children: &[Child]) -> Result<u64, String> {
    let table = Table::read()?;
    children.iter().try_fold(0, |total, child| {
        let row = table.find(child.pid).ok_or_else(|| format!("pid {} missing from the process table", child.pid))?;
        Ok(total + row.cpu_time_ns)
    })
}

/// Spins without a syscall for `ns` nanoseconds of uptime.
fn spin_ns(ns: u64) {
    let end = now() + ns;
    while now() < end {
        core::hint::spin_loop();
    }
}

/// Runs `body`, then kills and reaps `spinners` whatever it found; the body's failure comes
/// first.
fn with_spinners(spinners: &[Child], body: impl FnOnce() -> Outcome) -> Outcome {
    let outcome = body();
    let reaped = kill_and_reap(spinners);
    outcome.and(reaped)
}

/// Starts `count` spinners.
fn start_spinners(count: u32) -> Result<alloc::vec::Vec<Child>, String> {
    (0..count).map(|_| spawn_child("spinner", &[])).collect()
}

fn spinners_use_a_cpu_each() -> Outcome {
    let cpus = cpus()?;
    let spinners = start_spinners(2)?;
    with_spinners(&spinners, || {
        sleep_ms(20)?;
        let (start, used_before) = (now(), cpu_time_of(&spinners)?);
        sleep_ms(300)?;
        let (wall, used) = (now() - start, cpu_time_of(&spinners)? - used_before);
        let percent = used * 100 / wall.max(1);
        if cpus >= 2 {
            check!(
                used * 10 >= wall * 16,
                "with {cpus} CPUs two spinners used {used} ns of CPU time in {wall} ns ({percent}%, less than 160%)"
            );
        } else {
            check!(
                used * 10 >= wall * 8 && used * 100 <= wall * 105,
                "with one CPU two spinners used {used} ns of CPU time in {wall} ns ({percent}%, not about 100%)"
            );
        }
        Ok(())
    })
}

/// How long, with one CPU, the spinner is watched for never running on another CPU.
const ONE_CPU_WATCH: Duration = Duration::from_millis(200);

fn kill_ends_a_process_running_on_another_cpu() -> Outcome {
    let cpus = cpus()?;
    note_one_cpu(cpus, "kill_ends_a_process_running_on_another_cpu", "the spinner never ran on another CPU and the kill ended it");
    let spinner = spawn_child("spinner", &[])?;
    let elsewhere = wait_until(if cpus >= 2 { HANG_LIMIT } else { ONE_CPU_WATCH }, || {
        let me = this_cpu()?;
        let table = Table::read()?;
        Ok(table.find(spinner.pid).is_some_and(|row| row.state == ProcessState::Running as u32 && row.cpu != me))
    });
    let elsewhere = match elsewhere {
        Ok(seen) => seen,
        Err(error) => return kill_and_reap(&[spinner]).and(Err(error)),
    };
    if cpus >= 2 && !elsewhere {
        kill_and_reap(&[spinner])?;
        return Err(format!("with {cpus} CPUs the spinner was never seen running on another CPU in {HANG_LIMIT:?}"));
    }
    if cpus == 1 && elsewhere {
        kill_and_reap(&[spinner])?;
        return Err(String::from("with one CPU the spinner was seen running on another CPU"));
    }
    let start = now();
    sys::kill(spinner).context("kill of the spinner")?;
    let ended = wait_for(spinner)?;
    let took = now() - start;
    expect_exit("the spinner", ended, KILLED)?;
    check!(took < HANG_NS, "killing a spinner took {took} ns to its end");
    Ok(())
}

/// Round trips of [`ipc_ping_pong_across_cpus`].
const PING_PONG_ROUNDS: u64 = 200;
/// How long the server spins after each reply before it receives again, so that the
/// client's next call finds it busy and the two stay on their CPUs.
const SERVER_WORK_NS: u64 = 100_000;
/// The label that tells the `cpu_reporting_server` to exit.
const STOP_LABEL: u64 = 0;

/// `cpu_reporting_server`: receives on its handle 3 and answers each call at once with the
/// label plus one, the first word, and the CPU it ran the answer on; then spins for
/// [`SERVER_WORK_NS`]. A call with [`STOP_LABEL`] is answered and ends it with status 0.
fn helper_cpu_reporting_server(_: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    loop {
        let Ok(request) = endpoint.recv(&mut [], abi::ipc::FOREVER) else { return 1 };
        let Some(reply) = request.reply else { return 2 };
        let Ok(info) = sys::sysinfo() else { return 3 };
        let message = request.message;
        let answer = Message::new(message.label + 1, [message.words[0], u64::from(info.current_cpu), 0, 0]);
        if reply.send(&answer).is_err() {
            return 4;
        }
        if message.label == STOP_LABEL {
            return 0;
        }
        spin_ns(SERVER_WORK_NS);
    }
}

fn ipc_ping_pong_across_cpus() -> Outcome {
    let cpus = cpus()?;
    let endpoint = endpoint()?;
    let server = spawn_with_handles("cpu_reporting_server", &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let mut across = 0;
    let mut outcome: Outcome = Ok(());
    for round in 1..=PING_PONG_ROUNDS {
        let word = round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let answer = match endpoint.call(&Message::new(round, [word, 0, 0, 0])).context("call") {
            Ok(answer) => answer,
            Err(error) => {
                outcome = Err(format!("round {round}: {error}"));
                break;
            }
        };
        if answer.label != round + 1 || answer.words[0] != word {
            outcome = Err(format!("round {round}: answered {answer:?} to label {round} and word {word:#x}"));
            break;
        }
        across += u64::from(this_cpu()? != answer.words[1] as u32);
    }
    let stopped = endpoint.call(&Message::new(STOP_LABEL, [0; 4])).context("the stop call");
    let ended = finish_within(server, "the server")?;
    outcome?;
    stopped?;
    expect_exit("the server", ended, 0)?;
    if cpus >= 2 {
        // At least one: how many depends on when the host runs each guest CPU (73 of 200
        // with the host loaded, most of them when it is quiet).
        check!(across >= 1, "with {cpus} CPUs none of {PING_PONG_ROUNDS} answers came from another CPU than the caller's");
    } else {
        check!(across == 0, "with one CPU {across} answers came from another CPU");
    }
    note_one_cpu(cpus, "ipc_ping_pong_across_cpus", "every answer came from the caller's CPU");
    Ok(())
}

/// Rounds of [`shared_memory_handshake_across_cpus`].
const HANDSHAKE_ROUNDS: u64 = 200;
/// Words of data written in each round, after the three control words.
const HANDSHAKE_DATA_WORDS: usize = 500;
/// The control words: the round the data is for (0: none yet, `u64::MAX`: stop), the last
/// round the peer checked, and the CPU it checked it on (`u64::MAX`: the data was wrong).
const ROUND: usize = 0;
const CHECKED: usize = 1;
const PEER_CPU: usize = 2;
const DATA: usize = 3;
const BAD_DATA: u64 = u64::MAX;

/// The data word `index` of `round`.
fn handshake_word(round: u64, index: usize) -> u64 {
    round.wrapping_mul(0x0100_0000_01b3) ^ (index as u64).wrapping_mul(0x9e37_79b9)
}

/// The page's words, shared with the other process.
///
/// # Safety
/// `address` must be a page mapped read-write for as long as the slice is used.
unsafe fn shared_words<'a>(address: u64) -> &'a [AtomicU64] {
    // SAFETY: forwarded to the caller; `AtomicU64` has the layout of `u64`, and every access
    // from both processes goes through atomics.
    unsafe { core::slice::from_raw_parts(address as *const AtomicU64, (PAGE / 8) as usize) }
}

/// Waits, yielding (with one CPU the partner needs it), until `word` holds `value`.
fn wait_for_word(word: &AtomicU64, value: u64, what: &str) -> Outcome {
    let deadline = now() + HANG_NS;
    while word.load(Ordering::Acquire) != value {
        check!(now() < deadline, "{what} did not reach {value} in {HANG_LIMIT:?}");
        sys::yield_now();
    }
    Ok(())
}

/// `handshake_peer`: maps its handle 3 (one page of shared memory) and, for each round the
/// page announces, checks the round's data and reports the CPU it checked it on; ends with 0
/// when told to stop, 2 if the page could not be mapped, 3 if a round never came.
fn helper_handshake_peer(_: &[&str]) -> i32 {
    let Ok(address) = SharedMemory::from_raw(3).map(0, RW) else { return 2 };
    // SAFETY: the page was just mapped read-write and stays mapped until the process ends.
    let words = unsafe { shared_words(address) };
    let mut last = 0;
    loop {
        let deadline = now() + HANG_NS;
        let round = loop {
            let round = words[ROUND].load(Ordering::Acquire);
            if round != last {
                break round;
            }
            if now() > deadline {
                return 3;
            }
            sys::yield_now();
        };
        if round == u64::MAX {
            return 0;
        }
        let intact = (0..HANDSHAKE_DATA_WORDS)
            .all(|index| words[DATA + index].load(Ordering::Relaxed) == handshake_word(round, index));
        let cpu = match sys::sysinfo() {
            Ok(info) if intact => u64::from(info.current_cpu),
            _ => BAD_DATA,
        };
        words[PEER_CPU].store(cpu, Ordering::Relaxed);
        words[CHECKED].store(round, Ordering::Release);
        last = round;
    }
}

fn shared_memory_handshake_across_cpus() -> Outcome {
    let cpus = cpus()?;
    let memory = SharedMemory::create(1).context("memory_create")?;
    let address = memory.map(0, RW).context("memory_map")?;
    // SAFETY: mapped read-write above; unmapped only after the last use of `words`.
    let words = unsafe { shared_words(address) };
    let peer = spawn_with_handles("handshake_peer", &[], &[0, 1, 2, memory.handle().raw() as u32])?;
    let mut across = 0;
    let rounds: Outcome = (|| {
        for round in 1..=HANDSHAKE_ROUNDS {
            for index in 0..HANDSHAKE_DATA_WORDS {
                words[DATA + index].store(handshake_word(round, index), Ordering::Relaxed);
            }
            words[ROUND].store(round, Ordering::Release);
            wait_for_word(&words[CHECKED], round, "the peer's checked round")?;
            let peer_cpu = words[PEER_CPU].load(Ordering::Relaxed);
            check!(peer_cpu != BAD_DATA, "round {round}: the peer did not see the data written for it");
            across += u64::from(peer_cpu != u64::from(this_cpu()?));
        }
        Ok(())
    })();
    words[ROUND].store(u64::MAX, Ordering::Release);
    let ended = finish_within(peer, "the peer")?;
    unmap(address, 1)?;
    rounds?;
    expect_exit("the peer", ended, 0)?;
    if cpus >= 2 {
        check!(
            across * 2 >= HANDSHAKE_ROUNDS,
            "with {cpus} CPUs the peer checked only {across} of {HANDSHAKE_ROUNDS} rounds on another CPU than the writer's"
        );
    } else {
        check!(across == 0, "with one CPU the peer checked {across} rounds on another CPU than the writer's");
    }
    note_one_cpu(cpus, "shared_memory_handshake_across_cpus", "the peer checked every round on the writer's CPU");
    Ok(())
}

/// Where `touch_after_munmap_elsewhere` maps its page.
const TOUCHED_PAGE: u64 = FIXED_BASE;

/// Yields until this process runs on a CPU `wanted` accepts, for at most [`HANG_LIMIT`];
/// whether it did.
fn yield_until_on(wanted: impl Fn(u32) -> bool) -> Result<bool, String> {
    let deadline = now() + HANG_NS;
    while now() < deadline {
        if wanted(this_cpu()?) {
            return Ok(true);
        }
        sys::yield_now();
    }
    Ok(false)
}

/// `touch_after_munmap_elsewhere MOVE`: maps a page and writes it (its translation is now in
/// this CPU's TLB); with MOVE 1, moves to another CPU (the suite keeps every CPU busy so
/// that a yield lands anywhere) and unmaps the page there, then moves back to the first CPU
/// and writes the page again, which must fault. Exits 2 if a move did not happen in [`HANG_LIMIT`], 3
/// if the write did not fault, [`errno_status`] if a call failed.
fn helper_touch_after_munmap_elsewhere(args: &[&str]) -> i32 {
    let moving = arg::<u32>(args, 0) == 1;
    let run = || -> Result<i32, String> {
        let page = map_page_at(TOUCHED_PAGE)?;
        // SAFETY: the page was just mapped read-write for this process.
        unsafe { core::ptr::write_volatile(page as *mut u8, 1) };
        let first = this_cpu()?;
        if moving && !yield_until_on(|cpu| cpu != first)? {
            return Ok(2);
        }
        unmap(page, 1)?;
        if moving && !yield_until_on(|cpu| cpu == first)? {
            return Ok(2);
        }
        poke(page);
        Ok(3)
    };
    run().unwrap_or_else(|error| {
        userlib::eprintln!("touch_after_munmap_elsewhere: {error}");
        1
    })
}

fn page_unmapped_on_one_cpu_faults_on_another() -> Outcome {
    let cpus = cpus()?;
    // One more runnable process than CPUs, so the child moves from CPU to CPU as it yields.
    let spinners = start_spinners(if cpus >= 2 { cpus } else { 0 })?;
    with_spinners(&spinners, || {
        let moving = if cpus >= 2 { "1" } else { "0" };
        let ended = finish_within(spawn_child("touch_after_munmap_elsewhere", &[moving])?, "the child")?;
        check!(ended != abi::ExitInfo::exited(2), "with {cpus} CPUs the child never moved to another CPU and back in {HANG_LIMIT:?}");
        note_one_cpu(cpus, "page_unmapped_on_one_cpu_faults_on_another", "the page unmapped on the only CPU faults there");
        Expected::page_fault(TOUCHED_PAGE).at(poke_site()).error(PF_USER | PF_WRITE).check(&ended)
    })
}
