//! Blocking and waking: `yield`, sleeps, waits for an exit, and IPC waits with a direct
//! hand-off to the partner that was just handed a message.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::mm::kernel_stack;
use crate::task::process::{BlockReason, Pid, ProcessObject, State};

use super::{Killed, NEXT_WAKE_NS, Scheduler, after_switch, switch_to_chosen, with_scheduler};

/// Puts the running process at the back of the run queue and runs the next one.
pub fn yield_now() {
    switch_to_chosen(with_scheduler(|scheduler| {
        let slot = scheduler.current_slot().expect("yield with no current process");
        scheduler.current_process().state = State::Ready;
        scheduler.push_ready(slot);
        scheduler.choose_next()
    }));
}

/// Blocks the running process for `reason` unless `done` (checked under the lock, so no
/// wake-up is lost between the check and blocking) says the wait is over. Returns
/// `Err(Killed)` if the process was killed.
fn block_unless(reason: BlockReason, done: impl FnMut() -> bool) -> Result<(), Killed> {
    block_unless_handing_to(reason, None, done)
}

/// [`block_unless`], handing the CPU to `partner` (a process just handed a message) if this
/// process does block; if it does not, the partner is simply made ready. Blocking and
/// choosing what runs next happen in one critical section.
fn block_unless_handing_to(
    reason: BlockReason,
    mut partner: Option<Handoff>,
    mut done: impl FnMut() -> bool,
) -> Result<(), Killed> {
    loop {
        let outcome = with_scheduler(|scheduler| {
            let partner = partner.take().and_then(|handoff| handoff.claim(scheduler));
            let finished = if done() {
                Some(Ok(None))
            } else if scheduler.current_process().killed {
                Some(Err(Killed))
            } else {
                None
            };
            if let Some(result) = finished {
                if let Some(slot) = partner {
                    scheduler.make_ready_at(slot);
                }
                return result;
            }
            scheduler.current_process().state = State::Blocked(reason);
            let (BlockReason::Sleep { until_ns } | BlockReason::Ipc { until_ns } | BlockReason::WaitProcess { until_ns }) = reason;
            NEXT_WAKE_NS.fetch_min(until_ns, Ordering::Relaxed);
            Ok(Some(scheduler.choose_next_preferring(partner)))
        });
        match outcome? {
            None => return Ok(()),
            Some(Some(to)) => {
                kernel_stack::switch_to(to);
                after_switch();
                // Woken: most often the wait is over, which needs no lock to see.
                if done() {
                    return Ok(());
                }
            }
            Some(None) => {}
        }
    }
}

/// How a blocking IPC operation's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// A partner delivered (the flag is set).
    Ready,
    /// The process was killed.
    Killed,
    /// The deadline passed.
    TimedOut,
}

/// Blocks the running process until `ready` is set, it is killed, or the clock reaches
/// `deadline` (nanoseconds since boot; `None`: never). If `partner` (a process just handed a
/// message) is ready, it runs next, without a trip through the run queue.
pub fn block_for_ipc(ready: &AtomicBool, deadline: Option<u64>, partner: Option<Handoff>) -> BlockOutcome {
    let until_ns = deadline.unwrap_or(u64::MAX);
    let mut outcome = BlockOutcome::Ready;
    let result = block_unless_handing_to(BlockReason::Ipc { until_ns }, partner, || {
        if ready.load(Ordering::Acquire) {
            return true;
        }
        if deadline.is_some() && crate::time::uptime_ns() >= until_ns {
            outcome = BlockOutcome::TimedOut;
            return true;
        }
        false
    });
    match result {
        Ok(()) => outcome,
        Err(Killed) => BlockOutcome::Killed,
    }
}

/// Makes a blocked process ready (a partner delivered to it).
pub fn wake(process: &ProcessObject) {
    drop(Handoff::new(process));
}

/// A blocked process that was just handed what it waited for. Given to [`block_for_ipc`], it
/// runs next, without a trip through the run queue; dropped, it is made ready like any other
/// woken process.
#[must_use = "dropping a handoff just wakes the process"]
#[derive(Debug)]
pub struct Handoff {
    slot: usize,
    pid: Pid,
    claimed: bool,
}

impl Handoff {
    /// A handoff to `process`.
    pub fn new(process: &ProcessObject) -> Self {
        Self { slot: process.slot, pid: process.pid, claimed: false }
    }

    /// The process's slot, if it is still in the table; the handoff is used up either way.
    fn claim(mut self, scheduler: &Scheduler) -> Option<usize> {
        self.claimed = true;
        scheduler.processes.at(self.slot).is_some_and(|process| process.pid == self.pid).then_some(self.slot)
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if !self.claimed {
            with_scheduler(|scheduler| {
                if scheduler.processes.at(self.slot).is_some_and(|process| process.pid == self.pid) {
                    scheduler.make_ready_at(self.slot);
                }
            });
        }
    }
}

/// Sleeps for at least `ns` nanoseconds (woken by the first timer interrupt after that).
pub fn sleep_ns(ns: u64) -> Result<(), Killed> {
    let until_ns = crate::time::uptime_ns().saturating_add(ns);
    block_unless(BlockReason::Sleep { until_ns }, || crate::time::uptime_ns() >= until_ns)
}

/// Blocks the running process until some process ends (every waiter is woken by every
/// end and looks again), the clock reaches `deadline` (`None`: never), or it is killed.
pub fn wait_for_an_exit(deadline: Option<u64>) -> Result<(), Killed> {
    let until_ns = deadline.unwrap_or(u64::MAX);
    let mut blocked_once = false;
    block_unless(BlockReason::WaitProcess { until_ns }, || {
        let done = blocked_once || crate::time::uptime_ns() >= until_ns;
        blocked_once = true;
        done
    })
}
