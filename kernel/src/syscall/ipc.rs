//! IPC syscalls: endpoints (`endpoint_create`, `endpoint_mint`, `endpoint_bind`, `call`,
//! `recv`, `reply`, `reply_recv`), notifications (`notification_create`, `signal`, `wait`)
//! and shared memory (`memory_create`, `memory_map`, `memory_size`).
//!
//! The message registers are laid out in `abi::ipc`; this file reads them from the trap
//! frame, checks the caller's buffers and handles, and writes the results back.

use alloc::sync::Arc;
use core::mem::offset_of;

use abi::errno::{E2BIG, EINVAL};
use abi::handle::{NO_HANDLE, rights};
use abi::ipc::{BUFFER_MAX, COPY_HANDLE, HANDLES_MAX, IpcBuffers, LABEL_MAX, MINT_NOTIFY_CLOSE};

use super::handle::{install, lookup, lookup_in};
use super::usercopy::{UserPtr, UserSlice};
use super::{Args, SyscallResult, require_heap_room};
use crate::arch::trap::TrapFrame;
use crate::ipc::endpoint::{Endpoint, EndpointRef};
use crate::ipc::notification::Notification;
use crate::ipc::state::{Bytes, Destination, HandleInFlight, Outgoing, Received, Room, UserBuffer};
use crate::ipc::{self, Timeout};
use crate::mm::address_space::UserRights;
use crate::mm::shared::SharedFrames;
use crate::object::memory::MemoryObject;
use crate::object::{Handle, Object};
use crate::task::process::ProcessObject;
use crate::task::thread::ThreadObject;
use crate::task::scheduler::{self, Handoff, pause, with_current_memory};

/// Rights of the handle `endpoint_create` returns.
const ENDPOINT_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SEND | rights::RECEIVE | rights::MINT;
/// Rights a minted handle may have.
const MINTED_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SEND;
/// Rights of a new notification handle.
const NOTIFICATION_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SIGNAL | rights::WAIT;
/// Rights of a new memory handle.
const MEMORY_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::READ | rights::WRITE | rights::EXECUTE;

/// `endpoint_create() -> handle`.
pub fn endpoint_create(_: &Args) -> SyscallResult {
    require_heap_room()?;
    let endpoint = Endpoint::new();
    install(Handle::new(Object::Endpoint(Arc::new(EndpointRef::new(endpoint, 0, false))), ENDPOINT_RIGHTS))
}

/// `endpoint_mint(h, badge, rights, flags) -> handle`: a handle to the same endpoint whose
/// calls carry `badge`, with at most DUPLICATE, TRANSFER and SEND. Needs MINT.
pub fn endpoint_mint(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let endpoint = lookup(args[0], rights::MINT, |object| match object {
        Object::Endpoint(endpoint) => Some(endpoint.endpoint().clone()),
        _ => None,
    })?;
    let wanted = u32::try_from(args[2]).map_err(|_| EINVAL)?;
    if args[3] & !MINT_NOTIFY_CLOSE != 0 {
        return Err(EINVAL);
    }
    let minted = EndpointRef::new(endpoint, args[1], args[3] & MINT_NOTIFY_CLOSE != 0);
    install(Handle::new(Object::Endpoint(Arc::new(minted)), wanted & MINTED_RIGHTS))
}

/// `endpoint_bind(endpoint, notification) -> 0`: `recv` on the endpoint also returns the
/// notification's bits. Needs RECEIVE on the endpoint and WAIT on the notification.
pub fn endpoint_bind(args: &Args) -> SyscallResult {
    let endpoint = lookup(args[0], rights::RECEIVE, |object| match object {
        Object::Endpoint(endpoint) => Some(endpoint.endpoint().clone()),
        _ => None,
    })?;
    let notification = lookup(args[1], rights::WAIT, |object| match object {
        Object::Notification(notification) => Some(notification.clone()),
        _ => None,
    })?;
    ipc::bind(&endpoint, &notification);
    Ok(0)
}

