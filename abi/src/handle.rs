//! Handles: the small integers through which a process names kernel objects, and the rights
//! each handle carries.
//!
//! A process can use only the handles in its own table (at most [`HANDLE_MAX`]); a number
//! from another process's table means nothing here. A number is a slot index (below
//! `HANDLE_MAX`) with the slot's generation above it, always below bit 31: closing a handle
//! moves its slot to the next generation, so a closed handle's number names nothing
//! (`EBADF`) rather than whatever was opened next. The handles a process starts with are
//! numbered 0, 1, 2, ... (generation 0); `handle_list` lists the numbers held. Every handle names one object and a set
//! of rights; an operation that needs a right the handle lacks fails with `EPERM`, and a
//! number that names no handle (free, closed, out of range) or names an object of the wrong
//! kind fails with `EBADF`. Duplicating a handle can only keep or drop rights, never add one.

/// Most handles one process may hold (a power of two: the low bits of a number are its slot).
pub const HANDLE_MAX: usize = 256;

/// "No handle", where a syscall takes or returns an optional one.
pub const NO_HANDLE: u64 = u64::MAX;

/// What kind of object a handle names (the upper half of `handle_info`'s result).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An IPC endpoint: `call` on it (with SEND), `recv` on it (with RECEIVE).
    Endpoint = 2,
    /// The right to answer one `call`, made by `recv` with SEND and TRANSFER (it may be moved
    /// to another process in a message, never copied); used up by `reply`.
    Reply = 3,
    /// A notification: a word of bits that `signal` sets and `wait` takes.
    Notification = 4,
    /// Pages that several processes can map.
    Memory = 5,
    /// A process: `wait` for it, `kill` it, set its exception endpoint.
    Process = 6,
    /// The authority to power the machine off.
    Power = 7,
    /// One end of a kernel pipe: `read` on the read end, `write` on the write end.
    Pipe = 8,
    /// A device's interrupt line: `irq_bind` it to a notification, `irq_ack` it.
    Irq = 9,
    /// A range of I/O ports: `ioports_enable` lets the holder use `in`/`out` on them.
    IoPorts = 10,
    /// A device's physical memory (the framebuffer): `memory_map` it; `framebuffer_info`.
    DeviceMemory = 11,
    /// The kernel's log: `write` appends to it, `log_read` reads what it retains.
    Log = 12,
    /// A job: processes start in it (`spawn`), jobs below it (`job_create`); `kill` ends
    /// them all.
    Job = 13,
    /// A thread: `wait` for it to end, `kill` it (and nothing else of its process), set its
    /// exception endpoint.
    Thread = 14,
}

impl Kind {
    /// Decodes a kind from `handle_info`.
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            2 => Self::Endpoint,
            3 => Self::Reply,
            4 => Self::Notification,
            5 => Self::Memory,
            6 => Self::Process,
            7 => Self::Power,
            8 => Self::Pipe,
            9 => Self::Irq,
            10 => Self::IoPorts,
            11 => Self::DeviceMemory,
            12 => Self::Log,
            13 => Self::Job,
            14 => Self::Thread,
            _ => return None,
        })
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::Reply => "reply",
            Self::Notification => "notification",
            Self::Memory => "memory",
            Self::Process => "process",
            Self::Power => "power",
            Self::Pipe => "pipe",
            Self::Irq => "irq",
            Self::IoPorts => "ioports",
            Self::DeviceMemory => "device memory",
            Self::Log => "log",
            Self::Job => "job",
            Self::Thread => "thread",
        }
    }
}

/// Rights, a bit set per handle. Which ones an object kind uses is said on each.
pub mod rights {
    /// The handle may be duplicated (and copied in a message or at `spawn`).
    pub const DUPLICATE: u32 = 1 << 0;
    /// The handle may be moved to another process in a message.
    pub const TRANSFER: u32 = 1 << 1;
    /// Pipe read end: `read`. Memory, device memory: map readable (and `spawn` from
    /// memory). Log: `log_read`. I/O ports: `ioports_enable` (with WRITE).
    pub const READ: u32 = 1 << 2;
    /// Pipe write end, log: `write`. Memory, device memory: map writable. I/O
    /// ports: `ioports_enable` (with READ).
    pub const WRITE: u32 = 1 << 3;
    /// Memory: map executable (never together with writable in one mapping).
    pub const EXECUTE: u32 = 1 << 4;
    /// Endpoint: `call`. Reply: `reply`.
    pub const SEND: u32 = 1 << 5;
    /// Endpoint: `recv`, and binding a notification to it.
    pub const RECEIVE: u32 = 1 << 6;
    /// Endpoint: mint badged handles.
    pub const MINT: u32 = 1 << 7;
    /// Notification: `signal`.
    pub const SIGNAL: u32 = 1 << 8;
    /// Notification: `wait`. Process, thread: `wait`. Irq: `irq_bind` and `irq_ack`.
    pub const WAIT: u32 = 1 << 9;
    /// Process: `kill` (and so being made a console session's foreground process). Thread:
    /// `kill`, which ends that thread only. Job: `kill`, which ends everything in it.
    pub const KILL: u32 = 1 << 10;
    /// Power: `shutdown`.
    pub const POWER: u32 = 1 << 11;
    /// Job: start processes in it (`spawn`) and make jobs below it (`job_create`).
    pub const MANAGE: u32 = 1 << 12;
    /// Process, thread: set its exception endpoint (`exception_endpoint_set`; later, read and
    /// write its memory and registers).
    pub const DEBUG: u32 = 1 << 13;
    /// Every right.
    pub const ALL: u32 = (1 << 14) - 1;
    /// The rights of a reply handle `recv` makes: it answers, and may be moved (never copied).
    pub const REPLY_HANDLE: u32 = SEND | TRANSFER;
    /// The rights of a new job's handle (`job_create`, and init's root job).
    pub const JOB_HANDLE: u32 = DUPLICATE | TRANSFER | KILL | MANAGE;
    /// The rights of a new process's handle (`spawn`).
    pub const PROCESS_HANDLE: u32 = DUPLICATE | TRANSFER | WAIT | KILL | DEBUG;
    /// The rights of a new thread's handle (`thread_create`).
    pub const THREAD_HANDLE: u32 = DUPLICATE | TRANSFER | WAIT | KILL | DEBUG;
}

/// Packs a kind and rights as `handle_info` returns them.
pub const fn info(kind: Kind, rights: u32) -> u64 {
    ((kind as u64) << 32) | rights as u64
}

/// Splits `handle_info`'s result into the kind and the rights.
pub fn split_info(value: u64) -> (Option<Kind>, u32) {
    (Kind::from_u32((value >> 32) as u32), value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_every_kind() {
        for kind in [Kind::Endpoint, Kind::Reply, Kind::Notification, Kind::Memory, Kind::Process, Kind::Power, Kind::Pipe, Kind::Irq, Kind::IoPorts, Kind::DeviceMemory, Kind::Log, Kind::Job, Kind::Thread] {
            assert_eq!(split_info(info(kind, rights::SEND | rights::MINT)), (Some(kind), rights::SEND | rights::MINT));
            assert_eq!(Kind::from_u32(kind as u32), Some(kind));
        }
        assert_eq!(Kind::from_u32(0), None);
        // 1 was the kernel's console, which is a server now.
        assert_eq!(Kind::from_u32(1), None);
        assert_eq!(split_info(0x99 << 32).0, None);
    }
}
