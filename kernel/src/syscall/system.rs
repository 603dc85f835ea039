//! System syscalls: `sysinfo`, `shutdown`.

use abi::SysInfo;

use super::usercopy::UserPtr;
use abi::handle::rights;

use super::handle::lookup;
use super::{Args, SyscallResult};
use crate::object::Object;
use crate::mm::address_space::MAX_PROCESS_FRAMES;
use crate::mm::frame;
use crate::task::scheduler;

/// `sysinfo(out) -> 0`.
pub fn sysinfo(args: &Args) -> SyscallResult {
    let heap = crate::mm::heap_stats();
    let info = SysInfo {
        total_frames: frame::total_count() as u64,
        free_frames: frame::free_count() as u64,
        heap_size: heap.heap_size as u64,
        heap_used: heap.used_bytes as u64,
        uptime_ns: crate::time::uptime_ns(),
        processes: scheduler::process_count() as u32,
        max_processes: scheduler::MAX_PROCESSES as u32,
        max_process_memory: MAX_PROCESS_FRAMES * frame::FRAME_SIZE,
        protections: crate::arch::cpu::protection_bits(),
        timer_hz: crate::time::TIMER_HZ as u32,
        longest_masked_ns: crate::time::cycles_to_ns(crate::arch::cpu::longest_masked_cycles()),
        kernel_objects: crate::object::live_objects(),
        cpus: crate::arch::smp::online_count() as u32,
        current_cpu: crate::arch::cpu::index() as u32,
    };
    UserPtr::new(args[0]).write(&info)?;
    Ok(0)
}

/// `shutdown(h, status) -> !`: needs a power handle with POWER.
pub fn shutdown(args: &Args) -> SyscallResult {
    lookup(args[0], rights::POWER, |object| matches!(object, Object::Power).then_some(()))?;
    let status = args[1] as i32;
    log::info!("shutdown requested by pid {} with status {status}", scheduler::current_pid());
    crate::arch::qemu::exit(status)
}
