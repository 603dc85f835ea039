//! IPC: `call`, `recv`, `reply` and `reply_recv` between processes (labels, words, bytes,
//! handles moved and copied, badges, truncation, timeouts), the hostile cases (replying twice
//! or to a killed caller, calling a dead server, killing processes blocked in IPC, closing an
//! endpoint under them, handles not held or sent in a loop, bad buffers on both sides, full
//! handle tables), notifications (bits, waiters, binding to an endpoint), close notices, and
//! shared memory (seen by two processes, mapped twice, unmapped in parts, after its handle is
//! closed, never W+X, charged to whoever maps it).
//!
//! Most cases talk to a helper role started with the endpoint (or notification, or memory)
//! as its handle 3; the `server` role answers each call with a report of what it received.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use abi::errno::{E2BIG, EAGAIN, EBADF, EFAULT, EINVAL, EMFILE, ENOENT, ENOMEM, EPERM, EPIPE, ETIMEDOUT};
use abi::handle::{HANDLE_MAX, Kind, NO_HANDLE, rights};
use abi::ipc::{
    BUFFER_MAX, COPY_HANDLE, FOREVER, HANDLES_MAX, IpcBuffers, LABEL_CLOSED, LABEL_MAX, LABEL_NOTIFICATION,
    MINT_NOTIFY_CLOSE,
};
use abi::syscall::{
    CALL, ENDPOINT_BIND, ENDPOINT_MINT, HANDLE_INFO, MEMORY_CREATE, MEMORY_MAP, MEMORY_SIZE, RECV, REPLY, REPLY_RECV,
    WAIT_NOTIFICATION,
};
use abi::{PROT_EXEC, PROT_READ, PROT_WRITE};
use userlib::check;
use userlib::ipc::{self, Endpoint, IpcRegisters, Message, Notification, OwnedHandle, SharedMemory, Transfer};
use userlib::sys::{self, Child, EntryPath, Errno};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;
use crate::dirty::Call;
use crate::helpers::arg;

pub const CASES: &[Case] = userlib::cases![
    here call_and_reply_carry_label_and_words,
    here call_and_reply_carry_bytes,
    here receive_buffer_smaller_than_message,
    here reply_larger_than_callers_room,
    here message_limits_refused,
    here badges_seen_by_server,
    here minted_handles_cannot_receive_or_mint,
    here mint_refuses_bad_flags_and_rights,
    here handles_moved_in_a_message,
    here handles_copied_in_a_message,
    here transfer_needs_transfer_and_duplicate_rights,
    here sending_a_handle_not_held_refused,
    here sending_the_endpoint_itself,
    here handle_loop_broken_by_timeout,
    here handle_loop_broken_by_kill,
    here recv_timeout_zero_is_eagain,
    here recv_timeout_expires,
    here call_timeout_zero_is_eagain,
    here call_timeout_expires,
    here reply_after_the_caller_timed_out_is_epipe,
    here calling_a_dead_server_is_epipe,
    here server_death_fails_queued_callers,
    here server_death_fails_the_call_it_took,
    here reply_twice_refused,
    here a_reply_moved_to_another_process_answers_the_caller,
    here reply_to_a_killed_caller_is_epipe,
    here kill_process_blocked_in_call,
    here kill_process_blocked_in_recv,
    here kill_process_blocked_in_notification_wait,
    here closing_endpoint_fails_blocked_callers,
    here closing_handles_leaves_blocked_receivers_waiting,
    here bad_send_buffers_refused,
    here bad_receive_buffers_refused,
    here bad_reply_buffers_use_the_reply_up,
    here replies_carry_any_label,
    here read_only_ipc_buffers_refused,
    here receiver_table_full_keeps_the_message,
    here caller_table_full_fails_the_reply,
    here reply_recv_checks_the_endpoint_first,
    here ipc_registers_preserved,
    here many_callers_one_server,
    here notification_bits_accumulate,
    here notification_wakes_a_waiter,
    here notification_timeouts,
    here bound_notification_delivered_through_recv,
    here bound_notification_wakes_a_receiver,
    here bind_needs_receive_and_wait,
    here close_notice_for_the_last_minted_handle,
    here close_notice_when_the_holder_exits,
    here shared_memory_seen_by_two_processes,
    here shared_memory_mapped_twice,
    here shared_memory_unmapped_in_parts,
    here shared_memory_outlives_its_handle,
    here shared_memory_never_writable_and_executable,
    here shared_memory_charged_to_the_mapper,
    here memory_create_limits,
    here memory_size_counts_whole_pages,
    here memory_map_needs_rights,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("server", helper_server),
    ("receiver", helper_receiver),
    ("answer_through", helper_answer_through),
    ("receive_then_exit", helper_receive_then_exit),
    ("loop_caller", helper_loop_caller),
    ("notification_waiter", helper_notification_waiter),
    ("full_table_server", helper_full_table_server),
    ("full_table_caller", helper_full_table_caller),
    ("shared_memory_peer", helper_shared_memory_peer),
    ("mapping_charge", helper_mapping_charge),
];

/// Rights of a new endpoint's handle, and of one minted with every right it may have.
const ENDPOINT_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SEND | rights::RECEIVE | rights::MINT;
const MINTED_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SEND;
/// Rights of a new notification's handle and of a new memory object's.
const NOTIFICATION_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::SIGNAL | rights::WAIT;
const MEMORY_RIGHTS: u32 = rights::DUPLICATE | rights::TRANSFER | rights::READ | rights::WRITE | rights::EXECUTE;

// ---------------------------------------------------------------------------------------
// The `server` role and its report.
// ---------------------------------------------------------------------------------------

/// Words in the report the `server` role answers with: badge, label, the 4 words, the
/// length sent, the handle count, whether the bytes after its room stayed untouched, and
/// `handle_info` of each handle that arrived.
const REPORT_WORDS: usize = 9 + HANDLES_MAX;
const REPORT_BYTES: usize = REPORT_WORDS * 8;
/// Bytes after the `server`'s receive room that must stay as they were.
const GUARD_LEN: usize = 64;
const GUARD_BYTE: u8 = 0xee;

/// What the `server` role saw of one call.
#[derive(Debug)]
struct Report {
    badge: u64,
    label: u64,
    words: [u64; 4],
    len: u64,
    handle_count: u64,
    guard_intact: bool,
    /// `handle_info` of each handle that arrived, kind and rights.
    handles: Vec<(Option<Kind>, u32)>,
    /// The bytes that landed in its room (as many as fit in the answer).
    bytes: Vec<u8>,
}

impl Report {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        check!(bytes.len() >= REPORT_BYTES, "the server's answer has {} bytes, less than a report", bytes.len());
        let word = |index: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[index * 8..index * 8 + 8]);
            u64::from_le_bytes(raw)
        };
        let handle_count = word(7);
        Ok(Self {
            badge: word(0),
            label: word(1),
            words: [word(2), word(3), word(4), word(5)],
            len: word(6),
            handle_count,
            guard_intact: word(8) == 1,
            handles: (0..(handle_count as usize).min(HANDLES_MAX)).map(|slot| abi::handle::split_info(word(9 + slot))).collect(),
            bytes: bytes[REPORT_BYTES..].to_vec(),
        })
    }
}

/// `server COUNT ROOM MODE`: answers COUNT calls on its handle 3, receiving into ROOM bytes
/// (followed by a guard it checks). Each answer has the label plus one (MODE `badge`: the
/// badge instead), the words reversed, a [`Report`] and the bytes that landed as its bytes,
/// and the handles that arrived (MODE `return`; MODE `keep` and `badge` keep them). Exits 0,
/// or [`errno_status`] of a failed `recv`, or 2000 + the errno of a failed `reply`, or 999
/// for a message that takes no reply.
fn helper_server(args: &[&str]) -> i32 {
    let count: usize = arg(args, 0);
    let room_len: usize = arg(args, 1);
    let mode = args.get(2).copied().unwrap_or("return");
    let mut room = vec![GUARD_BYTE; room_len + GUARD_LEN];
    let mut answer = vec![0u8; BUFFER_MAX as usize];
    for _ in 0..count {
        room.fill(GUARD_BYTE);
        let mut received = buffers(&[], &[], &mut room);
        received.recv_capacity = room_len as u64;
        let request = ipc(RECV, 3, &Message::default(), &raw mut received as u64, LIMIT_NS, 0);
        if request.result < 0 {
            return errno_status(-request.result);
        }
        if request.reply == NO_HANDLE {
            return 999;
        }
        let handles: Vec<u32> = arrived_handles(&received).to_vec();
        let landed = (received.received_len as usize).min(room_len);
        let mut report = [0u64; REPORT_WORDS];
        report[0] = request.badge;
        report[1] = request.message.label;
        report[2..6].copy_from_slice(&request.message.words);
        report[6] = received.received_len;
        report[7] = u64::from(received.received_handle_count);
        report[8] = u64::from(room[room_len..].iter().all(|&byte| byte == GUARD_BYTE));
        for (slot, &handle) in handles.iter().enumerate() {
            report[9 + slot] = call(HANDLE_INFO, [u64::from(handle), 0, 0, 0, 0, 0]) as u64;
        }
        for (chunk, value) in answer.as_chunks_mut::<8>().0.iter_mut().zip(report) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        let echoed = landed.min(BUFFER_MAX as usize - REPORT_BYTES);
        answer[REPORT_BYTES..REPORT_BYTES + echoed].copy_from_slice(&room[..echoed]);
        let [w0, w1, w2, w3] = request.message.words;
        let (label, returned): (u64, &[u32]) = match mode {
            "badge" => (request.badge, &[]),
            "keep" => (request.message.label + 1, &[]),
            _ => (request.message.label + 1, &handles),
        };
        let mut reply = buffers(&answer[..REPORT_BYTES + echoed], returned, &mut []);
        let replied = ipc(REPLY, request.reply, &Message::new(label, [w3, w2, w1, w0]), &raw mut reply as u64, 0, 0);
        if replied.result < 0 {
            return 2000 + (-replied.result) as i32;
        }
    }
    0
}

/// Starts `server COUNT ROOM MODE` with `endpoint` as its handle 3.
fn serve(endpoint: &Endpoint, count: usize, room: usize, mode: &str) -> Result<Child, String> {
    let (count, room) = (format!("{count}"), format!("{room}"));
    spawn_with_handles("server", &[&count, &room, mode], &[0, 1, 2, endpoint.handle().raw() as u32])
}

/// Starts a `server` that is the only receiver of a new endpoint; returns it and a handle
/// that may only call it.
fn start_server(count: usize, room: usize, mode: &str) -> Result<(Child, Endpoint), String> {
    let endpoint = endpoint()?;
    let client = endpoint.mint(0, false).context("endpoint_mint")?;
    Ok((serve(&endpoint, count, room, mode)?, client))
}

/// Waits for a `server` to end and fails unless it answered every call (status 0).
fn finish_server(server: Child) -> Outcome {
    let ended = finish_within(server, "the server")?;
    expect_exit("the server (1000 + errno: its recv failed; 2000 + errno: its reply failed)", ended, 0)
}

