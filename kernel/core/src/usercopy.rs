//! Checked copies between the kernel and the calling process's memory: the only way a
//! syscall handler touches user memory.
//!
//! A [`UserSlice`] or [`UserPtr`] is just an address and a length until it is used. Every
//! read or write first checks, with checked arithmetic, that the whole range lies in the
//! user half and that every page of it is mapped user-accessible (and writable, for writes:
//! a copy-on-write page is made the process's own by the check, so the kernel's write never
//! fails for the sharing) in the caller's address space, then copies inside a `stac`/`clac`
//! window. A failed check
//! is `EFAULT` and copies nothing: there is no partial copy.
//!
//! A checked range ([`ReadableSlice`], [`WritableSlice`]) may be used for copies later in the
//! same syscall, across preemption points, without walking the page tables again. It carries
//! the [`MappingStamp`] of the address space it was checked in, and each copy first compares
//! it with the active space's: a range used in another address space copies nothing and is
//! `EFAULT`; after a page of the space was unmapped or narrowed (by a sibling thread, perhaps
//! far from the range) the whole range is checked again, and only if it no longer holds is
//! the copy `EFAULT`. So no order of calls can
//! make a copy reach memory that was not checked, and the ranges are neither `Copy` nor
//! `Clone`.
//!
//! An empty range touches no memory, so its address is not checked at all: Rust's empty
//! slices carry a dangling pointer (`0x1`), and `write(1, b"")` or a `spawn` with an empty
//! argument must not fail because of it.

use alloc::vec::Vec;
use core::cell::Cell;
use core::marker::PhantomData;
use core::mem::size_of;

use abi::errno::EFAULT;

use crate::arch::cpu::with_user_access;
use crate::mm::address_space::MappingStamp;
use crate::mm::user_memory::{active_stamp, with_active_memory};

/// Data that may be copied byte for byte to and from user memory.
///
/// # Safety
/// Implementors must be plain old data: `repr(C)` (or primitive), `Copy`, with no padding
/// bytes that could leak kernel memory on a write, and valid for every bit pattern (so any
/// bytes a process supplies form a valid value).
pub unsafe trait Plain: Copy {}

// SAFETY: integers are valid for every bit pattern and have no padding.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: two u64 fields, `repr(C)`, no padding, any bits valid.
unsafe impl Plain for abi::UserStr {}
// SAFETY: `repr(C)`: four u32, a 32-byte array, then a u64 at offset 48; no padding, and
// every field accepts any bits.
unsafe impl Plain for abi::ProcessInfo {}
// SAFETY: `repr(C)`: u64 fields, then two u32 (offset 40), a u64 (48), two u32 (56, 60) and
// two u64 (64, 72); no padding, any bits valid.
unsafe impl Plain for abi::SysInfo {}
// SAFETY: `repr(C)`: an i32 and a u32, then three u64 (offsets 8, 16, 24); no padding, any
// bits valid.
unsafe impl Plain for abi::ExitInfo {}

// SAFETY: `repr(C)`: five u64 (0..40), four u32 (40..56), two u32 (56, 60), four u32
// (64..80); no padding (the size is checked in `abi`), any bits valid.
unsafe impl Plain for abi::ipc::IpcBuffers {}
// SAFETY: as for the integers above.
unsafe impl Plain for u32 {}
// SAFETY: `repr(C)`: twenty u64 fields, no padding (the size is checked in `abi`), any bits
// valid (the kernel sanitises what it uses).
unsafe impl Plain for abi::exception::Registers {}
// SAFETY: `repr(C)`: three u64 fields, no padding, any bits valid (readers check it).
unsafe impl Plain for abi::backtrace::SymbolMapHeader {}
// SAFETY: five `u32`s, `repr(C)`, no padding.
unsafe impl Plain for abi::FramebufferInfo {}

const _: () = assert!(
    size_of::<abi::ProcessInfo>() == 72
        && size_of::<abi::SysInfo>() == 88
        && size_of::<abi::ExitInfo>() == 32
        && size_of::<abi::backtrace::SymbolMapHeader>() == 24
);

/// The stamp of the active address space if the caller may access `[address, address +
/// len)` in it (writing too, if `write`), else `None`. The copies go through the page table
/// this CPU has loaded, so the check is made against that table's memory and no other. An
/// empty range is always accessible and touches no memory: its stamp is never compared.
#[inline]
fn accessible(address: u64, len: u64, write: bool) -> Option<MappingStamp> {
    if len == 0 {
        return Some(MappingStamp::NONE);
    }
    with_active_memory(|memory| memory.check_user_access(address, len, write).then(|| memory.stamp())).flatten()
}

/// Whether copies through a range checked under `stamp` may go ahead: the active address
/// space is the one it was checked in and nothing was taken away from it since.
#[inline]
fn still_accessible(stamp: MappingStamp) -> Result<(), i64> {
    if active_stamp() == Some(stamp) { Ok(()) } else { Err(EFAULT) }
}

