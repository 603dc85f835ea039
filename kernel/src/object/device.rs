//! Device capabilities: the objects through which a ring-3 driver reaches hardware. The
//! kernel makes them at boot from what it found and hands them to `init` alone.
//!
//! - [`Irq`]: an interrupt line. Bound to a notification (`irq_bind`), the line is masked
//!   each time it fires and the notification's bits are signalled; the driver unmasks it
//!   (`irq_ack`) once it has served the device. One binding per line, held by the process
//!   that made it: it goes (the line masked) when that process ends or the object dies.
//! - [`IoPorts`]: a range of ports, opened in the holder's I/O permission bitmap by
//!   `ioports_enable`.
//! - [`DeviceMemory`]: physical memory of a device (the framebuffer), mapped like shared
//!   memory but never given to the frame allocator: unmapping or exiting frees nothing.

use alloc::sync::{Arc, Weak};

use abi::errno::{EBUSY, EINVAL, EPERM};
use spin::Mutex;

use super::LiveObject;
use crate::arch::{cpu, mask_line, unmask_line};
use crate::ipc::notification::Notification;
use crate::mm::shared::SharedFrames;
use crate::task::process::ProcessObject;

/// Interrupt lines of the legacy controllers.
const LINES: usize = 16;

/// A line's binding: whom to signal, and who bound it.
struct Binding {
    notification: Arc<Notification>,
    bits: u64,
    holder: Weak<ProcessObject>,
}

/// The bindings, by line. Taken with interrupts masked (the interrupt path reads it).
static BINDINGS: Mutex<[Option<Binding>; LINES]> = Mutex::new([const { None }; LINES]);

/// An interrupt line a driver may bind.
#[derive(Debug)]
pub struct Irq {
    line: u8,
    _live: LiveObject,
}

impl Irq {
    /// The object for `line` (there should be one per line).
    pub fn new(line: u8) -> Self {
        Self { line, _live: LiveObject::new() }
    }

    /// Binds the line to `bits` of `notification` for `holder`, and unmasks it.
    pub fn bind(&self, notification: Arc<Notification>, bits: u64, holder: &Arc<ProcessObject>) -> Result<(), i64> {
        let index = usize::from(self.line);
        cpu::without_interrupts(|| {
            let mut bindings = BINDINGS.lock();
            let slot = bindings.get_mut(index).ok_or(EINVAL)?;
            if slot.is_some() {
                return Err(EBUSY);
            }
            *slot = Some(Binding { notification, bits, holder: Arc::downgrade(holder) });
            Ok(())
        })?;
        unmask_line(self.line);
        Ok(())
    }

    /// Unmasks the line for its binder; `EINVAL` if unbound, `EPERM` for anyone else.
    pub fn acknowledge(&self, caller: &Arc<ProcessObject>) -> Result<(), i64> {
        let bound_by_caller = cpu::without_interrupts(|| {
            let bindings = BINDINGS.lock();
            let binding = bindings.get(usize::from(self.line)).and_then(Option::as_ref).ok_or(EINVAL)?;
            Ok::<_, i64>(binding.holder.as_ptr() == Arc::as_ptr(caller))
        })?;
        if !bound_by_caller {
            return Err(EPERM);
        }
        unmask_line(self.line);
        Ok(())
    }
}

impl Drop for Irq {
    fn drop(&mut self) {
        mask_line(self.line);
        let binding = cpu::without_interrupts(|| BINDINGS.lock().get_mut(usize::from(self.line)).and_then(Option::take));
        drop(binding);
    }
}

/// Called when `process` ends: its bindings go, and their lines are masked.
pub fn forget_process(process: &ProcessObject) {
    let mut released = [const { None }; LINES];
    cpu::without_interrupts(|| {
        for (line, slot) in BINDINGS.lock().iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|binding| core::ptr::eq(binding.holder.as_ptr(), process)) {
                mask_line(line as u8);
                released[line] = slot.take();
            }
        }
    });
    // The notifications may die here, outside the lock.
    drop(released);
}

/// Called from the interrupt path for `line`: if a driver bound it, masks it, signals the
/// driver and returns true.
pub fn interrupt(line: u8) -> bool {
    let target = BINDINGS.lock().get(usize::from(line)).and_then(Option::as_ref).map(|binding| (binding.notification.clone(), binding.bits));
    let Some((notification, bits)) = target else { return false };
    mask_line(line);
    notification.signal(bits);
    true
}

/// A range of I/O ports.
#[derive(Debug)]
pub struct IoPorts {
    /// The first port.
    pub first: u16,
    /// How many.
    pub count: u16,
    _live: LiveObject,
}

impl IoPorts {
    /// The ports `first..first + count`.
    pub fn new(first: u16, count: u16) -> Self {
        Self { first, count, _live: LiveObject::new() }
    }
}

/// Physical memory of a device, with the framebuffer's layout when it is one.
#[derive(Debug)]
pub struct DeviceMemory {
    frames: Arc<SharedFrames>,
    /// The framebuffer's layout.
    pub framebuffer: Option<abi::FramebufferInfo>,
    _live: LiveObject,
}

impl DeviceMemory {
    /// Device memory over `frames` (which must be boot memory: owned by nobody).
    pub fn new(frames: SharedFrames, framebuffer: Option<abi::FramebufferInfo>) -> Self {
        Self { frames: Arc::new(frames), framebuffer, _live: LiveObject::new() }
    }

    /// The frames, for mapping.
    pub fn frames(&self) -> &Arc<SharedFrames> {
        &self.frames
    }
}
