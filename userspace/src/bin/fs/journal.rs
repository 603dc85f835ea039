//! The journal: every change to `/tmp`, kept in a memory object that `init` creates once
//! and hands to each fs it starts, so that a new fs replays what the last one did and
//! `/tmp` survives a crash or a restart of fs.
//!
//! Layout: a header page, then two regions of [`REGION`] bytes (in two memory objects, the
//! header and the first region in one, as no object may be larger than 16 MiB). The header holds which
//! region is active and how many bytes of each are committed. A change is appended as a
//! record after the active region's committed bytes, and only then is the committed length
//! moved past it, by one aligned 8-byte store; a record cut short by a crash lies past the
//! committed length and is never read. When the active region is full, fs writes a
//! snapshot of `/tmp` (records that rebuild it) into the other region and then makes that
//! one active, again by one store, so a crash in the middle of a snapshot leaves the old
//! region in force. A crash can lose only the change being recorded when it happened.
//!
//! Records name nodes by their number in the tree, which replaying reproduces: the tree is
//! first filled from the ramdisk exactly as before (`/tmp` empty), and every record that
//! makes a node says which number it had.

use core::sync::atomic::{AtomicU64, Ordering};

use userlib::ipc::SharedMemory;

/// The header page.
const HEADER: usize = userlib::fs::JOURNAL_HEADER as usize;
/// Bytes of each of the two regions.
const REGION: usize = userlib::fs::JOURNAL_REGION as usize;

/// Record tags.
const MAKE: u8 = 1;
const REMOVE: u8 = 2;
const RENAME: u8 = 3;
const WRITE: u8 = 4;
const SET_LEN: u8 = 5;

/// One change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Node `id` was made in the directory `parent` as `name`.
    Make { id: u32, parent: u32, directory: bool, name: &'a str },
    /// The entry `name` of `parent` was removed.
    Remove { parent: u32, name: &'a str },
    /// The entry `from_name` of `from` became `to_name` of `to`, replacing what was there.
    Rename { from: u32, from_name: &'a str, to: u32, to_name: &'a str },
    /// `bytes` were written at `offset` of the file `id`.
    Write { id: u32, offset: u64, bytes: &'a [u8] },
    /// The file `id` was made `length` bytes long.
    SetLen { id: u32, length: u64 },
}

impl Record<'_> {
    /// Appends the encoding to `out` at `at`: the new end, or `None` if it does not fit.
    fn encode(&self, out: &mut [u8], at: usize) -> Option<usize> {
        let mut writer = Writer { out, at };
        writer.put(&[0; 4])?;
        match *self {
            Record::Make { id, parent, directory, name } => {
                writer.put(&[MAKE, u8::from(directory)])?;
                writer.put(&id.to_le_bytes())?;
                writer.put(&parent.to_le_bytes())?;
                writer.bytes(name.as_bytes())?;
            }
            Record::Remove { parent, name } => {
                writer.put(&[REMOVE])?;
                writer.put(&parent.to_le_bytes())?;
                writer.bytes(name.as_bytes())?;
            }
            Record::Rename { from, from_name, to, to_name } => {
                writer.put(&[RENAME])?;
                writer.put(&from.to_le_bytes())?;
                writer.bytes(from_name.as_bytes())?;
                writer.put(&to.to_le_bytes())?;
                writer.bytes(to_name.as_bytes())?;
            }
            Record::Write { id, offset, bytes } => {
                writer.put(&[WRITE])?;
                writer.put(&id.to_le_bytes())?;
                writer.put(&offset.to_le_bytes())?;
                writer.bytes(bytes)?;
            }
            Record::SetLen { id, length } => {
                writer.put(&[SET_LEN])?;
                writer.put(&id.to_le_bytes())?;
                writer.put(&length.to_le_bytes())?;
            }
        }
        let length = u32::try_from(writer.at - at).ok()?;
        writer.out[at..at + 4].copy_from_slice(&length.to_le_bytes());
        Some(writer.at)
    }

    /// The record at the start of `bytes` and its length, or `None` for a malformed one.
    fn decode(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
        let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let mut reader = Reader { bytes: bytes.get(4..length)? };
        let record = match reader.byte()? {
            MAKE => {
                let directory = reader.byte()? != 0;
                let (id, parent) = (reader.u32()?, reader.u32()?);
                Record::Make { id, parent, directory, name: reader.text()? }
            }
            REMOVE => Record::Remove { parent: reader.u32()?, name: reader.text()? },
            RENAME => {
                let (from, from_name) = (reader.u32()?, reader.text()?);
                Record::Rename { from, from_name, to: reader.u32()?, to_name: reader.text()? }
            }
            WRITE => Record::Write { id: reader.u32()?, offset: reader.u64()?, bytes: reader.bytes()? },
            SET_LEN => Record::SetLen { id: reader.u32()?, length: reader.u64()? },
            _ => return None,
        };
        Some((record, length))
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.out.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }

    fn bytes(&mut self, bytes: &[u8]) -> Option<()> {
        self.put(&u32::try_from(bytes.len()).ok()?.to_le_bytes())?;
        self.put(bytes)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.bytes.split_at_checked(count)?;
        self.bytes = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let count = self.u32()? as usize;
        self.take(count)
    }

    fn text(&mut self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes()?).ok()
    }
}

