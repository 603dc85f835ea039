//! The process life cycle: exit statuses, `wait` for any child, a given child, none, a
//! grandchild; `kill` of running, sleeping, reading, waiting, unstarted and exited children;
//! `spawn` and its limits; orphans; preemption; `sleep`.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use abi::errno::{E2BIG, EAGAIN, ECHILD, EINVAL, ENOENT, EPERM, ESRCH};
use abi::status::KILLED;
use abi::syscall::{KILL, SLEEP, WAIT};
use abi::{ARGV_BYTES_MAX, ARGV_MAX, ExitInfo, ProcessState};
use userlib::check;
use userlib::process::Ending;
use userlib::sys::{self, Errno, Pid};
use userlib::testing::{Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here exit_status,
    here wait_any_collects_all,
    here wait_for_specific_child,
    here wait_no_children,
    here wait_non_child,
    here wait_grandchild,
    here wait_null_status,
    here kill_spinning_child,
    here kill_sleeping_child,
    here kill_reading_child,
    here kill_waiting_child,
    here kill_unstarted_child,
    here kill_zombie,
    here kill_invalid_pid,
    here kill_init_refused,
    here kill_self,
    here zombie_in_process_list,
    here pids_increase,
    here spawn_missing_program,
    here spawn_passes_arguments,
    here spawn_argument_limits,
    here spawn_limit,
    here spawn_bomb,
    here orphan_reparented,
    here orphan_reaped_by_init,
    here preemption,
    here preemption_with_interrupts_cleared,
    here sleep_accuracy,
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
        let (pid, info) = sys::wait(None).context("wait for any child")?;
        let position =
            expected.iter().position(|&(child, _)| child == pid).ok_or(format!("wait returned unknown pid {pid}"))?;
        let (_, wanted) = expected.swap_remove(position);
        expect_exit(&format!("pid {pid}"), info, wanted)?;
    }
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait after reaping every child did not return ECHILD");
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
    check!(sys::wait(None) == Err(Errno(ECHILD)), "wait for any child without children");
    check!(sys::wait(Some(12345)) == Err(Errno(ECHILD)), "wait for pid 12345 without children");
    Ok(())
}

fn wait_non_child() -> Outcome {
    let me = u64::from(sys::getpid());
    let parent = u64::from(sys::getppid());
    let mut info = ExitInfo::exited(-1);
    let out = &raw mut info as u64;
    let mut pids = vec![(me, "self"), (u64::from(u32::MAX), "u32::MAX"), (1 << 32 | me, "own pid + 2^32")];
    if parent != 0 {
        pids.push((parent, "the parent"));
    }
    for (pid, what) in pids {
        expect_errno(&format!("wait for {what}"), call(WAIT, [pid, out, 0, 0, 0, 0]), ECHILD)?;
    }
    for pid in [0, -2i64 as u64, i64::MIN as u64] {
        expect_errno(&format!("wait for pid {}", pid as i64), call(WAIT, [pid, out, 0, 0, 0, 0]), EINVAL)?;
    }
    check!(info == ExitInfo::exited(-1), "refused waits wrote {info:?}");
    Ok(())
}

/// Starts `parent_of_sleeper` and finds the sleeper it started: (child, grandchild).
fn start_parent_of_sleeper() -> Result<(Pid, Pid), String> {
    let child = spawn_child("parent_of_sleeper", &[])?;
    let mut grandchild = None;
    let found = wait_until(CHILD_LIMIT, || {
        grandchild = Table::read()?.rows().iter().find(|row| row.parent == child).map(|row| row.pid);
        Ok(grandchild.is_some())
    })?;
    match grandchild {
        Some(grandchild) if found => Ok((child, grandchild)),
        _ => Err(String::from("parent_of_sleeper did not start its sleeper")),
    }
}

/// Kills an orphaned grandchild (now pid 1's) and reaps it if this process is pid 1.
fn dispose_of_orphan(pid: Pid) -> Outcome {
    sys::kill(pid).context("kill of the orphan")?;
    if sys::getpid() == 1 {
        expect_exit("the orphan", wait_for(pid)?, KILLED)?;
    }
    Ok(())
}

fn wait_grandchild() -> Outcome {
    let (child, grandchild) = start_parent_of_sleeper()?;
    let refused = sys::wait(Some(grandchild));
    sys::kill(grandchild).context("kill of the grandchild")?;
    let ended = wait_for(child)?;
    check!(refused == Err(Errno(ECHILD)), "wait for a grandchild returned {refused:?}");
    expect_exit("parent_of_sleeper", ended, 0)?;
    Ok(())
}

fn wait_null_status() -> Outcome {
    let child = spawn_child("exit_with", &["9"])?;
    let reaped = call(WAIT, [u64::from(child), 0, 0, 0, 0, 0]);
    expect_value("wait with a null status pointer", reaped, i64::from(child))?;
    check!(state_of(child)?.is_none(), "the child is still in the table after wait");
    Ok(())
}

