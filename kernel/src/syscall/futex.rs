//! Futex syscalls: `futex_wait` and `futex_wake` (see `ipc::futex`). A word must be 4-byte
//! aligned user memory; which word an address names is decided here.

use abi::errno::EINVAL;

use super::{Args, SyscallResult};
use crate::ipc::Timeout;
use crate::ipc::futex::{self, Word};
use crate::syscall::usercopy::UserPtr;
use crate::task::scheduler::{self, with_current_memory};

/// The futex word at `address` in the caller's memory: `EINVAL` unless it is a 4-byte
/// aligned user address.
fn word_at(address: u64) -> Result<Word, i64> {
    if address % 4 != 0 || !abi::memory::is_user_range(address, 4) {
        return Err(EINVAL);
    }
    let shared = with_current_memory(|memory| memory.shared_object_at(address));
    Ok(match shared {
        Some((frames, offset)) => Word::Shared { frames, offset },
        None => Word::Private { pid: scheduler::current_pid(), address },
    })
}

/// `futex_wait(address, expected, timeout) -> 0`.
pub fn futex_wait(args: &Args) -> SyscallResult {
    let word = word_at(args[0])?;
    let expected = u32::try_from(args[1]).map_err(|_| EINVAL)?;
    futex::wait(&scheduler::current_thread(), word, args[0], expected, Timeout::from_nanoseconds(args[2])).map(|()| 0)
}

/// `futex_wake(address, count) -> woken`.
pub fn futex_wake(args: &Args) -> SyscallResult {
    let word = word_at(args[0])?;
    // The same checks as `futex_wait`: the word must be readable (`EFAULT`).
    UserPtr::<u32>::new(args[0]).read()?;
    Ok(futex::wake(&word, args[1]))
}
