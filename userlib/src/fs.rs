//! Files as programs see them: the `fs` server's protocol and a client for it.
//!
//! `fs` (see `userspace/src/bin/fs/`) keeps a RAM file system filled from the boot ramdisk.
//! Every directory or file a program has open is a handle to one of fs's endpoints, minted
//! with a badge that names the open directory or file to fs. `read` and `write` on an open
//! file are the kernel's stream calls (`abi::stream`); everything else is a call this module
//! makes.
//!
//! **The current directory** is a directory handle: handle [`CWD_HANDLE`] when a program
//! starts (its parent passes its own, see `process::standard_handles`), later whatever
//! [`set_current_dir`] opened. Paths are resolved by fs relative to the directory handle the
//! request is sent to, so a relative path starts at the current directory and an absolute
//! one at the root. A program started without a directory handle uses the root, which the
//! name service knows as [`SERVICE`].
//!
//! **Requests on a directory handle** (the path is the message's bytes, UTF-8, without NUL
//! bytes; the reply label is 0 or `-errno` unless said otherwise):
//!
//! | label | words | reply |
//! |---|---|---|
//! | [`OPEN`] | `[flags]` ([`open`] bits) | words `[kind, size]`, the open file's or directory's handle |
//! | [`MKDIR`], [`RMDIR`], [`UNLINK`] | | |
//! | [`RENAME`] | | (the bytes are `OLD`, a NUL byte, `NEW`) |
//! | [`STAT`] | | words `[kind, size, node]` |
//! | [`LOAD_IMAGE`] | | words `[size]`, a memory handle holding the file's bytes (for `spawn`) |
//! | [`STATFS`] | | words `[bytes used, capacity, nodes used, open files]` |
//! | [`SESSION`] | `[open files, nodes, bytes]` | the directory's handle in a new session |
//!
//! **Requests on an open file or directory**: `abi::stream::READ` and `WRITE`; [`SEEK`]
//! (`[whence, offset]`, the label is the new offset); [`TRUNCATE`] (`[length]`); [`FSTAT`]
//! (like `STAT`); [`READDIR`] (`[first index]`: the label is how many entries the bytes
//! hold, 0 at the end; each is a kind byte, the size as 8 bytes, the name's length as 2
//! bytes, then the name); [`GETPATH`] (a directory's absolute path as the bytes). A
//! directory also takes every request on a directory handle, relative to itself.
//!
//! **Limits** (each ends in its error, never in a crash of fs): names of at most
//! [`NAME_MAX`] bytes and paths of at most [`PATH_MAX`] (`ENAMETOOLONG`), [`CAPACITY`] bytes
//! of file data in all (`ENOSPC`), files of at most [`FILE_MAX`] bytes (`EFBIG`),
//! [`NODES_MAX`] files and directories (`ENOSPC`), [`OPEN_MAX`] open files (`EMFILE`).
//! Only `/tmp` and what is below it may be changed (`EROFS` elsewhere); a file that may not
//! be changed cannot be opened to write, append or truncate (`EROFS` at open).
//!
//! **Sessions.** Whatever a handle opens or makes is charged to its *session*, and a session
//! holds at most its limits of open files (`EMFILE`), files and directories made and bytes
//! of file data (`ENOSPC`), counted together with every session below it. `init` holds the
//! root (fs's own limits) and starts a session with [`SESSION_LIMITS`] for the shell (or
//! the `--init` program) and another behind the name [`SERVICE`], so looking the root up
//! gives no fresh quota; the shell starts one with [`JOB_LIMITS`] for each program it
//! runs (its current directory, handle [`CWD_HANDLE`]). Any program may start sessions
//! below its own ([`File::new_session`]) for what it starts. A session lasts while a handle
//! opened through it is open; what it made is then its parent's. Bytes are charged to the
//! session that made the file, whoever writes them.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::errno::{EINVAL, ENAMETOOLONG};
use abi::handle::Kind;

use crate::ipc::{Endpoint, Message, OwnedHandle, SharedMemory, Transfer, handle_info};
use crate::sys::{self, Errno, Result};

