//! `fs`: the file system server. A RAM file system filled at start from the boot ramdisk (a
//! tar archive: the programs under `/bin`, the repository's `rootfs/`), with `/tmp`
//! writable; the protocol, the limits and the current-directory convention are
//! `userlib::fs`'s.
//!
//! `init` starts it with the receiving end of its endpoint as handle 3 and the ramdisk as 4,
//! and registers a handle with badge 0, the root directory, as `fs` with the name service.
//! Every open file or directory is a handle fs mints with a badge of its own and a close
//! notice, so `read` and `write` on it reach fs as the kernel's stream calls and fs forgets
//! it when its last copy is closed. The tree and its rules are in [`tree`], who pays for
//! what in [`sessions`], and how `/tmp` outlives fs in [`journal`] (`init` hands over the
//! journal as handles 5 and 6).
//!
//! Whatever a client sends, fs answers and carries on: unknown labels, badges, flags and
//! paths get their errno; handles that arrive with a request are closed; a reply whose
//! caller has gone takes nothing with it (a handle fs meant to hand over is closed again).
#![no_std]
#![no_main]

extern crate alloc;

mod journal;
mod sessions;
mod tree;

use alloc::vec;
use alloc::vec::Vec;

use abi::errno::*;
use abi::ipc::{BUFFER_MAX, FOREVER, LABEL_CLOSED, LABEL_NOTIFICATION};
use abi::stream;
use tar_no_std::TarArchiveRef;
use sessions::{OPENS, ROOT_SESSION, SessionId};
use tree::{BLOCK, Errno, NodeId, ROOT, Tree};
use userlib::eprintln;
use userlib::fs::{self as protocol, open};
use userlib::ipc::{self, Endpoint, Message, Reply, SharedMemory, Transfer};

userlib::main!(main);

/// The receiving end of fs's endpoint.
const ENDPOINT: u64 = 3;
/// The boot ramdisk.
const RAMDISK: u64 = 4;
/// The journal's two memory objects (`journal`), if `init` gave them.
const JOURNAL: [u64; 2] = [5, 6];
/// Most bytes of directory entries one `READDIR` reply holds.
const READDIR_BYTES: usize = 4096;

/// An open file or directory.
#[derive(Debug)]
struct Open {
    node: NodeId,
    offset: u64,
    flags: u64,
    /// The session it was opened through (and what it makes is charged to).
    session: SessionId,
}

/// What fs keeps besides the tree.
struct Server {
    tree: Tree,
    /// Open files and directories: badge `n` is entry `n - 1`.
    opens: Vec<Option<Open>>,
    endpoint: Endpoint,
    /// Room for replies made of several pieces.
    outgoing: Vec<u8>,
}

/// The bytes a reply carries.
enum Bytes {
    None,
    /// The first `len` bytes of `outgoing`.
    Outgoing(usize),
    /// `len` bytes of file `node` from `offset`, all in one block or in the ramdisk: sent from
    /// where they lie (nothing changes the file before the reply goes out with the next
    /// receive).
    Piece { node: NodeId, offset: u64, len: usize },
}

/// A reply: its label and words, its bytes, and a handle to hand over.
struct Answer {
    message: Message,
    bytes: Bytes,
    handle: Option<u64>,
}

impl Answer {
    fn status(result: Result<u64, Errno>) -> Self {
        Self { message: Message::new(stream::reply_label(result), [0; 4]), bytes: Bytes::None, handle: None }
    }

    fn words(words: [u64; 4]) -> Self {
        Self { message: Message::new(0, words), bytes: Bytes::None, handle: None }
    }
}

fn main() -> i32 {
    let mut tree = Tree::new();
    // SAFETY: the ramdisk handle only ever carries READ (the kernel made it so), so nothing
    // writes the ramdisk. The handle is closed once it is mapped.
    match unsafe { SharedMemory::from_raw(RAMDISK).map_read_only_forever() } {
        Ok(bytes) => fill(&mut tree, bytes),
        Err(error) => eprintln!("fs: cannot map the ramdisk: {error}; starting empty"),
    }
    match journal::Journal::map(JOURNAL[0], JOURNAL[1]) {
        Some(journal) => {
            let replayed = tree.attach(journal);
            if replayed > 0 {
                userlib::println!("fs: /tmp restored from the journal ({replayed} changes)");
            }
        }
        None => eprintln!("fs: no journal; /tmp will not survive a restart"),
    }
    let mut server = Server { tree, opens: Vec::new(), endpoint: Endpoint::from_raw(ENDPOINT), outgoing: vec![0; BUFFER_MAX as usize] };
    server.serve()
}