fn kill_spinning_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    sleep_ms(5)?;
    check!(state_of(child)? == Some(ProcessState::Ready), "the spinner is not runnable");
    kill_and_reap(&[child])
}

fn kill_sleeping_child() -> Outcome {
    let child = spawn_child("sleeper", &["forever"])?;
    let started = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    let start = now();
    kill_and_reap(&[child])?;
    let elapsed = now() - start;
    check!(started, "the sleeper never blocked");
    check!(elapsed < 100 * MS, "killing a sleeper took {} ms", elapsed / MS);
    Ok(())
}

fn kill_reading_child() -> Outcome {
    let child = spawn_child("console_reader", &[])?;
    let blocked = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "the reader never blocked in read");
    Ok(())
}

fn kill_waiting_child() -> Outcome {
    let (child, grandchild) = start_parent_of_sleeper()?;
    let waiting = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Blocked)));
    let killed = kill_and_reap(&[child]);
    let orphan = dispose_of_orphan(grandchild);
    check!(waiting?, "parent_of_sleeper never blocked in wait");
    killed.and(orphan)
}

fn kill_unstarted_child() -> Outcome {
    let child = spawn_child("spinner", &[])?;
    kill_and_reap(&[child])
}

fn kill_zombie() -> Outcome {
    let child = spawn_child("exit_with", &["3"])?;
    let zombie = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Zombie)))?;
    let killed = sys::kill(child);
    let ended = wait_for(child)?;
    check!(zombie, "the child never became a zombie");
    check!(killed == Err(Errno(ESRCH)), "kill of a zombie returned {killed:?}");
    expect_exit("the zombie", ended, 3)?;
    Ok(())
}

fn kill_invalid_pid() -> Outcome {
    let me = u64::from(sys::getpid());
    for (pid, what) in [
        (0, "0"),
        (999_999, "999999"),
        (u64::from(u32::MAX), "u32::MAX"),
        (1 << 32 | me, "own pid + 2^32"),
        (u64::MAX, "-1"),
    ] {
        expect_errno(&format!("kill({what})"), call(KILL, [pid, 0, 0, 0, 0, 0]), ESRCH)?;
    }
    Ok(())
}

fn kill_init_refused() -> Outcome {
    expect_errno("kill(1)", call(KILL, [1, 0, 0, 0, 0, 0]), EPERM)
}

fn kill_self() -> Outcome {
    expect_child_status("kill_self", &[], KILLED)
}

fn zombie_in_process_list() -> Outcome {
    let me = sys::getpid();
    let child = spawn_child("exit_with", &["0"])?;
    let zombie = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Zombie)))?;
    let table = Table::read()?;
    let row = table.find(child).copied();
    wait_for(child)?;
    check!(zombie, "the exited child never showed as a zombie");
    let row = row.ok_or("the zombie has no row")?;
    check!(row.parent == me, "the zombie's parent is {}", row.parent);
    check!(row.memory_bytes == 0, "the zombie still holds {} bytes of memory", row.memory_bytes);
    check!(state_of(child)?.is_none(), "the reaped child is still listed");
    Ok(())
}

fn pids_increase() -> Outcome {
    let first = spawn_child("exit_with", &["0"])?;
    wait_for(first)?;
    let second = spawn_child("exit_with", &["0"])?;
    wait_for(second)?;
    check!(second > first, "pid {second} came after pid {first}");
    Ok(())
}

fn spawn_missing_program() -> Outcome {
    for name in ["no_such_program", "", "usertest", "usertests\0", "USERTESTS", "usertests "] {
        let argv = [user_str(name.as_bytes())];
        let result = raw_spawn(name.as_ptr() as u64, name.len() as u64, argv.as_ptr() as u64, 1);
        expect_errno(&format!("spawn({name:?})"), result, ENOENT)?;
    }
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
    let result = sys::spawn("usertests", &argv);
    check!(result == Err(Errno(E2BIG)), "spawn with ARGV_BYTES_MAX + 1 argument bytes returned {result:?}");
    Ok(())
}

fn spawn_limit() -> Outcome {
    let before = info()?;
    let frames = system_frames()?;
    let (pids, errno) = fill_process_table()?;
    let again = sys::spawn("usertests", &["usertests", "--child", "exit_with", "0"]);
    let full = info()?.processes;
    kill_and_reap(&pids)?;
    let expected = before.max_processes as usize - before.processes as usize;
    check!(errno == Errno(EAGAIN), "spawn at the limit failed with {errno}, not EAGAIN");
    check!(pids.len() == expected, "{} spawns succeeded before EAGAIN, expected {expected}", pids.len());
    check!(again == Err(Errno(EAGAIN)), "a second spawn at the limit returned {again:?}");
    check!(full == before.max_processes, "sysinfo counted {full} processes at the limit");
    let after = info()?;
    check!(
        after.processes == before.processes,
        "{} processes after reaping, {} before",
        after.processes,
        before.processes
    );
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after reaping", frames.saturating_sub(frames_after));
    Ok(())
}