/// Ends a case that talked to `server`: if the case failed, the server may still wait for
/// calls that will not come, so it is killed; otherwise it must have answered them all.
fn conclude(server: Child, outcome: Outcome) -> Outcome {
    match outcome {
        Ok(()) => finish_server(server),
        Err(why) => {
            let _ = sys::kill(server);
            let _ = sys::wait(Some(server));
            Err(why)
        }
    }
}

/// A call through `client` with `send` and `handles`, whose answer lands in a room of
/// `room` bytes followed by a guard: the registers, the buffers as the kernel left them and
/// the room with its guard.
fn call_with(client: u64, message: &Message, send: &[u8], handles: &[u32], room: usize) -> (IpcRegisters, IpcBuffers, Vec<u8>) {
    let mut answer = vec![GUARD_BYTE; room + GUARD_LEN];
    let mut transfer = buffers(send, handles, &mut answer);
    transfer.recv_capacity = room as u64;
    let registers = ipc(CALL, client, message, &raw mut transfer as u64, LIMIT_NS, 0);
    (registers, transfer, answer)
}

/// A call to a `server` through `client`: its answer's registers, the handles that came
/// back, and the server's report.
fn call_server(client: u64, message: &Message, send: &[u8], handles: &[u32]) -> Result<(Message, Vec<u32>, Report), String> {
    let (registers, transfer, answer) = call_with(client, message, send, handles, BUFFER_MAX as usize);
    let registers = ipc_ok("call to the server", registers)?;
    let len = (transfer.received_len as usize).min(BUFFER_MAX as usize);
    Ok((registers.message, arrived_handles(&transfer).to_vec(), Report::parse(&answer[..len])?))
}

/// `count` bytes of a pattern that differs at every offset within 251 bytes.
fn pattern(count: usize) -> Vec<u8> {
    (0..count).map(|index| (index % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Messages: registers, bytes, truncation, limits.
// ---------------------------------------------------------------------------------------

fn call_and_reply_carry_label_and_words() -> Outcome {
    let (server, client) = start_server(2, 0, "return")?;
    let outcome: Outcome = (|| {
        let words = [1, 2, 0x8000_0000_0000_0000, u64::MAX];
        let (reply, returned, report) = call_server(client.handle().raw(), &Message::new(7, words), &[], &[])?;
        check!(reply == Message::new(8, [u64::MAX, 0x8000_0000_0000_0000, 2, 1]), "the reply was {reply:?}");
        check!(returned.is_empty(), "handles came back with a message that sent none: {returned:?}");
        check!(report.label == 7 && report.words == words, "the server received label {} and words {:?}", report.label, report.words);
        check!(report.badge == 0 && report.len == 0 && report.handle_count == 0, "the server's report: {report:?}");
        let (reply, _, report) = call_server(client.handle().raw(), &Message::new(LABEL_MAX - 1, [0; 4]), &[], &[])?;
        check!(report.label == LABEL_MAX - 1, "the server received label {:#x}, sent LABEL_MAX - 1", report.label);
        check!(reply.label == LABEL_MAX, "a reply with label LABEL_MAX arrived as {:#x}", reply.label);
        Ok(())
    })();
    conclude(server, outcome)
}

fn call_and_reply_carry_bytes() -> Outcome {
    let (server, client) = start_server(2, BUFFER_MAX as usize, "return")?;
    let outcome: Outcome = (|| {
        for len in [1000, BUFFER_MAX as usize] {
            let sent = pattern(len);
            let (_, _, report) = call_server(client.handle().raw(), &Message::default(), &sent, &[])?;
            check!(report.len == len as u64, "the server was told {} bytes of {len} were sent", report.len);
            let echoed = len.min(BUFFER_MAX as usize - REPORT_BYTES);
            check!(report.bytes.len() == echoed, "{} bytes came back of {echoed} the server echoed", report.bytes.len());
            check!(report.bytes == sent[..echoed], "the {len} bytes arrived changed");
        }
        Ok(())
    })();
    conclude(server, outcome)
}

fn receive_buffer_smaller_than_message() -> Outcome {
    let (server, client) = start_server(1, 16, "return")?;
    let outcome: Outcome = (|| {
        let sent = pattern(100);
        let (_, _, report) = call_server(client.handle().raw(), &Message::default(), &sent, &[])?;
        check!(report.len == 100, "the receiver was told {} bytes were sent, not 100", report.len);
        check!(report.bytes == sent[..16], "the 16 bytes that fit arrived as {:?}", report.bytes);
        check!(report.guard_intact, "bytes past the receiver's 16-byte room were written");
        Ok(())
    })();
    conclude(server, outcome)
}

fn reply_larger_than_callers_room() -> Outcome {
    let (server, client) = start_server(1, 64, "return")?;
    let outcome: Outcome = (|| {
        let sent = pattern(50);
        let (registers, transfer, answer) = call_with(client.handle().raw(), &Message::new(1, [0; 4]), &sent, &[], 40);
        ipc_ok("a call with 40 bytes of room", registers)?;
        let full = (REPORT_BYTES + 50) as u64;
        check!(transfer.received_len == full, "the caller was told the reply had {} bytes, not {full}", transfer.received_len);
        check!(answer[..8] == [0; 8], "the reply's first 8 bytes (the badge, 0) arrived as {:?}", &answer[..8]);
        check!(answer[8..16] == 1u64.to_le_bytes(), "the reply's second word (the label, 1) arrived as {:?}", &answer[8..16]);
        check!(answer[40..].iter().all(|&byte| byte == GUARD_BYTE), "bytes past the caller's 40-byte room were written");
        Ok(())
    })();
    conclude(server, outcome)
}

/// Nothing is queued on `endpoint`: a poll finds nothing.
fn expect_nothing_queued(what: &str, endpoint: &Endpoint) -> Outcome {
    let polled = ipc(RECV, endpoint.handle().raw(), &Message::default(), 0, 0, 0);
    expect_ipc_errno(&format!("recv after {what}"), &polled, EAGAIN)
}

fn message_limits_refused() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let poll = |label: u64, buffers: &mut IpcBuffers| ipc(CALL, ep, &Message::new(label, [0; 4]), buffers as *mut IpcBuffers as u64, 0, 0);
    let big = vec![0u8; BUFFER_MAX as usize + 1];
    for (label, what) in [(LABEL_CLOSED, "LABEL_CLOSED"), (LABEL_NOTIFICATION, "LABEL_NOTIFICATION")] {
        expect_ipc_errno(&format!("call with label {what}"), &poll(label, &mut buffers(&[], &[], &mut [])), EINVAL)?;
    }
    expect_ipc_errno("call with label LABEL_MAX (nobody receives)", &poll(LABEL_MAX, &mut buffers(&[], &[], &mut [])), EAGAIN)?;
    expect_ipc_errno("call with BUFFER_MAX + 1 bytes", &poll(0, &mut buffers(&big, &[], &mut [])), E2BIG)?;
    let mut huge = buffers(&[], &[], &mut []);
    huge.send_len = u64::MAX;
    expect_ipc_errno("call with u64::MAX bytes", &poll(0, &mut huge), E2BIG)?;
    expect_ipc_errno("call with BUFFER_MAX bytes (nobody receives)", &poll(0, &mut buffers(&big[..BUFFER_MAX as usize], &[], &mut [])), EAGAIN)?;
    for count in [HANDLES_MAX as u32 + 1, u32::MAX] {
        let mut many = buffers(&[], &[], &mut []);
        many.send_handle_count = count;
        expect_ipc_errno(&format!("call with {count} handles"), &poll(0, &mut many), EINVAL)?;
    }
    expect_nothing_queued("the refused calls", &endpoint)
}

// ---------------------------------------------------------------------------------------
// Badges and minting.
// ---------------------------------------------------------------------------------------

fn badges_seen_by_server() -> Outcome {
    let endpoint = endpoint()?;
    let seven = endpoint.mint(7, false).context("endpoint_mint of badge 7")?;
    let biggest = endpoint.mint(u64::MAX, false).context("endpoint_mint of badge u64::MAX")?;
    let copy_of_seven = duplicate(seven.handle(), rights::SEND)?;
    let server = serve(&endpoint, 4, 0, "return")?;
    let outcome: Outcome = (|| {
        for (client, badge, what) in [
            (seven.handle().raw(), 7, "a handle minted with badge 7"),
            (biggest.handle().raw(), u64::MAX, "a handle minted with badge u64::MAX"),
            (copy_of_seven.raw(), 7, "a duplicate of the badge-7 handle"),
            (endpoint.handle().raw(), 0, "the endpoint's own handle"),
        ] {
            let (_, _, report) = call_server(client, &Message::default(), &[], &[])?;
            check!(report.badge == badge, "a call through {what} carried badge {:#x}", report.badge);
        }
        Ok(())
    })();
    drop(endpoint);
    conclude(server, outcome)
}

fn minted_handles_cannot_receive_or_mint() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    expect_handle("a new endpoint", ep, Kind::Endpoint, ENDPOINT_RIGHTS)?;
    let minted = mint(ep, 5, rights::ALL, 0)?;
    expect_handle("a handle minted with every right", minted.raw(), Kind::Endpoint, MINTED_RIGHTS)?;
    let notification = Notification::create().context("notification_create")?;
    let m = minted.raw();
    expect_ipc_errno("recv through a minted handle", &ipc(RECV, m, &Message::default(), 0, 0, 0), EPERM)?;
    expect_ipc_errno("reply_recv on a minted handle", &ipc(REPLY_RECV, NO_HANDLE, &Message::default(), 0, 0, m), EPERM)?;
    expect_errno("endpoint_mint through a minted handle", call(ENDPOINT_MINT, [m, 1, u64::from(rights::ALL), 0, 0, 0]), EPERM)?;
    let bind = call(ENDPOINT_BIND, [m, notification.handle().raw(), 0, 0, 0, 0]);
    expect_errno("endpoint_bind through a minted handle", bind, EPERM)?;
    let send_only = mint(ep, 6, rights::SEND, 0)?;
    expect_handle("a handle minted with SEND", send_only.raw(), Kind::Endpoint, rights::SEND)?;
    let copied = ipc::duplicate(send_only.raw(), rights::ALL);
    check!(copied == Err(Errno(EPERM)), "duplicate of a handle minted without DUPLICATE returned {copied:?}");
    let bare = mint(ep, 6, 0, 0)?;
    expect_handle("a handle minted with no rights", bare.raw(), Kind::Endpoint, 0)?;
    expect_ipc_errno("call through a handle minted without SEND", &ipc(CALL, bare.raw(), &Message::default(), 0, 0, 0), EPERM)
}

fn mint_refuses_bad_flags_and_rights() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let notification = Notification::create().context("notification_create")?;
    let no_mint = duplicate(endpoint.handle(), ENDPOINT_RIGHTS & !rights::MINT)?;
    let all = u64::from(rights::ALL);
    for (handle, rights, flags, what, errno) in [
        (ep, all, 2, "flags 2", EINVAL),
        (ep, all, u64::MAX, "flags u64::MAX", EINVAL),
        (ep, 1 << 32, 0, "rights 2^32", EINVAL),
        (ep, u64::MAX, MINT_NOTIFY_CLOSE, "rights u64::MAX", EINVAL),
        (notification.handle().raw(), all, 0, "a notification", EBADF),
        (no_mint.raw(), all, 0, "a handle without MINT", EPERM),
        (HANDLE_MAX as u64, all, 0, "handle HANDLE_MAX", EBADF),
    ] {
        expect_errno(&format!("endpoint_mint with {what}"), call(ENDPOINT_MINT, [handle, 1, rights, flags, 0, 0]), errno)?;
    }
    drop((endpoint, notification, no_mint));
    expect_objects_back(objects, "after the refused mints")
}

