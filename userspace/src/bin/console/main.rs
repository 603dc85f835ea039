//! `console`: the console server. It drives the PS/2 keyboard, COM1 and the framebuffer from
//! ring 3 with the device handles `init` gives it, and serves *sessions*: every program's
//! standard input, output and error are handles to its endpoint, and `read` and `write` on
//! them arrive here as the stream protocol's calls (`abi::stream`).
//!
//! Handles (from `init`): 0 to 2 the kernel's log (its own messages survive it), 3 its
//! endpoint, 4 and 5 the keyboard's and COM1's interrupt lines, 6 and 7 their ports, 8 a
//! copy of the log that may only be read, and 9 the framebuffer (if there is one). The
//! screen starts with the log as the kernel kept it (the boot log, with its colours), which
//! the serial line has shown already.
//!
//! - **Output** (`stream::WRITE`): to COM1 (`\n` sent as `\r\n`) and to the framebuffer
//!   terminal (`console_logic::screen`), whose pixels are brought up to date once per
//!   write, however many lines it scrolled.
//! - **Input**: both interrupt lines signal one notification bound to the endpoint, so input
//!   and calls arrive through the same `recv`. Scancodes are decoded (US layout) and serial
//!   bytes passed through into one line discipline (cooked or raw).
//! - **Reads** (`stream::READ`) wait here, their reply handles kept in arrival order, until
//!   a line (cooked) or a byte (raw) is ready; several may wait. A read held for a second is
//!   answered `-EAGAIN`, which the kernel's `read` turns into a new call at the back of the
//!   line: a reader that was killed meanwhile is forgotten within a second.
//! - **Mode** (`stream::MODE`) switches cooked and raw. The raw mode belongs to the foreground
//!   process of that moment, if there is one: when it has ended, the console is cooked again
//!   (the console notices at its next request or input).
//! - **Foreground** (`stream::FOREGROUND`) carries the process handle (KILL and WAIT) that
//!   Ctrl-C kills, or none.
//!
//! Whatever a client sends, the console answers (`-errno` for a wrong label, length or
//! handle) and carries on.
#![no_std]
#![no_main]

extern crate alloc;

mod devices;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use abi::errno::{EAGAIN, EINVAL, ENOMEM};
use abi::handle::{Kind, rights};
use abi::stream;
use console_logic::keyboard::KeyboardDecoder;
use console_logic::line_discipline::{LINE_MAX, LineDiscipline, Mode, Reaction};
use console_logic::screen::{Cell, TextConsole};
use userlib::eprintln;
use userlib::ipc::{Endpoint, Message, Notification, OwnedHandle, Reply, Request, Transfer};
use userlib::sys;

use devices::{Keyboard, Serial};

userlib::main!(main);

const ENDPOINT: u64 = 3;
const KEYBOARD_IRQ: u64 = 4;
const SERIAL_IRQ: u64 = 5;
const KEYBOARD_PORTS: u64 = 6;
const SERIAL_PORTS: u64 = 7;
const LOG_READER: u64 = 8;
const FRAMEBUFFER: u64 = 9;

/// The notification bit of each interrupt line.
const KEYBOARD_BIT: u64 = 1 << 0;
const SERIAL_BIT: u64 = 1 << 1;

/// Most character cells kept for the screen (182 x 45 for 1280x720, and room for larger).
const MAX_SCREEN_CELLS: usize = 32 * 1024;
/// How long a read is held before it is given back to the kernel to be asked again
/// (`-EAGAIN`, see `abi::stream`): the reply of a reader killed meanwhile goes then.
const READ_HELD_NS: u64 = 1_000_000_000;
/// How much of the kernel's log the screen starts with, at most.
const LOG_SHOWN: usize = 16 * 1024;
/// Most reads waiting at once; one more is refused with `ENOMEM`.
const MAX_READERS: usize = 64;

/// A `read` waiting for input: its reply, how many bytes it wants, and since when it waits.
struct Reader {
    reply: Reply,
    wanted: usize,
    since_ns: u64,
}

struct Console {
    /// Bound to the endpoint, signalled by both lines: kept for the program's life.
    _input: Notification,
    serial: Serial,
    keyboard: Keyboard,
    screen: Option<TextConsole<'static>>,
    discipline: LineDiscipline,
    decoder: KeyboardDecoder,
    readers: VecDeque<Reader>,
    /// The process Ctrl-C kills.
    foreground: Option<OwnedHandle>,
    /// Whether raw mode was chosen while `foreground` was in front (it ends with it).
    raw_with_foreground: bool,
}

