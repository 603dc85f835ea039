//! Pipes: `pipe_create`, `read` and `write` on its ends, end of file and `EPIPE`, blocking on
//! either side, and pipes as programs' standard streams. The hostile ones: bad buffer
//! pointers, a reader or writer killed mid-transfer, a writer blocked on a full pipe whose
//! reader exits, a full handle table, and a process that exits with pipes open.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use abi::errno::*;
use abi::handle::{Kind, rights};
use abi::stream::PIPE_CAPACITY;
use abi::syscall::{PIPE_CREATE, READ, WRITE};
use userlib::check;
use userlib::ipc::{self, OwnedHandle};
use userlib::process::{self, Process};
use userlib::sys::{self, Errno};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here pipes_carry_bytes_in_order,
    here pipes_read_returns_what_is_there,
    here pipes_end_when_the_last_writer_closes,
    here pipes_without_a_reader_refuse_writes,
    here pipes_ends_have_their_rights,
    here pipes_zero_lengths_never_block,
    here pipes_bad_buffer_pointers_are_refused,
    here pipes_create_refuses_bad_pointers_and_full_tables,
    here pipes_writer_blocks_while_full,
    here pipes_reader_blocks_until_bytes_come,
    here pipes_blocked_writer_whose_reader_exits_gets_epipe,
    here pipes_reader_killed_mid_transfer,
    here pipes_writer_killed_mid_transfer,
    here pipes_blocked_reader_killed_ends_killed,
    here pipes_connect_programs,
    here pipes_yes_into_head_ends,
    here pipes_exit_with_open_pipes_leaks_nothing,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("pipe_write", helper_pipe_write),
    ("pipe_read_all", helper_pipe_read_all),
    ("pipe_hold", helper_pipe_hold),
    ("pipe_late_write", helper_pipe_late_write),
    ("pipe_read_slowly", helper_pipe_read_slowly),
    ("pipe_write_forever", helper_pipe_write_forever),
    ("pipes_then_exit", helper_pipes_then_exit),
];

/// The byte at `offset` of what the helpers write.
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// A new pipe, as owned handles (read end, write end).
fn pipe() -> Result<(OwnedHandle, OwnedHandle), alloc::string::String> {
    let (read_end, write_end) = sys::pipe_create().context("pipe_create")?;
    Ok((OwnedHandle::from_raw(read_end), OwnedHandle::from_raw(write_end)))
}

/// Starts a helper with its standard handles and `stream` as its handle 3.
fn with_stream(role: &str, extra: &[&str], stream: &OwnedHandle) -> Result<sys::Child, alloc::string::String> {
    spawn_with_handles(role, extra, &[0, 1, 2, stream.raw() as u32])
}

fn read_exactly(handle: &OwnedHandle, wanted: usize) -> Result<Vec<u8>, alloc::string::String> {
    let mut bytes = vec![0u8; wanted];
    let mut done = 0;
    while done < wanted {
        let read = sys::read(handle.raw(), &mut bytes[done..]).context("read")?;
        check!(read > 0, "the pipe ended after {done} of {wanted} bytes");
        done += read;
    }
    Ok(bytes)
}

fn pipes_carry_bytes_in_order() -> Outcome {
    let (read_end, write_end) = pipe()?;
    for text in [&b"first "[..], b"second ", b"third"] {
        check!(sys::write(write_end.raw(), text).context("write")? == text.len(), "a short write");
    }
    let back = read_exactly(&read_end, 18)?;
    check!(back == b"first second third", "read back {back:?}");
    Ok(())
}