/// `endpoint_mint` of `endpoint` with `badge`, `rights` and `flags`, as an owned handle.
fn mint(endpoint: u64, badge: u64, rights: u32, flags: u64) -> Result<OwnedHandle, String> {
    let result = call(ENDPOINT_MINT, [endpoint, badge, u64::from(rights), flags, 0, 0]);
    check!(result >= 0, "endpoint_mint with badge {badge:#x} and rights {rights:#x}: {}", show(result));
    Ok(OwnedHandle::from_raw(result as u64))
}

// ---------------------------------------------------------------------------------------
// Handles in messages.
// ---------------------------------------------------------------------------------------

/// A new notification.
fn notification() -> Result<Notification, String> {
    Notification::create().context("notification_create")
}

fn handles_moved_in_a_message() -> Outcome {
    let objects = live_objects()?;
    let (server, client) = start_server(2, 0, "keep")?;
    let outcome: Outcome = (|| {
        let moved = notification()?.handle().duplicate(rights::ALL).context("handle_duplicate")?.into_raw();
        let sent = call_server(client.handle().raw(), &Message::default(), &[], &[moved as u32]);
        if sent.is_err() {
            let _ = ipc::close(moved);
        }
        let (_, returned, report) = sent?;
        check!(returned.is_empty(), "handles came back from a server that keeps them: {returned:?}");
        check!(
            report.handles == [(Some(Kind::Notification), NOTIFICATION_RIGHTS)],
            "the server received {:?}, expected one notification with its rights",
            report.handles
        );
        expect_no_handle("a handle moved in a message", moved)?;
        // Two moved at once arrive as two.
        let first = notification()?.handle().duplicate(rights::SIGNAL | rights::TRANSFER).context("handle_duplicate")?.into_raw();
        let second = endpoint()?.into_raw();
        let sent = call_server(client.handle().raw(), &Message::default(), &[], &[first as u32, second as u32]);
        if sent.is_err() {
            // Not delivered: both are still here.
            let _ = (ipc::close(first), ipc::close(second));
        }
        let (_, _, report) = sent?;
        check!(
            report.handles == [(Some(Kind::Notification), rights::SIGNAL | rights::TRANSFER), (Some(Kind::Endpoint), ENDPOINT_RIGHTS)],
            "the server received {:?}",
            report.handles
        );
        expect_no_handle("the first of two moved handles", first)?;
        expect_no_handle("the second of two moved handles", second)?;
        Ok(())
    })();
    conclude(server, outcome)?;
    drop(client);
    expect_objects_back(objects, "after the server that kept the handles ended")
}

fn handles_copied_in_a_message() -> Outcome {
    let (server, client) = start_server(1, 0, "keep")?;
    let kept = notification()?;
    let outcome: Outcome = (|| {
        let copy = kept.handle().raw() as u32 | COPY_HANDLE;
        let (_, _, report) = call_server(client.handle().raw(), &Message::default(), &[], &[copy])?;
        check!(
            report.handles == [(Some(Kind::Notification), NOTIFICATION_RIGHTS)],
            "the server received {:?}, expected a copy with every right of the original",
            report.handles
        );
        expect_handle("the original of a copied handle", kept.handle().raw(), Kind::Notification, NOTIFICATION_RIGHTS)?;
        Ok(())
    })();
    conclude(server, outcome)?;
    kept.signal(3).context("signal through the original")?;
    let bits = kept.wait(0).context("wait through the original")?;
    check!(bits == 3, "the original took bits {bits:#x}, expected 0x3");
    Ok(())
}

/// A poll `call` on `endpoint` (nobody receives) sending `handles`: what it returned.
fn poll_call_sending(endpoint: u64, handles: &[u32]) -> i64 {
    let mut message = buffers(&[], handles, &mut []);
    ipc(CALL, endpoint, &Message::default(), &raw mut message as u64, 0, 0).result
}

fn transfer_needs_transfer_and_duplicate_rights() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let original = notification()?;
    let no_transfer = duplicate(original.handle(), NOTIFICATION_RIGHTS & !rights::TRANSFER)?;
    let no_duplicate = duplicate(original.handle(), NOTIFICATION_RIGHTS & !rights::DUPLICATE)?;
    let (t, d) = (no_transfer.raw() as u32, no_duplicate.raw() as u32);
    expect_errno("moving a handle without TRANSFER", poll_call_sending(ep, &[t]), EPERM)?;
    expect_errno("copying a handle without TRANSFER", poll_call_sending(ep, &[t | COPY_HANDLE]), EPERM)?;
    expect_errno("copying a handle without DUPLICATE", poll_call_sending(ep, &[d | COPY_HANDLE]), EPERM)?;
    // Moving needs only TRANSFER: the call gets as far as finding nobody to receive.
    expect_errno("moving a handle without DUPLICATE", poll_call_sending(ep, &[d]), EAGAIN)?;
    expect_handle("the handle without TRANSFER, after the refusals", t.into(), Kind::Notification, NOTIFICATION_RIGHTS & !rights::TRANSFER)?;
    expect_handle("the handle without DUPLICATE, after the call", d.into(), Kind::Notification, NOTIFICATION_RIGHTS & !rights::DUPLICATE)?;
    expect_nothing_queued("the refused transfers", &endpoint)
}

fn sending_a_handle_not_held_refused() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let held = notification()?;
    let n = held.handle().raw() as u32;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")? as u32;
    for (handles, what) in [
        (vec![free], "a free handle number"),
        (vec![free | COPY_HANDLE], "a copy of a free handle number"),
        (vec![HANDLE_MAX as u32], "handle HANDLE_MAX"),
        (vec![!COPY_HANDLE], "handle 2^31 - 1"),
        (vec![n, free], "a held handle and a free number"),
        (vec![n, n], "the same handle moved twice"),
    ] {
        expect_errno(&format!("sending {what}"), poll_call_sending(ep, &handles), EBADF)?;
        expect_handle(&format!("the held handle after sending {what}"), n.into(), Kind::Notification, NOTIFICATION_RIGHTS)?;
    }
    // A copy and a move of the same handle are two handles; nobody receives them here.
    expect_errno("a copy and a move of one handle", poll_call_sending(ep, &[n | COPY_HANDLE, n]), EAGAIN)?;
    expect_handle("the held handle after a copy and a move", n.into(), Kind::Notification, NOTIFICATION_RIGHTS)?;
    expect_nothing_queued("the refused sends", &endpoint)?;
    drop((endpoint, held));
    expect_objects_back(objects, "after the refused sends")
}

fn sending_the_endpoint_itself() -> Outcome {
    let endpoint = endpoint()?;
    let client = endpoint.mint(9, false).context("endpoint_mint")?.into_raw();
    let server = serve(&endpoint, 1, 0, "keep")?;
    let outcome: Outcome = (|| {
        // The handle the call goes through travels in it.
        let (reply, _, report) = call_server(client, &Message::default(), &[], &[client as u32])?;
        check!(reply.label == 1 && report.badge == 9, "the call carried badge {:#x}, label reply {:#x}", report.badge, reply.label);
        check!(
            report.handles == [(Some(Kind::Endpoint), MINTED_RIGHTS)],
            "the server received {:?}, expected the minted endpoint handle",
            report.handles
        );
        expect_no_handle("the endpoint handle sent through itself", client)?;
        // The endpoint's receiving handle, sent on itself, waits with nobody left to take it.
        let ep = endpoint.handle().raw();
        expect_errno("sending the receiving handle through itself", poll_call_sending(ep, &[ep as u32]), EAGAIN)?;
        expect_handle("the receiving handle after the call", ep, Kind::Endpoint, ENDPOINT_RIGHTS)?;
        Ok(())
    })();
    conclude(server, outcome)
}

fn handle_loop_broken_by_timeout() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let mut message = buffers(&[], &[ep as u32], &mut []);
    let start = now();
    let called = ipc(CALL, ep, &Message::default(), &raw mut message as u64, 20 * MS, 0);
    let elapsed = now() - start;
    expect_ipc_errno("a call carrying its own endpoint's only receiving handle", &called, ETIMEDOUT)?;
    check!((20 * MS..20 * MS + HANG_NS).contains(&elapsed), "the 20 ms call returned after {} ms", elapsed / MS);
    expect_handle("the receiving handle after the call timed out", ep, Kind::Endpoint, ENDPOINT_RIGHTS)?;
    expect_nothing_queued("the timed-out call", &endpoint)?;
    drop(endpoint);
    expect_objects_back(objects, "after the handle loop")
}

/// `loop_caller`: calls its handle 3 (an endpoint's only receiving handle) carrying that
/// handle itself, and waits for ever; exits with [`errno_status`] if the call ends.
fn helper_loop_caller(_: &[&str]) -> i32 {
    let mut message = buffers(&[], &[3], &mut []);
    let called = ipc(CALL, 3, &Message::default(), &raw mut message as u64, FOREVER, 0);
    errno_status(-called.result)
}

fn handle_loop_broken_by_kill() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let child = spawn_with_handles("loop_caller", &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    drop(endpoint);
    let blocked = wait_until_blocked(child.pid, "loop_caller");
    kill_and_reap(&[child])?;
    blocked?;
    expect_objects_back(objects, "after killing a process whose endpoint travelled in its own call")
}

// ---------------------------------------------------------------------------------------
// Timeouts.
// ---------------------------------------------------------------------------------------

/// Fails unless `elapsed` is at least `asked` and at most three time slices more.
/// A timeout of `asked` ns expired after `elapsed`: not early, and not hung.
fn expect_timed(what: &str, elapsed: u64, asked: u64) -> Outcome {
    check!(
        (asked..asked + HANG_NS).contains(&elapsed),
        "{what} with a {} ms timeout returned after {} us",
        asked / MS,
        elapsed / 1000
    );
    Ok(())
}

fn recv_timeout_zero_is_eagain() -> Outcome {
    let endpoint = endpoint()?;
    let start = now();
    let polled = ipc(RECV, endpoint.handle().raw(), &Message::default(), 0, 0, 0);
    let elapsed = now() - start;
    expect_ipc_errno("recv with timeout 0 on an empty endpoint", &polled, EAGAIN)?;
    check!(elapsed < HANG_NS, "recv with timeout 0 took {} us", elapsed / 1000);
    check!(polled.reply == 0 && polled.badge == endpoint.handle().raw(), "a refused recv changed its registers: {polled:?}");
    Ok(())
}

fn recv_timeout_expires() -> Outcome {
    let endpoint = endpoint()?;
    let start = now();
    let waited = ipc(RECV, endpoint.handle().raw(), &Message::default(), 0, 20 * MS, 0);
    let elapsed = now() - start;
    expect_ipc_errno("recv with a 20 ms timeout", &waited, ETIMEDOUT)?;
    expect_timed("recv", elapsed, 20 * MS)
}