/// The name fs's root directory is registered under with the name service.
pub const SERVICE: &str = "fs";
/// The handle number of the current directory when a program starts.
pub const CWD_HANDLE: u64 = 4;

/// Opens a path: words `[flags]`.
pub const OPEN: u64 = 1;
/// Makes a directory.
pub const MKDIR: u64 = 2;
/// Removes an empty directory.
pub const RMDIR: u64 = 3;
/// Removes a file's name (an open file lives on until it is closed).
pub const UNLINK: u64 = 4;
/// Renames: the bytes are `OLD\0NEW`.
pub const RENAME: u64 = 5;
/// Describes a path.
pub const STAT: u64 = 6;
/// A memory object holding a file's bytes, to `spawn` it.
pub const LOAD_IMAGE: u64 = 7;
/// Describes the file system.
pub const STATFS: u64 = 8;
/// Moves an open file's offset: words `[whence, offset]`.
pub const SEEK: u64 = 9;
/// Sets an open file's length: words `[length]`.
pub const TRUNCATE: u64 = 10;
/// Describes an open file.
pub const FSTAT: u64 = 11;
/// Lists an open directory: words `[first index]`.
pub const READDIR: u64 = 12;
/// An open directory's absolute path.
pub const GETPATH: u64 = 13;
/// A new session below the directory handle's, with limits `[open files, nodes, bytes]`
/// (0: as the parent's); the reply carries a handle to the same directory in that session.
pub const SESSION: u64 = 14;

/// The bits of `OPEN`'s flags.
pub mod open {
    /// Open for reading.
    pub const READ: u64 = 1 << 0;
    /// Open for writing.
    pub const WRITE: u64 = 1 << 1;
    /// Create the file if it does not exist.
    pub const CREATE: u64 = 1 << 2;
    /// Cut the file to length 0.
    pub const TRUNCATE: u64 = 1 << 3;
    /// Every write goes to the end.
    pub const APPEND: u64 = 1 << 4;
    /// With `CREATE`: fail with `EEXIST` if it exists.
    pub const EXCLUSIVE: u64 = 1 << 5;
    /// Fail with `ENOTDIR` unless it is a directory.
    pub const DIRECTORY: u64 = 1 << 6;
    /// Every bit `OPEN` knows.
    pub const ALL: u64 = (1 << 7) - 1;
}

/// `SEEK`'s `whence`: from the start.
pub const SEEK_SET: u64 = 0;
/// `SEEK`'s `whence`: from the current offset.
pub const SEEK_CURRENT: u64 = 1;
/// `SEEK`'s `whence`: from the end.
pub const SEEK_END: u64 = 2;

/// The kind of a regular file.
pub const KIND_FILE: u64 = 1;
/// The kind of a directory.
pub const KIND_DIRECTORY: u64 = 2;

/// Longest name of one file or directory, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest path a request may carry, in bytes.
pub const PATH_MAX: usize = 1024;
/// Most bytes of file data fs holds in all (files from the ramdisk do not count until they
/// are changed).
pub const CAPACITY: u64 = 8 * 1024 * 1024;
/// Longest file, in bytes.
pub const FILE_MAX: u64 = CAPACITY;
/// Most files and directories.
pub const NODES_MAX: usize = 4096;
/// Most open files and directories at once.
pub const OPEN_MAX: usize = 1024;
/// The journal `init` creates once and hands to every fs it starts, in which fs records the
/// changes to `/tmp` so that a restarted fs keeps them: two memory objects (fs's handles 5
/// and 6), a header of this many bytes and a region, then a second region.
pub const JOURNAL_HEADER: u64 = 4096;
/// Bytes of each region of the journal: room for a snapshot of a full `/tmp` (all of
/// [`CAPACITY`], and [`NODES_MAX`] nodes with long names) and a log after it.
pub const JOURNAL_REGION: u64 = 10 * 1024 * 1024;
/// Most sessions live at once (`EMFILE`).
pub const SESSIONS_MAX: usize = 256;
/// The limits `[open files, nodes, bytes]` of the sessions `init` starts: one for the shell
/// or the `--init` program, one behind the name `fs`.
pub const SESSION_LIMITS: [u64; 3] = [OPEN_MAX as u64 * 3 / 4, NODES_MAX as u64 * 3 / 4, CAPACITY * 3 / 4];
/// The limits of the session the shell starts for each program it runs.
pub const JOB_LIMITS: [u64; 3] = [OPEN_MAX as u64 / 2, NODES_MAX as u64 / 2, CAPACITY / 2];

