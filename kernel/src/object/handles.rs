//! A process's handle table: [`HANDLE_MAX`] numbered slots, each empty or holding a
//! [`Handle`].
//!
//! Every use of a handle number goes through [`HandleTable::lookup`], which turns (number,
//! wanted kind, wanted rights) into the object or an errno: `EBADF` for a number that is out
//! of range, free, or names another kind of object; `EPERM` for missing rights.

use alloc::vec::Vec;

use abi::errno::{EBADF, EMFILE, ENOMEM};
use abi::handle::{HANDLE_MAX, rights};

use super::{Handle, Object};

/// A process's handles.
#[derive(Debug, Default)]
pub struct HandleTable {
    /// `HANDLE_MAX` slots once allocated (empty for a table that was never used or closed).
    slots: Vec<Option<Handle>>,
    /// Slots in use.
    used: usize,
}

impl HandleTable {
    /// An empty table with room for [`HANDLE_MAX`] handles, or `ENOMEM`.
    pub fn new() -> Result<Self, i64> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(HANDLE_MAX).map_err(|_| ENOMEM)?;
        slots.resize_with(HANDLE_MAX, || None);
        Ok(Self { slots, used: 0 })
    }

    fn slot(&self, number: u64) -> Result<&Handle, i64> {
        let index = usize::try_from(number).map_err(|_| EBADF)?;
        self.slots.get(index).and_then(Option::as_ref).ok_or(EBADF)
    }

    /// The handle numbered `number`, or `EBADF`.
    pub fn get(&self, number: u64) -> Result<&Handle, i64> {
        self.slot(number)
    }

    /// The object handle `number` names, if it has the `rights` and `select` accepts its kind
    /// (returning what the caller needs of it): `EBADF` for no such handle or the wrong
    /// kind, `EPERM` for missing rights.
    pub fn lookup<T>(&self, number: u64, rights: u32, select: impl FnOnce(&Object) -> Option<T>) -> Result<T, i64> {
        let handle = self.slot(number)?;
        let selected = select(handle.object()).ok_or(EBADF)?;
        handle.require(rights)?;
        Ok(selected)
    }

    /// Puts `handle` in the lowest free slot and returns its number; gives the handle back
    /// if the table is full.
    pub fn insert(&mut self, handle: Handle) -> Result<u32, Handle> {
        match self.slots.iter().position(Option::is_none) {
            Some(index) => {
                self.slots[index] = Some(handle);
                self.used += 1;
                Ok(index as u32)
            }
            None => Err(handle),
        }
    }

    /// Puts `handle` in slot `number`, which must be free (used to give a process the
    /// handles it starts with, and to put back handles a failed message took out).
    pub fn insert_at(&mut self, number: u32, handle: Handle) {
        let slot = &mut self.slots[number as usize];
        assert!(slot.is_none(), "handle slot {number} is taken");
        *slot = Some(handle);
        self.used += 1;
    }

    /// Takes handle `number` out of the table, or `EBADF`.
    pub fn remove(&mut self, number: u64) -> Result<Handle, i64> {
        let index = usize::try_from(number).map_err(|_| EBADF)?;
        let handle = self.slots.get_mut(index).and_then(Option::take).ok_or(EBADF)?;
        self.used -= 1;
        Ok(handle)
    }

    /// The first process's table: the kernel's log as handles 0, 1 and 2 (standard input,
    /// output and error; it may only be written, so reading it is `EBADF`) and the power
    /// handle as 3.
    pub fn for_first_process() -> Result<Self, i64> {
        let mut table = Self::new()?;
        let shared = rights::DUPLICATE | rights::TRANSFER;
        for number in 0..3 {
            table.insert_at(number, Handle::new(Object::Log, shared | rights::WRITE));
        }
        table.insert_at(3, Handle::new(Object::Power, shared | rights::POWER));
        Ok(table)
    }

    /// Free slots.
    pub fn free_slots(&self) -> usize {
        self.slots.len() - self.used
    }

    /// `Ok` if `count` handles fit, else `EMFILE`.
    pub fn require_room(&self, count: usize) -> Result<(), i64> {
        if self.free_slots() >= count { Ok(()) } else { Err(EMFILE) }
    }

    /// Empties the table (a process's end), returning the handles so that the caller drops
    /// them outside any lock (dropping may wake other processes).
    pub fn take_all(&mut self) -> Vec<Handle> {
        let handles = self.slots.iter_mut().filter_map(Option::take).collect();
        self.slots = Vec::new();
        self.used = 0;
        handles
    }

    /// The lowest-numbered handle for which `matches` holds.
    pub fn first_where(&self, mut matches: impl FnMut(&Handle) -> bool) -> Option<u32> {
        (0..).zip(&self.slots).find_map(|(number, slot)| slot.as_ref().filter(|handle| matches(handle)).map(|_| number))
    }
}
