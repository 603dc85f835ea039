//! Device capabilities: I/O ports, interrupt lines, device memory and the kernel's log. Each
//! is usable only through its handle, exactly as far as its rights go. (That `shutdown`
//! needs the power handle is `handles`' `power_handle_only_for_the_first_process`.)
//!
//! Run as the `--init` program (as `make test` runs it), `usertests` gets from `init` the
//! spare devices as handles 6 to 10 ([`LOG`], [`SPARE_IRQ`], [`SPARE_PORTS`],
//! [`KEYBOARD_IRQ`], [`SCREEN`]): COM2, which the launcher connects to nothing and nobody
//! else drives, so the cases may bind its line, make it interrupt and use its ports; the
//! keyboard's line, which the console server has bound; and the framebuffer, read-only.

use alloc::format;
use core::arch::{asm, global_asm};

use abi::errno::{EBADF, EBUSY, EINVAL, EPERM};
use abi::fault::GENERAL_PROTECTION;
use abi::handle::{Kind, rights};
use abi::syscall::{FRAMEBUFFER_INFO, IOPORTS_ENABLE, IRQ_ACK, IRQ_BIND, LOG_READ, MEMORY_MAP, WRITE};
use userlib::ipc::Notification;
use userlib::testing::{Case, Context, Expected, Outcome, message};
use userlib::{check, sys};

use crate::common::*;

/// The kernel's log (READ and WRITE).
const LOG: u64 = 6;
/// COM2's interrupt line (3).
const SPARE_IRQ: u64 = 7;
/// COM2's ports, 0x2f8..=0x2ff.
const SPARE_PORTS: u64 = 8;
/// The keyboard's line, bound by the console server.
const KEYBOARD_IRQ: u64 = 9;
/// The framebuffer, device memory with READ only.
const SCREEN: u64 = 10;

/// COM2's registers.
const COM2: u16 = 0x2f8;
const COM2_INTERRUPT_ENABLE: u16 = COM2 + 1;
const COM2_INTERRUPT_ID: u16 = COM2 + 2;
const COM2_MODEM_CONTROL: u16 = COM2 + 4;
const COM2_SCRATCH: u16 = COM2 + 7;

pub const CASES: &[Case] = userlib::cases![
    here init_passes_the_spare_devices,
    here ports_beyond_the_grant_still_fault,
    here ports_need_their_handle_and_rights,
    here device_memory_maps_only_as_its_rights_allow,
    here an_irq_is_bound_once,
    here irq_ack_needs_the_binder,
    here a_bound_irq_signals_its_notification,
    here the_log_keeps_what_is_written_to_it,
];

pub const HELPERS: &[(&str, userlib::testing::Helper)] = &[
    ("port_user", helper_port_user),
    ("irq_binder", helper_irq_binder),
    ("irq_holder", helper_irq_holder),
    ("irq_driver", helper_irq_driver),
];

fn init_passes_the_spare_devices() -> Outcome {
    expect_handle("the log", LOG, Kind::Log, rights::DUPLICATE | rights::TRANSFER | rights::READ | rights::WRITE)?;
    expect_handle("COM2's line", SPARE_IRQ, Kind::Irq, rights::DUPLICATE | rights::TRANSFER | rights::WAIT)?;
    expect_handle("COM2's ports", SPARE_PORTS, Kind::IoPorts, rights::DUPLICATE | rights::TRANSFER | rights::READ | rights::WRITE)?;
    expect_handle("the keyboard's line", KEYBOARD_IRQ, Kind::Irq, rights::DUPLICATE | rights::TRANSFER | rights::WAIT)?;
    expect_handle("the framebuffer", SCREEN, Kind::DeviceMemory, rights::DUPLICATE | rights::READ)
}

// `in al, dx` from COM1's data port: granted nothing, the instruction must raise #GP.
global_asm!(
    ".global usertests_port_beyond_grant",
    "usertests_port_beyond_grant:",
    "mov dx, 0x3f8",
    ".global usertests_port_beyond_grant_site",
    "usertests_port_beyond_grant_site:",
    "in al, dx",
    "ret",
);