/// Fills the tree with the ramdisk's folders and files.
fn fill(tree: &mut Tree, ramdisk: &'static [u8]) {
    let Ok(archive) = TarArchiveRef::new(ramdisk) else {
        eprintln!("fs: the ramdisk is not a tar archive; starting empty");
        return;
    };
    for (_, header) in archive.headers() {
        let is_folder = header.typeflag.try_to_type_flag().is_ok_and(|flag| flag == tar_no_std::TypeFlag::DIRTYPE);
        if let (true, Ok(name)) = (is_folder, header.name.as_str()) {
            let _ = tree.add_from_ramdisk(name, None);
        }
    }
    for entry in archive.entries() {
        let name = entry.filename();
        match name.as_str() {
            Ok(path) => {
                if let Err(errno) = tree.add_from_ramdisk(path, Some(entry.data())) {
                    eprintln!("fs: cannot add {path} from the ramdisk: {}", abi::errno::name(errno));
                }
            }
            Err(_) => eprintln!("fs: a ramdisk entry's name is not UTF-8"),
        }
    }
}

impl Server {
    /// Receives requests and answers them, for ever: replies without a handle go out with
    /// the next receive (`reply_recv`), one with a handle on its own (`reply`), so that a
    /// handle whose caller has gone comes back and is closed.
    fn serve(&mut self) -> ! {
        let mut incoming = vec![0u8; BUFFER_MAX as usize];
        let mut pending: Option<(Reply, Message, Bytes)> = None;
        loop {
            let (reply, message, bytes) = match pending.take() {
                Some((reply, message, bytes)) => (Some(reply), message, bytes),
                None => (None, Message::default(), Bytes::None),
            };
            let send = match bytes {
                Bytes::None => &[][..],
                Bytes::Outgoing(len) => &self.outgoing[..len],
                Bytes::Piece { node, offset, len } => self.tree.file(node).map_or(&[][..], |data| data.piece(offset, len)),
            };
            let mut transfer = Transfer { send, receive: Some(&mut incoming), ..Transfer::default() };
            let Ok(request) = self.endpoint.reply_recv(reply, &message, &mut transfer, FOREVER) else { continue };
            for &arrived in request.arrived.handles() {
                let _ = ipc::close(u64::from(arrived));
            }
            let length = request.arrived.len.min(incoming.len());
            let Some(answer) = self.handle(request.badge, request.message, &incoming[..length]) else { continue };
            match (request.reply, answer.handle) {
                (None, Some(handle)) => {
                    let _ = ipc::close(handle);
                }
                (None, None) => {}
                (Some(reply), None) => pending = Some((reply, answer.message, answer.bytes)),
                (Some(reply), Some(handle)) => Self::reply_with_handle(reply, &answer.message, handle),
            }
        }
    }

    /// Answers with `handle` moved to the caller; if the caller has gone, the handle came
    /// back and is closed (its close notice then frees what it named).
    fn reply_with_handle(reply: Reply, message: &Message, handle: u64) {
        let handles = [handle as u32];
        if reply.send_with(message, &mut Transfer { send_handles: &handles, ..Transfer::default() }).is_err() {
            let _ = ipc::close(handle);
        }
    }

    /// Serves one message; `None` for one that takes no answer.
    fn handle(&mut self, badge: u64, message: Message, bytes: &[u8]) -> Option<Answer> {
        match message.label {
            LABEL_CLOSED => {
                self.close(badge);
                None
            }
            LABEL_NOTIFICATION => None,
            label => Some(self.request(badge, label, message.words, bytes).unwrap_or_else(|errno| Answer::status(Err(errno)))),
        }
    }

