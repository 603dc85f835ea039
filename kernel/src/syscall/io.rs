//! Stream syscalls: `write`, `read` (on a pipe end, the kernel's log (write only), or an
//! endpoint that speaks the stream protocol of `abi::stream`: a console session, an open
//! file) and `pipe_create`.

use alloc::sync::Arc;

use abi::errno::{EAGAIN, EBADF, EINTR};
use abi::handle::rights;
use abi::ipc::BUFFER_MAX;
use abi::stream;

use super::usercopy::{ReadableSlice, UserSlice};
use super::{Args, SyscallResult, require_heap_room};
use crate::ipc::endpoint::EndpointRef;
use crate::ipc::pipe::{Pipe, PipeEnd};
use crate::ipc::state::{Bytes, Destination, Outgoing, Received, Room, UserBuffer};
use crate::ipc::{self, Timeout};
use crate::object::{Handle, Object};
use crate::task::process::ProcessObject;
use crate::task::thread::ThreadObject;
use crate::task::scheduler;

/// Bytes copied from user memory and written per step of a `write`. Between steps the process
/// may be preempted or killed, so a huge write neither stalls the machine nor needs a large
/// kernel buffer.
const WRITE_CHUNK: u64 = 256;

/// What a stream handle names.
enum Stream {
    Log,
    Pipe(Arc<PipeEnd>),
    Endpoint(Arc<EndpointRef>),
}

/// The stream handle `number` of `me` names: a pipe end with `right` (READ or WRITE), the
/// log with WRITE, or an endpoint with SEND. `EBADF` for any other kind.
fn stream(me: &ProcessObject, number: u64, right: u32) -> Result<Stream, i64> {
    let table = me.handles.lock();
    let handle = table.get(number)?;
    match handle.object() {
        // The log is written, never read as a stream (`log_read` reads it).
        Object::Log if right == rights::WRITE => handle.require(right).map(|()| Stream::Log),
        Object::Pipe(end) => handle.require(right).map(|()| Stream::Pipe(end.clone())),
        Object::Endpoint(endpoint) => handle.require(rights::SEND).map(|()| Stream::Endpoint(endpoint.clone())),
        _ => Err(EBADF),
    }
}

/// `write(h, buf, len) -> bytes`: to the log or a pipe's write end (WRITE), or as stream
/// calls to an endpoint (SEND). The whole range is checked first, so a bad tail fails
/// before anything is written.
pub fn write(args: &Args) -> SyscallResult {
    let me = scheduler::current_thread();
    let buffer = UserSlice::new(args[1], args[2]);
    let target = stream(&me.process, args[0], rights::WRITE)?;
    let source = buffer.check_readable()?;
    match target {
        Stream::Log => Ok(write_in_steps(source, crate::klog::write_log)),
        Stream::Pipe(end) => {
            let count = end.pipe().write(&me, source.len() as usize, |offset, room| source.copy_to(offset as u64, room))?;
            Ok(count as u64)
        }
        Stream::Endpoint(endpoint) => write_endpoint(&me, &endpoint, args[1], source.len()),
    }
}

/// Hands the bytes of `source` to `sink` in steps of [`WRITE_CHUNK`], with preemption points
/// between them. A process killed part-way, or whose range stopped holding (see `usercopy`),
/// gets the count written so far.
fn write_in_steps(source: ReadableSlice, mut sink: impl FnMut(&[u8])) -> u64 {
    let mut chunk = [0u8; WRITE_CHUNK as usize];
    let mut offset = 0;
    while offset < source.len() {
        if offset > 0 && scheduler::preemption_point().is_err() {
            break;
        }
        let bytes = &mut chunk[..WRITE_CHUNK.min(source.len() - offset) as usize];
        if source.copy_to(offset, bytes).is_err() {
            break;
        }
        sink(bytes);
        offset += bytes.len() as u64;
    }
    offset
}

