//! The contract between the Enigma kernel and its user programs.
//!
//! This crate is the one place where syscall numbers, errno values, exit statuses, the user
//! address-space layout and the structs both sides exchange are defined. The kernel's
//! dispatch table and `userlib`'s wrappers are both written against it, so the two can never
//! disagree about a number. It also holds the backtrace format both sides print
//! ([`backtrace`]).
//!
//! Register convention (both `syscall` and `int 0x80`): `rax` holds the number; arguments go
//! in `rdi, rsi, rdx, r10, r8, r9`; the result comes back in `rax`. A result `>= 0` is
//! success, a negative result is `-errno`.
#![no_std]
#![forbid(unsafe_code)]

pub mod backtrace;
pub mod errno;
pub mod exception;
pub mod fault;
pub mod handle;
pub mod ipc;
pub mod memory;
pub mod status;
pub mod stream;
pub mod syscall;

/// A string or byte buffer passed by reference in an argument array (for example `spawn`'s
/// argv): a user pointer and a length. Strings are UTF-8 and not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserStr {
    /// Address of the first byte in the caller's address space.
    pub ptr: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Longest process name the kernel keeps, in bytes.
pub const NAME_MAX: usize = 32;

/// Most arguments `spawn` accepts, including the program name as argv\[0\].
pub const ARGV_MAX: usize = 32;

/// Most handles `spawn` gives a child.
pub const SPAWN_HANDLES_MAX: usize = 16;
/// Most jobs from the root job down to a job, both counted (`job_create` refuses deeper).
pub const JOB_DEPTH_MAX: usize = 16;

/// Most bytes of argument text (all of argv together) `spawn` accepts.
pub const ARGV_BYTES_MAX: usize = 4096;

/// Most processes at once (`spawn` fails with `EAGAIN` past it).
pub const PROCESSES_MAX: usize = 64;
/// Most threads at once, over every process (`spawn` and `thread_create` fail with
/// `EAGAIN` past it).
pub const THREADS_MAX: usize = 128;
/// Most threads one process may have at once (`thread_create` fails with `EAGAIN` past it).
pub const THREADS_PER_PROCESS_MAX: usize = 32;

/// The state of a process as `process_list` reports it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Waiting in the run queue.
    Ready = 0,
    /// On the CPU (the caller of `process_list` is always in this state).
    Running = 1,
    /// Off the run queue until an event (console input, a message, a process's end, a timer).
    Blocked = 2,
    /// Ended, and leaving: its CPU is switching away from it, and it leaves the table (with
    /// its kernel stack and its object's last kernel reference) once that switch is done.
    Ending = 3,
}

impl ProcessState {
    /// Decodes the `state` field of a [`ProcessInfo`].
    pub fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Ready),
            1 => Some(Self::Running),
            2 => Some(Self::Blocked),
            3 => Some(Self::Ending),
            _ => None,
        }
    }

    /// A short lower-case label for listings.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Ending => "ending",
        }
    }
}

/// One row of `process_list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent's process id (0 for the first process).
    pub parent: u32,
    /// A [`ProcessState`] as `u32`.
    pub state: u32,
    /// Bytes of `name` in use.
    pub name_len: u32,
    /// The program name, UTF-8, `name_len` bytes long.
    pub name: [u8; NAME_MAX],
    /// Memory charged to the process, in bytes: its user pages (code, data, heap, stack,
    /// `mmap`) and its page tables. This is what the per-process limit counts.
    pub memory_bytes: u64,
    /// Nanoseconds the process has spent running on a CPU (in ring 3 or in the kernel on its
    /// behalf), up to the moment of the listing.
    pub cpu_time_ns: u64,
    /// The CPU it runs on, or last ran on (0 for one that never ran).
    pub cpu: u32,
    /// Its threads that have not ended yet.
    pub threads: u32,
}

impl ProcessInfo {
    /// An all-zero row, for sizing buffers.
    pub const EMPTY: Self = Self {
        pid: 0,
        parent: 0,
        state: 0,
        name_len: 0,
        name: [0; NAME_MAX],
        memory_bytes: 0,
        cpu_time_ns: 0,
        cpu: 0,
        threads: 0,
    };

