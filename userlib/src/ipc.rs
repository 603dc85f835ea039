//! Handles and IPC for programs: typed handles that close themselves, endpoints with
//! `call`/`recv`/`reply`, notifications, shared memory, and a server loop.
//!
//! ```ignore
//! // A server: answers every call with the label plus one.
//! let endpoint = Endpoint::create()?;
//! userlib::ipc::serve(&endpoint, |request, _bytes, _answer| Message::new(request.message.label + 1, [0; 4]));
//! // A client holding a handle to it:
//! let answer = endpoint.call(&Message::new(41, [0; 4]))?;
//! ```
//!
//! Every type here owns its handle and closes it when dropped; `into_raw` gives the number
//! up (to send it in a message, say) and `from_raw` takes one over.

use core::arch::asm;

use abi::handle::{Kind, NO_HANDLE, rights, split_info};
use abi::ipc::{FOREVER, HANDLES_MAX, IpcBuffers, LABEL_CLOSED, LABEL_NOTIFICATION, WORDS};
use abi::syscall::{
    CALL, ENDPOINT_BIND, ENDPOINT_CREATE, ENDPOINT_MINT, HANDLE_CLOSE, HANDLE_DUPLICATE, HANDLE_INFO, MEMORY_CREATE,
    MEMORY_MAP, MEMORY_SIZE, NOTIFICATION_CREATE, RECV, REPLY, REPLY_RECV, SIGNAL, WAIT_NOTIFICATION,
};

use crate::sys::{self, Errno, Result};

/// A handle this program owns; closed when dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct OwnedHandle(u64);

impl OwnedHandle {
    /// Takes over handle `number`.
    pub fn from_raw(number: u64) -> Self {
        Self(number)
    }

    /// The handle's number.
    pub fn raw(&self) -> u64 {
        self.0
    }

    /// Gives the number up without closing it.
    pub fn into_raw(self) -> u64 {
        let number = self.0;
        core::mem::forget(self);
        number
    }

    /// The kind and rights of the handle.
    pub fn info(&self) -> Result<(Option<Kind>, u32)> {
        handle_info(self.0)
    }

    /// Another handle to the same object with the rights of this one that `rights` keeps.
    pub fn duplicate(&self, rights: u32) -> Result<Self> {
        duplicate(self.0, rights).map(Self)
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        let _ = close(self.0);
    }
}

/// `handle_close`.
pub fn close(handle: u64) -> Result<()> {
    sys::call(HANDLE_CLOSE, [handle, 0, 0, 0, 0, 0]).map(|_| ())
}

/// `handle_duplicate`.
pub fn duplicate(handle: u64, rights: u32) -> Result<u64> {
    sys::call(HANDLE_DUPLICATE, [handle, u64::from(rights), 0, 0, 0, 0])
}

/// The numbers of every handle this program holds (`handle_list`), in slot order.
pub fn held_handles() -> Result<alloc::vec::Vec<u64>> {
    let mut numbers = [0u32; abi::handle::HANDLE_MAX];
    let total = sys::call(abi::syscall::HANDLE_LIST, [numbers.as_mut_ptr() as u64, numbers.len() as u64, 0, 0, 0, 0])?;
    Ok(numbers[..(total as usize).min(numbers.len())].iter().map(|&number| u64::from(number)).collect())
}

/// `handle_info`: the kind (`None` for one this library does not know) and the rights.
pub fn handle_info(handle: u64) -> Result<(Option<Kind>, u32)> {
    sys::call(HANDLE_INFO, [handle, 0, 0, 0, 0, 0]).map(split_info)
}

/// A message's register part: a label and four words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// What the message is about (an operation, or for a reply a status).
    pub label: u64,
    /// The arguments.
    pub words: [u64; WORDS],
}

impl Message {
    /// A message with `label` and `words`.
    pub const fn new(label: u64, words: [u64; WORDS]) -> Self {
        Self { label, words }
    }
}

/// The registers an IPC syscall returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpcRegisters {
    /// `rax`: 0 or `-errno`.
    pub result: i64,
    /// `rdi`: the badge (from `recv`).
    pub badge: u64,
    /// The label and words.
    pub message: Message,
    /// `r12`: the reply handle (from `recv`), or `NO_HANDLE`.
    pub reply: u64,
}

