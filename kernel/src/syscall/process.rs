//! Process syscalls: `exit`, `getpid`, `getppid`, `yield`, `spawn`, `wait`, `kill`,
//! `process_list`.

use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{E2BIG, ECHILD, EFAULT, EINTR, EINVAL, ENAMETOOLONG, EPERM, ESRCH};
use abi::{ARGV_BYTES_MAX, ARGV_MAX, ExitInfo, NAME_MAX, ProcessInfo, UserStr, WAIT_ANY};

use super::usercopy::{UserPtr, UserSlice, read_array, write_array};
use super::{Args, SyscallResult, require_heap_room};
use crate::object::handles::HandleTable;
use crate::task::scheduler::{self, KillError, WaitError};

/// `exit(status) -> !`.
pub fn exit(args: &Args) -> SyscallResult {
    scheduler::exit_current(args[0] as i32)
}

/// `getpid() -> pid`.
pub fn getpid(_: &Args) -> SyscallResult {
    Ok(u64::from(scheduler::current_pid()))
}

/// `getppid() -> pid`.
pub fn getppid(_: &Args) -> SyscallResult {
    Ok(u64::from(scheduler::parent_pid()))
}

/// `yield() -> 0`.
pub fn yield_cpu(_: &Args) -> SyscallResult {
    scheduler::yield_now();
    Ok(0)
}

fn read_string(text: UserStr, max: usize, too_long: i64) -> Result<String, i64> {
    if text.len > max as u64 {
        return Err(too_long);
    }
    let bytes = UserSlice::new(text.ptr, text.len).read_to_vec()?;
    String::from_utf8(bytes).map_err(|_| EINVAL)
}

/// `spawn(name, name_len, argv, argc) -> pid`.
pub fn spawn(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let name = read_string(UserStr { ptr: args[0], len: args[1] }, NAME_MAX, ENAMETOOLONG)?;
    let argv: Vec<UserStr> = read_array(args[2], args[3], ARGV_MAX)?;
    let total: u64 = argv.iter().fold(0u64, |sum, arg| sum.saturating_add(arg.len));
    if total > ARGV_BYTES_MAX as u64 {
        return Err(E2BIG);
    }
    let mut owned: Vec<String> = argv.into_iter().map(|arg| read_string(arg, ARGV_BYTES_MAX, E2BIG)).collect::<Result<_, _>>()?;
    if owned.is_empty() {
        owned.push(name.clone());
    }
    let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
    let handles = HandleTable::with_console(false)?;
    let pid = scheduler::spawn(&name, &borrowed, scheduler::current_pid(), handles).map_err(|error| error.errno())?;
    Ok(u64::from(pid))
}

/// `wait(pid, info_out) -> pid`.
pub fn wait(args: &Args) -> SyscallResult {
    let target = match args[0] as i64 {
        WAIT_ANY => None,
        pid if pid > 0 => Some(u32::try_from(pid).map_err(|_| ECHILD)?),
        _ => return Err(EINVAL),
    };
    let info_out = UserPtr::<ExitInfo>::new(args[1]);
    if !info_out.is_null() {
        // Checked before reaping, so a bad pointer cannot lose a child's status.
        info_out.check_writable()?;
    }
    let (pid, info) = scheduler::wait(target).map_err(|error| match error {
        WaitError::NoChild => ECHILD,
        WaitError::Interrupted => EINTR,
    })?;
    if !info_out.is_null() {
        info_out.write(&info)?;
    }
    Ok(u64::from(pid))
}

/// `kill(pid) -> 0`.
pub fn kill(args: &Args) -> SyscallResult {
    let pid = u32::try_from(args[0]).map_err(|_| ESRCH)?;
    scheduler::kill(pid).map(|()| 0).map_err(|error| match error {
        KillError::NoSuchProcess => ESRCH,
        KillError::NotPermitted => EPERM,
    })
}

/// `process_list(buf, count) -> total`: fills up to `count` rows. The whole buffer of
/// `count` rows must be writable, however few rows there are to write, so a count the
/// buffer cannot hold (or whose size overflows) is `EFAULT`, as for any other buffer.
pub fn process_list(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let bytes = args[1].checked_mul(size_of::<ProcessInfo>() as u64).ok_or(EFAULT)?;
    UserSlice::new(args[0], bytes).check_writable()?;
    let rows = scheduler::process_list();
    let fitting = (args[1].min(rows.len() as u64)) as usize;
    write_array(args[0], &rows[..fitting])?;
    Ok(rows.len() as u64)
}