/// A reply label as a result: 0 or a count (an offset, a number of entries), or `-errno`.
pub fn status(label: u64) -> Result<u64> {
    abi::stream::reply_result(label, i64::MAX as u64).map_err(Errno)
}

/// What a directory entry or `stat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// [`KIND_FILE`] or [`KIND_DIRECTORY`].
    pub kind: u64,
    /// Bytes, for a file; entries, for a directory.
    pub size: u64,
    /// fs's number for the file (the same for every name and handle of it).
    pub node: u64,
}

impl Metadata {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == KIND_DIRECTORY
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name.
    pub name: String,
    /// [`KIND_FILE`] or [`KIND_DIRECTORY`].
    pub kind: u64,
    /// Bytes, for a file; entries, for a directory.
    pub size: u64,
}

/// Decodes `READDIR`'s bytes: `count` entries (fewer if the bytes end early or are not UTF-8).
pub fn decode_entries(bytes: &[u8], count: usize) -> Vec<DirEntry> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while entries.len() < count && rest.len() >= 11 {
        let kind = u64::from(rest[0]);
        let size = u64::from_le_bytes(rest[1..9].try_into().unwrap_or_default());
        let len = usize::from(u16::from_le_bytes([rest[9], rest[10]]));
        let Some(name) = rest.get(11..11 + len).and_then(|name| core::str::from_utf8(name).ok()) else { break };
        entries.push(DirEntry { name: String::from(name), kind, size });
        rest = &rest[11 + len..];
    }
    entries
}

/// Encodes one `READDIR` entry into `out`; false (and nothing written) if it does not fit.
pub fn encode_entry(out: &mut Vec<u8>, room: usize, name: &str, kind: u64, size: u64) -> bool {
    let len = 11 + name.len();
    if out.len() + len > room || name.len() > usize::from(u16::MAX) {
        return false;
    }
    out.push(kind as u8);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    true
}

/// The current directory's handle number (see the module documentation).
static CURRENT_DIR: AtomicU64 = AtomicU64::new(CWD_HANDLE);
/// The root's handle from the name service, once looked up (`NO_HANDLE` before).
static ROOT: AtomicU64 = AtomicU64::new(abi::handle::NO_HANDLE);

fn is_endpoint(handle: u64) -> bool {
    matches!(handle_info(handle), Ok((Some(Kind::Endpoint), _)))
}

/// The handle path requests go to: the current directory, else the root from the name
/// service.
pub fn directory_handle() -> Result<u64> {
    let current = CURRENT_DIR.load(Ordering::Relaxed);
    if is_endpoint(current) {
        return Ok(current);
    }
    let root = ROOT.load(Ordering::Relaxed);
    if is_endpoint(root) {
        return Ok(root);
    }
    let root = crate::names::lookup(SERVICE)?.into_raw();
    ROOT.store(root, Ordering::Relaxed);
    Ok(root)
}

/// Calls `handle` with `label`, `words` and `bytes`; the reply's label (checked) and words,
/// with the reply's bytes in `room` and its handles.
fn request(
    handle: u64,
    label: u64,
    words: [u64; 4],
    bytes: &[u8],
    room: Option<&mut [u8]>,
) -> Result<(u64, [u64; 4], crate::ipc::Arrived)> {
    let endpoint = Endpoint::from_raw(handle);
    let mut transfer = Transfer { send: bytes, receive: room, ..Transfer::default() };
    let result = endpoint.call_with(&Message::new(label, words), &mut transfer, abi::ipc::FOREVER);
    // The handle belongs to its owner, not to this call.
    endpoint.into_raw();
    let (reply, arrived) = result?;
    // A handle that came with an error is not wanted.
    let value = status(reply.label).inspect_err(|_| {
        for &extra in arrived.handles() {
            let _ = crate::ipc::close(u64::from(extra));
        }
    })?;
    Ok((value, reply.words, arrived))
}

