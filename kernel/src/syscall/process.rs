//! Process and thread syscalls: `exit`, `getpid`, `getppid`, `yield`, `spawn`, `wait`,
//! `kill`, `process_pid`, `process_list`, `thread_create`, `thread_exit`, `gettid`,
//! `exception_endpoint_set`, `process_read`, `process_write`, `process_copy`,
//! `thread_state_read`, `thread_state_write`, `thread_start`, and jobs' `job_create`. A
//! process or thread is reached through a handle: `spawn` and `thread_create` give their
//! caller one; `wait` and `kill` take one. A job (see
//! `object::job`) is reached through a handle too, or as "the caller's own" for `spawn` and
//! `job_create`, which can only put things below it.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::sync::Arc;

use abi::errno::{E2BIG, EAGAIN, EBADF, EBUSY, ECHILD, EFAULT, EINTR, EINVAL, EPERM, ESRCH, ETIMEDOUT};
use abi::exception::{REGISTERS_SIZE, Registers, STATE_FPU, STATE_REGISTERS};
use abi::handle::{NO_HANDLE, rights};
use abi::{ARGV_BYTES_MAX, ARGV_MAX, ExitInfo, NAME_MAX, ProcessInfo, SPAWN_HANDLES_MAX, UserStr, WAIT_ANY};

use super::usercopy::{UserPtr, UserSlice, read_array, write_listing};
use super::{Args, SyscallResult, require_heap_room};
use super::handle::{install, lookup};
use crate::ipc::Timeout;
use crate::mm::user_memory::ProcessMemory;
use crate::object::handles::HandleTable;
use crate::object::job::{Job, JobException};
use crate::object::{Handle, Object};
use crate::arch::trap::TrapFrame;
use crate::task::process::ProcessObject;
use crate::task::thread::{Stopped, ThreadObject};
use crate::task::scheduler::{self, KillError};

/// `exit(status) -> !`: ends the whole process, every thread of it.
pub fn exit(args: &Args) -> SyscallResult {
    scheduler::exit_current(args[0] as i32)
}

/// `thread_exit(status) -> !`: ends the calling thread only (the process with it, if it was
/// the last).
pub fn thread_exit(args: &Args) -> SyscallResult {
    scheduler::leave_current_thread(ExitInfo::exited(args[0] as i32))
}

/// `gettid() -> tid`.
pub fn gettid(_: &Args) -> SyscallResult {
    Ok(u64::from(scheduler::current_tid()))
}

