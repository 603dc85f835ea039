//! Streams served by a program: `read` and `write` on an endpoint handle, which the kernel
//! forwards to the server behind it as calls of the stream protocol (`abi::stream`), as it
//! does for `fs`'s open files (which [`crate::files`] tests through `fs`): the bytes both
//! ways, writes longer than a message split into several calls, short counts, errno
//! replies, counts a server could not have moved, handles smuggled into a reply, missing
//! rights, a dead server and a reader killed while it waits.
//!
//! The `stream_server MODE` role serves its handle 3: in `echo` mode it answers a write with
//! the count it received and a read with the bytes of the last write; the other modes
//! misbehave in the way they are named after.

use alloc::vec;
use alloc::vec::Vec;

use abi::errno::{EBADF, EFAULT, EIO, ENOENT, EPERM, EPIPE};
use abi::handle::rights;
use abi::ipc::BUFFER_MAX;
use abi::stream;
use abi::syscall::{READ, WRITE};
use userlib::check;
use userlib::ipc::{self, Endpoint, Message, Notification};
use userlib::sys::Child;
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here stream_write_and_read_go_through_the_server,
    here stream_write_longer_than_a_message_is_split,
    here stream_short_write_stops,
    here stream_errno_replies_are_returned,
    here stream_impossible_counts_are_eio,
    here stream_reply_handles_are_closed,
    here stream_needs_send_and_a_stream_kind,
    here stream_to_a_dead_server_is_epipe,
    here stream_reader_killed_while_waiting,
];

pub const HELPERS: &[(&str, Helper)] = &[("stream_server", helper_stream_server), ("stream_reader", helper_stream_reader)];

/// `stream_server MODE`: serves the stream protocol on handle 3 for ever.
fn helper_stream_server(args: &[&str]) -> i32 {
    let mode = args.first().copied().unwrap_or("echo");
    let mut last = Vec::new();
    ipc::serve(&Endpoint::from_raw(3), |request, bytes, answer| {
        let asked = request.message.words[0];
        let label = match (mode, request.message.label) {
            ("echo" | "handle", stream::WRITE) => {
                last = bytes.to_vec();
                if mode == "handle"
                    && let Ok(notification) = Notification::create()
                {
                    // Moved with the answer: this process no longer owns the number.
                    answer.send_handle(notification.handle().raw() as u32);
                    core::mem::forget(notification);
                }
                bytes.len() as u64
            }
            ("echo", stream::READ) => answer.write(&last[..last.len().min(asked as usize)]) as u64,
            ("short", stream::WRITE) => bytes.len() as u64 / 2,
            ("liar", stream::WRITE | stream::READ) => asked + 1,
            ("errno", _) => stream::reply_label(Err(ENOENT)),
            _ => stream::reply_label(Err(EIO)),
        };
        Message::new(label, [0; 4])
    })
}

/// `stream_reader`: reads from handle 3 (which no one answers) and exits with the result.
fn helper_stream_reader(_: &[&str]) -> i32 {
    let mut room = [0u8; 16];
    let result = call(READ, [3, room.as_mut_ptr() as u64, room.len() as u64, 0, 0, 0]);
    errno_status(-result.min(0))
}

