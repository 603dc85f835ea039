//! The process and thread tables: a fixed number of slots, each empty or holding one process
//! (or thread) for its whole life. The scheduler finds the running thread, and a process or
//! thread object finds its own entry, by slot in constant time; a lookup by id walks the
//! slots (at most `N`). The slots are a fixed array inside the table (in the scheduler's
//! static), so a table takes no kernel heap and a lookup is an index.

/// Most processes at once.
pub const MAX_PROCESSES: usize = abi::PROCESSES_MAX;
/// Most threads at once, over all processes.
pub const MAX_THREADS: usize = abi::THREADS_MAX;

/// What a table stores: something with a key (a process and its pid, a thread and its id).
pub trait Keyed {
    /// The key: unique among the entries.
    fn key(&self) -> u32;
}

/// Up to `N` entries in fixed slots.
#[derive(Debug)]
pub struct SlotTable<T, const N: usize> {
    slots: [Option<T>; N],
    len: usize,
}

impl<T: Keyed, const N: usize> SlotTable<T, N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self { slots: [const { None }; N], len: 0 }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A free slot, if any.
    pub fn free_slot(&mut self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    /// Puts `entry` in `slot`, which [`free_slot`](Self::free_slot) gave and must still be
    /// free.
    pub fn insert_at(&mut self, slot: usize, entry: T) {
        let place = &mut self.slots[slot];
        assert!(place.is_none(), "table slot {slot} is taken");
        *place = Some(entry);
        self.len += 1;
    }

    /// The entry in `slot`.
    pub fn at(&self, slot: usize) -> Option<&T> {
        self.slots.get(slot)?.as_ref()
    }

    /// The entry in `slot`, to change.
    pub fn at_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// The slot of the entry with `key`.
    pub fn slot_of(&self, key: u32) -> Option<usize> {
        self.slots.iter().position(|slot| slot.as_ref().is_some_and(|entry| entry.key() == key))
    }

    /// The entry with `key`.
    pub fn get(&self, key: u32) -> Option<&T> {
        self.at(self.slot_of(key)?)
    }

    /// The entry with `key`, to change.
    pub fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        let slot = self.slot_of(key)?;
        self.at_mut(slot)
    }

    /// Takes the entry out of `slot`.
    pub fn remove_at(&mut self, slot: usize) -> Option<T> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.len -= 1;
        Some(entry)
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Every entry, to change, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }
}

impl<T: Keyed, const N: usize> Default for SlotTable<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Entry(u32);

    impl Keyed for Entry {
        fn key(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn slots_are_reused_and_keys_found() {
        let mut table = SlotTable::<Entry, 4>::new();
        let first = table.free_slot().unwrap();
        table.insert_at(first, Entry(10));
        let second = table.free_slot().unwrap();
        assert_ne!(first, second);
        table.insert_at(second, Entry(11));
        assert_eq!(table.len(), 2);
        assert_eq!(table.slot_of(11), Some(second));
        assert_eq!(table.get(10), Some(&Entry(10)));
        assert_eq!(table.remove_at(first), Some(Entry(10)));
        assert_eq!(table.get(10), None);
        assert_eq!(table.free_slot(), Some(first), "a freed slot is used again");
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn the_table_fills_up() {
        let mut table = SlotTable::<Entry, MAX_PROCESSES>::new();
        for key in 0..MAX_PROCESSES as u32 {
            let slot = table.free_slot().unwrap();
            table.insert_at(slot, Entry(key));
        }
        assert_eq!(table.free_slot(), None);
        assert_eq!(table.iter().count(), MAX_PROCESSES);
    }
}