fn call_timeout_zero_is_eagain() -> Outcome {
    let endpoint = endpoint()?;
    let start = now();
    let polled = ipc(CALL, endpoint.handle().raw(), &Message::new(5, [1, 2, 3, 4]), 0, 0, 0);
    let elapsed = now() - start;
    expect_ipc_errno("call with timeout 0 while nobody receives", &polled, EAGAIN)?;
    check!(elapsed < HANG_NS, "call with timeout 0 took {} us", elapsed / 1000);
    check!(polled.message == Message::new(5, [1, 2, 3, 4]), "a refused call changed its message registers: {:?}", polled.message);
    expect_nothing_queued("a polled call", &endpoint)
}

fn call_timeout_expires() -> Outcome {
    let endpoint = endpoint()?;
    let start = now();
    let waited = ipc(CALL, endpoint.handle().raw(), &Message::default(), 0, 20 * MS, 0);
    let elapsed = now() - start;
    expect_ipc_errno("call with a 20 ms timeout while nobody receives", &waited, ETIMEDOUT)?;
    expect_timed("call", elapsed, 20 * MS)?;
    expect_nothing_queued("a call that timed out", &endpoint)
}

/// Starts `caller LABEL TIMEOUT` on a SEND-only copy of `endpoint`.
fn start_caller(endpoint: &Endpoint, extra: &[&str]) -> Result<Child, String> {
    let send = duplicate(endpoint.handle(), rights::DUPLICATE | rights::SEND)?;
    spawn_with_handles("caller", extra, &[0, 1, 2, send.raw() as u32])
}

/// Receives one call on `endpoint` within the case limit: its registers (the reply handle
/// in `reply`).
fn receive_call(endpoint: &Endpoint) -> Result<IpcRegisters, String> {
    let received = ipc_ok("recv of a call", ipc(RECV, endpoint.handle().raw(), &Message::default(), 0, LIMIT_NS, 0))?;
    check!(received.reply != NO_HANDLE, "the message received was not a call: {received:?}");
    Ok(received)
}

/// `reply` through reply handle `reply` with `message` and `buffers` (0 for none).
fn reply_with(reply: u64, message: &Message, buffers: u64) -> IpcRegisters {
    ipc(REPLY, reply, message, buffers, 0, 0)
}

fn reply_after_the_caller_timed_out_is_epipe() -> Outcome {
    let endpoint = endpoint()?;
    let child = start_caller(&endpoint, &["0", "30"])?;
    let received = receive_call(&endpoint)?;
    let ended = finish_within(child, "the caller")?;
    expect_exit("the caller (1110: its call timed out)", ended, errno_status(ETIMEDOUT))?;
    let late = reply_with(received.reply, &Message::new(1, [0; 4]), 0);
    expect_ipc_errno("reply to a caller whose call timed out", &late, EPIPE)?;
    expect_no_handle("the reply handle after the late reply", received.reply)
}

// ---------------------------------------------------------------------------------------
// Servers that die, replies that fail, processes killed in IPC.
// ---------------------------------------------------------------------------------------

fn calling_a_dead_server_is_epipe() -> Outcome {
    let endpoint = endpoint()?;
    let client = duplicate(endpoint.handle(), rights::SEND)?;
    drop(endpoint);
    for (timeout, what) in [(0, "timeout 0"), (LIMIT_NS, "a long timeout"), (FOREVER, "no timeout")] {
        let start = now();
        let called = ipc(CALL, client.raw(), &Message::default(), 0, timeout, 0);
        let elapsed = now() - start;
        expect_ipc_errno(&format!("call with {what} to an endpoint nobody can receive on"), &called, EPIPE)?;
        check!(elapsed < HANG_NS, "the failed call took {} us", elapsed / 1000);
    }
    Ok(())
}