fn pipes_read_returns_what_is_there() -> Outcome {
    let (read_end, write_end) = pipe()?;
    sys::write(write_end.raw(), b"ab").context("write")?;
    let mut buffer = [0u8; 100];
    let read = sys::read(read_end.raw(), &mut buffer).context("read")?;
    check!(read == 2 && &buffer[..2] == b"ab", "read {read} bytes: {:?}", &buffer[..read]);
    // Around the ring buffer's end, in pieces.
    let chunk: Vec<u8> = (0..PIPE_CAPACITY - 1).map(pattern).collect();
    for _ in 0..3 {
        check!(sys::write(write_end.raw(), &chunk).context("write")? == chunk.len(), "a short write");
        check!(read_exactly(&read_end, chunk.len())? == chunk, "bytes changed around the ring's end");
    }
    Ok(())
}

fn pipes_end_when_the_last_writer_closes() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let second = write_end.duplicate(rights::ALL).context("duplicate the write end")?;
    sys::write(write_end.raw(), b"x").context("write")?;
    drop(write_end);
    sys::write(second.raw(), b"y").context("write through the copy")?;
    check!(read_exactly(&read_end, 2)? == b"xy", "bytes lost");
    drop(second);
    let mut buffer = [0u8; 4];
    for _ in 0..2 {
        check!(sys::read(read_end.raw(), &mut buffer).context("read at the end")? == 0, "no end of file");
    }
    Ok(())
}

fn pipes_without_a_reader_refuse_writes() -> Outcome {
    let (read_end, write_end) = pipe()?;
    drop(read_end);
    for _ in 0..2 {
        check!(sys::write(write_end.raw(), b"nobody") == Err(Errno(EPIPE)), "a write with no reader was not EPIPE");
    }
    Ok(())
}

fn pipes_ends_have_their_rights() -> Outcome {
    let (read_end, write_end) = pipe()?;
    expect_handle("the read end", read_end.raw(), Kind::Pipe, rights::DUPLICATE | rights::TRANSFER | rights::READ)?;
    expect_handle("the write end", write_end.raw(), Kind::Pipe, rights::DUPLICATE | rights::TRANSFER | rights::WRITE)?;
    let mut buffer = [0u8; 4];
    expect_errno("write to the read end", call(WRITE, [read_end.raw(), b"x".as_ptr() as u64, 1, 0, 0, 0]), EPERM)?;
    expect_errno("read of the write end", call(READ, [write_end.raw(), buffer.as_mut_ptr() as u64, 4, 0, 0, 0]), EPERM)?;
    let narrowed = read_end.duplicate(rights::DUPLICATE).context("duplicate without READ")?;
    expect_errno("read without READ", call(READ, [narrowed.raw(), buffer.as_mut_ptr() as u64, 4, 0, 0, 0]), EPERM)
}

fn pipes_zero_lengths_never_block() -> Outcome {
    let (read_end, write_end) = pipe()?;
    expect_value("read of 0 bytes of an empty pipe", call(READ, [read_end.raw(), 0x10, 0, 0, 0, 0]), 0)?;
    sys::write(write_end.raw(), &vec![0u8; PIPE_CAPACITY]).context("fill")?;
    expect_value("write of 0 bytes to a full pipe", call(WRITE, [write_end.raw(), 0x10, 0, 0, 0, 0]), 0)
}

fn pipes_bad_buffer_pointers_are_refused() -> Outcome {
    let (read_end, write_end) = pipe()?;
    sys::write(write_end.raw(), b"kept").context("write")?;
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("write to a pipe from {what}"), WRITE, [write_end.raw(), pointer, 8, 0, 0, 0], EFAULT)?;
        expect_errno_both(&format!("read of a pipe into {what}"), READ, [read_end.raw(), pointer, 8, 0, 0, 0], EFAULT)?;
    }
    let edge = Edge::new()?;
    expect_errno("read across the edge", call(READ, [read_end.raw(), edge.before_end(2), 4, 0, 0, 0]), EFAULT)?;
    edge.check_untouched("read across the edge")?;
    expect_errno("read into .rodata", call(READ, [read_end.raw(), READ_ONLY.as_ptr() as u64, 4, 0, 0, 0]), EFAULT)?;
    check!(read_exactly(&read_end, 4)? == b"kept", "a refused read took the bytes");
    Ok(())
}