/// Checks a path's length before it is sent.
fn checked(path: &str) -> Result<&[u8]> {
    if path.len() > PATH_MAX { Err(Errno(ENAMETOOLONG)) } else { Ok(path.as_bytes()) }
}

/// A path request to the current directory.
fn path_request(label: u64, path: &str, words: [u64; 4]) -> Result<(u64, [u64; 4], crate::ipc::Arrived)> {
    request(directory_handle()?, label, words, checked(path)?, None)
}

/// The one handle a reply must carry.
fn one_handle(arrived: &crate::ipc::Arrived) -> Result<u64> {
    match arrived.handles() {
        [handle] => Ok(u64::from(*handle)),
        extra => {
            for &handle in extra {
                let _ = crate::ipc::close(u64::from(handle));
            }
            Err(Errno(EINVAL))
        }
    }
}

/// An open file or directory of fs; closed when dropped.
#[derive(Debug)]
pub struct File(OwnedHandle);

impl File {
    /// Opens `path` with `flags` ([`open`] bits).
    pub fn open_with(path: &str, flags: u64) -> Result<Self> {
        let (_, _, arrived) = path_request(OPEN, path, [flags, 0, 0, 0])?;
        Ok(Self(OwnedHandle::from_raw(one_handle(&arrived)?)))
    }

    /// Opens `path` for reading.
    pub fn open(path: &str) -> Result<Self> {
        Self::open_with(path, open::READ)
    }

    /// Opens `path` for writing, creating it or cutting it to length 0.
    pub fn create(path: &str) -> Result<Self> {
        Self::open_with(path, open::WRITE | open::CREATE | open::TRUNCATE)
    }

    /// Takes over handle `number`.
    pub fn from_raw(number: u64) -> Self {
        Self(OwnedHandle::from_raw(number))
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedHandle {
        &self.0
    }

    /// Gives the handle up without closing it.
    pub fn into_raw(self) -> u64 {
        self.0.into_raw()
    }

    /// Reads into `buffer` at the current offset: the count, 0 at the end.
    pub fn read(&self, buffer: &mut [u8]) -> Result<usize> {
        sys::read(self.0.raw(), buffer)
    }

    /// Writes `bytes` at the current offset (the end, when opened to append).
    pub fn write(&self, bytes: &[u8]) -> Result<usize> {
        sys::write(self.0.raw(), bytes)
    }

    /// Writes all of `bytes`, or fails.
    pub fn write_all(&self, bytes: &[u8]) -> Result<()> {
        write_all(self.0.raw(), bytes)
    }

    /// Reads from the current offset to the end.
    pub fn read_to_end(&self) -> Result<Vec<u8>> {
        read_to_end(self.0.raw())
    }

    /// Moves the offset (`whence` is [`SEEK_SET`], [`SEEK_CURRENT`] or [`SEEK_END`]);
    /// returns the new one.
    pub fn seek(&self, whence: u64, offset: i64) -> Result<u64> {
        request(self.0.raw(), SEEK, [whence, offset as u64, 0, 0], &[], None).map(|(offset, _, _)| offset)
    }

    /// Sets the length (cutting, or filling with zeros).
    pub fn truncate(&self, length: u64) -> Result<()> {
        request(self.0.raw(), TRUNCATE, [length, 0, 0, 0], &[], None).map(|_| ())
    }

    /// What the file is.
    pub fn metadata(&self) -> Result<Metadata> {
        let (_, words, _) = request(self.0.raw(), FSTAT, [0; 4], &[], None)?;
        Ok(Metadata { kind: words[0], size: words[1], node: words[2] })
    }

    /// Every entry of an open directory, in name order.
    pub fn entries(&self) -> Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        let mut room = vec![0u8; 4096];
        loop {
            let (count, _, arrived) = request(self.0.raw(), READDIR, [entries.len() as u64, 0, 0, 0], &[], Some(&mut room))?;
            if count == 0 {
                return Ok(entries);
            }
            entries.extend(decode_entries(&room[..arrived.len.min(room.len())], count as usize));
        }
    }