    /// The name as text (lossy only if the kernel sent invalid UTF-8, which it never does).
    pub fn name(&self) -> &str {
        let len = (self.name_len as usize).min(NAME_MAX);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// System-wide figures from `sysinfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysInfo {
    /// Physical frames (4 KiB) the frame allocator manages.
    pub total_frames: u64,
    /// Of those, frames currently free. Compared before and after a test, it reveals leaks.
    pub free_frames: u64,
    /// Kernel heap size in bytes.
    pub heap_size: u64,
    /// Kernel heap bytes in use.
    pub heap_used: u64,
    /// Nanoseconds since boot.
    pub uptime_ns: u64,
    /// Processes in the table, zombies included.
    pub processes: u32,
    /// The most processes the table holds.
    pub max_processes: u32,
    /// Most memory one process may be charged for, in bytes: its user pages and its page
    /// tables together.
    pub max_process_memory: u64,
    /// Hardware protections in force: a bit set of `PROTECTION_*`.
    pub protections: u32,
    /// Timer interrupts per second.
    pub timer_hz: u32,
    /// The longest stretch the kernel ran with interrupts masked since the first process
    /// started, in nanoseconds (under QEMU's `-icount shift=0`, guest instructions).
    pub longest_masked_ns: u64,
    /// Kernel objects alive (endpoints, notifications, memory, processes...): compared
    /// before and after a test, it reveals leaked objects.
    pub kernel_objects: u64,
    /// CPUs running.
    pub cpus: u32,
    /// The CPU that ran this `sysinfo` call (a process may move to another CPU at any time,
    /// so this is what it was, not what it is).
    pub current_cpu: u32,
}

/// A linear framebuffer's layout, as `framebuffer_info` reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramebufferInfo {
    /// Visible pixels per row.
    pub width: u32,
    /// Visible pixel rows.
    pub height: u32,
    /// Pixels from the start of one row to the start of the next.
    pub stride: u32,
    /// Bytes per pixel.
    pub bytes_per_pixel: u32,
    /// [`PIXEL_RGB`], [`PIXEL_BGR`] or [`PIXEL_GRAY`].
    pub format: u32,
}

/// `FramebufferInfo::format`: red, green, blue bytes.
pub const PIXEL_RGB: u32 = 0;
/// `FramebufferInfo::format`: blue, green, red bytes.
pub const PIXEL_BGR: u32 = 1;
/// `FramebufferInfo::format`: one luminance byte.
pub const PIXEL_GRAY: u32 = 2;

/// Most I/O port ranges one process may have enabled.
pub const IO_RANGES_MAX: usize = 4;

/// The handles the kernel gives the first process (`init`), by number. A device the kernel
/// did not find leaves its slot empty. Nobody else gets any of them except from init.
pub mod init_handles {
    /// The power handle (POWER).
    pub const POWER: u64 = 3;
    /// The boot ramdisk, read-only memory.
    pub const RAMDISK: u64 = 4;
    /// The PS/2 keyboard's interrupt line (1).
    pub const KEYBOARD_IRQ: u64 = 5;
    /// COM1's interrupt line (4).
    pub const SERIAL_IRQ: u64 = 6;
    /// The PS/2 controller's ports (0x60..=0x64).
    pub const PS2_PORTS: u64 = 7;
    /// COM1's ports (0x3f8..=0x3ff).
    pub const SERIAL_PORTS: u64 = 8;
    /// The framebuffer, as device memory.
    pub const FRAMEBUFFER: u64 = 9;
    /// The kernel's log (READ and WRITE).
    pub const LOG: u64 = 10;
    /// COM2's interrupt line (3), a spare device for tests and `bench`, if COM2 exists.
    pub const SPARE_IRQ: u64 = 11;
    /// COM2's ports (0x2f8..=0x2ff), if COM2 exists.
    pub const SPARE_PORTS: u64 = 12;
    /// The root job, which init runs in (DUPLICATE, TRANSFER, KILL, MANAGE): every process
    /// is in it or in a job below it.
    pub const ROOT_JOB: u64 = 13;
}

/// `SysInfo::protections`: supervisor-mode execution prevention is on.
pub const PROTECTION_SMEP: u32 = 1 << 0;
/// `SysInfo::protections`: supervisor-mode access prevention is on.
pub const PROTECTION_SMAP: u32 = 1 << 1;
/// `SysInfo::protections`: user-mode instruction prevention is on.
pub const PROTECTION_UMIP: u32 = 1 << 2;
/// `SysInfo::protections`: no-execute pages are on.
pub const PROTECTION_NX: u32 = 1 << 3;
/// `SysInfo::protections`: the kernel honours read-only pages (CR0.WP).
pub const PROTECTION_WP: u32 = 1 << 4;