fn pipes_create_refuses_bad_pointers_and_full_tables() -> Outcome {
    let before = info()?;
    for &(pointer, what) in BAD_POINTERS {
        expect_errno_both(&format!("pipe_create into {what}"), PIPE_CREATE, [pointer, 0, 0, 0, 0, 0], EFAULT)?;
    }
    let edge = Edge::new()?;
    expect_errno("pipe_create across the edge", call(PIPE_CREATE, [edge.before_end(4), 0, 0, 0, 0, 0]), EFAULT)?;
    expect_errno("pipe_create into .rodata", call(PIPE_CREATE, [READ_ONLY.as_ptr() as u64, 0, 0, 0, 0, 0]), EFAULT)?;
    // A table with one free slot has no room for two ends.
    let mut copies = Vec::new();
    while let Ok(copy) = ipc::duplicate(1, rights::ALL) {
        copies.push(OwnedHandle::from_raw(copy));
    }
    copies.pop();
    let result = sys::pipe_create();
    drop(copies);
    check!(result == Err(Errno(EMFILE)), "pipe_create with one free slot returned {result:?}");
    drop(edge);
    let after = info()?;
    check!(after.kernel_objects == before.kernel_objects, "{} objects, {} before", after.kernel_objects, before.kernel_objects);
    Ok(())
}

fn pipes_writer_blocks_while_full() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let total = PIPE_CAPACITY * 3 + 17;
    let writer = with_stream("pipe_write", &[&format!("{total}")], &write_end)?;
    drop(write_end);
    // Started and blocked on another CPU, or after this process sleeps: a busy host may take
    // a while to do either, so the state is looked at until it shows.
    let blocked = wait_until(HANG_LIMIT, || Ok(state_of(writer.pid)? == Some(abi::ProcessState::Blocked)))?;
    check!(blocked, "the writer of a full pipe is {:?}, not blocked", state_of(writer.pid)?);
    let back = read_exactly(&read_end, total)?;
    check!(back.iter().enumerate().all(|(offset, &byte)| byte == pattern(offset)), "the bytes came out changed");
    expect_exit("the writer", finish_within(writer, "pipe_write")?, 0)
}

fn pipes_reader_blocks_until_bytes_come() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let writer = with_stream("pipe_late_write", &["30"], &write_end)?;
    drop(write_end);
    let start = sys::uptime_ns();
    let back = read_exactly(&read_end, 4)?;
    let waited = sys::uptime_ns() - start;
    check!(back == b"late", "read {back:?}");
    check!(waited >= 25 * MS, "the read returned after {waited} ns, before the write");
    expect_exit("the late writer", finish_within(writer, "pipe_late_write")?, 0)
}

fn pipes_blocked_writer_whose_reader_exits_gets_epipe() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let writer = with_stream("pipe_write", &[&format!("{}", PIPE_CAPACITY * 4)], &write_end)?;
    let reader = spawn_with_handles("pipe_hold", &[], &[0, 1, 2, read_end.raw() as u32, go_read.raw() as u32])?;
    drop((read_end, write_end, go_read));
    // The writer fills the pipe and blocks (seen in the process list); only then does the
    // reader exit, without reading a byte.
    let blocked = wait_until(HANG_LIMIT, || Ok(state_of(writer.pid)? == Some(abi::ProcessState::Blocked)))?;
    let writer_state = state_of(writer.pid)?;
    sys::write(go_write.raw(), b"x").context("write to the reader's go pipe")?;
    let ended = finish_within(writer, "pipe_write")?;
    expect_exit("the reader", finish_within(reader, "pipe_hold")?, 0)?;
    check!(blocked, "the writer of a full pipe is {writer_state:?}, not blocked, while the reader holds the pipe");
    expect_exit("the blocked writer (10 + EPIPE: its write failed once the reader was gone)", ended, 10 + EPIPE as i32)
}

