//! Futexes: threads that sleep until the `u32` word at a user address changes, and the wakes
//! that end their sleep (`futex_wait`, `futex_wake`), the base of user-space mutexes and
//! condition variables.
//!
//! **Naming a word.** A word in a shared-memory object is named by the object and the offset
//! in it, so every process that maps the object (at any address) waits on the same word; any
//! other word is private to its process and named by the process and the address, since one
//! process is one address space. (Copy-on-write would replace a private page's frame, so a
//! frame never names a word.)
//!
//! **No lost wake-up.** `futex_wait` compares the word and queues the thread in one hold of
//! the waiters' lock, and `futex_wake` takes the same lock: a waker that changed the word
//! before the compare makes the wait return `EAGAIN`; one after it finds the thread queued.
//! The sleep itself is the IPC block on the thread's ready flag, which a wake sets before it
//! makes the thread ready, so a wake between the queueing and the block is seen too.
//!
//! **Leaving early.** A waiter killed or timed out takes itself off the queue. If a wake took
//! it off first (a waiter woken and killed before it returned counts as killed), that wake is
//! passed on to the next waiter of the word, so that a wake
//! meant for one waiter is never spent on a thread that is not coming back.
//!
//! Each thread waits on one word at most, so the waiters fit a fixed table of `MAX_THREADS`
//! places (no kernel heap at all), kept packed at its front in the order they came: a wake
//! looks at the waiters there are, oldest first, and nothing else.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use abi::errno::{EAGAIN, EINTR, ETIMEDOUT};
use spin::Mutex;

use super::Timeout;
use crate::mm::shared::SharedFrames;
use crate::syscall::usercopy::UserPtr;
use crate::task::process::Pid;
use crate::task::scheduler::{self, BlockOutcome, MAX_THREADS};
use crate::task::thread::ThreadObject;

/// What a futex word is (see the module comment).
#[derive(Debug)]
pub enum Word {
    /// A word in the process's own memory.
    Private {
        /// The process.
        pid: Pid,
        /// The word's address.
        address: u64,
    },
    /// A word in a shared-memory object.
    Shared {
        /// The object (kept alive while a thread waits on it).
        frames: Arc<SharedFrames>,
        /// The word's byte offset in it.
        offset: u64,
    },
}

impl Word {
    fn is(&self, other: &Word) -> bool {
        match (self, other) {
            (Self::Private { pid: a, address: x }, Self::Private { pid: b, address: y }) => a == b && x == y,
            (Self::Shared { frames: a, offset: x }, Self::Shared { frames: b, offset: y }) => Arc::ptr_eq(a, b) && x == y,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Waiter {
    word: Word,
    thread: Arc<ThreadObject>,
}

/// Every waiting thread, oldest first, in `places[..count]`.
struct Waiters {
    places: [Option<Waiter>; MAX_THREADS],
    count: usize,
}

impl Waiters {
    /// Queues `waiter` last. There is room: each thread in the table waits at most once.
    fn push(&mut self, waiter: Waiter) {
        assert!(self.count < MAX_THREADS, "more futex waiters than threads");
        self.places[self.count] = Some(waiter);
        self.count += 1;
    }

    /// Takes out the first waiter `matches` accepts, keeping the others in order.
    fn take_first(&mut self, matches: impl Fn(&Waiter) -> bool) -> Option<Waiter> {
        let index = self.places[..self.count].iter().position(|place| place.as_ref().is_some_and(&matches))?;
        self.places[index..self.count].rotate_left(1);
        self.count -= 1;
        self.places[self.count].take()
    }
}

static WAITERS: Mutex<Waiters> = Mutex::new(Waiters { places: [const { None }; MAX_THREADS], count: 0 });

/// `futex_wait`: unless the `u32` at `address` (the word `word` names, in the caller's
/// memory) differs from `expected` (`EAGAIN`), sleeps until a wake, the timeout
/// (`ETIMEDOUT`) or a kill (`EINTR`). `EFAULT` if the word is not readable.
pub fn wait(me: &Arc<ThreadObject>, word: Word, address: u64, expected: u32, timeout: Timeout) -> Result<(), i64> {
    {
        let mut waiters = WAITERS.lock();
        // Read under the lock (a copy never blocks): see "No lost wake-up".
        if UserPtr::<u32>::new(address).read()? != expected {
            return Err(EAGAIN);
        }
        if timeout == Timeout::Poll {
            return Err(ETIMEDOUT);
        }
        me.ipc_ready.store(false, Ordering::Release);
        waiters.push(Waiter { word, thread: me.clone() });
    }
    let mut outcome = scheduler::block_for_ipc(&me.ipc_ready, timeout.deadline(), None);
    if outcome == BlockOutcome::Ready && scheduler::current_thread_killed() {
        // Woken, but killed before it could return: it will never run the code the wake was
        // for, so the wake is passed on like a killed waiter's (see "Leaving early").
        outcome = BlockOutcome::Killed;
    }
    let result = match outcome {
        BlockOutcome::Ready => Ok(()),
        BlockOutcome::Killed | BlockOutcome::TimedOut => {
            let still_queued = WAITERS.lock().take_first(|waiter| waiter.thread.tid == me.tid);
            if still_queued.is_none() {
                // A wake took it off the queue already: pass that wake on.
                let woken_from = me.ipc.lock().futex_woken.take();
                if let Some(word) = woken_from {
                    wake(&word, 1);
                }
            }
            Err(if outcome == BlockOutcome::Killed { EINTR } else { ETIMEDOUT })
        }
    };
    me.ipc.lock().futex_woken = None;
    me.ipc_ready.store(false, Ordering::Release);
    result
}

/// `futex_wake`: wakes up to `count` threads waiting on `word`, oldest first; returns how
/// many it woke.
pub fn wake(word: &Word, count: u64) -> u64 {
    let mut woken = 0;
    let mut waiters = WAITERS.lock();
    while woken < count {
        let Some(waiter) = waiters.take_first(|waiter| waiter.word.is(word)) else { break };
        waiter.thread.ipc.lock().futex_woken = Some(waiter.word);
        waiter.thread.ipc_ready.store(true, Ordering::Release);
        // The scheduler's lock comes after this one in the lock order.
        scheduler::wake(&waiter.thread);
        woken += 1;
    }
    woken
}
