//! Moving a message from its sender into its receiver.

use alloc::sync::Arc;

use abi::errno::EFAULT;
use abi::handle::rights;

use super::reply::Reply;
use super::state::{Bytes, Destination, Outgoing, Received, Room};
use crate::mm::user_memory::ProcessMemory;
use crate::object::{Handle, Object};
use crate::task::process::{Pid, ProcessObject};
use crate::task::scheduler;
use crate::task::thread::ThreadObject;

/// A message that could not be delivered, and why.
#[derive(Debug)]
pub struct Undelivered {
    /// The errno for whoever could not take it.
    pub errno: i64,
    /// The message, with its handles, to put back.
    pub message: Outgoing,
}

/// Delivers `message` from process `sender` to process `receiver`: copies its bytes into `into`
/// (truncated to its room; the full length is reported), installs its handles in the
/// receiver's table, and for a call (`reply` names the caller and the call) a reply handle.
/// Fails with `EMFILE` when the receiver's table has no room for all of them, leaving
/// everything as it was.
pub fn deliver(
    sender: &ProcessObject,
    message: Outgoing,
    receiver: &ProcessObject,
    into: Destination,
    badge: u64,
    reply: Option<(&Arc<ThreadObject>, u64)>,
) -> Result<Received, Undelivered> {
    let mut handles = receiver.handles.lock();
    let needed = message.handles.count() + usize::from(reply.is_some());
    if let Err(errno) = handles.require_room(needed) {
        return Err(Undelivered { errno, message });
    }
    let len = message.buffer.map_or(0, Bytes::len);
    // A kernel room is filled by `ipc::reply` (the only place one arrives), not here.
    if let (Some(source), Some(Room::User(target))) = (message.buffer, into.buffer) {
        let copied = source.len().min(target.len);
        let copy = || match (source, reply) {
            (Bytes::User(source), _) => copy_bytes(sender.pid, source.address, receiver.pid, target.address, copied),
            (Bytes::Kernel { .. }, Some((caller, _))) => write_kernel_bytes(caller, receiver.pid, target.address, copied),
            (Bytes::Kernel { .. }, None) => Err(EFAULT),
        };
        if copied > 0 && copy().is_err() {
            return Err(Undelivered { errno: EFAULT, message });
        }
    }
    let mut received = Received { badge, label: message.label, words: message.words, len, ..Received::default() };
    for in_flight in message.handles.take_all() {
        let number = handles.insert(in_flight.handle).unwrap_or_else(|_| unreachable!("room was checked"));
        received.handles[received.handle_count as usize] = number;
        received.handle_count += 1;
    }
    if let Some((caller, call)) = reply {
        // SEND to answer, TRANSFER to hand the answering on (to a worker, say): a reply can
        // be moved, never copied (`Object::duplicate` refuses it whatever the rights say).
        let handle = Handle::new(Object::Reply(Reply::new(caller.clone(), call)), rights::REPLY_HANDLE);
        received.reply = Some(handles.insert(handle).unwrap_or_else(|_| unreachable!("room was checked")));
    }
    Ok(received)
}

/// Copies bytes between two processes' memories (or within one, between its threads),
/// without their locks, which a thread of either may hold, paused in a long `mmap`.
fn copy_bytes(sender: Pid, source: u64, receiver: Pid, target: u64, len: u64) -> Result<(), i64> {
    let (Some(from), Some(to)) = (scheduler::memory_of(sender), scheduler::memory_of(receiver)) else {
        return Err(EFAULT);
    };
    ProcessMemory::copy_between(&from, source, &to, target, len).map_err(|_| EFAULT)
}

/// Copies the first `len` of the bytes the kernel sends for `caller` (a fault's registers,
/// in its IPC state) into process `receiver`'s memory at `target`, without its lock. Out of
/// line: the usual message's bytes are the sender's own.
#[cold]
#[inline(never)]
fn write_kernel_bytes(caller: &ThreadObject, receiver: Pid, target: u64, len: u64) -> Result<(), i64> {
    let bytes = caller.ipc.lock().kernel_bytes;
    let len = (len as usize).min(bytes.0.len());
    if len == 0 {
        return Ok(());
    }
    let to = scheduler::memory_of(receiver).ok_or(EFAULT)?;
    to.write_bytes(target, &bytes.0[..len]).map_err(|_| EFAULT)
}

/// Puts the handles of an undelivered message back where they came from in `owner`'s table
/// (copies are dropped: their originals never left).
pub fn restore_handles(owner: &ProcessObject, message: Outgoing) {
    let mut handles = owner.handles.lock();
    let mut copies: [Option<Handle>; abi::ipc::HANDLES_MAX] = Default::default();
    for (in_flight, copy) in message.handles.take_all().zip(&mut copies) {
        match in_flight.from_number {
            Some(number) => handles.insert_at(number, in_flight.handle),
            None => *copy = Some(in_flight.handle),
        }
    }
    // The copies are dropped after the lock is released (a drop may wake a process).
    drop(handles);
    drop(copies);
}