/// Makes IPC syscall `number` with every register it uses.
///
/// # Safety
/// `buffers` must be 0 or point to an `IpcBuffers` whose buffers are valid for the kernel to
/// read (`send_*`) and write (`recv_*`) for the whole call.
pub unsafe fn raw_ipc(number: u64, first: u64, message: &Message, buffers: u64, timeout: u64, endpoint: u64) -> IpcRegisters {
    let (result, badge, label, w0, w1, w2, w3, reply): (i64, u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: the IPC calls change only rax (the result), rdi, rsi, rdx, r10, r8, r9 and r12
    // (the returned message) besides what `syscall` clobbers (rcx, r11); memory is written
    // only where `buffers` says, which the caller vouches for.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as i64 => result,
            inlateout("rdi") first => badge,
            inlateout("rsi") message.label => label,
            inlateout("rdx") message.words[0] => w0,
            inlateout("r10") message.words[1] => w1,
            inlateout("r8") message.words[2] => w2,
            inlateout("r9") message.words[3] => w3,
            inlateout("r12") buffers => reply,
            in("r13") timeout,
            in("r14") endpoint,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    IpcRegisters { result, badge, message: Message { label, words: [w0, w1, w2, w3] }, reply }
}

fn checked(registers: IpcRegisters) -> Result<IpcRegisters> {
    if registers.result < 0 { Err(Errno(-registers.result)) } else { Ok(registers) }
}

/// Bytes and handles to send with a message, and room for those that come back.
#[derive(Debug, Default)]
pub struct Transfer<'a> {
    /// Bytes to send.
    pub send: &'a [u8],
    /// Handles to send (numbers in this program's table, `| COPY_HANDLE` to copy).
    pub send_handles: &'a [u32],
    /// Room for the bytes of the answer.
    pub receive: Option<&'a mut [u8]>,
}

/// What came back with a message besides its registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrived {
    /// The length the sender sent (more than the room given if it was cut short).
    pub len: usize,
    /// Handles that arrived, now in this program's table.
    pub handles: [u32; HANDLES_MAX],
    /// How many of `handles` are valid.
    pub handle_count: usize,
}

impl Arrived {
    /// The handles that arrived.
    pub fn handles(&self) -> &[u32] {
        &self.handles[..self.handle_count]
    }
}

impl Transfer<'_> {
    fn buffers(&mut self) -> Result<IpcBuffers> {
        if self.send_handles.len() > HANDLES_MAX {
            return Err(Errno(abi::errno::EINVAL));
        }
        let mut send_handles = [0; HANDLES_MAX];
        send_handles[..self.send_handles.len()].copy_from_slice(self.send_handles);
        let (recv_ptr, recv_capacity) = match &mut self.receive {
            Some(room) => (room.as_mut_ptr() as u64, room.len() as u64),
            None => (0, 0),
        };
        Ok(IpcBuffers {
            send_ptr: self.send.as_ptr() as u64,
            send_len: self.send.len() as u64,
            recv_ptr,
            recv_capacity,
            send_handles,
            send_handle_count: self.send_handles.len() as u32,
            ..IpcBuffers::default()
        })
    }
}

fn arrived(buffers: &IpcBuffers) -> Arrived {
    Arrived {
        len: buffers.received_len as usize,
        handles: buffers.received_handles,
        handle_count: (buffers.received_handle_count as usize).min(HANDLES_MAX),
    }
}

/// An IPC endpoint handle.
#[derive(Debug)]
pub struct Endpoint(OwnedHandle);

impl Endpoint {
    /// A new endpoint; this handle may call, receive and mint.
    pub fn create() -> Result<Self> {
        sys::call(ENDPOINT_CREATE, [0; 6]).map(|handle| Self(OwnedHandle(handle)))
    }

