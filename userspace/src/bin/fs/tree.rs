//! The file system itself: a tree of nodes (directories and files) in a slab, paths resolved
//! from a starting directory, file data in 4 KiB blocks (or, for a file from the ramdisk,
//! the ramdisk's own bytes until it is changed), and the limits of `userlib::fs`.
//!
//! Nothing here trusts a request: every length and offset is checked (with checked
//! arithmetic), every block allocation can fail with `ENOMEM` instead of aborting, and every
//! error is an errno for the caller.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::*;
use userlib::fs::{CAPACITY, FILE_MAX, KIND_DIRECTORY, KIND_FILE, NAME_MAX, NODES_MAX};

use crate::journal::{Journal, Record};
use crate::sessions::{BYTES, NODES, ROOT_SESSION, SessionId, Sessions};

/// A node's number: its place in the slab.
pub type NodeId = usize;

/// The root directory's node.
pub const ROOT: NodeId = 0;

/// Bytes in a block of file data.
pub const BLOCK: usize = 4096;

/// An errno.
pub type Errno = i64;

/// A file's bytes.
#[derive(Debug, Default)]
pub struct FileData {
    /// The ramdisk's bytes, for a file from the ramdisk not changed since.
    ramdisk: Option<&'static [u8]>,
    /// Otherwise its blocks: block `i` holds bytes `i * BLOCK ..`; all blocks up to the
    /// length exist (zeros where nothing was written).
    blocks: Vec<Box<[u8]>>,
    len: u64,
}

impl FileData {
    /// Its length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The bytes at `offset`, at most `wanted` of them and never across a block boundary
    /// (empty at or past the end).
    pub fn piece(&self, offset: u64, wanted: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let available = (self.len - offset).min(wanted as u64) as usize;
        match self.ramdisk {
            Some(bytes) => &bytes[offset as usize..offset as usize + available],
            None => {
                let block = &self.blocks[(offset / BLOCK as u64) as usize];
                let start = (offset % BLOCK as u64) as usize;
                &block[start..start + available.min(BLOCK - start)]
            }
        }
    }
}

/// What a node is.
#[derive(Debug)]
pub enum Content {
    /// A file.
    File(FileData),
    /// A directory: its entries by name.
    Directory(BTreeMap<String, NodeId>),
}

/// A file or directory.
#[derive(Debug)]
pub struct Node {
    /// The directory it is in (the root is its own parent); stale once unlinked.
    parent: NodeId,
    /// Its name there.
    name: String,
    /// What it holds.
    content: Content,
    /// Whether a directory still names it.
    linked: bool,
    /// Open handles to it (badges fs gave out).
    opens: usize,
    /// Whether it may be changed (`/tmp` and what is made below it).
    writable: bool,
    /// The session it and its blocks are charged to.
    owner: SessionId,
}

impl Node {
    /// `KIND_FILE` or `KIND_DIRECTORY`.
    pub fn kind(&self) -> u64 {
        match self.content {
            Content::File(_) => KIND_FILE,
            Content::Directory(_) => KIND_DIRECTORY,
        }
    }

    /// Whether it may be changed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// A file's length, or a directory's number of entries.
    pub fn size(&self) -> u64 {
        match &self.content {
            Content::File(data) => data.len,
            Content::Directory(entries) => entries.len() as u64,
        }
    }
}

/// The whole tree.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Option<Node>>,
    /// Nodes in use.
    count: usize,
    /// Blocks of file data held (ramdisk files hold none).
    blocks: usize,
    /// Who pays for what.
    pub sessions: Sessions,
    /// Where changes to what may be changed are recorded, once attached.
    journal: Option<Journal>,
}

/// A path's last component and the directory it is in.
struct Parent<'a> {
    directory: NodeId,
    name: &'a str,
}