/// The journal, mapped.
#[derive(Debug)]
pub struct Journal {
    header: &'static mut [u8],
    regions: [&'static mut [u8]; 2],
    /// Where a snapshot being written has got to, in the inactive region.
    snapshot_end: usize,
}

/// The header's words: the active region, and each region's committed length.
const ACTIVE: usize = 0;
const COMMITTED: [usize; 2] = [1, 2];

/// Maps the memory object `handle` (closed once mapped), which must hold `size` bytes: them,
/// or `None` after saying why.
fn map(handle: u64, size: usize) -> Option<&'static mut [u8]> {
    let memory = SharedMemory::from_raw(handle);
    let found = memory.size().ok()?;
    if found < size as u64 {
        userlib::eprintln!("fs: a journal object is {found} bytes, {size} needed");
        return None;
    }
    let address = memory.map(0, abi::PROT_READ | abi::PROT_WRITE).ok()?;
    // SAFETY: the object is mapped at `address` for at least `size` bytes, readable and
    // writable, for as long as fs runs (it is never unmapped); only this fs maps it (init,
    // which holds the handle, never does), and this is the only reference made to it.
    Some(unsafe { core::slice::from_raw_parts_mut(address as *mut u8, size) })
}

impl Journal {
    /// Maps the two memory objects `first` (the header and the first region) and `second`:
    /// `None` if there are none or they cannot be mapped.
    pub fn map(first: u64, second: u64) -> Option<Self> {
        let (header, first) = map(first, HEADER + REGION)?.split_at_mut(HEADER);
        let second = map(second, REGION)?;
        Some(Self { header, regions: [first, second], snapshot_end: 0 })
    }

    /// The header word `index`.
    fn word(&self, index: usize) -> &AtomicU64 {
        let pointer = self.header[index * 8..].as_ptr() as *mut u64;
        // SAFETY: the header is the start of a page-aligned mapping, so the 8 bytes at
        // `index * 8` are aligned and inside it; they are only ever accessed through this
        // atomic view.
        unsafe { AtomicU64::from_ptr(pointer) }
    }

    fn active(&self) -> usize {
        (self.word(ACTIVE).load(Ordering::Acquire) & 1) as usize
    }

    fn region(&mut self, which: usize) -> &mut [u8] {
        self.regions[which]
    }

    /// The committed records of the active region, in order; stops at a malformed one.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let active = self.active();
        let committed = (self.word(COMMITTED[active]).load(Ordering::Acquire) as usize).min(REGION);
        let mut bytes = &self.regions[active][..committed];
        core::iter::from_fn(move || {
            let (record, length) = Record::decode(bytes)?;
            bytes = &bytes[length..];
            Some(record)
        })
    }

    /// Appends `record` to the active region; `false` if it is full.
    pub fn append(&mut self, record: &Record) -> bool {
        let active = self.active();
        let committed = (self.word(COMMITTED[active]).load(Ordering::Acquire) as usize).min(REGION);
        let Some(end) = record.encode(self.region(active), committed) else { return false };
        self.word(COMMITTED[active]).store(end as u64, Ordering::Release);
        true
    }

    /// Starts a snapshot in the inactive region (which nothing reads until it is made
    /// active).
    pub fn begin_snapshot(&mut self) {
        self.snapshot_end = 0;
    }

    /// Adds `record` to the snapshot; `false` if it does not fit.
    pub fn snapshot(&mut self, record: &Record) -> bool {
        let inactive = 1 - self.active();
        let at = self.snapshot_end;
        match record.encode(self.region(inactive), at) {
            Some(end) => {
                self.snapshot_end = end;
                true
            }
            None => false,
        }
    }

    /// Makes the snapshot the active region.
    pub fn commit_snapshot(&mut self) {
        let inactive = 1 - self.active();
        self.word(COMMITTED[inactive]).store(self.snapshot_end as u64, Ordering::Release);
        self.word(ACTIVE).store(inactive as u64, Ordering::Release);
    }
}
