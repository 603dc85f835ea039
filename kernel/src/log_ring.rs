//! The kernel's log ring: the newest [`RING_BYTES`] bytes of everything the kernel logged
//! (its `log` lines and `println!`s) and of what holders of the Log handle wrote, which
//! `log_read` hands to `dmesg`. Older bytes are overwritten; nothing is allocated.
//!
//! The ring is taken with interrupts masked, so an interrupt handler that logs never spins
//! on a lock its own interrupted code holds; the panic path does not use it.

use spin::Mutex;

use crate::arch::cpu;

/// Bytes the ring retains.
pub const RING_BYTES: usize = 64 * 1024;

/// A byte ring that keeps the newest bytes.
pub struct Ring<const N: usize> {
    bytes: [u8; N],
    /// Bytes ever appended; the next one goes to `written % N`.
    written: u64,
}

impl<const N: usize> Ring<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { bytes: [0; N], written: 0 }
    }

    /// Appends `bytes`, overwriting the oldest when full.
    pub fn append(&mut self, bytes: &[u8]) {
        // Only the last N bytes of a longer write can survive it.
        let bytes = &bytes[bytes.len().saturating_sub(N)..];
        let start = (self.written % N as u64) as usize;
        let first = bytes.len().min(N - start);
        self.bytes[start..start + first].copy_from_slice(&bytes[..first]);
        self.bytes[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.written += bytes.len() as u64;
    }

    /// Copies the newest `out.len()` bytes it retains (fewer if it holds fewer) into `out`,
    /// oldest first; returns how many.
    pub fn read_newest(&self, out: &mut [u8]) -> usize {
        let held = self.written.min(N as u64) as usize;
        let count = out.len().min(held);
        let end = (self.written % N as u64) as usize;
        // The newest `count` bytes end at `end`, wrapping below 0 to the ring's top.
        let start = (end + N - count) % N;
        let first = count.min(N - start);
        out[..first].copy_from_slice(&self.bytes[start..start + first]);
        out[first..count].copy_from_slice(&self.bytes[..count - first]);
        count
    }
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

static RING: Mutex<Ring<RING_BYTES>> = Mutex::new(Ring::new());

/// Appends `bytes` to the kernel's log ring.
pub fn append(bytes: &[u8]) {
    cpu::without_interrupts(|| RING.lock().append(bytes));
}

/// Copies the newest bytes of the log into `out`; how many.
pub fn read_newest(out: &mut [u8]) -> usize {
    cpu::without_interrupts(|| RING.lock().read_newest(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest<const N: usize>(ring: &Ring<N>, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        let count = ring.read_newest(&mut out);
        out.truncate(count);
        out
    }

    #[test]
    fn keeps_everything_until_full() {
        let mut ring = Ring::<8>::new();
        assert_eq!(newest(&ring, 8), b"");
        ring.append(b"abc");
        ring.append(b"de");
        assert_eq!(newest(&ring, 8), b"abcde");
        assert_eq!(newest(&ring, 2), b"de");
    }

    #[test]
    fn overwrites_the_oldest_and_reads_across_the_wrap() {
        let mut ring = Ring::<8>::new();
        ring.append(b"abcdef");
        ring.append(b"ghij");
        assert_eq!(newest(&ring, 100), b"cdefghij");
        assert_eq!(newest(&ring, 3), b"hij");
        ring.append(b"0123456789abc");
        assert_eq!(newest(&ring, 100), b"56789abc");
    }
}