impl Tree {
    /// A tree holding only the root (read-only) and `/tmp` (writable).
    pub fn new() -> Self {
        let root = Node {
            parent: ROOT,
            name: String::new(),
            content: Content::Directory(BTreeMap::new()),
            linked: true,
            opens: 0,
            writable: false,
            owner: ROOT_SESSION,
        };
        let mut sessions = Sessions::new();
        // The root session has room for every node there can be.
        let _ = sessions.charge(ROOT_SESSION, NODES, 1);
        let mut tree = Self { nodes: alloc::vec![Some(root)], count: 1, blocks: 0, sessions, journal: None };
        // A fresh tree has room for far more than two nodes, so this cannot fail.
        let _ = tree.make(ROOT, "tmp", Content::Directory(BTreeMap::new()), true, ROOT_SESSION);
        tree
    }

    /// The node `id`, which must exist.
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[id].as_ref().expect("a live node")
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes[id].as_mut().expect("a live node")
    }

    /// Bytes of file data held.
    pub fn used(&self) -> u64 {
        (self.blocks * BLOCK) as u64
    }

    /// Nodes in use.
    pub fn node_count(&self) -> usize {
        self.count
    }

    fn entries(&self, directory: NodeId) -> Result<&BTreeMap<String, NodeId>, Errno> {
        match &self.node(directory).content {
            Content::Directory(entries) => Ok(entries),
            Content::File(_) => Err(ENOTDIR),
        }
    }

    fn entries_mut(&mut self, directory: NodeId) -> &mut BTreeMap<String, NodeId> {
        match &mut self.node_mut(directory).content {
            Content::Directory(entries) => entries,
            Content::File(_) => unreachable!("checked to be a directory"),
        }
    }

    /// Adds a node named `name` in `directory`, charged to `owner`: its id, or `ENOSPC` when
    /// the tree or the session is full.
    fn make(&mut self, directory: NodeId, name: &str, content: Content, writable: bool, owner: SessionId) -> Result<NodeId, Errno> {
        if self.count >= NODES_MAX {
            return Err(ENOSPC);
        }
        let id = self.nodes.iter().position(Option::is_none).unwrap_or(self.nodes.len());
        self.insert(id, directory, name, content, writable, owner)?;
        if writable {
            let directory_made = matches!(self.node(id).content, Content::Directory(_));
            self.log(&Record::Make { id: id as u32, parent: directory as u32, directory: directory_made, name });
        }
        Ok(id)
    }

    /// Puts a new node at `id` (a free slot, or the next one), charged to `owner`.
    fn insert(&mut self, id: NodeId, directory: NodeId, name: &str, content: Content, writable: bool, owner: SessionId) -> Result<(), Errno> {
        if self.nodes.get(id).is_some_and(Option::is_some) || id > self.nodes.len() {
            return Err(EEXIST);
        }
        self.sessions.charge(owner, NODES, 1)?;
        let node = Node { parent: directory, name: String::from(name), content, linked: true, opens: 0, writable, owner };
        if id == self.nodes.len() {
            self.nodes.push(Some(node));
        } else {
            self.nodes[id] = Some(node);
        }
        self.count += 1;
        self.entries_mut(directory).insert(String::from(name), id);
        Ok(())
    }

    /// The components of `path` after its start (the root for an absolute path, else
    /// `base`): `ENOENT` for an empty path, `EINVAL` for a NUL byte, `ENAMETOOLONG` for a
    /// component longer than `NAME_MAX`.
    fn start<'a>(&self, base: NodeId, path: &'a str) -> Result<(NodeId, impl Iterator<Item = &'a str>), Errno> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        if path.contains('\0') {
            return Err(EINVAL);
        }
        if path.split('/').any(|component| component.len() > NAME_MAX) {
            return Err(ENAMETOOLONG);
        }
        let start = if path.starts_with('/') { ROOT } else { base };
        if !self.node(start).linked {
            return Err(ENOENT);
        }
        Ok((start, path.split('/').filter(|component| !component.is_empty() && *component != ".")))
    }

    /// One step of a walk: `..` or the entry `component` of `directory`.
    fn step(&self, directory: NodeId, component: &str) -> Result<NodeId, Errno> {
        let entries = self.entries(directory)?;
        if component == ".." {
            return Ok(self.node(directory).parent);
        }
        entries.get(component).copied().ok_or(ENOENT)
    }

    /// The node `path` names, from `base`.
    pub fn resolve(&self, base: NodeId, path: &str) -> Result<NodeId, Errno> {
        let (mut node, components) = self.start(base, path)?;
        for component in components {
            node = self.step(node, component)?;
        }
        Ok(node)
    }

    /// The directory `path`'s last component is in, and that component (which must be a
    /// name: `EINVAL` for `.`, `..` or the root).
    fn parent<'a>(&self, base: NodeId, path: &'a str) -> Result<Parent<'a>, Errno> {
        let (mut node, components) = self.start(base, path)?;
        let mut components = components.peekable();
        while let Some(component) = components.next() {
            if components.peek().is_none() {
                self.entries(node)?;
                if component == ".." {
                    return Err(EINVAL);
                }
                return Ok(Parent { directory: node, name: component });
            }
            node = self.step(node, component)?;
        }
        Err(EINVAL)
    }

    /// Fails with `EROFS` unless `directory` may be changed.
    fn require_writable(&self, id: NodeId) -> Result<(), Errno> {
        if self.node(id).writable { Ok(()) } else { Err(EROFS) }
    }

    /// Opens (and with `create` makes, charged to `session`) the file or directory at
    /// `path`: its node.
    pub fn open(&mut self, base: NodeId, path: &str, create: bool, exclusive: bool, session: SessionId) -> Result<NodeId, Errno> {
        if !create {
            return self.resolve(base, path);
        }
        let parent = self.parent(base, path)?;
        match self.entries(parent.directory)?.get(parent.name) {
            Some(_) if exclusive => Err(EEXIST),
            Some(&existing) => Ok(existing),
            None => {
                self.require_writable(parent.directory)?;
                self.make(parent.directory, parent.name, Content::File(FileData::default()), true, session)
            }
        }
    }

    /// Makes a directory, charged to `session`.
    pub fn mkdir(&mut self, base: NodeId, path: &str, session: SessionId) -> Result<(), Errno> {
        let parent = self.parent(base, path)?;
        if self.entries(parent.directory)?.contains_key(parent.name) {
            return Err(EEXIST);
        }
        self.require_writable(parent.directory)?;
        self.make(parent.directory, parent.name, Content::Directory(BTreeMap::new()), true, session).map(|_| ())
    }

    /// Removes the name at `path`: a file (`directory` false) or an empty directory.
    pub fn remove(&mut self, base: NodeId, path: &str, directory: bool) -> Result<(), Errno> {
        let parent = self.parent(base, path)?;
        let id = *self.entries(parent.directory)?.get(parent.name).ok_or(ENOENT)?;
        self.require_writable(parent.directory)?;
        match (&self.node(id).content, directory) {
            (Content::File(_), true) => return Err(ENOTDIR),
            (Content::Directory(_), false) => return Err(EISDIR),
            (Content::Directory(entries), true) if !entries.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
        self.unlink(parent.directory, id);
        self.log(&Record::Remove { parent: parent.directory as u32, name: parent.name });
        Ok(())
    }

    /// Takes `id` out of `directory`, and frees it unless it is open.
    fn unlink(&mut self, directory: NodeId, id: NodeId) {
        let name = core::mem::take(&mut self.node_mut(id).name);
        self.entries_mut(directory).remove(&name);
        self.node_mut(id).linked = false;
        self.free_if_unused(id);
    }

    /// Counts a handle opened to `id` (`opened`) or closed; a node no directory names and
    /// nothing has open any more is freed.
    pub fn count_open(&mut self, id: NodeId, opened: bool) {
        let node = self.node_mut(id);
        if opened {
            node.opens += 1;
        } else {
            node.opens = node.opens.saturating_sub(1);
            self.free_if_unused(id);
        }
    }

    /// Frees `id` if no directory names it and no handle has it open.
    fn free_if_unused(&mut self, id: NodeId) {
        let node = self.node(id);
        if node.linked || node.opens > 0 {
            return;
        }
        if let Some(node) = self.nodes[id].take() {
            if let Content::File(data) = node.content {
                self.blocks -= data.blocks.len();
                self.sessions.release(node.owner, BYTES, (data.blocks.len() * BLOCK) as u64);
            }
            self.sessions.release(node.owner, NODES, 1);
        }
        self.count -= 1;
    }

    /// Charges to `to` from now on what was charged to `from` (a session that ended, whose
    /// charges its parent `to` already counts).
    pub fn reassign(&mut self, from: SessionId, to: SessionId) {
        for node in self.nodes.iter_mut().flatten() {
            if node.owner == from {
                node.owner = to;
            }
        }
    }

    /// Whether `ancestor` is `id` or one of the directories `id` is in.
    fn is_within(&self, mut id: NodeId, ancestor: NodeId) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            if id == ROOT {
                return false;
            }
            id = self.node(id).parent;
        }
    }

    /// Renames `from` to `to`, replacing a file with a file or an empty directory with a
    /// directory.
    pub fn rename(&mut self, base: NodeId, from: &str, to: &str) -> Result<(), Errno> {
        let source = self.parent(base, from)?;
        let target = self.parent(base, to)?;
        let moving = *self.entries(source.directory)?.get(source.name).ok_or(ENOENT)?;
        let replaced = self.entries(target.directory)?.get(target.name).copied();
        self.require_writable(source.directory)?;
        self.require_writable(target.directory)?;
        let is_directory = matches!(self.node(moving).content, Content::Directory(_));
        if is_directory && self.is_within(target.directory, moving) {
            return Err(EINVAL);
        }
        if let Some(existing) = replaced {
            if existing == moving {
                return Ok(());
            }
            match (&self.node(existing).content, is_directory) {
                (Content::Directory(_), false) => return Err(EISDIR),
                (Content::File(_), true) => return Err(ENOTDIR),
                (Content::Directory(entries), true) if !entries.is_empty() => return Err(ENOTEMPTY),
                _ => {}
            }
        }
        self.move_entry(source.directory, source.name, target.directory, target.name)?;
        self.log(&Record::Rename { from: source.directory as u32, from_name: source.name, to: target.directory as u32, to_name: target.name });
        Ok(())
    }

    /// Moves the entry `from_name` of `from` to `to_name` of `to`, unlinking what was there.
    fn move_entry(&mut self, from: NodeId, from_name: &str, to: NodeId, to_name: &str) -> Result<(), Errno> {
        let moving = *self.entries(from)?.get(from_name).ok_or(ENOENT)?;
        if let Some(&existing) = self.entries(to)?.get(to_name) {
            if existing == moving {
                return Ok(());
            }
            self.unlink(to, existing);
        }
        self.entries_mut(from).remove(from_name);
        self.entries_mut(to).insert(String::from(to_name), moving);
        let node = self.node_mut(moving);
        node.parent = to;
        node.name = String::from(to_name);
        Ok(())
    }

    /// Adds a file from the ramdisk at `path` (relative to the root), making the directories
    /// on the way; the ones the ramdisk names are read-only, except `/tmp`.
    pub fn add_from_ramdisk(&mut self, path: &str, data: Option<&'static [u8]>) -> Result<(), Errno> {
        let mut directory = ROOT;
        let components: Vec<&str> = path.split('/').filter(|component| !component.is_empty()).collect();
        let Some((last, folders)) = components.split_last() else { return Ok(()) };
        for folder in folders.iter().chain(data.is_none().then_some(last)) {
            directory = match self.entries(directory)?.get(*folder) {
                Some(&existing) => existing,
                None => {
                    let writable = self.node(directory).writable;
                    self.make(directory, folder, Content::Directory(BTreeMap::new()), writable, ROOT_SESSION)?
                }
            };
        }
        if let Some(bytes) = data {
            if self.entries(directory)?.contains_key(*last) {
                return Err(EEXIST);
            }
            let writable = self.node(directory).writable;
            let file = FileData { ramdisk: Some(bytes), blocks: Vec::new(), len: bytes.len() as u64 };
            self.make(directory, last, Content::File(file), writable, ROOT_SESSION)?;
        }
        Ok(())
    }

    /// A directory's entries from `first` on: (name, kind, size).
    pub fn list(&self, directory: NodeId, first: usize) -> Result<impl Iterator<Item = (&str, u64, u64)>, Errno> {
        let entries = self.entries(directory)?;
        Ok(entries.iter().skip(first).map(|(name, &id)| (name.as_str(), self.node(id).kind(), self.node(id).size())))
    }

    /// A linked directory's absolute path.
    pub fn path_of(&self, mut id: NodeId) -> Result<String, Errno> {
        let mut names = Vec::new();
        while id != ROOT {
            let node = self.node(id);
            if !node.linked {
                return Err(ENOENT);
            }
            names.push(node.name.as_str());
            id = node.parent;
        }
        if names.is_empty() {
            return Ok(String::from("/"));
        }
        Ok(names.iter().rev().fold(String::new(), |mut path, name| {
            path.push('/');
            path.push_str(name);
            path
        }))
    }

    /// The file `id`'s data, or `EISDIR`.
    pub fn file(&self, id: NodeId) -> Result<&FileData, Errno> {
        match &self.node(id).content {
            Content::File(data) => Ok(data),
            Content::Directory(_) => Err(EISDIR),
        }
    }

    /// Makes the file `id` `length` bytes long, and records it.
    pub fn set_len(&mut self, id: NodeId, length: u64) -> Result<(), Errno> {
        self.resize(id, length)?;
        if self.node(id).linked {
            self.log(&Record::SetLen { id: id as u32, length });
        }
        Ok(())
    }

    /// Makes the file `id` `length` bytes long: zeros are added, or bytes cut (and the
    /// rest of the last block cleared, so that growing again reads zeros).
    fn resize(&mut self, id: NodeId, length: u64) -> Result<(), Errno> {
        self.require_writable(id)?;
        if length > FILE_MAX {
            return Err(EFBIG);
        }
        self.own_blocks(id)?;
        let wanted = length.div_ceil(BLOCK as u64) as usize;
        let have = self.file(id)?.blocks.len();
        let owner = self.node(id).owner;
        let mut added = Vec::new();
        if wanted > have {
            let more = wanted - have;
            if (self.blocks + more) as u64 * BLOCK as u64 > CAPACITY {
                return Err(ENOSPC);
            }
            added.try_reserve_exact(more).map_err(|_| ENOMEM)?;
            for _ in 0..more {
                added.push(zeroed_block()?);
            }
            self.sessions.charge(owner, BYTES, (more * BLOCK) as u64)?;
        }
        let removed = have.saturating_sub(wanted);
        self.sessions.release(owner, BYTES, (removed * BLOCK) as u64);
        self.blocks = self.blocks + added.len() - removed;
        let Content::File(data) = &mut self.node_mut(id).content else { return Err(EISDIR) };
        data.blocks.try_reserve(added.len()).map_err(|_| ENOMEM)?;
        data.blocks.append(&mut added);
        data.blocks.truncate(wanted);
        if length < data.len && !length.is_multiple_of(BLOCK as u64) {
            let last = &mut data.blocks[wanted - 1];
            last[(length % BLOCK as u64) as usize..].fill(0);
        }
        data.len = length;
        Ok(())
    }

    /// Turns a file still backed by the ramdisk into blocks of its own.
    fn own_blocks(&mut self, id: NodeId) -> Result<(), Errno> {
        let Content::File(FileData { ramdisk: Some(bytes), .. }) = self.node(id).content else { return Ok(()) };
        let needed = bytes.len().div_ceil(BLOCK);
        if (self.blocks + needed) as u64 * BLOCK as u64 > CAPACITY {
            return Err(ENOSPC);
        }
        let mut blocks = Vec::new();
        blocks.try_reserve_exact(needed).map_err(|_| ENOMEM)?;
        for chunk in bytes.chunks(BLOCK) {
            let mut block = zeroed_block()?;
            block[..chunk.len()].copy_from_slice(chunk);
            blocks.push(block);
        }
        self.sessions.charge(self.node(id).owner, BYTES, (needed * BLOCK) as u64)?;
        self.blocks += needed;
        if let Content::File(data) = &mut self.node_mut(id).content {
            data.blocks = blocks;
            data.ramdisk = None;
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` in the file `id`, growing it (as much as the limits allow),
    /// and records it: the count written, `EFBIG` or `ENOSPC` if nothing could be.
    pub fn write(&mut self, id: NodeId, offset: u64, bytes: &[u8]) -> Result<usize, Errno> {
        let count = self.write_unrecorded(id, offset, bytes)?;
        if count > 0 && self.node(id).linked {
            self.log(&Record::Write { id: id as u32, offset, bytes: &bytes[..count] });
        }
        Ok(count)
    }

    /// [`Tree::write`] without the record.
    fn write_unrecorded(&mut self, id: NodeId, offset: u64, bytes: &[u8]) -> Result<usize, Errno> {
        self.require_writable(id)?;
        if bytes.is_empty() {
            return Ok(0);
        }
        if offset >= FILE_MAX {
            return Err(EFBIG);
        }
        let mut count = (bytes.len() as u64).min(FILE_MAX - offset) as usize;
        let length = self.file(id)?.len;
        let end = offset + count as u64;
        if end > length {
            self.own_blocks(id)?;
            let held = self.file(id)?.blocks.len() as u64;
            let session_room = self.sessions.room(self.node(id).owner, BYTES) / BLOCK as u64;
            let room = (CAPACITY / BLOCK as u64).saturating_sub(self.blocks as u64).min(session_room) + held;
            let reachable = room * BLOCK as u64;
            if reachable <= offset {
                return Err(ENOSPC);
            }
            count = count.min((reachable - offset) as usize);
            self.resize(id, offset + count as u64)?;
        } else {
            self.own_blocks(id)?;
        }
        let Content::File(data) = &mut self.node_mut(id).content else { return Err(EISDIR) };
        let mut done = 0;
        while done < count {
            let at = offset + done as u64;
            let block = &mut data.blocks[(at / BLOCK as u64) as usize];
            let start = (at % BLOCK as u64) as usize;
            let piece = (count - done).min(BLOCK - start);
            block[start..start + piece].copy_from_slice(&bytes[done..done + piece]);
            done += piece;
        }
        Ok(count)
    }
}

impl Tree {
    /// Replays `journal`'s records onto this tree (filled from the ramdisk, `/tmp` empty)
    /// and records every change from now on in it: how many records were replayed.
    pub fn attach(&mut self, journal: Journal) -> usize {
        let mut replayed = 0;
        let mut failed = false;
        for record in journal.records() {
            if let Err(errno) = self.apply(&record) {
                userlib::eprintln!("fs: journal record {replayed} ({record:?}) does not apply ({}); /tmp is kept as it was before it", abi::errno::name(errno));
                failed = true;
                break;
            }
            replayed += 1;
        }
        self.journal = Some(journal);
        if failed {
            // What stands now becomes the journal's content.
            self.compact();
        }
        replayed
    }

    /// Does what `record` says, recording nothing.
    fn apply(&mut self, record: &Record) -> Result<(), Errno> {
        match *record {
            Record::Make { id, parent, directory, name } => {
                let parent = parent as NodeId;
                if !self.nodes.get(parent).is_some_and(Option::is_some) || !self.node(parent).writable {
                    return Err(EINVAL);
                }
                if self.entries(parent)?.contains_key(name) {
                    return Err(EEXIST);
                }
                let content = if directory { Content::Directory(BTreeMap::new()) } else { Content::File(FileData::default()) };
                self.insert(id as NodeId, parent, name, content, true, ROOT_SESSION)
            }
            Record::Remove { parent, name } => {
                let parent = self.live(parent as NodeId)?;
                let id = *self.entries(parent)?.get(name).ok_or(ENOENT)?;
                self.unlink(parent, id);
                Ok(())
            }
            Record::Rename { from, from_name, to, to_name } => {
                let (from, to) = (self.live(from as NodeId)?, self.live(to as NodeId)?);
                self.move_entry(from, from_name, to, to_name)
            }
            Record::Write { id, offset, bytes } => {
                let id = self.live(id as NodeId)?;
                self.write_unrecorded(id, offset, bytes).map(drop)
            }
            Record::SetLen { id, length } => {
                let id = self.live(id as NodeId)?;
                self.resize(id, length)
            }
        }
    }

    /// `id` if it is a live, writable node (`EINVAL` otherwise: a record that does not fit).
    fn live(&self, id: NodeId) -> Result<NodeId, Errno> {
        if self.nodes.get(id).is_some_and(|node| node.as_ref().is_some_and(|node| node.writable)) { Ok(id) } else { Err(EINVAL) }
    }

    /// Records `record`; when the journal is full, writes a snapshot first and records it
    /// after that.
    fn log(&mut self, record: &Record) {
        let Some(journal) = self.journal.as_mut() else { return };
        if journal.append(record) {
            return;
        }
        self.compact();
        if !self.journal.as_mut().is_some_and(|journal| journal.append(record)) {
            userlib::eprintln!("fs: the journal is full; this change to /tmp will not survive a restart");
        }
    }

    /// Writes a snapshot of everything writable into the journal's other region and makes
    /// it the active one: records that make each node (parents first) and give files their
    /// bytes.
    fn compact(&mut self) {
        let Some(mut journal) = self.journal.take() else { return };
        journal.begin_snapshot();
        let mut fits = true;
        let mut pending: Vec<NodeId> = self.nodes.iter().enumerate().filter(|(_, node)| node.as_ref().is_some_and(|node| node.linked && node.writable && !self.node(node.parent).writable)).map(|(id, _)| id).collect();
        while let Some(directory) = pending.pop() {
            let Ok(entries) = self.entries(directory) else { continue };
            for (name, &id) in entries {
                let Content::File(data) = &self.node(id).content else {
                    fits &= journal.snapshot(&Record::Make { id: id as u32, parent: directory as u32, directory: true, name });
                    pending.push(id);
                    continue;
                };
                fits &= journal.snapshot(&Record::Make { id: id as u32, parent: directory as u32, directory: false, name });
                fits &= journal.snapshot(&Record::SetLen { id: id as u32, length: data.len });
                let mut offset = 0;
                while offset < data.len {
                    let piece = data.piece(offset, BLOCK);
                    fits &= journal.snapshot(&Record::Write { id: id as u32, offset, bytes: piece });
                    offset += piece.len() as u64;
                }
            }
        }
        if fits {
            journal.commit_snapshot();
        } else {
            userlib::eprintln!("fs: a snapshot of /tmp does not fit in the journal; it keeps the older one");
        }
        self.journal = Some(journal);
    }
}

/// A block of zeros, or `ENOMEM`.
fn zeroed_block() -> Result<Box<[u8]>, Errno> {
    let mut block = Vec::new();
    block.try_reserve_exact(BLOCK).map_err(|_| ENOMEM)?;
    block.resize(BLOCK, 0);
    Ok(block.into_boxed_slice())
}
