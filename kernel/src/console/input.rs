//! Console input: from interrupt handlers, through lock-free queues and async decoding tasks,
//! into the line discipline, and out to processes blocked in `read`.
//!
//! The keyboard and COM1 interrupt handlers only push raw bytes into bounded lock-free queues
//! and wake a task; they never block and never take the line discipline's lock. When a queue
//! is full the byte is dropped and a warning logged (the first drop and every 64th after).
//! Two executor tasks drain the queues: one decodes scancodes, one passes serial bytes
//! through, and both feed the same line discipline, which echoes to the console, wakes
//! readers, and turns Ctrl-C into a kill of the foreground process.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use conquer_once::spin::OnceCell;
use crossbeam_queue::ArrayQueue;
use futures_util::task::AtomicWaker;
use spin::Mutex;

use super::line_discipline::{LineDiscipline, Mode, Reaction};
use crate::arch::x86_64::cpu;
use crate::drivers::keyboard::KeyboardDecoder;
use crate::task::executor::{self, WaitUntil};

/// Capacity of each input queue, in bytes.
pub const QUEUE_CAPACITY: usize = 256;

/// A bounded byte queue filled by an interrupt handler and drained by one async task.
pub struct InputQueue {
    name: &'static str,
    bytes: OnceCell<ArrayQueue<u8>>,
    waker: AtomicWaker,
    dropped: AtomicU64,
}

impl InputQueue {
    const fn new(name: &'static str) -> Self {
        Self { name, bytes: OnceCell::uninit(), waker: AtomicWaker::new(), dropped: AtomicU64::new(0) }
    }

    fn queue(&self) -> &ArrayQueue<u8> {
        self.bytes.get_or_init(|| ArrayQueue::new(QUEUE_CAPACITY))
    }

    /// Queues `byte` and wakes the consumer. Never blocks: when the queue is full the byte is
    /// dropped with a warning. Returns whether the byte was queued.
    pub fn push(&self, byte: u8) -> bool {
        let queued = self.queue().push(byte).is_ok();
        if !queued {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped % 64 == 1 {
                log::warn!("{} input queue full: dropped {dropped} bytes so far", self.name);
            }
        }
        self.waker.wake();
        queued
    }

    /// Bytes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes a queued byte without waiting.
    pub fn try_pop(&self) -> Option<u8> {
        self.queue().pop()
    }

    async fn pop(&self) -> u8 {
        WaitUntil::new(|| !self.queue().is_empty(), |waker| self.waker.register(waker)).await;
        self.queue().pop().expect("only this task takes from the queue")
    }
}

/// Scancodes from the PS/2 keyboard interrupt.
pub static KEYBOARD_QUEUE: InputQueue = InputQueue::new("keyboard");
/// Bytes from the COM1 receive interrupt.
pub static SERIAL_QUEUE: InputQueue = InputQueue::new("serial");

static DISCIPLINE: Mutex<LineDiscipline> = Mutex::new(LineDiscipline::new());

/// The process Ctrl-C kills (0: none).
static FOREGROUND: AtomicU32 = AtomicU32::new(0);

/// The process that last put the console in raw mode (0: the console is cooked).
static RAW_MODE_OWNER: AtomicU32 = AtomicU32::new(0);

/// Called by the keyboard interrupt handler.
pub fn push_scancode(scancode: u8) {
    KEYBOARD_QUEUE.push(scancode);
}

/// Called by the COM1 interrupt handler for each received byte.
pub fn push_serial_byte(byte: u8) {
    SERIAL_QUEUE.push(byte);
}

/// Starts the two decoding tasks.
pub fn start() {
    executor::spawn(async {
        let mut decoder = KeyboardDecoder::new();
        loop {
            let scancode = KEYBOARD_QUEUE.pop().await;
            if let Some(key) = decoder.decode(scancode) {
                key.as_slice().iter().for_each(|&byte| feed(byte));
            }
        }
    });
    executor::spawn(async {
        loop {
            feed(SERIAL_QUEUE.pop().await);
        }
    });
}

fn feed(byte: u8) {
    let (reaction, mode) = cpu::without_interrupts(|| {
        let mut discipline = DISCIPLINE.lock();
        let reaction = discipline.feed(byte, &mut |echo| super::write_bytes(echo));
        (reaction, discipline.mode())
    });
    match reaction {
        Reaction::None => {}
        Reaction::InputReady => crate::task::wake_console_readers(),
        Reaction::Interrupt => {
            let foreground = FOREGROUND.load(Ordering::Relaxed);
            if foreground != 0 {
                // The process may have exited in the meantime; then there is nothing to do.
                let _ = crate::task::kill(foreground);
            }
            if mode == Mode::Raw {
                crate::task::wake_console_readers();
            }
        }
    }
}

/// Moves readable console input into `out`; `None` when there is none yet, `Some(0)` at
/// end of input.
pub fn take_input(out: &mut [u8]) -> Option<usize> {
    cpu::without_interrupts(|| DISCIPLINE.lock().take(out))
}

/// Switches the line discipline between cooked and raw mode at the request of `pid`, which
/// becomes responsible for raw mode: if it exits, the console returns to cooked mode.
/// Returns the mode before the switch.
pub fn set_mode(mode: Mode, pid: u32) -> Mode {
    let previous = cpu::without_interrupts(|| {
        let mut discipline = DISCIPLINE.lock();
        let previous = discipline.mode();
        discipline.set_mode(mode);
        previous
    });
    RAW_MODE_OWNER.store(if mode == Mode::Raw { pid } else { 0 }, Ordering::Relaxed);
    previous
}

/// Makes `pid` (0 for none) the process Ctrl-C kills.
pub fn set_foreground(pid: u32) {
    FOREGROUND.store(pid, Ordering::Relaxed);
}

/// The process Ctrl-C kills (0: none).
pub fn foreground() -> u32 {
    FOREGROUND.load(Ordering::Relaxed)
}

/// Called when `pid` exits: it stops being the foreground process, and if it had put the
/// console in raw mode, the console goes back to cooked mode.
pub fn forget_process(pid: u32) {
    let _ = FOREGROUND.compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed);
    if RAW_MODE_OWNER.compare_exchange(pid, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        cpu::without_interrupts(|| DISCIPLINE.lock().set_mode(Mode::Cooked));
    }
}