fn pipes_reader_killed_mid_transfer() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let (progress_read, progress_write) = pipe()?;
    let reader = spawn_with_handles("pipe_read_slowly", &[], &[0, 1, 2, read_end.raw() as u32, progress_write.raw() as u32])?;
    drop((read_end, progress_write));
    let chunk = vec![1u8; PIPE_CAPACITY];
    sys::write(write_end.raw(), &chunk).context("write")?;
    // The reader passes on every byte it took: two seen there, the transfer is under way.
    let seen = read_exactly(&progress_read, 2);
    sys::kill(reader).context("kill the reader")?;
    check!(seen.is_ok_and(|bytes| bytes == [1, 1]), "the reader did not pass on the first bytes it read");
    expect_exit("the killed reader", finish_within(reader, "pipe_read_slowly")?, abi::status::KILLED)?;
    let result = sys::write(write_end.raw(), &chunk);
    check!(result == Err(Errno(EPIPE)), "a write after the reader was killed returned {result:?}");
    Ok(())
}

fn pipes_writer_killed_mid_transfer() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let writer = with_stream("pipe_write_forever", &[], &write_end)?;
    drop(write_end);
    let first = read_exactly(&read_end, 3 * PIPE_CAPACITY)?;
    sys::kill(writer).context("kill the writer")?;
    expect_exit("the killed writer", finish_within(writer, "pipe_write_forever")?, abi::status::KILLED)?;
    let rest = userlib::fs::read_to_end(read_end.raw()).context("read to the end")?;
    check!(rest.len() <= PIPE_CAPACITY, "{} bytes after the writer died", rest.len());
    let all: Vec<u8> = first.into_iter().chain(rest).collect();
    check!(all.iter().enumerate().all(|(offset, &byte)| byte == pattern(offset)), "the bytes came out changed");
    Ok(())
}

fn pipes_blocked_reader_killed_ends_killed() -> Outcome {
    let (read_end, write_end) = pipe()?;
    let reader = with_stream("pipe_read_all", &[], &read_end)?;
    drop(read_end);
    let blocked = wait_until(HANG_LIMIT, || Ok(state_of(reader.pid)? == Some(abi::ProcessState::Blocked)))?;
    check!(blocked, "the reader of an empty pipe is {:?}, not blocked", state_of(reader.pid)?);
    sys::kill(reader).context("kill")?;
    expect_exit("a reader killed while blocked", finish_within(reader, "pipe_read_all")?, abi::status::KILLED)?;
    drop(write_end);
    Ok(())
}

/// `wc -c` between two pipes: its standard input and output are pipe ends.
fn pipes_connect_programs() -> Outcome {
    let (input_read, input_write) = pipe()?;
    let (output_read, output_write) = pipe()?;
    let counter = Process::spawn("wc", &["wc", "-c"], &process::standard_handles_with([input_read.raw(), output_write.raw(), 2]))
        .context("spawn wc")?;
    drop((input_read, output_write));
    userlib::fs::write_all(input_write.raw(), &vec![b'q'; 10_000]).context("write")?;
    drop(input_write);
    let output = userlib::fs::read_to_end(output_read.raw()).context("read wc's output")?;
    check!(output == b"10000\n", "wc -c printed {:?}", alloc::string::String::from_utf8_lossy(&output));
    let ended = counter.wait().context("wait for wc")?;
    check!(ended.status == 0, "wc {}", process::Ending(ended));
    Ok(())
}