/// `thread_create(entry, stack, arg) -> thread handle`: a thread of the caller's process that
/// enters ring 3 at `entry` with `rsp = stack` and `rdi = arg`. Both addresses must be
/// canonical user addresses (`EINVAL`); what is there is the thread's business (a bad one
/// faults in it, which ends the process).
pub fn thread_create(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let (entry, stack, arg) = (args[0], args[1], args[2]);
    if !abi::memory::is_user_range(entry, 1) || !abi::memory::is_user_range(stack.saturating_sub(1), 1) {
        return Err(EINVAL);
    }
    // Room for the handle first, so a started thread always gets one.
    scheduler::current_object().handles.lock().require_room(1)?;
    let mut frame = TrapFrame::new_user(entry, stack);
    frame.rdi = arg;
    let thread = scheduler::start_thread(&scheduler::current_object(), frame, 0, 0).map_err(|error| error.errno())?;
    install(Handle::new(Object::Thread(thread), rights::THREAD_HANDLE))
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

/// The name a process started with `argv0` gets: its last path component, cut to
/// `NAME_MAX` bytes (at a character boundary).
fn process_name(argv0: &str) -> &str {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    let mut end = base.len().min(NAME_MAX);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    &base[..end]
}

/// `spawn(image, argv, argc, handles, handle_count, flags) -> process handle`: starts the
/// program in the memory object `image` (READ). `argv` holds at least argv\[0\], whose last
/// path component names the process. The child's handle table holds copies of the caller's
/// `handles` (an array of numbers, each needing DUPLICATE), numbered from 0 in that order;
/// the caller gets a handle to the child. `job` is a job handle with MANAGE, or `NO_HANDLE`
/// for the caller's own job.
pub fn spawn(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let job = job_or_own(args[5])?;
    let image = lookup(args[0], rights::READ, |object| match object {
        Object::Memory(memory) => Some(memory.frames().clone()),
        _ => None,
    })?;
    let argv: Vec<UserStr> = read_array(args[1], args[2], ARGV_MAX)?;
    if argv.is_empty() {
        return Err(EINVAL);
    }
    let total: u64 = argv.iter().fold(0u64, |sum, arg| sum.saturating_add(arg.len));
    if total > ARGV_BYTES_MAX as u64 {
        return Err(E2BIG);
    }
    let owned: Vec<String> = argv.into_iter().map(|arg| read_string(arg, ARGV_BYTES_MAX, E2BIG)).collect::<Result<_, _>>()?;
    let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
    let numbers: Vec<u32> = read_array(args[3], args[4], SPAWN_HANDLES_MAX)?;
    let me = scheduler::current_object();
    let mut handles = HandleTable::new()?;
    {
        let mine = me.handles.lock();
        // Room for the child's handle, checked now so that a started child always gets one.
        mine.require_room(1)?;
        for (slot, &number) in (0..).zip(&numbers) {
            handles.insert_at(slot, mine.get(u64::from(number))?.duplicate(rights::ALL)?);
        }
    }
    let name = process_name(borrowed[0]);
    let child =
        scheduler::spawn(name, &*image, &borrowed, scheduler::current_pid(), job, handles).map_err(|error| error.errno())?;
    install(Handle::new(Object::Process(child), rights::PROCESS_HANDLE))
}

/// The job handle `number` names (with MANAGE), or the caller's own job for `NO_HANDLE`.
fn job_or_own(number: u64) -> Result<Arc<Job>, i64> {
    if number == NO_HANDLE {
        return Ok(scheduler::current_job());
    }
    lookup(number, rights::MANAGE, |object| match object {
        Object::Job(job) => Some(job.clone()),
        _ => None,
    })
}

/// `job_create(parent) -> job handle`: a new job below `parent` (MANAGE, or `NO_HANDLE` for
/// the caller's own job).
pub fn job_create(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let parent = job_or_own(args[0])?;
    let job = Job::below(&parent)?;
    install(Handle::new(Object::Job(job), rights::JOB_HANDLE))
}

/// The process a handle names, if it has `rights`.
fn process(number: u64, rights: u32) -> Result<Arc<ProcessObject>, i64> {
    lookup(number, rights, |object| match object {
        Object::Process(process) => Some(process.clone()),
        _ => None,
    })
}

/// `wait(h, info_out, timeout) -> h`: waits until the process or thread `h` names has ended
/// (with [`WAIT_ANY`], any process the caller holds a handle with WAIT to), stores how it
/// ended at `info_out` (unless 0), closes the handle and returns its number. `ECHILD` if the
/// caller holds no such handle at all.
pub fn wait(args: &Args) -> SyscallResult {
    let info_out = UserPtr::<ExitInfo>::new(args[1]);
    if !info_out.is_null() {
        // Checked before closing, so a bad pointer cannot lose how the process ended.
        info_out.check_writable()?;
    }
    let timeout = Timeout::from_nanoseconds(args[2]);
    let me = scheduler::current_object();
    loop {
        let ended = {
            let table = me.handles.lock();
            let ended_info = |handle: &Handle| match handle.object() {
                Object::Process(process) if handle.rights() & rights::WAIT != 0 => *process.exit.lock(),
                _ => None,
            };
            if args[0] == WAIT_ANY as u64 {
                let holds_any = table.first_where(|handle| {
                    matches!(handle.object(), Object::Process(_)) && handle.rights() & rights::WAIT != 0
                });
                if holds_any.is_none() {
                    return Err(ECHILD);
                }
                table.first_where(|handle| ended_info(handle).is_some()).map(|number| (u64::from(number), table.get(u64::from(number)).ok().and_then(ended_info)))
            } else {
                let info = table.lookup(args[0], rights::WAIT, |object| match object {
                    Object::Process(process) => Some(*process.exit.lock()),
                    Object::Thread(thread) => Some(*thread.exit.lock()),
                    _ => None,
                })?;
                info.map(|info| (args[0], Some(info)))
            }
        };
        if let Some((number, Some(info))) = ended {
            if !info_out.is_null() {
                info_out.write(&info)?;
            }
            let closed = me.handles.lock().remove(number);
            drop(closed);
            return Ok(number);
        }
        match timeout {
            Timeout::Poll => return Err(EAGAIN),
            Timeout::Until(deadline) if crate::time::uptime_ns() >= deadline => return Err(ETIMEDOUT),
            _ => {}
        }
        let deadline = match timeout {
            Timeout::Until(deadline) => Some(deadline),
            _ => None,
        };
        scheduler::wait_for_an_exit(deadline).map_err(|_| EINTR)?;
    }
}

/// `kill(h) -> 0`: ends the process `h` names (KILL right); its status becomes
/// `status::KILLED`. `ESRCH` if it has already ended. A thread handle (KILL): ends that
/// thread. A job handle (KILL right): ends every process in the job and below it; `ESRCH` if
/// the job was killed already.
pub fn kill(args: &Args) -> SyscallResult {
    enum Target {
        Process(Arc<ProcessObject>),
        Thread(Arc<ThreadObject>),
        Job(Arc<Job>),
    }
    let target = lookup(args[0], rights::KILL, |object| match object {
        Object::Process(process) => Some(Target::Process(process.clone())),
        Object::Thread(thread) => Some(Target::Thread(thread.clone())),
        Object::Job(job) => Some(Target::Job(job.clone())),
        _ => None,
    })?;
    let killed = match target {
        Target::Process(process) => scheduler::kill(&process),
        Target::Thread(thread) => scheduler::kill_thread(&thread),
        Target::Job(job) => scheduler::kill_job(&job),
    };
    killed.map(|()| 0).map_err(|error| match error {
        KillError::NoSuchProcess => ESRCH,
        KillError::NotPermitted => EPERM,
    })
}

/// `exception_endpoint_set(target, endpoint, flags) -> 0`: where faults of the process or
/// thread `target` names (DEBUG right) go as messages (see `task::exception`): the endpoint
/// `endpoint` names (SEND right: the kernel calls it), or nowhere for `NO_HANDLE`. On a job
/// (MANAGE right): what processes spawned into it from now on start with, and with
/// `exception::SYSCALLS` their system calls go there too (decision 72). `ESRCH` if the target
/// has ended (or the job was killed); `EINVAL` for SYSCALLS on a process or thread, without
/// an endpoint, or an unknown flag.
pub fn exception_endpoint_set(args: &Args) -> SyscallResult {
    enum Target {
        Process(Arc<ProcessObject>),
        Thread(Arc<ThreadObject>),
        Job(Arc<Job>),
    }
    let flags = args[2];
    if flags & !abi::exception::SYSCALLS != 0 {
        return Err(EINVAL);
    }
    let target = {
        let me = scheduler::current_object();
        let table = me.handles.lock();
        let handle = table.get(args[0])?;
        let (target, needed) = match handle.object() {
            Object::Process(process) => (Target::Process(process.clone()), rights::DEBUG),
            Object::Thread(thread) => (Target::Thread(thread.clone()), rights::DEBUG),
            Object::Job(job) => (Target::Job(job.clone()), rights::MANAGE),
            _ => return Err(EBADF),
        };
        handle.require(needed)?;
        target
    };
    let endpoint = match args[1] {
        NO_HANDLE => None,
        number => Some(lookup(number, rights::SEND, |object| match object {
            Object::Endpoint(endpoint) => Some(endpoint.clone()),
            _ => None,
        })?),
    };
    let syscalls = flags & abi::exception::SYSCALLS != 0;
    if syscalls && (endpoint.is_none() || !matches!(target, Target::Job(_))) {
        return Err(EINVAL);
    }
    let (ended, slot) = match &target {
        Target::Process(process) => (process.exit.lock().is_some(), &process.exception_endpoint),
        Target::Thread(thread) => (thread.exit.lock().is_some(), &thread.exception_endpoint),
        Target::Job(job) => {
            let setting = endpoint.map(|endpoint| JobException { endpoint, syscalls });
            // Dropped outside the lock: the last reference to a minted handle reports its close.
            drop(job.set_exception(setting)?);
            return Ok(0);
        }
    };
    if ended {
        return Err(ESRCH);
    }
    let earlier = core::mem::replace(&mut *slot.lock(), endpoint);
    // Dropped outside the lock, as above.
    drop(earlier);
    Ok(0)
}

/// The thread a handle with DEBUG names: a thread handle's, or a process handle's first
/// thread (whose id is the process's; `ESRCH` once it has ended).
fn debugged_thread(number: u64) -> Result<Arc<ThreadObject>, i64> {
    enum Target {
        Process(Arc<ProcessObject>),
        Thread(Arc<ThreadObject>),
    }
    let target = lookup(number, rights::DEBUG, |object| match object {
        Object::Process(process) => Some(Target::Process(process.clone())),
        Object::Thread(thread) => Some(Target::Thread(thread.clone())),
        _ => None,
    })?;
    match target {
        Target::Thread(thread) => Ok(thread),
        Target::Process(process) => scheduler::first_thread_of(&process).ok_or(ESRCH),
    }
}

/// The registers of a stopped thread: `ESRCH` once it has ended, `EBUSY` unless it is
/// stopped.
fn stopped_registers(thread: &ThreadObject) -> Result<Registers, i64> {
    if thread.exit.lock().is_some() {
        return Err(ESRCH);
    }
    thread.stopped.lock().map(|stopped| stopped.registers).ok_or(EBUSY)
}

/// `thread_state_read(thread, which, buf, len) -> size`: a stopped thread's registers or
/// floating-point save area (DEBUG); `len` 0 asks for the size only.
pub fn thread_state_read(args: &Args) -> SyscallResult {
    let thread = debugged_thread(args[0])?;
    let size = state_size(args[1])?;
    let (buffer, len) = (args[2], args[3]);
    stopped_registers(&thread)?;
    if len == 0 {
        return Ok(size as u64);
    }
    if len < size as u64 {
        return Err(E2BIG);
    }
    let bytes = match args[1] {
        STATE_REGISTERS => stopped_registers(&thread)?.to_bytes().to_vec(),
        _ => {
            let mut area = alloc::vec![0; size];
            scheduler::with_thread_stack(&thread, |stack| stack.read_saved_area(&mut area)).ok_or(ESRCH)?.map_err(|_| EBUSY)?;
            area
        }
    };
    UserSlice::new(buffer, size as u64).check_writable()?.copy_from(0, &bytes)?;
    Ok(size as u64)
}

/// `thread_state_write(thread, which, buf, len) -> 0`: replaces a stopped thread's registers
/// (sanitised as a RESUME's) or floating-point save area (checked so that restoring it cannot
/// fault); `len` must be the size exactly.
pub fn thread_state_write(args: &Args) -> SyscallResult {
    let thread = debugged_thread(args[0])?;
    let size = state_size(args[1])?;
    if args[3] != size as u64 {
        return Err(EINVAL);
    }
    let bytes = UserSlice::new(args[2], args[3]).read_to_vec()?;
    let stopped = stopped_registers(&thread)?;
    match args[1] {
        STATE_REGISTERS => {
            let registers = Registers::from_bytes(&bytes).ok_or(EINVAL)?.sanitised().map_err(|_| EINVAL)?;
            let mut slot = thread.stopped.lock();
            // Still the same stop: the thread took nothing meanwhile (no preemption point lies
            // between, but its answer may have been delivered on another CPU).
            match slot.as_mut() {
                Some(kept) => *kept = Stopped { registers: Registers { flags: stopped.flags, ..registers }, written: true },
                None => return Err(EBUSY),
            }
        }
        _ => {
            scheduler::with_thread_stack(&thread, |stack| stack.write_saved_area(&bytes))
                .ok_or(ESRCH)?
                .map_err(|_| EBUSY)?
                .map_err(|_| EINVAL)?;
        }
    }
    Ok(0)
}

/// The size of the state `which` names.
fn state_size(which: u64) -> Result<usize, i64> {
    match which {
        STATE_REGISTERS => Ok(REGISTERS_SIZE),
        STATE_FPU => Ok(crate::arch::user_state::area_size()),
        _ => Err(EINVAL),
    }
}

/// `thread_start(process, registers) -> thread handle`: a thread in the process `process`
/// names (DEBUG) that starts with the registers at `registers` (sanitised: `EINVAL`).
pub fn thread_start(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let target = process(args[0], rights::DEBUG)?;
    let mut bytes = [0u8; REGISTERS_SIZE];
    UserSlice::new(args[1], REGISTERS_SIZE as u64).read_into(&mut bytes)?;
    let registers = Registers::from_bytes(&bytes).ok_or(EINVAL)?;
    // Room for the handle first, so a started thread always gets one.
    scheduler::current_object().handles.lock().require_room(1)?;
    let thread = crate::task::exception::start_thread(&target, &registers).map_err(|error| error.errno())?;
    install(Handle::new(Object::Thread(thread), rights::THREAD_HANDLE))
}

/// The memories of the process `h` names (DEBUG) and of the caller, for `process_read` and
/// `process_write`, after the length check.
fn debugged_memory(number: u64, len: u64) -> Result<(Arc<ProcessMemory>, Arc<ProcessMemory>), i64> {
    if len > abi::ipc::BUFFER_MAX {
        return Err(E2BIG);
    }
    let target = process(number, rights::DEBUG)?;
    let theirs = scheduler::memory_of(target.pid).ok_or(ESRCH)?;
    let mine = scheduler::memory_of(scheduler::current_pid()).ok_or(ESRCH)?;
    Ok((theirs, mine))
}

/// `process_read(h, address, buf, len) -> 0`: bytes of another process's memory (DEBUG).
pub fn process_read(args: &Args) -> SyscallResult {
    let (theirs, mine) = debugged_memory(args[0], args[3])?;
    ProcessMemory::copy_between(&theirs, args[1], &mine, args[2], args[3]).map(|()| 0).map_err(|_| EFAULT)
}

/// `process_write(h, address, buf, len) -> 0`: bytes into another process's writable memory
/// (DEBUG).
pub fn process_write(args: &Args) -> SyscallResult {
    let (theirs, mine) = debugged_memory(args[0], args[3])?;
    ProcessMemory::copy_between(&mine, args[2], &theirs, args[1], args[3]).map(|()| 0).map_err(|_| EFAULT)
}

/// `process_pid(h) -> pid`: the id of the process `h` names.
pub fn process_pid(args: &Args) -> SyscallResult {
    process(args[0], 0).map(|process| u64::from(process.pid))
}

/// `process_list(buf, count) -> total`: fills up to `count` rows. The whole buffer of
/// `count` rows must be writable, however few rows there are to write, so a count the
/// buffer cannot hold (or whose size overflows) is `EFAULT`, as for any other buffer.
pub fn process_list(args: &Args) -> SyscallResult {
    require_heap_room()?;
    write_listing::<ProcessInfo, _>(args[0], args[1], scheduler::process_list)
}

/// `process_copy(source, registers, job) -> process handle`: a copy-on-write copy of the
/// process `source` names (DEBUG), with an empty handle table, whose one thread starts with
/// `registers` (sanitised as a fault handler's answer is; `EINVAL` if they cannot be), in
/// `job` (MANAGE, or `NO_HANDLE` for the caller's own).
pub fn process_copy(args: &Args) -> SyscallResult {
    require_heap_room()?;
    let source = process(args[0], rights::DEBUG)?;
    let registers = UserPtr::<Registers>::new(args[1]).read()?;
    let job = job_or_own(args[2])?;
    let (frame, fs_base, gs_base) = crate::task::exception::entry_state(&registers).map_err(|_| EINVAL)?;
    // Room for the handle first, so a started copy always gets one.
    scheduler::current_object().handles.lock().require_room(1)?;
    let copy = scheduler::copy_process(&source, frame, fs_base, gs_base, job).map_err(|error| error.errno())?;
    install(Handle::new(Object::Process(copy), rights::PROCESS_HANDLE))
}
