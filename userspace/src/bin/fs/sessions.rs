//! Sessions: who pays for what fs holds. Every open file, node and block of file data is
//! charged to a session, and a session's charges count against its own limits and those of
//! every session above it, so a session (and everything started inside it) never holds
//! more than its limits, whatever the sessions below it do.
//!
//! Session 0, the root, has fs's own limits; `init` holds its only handle (badge 0). Any
//! directory handle can be asked for a new session below its own (`userlib::fs::SESSION`),
//! with limits at most its own; the session lives while any handle opened through it is
//! open, and when it ends, what it still holds (files it made in `/tmp`, open files passed
//! on) is its parent's from then on.

use alloc::vec::Vec;

use abi::errno::{EMFILE, ENOSPC};
use userlib::fs::{CAPACITY, NODES_MAX, OPEN_MAX, SESSIONS_MAX};

use crate::tree::Errno;

/// A session's number.
pub type SessionId = usize;

/// The root session.
pub const ROOT_SESSION: SessionId = 0;

/// What a session may hold: [`OPENS`], [`NODES`] and [`BYTES`] index it.
pub type Amounts = [u64; 3];

/// Open files and directories.
pub const OPENS: usize = 0;
/// Files and directories made.
pub const NODES: usize = 1;
/// Bytes of file data (whole blocks).
pub const BYTES: usize = 2;

/// The errno for going past each limit.
const REFUSALS: [Errno; 3] = [EMFILE, ENOSPC, ENOSPC];

/// One session.
#[derive(Debug)]
struct Session {
    parent: SessionId,
    limits: Amounts,
    used: Amounts,
    /// Open files and directories handed out through it (the session ends at 0).
    handles: usize,
}

/// Every live session; the root is always there.
#[derive(Debug)]
pub struct Sessions {
    slots: Vec<Option<Session>>,
}

impl Sessions {
    /// The root session alone, with fs's own limits.
    pub fn new() -> Self {
        let root = Session { parent: ROOT_SESSION, limits: [OPEN_MAX as u64, NODES_MAX as u64, CAPACITY], used: [0; 3], handles: 0 };
        Self { slots: alloc::vec![Some(root)] }
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    /// The sessions `id` is charged through: itself, then each one above it to the root.
    fn chain(&self, id: SessionId) -> impl Iterator<Item = SessionId> + '_ {
        let mut next = self.session(id).map(|_| id);
        core::iter::from_fn(move || {
            let current = next?;
            next = (current != ROOT_SESSION).then(|| self.session(current).map(|session| session.parent)).flatten();
            Some(current)
        })
    }

    /// How much more of `what` session `id` may take.
    pub fn room(&self, id: SessionId, what: usize) -> u64 {
        self.chain(id)
            .filter_map(|member| self.session(member))
            .map(|session| session.limits[what].saturating_sub(session.used[what]))
            .min()
            .unwrap_or(0)
    }

    /// Charges `amount` of `what` to `id` and those above it, or refuses with that limit's
    /// errno and charges nothing.
    pub fn charge(&mut self, id: SessionId, what: usize, amount: u64) -> Result<(), Errno> {
        if self.room(id, what) < amount {
            return Err(REFUSALS[what]);
        }
        let members: Vec<SessionId> = self.chain(id).collect();
        for member in members {
            if let Some(session) = self.slots[member].as_mut() {
                session.used[what] += amount;
            }
        }
        Ok(())
    }

    /// Gives back what [`Sessions::charge`] took.
    pub fn release(&mut self, id: SessionId, what: usize, amount: u64) {
        let members: Vec<SessionId> = self.chain(id).collect();
        for member in members {
            if let Some(session) = self.slots[member].as_mut() {
                session.used[what] = session.used[what].saturating_sub(amount);
            }
        }
    }

    /// A new session below `parent`, with `limits` (0 for "as the parent's"), each at most
    /// the parent's; `EMFILE` when [`SESSIONS_MAX`] are live.
    pub fn start(&mut self, parent: SessionId, limits: Amounts) -> Result<SessionId, Errno> {
        let parent_limits = self.session(parent).ok_or(EMFILE)?.limits;
        let limits = core::array::from_fn(|what| match limits[what] {
            0 => parent_limits[what],
            wanted => wanted.min(parent_limits[what]),
        });
        let session = Session { parent, limits, used: [0; 3], handles: 0 };
        match self.slots.iter().position(Option::is_none) {
            Some(id) => {
                self.slots[id] = Some(session);
                Ok(id)
            }
            None if self.slots.len() < SESSIONS_MAX => {
                self.slots.push(Some(session));
                Ok(self.slots.len() - 1)
            }
            None => Err(EMFILE),
        }
    }

    /// Counts a handle handed out through `id` (`opened`) or closed. When a session other
    /// than the root has none left it ends: the parent it leaves what it held to (its
    /// charges are already counted there), after taking over its sessions.
    pub fn count_handle(&mut self, id: SessionId, opened: bool) -> Option<SessionId> {
        let session = self.slots.get_mut(id)?.as_mut()?;
        if opened {
            session.handles += 1;
            return None;
        }
        session.handles = session.handles.saturating_sub(1);
        if session.handles > 0 || id == ROOT_SESSION {
            return None;
        }
        let parent = session.parent;
        self.slots[id] = None;
        for child in self.slots.iter_mut().flatten() {
            if child.parent == id {
                child.parent = parent;
            }
        }
        Some(parent)
    }
}
