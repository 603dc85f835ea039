//! Threads: [`spawn`] runs a closure on a new thread of this process, [`JoinHandle::join`]
//! waits for its result.
//!
//! Each thread gets its own stack of [`STACK_SIZE`] bytes from `mmap`, with a read-only
//! guard page below it (an overflow faults instead of writing into other memory). The
//! stack is unmapped when the thread is joined; a thread whose handle is dropped unjoined
//! keeps its stack until the process ends (it may still be running on it).
//!
//! The process ends when `main` returns or any thread calls `exit` or panics (a panic
//! prints its message and backtrace and exits with status 101, as in a single-threaded
//! program), whatever its other threads are doing: like `panic = "abort"` in Rust's `std`.
//!
//! ```ignore
//! let worker = userlib::thread::spawn(|| (1..=10u64).product::<u64>())?;
//! assert_eq!(worker.join(), Ok(3_628_800));
//! ```

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::UnsafeCell;

use abi::ExitInfo;

use crate::sys::{self, Result};

/// Bytes of stack each thread gets (the guard page comes on top).
pub const STACK_SIZE: u64 = 64 * 1024;
const GUARD_SIZE: u64 = 4096;

/// Where a thread leaves its closure's result for the joiner.
struct Packet<T> {
    result: UnsafeCell<Option<T>>,
}

// SAFETY: the thread writes `result` once, before it ends; the joiner reads it only after
// `wait` has told it the thread ended (the kernel orders the two).
unsafe impl<T: Send> Sync for Packet<T> {}

/// What the new thread starts from: its closure and the packet for the result.
struct Start<F, T> {
    closure: F,
    packet: Arc<Packet<T>>,
}

/// A running thread, to be joined. Dropping it unjoined lets the thread run on (detached):
/// its handle is closed and its stack stays mapped.
#[derive(Debug)]
pub struct JoinHandle<T> {
    /// The thread's handle; `None` once `join` used it up.
    handle: Option<u64>,
    stack_base: u64,
    packet: Arc<Packet<T>>,
}

impl<T> core::fmt::Debug for Packet<T> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.write_str("Packet")
    }
}

/// Runs `closure` on a new thread of this process.
pub fn spawn<F, T>(closure: F) -> Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let stack_base = sys::mmap(0, GUARD_SIZE + STACK_SIZE, abi::PROT_READ | abi::PROT_WRITE)?;
    // SAFETY: the guard page was just mapped for this thread and nothing uses it.
    if let Err(error) = unsafe { sys::mprotect(stack_base, GUARD_SIZE, abi::PROT_READ) } {
        // SAFETY: as above; nothing refers to the new mapping.
        let _ = unsafe { sys::munmap(stack_base, GUARD_SIZE + STACK_SIZE) };
        return Err(error);
    }
    let packet = Arc::new(Packet { result: UnsafeCell::new(None) });
    let start = Box::into_raw(Box::new(Start { closure, packet: packet.clone() }));
    // A function is entered with `rsp + 8` 16-byte aligned (its return address below).
    let stack_pointer = stack_base + GUARD_SIZE + STACK_SIZE - 8;
    // SAFETY: the stack is the new thread's alone (just mapped, unmapped only after it ended);
    // `run::<F, T>` takes exactly the `Start<F, T>` box passed as its argument.
    match unsafe { sys::thread_create(run::<F, T>, stack_pointer, start as u64) } {
        Ok(handle) => Ok(JoinHandle { handle: Some(handle), stack_base, packet }),
        Err(error) => {
            // SAFETY: no thread started, so the box is still only ours, and the stack unused.
            unsafe {
                drop(Box::from_raw(start));
                let _ = sys::munmap(stack_base, GUARD_SIZE + STACK_SIZE);
            }
            Err(error)
        }
    }
}

/// The first code of a thread [`spawn`] started: runs the closure, leaves its result, ends.
extern "C" fn run<F, T>(start: u64) -> !
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: `spawn` passed a `Box<Start<F, T>>` it gave up, to this thread alone.
    let start = unsafe { Box::from_raw(start as *mut Start<F, T>) };
    let Start { closure, packet } = *start;
    let value = closure();
    // SAFETY: only this thread writes the result, once; the joiner reads it after the end.
    unsafe { *packet.result.get() = Some(value) };
    drop(packet);
    sys::thread_exit(0)
}

impl<T> JoinHandle<T> {
    /// The thread's handle (WAIT and KILL: `sys::kill_handle` ends the thread alone).
    pub fn raw_handle(&self) -> u64 {
        self.handle.unwrap_or(abi::handle::NO_HANDLE)
    }

    /// Waits for the thread to end and returns its closure's result, or how it ended if it
    /// did not finish it (killed). Unmaps its stack.
    pub fn join(mut self) -> core::result::Result<T, ExitInfo> {
        let handle = self.handle.take().expect("a handle is joined once");
        // `wait` on a thread handle held with WAIT fails only if this process is killed
        // meanwhile; the stack then stays (the process is ending anyway).
        let (_, info) = sys::wait_handle(handle, abi::ipc::FOREVER).map_err(|_| ExitInfo::exited(abi::status::KILLED))?;
        // SAFETY: the thread has ended, so nothing runs on the stack or writes the result any
        // more, and nothing else refers to the stack.
        let result = unsafe {
            let _ = sys::munmap(self.stack_base, GUARD_SIZE + STACK_SIZE);
            (*self.packet.result.get()).take()
        };
        result.ok_or(info)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle {
            let _ = crate::ipc::close(handle);
        }
    }
}
