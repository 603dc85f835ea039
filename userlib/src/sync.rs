//! Locks for threads, built on futexes: [`Mutex`] (a `lock_api` mutex over [`RawMutex`]),
//! [`Condvar`] and [`Once`]. A thread that has to wait sleeps in the kernel (`futex_wait`)
//! instead of spinning, and is woken by the thread that lets go.
//!
//! ```ignore
//! use userlib::sync::{Condvar, Mutex};
//! static QUEUE: Mutex<u32> = Mutex::new(0);
//! static READY: Condvar = Condvar::new();
//! *QUEUE.lock() += 1;
//! READY.notify_one();
//! ```

use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

/// A mutex's word: 0 unlocked, 1 locked, 2 locked with (maybe) a thread asleep on it.
#[derive(Debug)]
pub struct RawMutex {
    state: AtomicU32,
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

// SAFETY: `lock` returns only once this thread changed the word from unlocked to locked (or
// contended), and `unlock` sets it back: one holder at a time, as `RawMutex` requires.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Self { state: AtomicU32::new(UNLOCKED) };

    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return;
        }
        // Marked contended from here on, so the holder's unlock wakes a sleeper.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // EAGAIN (the word changed before the kernel looked) and EINTR just loop.
            let _ = sys::futex_wait(&self.state, CONTENDED, abi::ipc::FOREVER);
        }
    }

    fn try_lock(&self) -> bool {
        self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            let _ = sys::futex_wake(&self.state, 1);
        }
    }
}

/// A mutex that puts waiting threads to sleep.
pub type Mutex<T> = lock_api::Mutex<RawMutex, T>;
/// What [`Mutex::lock`] returns.
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawMutex, T>;

/// A condition variable: threads wait on it with a [`Mutex`] held, and are woken by
/// [`notify_one`](Self::notify_one) or [`notify_all`](Self::notify_all). As everywhere,
/// a wake-up may be spurious: wait in a loop that checks the condition.
#[derive(Debug, Default)]
pub struct Condvar {
    /// Bumped by every notify, so a waiter that read it before letting the mutex go sleeps
    /// only if no notify came in between.
    sequence: AtomicU32,
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Self { sequence: AtomicU32::new(0) }
    }

    /// Lets `guard`'s mutex go, sleeps until a notify, and takes the mutex again.
    pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        let seen = self.sequence.load(Ordering::Acquire);
        MutexGuard::unlocked(guard, || {
            let _ = sys::futex_wait(&self.sequence, seen, abi::ipc::FOREVER);
        });
    }

    /// Like [`wait`](Self::wait), for at most `timeout_ns` nanoseconds; returns whether it
    /// gave up because the time ran out.
    pub fn wait_timeout<T>(&self, guard: &mut MutexGuard<'_, T>, timeout_ns: u64) -> bool {
        let seen = self.sequence.load(Ordering::Acquire);
        MutexGuard::unlocked(guard, || {
            matches!(sys::futex_wait(&self.sequence, seen, timeout_ns.max(1)), Err(sys::Errno(abi::errno::ETIMEDOUT)))
        })
    }

    /// Wakes one waiting thread.
    pub fn notify_one(&self) {
        self.sequence.fetch_add(1, Ordering::Release);
        let _ = sys::futex_wake(&self.sequence, 1);
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        self.sequence.fetch_add(1, Ordering::Release);
        let _ = sys::futex_wake(&self.sequence, u64::MAX);
    }
}

/// Runs a piece of initialisation exactly once, however many threads ask at once: the
/// others sleep until it is done.
#[derive(Debug, Default)]
pub struct Once {
    state: AtomicU32,
}

const INCOMPLETE: u32 = 0;
const RUNNING: u32 = 1;
const COMPLETE: u32 = 2;

impl Once {
    /// A `Once` that has not run.
    pub const fn new() -> Self {
        Self { state: AtomicU32::new(INCOMPLETE) }
    }

    /// Runs `init` if no call has run it yet; returns once it has run (here or in another
    /// thread).
    pub fn call_once(&self, init: impl FnOnce()) {
        if self.state.load(Ordering::Acquire) == COMPLETE {
            return;
        }
        if self.state.compare_exchange(INCOMPLETE, RUNNING, Ordering::Acquire, Ordering::Acquire).is_ok() {
            init();
            self.state.store(COMPLETE, Ordering::Release);
            let _ = sys::futex_wake(&self.state, u64::MAX);
            return;
        }
        while self.state.load(Ordering::Acquire) != COMPLETE {
            let _ = sys::futex_wait(&self.state, RUNNING, abi::ipc::FOREVER);
        }
    }

    /// Whether `call_once` has finished running its initialisation.
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }
}
