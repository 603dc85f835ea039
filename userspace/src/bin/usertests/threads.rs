//! Threads: several threads of one process run at once (on several CPUs), share its memory
//! and handles, block one at a time, end alone (`thread_exit`, a kill of the thread) or all
//! together (`exit`, a kill of the process, a fault); futexes and the locks built on them.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::errno::{EAGAIN, EINVAL, ETIMEDOUT};
use userlib::check;
use userlib::sync::{Condvar, Mutex, Once};
use userlib::sys;
use userlib::testing::{Context, Case, Outcome};
use userlib::thread;

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here threads_a_thread_returns_its_result_to_join,
    here threads_share_memory_and_have_their_own_ids,
    here threads_a_mutex_keeps_a_counter_exact,
    here threads_futex_wait_returns_eagain_when_the_word_differs,
    here threads_futex_wait_times_out,
    here threads_condvar_hands_items_from_producer_to_consumer,
    here threads_once_runs_once,
    here threads_bad_entry_or_stack_is_einval,
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
    let (tid, pid) = worker.join().map_err(|info| alloc::format!("thread ended {info:?}"))?;
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
        worker.join().map_err(|info| alloc::format!("a worker ended {info:?}"))?;
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
    let sum = consumer.join().map_err(|info| alloc::format!("the consumer ended {info:?}"))?;
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
        worker.join().map_err(|info| alloc::format!("a worker ended {info:?}"))?;
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