    /// Takes over handle `number`.
    pub fn from_raw(number: u64) -> Self {
        Self(OwnedHandle(number))
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedHandle {
        &self.0
    }

    /// Gives the number up without closing it.
    pub fn into_raw(self) -> u64 {
        self.0.into_raw()
    }

    /// A handle whose calls carry `badge` and that may only call (and be passed on); with
    /// `notify_close`, this endpoint's receiver hears when its last copy is closed.
    pub fn mint(&self, badge: u64, notify_close: bool) -> Result<Self> {
        let flags = if notify_close { abi::ipc::MINT_NOTIFY_CLOSE } else { 0 };
        let all = u64::from(rights::DUPLICATE | rights::TRANSFER | rights::SEND);
        sys::call(ENDPOINT_MINT, [self.0.raw(), badge, all, flags, 0, 0]).map(|handle| Self(OwnedHandle(handle)))
    }

    /// Calls with a register-only message and waits for the reply.
    pub fn call(&self, message: &Message) -> Result<Message> {
        // SAFETY: a register-only message: no buffers.
        checked(unsafe { raw_ipc(CALL, self.0.raw(), message, 0, FOREVER, 0) }).map(|registers| registers.message)
    }

    /// Calls with bytes and handles, waiting at most `timeout` nanoseconds (`FOREVER`, or 0
    /// to fail with `EAGAIN` unless a receiver is waiting).
    pub fn call_with(&self, message: &Message, transfer: &mut Transfer, timeout: u64) -> Result<(Message, Arrived)> {
        let mut buffers = transfer.buffers()?;
        // SAFETY: `buffers` describes `transfer`'s slices, which live (and, for the answer,
        // are borrowed mutably) until the call returns.
        let registers = checked(unsafe { raw_ipc(CALL, self.0.raw(), message, &raw mut buffers as u64, timeout, 0) })?;
        Ok((registers.message, arrived(&buffers)))
    }

    /// Answers `reply` (if any) with `message` and `transfer`'s bytes and handles, then waits
    /// (at most `timeout` nanoseconds) for the next message, whose bytes go to
    /// `transfer.receive`: one `reply_recv`, the loop of a server that answers without a
    /// copy (the bytes are sent from where they lie). The reply is used up whatever happens;
    /// an answer its caller cannot take is dropped, and the result is the receive's.
    pub fn reply_recv(&self, reply: Option<Reply>, message: &Message, transfer: &mut Transfer, timeout: u64) -> Result<Request> {
        let mut buffers = transfer.buffers()?;
        let reply = reply.map_or(NO_HANDLE, |reply| reply.0.into_raw());
        // SAFETY: as in `call_with`.
        let registers =
            checked(unsafe { raw_ipc(REPLY_RECV, reply, message, &raw mut buffers as u64, timeout, self.0.raw()) })?;
        Ok(Request::new(registers, arrived(&buffers)))
    }

    /// Waits (at most `timeout` nanoseconds) for a message; its bytes go to `room`.
    pub fn recv(&self, room: &mut [u8], timeout: u64) -> Result<Request> {
        let mut transfer = Transfer { receive: Some(room), ..Transfer::default() };
        let mut buffers = transfer.buffers()?;
        // SAFETY: as in `call_with`.
        let registers = checked(unsafe { raw_ipc(RECV, self.0.raw(), &Message::default(), &raw mut buffers as u64, timeout, 0) })?;
        Ok(Request::new(registers, arrived(&buffers)))
    }

    /// Binds `notification`: `recv` also returns its bits (as [`Request::notification`]).
    pub fn bind(&self, notification: &Notification) -> Result<()> {
        sys::call(ENDPOINT_BIND, [self.0.raw(), notification.0.raw(), 0, 0, 0, 0]).map(|_| ())
    }
}

/// A message received by a server.
#[derive(Debug)]
pub struct Request {
    /// The badge of the handle the sender used (0 for the endpoint's own handle).
    pub badge: u64,
    /// The message.
    pub message: Message,
    /// The right to answer, for a call.
    pub reply: Option<Reply>,
    /// What else arrived.
    pub arrived: Arrived,
}

impl Request {
    fn new(registers: IpcRegisters, arrived: Arrived) -> Self {
        let reply = (registers.reply != NO_HANDLE).then(|| Reply(OwnedHandle(registers.reply)));
        Self { badge: registers.badge, message: registers.message, reply, arrived }
    }

    /// The bits, if this is a bound notification rather than a call.
    pub fn notification(&self) -> Option<u64> {
        (self.message.label == LABEL_NOTIFICATION && self.reply.is_none()).then_some(self.badge)
    }

