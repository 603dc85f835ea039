//! The kernel's async executor: cooperative kernel tasks, such as decoding keyboard and
//! serial input, written as futures.
//!
//! A task is a pinned, boxed future. Its waker pushes the task's id onto a lock-free ready
//! queue, so interrupt handlers can wake tasks without taking any lock. [`run_ready`] polls
//! the tasks that were ready when it started, once each.
//!
//! Where it runs: the scheduler's idle loop calls [`run_ready`] whenever no process is ready
//! and halts only when [`has_ready`] is false, with interrupts masked between that check and
//! the `sti; hlt` pair, so a wake-up cannot slip in between. A waker also asks the CPU it runs
//! on for attention, so that CPU runs the executor at its next return to ring 3 or
//! preemption point, and input is decoded (and Ctrl-C delivered) even while a process spins
//! without ever blocking. The hot paths (every return to ring 3, every tick) look only at the
//! attention flag they check anyway: the executor costs nothing while it has no work.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use conquer_once::spin::OnceCell;
use crossbeam_queue::ArrayQueue;
use spin::Mutex;

use crate::arch::cpu;

/// Most tasks that can be queued as ready at once.
const READY_CAPACITY: usize = 256;

type TaskId = u64;
type BoxedFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

struct TaskWaker {
    id: TaskId,
    queued: AtomicBool,
}

impl TaskWaker {
    fn schedule(&self) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if ready_queue().push(self.id).is_err() {
            // Only possible with more than READY_CAPACITY tasks; let a later wake retry.
            self.queued.store(false, Ordering::Release);
            return;
        }
        cpu::request_attention(cpu::index());
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.schedule();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.schedule();
    }
}

struct Task {
    /// `None` while the task is being polled.
    future: Option<BoxedFuture>,
    waker: Arc<TaskWaker>,
}

static READY: OnceCell<ArrayQueue<TaskId>> = OnceCell::uninit();
static TASKS: Mutex<BTreeMap<TaskId, Task>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn ready_queue() -> &'static ArrayQueue<TaskId> {
    READY.get_or_init(|| ArrayQueue::new(READY_CAPACITY))
}

/// Adds a task; it is polled the next time the executor runs.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let waker = Arc::new(TaskWaker { id, queued: AtomicBool::new(false) });
    let task = Task { future: Some(Box::pin(future)), waker: waker.clone() };
    cpu::without_interrupts(|| TASKS.lock().insert(id, task));
    waker.schedule();
}

/// Whether some task is waiting to be polled.
pub fn has_ready() -> bool {
    READY.get().is_some_and(|queue| !queue.is_empty())
}

/// Polls each task that is ready now, once. Tasks woken while this runs wait for the next
/// call, so a task that keeps waking itself cannot starve the caller.
pub fn run_ready() {
    let Some(queue) = READY.get() else { return };
    for _ in 0..queue.len() {
        let Some(id) = queue.pop() else { break };
        let taken = cpu::without_interrupts(|| {
            let mut tasks = TASKS.lock();
            let task = tasks.get_mut(&id)?;
            task.waker.queued.store(false, Ordering::Release);
            Some((task.future.take()?, task.waker.clone()))
        });
        let Some((mut future, task_waker)) = taken else { continue };
        let waker = Waker::from(task_waker);
        let finished = future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        cpu::without_interrupts(|| {
            let mut tasks = TASKS.lock();
            if finished {
                tasks.remove(&id);
            } else if let Some(task) = tasks.get_mut(&id) {
                task.future = Some(future);
            }
        });
    }
}

/// Number of tasks alive (for the in-kernel tests).
pub fn task_count() -> usize {
    cpu::without_interrupts(|| TASKS.lock().len())
}

/// A future that completes once `ready` returns true; it registers its waker through
/// `register` before checking, so a wake between check and registration is not lost.
pub struct WaitUntil<Check, Register> {
    ready: Check,
    register: Register,
}

impl<Check: FnMut() -> bool, Register: FnMut(&Waker)> WaitUntil<Check, Register> {
    /// Waits until `ready()`; `register(waker)` arranges for the waker to be woken when
    /// `ready` may have changed.
    pub fn new(ready: Check, register: Register) -> Self {
        Self { ready, register }
    }
}

impl<Check: FnMut() -> bool + Unpin, Register: FnMut(&Waker) + Unpin> Future for WaitUntil<Check, Register> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.ready)() {
            return Poll::Ready(());
        }
        (this.register)(context.waker());
        if (this.ready)() { Poll::Ready(()) } else { Poll::Pending }
    }
}