/// The message registers of a frame: label in `rsi`, words in `rdx r10 r8 r9`.
fn message_registers(frame: &TrapFrame) -> (u64, [u64; 4]) {
    (frame.rsi, [frame.rdx, frame.r10, frame.r8, frame.r9])
}

/// Reads the caller's `IpcBuffers` at `address` (0: none).
fn read_buffers(address: u64) -> Result<Option<IpcBuffers>, i64> {
    if address == 0 { Ok(None) } else { UserPtr::<IpcBuffers>::new(address).read().map(Some) }
}

/// What a message is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// A call: its label must be at most `LABEL_MAX`, so that it never passes for one of the
    /// kernel's messages.
    Call,
    /// A reply, which only a caller receives: any label (an error code, say `-ENOENT`).
    Reply,
}

/// Reads the `IpcBuffers` of a `call` or `recv`, whose `received_*` fields are written back:
/// `EFAULT` unless they are writable, checked before anything is sent or taken (a message
/// taken and then not reported would be lost).
fn read_buffers_to_update(address: u64) -> Result<Option<IpcBuffers>, i64> {
    if address != 0 {
        UserPtr::<IpcBuffers>::new(address).check_writable()?;
    }
    read_buffers(address)
}

/// Builds the message to send: the registers, the checked send buffer, and the handles
/// taken out of the caller's table (moved, or copied when marked). On any error nothing is
/// taken.
fn outgoing(me: &ProcessObject, frame: &TrapFrame, buffers: Option<&IpcBuffers>, sending: Sending) -> Result<Outgoing, i64> {
    let (label, words) = message_registers(frame);
    if sending == Sending::Call && label > LABEL_MAX {
        return Err(EINVAL);
    }
    let mut message = Outgoing { label, words, ..Outgoing::default() };
    let Some(buffers) = buffers else { return Ok(message) };
    if buffers.send_len > BUFFER_MAX {
        return Err(E2BIG);
    }
    if buffers.send_len > 0 {
        UserSlice::new(buffers.send_ptr, buffers.send_len).check_readable()?;
        message.buffer = Some(Bytes::User(UserBuffer { address: buffers.send_ptr, len: buffers.send_len }));
    }
    let count = buffers.send_handle_count as usize;
    if count > HANDLES_MAX {
        return Err(EINVAL);
    }
    if count > 0 {
        // The handles travel in a small allocation.
        require_heap_room()?;
    }
    let mut table = me.handles.lock();
    for (index, &entry) in buffers.send_handles[..count].iter().enumerate() {
        let number = u64::from(entry & !COPY_HANDLE);
        let taken = if entry & COPY_HANDLE != 0 {
            table.get(number).and_then(|handle| {
                handle.require(rights::TRANSFER)?;
                handle.duplicate(rights::ALL)
            })
            .map(|handle| HandleInFlight { from_number: None, handle })
        } else {
            table.get(number).and_then(|handle| handle.require(rights::TRANSFER)).and_then(|()| table.remove(number))
                .map(|handle| HandleInFlight { from_number: Some(number as u32), handle })
        };
        match taken {
            Ok(in_flight) => message.handles.set(index, in_flight),
            Err(errno) => {
                drop(table);
                ipc::restore_handles(me, message);
                return Err(errno);
            }
        }
    }
    Ok(message)
}

/// Where a received message's bytes go, checked writable.
fn destination(buffers: Option<&IpcBuffers>) -> Result<Destination, i64> {
    let Some(buffers) = buffers else { return Ok(Destination::default()) };
    if buffers.recv_capacity == 0 {
        return Ok(Destination::default());
    }
    let room = buffers.recv_capacity.min(BUFFER_MAX);
    UserSlice::new(buffers.recv_ptr, room).check_writable()?;
    Ok(Destination { buffer: Some(Room::User(UserBuffer { address: buffers.recv_ptr, len: room })) })
}