    /// The open file or directory a badge names (badge 0 is the root).
    fn open_entry(&mut self, badge: u64) -> Result<&mut Open, Errno> {
        let index = usize::try_from(badge).ok().and_then(|badge| badge.checked_sub(1)).ok_or(EBADF)?;
        self.opens.get_mut(index).and_then(Option::as_mut).ok_or(EBADF)
    }

    /// The node a badge names.
    fn node_of(&mut self, badge: u64) -> Result<NodeId, Errno> {
        if badge == 0 { Ok(ROOT) } else { self.open_entry(badge).map(|open| open.node) }
    }

    /// The session a badge's requests are charged to.
    fn session_of(&mut self, badge: u64) -> Result<SessionId, Errno> {
        if badge == 0 { Ok(ROOT_SESSION) } else { self.open_entry(badge).map(|open| open.session) }
    }

    fn request(&mut self, badge: u64, label: u64, words: [u64; 4], bytes: &[u8]) -> Result<Answer, Errno> {
        let base = self.node_of(badge)?;
        let session = self.session_of(badge)?;
        match label {
            stream::READ => self.read(badge, words[0]),
            stream::WRITE => self.write(badge, &bytes[..bytes.len().min(words[0] as usize)]),
            protocol::SEEK => self.seek(badge, words[0], words[1] as i64),
            protocol::TRUNCATE => {
                self.writable_file(badge)?;
                self.tree.set_len(base, words[0]).map(|()| Answer::status(Ok(0)))
            }
            protocol::FSTAT => Ok(self.stat(base)),
            protocol::READDIR => self.read_dir(base, words[0]),
            protocol::GETPATH => {
                let path = self.tree.path_of(base)?;
                // A path longer than any request may carry is refused rather than cut (a
                // chain of 255-byte names can be longer than the reply's buffer too).
                if path.len() > protocol::PATH_MAX {
                    return Err(ENAMETOOLONG);
                }
                self.outgoing[..path.len()].copy_from_slice(path.as_bytes());
                Ok(Answer { bytes: Bytes::Outgoing(path.len()), ..Answer::status(Ok(0)) })
            }
            protocol::STATFS => Ok(Answer::words([
                self.tree.used(),
                protocol::CAPACITY,
                self.tree.node_count() as u64,
                self.opens.iter().flatten().count() as u64,
            ])),
            protocol::SESSION => {
                if self.tree.node(base).kind() != protocol::KIND_DIRECTORY {
                    return Err(ENOTDIR);
                }
                let started = self.tree.sessions.start(session, [words[0], words[1], words[2]])?;
                let answer = self.hand_out(base, open::READ | open::DIRECTORY, started);
                if answer.is_err() {
                    // The new session never had a handle: it ends here.
                    self.end_handle(started);
                }
                answer
            }
            protocol::OPEN | protocol::MKDIR | protocol::RMDIR | protocol::UNLINK | protocol::RENAME | protocol::STAT
            | protocol::LOAD_IMAGE => {
                if bytes.len() > protocol::PATH_MAX * 2 + 1 {
                    return Err(ENAMETOOLONG);
                }
                let path = core::str::from_utf8(bytes).map_err(|_| EINVAL)?;
                self.path_request(base, session, label, words, path)
            }
            _ => Err(EINVAL),
        }
    }

    fn path_request(&mut self, base: NodeId, session: SessionId, label: u64, words: [u64; 4], path: &str) -> Result<Answer, Errno> {
        if label != protocol::RENAME && path.len() > protocol::PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        match label {
            protocol::OPEN => self.open(base, session, path, words[0]),
            protocol::MKDIR => self.tree.mkdir(base, path, session).map(|()| Answer::status(Ok(0))),
            protocol::RMDIR => self.tree.remove(base, path, true).map(|()| Answer::status(Ok(0))),
            protocol::UNLINK => self.tree.remove(base, path, false).map(|()| Answer::status(Ok(0))),
            protocol::RENAME => {
                let (from, to) = path.split_once('\0').ok_or(EINVAL)?;
                if from.len() > protocol::PATH_MAX || to.len() > protocol::PATH_MAX {
                    return Err(ENAMETOOLONG);
                }
                self.tree.rename(base, from, to).map(|()| Answer::status(Ok(0)))
            }
            protocol::STAT => {
                let node = self.tree.resolve(base, path)?;
                Ok(self.stat(node))
            }
            _ => self.load_image(base, path),
        }
    }

