//! Kernel pipes: a bounded byte buffer between a read end and a write end.
//!
//! A reader blocks while the pipe is empty and gets 0 (end of file) once it is empty and the
//! write end is gone; a writer blocks while it is full and gets `EPIPE` once the read end is
//! gone. A handle names an end ([`PipeEnd`]); duplicated handles share the end, so an end
//! closes when its last handle does. A `write` delivers all its bytes unless the reader goes
//! or the writer is killed part-way, in which case it returns what it delivered (or the
//! error, if that was nothing); a `read` returns what is there, up to its length.
//!
//! A blocked reader or writer waits in the pipe's queue for its side and blocks through
//! `scheduler::block_for_ipc` on its thread's `ipc_ready` flag, which is how every IPC
//! partner says "look again" (a thread blocks in one thing at a time). Whoever changes
//! the pipe wakes the other side's queue. The pipe's lock is taken after a handle table's
//! and before the scheduler's, like an endpoint's.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use abi::errno::{EINTR, EPIPE};
use abi::stream::PIPE_CAPACITY;
use spin::Mutex;

use super::endpoint::room_for_one;
use crate::object::LiveObject;
use crate::task::thread::ThreadObject;
use crate::task::scheduler::{self, BlockOutcome};

/// Which end of a pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end `read` takes bytes from.
    Read,
    /// The end `write` puts bytes into.
    Write,
}

#[derive(Debug)]
struct State {
    /// The ring buffer: `len` bytes from `head`, wrapping around.
    buffer: Box<[u8; PIPE_CAPACITY]>,
    head: usize,
    len: usize,
    /// Whether each end still has a handle.
    reader_open: bool,
    writer_open: bool,
    /// Processes blocked reading (the pipe was empty) and writing (it was full).
    readers: VecDeque<Arc<ThreadObject>>,
    writers: VecDeque<Arc<ThreadObject>>,
}

impl State {
    fn waiting(&mut self, side: Side) -> &mut VecDeque<Arc<ThreadObject>> {
        match side {
            Side::Read => &mut self.readers,
            Side::Write => &mut self.writers,
        }
    }

    /// Wakes every thread waiting on `side`. The scheduler's lock is taken inside this
    /// lock, which the lock order allows; the popped threads are blocked, so the table
    /// still holds each of them and dropping these references frees nothing.
    // Inlined into the read and write paths, as rustc did before those grew (without it
    // `pipe_pingpong` costs 7 % more).
    #[inline]
    fn wake(&mut self, side: Side) {
        while let Some(thread) = self.waiting(side).pop_front() {
            thread.ipc_ready.store(true, Ordering::Release);
            scheduler::wake(&thread);
        }
    }
}

/// A pipe.
#[derive(Debug)]
pub struct Pipe {
    state: Mutex<State>,
    _live: LiveObject,
}

/// Why a blocked read or write stopped waiting.
enum Waited {
    /// Something changed: look again.
    Again,
    /// The thread was killed.
    Killed,
}

impl Pipe {
    /// A new empty pipe with both ends open, as its two ends.
    pub fn create() -> (PipeEnd, PipeEnd) {
        let state = State {
            buffer: Box::new([0; PIPE_CAPACITY]),
            head: 0,
            len: 0,
            reader_open: true,
            writer_open: true,
            readers: VecDeque::new(),
            writers: VecDeque::new(),
        };
        let pipe = Arc::new(Self { state: Mutex::new(state), _live: LiveObject::new() });
        (PipeEnd::new(pipe.clone(), Side::Read), PipeEnd::new(pipe, Side::Write))
    }

    /// Queues `me` on `side`, releases the lock, and blocks until a change wakes it or it is
    /// killed (then it leaves the queue). `ENOMEM` if the queue cannot grow.
    #[inline]
    fn wait(&self, mut state: spin::MutexGuard<'_, State>, me: &Arc<ThreadObject>, side: Side) -> Result<Waited, i64> {
        let queue = state.waiting(side);
        room_for_one(queue)?;
        queue.push_back(me.clone());
        me.ipc_ready.store(false, Ordering::Release);
        drop(state);
        let outcome = scheduler::block_for_ipc(&me.ipc_ready, None, None);
        me.ipc_ready.store(false, Ordering::Release);
        if outcome == BlockOutcome::Killed {
            self.state.lock().waiting(side).retain(|queued| queued.tid != me.tid);
            return Ok(Waited::Killed);
        }
        Ok(Waited::Again)
    }