    /// Opens `path` relative to this open directory with `flags`.
    pub fn open_at(&self, path: &str, flags: u64) -> Result<Self> {
        let (_, _, arrived) = request(self.0.raw(), OPEN, [flags, 0, 0, 0], checked(path)?, None)?;
        Ok(Self(OwnedHandle::from_raw(one_handle(&arrived)?)))
    }

    /// Makes the directory `path` relative to this open directory.
    pub fn mkdir_at(&self, path: &str) -> Result<()> {
        request(self.0.raw(), MKDIR, [0; 4], checked(path)?, None).map(|_| ())
    }

    /// Removes the empty directory `path` relative to this open directory.
    pub fn rmdir_at(&self, path: &str) -> Result<()> {
        request(self.0.raw(), RMDIR, [0; 4], checked(path)?, None).map(|_| ())
    }

    /// A new session below this directory handle's, with `limits` (`[open files, nodes,
    /// bytes]`, 0 for the parent's): a handle to the same directory through which what is
    /// opened and made is charged to the new session.
    pub fn new_session(&self, limits: [u64; 3]) -> Result<Self> {
        let (_, _, arrived) = request(self.0.raw(), SESSION, [limits[0], limits[1], limits[2], 0], &[], None)?;
        Ok(Self(OwnedHandle::from_raw(one_handle(&arrived)?)))
    }

    /// An open directory's absolute path; `ENAMETOOLONG` if it is longer than [`PATH_MAX`]
    /// (never a part of it).
    pub fn path(&self) -> Result<String> {
        let mut room = vec![0u8; PATH_MAX];
        let (_, _, arrived) = request(self.0.raw(), GETPATH, [0; 4], &[], Some(&mut room))?;
        if arrived.len > PATH_MAX {
            return Err(Errno(ENAMETOOLONG));
        }
        room.truncate(arrived.len);
        String::from_utf8(room).map_err(|_| Errno(EINVAL))
    }
}

/// Writes all of `bytes` to the stream handle `handle`, or fails.
pub fn write_all(handle: u64, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match sys::write(handle, bytes)? {
            0 => return Err(Errno(abi::errno::EIO)),
            written => bytes = &bytes[written.min(bytes.len())..],
        }
    }
    Ok(())
}

/// Reads the stream handle `handle` to its end.
pub fn read_to_end(handle: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        match sys::read(handle, &mut chunk)? {
            0 => return Ok(bytes),
            count => bytes.extend_from_slice(&chunk[..count.min(chunk.len())]),
        }
    }
}

/// The whole of the file at `path`.
pub fn read(path: &str) -> Result<Vec<u8>> {
    File::open(path)?.read_to_end()
}

/// Makes the file at `path` hold `bytes` (creating it).
pub fn write(path: &str, bytes: &[u8]) -> Result<()> {
    File::create(path)?.write_all(bytes)
}

/// Where `cp FROM TO` and `mv FROM TO` put FROM: `TO`, or FROM's last component inside it
/// if `TO` is a directory.
pub fn into_directory(from: &str, to: &str) -> String {
    match metadata(to) {
        Ok(found) if found.is_dir() => {
            let name = from.trim_end_matches('/').rsplit('/').next().unwrap_or(from);
            alloc::format!("{}/{name}", to.trim_end_matches('/'))
        }
        _ => String::from(to),
    }
}

/// Makes a directory.
pub fn mkdir(path: &str) -> Result<()> {
    path_request(MKDIR, path, [0; 4]).map(|_| ())
}