    fn stat(&self, node: NodeId) -> Answer {
        let node_data = self.tree.node(node);
        Answer::words([node_data.kind(), node_data.size(), node as u64, 0])
    }

    /// Opens `path` through `session`: a new badge, and a handle minted with it.
    fn open(&mut self, base: NodeId, session: SessionId, path: &str, flags: u64) -> Result<Answer, Errno> {
        if flags & !open::ALL != 0 {
            return Err(EINVAL);
        }
        // Refused before anything is made.
        self.room_to_open(session)?;
        let node = self.tree.open(base, path, flags & open::CREATE != 0, flags & open::EXCLUSIVE != 0, session)?;
        let is_directory = self.tree.node(node).kind() == protocol::KIND_DIRECTORY;
        if flags & open::DIRECTORY != 0 && !is_directory {
            return Err(ENOTDIR);
        }
        let changes = flags & (open::WRITE | open::TRUNCATE | open::APPEND) != 0;
        if is_directory && changes {
            return Err(EISDIR);
        }
        if changes && !self.tree.node(node).is_writable() {
            return Err(EROFS);
        }
        if flags & open::TRUNCATE != 0 {
            self.tree.set_len(node, 0)?;
        }
        self.hand_out(node, flags, session)
    }

    /// A new open entry for `node` in `session`, and the handle minted for it.
    fn hand_out(&mut self, node: NodeId, flags: u64, session: SessionId) -> Result<Answer, Errno> {
        self.room_to_open(session)?;
        let index = self.opens.iter().position(Option::is_none).unwrap_or(self.opens.len());
        self.tree.sessions.charge(session, OPENS, 1)?;
        let handle = match self.endpoint.mint(index as u64 + 1, true) {
            Ok(handle) => handle,
            Err(errno) => {
                self.tree.sessions.release(session, OPENS, 1);
                return Err(errno.0);
            }
        };
        let entry = Open { node, offset: 0, flags, session };
        match self.opens.get_mut(index) {
            Some(slot) => *slot = Some(entry),
            None => self.opens.push(Some(entry)),
        }
        self.tree.count_open(node, true);
        self.tree.sessions.count_handle(session, true);
        let size = self.tree.node(node).size();
        let kind = self.tree.node(node).kind();
        Ok(Answer { message: Message::new(0, [kind, size, 0, 0]), bytes: Bytes::None, handle: Some(handle.into_raw()) })
    }

    /// `EMFILE` unless fs and `session` have room for one more open file.
    fn room_to_open(&self, session: SessionId) -> Result<(), Errno> {
        let full = self.opens.iter().all(Option::is_some) && self.opens.len() >= protocol::OPEN_MAX;
        if full || self.tree.sessions.room(session, OPENS) == 0 { Err(EMFILE) } else { Ok(()) }
    }

    /// The last handle with `badge` was closed.
    fn close(&mut self, badge: u64) {
        let Some(index) = usize::try_from(badge).ok().and_then(|badge| badge.checked_sub(1)) else { return };
        if let Some(open) = self.opens.get_mut(index).and_then(Option::take) {
            self.tree.count_open(open.node, false);
            self.tree.sessions.release(open.session, OPENS, 1);
            self.end_handle(open.session);
        }
        while self.opens.last().is_some_and(Option::is_none) {
            self.opens.pop();
        }
    }

    /// Counts a handle of `session` closed; if that ended the session, its parent takes
    /// over what it made.
    fn end_handle(&mut self, session: SessionId) {
        if let Some(parent) = self.tree.sessions.count_handle(session, false) {
            self.tree.reassign(session, parent);
        }
    }

    /// The open file `badge` names, if it was opened for writing.
    fn writable_file(&mut self, badge: u64) -> Result<(), Errno> {
        let open = self.open_entry(badge)?;
        if open.flags & open::WRITE == 0 {
            return Err(EBADF);
        }
        Ok(())
    }