    /// Takes up to `wanted` bytes, handing them to `deliver` (at most two pieces, in order),
    /// blocking while the pipe is empty and the write end open: the count, 0 at end of file,
    /// `EINTR` if killed while waiting, or `deliver`'s error (the bytes then stay in the
    /// pipe).
    pub fn read(
        &self,
        me: &Arc<ThreadObject>,
        wanted: usize,
        mut deliver: impl FnMut(usize, &[u8]) -> Result<(), i64>,
    ) -> Result<usize, i64> {
        if wanted == 0 {
            return Ok(0);
        }
        loop {
            let mut state = self.state.lock();
            if state.len > 0 {
                let count = wanted.min(state.len);
                let first = count.min(PIPE_CAPACITY - state.head);
                deliver(0, &state.buffer[state.head..state.head + first])?;
                deliver(first, &state.buffer[..count - first])?;
                state.head = (state.head + count) % PIPE_CAPACITY;
                state.len -= count;
                state.wake(Side::Write);
                return Ok(count);
            }
            if !state.writer_open {
                return Ok(0);
            }
            if let Waited::Killed = self.wait(state, me, Side::Read)? {
                return Err(EINTR);
            }
        }
    }

    /// Puts `total` bytes in, taking them from `fetch(offset, room)` (which fills `room` with
    /// the bytes at `offset`), blocking while the pipe is full: the count, or `EPIPE` (no
    /// reader), `EINTR` (killed while waiting) or `fetch`'s error if nothing was written.
    pub fn write(
        &self,
        me: &Arc<ThreadObject>,
        total: usize,
        mut fetch: impl FnMut(usize, &mut [u8]) -> Result<(), i64>,
    ) -> Result<usize, i64> {
        let mut done = 0;
        while done < total {
            let mut state = self.state.lock();
            if !state.reader_open {
                return if done > 0 { Ok(done) } else { Err(EPIPE) };
            }
            if state.len < PIPE_CAPACITY {
                let tail = (state.head + state.len) % PIPE_CAPACITY;
                let count = (total - done).min(PIPE_CAPACITY - state.len).min(PIPE_CAPACITY - tail);
                if let Err(errno) = fetch(done, &mut state.buffer[tail..tail + count]) {
                    return if done > 0 { Ok(done) } else { Err(errno) };
                }
                state.len += count;
                done += count;
                state.wake(Side::Read);
                continue;
            }
            if let Waited::Killed = self.wait(state, me, Side::Write)? {
                return if done > 0 { Ok(done) } else { Err(EINTR) };
            }
        }
        Ok(done)
    }

    /// The last handle of `side` is gone: the other side's waiters look again (a reader finds
    /// the end of file, a writer `EPIPE`).
    fn close(&self, side: Side) {
        let mut state = self.state.lock();
        match side {
            Side::Read => state.reader_open = false,
            Side::Write => state.writer_open = false,
        }
        let other = match side {
            Side::Read => Side::Write,
            Side::Write => Side::Read,
        };
        state.wake(other);
    }
}

/// One end of a pipe, as a handle holds it; it closes that end when the last handle to it
/// is gone.
#[derive(Debug)]
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    side: Side,
    _live: LiveObject,
}

impl PipeEnd {
    fn new(pipe: Arc<Pipe>, side: Side) -> Self {
        Self { pipe, side, _live: LiveObject::new() }
    }

    /// The pipe.
    pub fn pipe(&self) -> &Pipe {
        &self.pipe
    }

    /// Which end this is.
    pub fn side(&self) -> Side {
        self.side
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.pipe.close(self.side);
    }
}