fn pipes_yes_into_head_ends() -> Outcome {
    let (between_read, between_write) = pipe()?;
    let (output_read, output_write) = pipe()?;
    let yes = Process::spawn("yes", &["yes"], &process::standard_handles_with([0, between_write.raw(), 2])).context("spawn yes")?;
    let head = Process::spawn("head", &["head", "-n", "3"], &process::standard_handles_with([between_read.raw(), output_write.raw(), 2]))
        .context("spawn head")?;
    drop((between_read, between_write, output_write));
    let output = userlib::fs::read_to_end(output_read.raw()).context("read head's output")?;
    check!(output == b"y\ny\ny\n", "head printed {:?}", alloc::string::String::from_utf8_lossy(&output));
    let (head_ended, yes_ended) = (head.wait().context("wait for head")?, yes.wait().context("wait for yes")?);
    check!(head_ended.status == 0 && yes_ended.status == 0, "head {}, yes {}", process::Ending(head_ended), process::Ending(yes_ended));
    Ok(())
}

fn pipes_exit_with_open_pipes_leaks_nothing() -> Outcome {
    let before = info()?;
    expect_child_status("pipes_then_exit", &[], 0)?;
    let after = info()?;
    check!(after.kernel_objects == before.kernel_objects, "{} objects, {} before", after.kernel_objects, before.kernel_objects);
    check!(after.heap_used == before.heap_used, "{} kernel heap bytes, {} before", after.heap_used, before.heap_used);
    Ok(())
}

/// `pipe_write COUNT`: writes COUNT bytes of the pattern to its handle 3; 0 when all went,
/// 10 + the errno of a write that failed.
fn helper_pipe_write(args: &[&str]) -> i32 {
    let Some(total) = args.first().and_then(|text| text.parse::<usize>().ok()) else { return 2 };
    let bytes: Vec<u8> = (0..total).map(pattern).collect();
    match userlib::fs::write_all(3, &bytes) {
        Ok(()) => 0,
        Err(Errno(errno)) => 10 + errno as i32,
    }
}

/// `pipe_read_all`: reads its handle 3 to the end; exits 0, or 1 on an error.
fn helper_pipe_read_all(_: &[&str]) -> i32 {
    i32::from(userlib::fs::read_to_end(3).is_err())
}

/// `pipe_hold`: keeps its handle 3 without using it until a byte (or the end) comes on its
/// handle 4; exits 0.
fn helper_pipe_hold(_: &[&str]) -> i32 {
    let _ = sys::read(4, &mut [0u8; 1]);
    0
}

/// `pipe_late_write MS`: sleeps MS milliseconds, then writes `late` to its handle 3.
fn helper_pipe_late_write(args: &[&str]) -> i32 {
    let _ = sys::sleep_ms(args.first().and_then(|text| text.parse().ok()).unwrap_or(0));
    i32::from(sys::write(3, b"late") != Ok(4))
}

/// `pipe_read_slowly`: reads its handle 3 a byte a millisecond, for ever, writing each byte
/// it read to its handle 4 (so the case sees the transfer under way).
fn helper_pipe_read_slowly(_: &[&str]) -> i32 {
    let mut byte = [0u8; 1];
    while sys::read(3, &mut byte).is_ok() && sys::write(4, &byte).is_ok() {
        let _ = sys::sleep_ms(1);
    }
    REACHED_END
}

/// `pipe_write_forever`: writes the pattern to its handle 3 until a write fails.
fn helper_pipe_write_forever(_: &[&str]) -> i32 {
    let chunk: Vec<u8> = (0..251 * 8).map(pattern).collect();
    while userlib::fs::write_all(3, &chunk).is_ok() {}
    REACHED_END
}

/// `pipes_then_exit`: makes pipes (one with bytes in it, one end duplicated) and exits
/// without closing them; 0, or 1 if a step failed.
fn helper_pipes_then_exit(_: &[&str]) -> i32 {
    let made = (|| -> sys::Result<()> {
        for _ in 0..8 {
            let (_, write_end) = sys::pipe_create()?;
            sys::write(write_end, b"bytes nobody reads")?;
            ipc::duplicate(write_end, rights::ALL)?;
        }
        sys::exit(0)
    })();
    i32::from(made.is_err())
}