    fn read(&mut self, badge: u64, wanted: u64) -> Result<Answer, Errno> {
        let node = self.node_of(badge)?;
        self.tree.file(node)?;
        let open = self.open_entry(badge)?;
        let (offset, flags) = (open.offset, open.flags);
        if flags & open::READ == 0 && flags & open::WRITE != 0 {
            return Err(EBADF);
        }
        let data = self.tree.file(node)?;
        let wanted = wanted.min(BUFFER_MAX) as usize;
        let first = data.piece(offset, wanted);
        let (bytes, count) = if first.len() == wanted || offset.saturating_add(first.len() as u64) >= data.len() {
            (Bytes::Piece { node, offset, len: first.len() }, first.len())
        } else {
            let mut count = 0;
            while count < wanted {
                let piece = data.piece(offset + count as u64, wanted - count);
                if piece.is_empty() {
                    break;
                }
                self.outgoing[count..count + piece.len()].copy_from_slice(piece);
                count += piece.len();
            }
            (Bytes::Outgoing(count), count)
        };
        if let Ok(open) = self.open_entry(badge) {
            open.offset += count as u64;
        }
        Ok(Answer { bytes, ..Answer::status(Ok(count as u64)) })
    }

    fn write(&mut self, badge: u64, bytes: &[u8]) -> Result<Answer, Errno> {
        let node = self.node_of(badge)?;
        self.tree.file(node)?;
        self.writable_file(badge)?;
        let open = self.open_entry(badge)?;
        let flags = open.flags;
        let offset = if flags & open::APPEND != 0 { self.tree.file(node)?.len() } else { open.offset };
        let count = self.tree.write(node, offset, bytes)?;
        if let Ok(open) = self.open_entry(badge) {
            open.offset = offset + count as u64;
        }
        Ok(Answer::status(Ok(count as u64)))
    }

    fn seek(&mut self, badge: u64, whence: u64, delta: i64) -> Result<Answer, Errno> {
        let open = self.open_entry(badge)?;
        let node = open.node;
        let current = open.offset;
        let length = self.tree.file(node).map_err(|_| EISDIR)?.len();
        let from = match whence {
            protocol::SEEK_SET => 0,
            protocol::SEEK_CURRENT => current,
            protocol::SEEK_END => length,
            _ => return Err(EINVAL),
        };
        let target = i64::try_from(from).ok().and_then(|from| from.checked_add(delta)).filter(|&target| target >= 0).ok_or(EINVAL)?;
        self.open_entry(badge)?.offset = target as u64;
        Ok(Answer::status(Ok(target as u64)))
    }

    fn read_dir(&mut self, node: NodeId, first: u64) -> Result<Answer, Errno> {
        let first = usize::try_from(first).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut count = 0;
        for (name, kind, size) in self.tree.list(node, first)? {
            if !protocol::encode_entry(&mut out, READDIR_BYTES, name, kind, size) {
                break;
            }
            count += 1;
        }
        self.outgoing[..out.len()].copy_from_slice(&out);
        Ok(Answer { bytes: Bytes::Outgoing(out.len()), ..Answer::status(Ok(count)) })
    }

    /// A new memory object with the file's bytes, handed over.
    fn load_image(&mut self, base: NodeId, path: &str) -> Result<Answer, Errno> {
        let node = self.tree.resolve(base, path)?;
        let data = self.tree.file(node)?;
        let length = data.len();
        let pages = length.div_ceil(abi::memory::PAGE_SIZE).max(1);
        let memory = SharedMemory::create(pages).map_err(|errno| errno.0)?;
        let address = memory.map(0, abi::PROT_READ | abi::PROT_WRITE).map_err(|errno| errno.0)?;
        let mut done = 0;
        while done < length {
            let piece = data.piece(done, BLOCK);
            // SAFETY: the mapping is `pages` pages long and writable, made just now for this
            // copy; `piece` ends at or before `length`, inside it.
            unsafe { core::ptr::copy_nonoverlapping(piece.as_ptr(), (address + done) as *mut u8, piece.len()) };
            done += piece.len() as u64;
        }
        // SAFETY: nothing refers to the mapping any more.
        unsafe { userlib::sys::munmap(address, pages * abi::memory::PAGE_SIZE) }.map_err(|errno| errno.0)?;
        Ok(Answer { message: Message::new(0, [length, 0, 0, 0]), bytes: Bytes::None, handle: Some(memory.into_raw()) })
    }
}
