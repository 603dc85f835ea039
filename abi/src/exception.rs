//! Faults as messages: what the kernel sends a thread's exception endpoint when the thread
//! faults in ring 3, and what the handler answers (see `syscall::EXCEPTION_ENDPOINT_SET`).
//!
//! The kernel `call`s the endpoint on the faulting thread's behalf, so the thread waits as a
//! caller (it can be killed meanwhile, and the handler gets a reply handle). The message:
//! label [`FAULT`], words `[vector, error code, fault address (CR2 for a page fault, else 0),
//! thread id]`, and a buffer holding the thread's [`Registers`] (receive with room for
//! [`REGISTERS_SIZE`] bytes). The handler answers through the reply handle with label
//! [`RESUME`] (and, optionally, a buffer of [`REGISTERS_SIZE`] bytes with new registers: the
//! thread resumes with them, sanitised, see [`Registers::sanitised`]) or [`KILL`]: the
//! process ends with `status::FAULT` and the fault in its `ExitInfo`, as it would with no
//! endpoint. Any other label, a reply handle closed unused, or a handler gone is [`KILL`].
//!
//! **System calls as messages.** A process born in a job whose exception endpoint was set
//! with [`SYSCALLS`] makes no Enigma system call at all: every `syscall` instruction and every
//! `int 0x80` of its threads is delivered the same way, with label [`SYSCALL`], words
//! `[number (rax), flags (IN_SYSCALL, plus VIA_INT80 for int 0x80), 0, thread id]` and the
//! registers as the CPU left them (rip after the instruction; for `syscall`, rcx = that rip
//! and r11 = rflags, as the instruction sets them). The handler answers [`RESUME`] with
//! registers (rax = the result) and the thread goes on after the instruction with exactly
//! those registers (rcx and r11 too), or [`KILL`]. A RESUME without registers resumes with
//! the registers as they are (as `thread_state_write` may have left them).

/// The label of the message a fault sends.
pub const FAULT: u64 = 0x4578_6300;
/// The label of the message a system call of a process in syscall mode sends.
pub const SYSCALL: u64 = 0x4578_6303;
/// The answer that resumes the thread (with the registers the answer's buffer holds, if it
/// holds [`REGISTERS_SIZE`] bytes; else as it was).
pub const RESUME: u64 = 0x4578_6301;
/// The answer that ends the faulting process with `status::FAULT`.
pub const KILL: u64 = 0x4578_6302;

/// [`Registers::flags`]: the thread stopped in a system call (a [`SYSCALL`] message; always
/// clear for a fault).
pub const IN_SYSCALL: u64 = 1 << 0;
/// [`Registers::flags`]: the system call was `int 0x80` (clear: the `syscall` instruction).
pub const VIA_INT80: u64 = 1 << 1;

/// `exception_endpoint_set` flag: the processes spawned into the job (or below it) from now
/// on make their system calls as messages (only on a job handle).
pub const SYSCALLS: u64 = 1 << 0;

/// `thread_state_read`/`thread_state_write`'s `which`: the [`Registers`] ([`REGISTERS_SIZE`]
/// bytes).
pub const STATE_REGISTERS: u64 = 0;
/// `thread_state_read`/`thread_state_write`'s `which`: the x87/SSE/AVX registers, as `xsave`
/// lays them out (standard format; `fxsave`'s 512 bytes on a CPU without XSAVE). Its size:
/// `thread_state_read(thread, STATE_FPU, 0, 0)`.
pub const STATE_FPU: u64 = 1;

/// The RFLAGS bits a handler may change: CF, PF, AF, ZF, SF, TF, DF, OF, AC and ID. IF is
/// always set and IOPL always 0 when the thread resumes; bit 1 always reads as one.
pub const USER_RFLAGS: u64 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 18) | (1 << 21);
/// RFLAGS.IF, which a resumed thread always has.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS.TF: set it to single-step (a debug exception, vector 1, after the next instruction).
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS bit 1, which is always one.
pub const RFLAGS_FIXED: u64 = 1 << 1;

/// A thread's user registers, as a fault message carries them and a resume may set them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Registers {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The FS base (`tls_set`'s); must be below `tls::BASE_END` to resume with.
    pub fs_base: u64,
    /// The user GS base; must be below `tls::BASE_END` to resume with.
    pub gs_base: u64,
    /// [`IN_SYSCALL`] (and [`VIA_INT80`]), or 0; ignored when resuming.
    pub flags: u64,
    /// Zero; room for later.
    pub reserved: u64,
}

/// How many `u64`s [`Registers`] has.
pub const REGISTERS_WORDS: usize = 22;
/// The size of [`Registers`] in bytes, as a message carries it.
pub const REGISTERS_SIZE: usize = REGISTERS_WORDS * 8;
const _: () = assert!(core::mem::size_of::<Registers>() == REGISTERS_SIZE);