/// Which registers a received message is written to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Returned {
    /// A reply to `call`: label and words only.
    Reply,
    /// A message from `recv`: also the badge in `rdi` and the reply handle in `r12`.
    Message,
}

/// Writes a received message back: registers, and the `received_*` fields of the buffers.
fn write_received(frame: &mut TrapFrame, buffers_address: u64, received: &Received, returned: Returned) -> Result<(), i64> {
    frame.rsi = received.label;
    [frame.rdx, frame.r10, frame.r8, frame.r9] = received.words;
    if returned == Returned::Message {
        frame.rdi = received.badge;
        frame.r12 = received.reply.map_or(NO_HANDLE, u64::from);
    }
    if buffers_address != 0 {
        UserPtr::<u64>::new(buffers_address + offset_of!(IpcBuffers, received_len) as u64).write(&received.len)?;
        UserPtr::<u32>::new(buffers_address + offset_of!(IpcBuffers, received_handle_count) as u64)
            .write(&received.handle_count)?;
        for (index, number) in received.handles.iter().enumerate() {
            let address = buffers_address + (offset_of!(IpcBuffers, received_handles) + index * 4) as u64;
            UserPtr::<u32>::new(address).write(number)?;
        }
    }
    Ok(())
}

/// `call(endpoint, label, words..., buffers, timeout)`.
pub fn call(frame: &mut TrapFrame) -> SyscallResult {
    let me = scheduler::current_thread();
    let target = lookup_in(&me.process, frame.rdi, rights::SEND, |object| match object {
        Object::Endpoint(endpoint) => Some(endpoint.clone()),
        _ => None,
    })?;
    let buffers_address = frame.r12;
    let buffers = read_buffers_to_update(buffers_address)?;
    let reply_into = destination(buffers.as_ref())?;
    let message = outgoing(&me.process, frame, buffers.as_ref(), Sending::Call)?;
    let received = ipc::call(&me, &target, message, reply_into, Timeout::from_nanoseconds(frame.r13))?;
    write_received(frame, buffers_address, &received, Returned::Reply)?;
    Ok(0)
}

/// The endpoint handle `number` of `me` names, for receiving.
fn receiving_endpoint(me: &ProcessObject, number: u64) -> Result<Arc<Endpoint>, i64> {
    lookup_in(me, number, rights::RECEIVE, |object| match object {
        Object::Endpoint(endpoint) => Some(endpoint.endpoint().clone()),
        _ => None,
    })
}

/// The receiving half of `recv` and `reply_recv`, on `endpoint`; `handed` (a caller just
/// replied to) runs first if this has to wait.
fn receive(frame: &mut TrapFrame, me: &Arc<ThreadObject>, endpoint: &Arc<Endpoint>, handed: Option<Handoff>) -> SyscallResult {
    let buffers_address = frame.r12;
    let buffers = read_buffers_to_update(buffers_address)?;
    let into = destination(buffers.as_ref())?;
    let received = ipc::recv(me, endpoint, into, Timeout::from_nanoseconds(frame.r13), handed)?;
    write_received(frame, buffers_address, &received, Returned::Message)?;
    Ok(0)
}

/// `recv(endpoint, buffers, timeout)`.
pub fn recv(frame: &mut TrapFrame) -> SyscallResult {
    let me = scheduler::current_thread();
    let endpoint = receiving_endpoint(&me.process, frame.rdi)?;
    receive(frame, &me, &endpoint, None)
}

/// The sending half of `reply` and `reply_recv`: hands the caller over.
/// The sending half of `reply` and `reply_recv`: uses the reply handle up, whatever then
/// happens (a malformed message fails its call with `EPIPE`), and hands the caller over.
fn send_reply(frame: &TrapFrame, me: &ThreadObject) -> Result<Handoff, i64> {
    let reply = {
        let mut table = me.process.handles.lock();
        table.lookup(frame.rdi, rights::SEND, |object| matches!(object, Object::Reply(_)).then_some(()))?;
        table.remove(frame.rdi)?
    };
    let Object::Reply(reply_object) = reply.object() else { unreachable!("checked to be a reply") };
    let buffers = read_buffers(frame.r12)?;
    let message = outgoing(&me.process, frame, buffers.as_ref(), Sending::Reply)?;
    ipc::reply(me, reply_object, message)
}