/// Starts a `stream_server` in `mode`; returns it and a handle to call it with.
fn start_server(mode: &str) -> Result<(Child, Endpoint), alloc::string::String> {
    let endpoint = endpoint()?;
    let server = spawn_with_handles("stream_server", &[mode], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let caller = Endpoint::from_raw(duplicate(endpoint.handle(), rights::SEND | rights::DUPLICATE)?.into_raw());
    Ok((server, caller))
}

fn write_to(handle: &Endpoint, bytes: &[u8]) -> i64 {
    call(WRITE, [handle.handle().raw(), bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0])
}

fn read_from(handle: &Endpoint, room: &mut [u8]) -> i64 {
    call(READ, [handle.handle().raw(), room.as_mut_ptr() as u64, room.len() as u64, 0, 0, 0])
}

/// Runs `body` with a server in `mode`, then kills the server.
fn with_server(mode: &str, body: impl FnOnce(&Endpoint) -> Outcome) -> Outcome {
    let (server, caller) = start_server(mode)?;
    let outcome = body(&caller);
    kill_and_reap(&[server])?;
    outcome
}

fn stream_write_and_read_go_through_the_server() -> Outcome {
    with_server("echo", |server| {
        let text = b"hello, stream";
        check!(write_to(server, text) == text.len() as i64, "write returned {}", show(write_to(server, text)));
        let mut room = [0u8; 64];
        let count = read_from(server, &mut room);
        check!(count == text.len() as i64 && &room[..text.len()] == text, "read returned {} {:?}", show(count), &room[..16]);
        let mut small = [0u8; 5];
        let count = read_from(server, &mut small);
        check!(count == 5 && &small == b"hello", "a 5-byte read returned {} {:?}", show(count), small);
        check!(read_from(server, &mut []) == 0, "an empty read returned {}", show(read_from(server, &mut [])));
        Ok(())
    })
}

fn stream_write_longer_than_a_message_is_split() -> Outcome {
    with_server("echo", |server| {
        let data: Vec<u8> = (0..100 * 1024).map(|index: usize| (index % 251) as u8).collect();
        let written = write_to(server, &data);
        check!(written == data.len() as i64, "a 100 KiB write returned {}", show(written));
        // The last call carried what was left after one full message.
        let tail = &data[BUFFER_MAX as usize..];
        let mut room = vec![0u8; BUFFER_MAX as usize];
        let count = read_from(server, &mut room);
        check!(count == tail.len() as i64 && &room[..tail.len()] == tail, "the last call carried {} bytes", show(count));
        Ok(())
    })
}

fn stream_short_write_stops() -> Outcome {
    with_server("short", |server| {
        let data = vec![7u8; 100 * 1024];
        let written = write_to(server, &data);
        check!(written == BUFFER_MAX as i64 / 2, "a write the server took half of returned {}", show(written));
        Ok(())
    })
}

fn stream_errno_replies_are_returned() -> Outcome {
    with_server("errno", |server| {
        expect_errno("write answered -ENOENT", write_to(server, b"x"), ENOENT)?;
        expect_errno("read answered -ENOENT", read_from(server, &mut [0u8; 4]), ENOENT)
    })
}

fn stream_impossible_counts_are_eio() -> Outcome {
    with_server("liar", |server| {
        expect_errno("write answered one more byte than it was sent", write_to(server, b"abc"), EIO)?;
        expect_errno("read answered one more byte than it asked for", read_from(server, &mut [0u8; 4]), EIO)
    })
}

fn stream_reply_handles_are_closed() -> Outcome {
    with_server("handle", |server| {
        let before = live_objects()?;
        let used_before = used_handles();
        check!(write_to(server, b"four") == 4, "write returned {}", show(write_to(server, b"four")));
        check!(used_handles() == used_before, "the reply's handle stayed: {} handles, {used_before} before", used_handles());
        check!(live_objects()? == before, "the reply's notification is still alive");
        Ok(())
    })
}

fn stream_needs_send_and_a_stream_kind() -> Outcome {
    with_server("echo", |server| {
        check!(write_to(server, b"kept") == 4, "the first write failed");
        let no_send = Endpoint::from_raw(duplicate(server.handle(), rights::DUPLICATE)?.into_raw());
        expect_errno("write without SEND", write_to(&no_send, b"x"), EPERM)?;
        expect_errno("read without SEND", read_from(&no_send, &mut [0u8; 4]), EPERM)?;
        let notification = Notification::create().context("notification_create")?;
        let number = notification.handle().raw();
        expect_errno("write to a notification", call(WRITE, [number, b"x".as_ptr() as u64, 1, 0, 0, 0]), EBADF)?;
        let address = server.handle().raw();
        expect_errno("write from an unmapped buffer", call(WRITE, [address, HOLE, 16, 0, 0, 0]), EFAULT)?;
        expect_errno("read into an unmapped buffer", call(READ, [address, HOLE, 16, 0, 0, 0]), EFAULT)?;
        // None of the refused calls reached the server: it still holds the first write.
        let mut room = [0u8; 8];
        let count = read_from(server, &mut room);
        check!(count == 4 && &room[..4] == b"kept", "the server saw a refused call: {} {:?}", show(count), room);
        Ok(())
    })
}

fn stream_to_a_dead_server_is_epipe() -> Outcome {
    let endpoint = endpoint()?;
    let caller = Endpoint::from_raw(duplicate(endpoint.handle(), rights::SEND)?.into_raw());
    drop(endpoint);
    expect_errno("write with no receiver left", write_to(&caller, b"x"), EPIPE)?;
    expect_errno("read with no receiver left", read_from(&caller, &mut [0u8; 4]), EPIPE)
}

fn stream_reader_killed_while_waiting() -> Outcome {
    let endpoint = endpoint()?;
    let send = duplicate(endpoint.handle(), rights::SEND | rights::DUPLICATE)?;
    let reader = spawn_with_handles("stream_reader", &[], &[0, 1, 2, send.raw() as u32])?;
    wait_until_blocked(reader.pid, "the reader")?;
    kill_and_reap(&[reader])?;
    // The endpoint is still usable: the killed call left no message behind.
    let received = ipc(abi::syscall::RECV, endpoint.handle().raw(), &Message::default(), 0, 0, 0);
    check!(received.result == -abi::errno::EAGAIN, "a message was left behind: {received:?}");
    Ok(())
}

/// How many handles this process holds.
fn used_handles() -> usize {
    ipc::held_handles().map_or(usize::MAX, |held| held.len())
}