    /// The badge whose last handle was closed, if this is a close notice.
    pub fn closed_badge(&self) -> Option<u64> {
        (self.message.label == LABEL_CLOSED && self.reply.is_none()).then_some(self.badge)
    }
}

/// The right to answer one call; dropping it unused makes the call fail with `EPIPE`.
#[derive(Debug)]
pub struct Reply(OwnedHandle);

impl Reply {
    /// Answers with a register-only message. `EPIPE` if the caller no longer waits.
    pub fn send(self, message: &Message) -> Result<()> {
        self.send_with(message, &mut Transfer::default())
    }

    /// Answers with bytes and handles.
    pub fn send_with(self, message: &Message, transfer: &mut Transfer) -> Result<()> {
        let mut buffers = transfer.buffers()?;
        // The kernel uses the handle up, whatever happens.
        let handle = self.0.into_raw();
        // SAFETY: as in `Endpoint::call_with`.
        checked(unsafe { raw_ipc(REPLY, handle, message, &raw mut buffers as u64, 0, 0) }).map(|_| ())
    }

    /// The handle's number.
    pub fn raw(&self) -> u64 {
        self.0.raw()
    }

    /// The handle's number, no longer closed when this is dropped: for moving the reply to
    /// another process in a message (replies carry TRANSFER), which answers in its place.
    pub fn into_raw(self) -> u64 {
        self.0.into_raw()
    }
}

/// What a server's handler adds to its answer besides the registers: bytes and handles.
#[derive(Debug)]
pub struct Answer<'a> {
    room: &'a mut [u8],
    len: usize,
    handles: [u32; HANDLES_MAX],
    handle_count: usize,
}

impl Answer<'_> {
    /// Appends `bytes` to the answer (as many as fit in [`abi::ipc::BUFFER_MAX`]); returns
    /// how many fitted.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let fitting = bytes.len().min(self.room.len() - self.len);
        self.room[self.len..self.len + fitting].copy_from_slice(&bytes[..fitting]);
        self.len += fitting;
        fitting
    }

    /// Sends handle `number` (of this program's table; `| COPY_HANDLE` to keep it) with the
    /// answer. At most four; more are ignored.
    pub fn send_handle(&mut self, number: u32) {
        if self.handle_count < HANDLES_MAX {
            self.handles[self.handle_count] = number;
            self.handle_count += 1;
        }
    }
}

/// Serves `endpoint` for ever: receives each message (its bytes into a buffer of
/// [`abi::ipc::BUFFER_MAX`] bytes), asks `handle` for the answer (registers returned, bytes
/// and handles added to the [`Answer`]) and replies, with `reply_recv` so that answering and
/// waiting for the next message are one syscall. Messages that take no reply (notifications,
/// close notices) go to `handle` too, whose answer is then dropped. A reply to a caller that
/// has gone, or that cannot take the answer, is dropped: the server carries on.
pub fn serve(endpoint: &Endpoint, mut handle: impl FnMut(&Request, &[u8], &mut Answer) -> Message) -> ! {
    let mut incoming = alloc::vec![0u8; abi::ipc::BUFFER_MAX as usize];
    let mut outgoing = alloc::vec![0u8; abi::ipc::BUFFER_MAX as usize];
    let mut pending: Option<(Reply, Message, usize, [u32; HANDLES_MAX], usize)> = None;
    loop {
        let (reply_number, message, sent, handles, handle_count) = match pending.take() {
            Some((reply, message, sent, handles, count)) => (reply.0.into_raw(), message, sent, handles, count),
            None => (NO_HANDLE, Message::default(), 0, [0; HANDLES_MAX], 0),
        };
        let mut buffers = IpcBuffers {
            send_ptr: outgoing.as_ptr() as u64,
            send_len: sent as u64,
            recv_ptr: incoming.as_mut_ptr() as u64,
            recv_capacity: incoming.len() as u64,
            send_handles: handles,
            send_handle_count: handle_count as u32,
            ..IpcBuffers::default()
        };
        // SAFETY: `buffers` describes the two vectors, which live for the whole loop.
        let registers = unsafe {
            raw_ipc(REPLY_RECV, reply_number, &message, &raw mut buffers as u64, FOREVER, endpoint.0.raw())
        };
        if registers.result < 0 {
            continue;
        }
        let request = Request::new(registers, arrived(&buffers));
        let len = request.arrived.len.min(incoming.len());
        let mut answer = Answer { room: &mut outgoing, len: 0, handles: [0; HANDLES_MAX], handle_count: 0 };
        let message = handle(&request, &incoming[..len], &mut answer);
        let (sent, handles, handle_count) = (answer.len, answer.handles, answer.handle_count);
        if let Some(reply) = request.reply {
            pending = Some((reply, message, sent, handles, handle_count));
        }
    }
}

