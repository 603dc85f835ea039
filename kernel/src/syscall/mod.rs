//! System calls: one table behind both entry paths, and the handlers, one file per group.
//!
//! `arch` decodes the registers (number in `rax`, arguments in `rdi, rsi, rdx, r10, r8,
//! r9`) from either `int 0x80` or `syscall` and calls [`dispatch`]; the result goes back in
//! `rax`, `>= 0` for success and `-errno` for failure. Handlers see arguments as plain
//! integers and reach user memory only through [`usercopy`].
pub use enigma_core::usercopy;

mod device;
mod futex;
mod handle;
mod io;
mod ipc;
mod memory;
mod process;
mod system;
mod table;
mod time;
mod tls;

pub use table::dispatch_frame;

/// What a handler returns: a non-negative value, or a positive errno.
pub type SyscallResult = Result<u64, i64>;

/// The arguments of a syscall, in register order.
pub type Args = [u64; 6];

/// Called first by every handler that allocates kernel heap: `ENOMEM` if the heap is close
/// to full, so an allocation failure (a kernel panic) can never be reached from ring 3.
fn require_heap_room() -> Result<(), i64> {
    if crate::mm::heap_has_room() { Ok(()) } else { Err(abi::errno::ENOMEM) }
}
