//! Device syscalls: `irq_bind`, `irq_ack`, `ioports_enable`, `framebuffer_info`, and the
//! kernel log's `log_read`. The objects are `object::device`'s; only `init` gets them at boot.

use alloc::sync::Arc;

use abi::errno::EINVAL;
use abi::handle::rights;

use super::handle::lookup;
use super::usercopy::{UserPtr, UserSlice};
use super::{Args, SyscallResult, require_heap_room};
use crate::arch::gdt::PortRange;
use crate::object::Object;
use crate::object::device::Irq;
use crate::task::scheduler;

fn irq(number: u64) -> Result<Arc<Irq>, i64> {
    lookup(number, rights::WAIT, |object| match object {
        Object::Irq(irq) => Some(irq.clone()),
        _ => None,
    })
}

/// `irq_bind(irq, notification, bits) -> 0`.
pub fn irq_bind(args: &Args) -> SyscallResult {
    let line = irq(args[0])?;
    let notification = lookup(args[1], rights::WAIT, |object| match object {
        Object::Notification(notification) => Some(notification.clone()),
        _ => None,
    })?;
    let bits = args[2];
    if bits == 0 || bits & (1 << 63) != 0 {
        return Err(EINVAL);
    }
    line.bind(notification, bits, &scheduler::current_object())?;
    Ok(0)
}

/// `irq_ack(irq) -> 0`.
pub fn irq_ack(args: &Args) -> SyscallResult {
    irq(args[0])?.acknowledge(&scheduler::current_object())?;
    Ok(0)
}

/// `ioports_enable(h) -> 0`.
pub fn ioports_enable(args: &Args) -> SyscallResult {
    let range = lookup(args[0], rights::READ | rights::WRITE, |object| match object {
        Object::IoPorts(ports) => Some(PortRange { first: ports.first, count: ports.count }),
        _ => None,
    })?;
    scheduler::enable_io_ports(range)?;
    Ok(0)
}

/// `framebuffer_info(h, out) -> 0`.
pub fn framebuffer_info(args: &Args) -> SyscallResult {
    let info = lookup(args[0], 0, |object| match object {
        Object::DeviceMemory(memory) => Some(memory.framebuffer),
        _ => None,
    })?
    .ok_or(EINVAL)?;
    UserPtr::new(args[1]).write(&info)?;
    Ok(0)
}

/// `log_read(h, buf, len) -> bytes`: the newest `len` bytes of the log, oldest first.
pub fn log_read(args: &Args) -> SyscallResult {
    lookup(args[0], rights::READ, |object| matches!(object, Object::Log).then_some(()))?;
    let buffer = UserSlice::new(args[1], args[2]);
    let target = buffer.check_writable()?;
    let wanted = (buffer.len() as usize).min(crate::log_ring::RING_BYTES);
    // Taken whole under the ring's lock, so the bytes are one consistent stretch, then
    // copied out without it.
    require_heap_room()?;
    let mut copy = alloc::vec::Vec::new();
    copy.try_reserve_exact(wanted).map_err(|_| abi::errno::ENOMEM)?;
    copy.resize(wanted, 0);
    let count = crate::log_ring::read_newest(&mut copy);
    target.copy_from(0, &copy[..count])?;
    Ok(count as u64)
}