fn server_death_fails_queued_callers() -> Outcome {
    let endpoint = endpoint()?;
    let client = endpoint.mint(0, false).context("endpoint_mint")?;
    // The server holds the endpoint 30 ms without receiving, then exits.
    let server = spawn_with_handles("exit_after", &["30", "0"], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    drop(endpoint);
    let start = now();
    let called = ipc(CALL, client.handle().raw(), &Message::default(), 0, LIMIT_NS, 0);
    let elapsed = now() - start;
    expect_exit("the server", finish_within(server, "the server")?, 0)?;
    expect_ipc_errno("a call queued when its server exited", &called, EPIPE)?;
    check!(elapsed < 30 * MS + HANG_NS, "the call failed {} ms after it began", elapsed / MS);
    Ok(())
}

/// `receive_then_exit`: receives one call on its handle 3 and exits without replying;
/// exits 0, or [`errno_status`] if the receive failed.
fn helper_receive_then_exit(_: &[&str]) -> i32 {
    let received = ipc(RECV, 3, &Message::default(), 0, LIMIT_NS, 0);
    if received.result < 0 { errno_status(-received.result) } else { 0 }
}

fn server_death_fails_the_call_it_took() -> Outcome {
    let endpoint = endpoint()?;
    let client = endpoint.mint(0, false).context("endpoint_mint")?;
    let server = spawn_with_handles("receive_then_exit", &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    drop(endpoint);
    let called = ipc(CALL, client.handle().raw(), &Message::default(), 0, LIMIT_NS, 0);
    expect_exit("the server", finish_within(server, "the server")?, 0)?;
    expect_ipc_errno("a call whose server exited holding its reply", &called, EPIPE)
}

fn reply_twice_refused() -> Outcome {
    let endpoint = endpoint()?;
    let child = start_caller(&endpoint, &["4"])?;
    let outcome: Outcome = (|| {
        let received = receive_call(&endpoint)?;
        check!(received.message.label == 4, "the call arrived with label {}", received.message.label);
        expect_handle("a reply handle", received.reply, Kind::Reply, rights::REPLY_HANDLE)?;
        ipc_ok("the first reply", reply_with(received.reply, &Message::new(5, [0; 4]), 0))?;
        expect_ipc_errno("a second reply", &reply_with(received.reply, &Message::new(6, [0; 4]), 0), EBADF)?;
        // reply_recv drops a reply that fails and receives anyway: nothing is waiting.
        let again = ipc(REPLY_RECV, received.reply, &Message::new(7, [0; 4]), 0, 0, endpoint.handle().raw());
        expect_ipc_errno("reply_recv with the used reply handle", &again, EAGAIN)?;
        Ok(())
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, 5)
}

fn reply_to_a_killed_caller_is_epipe() -> Outcome {
    let endpoint = endpoint()?;
    let child = start_caller(&endpoint, &[])?;
    let received = receive_call(&endpoint);
    kill_and_reap(&[child])?;
    let received = received?;
    let sent = notification()?;
    let n = sent.handle().raw();
    let mut message = buffers(b"too late", &[n as u32], &mut []);
    let late = reply_with(received.reply, &Message::new(1, [0; 4]), &raw mut message as u64);
    expect_ipc_errno("reply to a killed caller", &late, EPIPE)?;
    expect_no_handle("the reply handle after the failed reply", received.reply)?;
    expect_handle("the handle the failed reply would have moved", n, Kind::Notification, NOTIFICATION_RIGHTS)
}

fn kill_process_blocked_in_call() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let send = duplicate(endpoint.handle(), rights::DUPLICATE | rights::SEND)?;
    let carried = notification()?;
    let handles = [0, 1, 2, send.raw() as u32, carried.handle().raw() as u32];
    let child = spawn_with_handles("caller", &["0", "forever", "move"], &handles)?;
    drop((send, carried));
    let blocked = wait_until_blocked(child.pid, "the caller");
    let start = now();
    kill_and_reap(&[child])?;
    let elapsed = now() - start;
    blocked?;
    check!(elapsed < HANG_NS, "killing a process blocked in call took {} ms", elapsed / MS);
    expect_nothing_queued("killing the only caller", &endpoint)?;
    drop(endpoint);
    expect_objects_back(objects, "after killing a caller with a handle in its message")
}

/// `receiver TIMEOUT_MS|forever`: receives once on its handle 3 and exits with what came:
/// the bits of a notification, 500 for a close notice, 600 + the label of a call (answered
/// with label + 1), or [`errno_status`] of the failure.
fn helper_receiver(args: &[&str]) -> i32 {
    let timeout = if args.first() == Some(&"forever") { FOREVER } else { arg::<u64>(args, 0) * MS };
    let received = ipc(RECV, 3, &Message::default(), 0, timeout, 0);
    if received.result < 0 {
        return errno_status(-received.result);
    }
    match (received.message.label, received.reply) {
        (LABEL_NOTIFICATION, NO_HANDLE) => received.badge as i32,
        (LABEL_CLOSED, NO_HANDLE) => 500,
        (label, reply) => {
            let _ = ipc(REPLY, reply, &Message::new(label + 1, [0; 4]), 0, 0, 0);
            600 + label as i32
        }
    }
}

/// `answer_through`: receives on its handle 3 a call carrying one handle, a reply to someone
/// else's call, answers through it with label 42, then answers the call that brought it
/// (label 0); exits 0, or [`errno_status`] of the first failure.
fn helper_answer_through(_: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    let request = endpoint.recv(&mut [], FOREVER);
    endpoint.into_raw();
    let Ok(request) = request else { return 1 };
    let [moved] = request.arrived.handles() else { return 2 };
    let answered = ipc(REPLY, u64::from(*moved), &Message::new(42, [0; 4]), 0, 0, 0);
    if answered.result < 0 {
        return errno_status(-answered.result);
    }
    match request.reply.map(|reply| reply.send(&Message::new(0, [0; 4]))) {
        Some(Ok(())) => 0,
        _ => 3,
    }
}

/// A server hands the answering of a call to another process: the reply handle moves in a
/// message (it cannot be copied), the other process answers through it, and the caller gets
/// that answer; the server's number for it is gone.
fn a_reply_moved_to_another_process_answers_the_caller() -> Outcome {
    let objects = live_objects()?;
    let (front, back) = (endpoint()?, endpoint()?);
    let caller = spawn_with_handles("caller", &["7"], &[0, 1, 2, front.handle().raw() as u32])?;
    let worker = spawn_with_handles("answer_through", &[], &[0, 1, 2, back.handle().raw() as u32])?;
    let request = front.recv(&mut [], FOREVER).context("recv")?;
    check!(request.message.label == 7, "the call came with label {}", request.message.label);
    // The number alone from here: the kernel takes the handle out of this table when it moves.
    let number = request.reply.ok_or("the call came without a reply handle")?.into_raw();
    expect_handle("the reply handle", number, Kind::Reply, rights::REPLY_HANDLE)?;
    expect_errno_of("a copy of the reply handle", ipc::duplicate(number, rights::SEND), EPERM)?;
    let copied = back.call_with(&Message::new(1, [0; 4]), &mut Transfer { send_handles: &[number as u32 | COPY_HANDLE], ..Transfer::default() }, 0);
    check!(copied.is_err(), "a message copying the reply handle went through: {copied:?}");
    let (answer, _) = back
        .call_with(&Message::new(1, [0; 4]), &mut Transfer { send_handles: &[number as u32], ..Transfer::default() }, FOREVER)
        .context("the call that moves the reply")?;
    check!(answer.label == 0, "the worker answered the moving call with label {}", answer.label);
    expect_no_handle("the moved reply's old number", number)?;
    expect_exit("the worker", finish_within(worker, "the worker")?, 0)?;
    expect_exit("the caller, answered by the worker", finish_within(caller, "the caller")?, 42)?;
    drop((front, back));
    expect_objects_back(objects, "after the moved reply")
}

fn kill_process_blocked_in_recv() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let child = spawn_with_handles("receiver", &["forever"], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let blocked = wait_until_blocked(child.pid, "the receiver");
    kill_and_reap(&[child])?;
    blocked?;
    // This process still may receive, so a call waits for a receiver rather than failing,
    // and none is waiting any more.
    let polled = ipc(CALL, endpoint.handle().raw(), &Message::default(), 0, 0, 0);
    expect_ipc_errno("call after the only waiting receiver was killed", &polled, EAGAIN)?;
    drop(endpoint);
    expect_objects_back(objects, "after killing a receiver")
}

/// `notification_waiter`: waits on its handle 3 (a notification) for ever; exits with the
/// bits, or [`errno_status`] of the failure.
fn helper_notification_waiter(_: &[&str]) -> i32 {
    let waited = call(WAIT_NOTIFICATION, [3, FOREVER, 0, 0, 0, 0]);
    if waited < 0 { errno_status(-waited) } else { waited as i32 }
}

fn kill_process_blocked_in_notification_wait() -> Outcome {
    let signalled = notification()?;
    let child = spawn_with_handles("notification_waiter", &[], &[0, 1, 2, signalled.handle().raw() as u32])?;
    let blocked = wait_until_blocked(child.pid, "the waiter");
    kill_and_reap(&[child])?;
    blocked?;
    signalled.signal(0x11).context("signal")?;
    let bits = signalled.wait(0).context("wait after the waiter was killed")?;
    check!(bits == 0x11, "the bits went somewhere: wait took {bits:#x}, expected 0x11");
    Ok(())
}

fn closing_endpoint_fails_blocked_callers() -> Outcome {
    let endpoint = endpoint()?;
    let callers = [start_caller(&endpoint, &[])?, start_caller(&endpoint, &[])?];
    let blocked = callers.iter().try_for_each(|child| wait_until_blocked(child.pid, "a caller"));
    let start = now();
    drop(endpoint);
    let mut endings = Vec::new();
    for child in callers {
        endings.push(finish_within(child, "a caller")?);
    }
    let elapsed = now() - start;
    blocked?;
    for ended in endings {
        expect_exit("a caller blocked when its endpoint was closed (1032: EPIPE)", ended, errno_status(EPIPE))?;
    }
    check!(elapsed < HANG_NS, "the callers took {} ms to learn the endpoint was closed", elapsed / MS);
    Ok(())
}

fn closing_handles_leaves_blocked_receivers_waiting() -> Outcome {
    let objects = live_objects()?;
    let endpoint = endpoint()?;
    let child = spawn_with_handles("receiver", &["60"], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let blocked = wait_until_blocked(child.pid, "the receiver");
    let start = now();
    drop(endpoint);
    let ended = finish_within(child, "the receiver")?;
    let elapsed = now() - start;
    blocked?;
    expect_exit("a receiver whose endpoint's other handles were closed (1110: ETIMEDOUT)", ended, errno_status(ETIMEDOUT))?;
    check!(elapsed >= 40 * MS, "the receiver ended {} ms after the close, before its 60 ms timeout", elapsed / MS);
    expect_objects_back(objects, "after the receiver ended")
}

// ---------------------------------------------------------------------------------------
// Bad buffers and full tables.
// ---------------------------------------------------------------------------------------

/// An `IpcBuffers` in read-only data: the kernel may read it but must not write it.
static READ_ONLY_BUFFERS: IpcBuffers = IpcBuffers {
    send_ptr: 0,
    send_len: 0,
    recv_ptr: 0,
    recv_capacity: 0,
    received_len: 0,
    send_handles: [0; HANDLES_MAX],
    send_handle_count: 0,
    received_handle_count: 0,
    received_handles: [0; HANDLES_MAX],
};

fn bad_send_buffers_refused() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let carried = notification()?;
    let n = carried.handle().raw() as u32;
    let poll = |buffers: u64| ipc(CALL, ep, &Message::default(), buffers, 0, 0);
    for &(pointer, what) in BAD_POINTERS.iter().filter(|(pointer, _)| *pointer != 0) {
        expect_ipc_errno(&format!("call with its IpcBuffers at {what}"), &poll(pointer), EFAULT)?;
        let mut message = buffers(&[], &[n], &mut []);
        message.send_ptr = pointer;
        message.send_len = 16;
        expect_ipc_errno(&format!("call sending bytes at {what}"), &poll(&raw mut message as u64), EFAULT)?;
        let mut message = buffers(&[], &[n], &mut []);
        message.recv_ptr = pointer;
        message.recv_capacity = 16;
        expect_ipc_errno(&format!("call with its reply room at {what}"), &poll(&raw mut message as u64), EFAULT)?;
    }
    let edge = Edge::new()?;
    let size = size_of::<IpcBuffers>() as u64;
    expect_ipc_errno("call with its IpcBuffers across the edge", &poll(edge.before_end(size / 2)), EFAULT)?;
    for (pointer, len, what) in [
        (edge.before_end(8), 16, "bytes running into the unmapped page"),
        (u64::MAX - 7, 16, "bytes whose end wraps"),
    ] {
        let mut message = buffers(&[], &[n], &mut []);
        (message.send_ptr, message.send_len) = (pointer, len);
        expect_ipc_errno(&format!("call sending {what}"), &poll(&raw mut message as u64), EFAULT)?;
    }
    for (pointer, capacity, what) in [
        (edge.before_end(8), 16, "room running into the unmapped page"),
        (edge.before_end(64), u64::MAX, "a room of u64::MAX bytes (BUFFER_MAX of them checked)"),
        (READ_ONLY.as_ptr() as u64, 16, "room in read-only data"),
    ] {
        let mut message = buffers(&[], &[n], &mut []);
        (message.recv_ptr, message.recv_capacity) = (pointer, capacity);
        expect_ipc_errno(&format!("call with {what}"), &poll(&raw mut message as u64), EFAULT)?;
    }
    edge.check_untouched("the refused calls")?;
    // Null with length 0 is no buffer at all.
    let mut empty = buffers(&[], &[n], &mut []);
    (empty.send_ptr, empty.recv_ptr) = (0, 0);
    expect_ipc_errno("call with empty buffers at 0 (nobody receives)", &poll(&raw mut empty as u64), EAGAIN)?;
    expect_handle("the handle the refused calls carried", n.into(), Kind::Notification, NOTIFICATION_RIGHTS)?;
    expect_nothing_queued("the refused calls", &endpoint)
}

fn bad_receive_buffers_refused() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let child = start_caller(&endpoint, &["8"])?;
    let outcome: Outcome = (|| {
        wait_until_blocked(child.pid, "the caller")?;
        let poll = |buffers: u64| ipc(RECV, ep, &Message::default(), buffers, 0, 0);
        for &(pointer, what) in BAD_POINTERS.iter().filter(|(pointer, _)| *pointer != 0) {
            expect_ipc_errno(&format!("recv with its IpcBuffers at {what}"), &poll(pointer), EFAULT)?;
            let reply_recv = ipc(REPLY_RECV, NO_HANDLE, &Message::default(), pointer, 0, ep);
            expect_ipc_errno(&format!("reply_recv with its IpcBuffers at {what}"), &reply_recv, EFAULT)?;
            let mut room = buffers(&[], &[], &mut []);
            (room.recv_ptr, room.recv_capacity) = (pointer, 16);
            expect_ipc_errno(&format!("recv into room at {what}"), &poll(&raw mut room as u64), EFAULT)?;
        }
        let edge = Edge::new()?;
        let size = size_of::<IpcBuffers>() as u64;
        expect_ipc_errno("recv with its IpcBuffers across the edge", &poll(edge.before_end(size / 2)), EFAULT)?;
        for (pointer, capacity, what) in [
            (edge.before_end(8), 16, "room running into the unmapped page"),
            (edge.before_end(64), u64::MAX, "a room of u64::MAX bytes"),
            (READ_ONLY.as_ptr() as u64, 16, "room in read-only data"),
        ] {
            let mut room = buffers(&[], &[], &mut []);
            (room.recv_ptr, room.recv_capacity) = (pointer, capacity);
            expect_ipc_errno(&format!("recv with {what}"), &poll(&raw mut room as u64), EFAULT)?;
        }
        edge.check_untouched("the refused receives")?;
        // None of that took the waiting call.
        let received = receive_call(&endpoint)?;
        check!(received.message.label == 8, "the call arrived with label {}", received.message.label);
        ipc_ok("the reply", reply_with(received.reply, &Message::new(9, [0; 4]), 0))?;
        Ok(())
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, 9)
}

fn bad_reply_buffers_use_the_reply_up() -> Outcome {
    let endpoint = endpoint()?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")? as u32;
    let mut bad_bytes = buffers(&[], &[], &mut []);
    (bad_bytes.send_ptr, bad_bytes.send_len) = (HOLE, 16);
    let mut not_held = buffers(&[], &[free], &mut []);
    let rounds: [(u64, u64, &str, i64); 3] = [
        (0, HOLE, "IpcBuffers in an unmapped hole", EFAULT),
        (0, &raw mut bad_bytes as u64, "bytes in an unmapped hole", EFAULT),
        (0, &raw mut not_held as u64, "a handle it does not hold", EBADF),
    ];
    for (label, message, what, errno) in rounds {
        let child = start_caller(&endpoint, &[])?;
        let outcome: Outcome = (|| {
            let received = receive_call(&endpoint)?;
            expect_ipc_errno(&format!("reply with {what}"), &reply_with(received.reply, &Message::new(label, [0; 4]), message), errno)?;
            expect_no_handle(&format!("the reply handle after a reply with {what}"), received.reply)
        })();
        let ended = finish_within(child, "the caller")?;
        outcome?;
        expect_exit(&format!("the caller after a reply with {what} (1032: EPIPE)"), ended, errno_status(EPIPE))?;
    }
    Ok(())
}

/// A reply may carry any label, even the ones `call` may not send (only a caller receives a
/// reply, so it cannot pass for a close notice): `-ENOENT` (which is `LABEL_CLOSED`) arrives
/// as sent.
fn replies_carry_any_label() -> Outcome {
    let endpoint = endpoint()?;
    let child = start_caller(&endpoint, &[])?;
    let outcome: Outcome = (|| {
        let received = receive_call(&endpoint)?;
        let label = (-ENOENT) as u64;
        check!(label == LABEL_CLOSED, "-ENOENT is {label:#x}, not LABEL_CLOSED");
        ipc_ok("reply with label -ENOENT", reply_with(received.reply, &Message::new(label, [0; 4]), 0))?;
        Ok(())
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, -(ENOENT as i32))
}

fn read_only_ipc_buffers_refused() -> Outcome {
    let read_only = &raw const READ_ONLY_BUFFERS as u64;
    expect_errno("sysinfo into the read-only IpcBuffers (it must be read-only)", call(abi::syscall::SYSINFO, [read_only, 0, 0, 0, 0, 0]), EFAULT)?;
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let polled = ipc(CALL, ep, &Message::default(), read_only, 0, 0);
    expect_ipc_errno("call with its IpcBuffers in read-only data", &polled, EFAULT)?;
    let child = start_caller(&endpoint, &["8"])?;
    let outcome: Outcome = (|| {
        wait_until_blocked(child.pid, "the caller")?;
        let refused = ipc(RECV, ep, &Message::default(), read_only, 0, 0);
        if refused.reply != read_only && matches!(ipc::handle_info(refused.reply), Ok((Some(Kind::Reply), _))) {
            // The kernel took the call anyway: answer it, so the caller does not wait for ever.
            let _ = reply_with(refused.reply, &Message::new(9, [0; 4]), 0);
        }
        expect_ipc_errno("recv with its IpcBuffers in read-only data, a call waiting", &refused, EFAULT)?;
        let received = receive_call(&endpoint)?;
        check!(received.message.label == 8, "the call arrived with label {}", received.message.label);
        ipc_ok("the reply", reply_with(received.reply, &Message::new(9, [0; 4]), 0))?;
        Ok(())
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, 9)
}

/// Duplicates handle 1 (the console) until the table is full; the numbers of the copies.
fn fill_table() -> Result<Vec<u64>, Errno> {
    let mut copies = Vec::with_capacity(HANDLE_MAX);
    loop {
        match ipc::duplicate(1, rights::WRITE) {
            Ok(copy) => copies.push(copy),
            Err(Errno(EMFILE)) => return Ok(copies),
            Err(errno) => return Err(errno),
        }
    }
}

/// `full_table_server`: fills its table but one slot and receives on its handle 3: a call
/// carrying a handle needs two slots (the handle and the reply), so the receive must fail
/// with EMFILE and leave the call waiting. Then it frees a slot, receives the call, and
/// answers with label 77 and the handle back. Exits 0, 3000 + the errno of a first receive
/// that did not fail with EMFILE (3000 if it succeeded), or [`errno_status`] of another
/// failure.
fn helper_full_table_server(_: &[&str]) -> i32 {
    let mut copies = match fill_table() {
        Ok(copies) => copies,
        Err(errno) => return errno_status(errno.0),
    };
    let mut close_one = || copies.pop().map(ipc::close);
    close_one();
    let first = ipc(RECV, 3, &Message::default(), 0, LIMIT_NS, 0);
    if first.result != -EMFILE {
        return 3000 + (-first.result) as i32;
    }
    close_one();
    let mut received = buffers(&[], &[], &mut []);
    let second = ipc(RECV, 3, &Message::default(), &raw mut received as u64, LIMIT_NS, 0);
    if second.result < 0 {
        return errno_status(-second.result);
    }
    let mut answer = buffers(&[], arrived_handles(&received), &mut []);
    let replied = ipc(REPLY, second.reply, &Message::new(77, [0; 4]), &raw mut answer as u64, 0, 0);
    if replied.result < 0 { errno_status(-replied.result) } else { 0 }
}

fn receiver_table_full_keeps_the_message() -> Outcome {
    let endpoint = endpoint()?;
    let client = endpoint.mint(0, false).context("endpoint_mint")?;
    let server = spawn_with_handles("full_table_server", &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    drop(endpoint);
    let carried = notification()?.handle().duplicate(rights::ALL).context("handle_duplicate")?.into_raw();
    let (registers, transfer, _) = call_with(client.handle().raw(), &Message::default(), &[], &[carried as u32], 0);
    if registers.result < 0 {
        let _ = ipc::close(carried);
    }
    let ended = finish_within(server, "the server")?;
    let back = arrived_handles(&transfer).to_vec();
    for &handle in &back {
        let _ = ipc::close(u64::from(handle));
    }
    expect_exit("the server (3000 + errno: its first receive did not fail with EMFILE)", ended, 0)?;
    let registers = ipc_ok("a call to a server with a full table", registers)?;
    check!(registers.message.label == 77, "the reply's label is {}", registers.message.label);
    check!(back.len() == 1, "{} handles came back, expected the one sent", back.len());
    Ok(())
}

/// `full_table_caller`: fills its table and calls its handle 3; exits with the reply's
/// label, or [`errno_status`] of the failure.
fn helper_full_table_caller(_: &[&str]) -> i32 {
    if let Err(errno) = fill_table() {
        return errno_status(errno.0);
    }
    let called = ipc(CALL, 3, &Message::default(), 0, LIMIT_NS, 0);
    if called.result < 0 { errno_status(-called.result) } else { called.message.label as i32 }
}

fn caller_table_full_fails_the_reply() -> Outcome {
    let endpoint = endpoint()?;
    let send = duplicate(endpoint.handle(), rights::DUPLICATE | rights::SEND)?;
    let child = spawn_with_handles("full_table_caller", &[], &[0, 1, 2, send.raw() as u32])?;
    drop(send);
    let sent = notification()?;
    let n = sent.handle().raw();
    let outcome: Outcome = (|| {
        let received = receive_call(&endpoint)?;
        let mut message = buffers(&[], &[n as u32], &mut []);
        let replied = reply_with(received.reply, &Message::new(1, [0; 4]), &raw mut message as u64);
        expect_ipc_errno("reply with a handle to a caller whose table is full", &replied, EMFILE)?;
        expect_handle("the handle the reply could not deliver", n, Kind::Notification, NOTIFICATION_RIGHTS)
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (1024: EMFILE)", ended, errno_status(EMFILE))
}

fn reply_recv_checks_the_endpoint_first() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let child = start_caller(&endpoint, &[])?;
    let outcome: Outcome = (|| {
        let received = receive_call(&endpoint)?;
        let other = notification()?;
        let send_only = duplicate(endpoint.handle(), rights::SEND)?;
        let free = crate::processes::free_handle_number().ok_or("no free handle number")?;
        for (target, what, errno) in [
            (free, "a free handle number", EBADF),
            (other.handle().raw(), "a notification", EBADF),
            (send_only.raw(), "an endpoint handle without RECEIVE", EPERM),
        ] {
            let refused = ipc(REPLY_RECV, received.reply, &Message::new(3, [0; 4]), 0, 0, target);
            expect_ipc_errno(&format!("reply_recv on {what}"), &refused, errno)?;
            expect_handle(&format!("the reply handle after reply_recv on {what}"), received.reply, Kind::Reply, rights::REPLY_HANDLE)?;
        }
        let answered = ipc(REPLY_RECV, received.reply, &Message::new(3, [0; 4]), 0, 0, ep);
        expect_ipc_errno("reply_recv (the reply goes, then nothing to receive)", &answered, EAGAIN)?;
        expect_no_handle("the reply handle after reply_recv", received.reply)
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, 3)
}

// ---------------------------------------------------------------------------------------
// Registers, and many callers.
// ---------------------------------------------------------------------------------------

/// Junk for every register; the caller sets the ones the call reads.
fn junk(seed: u64) -> [u64; 16] {
    core::array::from_fn(|register| (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(register as u64 + 1).rotate_left(register as u32 * 4))
}

/// A call with junk in every register the IPC call does not read (`rsp` and the flags
/// included); `extra` is `r12, r13, r14`.
fn dirty_ipc(path: EntryPath, number: u64, args: [u64; 6], extra: [u64; 3], seed: u64) -> Call {
    let mut registers = junk(seed);
    registers[12..15].copy_from_slice(&extra);
    let mut entry = Call::new(path, number, args, registers).with_flags(u64::MAX);
    // SAFETY: the message has no buffers (r12 is 0), so the kernel writes no memory; the
    // call neither ends the process nor unmaps anything.
    unsafe { entry.run() };
    entry
}

/// The registers a reply to `call` writes, and those `recv` writes.
const CALL_RESULTS: [&str; 5] = ["rsi", "rdx", "r10", "r8", "r9"];
const RECV_RESULTS: [&str; 7] = ["rdi", "rsi", "rdx", "r10", "r8", "r9", "r12"];

fn ipc_registers_preserved() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        let polled = dirty_ipc(path, RECV, [ep, 1, 2, 3, 4, 5], [0, 0, 9], 1);
        expect_errno(&format!("recv with junk registers ({path:?})"), polled.result(), EAGAIN)?;
        check!(polled.clobbered().is_none(), "a refused recv ({path:?}) changed {:?}", polled.clobbered());
    }
    let (server, client) = start_server(2, 0, "return")?;
    let outcome: Outcome = (|| {
        for (seed, path) in [(2, EntryPath::Syscall), (3, EntryPath::Int80)] {
            let called = dirty_ipc(path, CALL, [client.handle().raw(), 7, 10, 20, 30, 40], [0, LIMIT_NS, 5], seed);
            expect_value(&format!("call with junk registers ({path:?})"), called.result(), 0)?;
            check!(called.clobbered_except(&CALL_RESULTS).is_none(), "a call ({path:?}) changed {:?}", called.clobbered_except(&CALL_RESULTS));
            let reply: Vec<u64> = CALL_RESULTS.iter().filter_map(|name| called.returned(name)).collect();
            check!(reply == [8, 40, 30, 20, 10], "the reply registers (rsi, rdx, r10, r8, r9) were {reply:?}");
        }
        Ok(())
    })();
    conclude(server, outcome)?;
    let child = start_caller(&endpoint, &["4"])?;
    let outcome: Outcome = (|| {
        wait_until_blocked(child.pid, "the caller")?;
        let received = dirty_ipc(EntryPath::Syscall, RECV, [ep, 1, 2, 3, 4, 5], [0, 0, 9], 4);
        expect_value("recv with junk registers, a call waiting", received.result(), 0)?;
        check!(received.clobbered_except(&RECV_RESULTS).is_none(), "a recv changed {:?}", received.clobbered_except(&RECV_RESULTS));
        let (badge, label, reply) = (received.returned("rdi"), received.returned("rsi"), received.returned("r12"));
        check!(badge == Some(0) && label == Some(4), "recv returned badge {badge:?} and label {label:?}");
        let reply = reply.ok_or("no r12")?;
        expect_handle("the reply handle recv returned in r12", reply, Kind::Reply, rights::REPLY_HANDLE)?;
        ipc_ok("the reply", reply_with(reply, &Message::new(5, [0; 4]), 0))?;
        Ok(())
    })();
    let ended = finish_within(child, "the caller")?;
    outcome?;
    expect_exit("the caller (its status is the reply's label)", ended, 5)
}

fn many_callers_one_server() -> Outcome {
    let endpoint = endpoint()?;
    let mut callers = Vec::new();
    for badge in 100..104 {
        let minted = mint(endpoint.handle().raw(), badge, MINTED_RIGHTS, 0)?;
        callers.push((spawn_with_handles("caller", &[], &[0, 1, 2, minted.raw() as u32])?, badge));
    }
    let server = serve(&endpoint, callers.len(), 0, "badge")?;
    drop(endpoint);
    let mut failures = Vec::new();
    for (child, badge) in callers {
        let ended = finish_within(child, "a caller")?;
        if expect_exit("a caller (its status is the badge the server saw)", ended, badge as i32).is_err() {
            failures.push(format!("the caller with badge {badge} {}", userlib::process::Ending(ended)));
        }
    }
    finish_server(server)?;
    check!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Notifications.
// ---------------------------------------------------------------------------------------

fn notification_bits_accumulate() -> Outcome {
    let bits = notification()?;
    for bit in [1, 2, 4, 1] {
        bits.signal(bit).context("signal")?;
    }
    let taken = bits.wait(0).context("wait")?;
    check!(taken == 7, "signals of 1, 2, 4 and 1 were taken as {taken:#x}");
    check!(bits.wait(0) == Err(Errno(EAGAIN)), "a second wait found bits left");
    bits.signal(0).context("signal of no bits")?;
    check!(bits.wait(0) == Err(Errno(EAGAIN)), "a signal of no bits woke a wait");
    // `wait` returns the bits as its result, so bit 63 would read as an error: refused.
    let n = bits.handle().raw();
    expect_errno("signal of bit 63", call(abi::syscall::SIGNAL, [n, 1 << 63, 0, 0, 0, 0]), EINVAL)?;
    expect_errno("signal of every bit", call(abi::syscall::SIGNAL, [n, u64::MAX, 0, 0, 0, 0]), EINVAL)?;
    check!(bits.wait(0) == Err(Errno(EAGAIN)), "a refused signal set bits");
    bits.signal(u64::MAX >> 1).context("signal of bits 0 to 62")?;
    let taken = bits.wait(LIMIT_NS).context("wait for bits 0 to 62")?;
    check!(taken == u64::MAX >> 1, "bits 0 to 62 were taken as {taken:#x}");
    Ok(())
}

fn notification_wakes_a_waiter() -> Outcome {
    let bits = notification()?;
    let child = spawn_with_handles("notification_waiter", &[], &[0, 1, 2, bits.handle().raw() as u32])?;
    let blocked = wait_until_blocked(child.pid, "the waiter");
    bits.signal(0x30).context("signal")?;
    let ended = finish_within(child, "the waiter")?;
    blocked?;
    expect_exit("the waiter (its status is the bits it took)", ended, 0x30)?;
    check!(bits.wait(0) == Err(Errno(EAGAIN)), "the bits the waiter took were left set");
    Ok(())
}

fn notification_timeouts() -> Outcome {
    let bits = notification()?;
    let start = now();
    let polled = bits.wait(0);
    let elapsed = now() - start;
    check!(polled == Err(Errno(EAGAIN)), "wait with timeout 0 and no bits returned {polled:?}");
    check!(elapsed < HANG_NS, "wait with timeout 0 took {} us", elapsed / 1000);
    let start = now();
    let waited = bits.wait(20 * MS);
    let elapsed = now() - start;
    check!(waited == Err(Errno(ETIMEDOUT)), "wait with a 20 ms timeout and no bits returned {waited:?}");
    expect_timed("wait", elapsed, 20 * MS)
}

fn bound_notification_delivered_through_recv() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let bits = notification()?;
    bits.signal(8).context("signal before binding")?;
    expect_value("endpoint_bind", call(ENDPOINT_BIND, [ep, bits.handle().raw(), 0, 0, 0, 0]), 0)?;
    for (signalled, what) in [(None, "bits set before binding"), (Some(5), "bits 5"), (Some(u64::MAX >> 1), "every bit it may")] {
        if let Some(value) = signalled {
            bits.signal(value).context("signal")?;
        }
        let mut room = [0u8; 8];
        let mut transfer = buffers(&[], &[], &mut room);
        let received = ipc_ok(&format!("recv of {what}"), ipc(RECV, ep, &Message::default(), &raw mut transfer as u64, 0, 0))?;
        let expected = signalled.unwrap_or(8);
        check!(
            received.message.label == LABEL_NOTIFICATION && received.badge == expected && received.reply == NO_HANDLE,
            "recv of {what} returned label {:#x}, badge {:#x}, reply handle {:#x}",
            received.message.label,
            received.badge,
            received.reply
        );
        check!(transfer.received_len == 0 && transfer.received_handle_count == 0, "a notification came with bytes or handles");
        check!(bits.wait(0) == Err(Errno(EAGAIN)), "recv left the bits of {what} set");
    }
    expect_nothing_queued("taking every notification", &endpoint)
}

fn bound_notification_wakes_a_receiver() -> Outcome {
    let endpoint = endpoint()?;
    let bits = notification()?;
    expect_value("endpoint_bind", call(ENDPOINT_BIND, [endpoint.handle().raw(), bits.handle().raw(), 0, 0, 0, 0]), 0)?;
    let child = spawn_with_handles("receiver", &["forever"], &[0, 1, 2, endpoint.handle().raw() as u32])?;
    let blocked = wait_until_blocked(child.pid, "the receiver");
    bits.signal(9).context("signal")?;
    let ended = finish_within(child, "the receiver")?;
    blocked?;
    expect_exit("the receiver (its status is the bits it received)", ended, 9)
}

fn bind_needs_receive_and_wait() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let bits = notification()?;
    let n = bits.handle().raw();
    let send_only = duplicate(endpoint.handle(), rights::SEND)?;
    let no_wait = duplicate(bits.handle(), NOTIFICATION_RIGHTS & !rights::WAIT)?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")?;
    for (endpoint, notification, what, errno) in [
        (send_only.raw(), n, "an endpoint handle without RECEIVE", EPERM),
        (ep, no_wait.raw(), "a notification handle without WAIT", EPERM),
        (n, ep, "the two swapped", EBADF),
        (ep, ep, "the endpoint twice", EBADF),
        (ep, free, "a free handle number", EBADF),
        (free, n, "a free endpoint number", EBADF),
    ] {
        expect_errno(&format!("endpoint_bind with {what}"), call(ENDPOINT_BIND, [endpoint, notification, 0, 0, 0, 0]), errno)?;
    }
    // Nothing was bound: the bits stay for `wait`.
    bits.signal(2).context("signal")?;
    expect_nothing_queued("the refused binds", &endpoint)?;
    check!(bits.wait(0) == Ok(2), "the bits went elsewhere after the refused binds");
    Ok(())
}

fn close_notice_for_the_last_minted_handle() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let noticed = mint(ep, 42, MINTED_RIGHTS, MINT_NOTIFY_CLOSE)?;
    let copy = duplicate(&noticed, rights::SEND)?;
    let silent = mint(ep, 43, MINTED_RIGHTS, 0)?;
    drop(silent);
    drop(noticed);
    expect_nothing_queued("closing one of two handles with the badge, and one minted without a notice", &endpoint)?;
    drop(copy);
    let received = ipc_ok("recv after the last handle with badge 42 closed", ipc(RECV, ep, &Message::default(), 0, 0, 0))?;
    check!(
        received.message.label == LABEL_CLOSED && received.badge == 42 && received.reply == NO_HANDLE,
        "the notice had label {:#x}, badge {}, reply handle {:#x}",
        received.message.label,
        received.badge,
        received.reply
    );
    expect_nothing_queued("the close notice", &endpoint)
}

fn close_notice_when_the_holder_exits() -> Outcome {
    let endpoint = endpoint()?;
    let ep = endpoint.handle().raw();
    let noticed = mint(ep, 77, MINTED_RIGHTS, MINT_NOTIFY_CLOSE)?;
    let child = spawn_with_handles("exit_after", &["20", "0"], &[0, 1, 2, noticed.raw() as u32])?;
    drop(noticed);
    expect_nothing_queued("closing this process's handle while the child holds a copy", &endpoint)?;
    let received = ipc_ok("recv of the close notice", ipc(RECV, ep, &Message::default(), 0, LIMIT_NS, 0))?;
    let ended = finish_within(child, "the holder")?;
    expect_exit("the holder", ended, 0)?;
    check!(
        received.message.label == LABEL_CLOSED && received.badge == 77,
        "when the holder exited, recv returned label {:#x} and badge {}",
        received.message.label,
        received.badge
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Shared memory.
// ---------------------------------------------------------------------------------------

/// The byte at `offset` of the shared-memory pattern.
fn shared_byte(offset: usize) -> u8 {
    (offset * 7 + 3) as u8
}

/// Shared memory of `pages` pages, as an error naming the call on failure.
fn shared_memory(pages: u64) -> Result<SharedMemory, String> {
    SharedMemory::create(pages).context("memory_create")
}

/// `memory_map` of `memory` at `address` with `prot`, as an error on failure.
fn map_shared(memory: &SharedMemory, address: u64, prot: u64) -> Result<u64, String> {
    memory.map(address, prot).context(&format!("memory_map with prot {prot:#x}"))
}

/// The bytes of `pages` pages mapped at `address`.
///
/// # Safety
/// The pages must stay mapped readable while the slice lives (and be mapped writable if it
/// is written).
unsafe fn mapped<'a>(address: u64, pages: u64) -> &'a mut [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { core::slice::from_raw_parts_mut(address as *mut u8, (pages * PAGE) as usize) }
}

/// `shared_memory_peer PAGES`: maps its handle 3 (shared memory of PAGES pages) read-write,
/// checks it holds the pattern, writes its inverse and exits 0; 2 if the pattern was not
/// there, or [`errno_status`] of a failure.
fn helper_shared_memory_peer(args: &[&str]) -> i32 {
    let pages: u64 = arg(args, 0);
    let memory = SharedMemory::from_raw(3);
    let address = match memory.map(0, PROT_READ | PROT_WRITE) {
        Ok(address) => address,
        Err(errno) => return errno_status(errno.0),
    };
    // SAFETY: the object's pages were just mapped read-write here, and stay mapped until the
    // process ends.
    let bytes = unsafe { mapped(address, pages) };
    if bytes.iter().enumerate().any(|(offset, &byte)| byte != shared_byte(offset)) {
        return 2;
    }
    bytes.iter_mut().for_each(|byte| *byte = !*byte);
    0
}

fn shared_memory_seen_by_two_processes() -> Outcome {
    let frames = system_frames()?;
    let memory = shared_memory(2)?;
    let address = map_shared(&memory, 0, PROT_READ | PROT_WRITE)?;
    // SAFETY: mapped read-write above; unmapped only after the last use of `bytes`.
    let bytes = unsafe { mapped(address, 2) };
    bytes.iter_mut().enumerate().for_each(|(offset, byte)| *byte = shared_byte(offset));
    let child = spawn_with_handles("shared_memory_peer", &["2"], &[0, 1, 2, memory.handle().raw() as u32])?;
    let ended = finish_within(child, "the peer")?;
    let inverted = bytes.iter().enumerate().all(|(offset, &byte)| byte == !shared_byte(offset));
    unmap(address, 2)?;
    drop(memory);
    expect_exit("the peer (2: it did not see the pattern)", ended, 0)?;
    check!(inverted, "the peer's writes are not in this process's mapping");
    let after = system_frames()?;
    check!(after == frames, "{after} frames after the shared memory was unmapped and closed, {frames} before");
    Ok(())
}

fn shared_memory_mapped_twice() -> Outcome {
    let frames = system_frames()?;
    let memory = shared_memory(1)?;
    let writable = map_shared(&memory, 0, PROT_READ | PROT_WRITE)?;
    let readable = map_shared(&memory, 0, PROT_READ)?;
    let fixed = map_shared(&memory, FIXED_BASE, PROT_READ | PROT_WRITE)?;
    let again = memory.map(FIXED_BASE, PROT_READ);
    let outcome: Outcome = (|| {
        check!(writable != readable, "two mappings at the same address {writable:#x}");
        check!(fixed == FIXED_BASE, "memory_map at {FIXED_BASE:#x} returned {fixed:#x}");
        check!(again == Err(Errno(EINVAL)), "mapping over a mapping returned {again:?}");
        // SAFETY: the three mappings stay until the end of this closure.
        let (through_w, through_r, through_fixed) = unsafe { (mapped(writable, 1), mapped(readable, 1), mapped(fixed, 1)) };
        through_w[100] = 0x42;
        through_fixed[200] = 0x43;
        check!(through_r[100] == 0x42 && through_r[200] == 0x43, "one mapping does not see another's writes");
        Ok(())
    })();
    unmap(writable, 1)?;
    // SAFETY: still mapped read-only.
    let kept = unsafe { mapped(readable, 1) }[100];
    unmap(readable, 1)?;
    unmap(fixed, 1)?;
    drop(memory);
    outcome?;
    check!(kept == 0x42, "after one mapping went, another read {kept:#x}");
    let after = system_frames()?;
    check!(after == frames, "{after} frames after both mappings and the handle went, {frames} before");
    Ok(())
}

fn shared_memory_unmapped_in_parts() -> Outcome {
    let frames = system_frames()?;
    let memory_before = my_memory()?;
    let memory = shared_memory(4)?;
    let base = map_shared(&memory, FIXED_BASE, PROT_READ | PROT_WRITE)?;
    check!(base == FIXED_BASE, "memory_map at {FIXED_BASE:#x} returned {base:#x}");
    for page in 0..4 {
        // SAFETY: page `page` of the mapping is mapped read-write.
        unsafe { mapped(base + page * PAGE, 1)[0] = page as u8 + 1 };
    }
    unmap(base + PAGE, 2)?;
    // SAFETY: the first and last pages are still mapped.
    let ends = unsafe { (mapped(base, 1)[0], mapped(base + 3 * PAGE, 1)[0]) };
    let hole = sys::mmap(base + PAGE, 2 * PAGE, PROT_READ | PROT_WRITE).context("mmap in the unmapped middle")?;
    // SAFETY: the anonymous pages were just mapped there.
    let zeroed = unsafe { mapped(hole, 2) }.iter().all(|&byte| byte == 0);
    unmap(hole, 2)?;
    unmap(base, 4)?;
    drop(memory);
    check!(ends == (1, 4), "after unmapping the middle, the first and last pages hold {ends:?}");
    check!(hole == base + PAGE, "mmap in the unmapped middle returned {hole:#x}");
    check!(zeroed, "anonymous memory mapped where shared memory was is not zeroed");
    let (after, memory_after) = (system_frames()?, my_memory()?);
    check!(after == frames, "{after} frames after unmapping in parts, {frames} before");
    check!(memory_after == memory_before, "{memory_after} bytes charged after, {memory_before} before");
    Ok(())
}

fn shared_memory_outlives_its_handle() -> Outcome {
    let frames = system_frames()?;
    let objects = live_objects()?;
    let memory = shared_memory(1)?;
    let address = map_shared(&memory, 0, PROT_READ | PROT_WRITE)?;
    let number = memory.handle().raw();
    drop(memory);
    // SAFETY: the mapping stays until the unmap below.
    let bytes = unsafe { mapped(address, 1) };
    bytes[0] = 0x77;
    let kept = bytes[0];
    let objects_after_close = live_objects()?;
    let remapped = call(MEMORY_MAP, [number, 0, PROT_READ, 0, 0, 0]);
    unmap(address, 1)?;
    check!(kept == 0x77, "the mapping of a closed handle read {kept:#x}");
    check!(objects_after_close == objects, "{objects_after_close} objects after the handle closed, {objects} before");
    expect_errno("memory_map of the closed handle", remapped, EBADF)?;
    let after = system_frames()?;
    check!(after == frames, "{after} frames after the last mapping went, {frames} before");
    Ok(())
}

fn shared_memory_never_writable_and_executable() -> Outcome {
    let memory = shared_memory(1)?;
    let h = memory.handle().raw();
    for (prot, what) in [
        (PROT_READ | PROT_WRITE | PROT_EXEC, "W+X"),
        (PROT_WRITE | PROT_EXEC, "write and execute"),
        (8, "an unknown bit"),
        (u64::MAX, "every bit"),
    ] {
        expect_errno(&format!("memory_map with {what}"), call(MEMORY_MAP, [h, 0, prot, 0, 0, 0]), EINVAL)?;
    }
    let code = map_shared(&memory, 0, PROT_READ | PROT_EXEC)?;
    let mut refusals = Vec::new();
    for (prot, what) in [(PROT_READ | PROT_WRITE, "RW"), (PROT_READ | PROT_WRITE | PROT_EXEC, "RWX"), (PROT_READ, "R")] {
        // SAFETY: mprotect of the shared mapping must be refused; if it were not, the mapping
        // is unmapped right after without being touched.
        let result = unsafe { sys::mprotect(code, PAGE, prot) };
        refusals.push((what, result));
    }
    unmap(code, 1)?;
    for (what, result) in refusals {
        check!(result == Err(Errno(EINVAL)), "mprotect of shared memory to {what} returned {result:?}");
    }
    Ok(())
}

/// `mapping_charge PAGES`: maps its handle 3 (shared memory) read-only and exits with the
/// number of pages that charged it, or [`errno_status`] of a failure.
fn helper_mapping_charge(_: &[&str]) -> i32 {
    let Ok(before) = my_memory() else { return 1 };
    if let Err(errno) = SharedMemory::from_raw(3).map(0, PROT_READ) {
        return errno_status(errno.0);
    }
    let Ok(after) = my_memory() else { return 1 };
    ((after - before) / PAGE) as i32
}

fn shared_memory_charged_to_the_mapper() -> Outcome {
    let before = my_memory()?;
    let memory = shared_memory(8)?;
    let created = my_memory()?;
    let address = map_shared(&memory, 0, PROT_READ)?;
    let mapped_here = my_memory()?;
    unmap(address, 8)?;
    let unmapped = my_memory()?;
    let child = spawn_with_handles("mapping_charge", &[], &[0, 1, 2, memory.handle().raw() as u32])?;
    let ended = finish_within(child, "the mapper")?;
    drop(memory);
    let closed = my_memory()?;
    check!(created == before + 8 * PAGE, "creating 8 pages charged {} bytes", created - before);
    check!(
        (created + 8 * PAGE..created + 12 * PAGE).contains(&mapped_here),
        "mapping the 8 pages charged {} bytes",
        mapped_here - created
    );
    check!(unmapped == created, "after the unmap {} bytes were still charged for the mapping", unmapped - created);
    check!(
        ended.fault().is_none() && (8..12).contains(&ended.status),
        "the child was charged {} pages for mapping 8 (1000 + errno: it could not)",
        ended.status
    );
    check!(closed == before, "after the handle closed {} bytes were still charged", closed - before);
    Ok(())
}

fn memory_create_limits() -> Outcome {
    let frames = system_frames()?;
    for (pages, what) in [(0, "0 pages"), (4097, "4097 pages"), (1 << 32, "2^32 pages"), (u64::MAX, "u64::MAX pages")] {
        expect_errno(&format!("memory_create of {what}"), call(MEMORY_CREATE, [pages, 0, 0, 0, 0, 0]), EINVAL)?;
    }
    // 16 MiB at a time, until this process's 64 MiB are used up.
    let mut objects = Vec::new();
    let refusal = loop {
        match SharedMemory::create(4096) {
            Ok(memory) => objects.push(memory),
            Err(errno) => break errno,
        }
        check!(objects.len() <= 4, "{} objects of 16 MiB were created for one process", objects.len());
    };
    let created = objects.len();
    drop(objects);
    check!(refusal == Errno(ENOMEM), "memory_create past the process's limit failed with {refusal}");
    check!(created == 3, "{created} objects of 16 MiB fitted in the limit, expected 3");
    let after = system_frames()?;
    check!(after == frames, "{after} frames after closing the objects, {frames} before");
    Ok(())
}

/// `memory_size` (what a program given an image or the ramdisk learns its length from) needs
/// no right, and refuses every handle that is not a memory object.
fn memory_size_counts_whole_pages() -> Outcome {
    for pages in [1, 3] {
        let memory = shared_memory(pages)?;
        expect_value(&format!("the size of {pages} pages"), call(MEMORY_SIZE, [memory.handle().raw(), 0, 0, 0, 0, 0]), (pages * PAGE) as i64)?;
        let without_rights = duplicate(memory.handle(), 0)?;
        expect_value("the size through a handle without rights", call(MEMORY_SIZE, [without_rights.raw(), 0, 0, 0, 0, 0]), (pages * PAGE) as i64)?;
    }
    let signal = notification()?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")?;
    for (handle, what) in [(signal.handle().raw(), "a notification"), (free, "a free number"), (u64::MAX, "u64::MAX")] {
        expect_errno(&format!("memory_size of {what}"), call(MEMORY_SIZE, [handle, 0, 0, 0, 0, 0]), EBADF)?;
    }
    Ok(())
}

fn memory_map_needs_rights() -> Outcome {
    let memory = shared_memory(1)?;
    let readable = duplicate(memory.handle(), rights::READ)?;
    let unreadable = duplicate(memory.handle(), MEMORY_RIGHTS & !rights::READ)?;
    let signal = notification()?;
    let free = crate::processes::free_handle_number().ok_or("no free handle number")?;
    for (handle, address, prot, what, errno) in [
        (unreadable.raw(), 0, PROT_READ, "read-only without READ", EPERM),
        (readable.raw(), 0, PROT_READ | PROT_WRITE, "writable without WRITE", EPERM),
        (readable.raw(), 0, PROT_READ | PROT_EXEC, "executable without EXECUTE", EPERM),
        (signal.handle().raw(), 0, PROT_READ, "a notification", EBADF),
        (free, 0, PROT_READ, "a free handle number", EBADF),
        (memory.handle().raw(), FIXED_BASE + 1, PROT_READ, "a misaligned address", EINVAL),
        (memory.handle().raw(), KERNEL_ADDRESS, PROT_READ, "a kernel address", EINVAL),
        (memory.handle().raw(), IMAGE_START, PROT_READ, "the program image", EINVAL),
    ] {
        expect_errno(&format!("memory_map of {what}"), call(MEMORY_MAP, [handle, address, prot, 0, 0, 0]), errno)?;
    }
    let address = map_shared(&memory, 0, PROT_READ | PROT_WRITE)?;
    unmap(address, 1)
}
