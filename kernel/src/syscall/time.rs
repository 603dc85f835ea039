//! Time syscalls: `uptime` and `sleep`.

use abi::errno::EINTR;

use super::{Args, SyscallResult};
use crate::task::scheduler;
use crate::time::{ns_to_ticks_ceil, uptime_ns};

/// `uptime() -> ns`.
pub fn uptime(_: &Args) -> SyscallResult {
    Ok(uptime_ns())
}

/// `sleep(ns) -> 0`: at least `ns` nanoseconds, rounded up to whole ticks.
pub fn sleep(args: &Args) -> SyscallResult {
    let ticks = ns_to_ticks_ceil(args[0]);
    if ticks == 0 {
        return Ok(0);
    }
    scheduler::sleep_ticks(ticks).map(|()| 0).map_err(|_| EINTR)
}
