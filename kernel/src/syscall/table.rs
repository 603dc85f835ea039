//! The 256-entry dispatch table. Every slot starts as `ENOSYS`; the assigned numbers from
//! `abi::syscall` are filled in one place below, read top to bottom.

use abi::errno::ENOSYS;
use abi::syscall::*;

use super::{Args, SyscallResult, device, futex, handle, io, ipc, memory, process, system, time, tls};
use crate::arch::trap::TrapFrame;

/// A syscall handler: most take the six argument registers; IPC's take the whole frame,
/// since a message uses more registers both ways.
#[derive(Clone, Copy)]
enum Handler {
    Arguments(fn(&Args) -> SyscallResult),
    Frame(fn(&mut TrapFrame) -> SyscallResult),
}

use Handler::{Arguments, Frame};

fn unassigned(_: &Args) -> SyscallResult {
    Err(ENOSYS)
}

static TABLE: [Handler; TABLE_SIZE] = {
    let mut table: [Handler; TABLE_SIZE] = [Arguments(unassigned); TABLE_SIZE];
    table[EXIT as usize] = Arguments(process::exit);
    table[WRITE as usize] = Arguments(io::write);
    table[READ as usize] = Arguments(io::read);
    table[GETPID as usize] = Arguments(process::getpid);
    table[YIELD as usize] = Arguments(process::yield_cpu);
    table[UPTIME as usize] = Arguments(time::uptime);
    table[BRK as usize] = Arguments(memory::brk);
    table[MMAP as usize] = Arguments(memory::mmap);
    table[MUNMAP as usize] = Arguments(memory::munmap);
    table[MPROTECT as usize] = Arguments(memory::mprotect);
    table[SPAWN as usize] = Arguments(process::spawn);
    table[WAIT as usize] = Arguments(process::wait);
    table[KILL as usize] = Arguments(process::kill);
    table[SLEEP as usize] = Arguments(time::sleep);
    table[PROCESS_LIST as usize] = Arguments(process::process_list);
    table[SHUTDOWN as usize] = Arguments(system::shutdown);
    table[SYSINFO as usize] = Arguments(system::sysinfo);
    table[GETPPID as usize] = Arguments(process::getppid);
    table[HANDLE_CLOSE as usize] = Arguments(handle::close);
    table[HANDLE_DUPLICATE as usize] = Arguments(handle::duplicate);
    table[HANDLE_INFO as usize] = Arguments(handle::handle_info);
    table[ENDPOINT_CREATE as usize] = Arguments(ipc::endpoint_create);
    table[ENDPOINT_MINT as usize] = Arguments(ipc::endpoint_mint);
    table[ENDPOINT_BIND as usize] = Arguments(ipc::endpoint_bind);
    table[CALL as usize] = Frame(ipc::call);
    table[RECV as usize] = Frame(ipc::recv);
    table[REPLY as usize] = Frame(ipc::reply);
    table[REPLY_RECV as usize] = Frame(ipc::reply_recv);
    table[NOTIFICATION_CREATE as usize] = Arguments(ipc::notification_create);
    table[SIGNAL as usize] = Arguments(ipc::signal);
    table[WAIT_NOTIFICATION as usize] = Arguments(ipc::wait);
    table[MEMORY_CREATE as usize] = Arguments(ipc::memory_create);
    table[MEMORY_MAP as usize] = Arguments(ipc::memory_map);
    table[PROCESS_PID as usize] = Arguments(process::process_pid);
    table[PIPE_CREATE as usize] = Arguments(io::pipe_create);
    table[MEMORY_SIZE as usize] = Arguments(ipc::memory_size);
    table[IRQ_BIND as usize] = Arguments(device::irq_bind);
    table[IRQ_ACK as usize] = Arguments(device::irq_ack);
    table[IOPORTS_ENABLE as usize] = Arguments(device::ioports_enable);
    table[FRAMEBUFFER_INFO as usize] = Arguments(device::framebuffer_info);
    table[LOG_READ as usize] = Arguments(device::log_read);
    table[JOB_CREATE as usize] = Arguments(process::job_create);
    table[HANDLE_LIST as usize] = Arguments(handle::handle_list);
    table[THREAD_CREATE as usize] = Arguments(process::thread_create);
    table[THREAD_EXIT as usize] = Arguments(process::thread_exit);
    table[FUTEX_WAIT as usize] = Arguments(futex::futex_wait);
    table[FUTEX_WAKE as usize] = Arguments(futex::futex_wake);
    table[GETTID as usize] = Arguments(process::gettid);
    table[TLS_SET as usize] = Arguments(tls::tls_set);
    table[TLS_GET as usize] = Arguments(tls::tls_get);
    table[EXCEPTION_ENDPOINT_SET as usize] = Arguments(process::exception_endpoint_set);
    table[PROCESS_READ as usize] = Arguments(process::process_read);
    table[PROCESS_WRITE as usize] = Arguments(process::process_write);
    table[PROCESS_COPY as usize] = Arguments(process::process_copy);
    table[THREAD_STATE_READ as usize] = Arguments(process::thread_state_read);
    table[THREAD_STATE_WRITE as usize] = Arguments(process::thread_state_write);
    table[THREAD_START as usize] = Arguments(process::thread_start);
    table
};

/// Runs the syscall a trap frame holds and stores the result in it: the kernel's syscall
/// hook. A process in syscall mode sends it to its exception endpoint instead.
pub fn dispatch_frame(frame: &mut TrapFrame) {
    if crate::task::scheduler::syscalls_as_messages() {
        // Decision 72: not the Enigma table's, but a message to the process's handler.
        crate::task::exception::user_syscall(frame);
        return;
    }
    let (number, args) = frame.syscall_request();
    let handler = usize::try_from(number).ok().and_then(|index| TABLE.get(index)).copied().unwrap_or(Arguments(unassigned));
    let result = match handler {
        Arguments(handler) => handler(&args),
        Frame(handler) => handler(frame),
    };
    frame.set_syscall_result(match result {
        Ok(value) => value as i64,
        Err(errno) => -errno,
    });
}