unsafe extern "C" {
    fn usertests_port_beyond_grant();
}

fn port_in(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reads a COM2 register, which this process was granted and no one else drives.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nostack, nomem)) };
    value
}

fn port_out(port: u16, value: u8) {
    // SAFETY: writes a COM2 register, which this process was granted and no one else drives.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nostack, nomem)) };
}

/// `port_user`: enables COM2's ports (its handle 3), checks that the scratch register keeps
/// a value, then reads COM1's data port, which must kill it with #GP there. Exits 3 if the
/// grant failed, 4 if the scratch register did not answer, 5 if it survived.
fn helper_port_user(_: &[&str]) -> i32 {
    if sys::ioports_enable(3).is_err() {
        return 3;
    }
    port_out(COM2_SCRATCH, 0xa5);
    if port_in(COM2_SCRATCH) != 0xa5 {
        return 4;
    }
    // SAFETY: a routine of two instructions that reads a port; it kills this process.
    unsafe { usertests_port_beyond_grant() };
    5
}

fn ports_beyond_the_grant_still_fault() -> Outcome {
    let child = spawn_with_handles("port_user", &[], &[0, 1, 2, SPARE_PORTS as u32])?;
    let info = finish_within(child, "port_user")?;
    let site = symbol_address!("usertests_port_beyond_grant_site");
    Expected::general_protection().at(site).check(&info).map_err(|why| message(format_args!("port_user: {why} (status {})", info.status)))?;
    check!(info.fault_vector == GENERAL_PROTECTION, "not a #GP: {info:?}");
    Ok(())
}

fn ports_need_their_handle_and_rights() -> Outcome {
    for (handle, what) in [(1, "the console"), (200, "a free number"), (SPARE_IRQ, "an Irq"), (SCREEN, "device memory")] {
        expect_errno(&format!("ioports_enable({what})"), call(IOPORTS_ENABLE, [handle, 0, 0, 0, 0, 0]), EBADF)?;
    }
    let read_only = userlib::ipc::OwnedHandle::from_raw(userlib::ipc::duplicate(SPARE_PORTS, rights::READ).context("handle_duplicate")?);
    expect_errno("ioports_enable without WRITE", call(IOPORTS_ENABLE, [read_only.raw(), 0, 0, 0, 0, 0]), EPERM)
}

fn device_memory_maps_only_as_its_rights_allow() -> Outcome {
    let prot_rw = abi::PROT_READ | abi::PROT_WRITE;
    expect_errno("memory_map of a free number", call(MEMORY_MAP, [200, 0, abi::PROT_READ, 0, 0, 0]), EBADF)?;
    expect_errno("memory_map of an Irq", call(MEMORY_MAP, [SPARE_IRQ, 0, abi::PROT_READ, 0, 0, 0]), EBADF)?;
    expect_errno("memory_map of read-only device memory, writable", call(MEMORY_MAP, [SCREEN, 0, prot_rw, 0, 0, 0]), EPERM)?;
    let wx = abi::PROT_READ | abi::PROT_WRITE | abi::PROT_EXEC;
    expect_errno("memory_map of device memory W+X", call(MEMORY_MAP, [SCREEN, 0, wx, 0, 0, 0]), EINVAL)?;
    expect_errno("memory_map of device memory executable", call(MEMORY_MAP, [SCREEN, 0, abi::PROT_READ | abi::PROT_EXEC, 0, 0, 0]), EPERM)?;
    let info = sys::framebuffer_info(SCREEN).context("framebuffer_info")?;
    check!(info.width > 0 && info.height > 0 && info.stride >= info.width && info.bytes_per_pixel > 0, "framebuffer_info: {info:?}");
    expect_errno("framebuffer_info of the console", call(FRAMEBUFFER_INFO, [1, 0, 0, 0, 0, 0]), EBADF)?;
    let size = u64::from(info.stride) * u64::from(info.height) * u64::from(info.bytes_per_pixel);
    let frames_before = system_frames()?;
    let address = call(MEMORY_MAP, [SCREEN, 0, abi::PROT_READ, 0, 0, 0]);
    check!(address > 0, "memory_map of the framebuffer, readable: {}", show(address));
    // SAFETY: the pixels were just mapped readable, `size` bytes at least (whole pages);
    // reading one shows the mapping reaches memory.
    let _pixel = unsafe { core::ptr::read_volatile(address as *const u8) };
    let length = size.div_ceil(4096) * 4096;
    // SAFETY: unmaps only the mapping just made, which nothing else refers to.
    unsafe { sys::munmap(address as u64, length) }.context("munmap of the framebuffer")?;
    // The framebuffer's frames are never the allocator's: unmapping gives none to it (the page
    // tables the mapping needed come back, so the count is as before).
    let frames_after = system_frames()?;
    check!(frames_after == frames_before, "free frames {frames_before} before, {frames_after} after mapping the framebuffer");
    Ok(())
}