fn spawn_bomb() -> Outcome {
    let processes = info()?.processes;
    let frames = system_frames()?;
    let ended = run_child("bomb", &["6"])?;
    check!(
        ended.status > 0 && ended.fault().is_none(),
        "the bomb {} (positive: EAGAINs seen; negative: another error)",
        Ending(ended)
    );
    let after = info()?.processes;
    check!(after == processes, "{after} processes after the bomb, {processes} before");
    let frames_after = system_frames()?;
    check!(frames_after == frames, "{} frames missing after the bomb", frames.saturating_sub(frames_after));
    Ok(())
}

fn orphan_reparented() -> Outcome {
    let me = sys::getpid();
    let parent = spawn_child("orphan_parent", &[])?;
    let ended = finish_within(parent, "orphan_parent")?;
    check!(ended.status > 0 && ended.fault().is_none(), "orphan_parent {}", Ending(ended));
    let grandchild = ended.status as Pid;
    let table = Table::read()?;
    let row = table.find(grandchild).ok_or("the orphan is gone before it could be checked")?;
    check!(row.parent == 1, "the orphan's parent is {}, not 1", row.parent);
    if me == 1 {
        let ended = wait_for(grandchild)?;
        check!(ended == ExitInfo::exited(0), "the orphan {} (a status is the getppid() it saw)", Ending(ended));
    } else {
        check!(sys::wait(Some(grandchild)) == Err(Errno(ECHILD)), "the orphan is still this process's child");
        let done = wait_until(CHILD_LIMIT, || {
            Ok(Table::read()?.find(grandchild).is_none_or(|row| row.state == ProcessState::Zombie as u32))
        })?;
        check!(done, "the orphan never finished");
    }
    Ok(())
}

/// Runs `usertests orphan_reparented` as a child suite, where the orphan's grandparent is not
/// pid 1; when this suite is pid 1, the orphan comes to it and must be reaped here, with the
/// status that says it saw pid 1 as its parent.
fn orphan_reaped_by_init() -> Outcome {
    let suite = sys::spawn("usertests", &["usertests", "orphan_reparented"]).context("spawn of a nested suite")?;
    expect_exit("the nested suite", finish_within(suite, "the nested suite")?, 0)?;
    if sys::getpid() != 1 {
        return Ok(());
    }
    let (orphan, ended) = sys::wait(None).context("reaping the nested suite's orphan")?;
    expect_exit(&format!("the nested suite's orphan {orphan}"), ended, 0)?;
    check!(sys::wait(None) == Err(Errno(ECHILD)), "more than one orphan was left");
    Ok(())
}

fn preemption() -> Outcome {
    let start = now() + 20 * MS;
    let end = start + 100 * MS;
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
        elapsed <= asked + 3 * SLICE_NS,
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
    let state = state_of(child)?;
    sys::kill(child).context("kill of the spinner")?;
    let ended = wait_for(child)?;
    slept?;
    // The spinner exits 2 at once if `popfq` cleared IF.
    expect_exit("the spinner", ended, KILLED)?;
    check!(state == Some(ProcessState::Ready), "the spinner was not runnable: {state:?}");
    check!(elapsed <= 30 * MS + 3 * SLICE_NS, "a 30 ms sleep took {} ms next to the spinner", elapsed / MS);
    Ok(())
}

fn sleep_accuracy() -> Outcome {
    let tick = 1_000_000_000 / u64::from(info()?.timer_hz);
    for duration in [MS, 2 * MS, 5 * MS, 10 * MS, 25 * MS] {
        let mut last = 0;
        let mut within = false;
        for _ in 0..3 {
            let start = now();
            sys::sleep_ns(duration).context("sleep")?;
            last = now() - start;
            check!(last + tick >= duration, "sleep({} ms) returned after {last} ns", duration / MS);
            if last <= duration + 2 * tick {
                within = true;
                break;
            }
        }
        check!(within, "sleep({} ms) took {last} ns in three tries, more than a tick late", duration / MS);
    }
    Ok(())
}

fn sleep_zero() -> Outcome {
    let start = now();
    expect_value("sleep(0)", call(SLEEP, [0; 6]), 0)?;
    expect_value("sleep(1 ns)", call(SLEEP, [1, 0, 0, 0, 0, 0]), 0)?;
    let elapsed = now() - start;
    check!(elapsed < 10 * MS, "sleep(0) and sleep(1 ns) took {elapsed} ns");
    Ok(())
}

fn sleep_huge_is_killable() -> Outcome {
    let child = spawn_child("sleep_ns", &[&format!("{}", u64::MAX)])?;
    let blocked = wait_until(CHILD_LIMIT, || Ok(state_of(child)? == Some(ProcessState::Blocked)))?;
    kill_and_reap(&[child])?;
    check!(blocked, "a sleep of u64::MAX ns never blocked");
    Ok(())
}
