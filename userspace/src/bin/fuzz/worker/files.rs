//! Random requests to `fs` (its protocol is `userlib::fs`'s), which must answer every one and
//! carry on.
//!
//! A request goes to the root directory the coordinator gave the worker ([`FS_ROOT`]), or
//! to a file or directory the worker has just opened there: then the worker also `read`s
//! and `write`s it through the kernel's stream calls, with the pointers and lengths it draws
//! for any syscall, and closes it at the end of the request. Labels are the protocol's, the
//! stream labels, and unknown ones; words are flags, offsets, lengths and indexes at their
//! edges; paths are built from `..`, `.`, empty and over-long components, NUL bytes, bytes
//! that are not UTF-8, names under `/tmp` (the one writable place, so the tree really
//! changes) and elsewhere, or are random bytes; some requests carry a handle, which fs must
//! close. The checks: the call reaches fs (never `EPIPE`: fs is alive), the answer's label
//! is a count or a known errno, a successful `OPEN`, `SESSION` or `LOAD_IMAGE` hands over exactly one
//! handle of the right kind and nothing else hands over any, and what the stream calls return
//! is a known errno or a count no larger than asked for. [`alive`] asks fs to describe `/`
//! at the end of every worker's batch.

use abi::errno::{EMFILE, ENOMEM, EPERM};
use abi::handle::Kind;
use abi::ipc::{COPY_HANDLE, FOREVER, HANDLES_MAX, IpcBuffers};
use abi::stream;
use abi::syscall::{CALL, READ, WRITE};
use userlib::fs::{self as protocol, open};
use userlib::ipc::{self, Message, raw_ipc};

use super::{FS_ROOT, KNOWN_ERRNOS, Worker};
use crate::Rng;

/// Bytes of the longest path drawn: past `PATH_MAX`, and twice it for a rename.
const PATH_ROOM: usize = 2 * protocol::PATH_MAX + 64;
/// Bytes of room for an answer.
const ANSWER_ROOM: usize = 4096;
/// Most operations on one opened file or directory.
const SESSION_MAX: u64 = 6;

/// The path (or paths, for a rename) a request carries.
static mut PATH: [u8; PATH_ROOM] = [0; PATH_ROOM];
/// Room for the bytes of an answer; nothing reads them.
static mut ANSWER: [u8; ANSWER_ROOM] = [0; ANSWER_ROOM];

/// Components paths are made of.
const COMPONENTS: [&[u8]; 13] = [b"tmp", b"tmp", b"..", b".", b"", b"etc", b"motd", b"bin", b"fuzz", b"a", b"dir", b"\xff\xfe", b"nul\0byte"];

/// Labels a request carries.
const LABELS: [u64; 19] = [
    protocol::OPEN,
    protocol::MKDIR,
    protocol::RMDIR,
    protocol::UNLINK,
    protocol::RENAME,
    protocol::STAT,
    protocol::LOAD_IMAGE,
    protocol::STATFS,
    protocol::SEEK,
    protocol::TRUNCATE,
    protocol::FSTAT,
    protocol::READDIR,
    protocol::GETPATH,
    protocol::SESSION,
    stream::READ,
    stream::WRITE,
    0,
    protocol::SESSION + 1,
    u64::MAX - 2,
];

/// What fs answered.
struct Answer {
    label: u64,
    handles: [u32; HANDLES_MAX],
    handle_count: usize,
}

impl Worker {
    /// One random request to fs (call `index`), or a short session with a file or directory
    /// it opens.
    pub(super) fn fs_request(&mut self, index: u64, rng: &mut Rng) {
        if rng.below(3) != 0 {
            let label = rng.pick(&LABELS);
            if let Some(handed_over) = self.fs_call(index, rng, FS_ROOT, label) {
                let _ = ipc::close(handed_over);
            }
            return;
        }
        let flags = match rng.below(4) {
            0 | 1 => open::READ | open::WRITE | open::CREATE | rng.pick(&[0, open::APPEND, open::TRUNCATE]),
            2 => rng.below(open::ALL + 1),
            _ => rng.next(),
        };
        let Some(opened) = self.fs_call_with(index, rng, FS_ROOT, protocol::OPEN, [flags, 0, 0, 0]) else { return };
        for _ in 0..1 + rng.below(SESSION_MAX) {
            match rng.below(4) {
                0 => self.fs_stream(index, rng, opened, WRITE),
                1 => self.fs_stream(index, rng, opened, READ),
                _ => {
                    let label = rng.pick(&LABELS);
                    if let Some(extra) = self.fs_call(index, rng, opened, label) {
                        let _ = ipc::close(extra);
                    }
                }
            }
        }
        let _ = ipc::close(opened);
    }

