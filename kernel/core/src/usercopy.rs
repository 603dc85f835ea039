//! Checked copies between the kernel and the calling process's memory: the only way a
//! syscall handler touches user memory.
//!
//! A [`UserSlice`] or [`UserPtr`] is just an address and a length until it is used. Every
//! read or write first checks, with checked arithmetic, that the whole range lies in the
//! user half and that every page of it is mapped user-accessible (and writable, for writes)
//! in the caller's address space, then copies inside a `stac`/`clac` window. A failed check
//! is `EFAULT` and copies nothing: there is no partial copy, and since the kernel runs with
//! interrupts masked and under the big kernel lock, nothing can unmap a page between the check
//! and the copy.
//!
//! An empty range touches no memory, so its address is not checked at all: Rust's empty
//! slices carry a dangling pointer (`0x1`), and `write(1, b"")` or a `spawn` with an empty
//! argument must not fail because of it.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::mem::size_of;

use abi::errno::EFAULT;

use crate::arch::x86_64::cpu::with_user_access;
use crate::mm::user_memory::with_active;

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

/// Whether the caller may access `[address, address + len)` (writing too, if `write`); an
/// empty range always. The copies go through the page table this CPU has loaded, so the
/// check is made against that table's memory and no other.
#[inline]
fn accessible(address: u64, len: u64, write: bool) -> bool {
    len == 0 || with_active(|memory| memory.space().check_user_access(address, len, write)).unwrap_or(false)
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
        if accessible(self.address, self.len, false) { Ok(ReadableSlice(*self)) } else { Err(EFAULT) }
    }

    /// Checks that the whole range is writable, or `EFAULT`.
    pub fn check_writable(&self) -> Result<WritableSlice, i64> {
        if accessible(self.address, self.len, true) { Ok(WritableSlice(*self)) } else { Err(EFAULT) }
    }

    /// Copies the whole range into `out`, whose length must equal the range's.
    pub fn read_into(&self, out: &mut [u8]) -> Result<(), i64> {
        if out.len() as u64 != self.len {
            return Err(EFAULT);
        }
        self.check_readable()?.copy_to(0, out);
        Ok(())
    }

    /// Reads the whole range into a new vector. The caller bounds `len` before calling, so
    /// the allocation is never sized by an unchecked user value; the range is checked before
    /// anything is allocated.
    pub fn read_to_vec(&self) -> Result<Vec<u8>, i64> {
        let source = self.check_readable()?;
        let mut bytes = alloc::vec![0; self.len as usize];
        source.copy_to(0, &mut bytes);
        Ok(bytes)
    }
}

// A checked range stays valid until the syscall returns, across preemption points too: a
// process's mappings change only through its own syscalls, the caller is inside one, and no
// other process can change them. So copies through a checked range need no second walk of
// the page tables.

/// A user range checked readable; made by [`UserSlice::check_readable`].
#[derive(Clone, Copy, Debug)]
pub struct ReadableSlice(UserSlice);

impl ReadableSlice {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.0.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Copies `out.len()` bytes from `offset` bytes into the range. Reaching past its end is
    /// a kernel bug and panics.
    pub fn copy_to(&self, offset: u64, out: &mut [u8]) {
        assert!(offset.checked_add(out.len() as u64).is_some_and(|end| end <= self.0.len), "copy past a checked range");
        if out.is_empty() {
            return;
        }
        // SAFETY: the bytes lie inside a range checked mapped, user-accessible and readable
        // in the active address space, which has not changed since (see above); `out` is a
        // distinct kernel buffer of the same length.
        with_user_access(|| unsafe {
            core::ptr::copy_nonoverlapping((self.0.address + offset) as *const u8, out.as_mut_ptr(), out.len());
        });
    }

    /// Reads a `T` from `offset` bytes into the range.
    fn read_plain<T: Plain>(&self, offset: u64) -> T {
        let mut value = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: a `T` is `size_of::<T>()` initialisable bytes, all written by `copy_to`.
        let bytes = unsafe { core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>()) };
        self.copy_to(offset, bytes);
        // SAFETY: every byte was written, and `T: Plain` is valid for any bytes.
        unsafe { value.assume_init() }
    }
}

/// A user range checked writable; made by [`UserSlice::check_writable`].
#[derive(Clone, Copy, Debug)]
pub struct WritableSlice(UserSlice);

impl WritableSlice {
    /// Copies `data` to `offset` bytes into the range. Reaching past its end is a kernel bug
    /// and panics.
    pub fn copy_from(&self, offset: u64, data: &[u8]) {
        assert!(offset.checked_add(data.len() as u64).is_some_and(|end| end <= self.0.len), "copy past a checked range");
        if data.is_empty() {
            return;
        }
        // SAFETY: the bytes lie inside a range checked mapped, user-accessible and writable
        // in the active address space, which has not changed since (see above); `data` is
        // kernel memory of the same length.
        with_user_access(|| unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), (self.0.address + offset) as *mut u8, data.len());
        });
    }
}

/// The bytes of a plain value.
fn bytes_of<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all its `size_of::<T>()` bytes are initialised.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
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

    fn bytes(&self) -> UserSlice {
        UserSlice::new(self.address, size_of::<T>() as u64)
    }

    /// Checks that the pointee is writable, or `EFAULT`.
    pub fn check_writable(&self) -> Result<(), i64> {
        self.bytes().check_writable().map(|_| ())
    }

    /// Reads the value.
    pub fn read(&self) -> Result<T, i64> {
        Ok(self.bytes().check_readable()?.read_plain(0))
    }

    /// Writes `value`.
    pub fn write(&self, value: &T) -> Result<(), i64> {
        self.bytes().check_writable()?.copy_from(0, bytes_of(value));
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
    let source = UserSlice::new(address, count.checked_mul(size).ok_or(EFAULT)?).check_readable()?;
    Ok((0..count).map(|index| source.read_plain(index * size)).collect())
}

/// Writes `values` to an array at `address`, checking the whole array first.
pub fn write_array<T: Plain>(address: u64, values: &[T]) -> Result<(), i64> {
    let size = size_of::<T>() as u64;
    let target = UserSlice::new(address, (values.len() as u64).checked_mul(size).ok_or(EFAULT)?).check_writable()?;
    for (index, value) in (0..).zip(values) {
        target.copy_from(index * size, bytes_of(value));
    }
    Ok(())
}
