//! Random exception handling (decisions 69 and 72): a tiny child (`process::spawn_code`)
//! that loops on a `syscall`, an `int 0x80`, a `ud2` or an `int3`, spawned into a job of its
//! own whose exception endpoint the worker serves, with or without `SYSCALLS`. For a few
//! messages the worker reads and writes the stopped child's state (registers changed at
//! random, FPU areas with random bytes), starts threads in it with random registers, and
//! answers at random: resume as it was, resume with changed registers (non-canonical RIPs,
//! kernel-half bases, rcx and r11 that `sysretq` cannot restore), kill, an unknown label, a
//! wrong length, or no answer at all. Then it kills the job and reaps the child. The checks:
//! every message is a fault or syscall message with all its registers, every error a known
//! errno (a bad write is refused, never taken), the kernel survives whatever is restored, and
//! the registers read through the process handle are those of the first thread's message.

use abi::exception::{FAULT, REGISTERS_SIZE, Registers, STATE_FPU, STATE_REGISTERS, SYSCALL, SYSCALLS};
use userlib::exception;
use userlib::ipc::{self, Endpoint, Message, Transfer};
use userlib::sys;

use super::{KNOWN_ERRNOS, Worker};
use crate::{MS, Rng};

/// Messages served per round, at most.
const MESSAGES: u64 = 4;
/// How long the worker waits for the child's next message (one that was resumed with
/// registers the kernel refuses has ended, and sends none).
const WAIT_NS: u64 = 50 * MS;

impl Worker {
    /// One round: a child in a handled job, a few of its messages served at random, the job
    /// killed.
    pub(super) fn stop_round(&mut self, index: u64, rng: &mut Rng) {
        let Ok(endpoint) = Endpoint::create() else { return };
        let Ok(job) = sys::job_create(None) else { return };
        let flags = if rng.below(2) == 0 { SYSCALLS } else { 0 };
        let number = 256 + rng.below(1000) as u32;
        let [a, b, c, d] = number.to_le_bytes();
        let code: &[u8] = match rng.below(4) {
            // mov eax, NUMBER; syscall; jmp back
            0 => &[0xb8, a, b, c, d, 0x0f, 0x05, 0xeb, 0xf7],
            // mov eax, NUMBER; int 0x80; jmp back
            1 => &[0xb8, a, b, c, d, 0xcd, 0x80, 0xeb, 0xf7],
            // ud2; jmp back
            2 => &[0x0f, 0x0b, 0xeb, 0xfc],
            // int3; jmp back
            _ => &[0xcc, 0xeb, 0xfd],
        };
        let child = exception::set_job(job, Some(&endpoint), flags)
            .and_then(|()| userlib::process::spawn_code(code, "fuzz-stop", Some(job)));
        if let Ok(child) = child {
            for _ in 0..MESSAGES {
                if !self.serve_one(index, rng, &endpoint, child.handle) {
                    break;
                }
            }
            let _ = sys::kill_handle(job);
            if let Err(errno) = sys::wait(Some(child)) {
                self.problem(index, format_args!("wait for a handled child: {errno:?}"));
            }
        }
        let _ = sys::kill_handle(job);
        let _ = ipc::close(job);
    }

    /// Serves one message of the child `child` names; false when none came or the child was
    /// let go.
    fn serve_one(&mut self, index: u64, rng: &mut Rng, endpoint: &Endpoint, child: u64) -> bool {
        let mut room = [0u8; REGISTERS_SIZE];
        let Ok(request) = endpoint.recv(&mut room, WAIT_NS) else { return false };
        let label = request.message.label;
        let registers = Registers::from_bytes(&room[..request.arrived.len.min(REGISTERS_SIZE)]);
        let (Some(registers), true) = (registers, label == FAULT || label == SYSCALL) else {
            self.problem(index, format_args!("a handled child sent label {label:#x} with {} bytes", request.arrived.len));
            return false;
        };
        let Some(reply) = request.reply else {
            self.problem(index, format_args!("a fault or syscall message without a reply handle"));
            return false;
        };
        let first = request.message.words[3] == u64::from(sys::process_pid(child).unwrap_or(0));
        self.poke_state(index, rng, child, first.then_some(registers));
        if rng.below(4) == 0 {
            let mut odd = Registers::from_words(core::array::from_fn(|_| rng.next()));
            odd.rip = rng.pick(&[odd.rip, 0, userlib::process::CODE_LOAD_ADDRESS + userlib::process::CODE_OFFSET as u64]);
            match sys::thread_start(child, &odd) {
                Ok(thread) => {
                    let _ = ipc::close(thread);
                }
                Err(errno) => self.known(index, "thread_start", errno.0),
            }
        }
        let mut answer = registers;
        match rng.below(8) {
            0 => answer.rip = rng.pick(&[1 << 47, u64::MAX, 0xffff_8000_0000_0000]),
            1 => {
                let user = rng.next() & 0x7fff_ffff_f000;
                answer.fs_base = rng.pick(&[1 << 47, 0xffff_8000_0000_0000, user]);
            }
            2 => (answer.rcx, answer.r11, answer.rax) = (rng.next(), rng.next(), rng.next()),
            3 => answer.rflags = rng.next(),
            _ => {}
        }
        let bytes = answer.to_bytes();
        // Whether the child may go on (and send more): not after an answer that ends it.
        let (label, send, goes_on): (u64, &[u8], bool) = match rng.below(7) {
            0 => (exception::RESUME, &[], true),
            1 => (exception::KILL, &[], false),
            2 => (rng.next(), &bytes, false),
            3 => (exception::RESUME, &bytes[..rng.below(REGISTERS_SIZE as u64) as usize], false),
            4 => {
                drop(reply);
                return false;
            }
            _ => (exception::RESUME, &bytes, true),
        };
        let mut transfer = Transfer { send, ..Transfer::default() };
        let _ = reply.send_with(&Message::new(label, [0; 4]), &mut transfer);
        goes_on
    }

    /// Reads and writes the stopped child's state at random; `stopped` is the message's
    /// registers when the first thread sent it (the one a process handle names).
    fn poke_state(&mut self, index: u64, rng: &mut Rng, child: u64, stopped: Option<Registers>) {
        let mut bytes = [0u8; REGISTERS_SIZE];
        match sys::thread_state_read(child, STATE_REGISTERS, &mut bytes) {
            Ok(_) => {
                if let Some(stopped) = stopped
                    && Registers::from_bytes(&bytes) != Some(stopped)
                {
                    self.problem(index, format_args!("thread_state_read differs from the stopped thread's message"));
                }
            }
            Err(errno) => self.known(index, "thread_state_read", errno.0),
        }
        let other = rng.next();
        let which = rng.pick(&[STATE_REGISTERS, STATE_FPU, STATE_FPU, other]);
        let mut area = [0u8; 1024];
        let size = match sys::thread_state_read(child, which, &mut area) {
            Ok(size) => size.min(area.len()),
            Err(errno) => {
                self.known(index, "thread_state_read", errno.0);
                return;
            }
        };
        for _ in 0..rng.below(8) {
            let at = rng.below(size as u64) as usize;
            area[at] = rng.next() as u8;
        }
        if let Err(errno) = sys::thread_state_write(child, which, &area[..size]) {
            self.known(index, "thread_state_write", errno.0);
        }
    }

    /// A problem unless `errno` is a known one.
    fn known(&mut self, index: u64, what: &str, errno: i64) {
        if !KNOWN_ERRNOS.contains(&errno) {
            self.problem(index, format_args!("{what} returned {errno}, not an errno"));
        }
    }
}
