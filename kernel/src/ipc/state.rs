//! What a thread is doing in IPC, kept in its [`ThreadObject`](crate::task::thread::ThreadObject):
//! the message it is sending while it waits (messages wait in their sender, never in the
//! endpoint), where a message for it should go, and what a partner delivered to it.

use alloc::boxed::Box;
use alloc::sync::Arc;

use abi::ipc::{HANDLES_MAX, WORDS};

use super::endpoint::Endpoint;
use super::notification::Notification;
use crate::object::Handle;

/// A range of the process's own memory, checked when the syscall began (its mappings cannot
/// change while it is blocked, since only it changes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserBuffer {
    /// First byte.
    pub address: u64,
    /// Length (for a destination, its capacity).
    pub len: u64,
}

/// Where a message's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bytes {
    /// In the sender's memory.
    User(UserBuffer),
    /// The first `len` of the sending thread's [`IpcState::kernel_bytes`] (at most
    /// [`KERNEL_BYTES_MAX`]): a call the kernel makes on the thread's behalf (a fault).
    Kernel {
        /// How many.
        len: u64,
    },
}

impl Bytes {
    /// How many bytes there are.
    pub fn len(self) -> u64 {
        match self {
            Self::User(buffer) => buffer.len,
            Self::Kernel { len } => len,
        }
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Where received bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// The receiving process's memory.
    User(UserBuffer),
    /// The receiving thread's [`IpcState::kernel_bytes`], up to [`KERNEL_BYTES_MAX`]: the reply
    /// to a call the kernel made on its behalf.
    Kernel,
}

/// Most bytes the kernel sends or takes on a thread's behalf: an exception's registers.
pub const KERNEL_BYTES_MAX: usize = abi::exception::REGISTERS_SIZE;

/// Bytes the kernel sends or takes on a thread's behalf, kept in its IPC state (no
/// allocation).
#[derive(Clone, Copy, Debug)]
pub struct KernelBytes(pub [u8; KERNEL_BYTES_MAX]);

impl Default for KernelBytes {
    fn default() -> Self {
        Self([0; KERNEL_BYTES_MAX])
    }
}

/// A handle on its way to another process, with the number it had (`None` for a copy, whose
/// original never left), so a failed delivery can put it back under that same number.
#[derive(Debug)]
pub struct HandleInFlight {
    /// Its number in the sender's table, if it moved.
    pub from_number: Option<u32>,
    /// The handle.
    pub handle: Handle,
}

/// The handles that go with a message: none (no allocation) for most messages.
#[derive(Debug, Default)]
pub struct HandlesInFlight(Option<Box<[Option<HandleInFlight>; HANDLES_MAX]>>);

impl HandlesInFlight {
    /// Puts `handle` in place `index` (below [`HANDLES_MAX`]).
    pub fn set(&mut self, index: usize, handle: HandleInFlight) {
        self.0.get_or_insert_with(Box::default)[index] = Some(handle);
    }

    /// How many there are.
    pub fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |handles| handles.iter().flatten().count())
    }

    /// Takes them all, in order.
    pub fn take_all(self) -> impl Iterator<Item = HandleInFlight> {
        self.0.into_iter().flat_map(|handles| handles.into_iter().flatten())
    }
}

/// A message being sent.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The label.
    pub label: u64,
    /// The words.
    pub words: [u64; WORDS],
    /// Its bytes, if any.
    pub buffer: Option<Bytes>,
    /// Handles that go with it.
    pub handles: HandlesInFlight,
}

/// Where a message for this process goes: received bytes into `buffer` (truncated to it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Destination {
    /// Room for the bytes, if any.
    pub buffer: Option<Room>,
}

/// A message as its receiver gets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The badge of the handle the sender used (the bits, for a notification).
    pub badge: u64,
    /// The label.
    pub label: u64,
    /// The words.
    pub words: [u64; WORDS],
    /// The reply handle in the receiver's table, for a call.
    pub reply: Option<u32>,
    /// The handles that arrived, as numbers in the receiver's table.
    pub handles: [u32; HANDLES_MAX],
    /// How many of `handles` are valid.
    pub handle_count: u32,
    /// The length the sender sent (more than the destination's room if truncated).
    pub len: u64,
}

/// Where a thread is in IPC.
#[derive(Debug, Default)]
pub enum Phase {
    /// Not in IPC.
    #[default]
    Idle,
    /// Queued in `call`; no receiver has taken the message yet.
    Calling {
        /// The endpoint called.
        endpoint: Arc<Endpoint>,
        /// The badge of the handle it called with.
        badge: u64,
        /// The message.
        message: Outgoing,
        /// Where the reply goes.
        reply_into: Destination,
        /// This call's number, which the reply handle names.
        call: u64,
    },
    /// A receiver took the message; waiting for its reply.
    AwaitingReply {
        /// This call's number.
        call: u64,
        /// Where the reply goes.
        reply_into: Destination,
    },
    /// Queued in `recv`.
    Receiving {
        /// The endpoint.
        endpoint: Arc<Endpoint>,
        /// Where the message goes.
        into: Destination,
    },
    /// Blocked in a notification's `wait`.
    Waiting {
        /// The notification.
        notification: Arc<Notification>,
    },
}

/// A thread's IPC state.
#[derive(Debug, Default)]
pub struct IpcState {
    /// What it is doing.
    pub phase: Phase,
    /// What a partner delivered while it was blocked: a message, or why the operation failed.
    pub result: Option<Result<Received, i64>>,
    /// The futex word a wake took it off, until its `futex_wait` returns.
    pub futex_woken: Option<super::futex::Word>,
    /// The bytes of a call the kernel makes on its behalf ([`Bytes::Kernel`]), then the
    /// reply's ([`Room::Kernel`]).
    pub kernel_bytes: KernelBytes,
}