    /// Whether fs still answers: `STAT` of `/` must say it is a directory.
    pub(super) fn fs_alive(&mut self, index: u64) {
        let path = b"/";
        let mut buffers = IpcBuffers { send_ptr: path.as_ptr() as u64, send_len: 1, ..IpcBuffers::default() };
        let message = Message::new(protocol::STAT, [0; 4]);
        // SAFETY: `buffers` describes `path`, which outlives the call; it receives nothing.
        let answer = unsafe { raw_ipc(CALL, FS_ROOT, &message, &raw mut buffers as u64, FOREVER, 0) };
        if answer.result != 0 || answer.message.label != 0 || answer.message.words[0] != protocol::KIND_DIRECTORY {
            let (result, label, kind) = (answer.result, answer.message.label, answer.message.words[0]);
            self.problem(index, format_args!("fs no longer describes /: result {result}, label {label:#x}, kind {kind}"));
        }
    }

    /// A request with `label` and words drawn for it to `target`; the one handle it handed
    /// over, if any (the caller closes it).
    fn fs_call(&mut self, index: u64, rng: &mut Rng, target: u64, label: u64) -> Option<u64> {
        let words = match label {
            protocol::OPEN => [rng.below(open::ALL + 1), 0, 0, 0],
            protocol::SEEK => {
                let any = rng.next();
                [rng.below(4), rng.pick(&[0, 1, u64::MAX, i64::MAX as u64, i64::MIN as u64, 4096, any]), 0, 0]
            }
            protocol::TRUNCATE => {
                let edges = [0, 1, 4095, 4096, 1 << 20, protocol::FILE_MAX, protocol::FILE_MAX + 1, u64::MAX];
                [rng.pick(&edges), 0, 0, 0]
            }
            protocol::READDIR => {
                let any = rng.next();
                [rng.pick(&[0, 1, 2, 100, u64::MAX, any]), 0, 0, 0]
            }
            stream::READ | stream::WRITE => {
                let any = rng.next();
                [rng.pick(&[0, 1, 4096, u64::MAX, any]), 0, 0, 0]
            }
            _ => core::array::from_fn(|_| if rng.below(2) == 0 { 0 } else { rng.next() }),
        };
        self.fs_call_with(index, rng, target, label, words)
    }

    /// Sends `label` and `words` to `target` with a drawn path, maybe a handle, and maybe
    /// room for bytes back, and checks the answer; the one handle it handed over, if any.
    fn fs_call_with(&mut self, index: u64, rng: &mut Rng, target: u64, label: u64, words: [u64; 4]) -> Option<u64> {
        let path_len = draw_path(rng, label == protocol::RENAME);
        let mut buffers = IpcBuffers { send_ptr: (&raw const PATH) as u64, send_len: path_len as u64, ..IpcBuffers::default() };
        if rng.below(4) != 0 {
            (buffers.recv_ptr, buffers.recv_capacity) = ((&raw mut ANSWER) as u64, ANSWER_ROOM as u64);
        }
        if rng.below(8) == 0 {
            // A copy of the console: fs must close what it did not ask for.
            buffers.send_handles[0] = 1 | COPY_HANDLE;
            buffers.send_handle_count = 1;
        }
        // SAFETY: `buffers` describes `PATH` and `ANSWER`, the worker's own statics, which no
        // other call uses meanwhile and which outlive the call.
        let registers = unsafe { raw_ipc(CALL, target, &Message::new(label, words), &raw mut buffers as u64, FOREVER, 0) };
        if registers.result < 0 {
            let errno = -registers.result;
            // The worker's table may be full, or its console copy refused.
            if ![EMFILE, ENOMEM, EPERM].contains(&errno) {
                self.problem(index, format_args!("a request to fs (label {label:#x}) failed: {}", abi::errno::name(errno)));
            }
            return None;
        }
        let count = (buffers.received_handle_count as usize).min(HANDLES_MAX);
        let answer = Answer { label: registers.message.label, handles: buffers.received_handles, handle_count: count };
        self.check_answer(index, label, &answer)
    }