/// Copies `out.len()` bytes from user address `address` into `out`.
///
/// # Safety
/// `[address, address + out.len())` must be mapped user-accessible and readable in the active
/// address space, and stay so until this returns: checked by [`accessible`] in the same
/// function with nothing in between that could take a page away, or compared by
/// [`still_accessible`] just before. (The big kernel lock, held with interrupts masked, keeps
/// every other CPU from changing a mapping meanwhile.)
#[inline]
unsafe fn copy_out_of_user(address: u64, out: &mut [u8]) {
    if out.is_empty() {
        return;
    }
    // SAFETY: the source is readable user memory (the caller's contract), `out` a distinct
    // kernel buffer of the same length.
    with_user_access(|| unsafe { core::ptr::copy_nonoverlapping(address as *const u8, out.as_mut_ptr(), out.len()) });
}

/// Copies `data` to user address `address`.
///
/// # Safety
/// As for [`copy_out_of_user`], with the range writable.
#[inline]
unsafe fn copy_into_user(address: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: the target is writable user memory (the caller's contract), `data` kernel memory
    // of the same length.
    with_user_access(|| unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), address as *mut u8, data.len()) });
}

/// A byte range in the caller's memory.
#[derive(Clone, Copy, Debug)]
pub struct UserSlice {
    address: u64,
    len: u64,
}

impl UserSlice {
    /// The range `[address, address + len)`; nothing is checked until it is used.
    pub fn new(address: u64, len: u64) -> Self {
        Self { address, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that the whole range is readable, or `EFAULT`.
    pub fn check_readable(&self) -> Result<ReadableSlice, i64> {
        let stamp = accessible(self.address, self.len, false).ok_or(EFAULT)?;
        Ok(ReadableSlice(Checked { range: *self, stamp: Cell::new(stamp), write: false }))
    }

    /// Checks that the whole range is writable, or `EFAULT`.
    pub fn check_writable(&self) -> Result<WritableSlice, i64> {
        let stamp = accessible(self.address, self.len, true).ok_or(EFAULT)?;
        Ok(WritableSlice(Checked { range: *self, stamp: Cell::new(stamp), write: true }))
    }

    /// Copies the whole range into `out`, whose length must equal the range's.
    pub fn read_into(&self, out: &mut [u8]) -> Result<(), i64> {
        if out.len() as u64 != self.len {
            return Err(EFAULT);
        }
        accessible(self.address, self.len, false).ok_or(EFAULT)?;
        // SAFETY: checked readable just above.
        unsafe { copy_out_of_user(self.address, out) };
        Ok(())
    }

    /// Reads the whole range into a new vector. The caller bounds `len` before calling, so
    /// the allocation is never sized by an unchecked user value; the range is checked before
    /// anything is allocated.
    pub fn read_to_vec(&self) -> Result<Vec<u8>, i64> {
        accessible(self.address, self.len, false).ok_or(EFAULT)?;
        let mut bytes = alloc::vec![0; self.len as usize];
        // SAFETY: checked readable just above; allocating kernel heap maps or unmaps no user
        // page.
        unsafe { copy_out_of_user(self.address, &mut bytes) };
        Ok(bytes)
    }
}

/// A range checked in the address space named by `stamp` (an empty range's is never
/// compared: no copy touches it).
#[derive(Debug)]
struct Checked {
    range: UserSlice,
    /// The stamp the range was last found accessible under.
    stamp: Cell<MappingStamp>,
    /// Whether it was checked writable.
    write: bool,
}

impl Checked {
    /// The address `len` bytes at `offset` start at, once they are known to lie inside the
    /// range and the range still holds in the active address space. Reaching past the end is
    /// a kernel bug and panics.
    #[inline]
    fn locate(&self, offset: u64, len: usize) -> Result<u64, i64> {
        assert!(offset.checked_add(len as u64).is_some_and(|end| end <= self.range.len), "copy past a checked range");
        if len > 0 && still_accessible(self.stamp.get()).is_err() {
            self.check_again()?;
        }
        Ok(self.range.address + offset)
    }

    /// The rare part of [`locate`](Self::locate): the range's stamp no longer matches.
    #[cold]
    #[inline(never)]
    fn check_again(&self) -> Result<(), i64> {
        // Another address space is active: never copy there.
        let checked = self.stamp.get();
        if !active_stamp().is_some_and(|now| now.same_space(checked)) {
            return Err(EFAULT);
        }
        // The same space, but a page was taken from it since the check: a sibling thread
        // (paused in a long syscall, or running while this one was blocked between two
        // pieces of a copy) unmapped or narrowed something, maybe far from this range.
        // Check the whole range again rather than fail a copy through memory that is still
        // there; `EFAULT` only if it is not.
        let stamp = accessible(self.range.address, self.range.len, self.write).ok_or(EFAULT)?;
        self.stamp.set(stamp);
        Ok(())
    }
}

/// A user range checked readable, for copies later in the same syscall (see the module's
/// text); made by [`UserSlice::check_readable`].
#[derive(Debug)]
pub struct ReadableSlice(Checked);

impl ReadableSlice {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.0.range.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.range.len == 0
    }

    /// Copies `out.len()` bytes from `offset` bytes into the range, or `EFAULT` (nothing
    /// copied) if the range no longer holds. Reaching past its end is a kernel bug and
    /// panics.
    #[inline]
    pub fn copy_to(&self, offset: u64, out: &mut [u8]) -> Result<(), i64> {
        let address = self.0.locate(offset, out.len())?;
        // SAFETY: inside the checked range, whose stamp was compared just now.
        unsafe { copy_out_of_user(address, out) };
        Ok(())
    }
}

/// A user range checked writable, for copies later in the same syscall (see the module's
/// text); made by [`UserSlice::check_writable`].
#[derive(Debug)]
pub struct WritableSlice(Checked);

impl WritableSlice {
    /// Copies `data` to `offset` bytes into the range, or `EFAULT` (nothing copied) if the
    /// range no longer holds. Reaching past its end is a kernel bug and panics.
    #[inline]
    pub fn copy_from(&self, offset: u64, data: &[u8]) -> Result<(), i64> {
        let address = self.0.locate(offset, data.len())?;
        // SAFETY: inside the checked range, whose stamp was compared just now.
        unsafe { copy_into_user(address, data) };
        Ok(())
    }
}

/// The bytes of a plain value.
fn bytes_of<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all its `size_of::<T>()` bytes are initialised.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// Reads a `T` at user address `address`.
///
/// # Safety
/// As for [`copy_out_of_user`], for the `size_of::<T>()` bytes at `address`.
unsafe fn read_plain<T: Plain>(address: u64) -> T {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: a `T` is `size_of::<T>()` initialisable bytes.
    let bytes = unsafe { core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>()) };
    // SAFETY: the caller's contract.
    unsafe { copy_out_of_user(address, bytes) };
    // SAFETY: every byte was written, and `T: Plain` is valid for any bytes.
    unsafe { value.assume_init() }
}

