//! Handle syscalls: `handle_close`, `handle_duplicate`, `handle_info`, and the lookups every
//! other handler uses to turn a handle number into an object.

use abi::handle::{HANDLE_MAX, info};

use super::usercopy::write_listing;
use super::{Args, SyscallResult, require_heap_room};
use crate::object::{Handle, Object};
use crate::task::process::ProcessObject;
use crate::task::scheduler;

/// The object the running process's handle `number` names, if it has `rights` and `select`
/// accepts its kind (see `HandleTable::lookup`).
pub fn lookup<T>(number: u64, rights: u32, select: impl FnOnce(&Object) -> Option<T>) -> Result<T, i64> {
    lookup_in(&scheduler::current_object(), number, rights, select)
}

/// [`lookup`] in the table of `process` (the running process, already at hand).
pub fn lookup_in<T>(
    process: &ProcessObject,
    number: u64,
    rights: u32,
    select: impl FnOnce(&Object) -> Option<T>,
) -> Result<T, i64> {
    process.handles.lock().lookup(number, rights, select)
}

/// Puts `handle` in the running process's table: its number, or `EMFILE`.
pub fn install(handle: Handle) -> SyscallResult {
    let object = scheduler::current_object();
    let installed = object.handles.lock().insert(handle);
    match installed {
        Ok(number) => Ok(u64::from(number)),
        // Dropped here, outside the table's lock.
        Err(_handle) => Err(abi::errno::EMFILE),
    }
}

/// `handle_close(h) -> 0`.
pub fn close(args: &Args) -> SyscallResult {
    let object = scheduler::current_object();
    let removed = object.handles.lock().remove(args[0]);
    // The handle is dropped outside the table's lock: the object may die and wake others.
    removed.map(|_handle| 0)
}

/// `handle_duplicate(h, rights) -> new handle`: the same object, with the rights of `h` that
/// `rights` keeps. Needs the DUPLICATE right.
pub fn duplicate(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let rights = u32::try_from(args[1]).map_err(|_| abi::errno::EINVAL)?;
    let object = scheduler::current_object();
    let copy = object.handles.lock().get(args[0])?.duplicate(rights)?;
    install(copy)
}

/// `handle_info(h) -> kind << 32 | rights`.
pub fn handle_info(args: &Args) -> SyscallResult {
    let object = scheduler::current_object();
    let table = object.handles.lock();
    let handle = table.get(args[0])?;
    Ok(info(handle.object().kind(), handle.rights()))
}

/// `handle_list(buf, count) -> total`: the numbers of the caller's handles (`u32`s, in slot
/// order), at most `count` of them, and how many it holds. The whole buffer of `count`
/// numbers must be writable, as for `process_list`.
pub fn handle_list(args: &Args) -> SyscallResult {
    let mut numbers = [0u32; HANDLE_MAX];
    let total = {
        let object = scheduler::current_object();
        let table = object.handles.lock();
        numbers.iter_mut().zip(table.numbers()).map(|(slot, number)| *slot = number).count()
    };
    write_listing(args[0], args[1], || &numbers[..total])
}