/// Why registers a handler set cannot be resumed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRegisters {
    /// RIP is not a canonical lower-half (user) address.
    InstructionPointer(u64),
    /// RSP is not a canonical lower-half (user) address.
    StackPointer(u64),
    /// The FS or GS base is not a lower-half address.
    TlsBase(u64),
}

/// Whether `address` is canonical and in the lower half.
pub fn is_user_address(address: u64) -> bool {
    address < 1 << 47
}

impl Registers {
    /// Every register zero (`Default` in a `const`).
    pub const ZERO: Self = Self::from_words([0; REGISTERS_WORDS]);

    /// The fields in order.
    pub fn to_words(&self) -> [u64; REGISTERS_WORDS] {
        [
            self.rip, self.rsp, self.rflags, self.rax, self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp,
            self.r8, self.r9, self.r10, self.r11, self.r12, self.r13, self.r14, self.r15, self.fs_base, self.gs_base,
            self.flags, self.reserved,
        ]
    }

    /// Registers from their fields in order.
    pub const fn from_words(words: [u64; REGISTERS_WORDS]) -> Self {
        let [rip, rsp, rflags, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15, fs_base, gs_base, flags, reserved] =
            words;
        Self { rip, rsp, rflags, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15, fs_base, gs_base, flags, reserved }
    }

    /// The bytes a message carries (little-endian fields in order).
    pub fn to_bytes(&self) -> [u8; REGISTERS_SIZE] {
        let mut bytes = [0; REGISTERS_SIZE];
        for (chunk, word) in bytes.as_chunks_mut::<8>().0.iter_mut().zip(self.to_words()) {
            *chunk = word.to_le_bytes();
        }
        bytes
    }

    /// Registers from a message's bytes; `None` unless there are exactly [`REGISTERS_SIZE`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != REGISTERS_SIZE {
            return None;
        }
        let mut words = [0; REGISTERS_WORDS];
        for (word, chunk) in words.iter_mut().zip(bytes.as_chunks::<8>().0) {
            *word = u64::from_le_bytes(*chunk);
        }
        Some(Self::from_words(words))
    }

    /// The registers a thread resumes with when a handler asked for these: RIP and RSP must be
    /// user addresses, and the FS and GS bases below `tls::BASE_END` (as `tls_set` wants);
    /// RFLAGS keeps only [`USER_RFLAGS`], with IF (and bit 1) set and IOPL 0.
    pub fn sanitised(&self) -> Result<Self, BadRegisters> {
        if !is_user_address(self.rip) {
            return Err(BadRegisters::InstructionPointer(self.rip));
        }
        if !is_user_address(self.rsp) {
            return Err(BadRegisters::StackPointer(self.rsp));
        }
        for base in [self.fs_base, self.gs_base] {
            if base >= crate::tls::BASE_END {
                return Err(BadRegisters::TlsBase(base));
            }
        }
        let rflags = (self.rflags & USER_RFLAGS) | RFLAGS_IF | RFLAGS_FIXED;
        Ok(Self { rflags, flags: 0, reserved: 0, ..*self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip_through_bytes() {
        let mut words = [0; REGISTERS_WORDS];
        for (index, word) in words.iter_mut().enumerate() {
            *word = 0x1111_0000_0000_0000 * (index as u64 % 7) + index as u64;
        }
        let registers = Registers::from_words(words);
        assert_eq!(registers.to_words(), words);
        assert_eq!(Registers::from_bytes(&registers.to_bytes()), Some(registers));
        assert_eq!(Registers::from_bytes(&[0; REGISTERS_SIZE - 1]), None);
    }

    #[test]
    fn sanitising_refuses_kernel_addresses_and_privileged_flags() {
        let good = Registers { rip: 0x40_1000, rsp: 0x7fff_f000, rflags: u64::MAX, ..Registers::default() };
        let clean = good.sanitised().unwrap();
        assert_eq!(clean.rflags & (3 << 12), 0, "IOPL cleared");
        assert_ne!(clean.rflags & RFLAGS_IF, 0);
        assert_eq!(clean.rflags & (1 << 17), 0, "VM cleared");
        assert_ne!(clean.rflags & RFLAGS_TF, 0, "TF kept");
        let kernel = Registers { rip: 0xffff_8000_0000_0000, ..good };
        assert_eq!(kernel.sanitised(), Err(BadRegisters::InstructionPointer(0xffff_8000_0000_0000)));
        let odd = Registers { rsp: 0x0000_8000_0000_0000, ..good };
        assert_eq!(odd.sanitised(), Err(BadRegisters::StackPointer(0x0000_8000_0000_0000)));
        let base = Registers { gs_base: 0xffff_8000_0000_0000, ..good };
        assert_eq!(base.sanitised(), Err(BadRegisters::TlsBase(0xffff_8000_0000_0000)));
    }
}