/// `irq_binder`: binds COM2's line (its handle 3) to a new notification, then again:
/// exits 0 if the first bind worked and the second got EBUSY, 3 if the first failed, 4 if
/// the second did not fail with EBUSY.
fn helper_irq_binder(_: &[&str]) -> i32 {
    let Ok(notification) = Notification::create() else { return 6 };
    if sys::irq_bind(3, notification.handle().raw(), 1).is_err() {
        return 3;
    }
    match sys::irq_bind(3, notification.handle().raw(), 2) {
        Err(sys::Errno(EBUSY)) => 0,
        _ => 4,
    }
}

fn an_irq_is_bound_once() -> Outcome {
    // Twice by one process, then again by a second process once the first has ended: the
    // binding goes with its process.
    for round in ["first", "second"] {
        let child = spawn_with_handles("irq_binder", &[], &[0, 1, 2, SPARE_IRQ as u32])?;
        expect_exit(&format!("{round} irq_binder (3: bind failed, 4: rebind not EBUSY)"), finish_within(child, "irq_binder")?, 0)?;
    }
    let notification = Notification::create().context("notification_create")?;
    let bits = 1;
    expect_errno("irq_bind of the keyboard's line, which the console holds", call(IRQ_BIND, [KEYBOARD_IRQ, notification.handle().raw(), bits, 0, 0, 0]), EBUSY)?;
    expect_errno("irq_bind with no bits", call(IRQ_BIND, [SPARE_IRQ, notification.handle().raw(), 0, 0, 0, 0]), EINVAL)?;
    expect_errno("irq_bind with bit 63", call(IRQ_BIND, [SPARE_IRQ, notification.handle().raw(), 1 << 63, 0, 0, 0]), EINVAL)?;
    expect_errno("irq_bind to the console", call(IRQ_BIND, [SPARE_IRQ, 1, bits, 0, 0, 0]), EBADF)?;
    expect_errno("irq_bind of device memory", call(IRQ_BIND, [SCREEN, notification.handle().raw(), bits, 0, 0, 0]), EBADF)?;
    let waitless = notification.handle().duplicate(rights::SIGNAL).context("handle_duplicate")?;
    expect_errno("irq_bind to a notification without WAIT", call(IRQ_BIND, [SPARE_IRQ, waitless.raw(), bits, 0, 0, 0]), EPERM)
}

/// `irq_holder`: binds COM2's line (its handle 3), then sleeps until killed.
fn helper_irq_holder(_: &[&str]) -> i32 {
    let Ok(notification) = Notification::create() else { return 6 };
    if sys::irq_bind(3, notification.handle().raw(), 1).is_err() {
        return 3;
    }
    loop {
        let _ = sys::sleep_ms(1000);
    }
}