/// Removes an empty directory.
pub fn rmdir(path: &str) -> Result<()> {
    path_request(RMDIR, path, [0; 4]).map(|_| ())
}

/// Removes a file's name.
pub fn unlink(path: &str) -> Result<()> {
    path_request(UNLINK, path, [0; 4]).map(|_| ())
}

/// Renames `from` to `to` (replacing a file, or an empty directory, of the same kind).
pub fn rename(from: &str, to: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(from.len() + 1 + to.len());
    bytes.extend_from_slice(from.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(to.as_bytes());
    if from.len() > PATH_MAX || to.len() > PATH_MAX {
        return Err(Errno(ENAMETOOLONG));
    }
    request(directory_handle()?, RENAME, [0; 4], &bytes, None).map(|_| ())
}

/// What `path` is.
pub fn metadata(path: &str) -> Result<Metadata> {
    let (_, words, _) = path_request(STAT, path, [0; 4])?;
    Ok(Metadata { kind: words[0], size: words[1], node: words[2] })
}

/// The entries of the directory at `path`, in name order.
pub fn read_dir(path: &str) -> Result<Vec<DirEntry>> {
    File::open_with(path, open::DIRECTORY)?.entries()
}

/// A memory object holding the bytes of the file at `path` (to `spawn` it), and its size.
pub fn load_image(path: &str) -> Result<(SharedMemory, u64)> {
    let (_, words, arrived) = path_request(LOAD_IMAGE, path, [0; 4])?;
    Ok((SharedMemory::from_raw(one_handle(&arrived)?), words[0]))
}

/// What `STATFS` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsInfo {
    /// Bytes of file data held.
    pub used: u64,
    /// The most it may hold ([`CAPACITY`]).
    pub capacity: u64,
    /// Files and directories.
    pub nodes: u64,
    /// Open files and directories.
    pub open_files: u64,
}

/// How full the file system is.
pub fn statfs() -> Result<FsInfo> {
    let (_, words, _) = path_request(STATFS, "", [0; 4])?;
    Ok(FsInfo { used: words[0], capacity: words[1], nodes: words[2], open_files: words[3] })
}

/// The current directory's handle number (for passing it on at `spawn`), if there is one.
pub fn current_dir_handle() -> Option<u64> {
    let current = CURRENT_DIR.load(Ordering::Relaxed);
    is_endpoint(current).then_some(current)
}

/// Makes the open directory `handle` the current one (for a program that was given it
/// elsewhere than [`CWD_HANDLE`], such as `init`); the previous one is not closed.
pub fn use_current_dir_handle(handle: u64) {
    CURRENT_DIR.store(handle, Ordering::Relaxed);
}

/// Makes the directory at `path` the current one.
pub fn set_current_dir(path: &str) -> Result<()> {
    let directory = File::open_with(path, open::DIRECTORY)?.into_raw();
    let previous = CURRENT_DIR.swap(directory, Ordering::Relaxed);
    if previous != directory && is_endpoint(previous) {
        let _ = crate::ipc::close(previous);
    }
    Ok(())
}

/// The current directory's absolute path.
pub fn current_dir() -> Result<String> {
    let directory = File::from_raw(directory_handle()?);
    let path = directory.path();
    directory.into_raw();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_entries_round_trip() {
        let mut bytes = Vec::new();
        assert!(encode_entry(&mut bytes, 100, "motd", KIND_FILE, 42));
        assert!(encode_entry(&mut bytes, 100, "bin", KIND_DIRECTORY, 30));
        assert!(!encode_entry(&mut bytes, 30, "too-long-for-the-room", KIND_FILE, 0));
        let entries = decode_entries(&bytes, 5);
        assert_eq!(entries, [
            DirEntry { name: String::from("motd"), kind: KIND_FILE, size: 42 },
            DirEntry { name: String::from("bin"), kind: KIND_DIRECTORY, size: 30 },
        ]);
        assert_eq!(decode_entries(&bytes[..bytes.len() - 1], 5).len(), 1);
    }
}