/// A notification handle.
#[derive(Debug)]
pub struct Notification(OwnedHandle);

impl Notification {
    /// A new notification; this handle may signal and wait.
    pub fn create() -> Result<Self> {
        sys::call(NOTIFICATION_CREATE, [0; 6]).map(|handle| Self(OwnedHandle(handle)))
    }

    /// Takes over handle `number`.
    pub fn from_raw(number: u64) -> Self {
        Self(OwnedHandle(number))
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedHandle {
        &self.0
    }

    /// Sets `bits`.
    pub fn signal(&self, bits: u64) -> Result<()> {
        sys::call(SIGNAL, [self.0.raw(), bits, 0, 0, 0, 0]).map(|_| ())
    }

    /// Waits (at most `timeout` nanoseconds) until a bit is set, and takes them all.
    pub fn wait(&self, timeout: u64) -> Result<u64> {
        sys::call(WAIT_NOTIFICATION, [self.0.raw(), timeout, 0, 0, 0, 0])
    }
}

/// A shared-memory handle.
#[derive(Debug)]
pub struct SharedMemory(OwnedHandle);

impl SharedMemory {
    /// `pages` zeroed pages that any holder of a handle may map.
    pub fn create(pages: u64) -> Result<Self> {
        sys::call(MEMORY_CREATE, [pages, 0, 0, 0, 0, 0]).map(|handle| Self(OwnedHandle(handle)))
    }

    /// Takes over handle `number`.
    pub fn from_raw(number: u64) -> Self {
        Self(OwnedHandle(number))
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedHandle {
        &self.0
    }

    /// Maps the memory (at `address`, or where the kernel chooses for 0) with `prot`
    /// (`abi::PROT_*`); returns the address. `sys::munmap` unmaps it.
    pub fn map(&self, address: u64, prot: u64) -> Result<u64> {
        sys::call(MEMORY_MAP, [self.0.raw(), address, prot, 0, 0, 0])
    }

    /// Gives the number up without closing it.
    pub fn into_raw(self) -> u64 {
        self.0.into_raw()
    }

    /// Its size in bytes (whole pages).
    pub fn size(&self) -> Result<u64> {
        sys::call(MEMORY_SIZE, [self.0.raw(), 0, 0, 0, 0, 0])
    }

    /// Maps the whole object read-only for the rest of the program's life and returns its
    /// bytes.
    ///
    /// # Safety
    /// Nothing may write the object while the program runs: no handle to it may carry the
    /// WRITE right (the boot ramdisk's never do).
    pub unsafe fn map_read_only_forever(&self) -> Result<&'static [u8]> {
        let size = self.size()?;
        let address = self.map(0, abi::PROT_READ)?;
        // SAFETY: `size` bytes were just mapped readable at `address` and are never unmapped;
        // the caller promises nobody writes them.
        Ok(unsafe { core::slice::from_raw_parts(address as *const u8, size as usize) })
    }

    /// New memory holding a copy of `bytes`, zero-filled to whole pages (at least one).
    pub fn with_bytes(bytes: &[u8]) -> Result<Self> {
        let pages = (bytes.len() as u64).div_ceil(abi::memory::PAGE_SIZE).max(1);
        let memory = Self::create(pages)?;
        let address = memory.map(0, abi::PROT_READ | abi::PROT_WRITE)?;
        // SAFETY: the mapping was just made, `pages` pages long, writable, and nothing else in
        // this program refers to it; it is unmapped right after the copy.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len());
            sys::munmap(address, pages * abi::memory::PAGE_SIZE)?;
        }
        Ok(memory)
    }
}