/// How a child ended, as `wait` stores it: its exit status and, when a CPU fault in ring 3
/// killed it, which fault, where and why. Programs use it to say how a child died and tests
/// to check that a child died of the fault they expected.
///
/// `repr(C)`, 32 bytes, no padding: an `i32` and a `u32`, then three `u64` at offsets 8, 16
/// and 24.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status: what the process passed to `exit`, or one of `status::*` (a fault is
    /// `status::FAULT`).
    pub status: i32,
    /// The exception vector (`fault::*`) that killed the process, or [`NO_FAULT`].
    pub fault_vector: u32,
    /// For a page fault, the address the access was for (CR2); 0 otherwise.
    pub fault_address: u64,
    /// The address of the faulting instruction; for a return to ring 3 that faulted (a
    /// non-canonical return address), the address being returned to. 0 without a fault.
    pub fault_ip: u64,
    /// The CPU's error code (`fault::PF_*` bits for a page fault; a selector index for some
    /// general protection faults); 0 when the exception has none, or without a fault.
    pub fault_error: u64,
}

/// `ExitInfo::fault_vector` of a process no CPU fault killed.
pub const NO_FAULT: u32 = u32::MAX;

impl ExitInfo {
    /// A process that ended with `status` without a fault.
    pub const fn exited(status: i32) -> Self {
        Self { status, fault_vector: NO_FAULT, fault_address: 0, fault_ip: 0, fault_error: 0 }
    }

    /// The vector of the fault that killed the process, if one did.
    pub fn fault(&self) -> Option<u32> {
        (self.fault_vector != NO_FAULT).then_some(self.fault_vector)
    }
}

/// `mmap`/`mprotect` protection bit: readable. Every mapping is readable.
pub const PROT_READ: u64 = 1 << 0;
/// `mmap`/`mprotect` protection bit: writable. Never together with [`PROT_EXEC`].
pub const PROT_WRITE: u64 = 1 << 1;
/// `mmap`/`mprotect` protection bit: executable. Never together with [`PROT_WRITE`].
pub const PROT_EXEC: u64 = 1 << 2;

/// `wait`'s handle argument meaning "any process this one holds a handle with WAIT to".
pub const WAIT_ANY: i64 = -1;

/// A console session's mode (`stream::MODE`): the console's line discipline edits lines,
/// echoes and handles Ctrl-C (the default).
pub const CONSOLE_COOKED: u64 = 0;
/// A console session's mode (`stream::MODE`): every input byte goes to the reader as typed,
/// without echo. Ctrl-C
/// still kills the foreground process. Arrow keys arrive as ANSI sequences (`ESC [ A`..`D`).
pub const CONSOLE_RAW: u64 = 1;

/// The control bytes of console input: what the keyboard driver and a serial terminal send,
/// what the console's line discipline and `userlib`'s line editor act on.
pub mod keys {
    /// Ctrl-C: interrupt.
    pub const CTRL_C: u8 = 0x03;
    /// Ctrl-D: end of input on an empty line.
    pub const CTRL_D: u8 = 0x04;
    /// Backspace (also echoed to move the cursor one column left).
    pub const BACKSPACE: u8 = 0x08;
    /// Delete, which terminals send for the Backspace key.
    pub const DELETE: u8 = 0x7f;
    /// Escape: starts an ANSI sequence such as `ESC [ A` (arrow up).
    pub const ESCAPE: u8 = 0x1b;
}

/// The base registers `tls_set` and `tls_get` name (their `which`), for thread-local
/// storage: each context keeps its own, loaded whenever it runs.
pub mod tls {
    /// FS: `mov rax, fs:[0]` reads the word at the FS base.
    pub const FS: u64 = 0;
    /// GS, as ring 3 sees it.
    pub const GS: u64 = 1;
    /// The first address that is not a valid base: a base must be a canonical lower-half
    /// address (`EINVAL` otherwise), as every user address is.
    pub const BASE_END: u64 = crate::memory::USER_END;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_info_has_the_documented_layout() {
        assert_eq!(size_of::<ExitInfo>(), 32);
        assert_eq!(core::mem::offset_of!(ExitInfo, fault_vector), 4);
        assert_eq!(core::mem::offset_of!(ExitInfo, fault_address), 8);
        assert_eq!(core::mem::offset_of!(ExitInfo, fault_ip), 16);
        assert_eq!(core::mem::offset_of!(ExitInfo, fault_error), 24);
    }

    #[test]
    fn a_plain_exit_reports_no_fault() {
        let info = ExitInfo::exited(3);
        assert_eq!((info.status, info.fault()), (3, None));
        let faulted = ExitInfo { fault_vector: fault::PAGE_FAULT, ..ExitInfo::exited(status::FAULT) };
        assert_eq!(faulted.fault(), Some(fault::PAGE_FAULT));
    }
}