fn main() -> i32 {
    let endpoint = Endpoint::from_raw(ENDPOINT);
    let console = match Console::start(&endpoint) {
        Ok(console) => console,
        Err(why) => {
            eprintln!("console: {why}");
            return 1;
        }
    };
    console.serve(&endpoint)
}

impl Console {
    /// Takes the devices over: ports, framebuffer, and both lines bound to one notification
    /// bound to the endpoint.
    fn start(endpoint: &Endpoint) -> Result<Self, &'static str> {
        sys::ioports_enable(KEYBOARD_PORTS).map_err(|_| "cannot use the keyboard's ports")?;
        sys::ioports_enable(SERIAL_PORTS).map_err(|_| "cannot use COM1's ports")?;
        let serial = Serial::start();
        let keyboard = Keyboard::start();
        let screen = Self::start_screen();
        let notification = Notification::create().map_err(|_| "no notification")?;
        endpoint.bind(&notification).map_err(|_| "cannot bind the notification")?;
        sys::irq_bind(KEYBOARD_IRQ, notification.handle().raw(), KEYBOARD_BIT).map_err(|_| "cannot bind the keyboard's line")?;
        sys::irq_bind(SERIAL_IRQ, notification.handle().raw(), SERIAL_BIT).map_err(|_| "cannot bind COM1's line")?;
        Ok(Self {
            _input: notification,
            serial,
            keyboard,
            screen,
            discipline: LineDiscipline::new(),
            decoder: KeyboardDecoder::new(),
            readers: VecDeque::new(),
            foreground: None,
            raw_with_foreground: false,
        })
    }

    /// The framebuffer terminal, if there is a framebuffer of a format it draws.
    fn start_screen() -> Option<TextConsole<'static>> {
        // SAFETY: mapped once, here, and kept for the program's life.
        let framebuffer = unsafe { userlib::device::map_framebuffer(FRAMEBUFFER) }.ok()?;
        let geometry = devices::geometry(&framebuffer.info)?;
        let cells = Vec::leak(vec![Cell::UNUSED; MAX_SCREEN_CELLS]);
        let mut screen = TextConsole::new(framebuffer.pixels, cells, geometry);
        let mut log = vec![0u8; LOG_SHOWN];
        if let Ok(count) = sys::log_read(LOG_READER, &mut log) {
            screen.write_bytes(&log[..count]);
        }
        screen.draw_all();
        Some(screen)
    }

    fn serve(mut self, endpoint: &Endpoint) -> ! {
        let mut room = vec![0u8; abi::ipc::BUFFER_MAX as usize];
        loop {
            let timeout = if self.readers.is_empty() { abi::ipc::FOREVER } else { READ_HELD_NS };
            let received = endpoint.recv(&mut room, timeout);
            self.give_back_old_reads();
            let Ok(request) = received else { continue };
            self.forget_ended_foreground();
            if let Some(bits) = request.notification() {
                self.take_input(bits);
                continue;
            }
            let len = request.arrived.len.min(room.len());
            self.answer(request, &room[..len]);
        }
    }

    /// Serves one call: the reply goes now, or (a read without input) later.
    fn answer(&mut self, request: Request, bytes: &[u8]) {
        // Handles that arrived are closed unless kept.
        let mut arrived: Vec<OwnedHandle> =
            request.arrived.handles().iter().map(|&number| OwnedHandle::from_raw(u64::from(number))).collect();
        let Some(reply) = request.reply else { return };
        let result = match request.message.label {
            stream::WRITE if arrived.is_empty() => {
                self.output(bytes);
                Ok(bytes.len() as u64)
            }
            stream::READ if arrived.is_empty() => {
                let wanted = request.message.words[0] as usize;
                if self.readers.len() >= MAX_READERS {
                    Err(ENOMEM)
                } else {
                    self.readers.push_back(Reader { reply, wanted, since_ns: sys::uptime_ns() });
                    self.serve_readers();
                    return;
                }
            }
            stream::MODE if arrived.is_empty() => self.set_mode(request.message.words[0]),
            stream::FOREGROUND if arrived.len() <= 1 => self.set_foreground(arrived.pop()),
            _ => Err(EINVAL),
        };
        let _ = reply.send(&Message::new(stream::reply_label(result), [0; 4]));
    }

    /// Writes program output (or echo) to COM1 and the screen, and draws it.
    fn output(&mut self, bytes: &[u8]) {
        self.serial.write(bytes);
        if let Some(screen) = self.screen.as_mut() {
            screen.write_bytes(bytes);
            screen.draw_all();
        }
    }

    fn set_mode(&mut self, mode: u64) -> Result<u64, i64> {
        let mode = match mode {
            abi::CONSOLE_COOKED => Mode::Cooked,
            abi::CONSOLE_RAW => Mode::Raw,
            _ => return Err(EINVAL),
        };
        let previous = self.discipline.mode();
        self.discipline.set_mode(mode);
        self.raw_with_foreground = mode == Mode::Raw && self.foreground.is_some();
        // Switching to raw makes typed-ahead lines readable byte by byte at once.
        self.serve_readers();
        Ok(match previous {
            Mode::Cooked => abi::CONSOLE_COOKED,
            Mode::Raw => abi::CONSOLE_RAW,
        })
    }

    fn set_foreground(&mut self, process: Option<OwnedHandle>) -> Result<u64, i64> {
        if let Some(process) = &process {
            let (kind, granted) = process.info().map_err(|errno| errno.0)?;
            let needed = rights::KILL | rights::WAIT;
            if kind != Some(Kind::Process) || granted & needed != needed {
                return Err(EINVAL);
            }
        }
        self.end_foreground();
        self.foreground = process;
        Ok(0)
    }

    /// Drops the foreground process; the raw mode it owned ends with it.
    fn end_foreground(&mut self) {
        self.foreground = None;
        if core::mem::take(&mut self.raw_with_foreground) {
            self.discipline.set_mode(Mode::Cooked);
        }
    }

    /// If the foreground process has ended, forgets it (and the raw mode it owned).
    fn forget_ended_foreground(&mut self) {
        let ended = self.foreground.as_ref().is_some_and(|process| sys::wait_handle(process.raw(), 0).is_ok());
        if ended {
            // `wait` closed the handle already.
            self.foreground.take().map(OwnedHandle::into_raw);
            if core::mem::take(&mut self.raw_with_foreground) {
                self.discipline.set_mode(Mode::Cooked);
            }
        }
    }

    /// Reads what the interrupting devices have, feeds it to the line discipline, and
    /// unmasks their lines.
    fn take_input(&mut self, bits: u64) {
        if bits & KEYBOARD_BIT != 0 {
            while let Some(scancode) = self.keyboard.read() {
                if let Some(key) = self.decoder.decode(scancode) {
                    for &byte in key.as_slice() {
                        self.feed(byte);
                    }
                }
            }
            let _ = sys::irq_ack(KEYBOARD_IRQ);
        }
        if bits & SERIAL_BIT != 0 {
            while let Some(byte) = self.serial.read() {
                self.feed(byte);
            }
            let _ = sys::irq_ack(SERIAL_IRQ);
        }
    }

    fn feed(&mut self, byte: u8) {
        let mut echo = Vec::new();
        let reaction = self.discipline.feed(byte, &mut |bytes| echo.extend_from_slice(bytes));
        if !echo.is_empty() {
            self.output(&echo);
        }
        match reaction {
            Reaction::None => {}
            Reaction::InputReady => self.serve_readers(),
            Reaction::Interrupt => {
                if let Some(process) = &self.foreground {
                    // It may have ended already; then there is nothing to kill.
                    let _ = sys::kill_handle(process.raw());
                }
                if self.discipline.mode() == Mode::Raw {
                    self.serve_readers();
                }
            }
        }
    }

    /// Gives the reads held for [`READ_HELD_NS`] back to the kernel, which asks again.
    fn give_back_old_reads(&mut self) {
        let now = sys::uptime_ns();
        while self.readers.front().is_some_and(|reader| now - reader.since_ns >= READ_HELD_NS) {
            let reader = self.readers.pop_front().expect("a reader is waiting");
            let _ = reader.reply.send(&Message::new(stream::reply_label(Err(EAGAIN)), [0; 4]));
        }
    }

    /// Answers waiting reads, oldest first, while there is input for them.
    fn serve_readers(&mut self) {
        let mut input = [0u8; LINE_MAX + 1];
        while let Some(reader) = self.readers.front() {
            let wanted = reader.wanted.min(input.len());
            if wanted == 0 {
                let reader = self.readers.pop_front().expect("a reader is waiting");
                let _ = reader.reply.send(&Message::new(0, [0; 4]));
                continue;
            }
            let Some(count) = self.discipline.peek(&mut input[..wanted]) else { return };
            let reader = self.readers.pop_front().expect("a reader is waiting");
            let mut transfer = Transfer { send: &input[..count], ..Transfer::default() };
            // Input is let go of only when a reader got it: one killed while it waited (a
            // shell ended by `svc restart fs`, say) leaves it for the next, who would
            // otherwise lose the first key typed (in raw mode, one key is one read).
            if reader.reply.send_with(&Message::new(count as u64, [0; 4]), &mut transfer).is_ok() {
                self.discipline.consume(count);
            }
        }
    }
}