/// A pointer to one `T` in the caller's memory.
#[derive(Debug)]
pub struct UserPtr<T: Plain> {
    address: u64,
    _type: PhantomData<T>,
}

impl<T: Plain> UserPtr<T> {
    /// The pointer `address`; nothing is checked until it is used.
    pub fn new(address: u64) -> Self {
        Self { address, _type: PhantomData }
    }

    /// Whether it is the null pointer (which some syscalls accept as "no output").
    pub fn is_null(&self) -> bool {
        self.address == 0
    }

    /// Checks that the pointee is writable, or `EFAULT`.
    pub fn check_writable(&self) -> Result<(), i64> {
        accessible(self.address, size_of::<T>() as u64, true).map(|_| ()).ok_or(EFAULT)
    }

    /// Reads the value.
    pub fn read(&self) -> Result<T, i64> {
        accessible(self.address, size_of::<T>() as u64, false).ok_or(EFAULT)?;
        // SAFETY: checked readable just above.
        Ok(unsafe { read_plain(self.address) })
    }

    /// Writes `value`.
    pub fn write(&self, value: &T) -> Result<(), i64> {
        self.check_writable()?;
        // SAFETY: checked writable just above.
        unsafe { copy_into_user(self.address, bytes_of(value)) };
        Ok(())
    }
}

/// Reads `count` values of `T` from an array at `address`, checking the whole array first;
/// `max` bounds `count` before anything is allocated.
pub fn read_array<T: Plain>(address: u64, count: u64, max: usize) -> Result<Vec<T>, i64> {
    if count > max as u64 {
        return Err(abi::errno::E2BIG);
    }
    let size = size_of::<T>() as u64;
    accessible(address, count.checked_mul(size).ok_or(EFAULT)?, false).ok_or(EFAULT)?;
    // SAFETY: the whole array was checked readable just above; allocating kernel heap maps
    // or unmaps no user page.
    Ok((0..count).map(|index| unsafe { read_plain(address + index * size) }).collect())
}

/// Fills a user array of `count` `T`s at `address` with the first of `rows()` and returns how
/// many rows there are: the shape of the listing syscalls. The whole array must be writable,
/// however few rows there are, so a count the buffer cannot hold (or whose size overflows) is
/// `EFAULT`; it is checked before `rows` runs.
pub fn write_listing<T: Plain, Rows: AsRef<[T]>>(address: u64, count: u64, rows: impl FnOnce() -> Rows) -> Result<u64, i64> {
    let bytes = count.checked_mul(size_of::<T>() as u64).ok_or(EFAULT)?;
    UserSlice::new(address, bytes).check_writable()?;
    let rows = rows();
    let rows = rows.as_ref();
    let fitting = count.min(rows.len() as u64) as usize;
    write_array(address, &rows[..fitting])?;
    Ok(rows.len() as u64)
}

/// Writes `values` to an array at `address`, checking the whole array first.
pub fn write_array<T: Plain>(address: u64, values: &[T]) -> Result<(), i64> {
    let size = size_of::<T>() as u64;
    accessible(address, (values.len() as u64).checked_mul(size).ok_or(EFAULT)?, true).ok_or(EFAULT)?;
    for (index, value) in (0..).zip(values) {
        // SAFETY: the whole array was checked writable just above.
        unsafe { copy_into_user(address + index * size, bytes_of(value)) };
    }
    Ok(())
}