    /// Checks fs's answer to a request with `label`; closes the handles that came with it,
    /// but for the one a successful `OPEN`, `SESSION` or `LOAD_IMAGE` hands over, which it
    /// returns.
    fn check_answer(&mut self, index: u64, label: u64, answer: &Answer) -> Option<u64> {
        let arrived = &answer.handles[..answer.handle_count];
        let status = protocol::status(answer.label);
        if let Err(errno) = status
            && !KNOWN_ERRNOS.contains(&errno.0)
        {
            self.problem(index, format_args!("fs answered label {label:#x} with {:#x}", answer.label));
        }
        let expected = match (label, status) {
            (protocol::OPEN | protocol::SESSION, Ok(_)) => Some(Kind::Endpoint),
            (protocol::LOAD_IMAGE, Ok(_)) => Some(Kind::Memory),
            _ => None,
        };
        let kept = match (expected, arrived) {
            (None, []) => None,
            (Some(kind), [handle]) if matches!(ipc::handle_info(u64::from(*handle)), Ok((Some(found), _)) if found == kind) => {
                Some(u64::from(*handle))
            }
            _ => {
                let count = arrived.len();
                self.problem(index, format_args!("fs answered label {label:#x} with {count} handles (expected {expected:?})"));
                None
            }
        };
        for &handle in arrived {
            if Some(u64::from(handle)) != kept {
                let _ = ipc::close(u64::from(handle));
            }
        }
        kept
    }

    /// A `read` or `write` (syscall `number`) of the open file or directory `handle`, with a
    /// drawn pointer and length: a count no larger than the length, or a known errno.
    fn fs_stream(&mut self, index: u64, rng: &mut Rng, handle: u64, number: u64) {
        let pointer = self.pointer(rng, number == READ);
        let mut len = match rng.below(6) {
            0 => 0,
            1 => 1 + rng.below(64),
            2 => rng.below(4096),
            3 => rng.pick(&[4095, 4096, 4097, 65_536, 65_537]),
            4 => u64::MAX - rng.below(4),
            _ => rng.next(),
        };
        if number == READ {
            len = within_own_buffers(pointer, len);
        }
        // SAFETY: a read writes only where the kernel checked the caller may write, and
        // never past the end of the worker's own buffer it starts in: elsewhere it is refused
        // or lands in scratch mappings nothing reads.
        let result = unsafe { userlib::sys::raw(userlib::sys::EntryPath::Syscall, number, [handle, pointer, len, 0, 0, 0]) };
        let fine = if result < 0 { KNOWN_ERRNOS.contains(&-result) } else { (result as u64) <= len };
        if !fine {
            self.problem(index, format_args!("syscall {number} of {len} bytes on an fs file returned {result}"));
        }
    }
}

/// `len`, cut so that a range from `pointer` inside one of the worker's buffers stays inside
/// it (what lies beyond is the worker's other data).
pub(super) fn within_own_buffers(pointer: u64, len: u64) -> u64 {
    for start in [(&raw const super::INPUT) as u64, (&raw const super::OUTPUT) as u64] {
        let end = start + super::BUFFER as u64;
        if (start..end).contains(&pointer) {
            return len.min(end - pointer);
        }
    }
    len
}

/// Draws a path (two, separated by a NUL byte, for a rename) into `PATH`; its length.
fn draw_path(rng: &mut Rng, rename: bool) -> usize {
    let target = &raw mut PATH;
    // SAFETY: `PATH` is the worker's own, and no call is using it now.
    let path = unsafe { &mut *target };
    let mut len = append_path(rng, path, 0);
    if rename && len < PATH_ROOM / 2 {
        path[len] = 0;
        len = append_path(rng, path, len + 1);
    }
    len
}

/// Names in `/tmp` that requests make, change and remove.
const NAMES: [&[u8]; 5] = [b"a", b"b", b"c", b"dir", b"a-rather-longer-name-for-a-file"];

/// Appends one drawn path to `path` at `at`; the new length.
fn append_path(rng: &mut Rng, path: &mut [u8], at: usize) -> usize {
    let room = PATH_ROOM / 2 - 8;
    let mut end = at;
    let mut push = |end: &mut usize, bytes: &[u8]| {
        if *end + bytes.len() <= at + room {
            path[*end..*end + bytes.len()].copy_from_slice(bytes);
            *end += bytes.len();
        }
    };
    match rng.below(16) {
        0 => {
            for _ in 0..rng.below(64) {
                push(&mut end, &[rng.next() as u8]);
            }
        }
        1 => {
            let len = rng.pick(&[protocol::NAME_MAX + 1, 1024, protocol::PATH_MAX + 1, room]);
            push(&mut end, b"/tmp/");
            for _ in 0..len.min(room) - 5 {
                push(&mut end, b"x");
            }
        }
        // One that mostly names something real: `/tmp`, a name or two below it.
        2..=9 => {
            push(&mut end, b"/tmp");
            for _ in 0..1 + rng.below(2) {
                push(&mut end, b"/");
                push(&mut end, rng.pick(&NAMES));
            }
        }
        _ => {
            if rng.below(4) != 0 {
                push(&mut end, b"/");
            }
            for depth in 0..rng.below(6) {
                if depth > 0 {
                    push(&mut end, b"/");
                }
                push(&mut end, rng.pick(&COMPONENTS));
            }
        }
    }
    end
}
