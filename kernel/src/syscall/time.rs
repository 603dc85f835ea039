//! Time syscalls: `uptime` and `sleep`.

use abi::errno::EINTR;

use super::{Args, SyscallResult};
use crate::task::scheduler;
use crate::time::uptime_ns;

/// `uptime() -> ns`.
pub fn uptime(_: &Args) -> SyscallResult {
    Ok(uptime_ns())
}

/// `sleep(ns) -> 0`: at least `ns` nanoseconds, ending at the first timer interrupt after
/// that (so up to a tick longer).
pub fn sleep(args: &Args) -> SyscallResult {
    if args[0] == 0 {
        return Ok(0);
    }
    scheduler::sleep_ns(args[0]).map(|()| 0).map_err(|_| EINTR)
}
