//! Synchronous IPC: the message format shared by `call`, `recv`, `reply` and `reply_recv`.
//!
//! A message is a label and [`WORDS`] words, passed in registers, and optionally a byte
//! buffer (up to [`BUFFER_MAX`] bytes, copied by the kernel from the sender's memory straight
//! into the receiver's) and up to [`HANDLES_MAX`] handles, which move to the receiver (or are
//! copied, when marked [`COPY_HANDLE`] and the handle has the DUPLICATE right). The buffer and
//! handle parts are described by an [`IpcBuffers`] in the caller's memory; a register-only
//! message passes none.
//!
//! Registers (both entry paths; `rax` holds the syscall number and gets the result):
//!
//! | register | `call`            | `recv`      | `reply`      | `reply_recv`          |
//! |----------|-------------------|-------------|--------------|-----------------------|
//! | `rdi`    | endpoint          | endpoint    | reply handle | reply handle, or [`NO_HANDLE`](crate::handle::NO_HANDLE) |
//! | `rsi`    | label             |             | label        | label                 |
//! | `rdx r10 r8 r9` | words      |             | words        | words                 |
//! | `r12`    | buffers or 0      | buffers or 0| buffers or 0 | buffers or 0          |
//! | `r13`    | timeout (ns)      | timeout     |              | timeout               |
//! | `r14`    |                   |             |              | endpoint              |
//!
//! On return `rax` is 0 or `-errno`. `call` returns the reply's label in `rsi` and its words
//! in `rdx r10 r8 r9`; `recv` and `reply_recv` return the message's badge in `rdi`, label in
//! `rsi`, words in `rdx r10 r8 r9`, and the reply handle in `r12` ([`NO_HANDLE`](crate::handle::NO_HANDLE) for a
//! message that takes no reply: a notification or a close notice). Every other register is
//! preserved.
//!
//! A timeout of 0 never blocks (`EAGAIN` when nothing is ready); [`FOREVER`] never expires;
//! anything else fails with `ETIMEDOUT` once that many nanoseconds have passed.

/// Words in a message, besides the label.
pub const WORDS: usize = 4;
/// Most bytes in a message's buffer.
pub const BUFFER_MAX: u64 = 64 * 1024;
/// Most handles in one message.
pub const HANDLES_MAX: usize = 4;
/// Marks an entry of [`IpcBuffers::send_handles`] to be copied instead of moved.
pub const COPY_HANDLE: u32 = 1 << 31;
/// A timeout that never expires.
pub const FOREVER: u64 = u64::MAX;

/// The label `recv` reports for a bound notification's bits (the badge holds the bits).
pub const LABEL_NOTIFICATION: u64 = u64::MAX;
/// The label `recv` reports when the last handle of a badge minted with
/// [`MINT_NOTIFY_CLOSE`] is closed (the badge says which).
pub const LABEL_CLOSED: u64 = u64::MAX - 1;
/// The highest label a `call` may use (the two above are the kernel's; `EINVAL` beyond).
/// A reply may use any label, since only a caller receives it: `-errno` is the convention.
pub const LABEL_MAX: u64 = u64::MAX - 2;

/// `endpoint_mint` flag: tell the endpoint's receiver when the last handle with this badge
/// is closed (a message with label [`LABEL_CLOSED`]).
pub const MINT_NOTIFY_CLOSE: u64 = 1;

/// The buffer and handle parts of a message, in the caller's memory. The kernel reads the
/// `send_*` and `recv_ptr`/`recv_capacity` fields and writes the three `received_*` ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcBuffers {
    /// Bytes to send (`send_len` of them; 0 for none).
    pub send_ptr: u64,
    /// Length of the bytes to send, at most [`BUFFER_MAX`].
    pub send_len: u64,
    /// Where received bytes go.
    pub recv_ptr: u64,
    /// Room at `recv_ptr`; a longer message is truncated to it.
    pub recv_capacity: u64,
    /// Written by the kernel: the length the sender sent (more than `recv_capacity` when
    /// the message was truncated).
    pub received_len: u64,
    /// Handles to send (`send_handle_count` of them), each possibly `| COPY_HANDLE`.
    pub send_handles: [u32; HANDLES_MAX],
    /// How many of `send_handles` to send.
    pub send_handle_count: u32,
    /// Written by the kernel: how many handles arrived.
    pub received_handle_count: u32,
    /// Written by the kernel: the handles that arrived, as numbers in the receiver's table.
    pub received_handles: [u32; HANDLES_MAX],
}

const _: () = assert!(core::mem::size_of::<IpcBuffers>() == 80);