/// Writes the `len` bytes at `address` as `stream::WRITE` calls of at most `BUFFER_MAX`
/// bytes, until one is short or fails: the count written, or the first call's error.
fn write_endpoint(me: &Arc<ThreadObject>, endpoint: &EndpointRef, address: u64, len: u64) -> SyscallResult {
    let mut done = 0;
    while done < len {
        let chunk = (len - done).min(BUFFER_MAX);
        let message = Outgoing {
            label: stream::WRITE,
            words: [chunk, 0, 0, 0],
            buffer: Some(Bytes::User(UserBuffer { address: address + done, len: chunk })),
            ..Outgoing::default()
        };
        let written = stream_call(me, endpoint, message, Destination::default())
            .and_then(|reply| stream::reply_result(reply.label, chunk));
        match written {
            Ok(count) => {
                done += count;
                if count < chunk {
                    break;
                }
            }
            Err(errno) if done == 0 => return Err(errno),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// One call of the stream protocol. Handles a server put in the reply are closed: the
/// caller of `read` or `write` does not know they came, so they would only fill its table.
fn stream_call(me: &Arc<ThreadObject>, endpoint: &EndpointRef, message: Outgoing, into: Destination) -> Result<Received, i64> {
    let reply = ipc::call(me, endpoint, message, into, Timeout::Forever)?;
    if reply.handle_count > 0 {
        let mut stray: [Option<Handle>; abi::ipc::HANDLES_MAX] = Default::default();
        let mut table = me.process.handles.lock();
        for (&number, slot) in reply.handles[..reply.handle_count as usize].iter().zip(&mut stray) {
            *slot = table.remove(u64::from(number)).ok();
        }
        drop(table);
        // Closed outside the table's lock: closing a handle may wake a process.
        drop(stray);
    }
    Ok(reply)
}

/// `read(h, buf, len) -> bytes`: from a pipe's read end (READ), or as a
/// `stream::READ` call to an endpoint (SEND); 0 at the end of the stream.
pub fn read(args: &Args) -> SyscallResult {
    let me = scheduler::current_thread();
    let buffer = UserSlice::new(args[1], args[2]);
    let source = stream(&me.process, args[0], rights::READ)?;
    let target = buffer.check_writable()?;
    if buffer.is_empty() {
        return Ok(0);
    }
    match source {
        Stream::Log => Err(EBADF),
        Stream::Pipe(end) => {
            let count = end.pipe().read(&me, buffer.len() as usize, |offset, bytes| target.copy_from(offset as u64, bytes))?;
            Ok(count as u64)
        }
        Stream::Endpoint(endpoint) => {
            let room = buffer.len().min(BUFFER_MAX);
            let into = Destination { buffer: Some(Room::User(UserBuffer { address: args[1], len: room })) };
            loop {
                let message = Outgoing { label: stream::READ, words: [room, 0, 0, 0], ..Outgoing::default() };
                let reply = stream_call(&me, &endpoint, message, into)?;
                // The count may not exceed the bytes that arrived (nor, so, the room).
                match stream::reply_result(reply.label, reply.len.min(room)) {
                    // The server gave the read back to be asked again (see `abi::stream`).
                    Err(EAGAIN) => scheduler::preemption_point().map_err(|_| EINTR)?,
                    result => return result,
                }
            }
        }
    }
}

/// `pipe_create(ends_out) -> 0`: a new pipe; its read end's and write end's handle numbers
/// go to `ends_out` (two `u32`).
pub fn pipe_create(args: &Args) -> SyscallResult {
    let out = UserSlice::new(args[0], 8).check_writable()?;
    require_heap_room()?;
    let me = scheduler::current_object();
    let shared = rights::DUPLICATE | rights::TRANSFER;
    let (read_end, write_end) = Pipe::create();
    let read_handle = Handle::new(Object::Pipe(Arc::new(read_end)), shared | rights::READ);
    let write_handle = Handle::new(Object::Pipe(Arc::new(write_end)), shared | rights::WRITE);
    let mut table = me.handles.lock();
    if let Err(errno) = table.require_room(2) {
        drop(table);
        // The ends close here, outside the table's lock.
        drop((read_handle, write_handle));
        return Err(errno);
    }
    let numbers = [read_handle, write_handle].map(|handle| table.insert(handle).unwrap_or_else(|_| unreachable!("room was checked")));
    drop(table);
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&numbers[0].to_le_bytes());
    bytes[4..].copy_from_slice(&numbers[1].to_le_bytes());
    // The range was checked in this syscall and nothing unmaps it meanwhile, but a failed
    // copy would still leave the ends in the table, unnamed: take them back.
    if let Err(errno) = out.copy_from(0, &bytes) {
        let mut table = me.handles.lock();
        let taken = numbers.map(|number| table.remove(u64::from(number)).ok());
        drop(table);
        drop(taken);
        return Err(errno);
    }
    Ok(0)
}
