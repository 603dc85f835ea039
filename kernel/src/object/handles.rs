//! A process's handle table: [`HANDLE_MAX`] slots, each empty or holding a [`Handle`], and
//! the numbers that name them.
//!
//! A handle's number is its slot's index in the low [`INDEX_BITS`] bits and the slot's
//! *generation* above them, below bit 31 (which `COPY_HANDLE` uses in messages). Closing a
//! handle moves its slot to the next generation, so the number of a closed handle names
//! nothing (`EBADF`) until that one slot has been used 2^23 times more, instead of naming
//! whatever was opened next. A table starts at generation 0 everywhere, so the numbers a
//! process starts with are the plain indices its spawner chose (0, 1, 2, ...).
//!
//! Every use of a handle number goes through [`HandleTable::lookup`], which turns (number,
//! wanted kind, wanted rights) into the object or an errno: `EBADF` for a number that is out
//! of range, free, of another generation, or names another kind of object; `EPERM` for
//! missing rights.

use alloc::vec::Vec;

use abi::errno::{EBADF, EMFILE, ENOMEM};
use abi::handle::{HANDLE_MAX, rights};

use super::{Handle, Object};

/// Bits of a handle number that hold the slot's index.
pub const INDEX_BITS: u32 = HANDLE_MAX.trailing_zeros();
/// Generations a slot goes through before its numbers come round again.
const GENERATIONS: u32 = 1 << (31 - INDEX_BITS);

const _: () = assert!(HANDLE_MAX.is_power_of_two() && INDEX_BITS < 31);

/// One slot: the handle it holds, if any, and the number that names it now (its index and
/// current generation), which a lookup compares whole.
#[derive(Debug)]
struct Slot {
    handle: Option<Handle>,
    number: u32,
}

/// The slot index a number names, whatever its generation.
#[inline]
fn index_of(number: u64) -> usize {
    (number & (HANDLE_MAX as u64 - 1)) as usize
}

/// The number of slot `index` in the generation after the one `number` carries.
fn next_generation(number: u32, index: usize) -> u32 {
    let generation = ((number >> INDEX_BITS) + 1) % GENERATIONS;
    (generation << INDEX_BITS) | index as u32
}

/// A process's handles.
#[derive(Debug, Default)]
pub struct HandleTable {
    /// `HANDLE_MAX` slots once allocated (empty for a table that was never used or closed).
    slots: Vec<Slot>,
    /// Slots in use.
    used: usize,
}

impl HandleTable {
    /// An empty table with room for [`HANDLE_MAX`] handles, or `ENOMEM`.
    pub fn new() -> Result<Self, i64> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(HANDLE_MAX).map_err(|_| ENOMEM)?;
        slots.extend((0..HANDLE_MAX).map(|index| Slot { handle: None, number: index as u32 }));
        Ok(Self { slots, used: 0 })
    }

    /// The slot `number` names, if that is its number now (any other generation, or a value
    /// no slot has, names nothing).
    #[inline]
    fn slot_named(&self, number: u64) -> Option<&Slot> {
        self.slots.get(index_of(number)).filter(|slot| u64::from(slot.number) == number)
    }

    #[inline]
    fn slot(&self, number: u64) -> Result<&Handle, i64> {
        self.slot_named(number).and_then(|slot| slot.handle.as_ref()).ok_or(EBADF)
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
        match self.slots.iter().position(|slot| slot.handle.is_none()) {
            Some(index) => {
                let slot = &mut self.slots[index];
                slot.handle = Some(handle);
                self.used += 1;
                Ok(slot.number)
            }
            None => Err(handle),
        }
    }

    /// Puts `handle` in the slot `number` names, under exactly that number; the slot must be
    /// free (used to give a process the handles it starts with, and to put back handles a
    /// failed message took out, under the numbers they had).
    pub fn insert_at(&mut self, number: u32, handle: Handle) {
        assert!(number < 1 << 31, "{number:#x} is no handle number");
        let index = index_of(u64::from(number));
        let slot = &mut self.slots[index];
        assert!(slot.handle.is_none(), "handle slot {index} is taken");
        *slot = Slot { handle: Some(handle), number };
        self.used += 1;
    }

    /// Takes handle `number` out of the table, or `EBADF`; its slot moves to the next
    /// generation, so the number names nothing from now on.
    pub fn remove(&mut self, number: u64) -> Result<Handle, i64> {
        let index = index_of(number);
        let slot = self.slots.get_mut(index).filter(|slot| u64::from(slot.number) == number).ok_or(EBADF)?;
        let handle = slot.handle.take().ok_or(EBADF)?;
        slot.number = next_generation(slot.number, index);
        self.used -= 1;
        Ok(handle)
    }

    /// The numbers of the handles held, in slot order.
    pub fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|slot| slot.handle.is_some()).map(|slot| slot.number)
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
        let handles = self.slots.iter_mut().filter_map(|slot| slot.handle.take()).collect();
        self.slots = Vec::new();
        self.used = 0;
        handles
    }

    /// The number of the handle in the lowest slot for which `matches` holds.
    pub fn first_where(&self, mut matches: impl FnMut(&Handle) -> bool) -> Option<u32> {
        self.slots.iter().find_map(|slot| slot.handle.as_ref().filter(|handle| matches(handle)).map(|_| slot.number))
    }
}