fn irq_ack_needs_the_binder() -> Outcome {
    expect_errno("irq_ack of an unbound line", call(IRQ_ACK, [SPARE_IRQ, 0, 0, 0, 0, 0]), EINVAL)?;
    expect_errno("irq_ack of a free number", call(IRQ_ACK, [200, 0, 0, 0, 0, 0]), EBADF)?;
    expect_errno("irq_ack of the console", call(IRQ_ACK, [1, 0, 0, 0, 0, 0]), EBADF)?;
    expect_errno("irq_ack of the keyboard's line, which the console bound", call(IRQ_ACK, [KEYBOARD_IRQ, 0, 0, 0, 0, 0]), EPERM)?;
    let holder = spawn_with_handles("irq_holder", &[], &[0, 1, 2, SPARE_IRQ as u32])?;
    // Until the holder has bound the line, acknowledging it here is EINVAL; then EPERM.
    let bound = wait_until(HANG_LIMIT, || Ok(call(IRQ_ACK, [SPARE_IRQ, 0, 0, 0, 0, 0]) == -EPERM))?;
    kill_and_reap(&[holder])?;
    check!(bound, "irq_ack of a line another process bound was never EPERM");
    expect_errno("irq_ack once the binder has ended", call(IRQ_ACK, [SPARE_IRQ, 0, 0, 0, 0, 0]), EINVAL)
}

/// `irq_driver`: drives COM2 as a driver would, with its line as handle 3 and its ports as
/// 4: binds the line to bit 2 of a notification, enables the transmitter-empty interrupt
/// (which fires at once, the transmitter being empty), waits for the bit, reads the
/// interrupt identification (which clears it), and acknowledges the line. Exits 0 when all
/// of it worked, 3 to 7 at the step that failed.
fn helper_irq_driver(_: &[&str]) -> i32 {
    const TRANSMITTER_EMPTY: u8 = 0x02;
    const OUT2: u8 = 0x08;
    let Ok(notification) = Notification::create() else { return 3 };
    if sys::ioports_enable(4).is_err() || sys::irq_bind(3, notification.handle().raw(), 1 << 2).is_err() {
        return 4;
    }
    port_out(COM2_MODEM_CONTROL, OUT2);
    port_out(COM2_INTERRUPT_ENABLE, TRANSMITTER_EMPTY);
    match notification.wait(HANG_NS) {
        Ok(4) => {}
        _ => return 5,
    }
    // Bits 1..=3 of the identification say why it interrupted: 0b001 is "transmitter empty".
    if (port_in(COM2_INTERRUPT_ID) >> 1) & 0b111 != 0b001 {
        return 6;
    }
    port_out(COM2_INTERRUPT_ENABLE, 0);
    if sys::irq_ack(3).is_err() {
        return 7;
    }
    0
}

fn a_bound_irq_signals_its_notification() -> Outcome {
    // In a child, so that the binding (and the ports) end with it.
    let child = spawn_with_handles("irq_driver", &[], &[0, 1, 2, SPARE_IRQ as u32, SPARE_PORTS as u32])?;
    let info = finish_within(child, "irq_driver")?;
    expect_exit("irq_driver (5: no signal within the hang limit, 6: not a transmitter interrupt)", info, 0)
}

fn the_log_keeps_what_is_written_to_it() -> Outcome {
    let marker = b"usertests: a line for the kernel's log\n";
    let written = call(WRITE, [LOG, marker.as_ptr() as u64, marker.len() as u64, 0, 0, 0]);
    expect_value("write to the log", written, marker.len() as i64)?;
    let mut newest = [0u8; 256];
    let count = sys::log_read(LOG, &mut newest).context("log_read")?;
    check!(newest[..count].ends_with(marker), "the log ends with {:?}", core::str::from_utf8(&newest[..count]));
    expect_errno("log_read of the console", call(LOG_READ, [1, newest.as_mut_ptr() as u64, 16, 0, 0, 0]), EBADF)?;
    let write_only = userlib::ipc::OwnedHandle::from_raw(userlib::ipc::duplicate(LOG, rights::WRITE).context("handle_duplicate")?);
    expect_errno("log_read without READ", call(LOG_READ, [write_only.raw(), newest.as_mut_ptr() as u64, 16, 0, 0, 0]), EPERM)?;
    let mut read_buffer = [0u8; 4];
    expect_errno("read from the log", call(abi::syscall::READ, [LOG, read_buffer.as_mut_ptr() as u64, 4, 0, 0, 0]), EBADF)
}