/// `reply(reply, label, words..., buffers)`.
pub fn reply(frame: &mut TrapFrame) -> SyscallResult {
    send_reply(frame, &scheduler::current_thread()).map(|_| 0)
}

/// `reply_recv(reply or NO_HANDLE, label, words..., buffers, timeout, endpoint)`: replies and
/// receives. A reply that fails (its caller is gone, or the message is malformed) is
/// dropped, and the server carries on receiving.
pub fn reply_recv(frame: &mut TrapFrame) -> SyscallResult {
    let me = scheduler::current_thread();
    // Check the endpoint first, so a bad one does not use the reply up.
    let endpoint = receiving_endpoint(&me.process, frame.r14)?;
    let answered = if frame.rdi == NO_HANDLE { None } else { send_reply(frame, &me).ok() };
    receive(frame, &me, &endpoint, answered)
}

/// `notification_create() -> handle`.
pub fn notification_create(_: &Args) -> SyscallResult {
    require_heap_room()?;
    install(Handle::new(Object::Notification(Notification::new()), NOTIFICATION_RIGHTS))
}

/// `signal(notification, bits) -> 0`. Needs SIGNAL. Bit 63 is refused (`EINVAL`): `wait`
/// returns the bits as its result, where it would read as an error.
pub fn signal(args: &Args) -> SyscallResult {
    let notification = lookup(args[0], rights::SIGNAL, |object| match object {
        Object::Notification(notification) => Some(notification.clone()),
        _ => None,
    })?;
    if args[1] >> 63 != 0 {
        return Err(EINVAL);
    }
    notification.signal(args[1]);
    Ok(0)
}

/// `wait(notification, timeout) -> bits`. Needs WAIT.
pub fn wait(args: &Args) -> SyscallResult {
    let me = scheduler::current_thread();
    let notification = lookup_in(&me.process, args[0], rights::WAIT, |object| match object {
        Object::Notification(notification) => Some(notification.clone()),
        _ => None,
    })?;
    ipc::wait(&me, &notification, Timeout::from_nanoseconds(args[1]))
}

/// `memory_create(pages) -> handle`: zeroed shared memory, charged to the caller.
pub fn memory_create(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let account = with_current_memory(|memory| memory.space().account().clone());
    let frames = SharedFrames::allocate(args[0], &account, &mut pause).map_err(|error| error.errno())?;
    install(Handle::new(Object::Memory(Arc::new(MemoryObject::new(frames))), MEMORY_RIGHTS))
}

/// `memory_map(h, addr, prot) -> addr`: maps the whole object (at `addr`, or where the kernel
/// chooses for 0). Readable needs READ, writable WRITE, executable EXECUTE; never W+X.
pub fn memory_map(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let user_rights = UserRights::from_prot(args[2]).ok_or(EINVAL)?;
    let needed = rights::READ
        | if args[2] & abi::PROT_WRITE != 0 { rights::WRITE } else { 0 }
        | if args[2] & abi::PROT_EXEC != 0 { rights::EXECUTE } else { 0 };
    let frames = lookup(args[0], needed, |object| match object {
        Object::Memory(memory) => Some(memory.frames().clone()),
        Object::DeviceMemory(memory) => Some(memory.frames().clone()),
        _ => None,
    })?;
    with_current_memory(|memory| memory.map_shared(frames, args[1], user_rights, &mut pause)).map_err(|error| error.errno())
}

/// `memory_size(h) -> bytes`: the size of the memory object `h` names.
pub fn memory_size(args: &Args) -> SyscallResult {
    lookup(args[0], 0, |object| match object {
        Object::Memory(memory) => Some(memory.frames().len()),
        Object::DeviceMemory(memory) => Some(memory.frames().len()),
        _ => None,
    })
}
