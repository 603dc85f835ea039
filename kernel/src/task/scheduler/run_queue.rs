//! The run queue: ready processes in FIFO order, by slot in the process table, shared by
//! every CPU.

use alloc::collections::VecDeque;

use super::MAX_PROCESSES;

/// Ready processes in round-robin order, by slot in the process table.
#[derive(Debug, Default)]
pub struct RunQueue {
    queue: VecDeque<usize>,
    /// Which slots are in `queue` (bit n: slot n), so a push needs no search.
    queued: u64,
}

const _: () = assert!(MAX_PROCESSES <= u64::BITS as usize, "a run queue keeps one bit per process slot");

impl RunQueue {
    /// An empty queue (it takes its room on the first push).
    pub const fn new() -> Self {
        Self { queue: VecDeque::new(), queued: 0 }
    }

    /// Appends `slot` unless it is already queued. The queue's room for every process is
    /// taken once, on the first push, so it never allocates again (nor from the timer
    /// interrupt, which wakes sleepers), and the kernel heap's use comes back exactly after
    /// a busy moment.
    #[inline]
    pub fn push(&mut self, slot: usize) {
        let bit = 1 << (slot % MAX_PROCESSES);
        if self.queued & bit != 0 {
            return;
        }
        if self.queue.capacity() < MAX_PROCESSES {
            self.queue.reserve_exact(MAX_PROCESSES);
        }
        self.queued |= bit;
        self.queue.push_back(slot);
    }

    /// Takes the first queued slot that `is_ready` still accepts, dropping stale entries.
    pub fn pop_ready(&mut self, mut is_ready: impl FnMut(usize) -> bool) -> Option<usize> {
        while let Some(slot) = self.queue.pop_front() {
            self.queued &= !(1 << (slot % MAX_PROCESSES));
            if is_ready(slot) {
                return Some(slot);
            }
        }
        None
    }

    /// Takes `slot` out of the queue (it runs next, handed the CPU directly).
    pub fn remove(&mut self, slot: usize) {
        let bit = 1 << (slot % MAX_PROCESSES);
        if self.queued & bit != 0 {
            self.queued &= !bit;
            self.queue.retain(|&queued| queued != slot);
        }
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_queue_is_fifo_without_duplicates() {
        let mut queue = RunQueue::default();
        for pid in [3, 1, 3, 2] {
            queue.push(pid);
        }
        let order: Vec<usize> = core::iter::from_fn(|| queue.pop_ready(|_| true)).collect();
        assert_eq!(order, [3, 1, 2]);
        assert!(queue.is_empty());
    }

    #[test]
    fn run_queue_skips_entries_that_are_no_longer_ready() {
        let mut queue = RunQueue::default();
        for pid in 1..=4 {
            queue.push(pid);
        }
        assert_eq!(queue.pop_ready(|pid| pid % 2 == 0), Some(2));
        assert_eq!(queue.pop_ready(|pid| pid == 4), Some(4));
        assert_eq!(queue.pop_ready(|_| true), None);
    }

    #[test]
    fn requeued_pid_goes_to_the_back() {
        let mut queue = RunQueue::default();
        queue.push(1);
        queue.push(2);
        let first = queue.pop_ready(|_| true).unwrap();
        queue.push(first);
        assert_eq!(queue.pop_ready(|_| true), Some(2));
        assert_eq!(queue.pop_ready(|_| true), Some(1));
    }
}
