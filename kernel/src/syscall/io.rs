//! Console syscalls: `write`, `read`, `set_foreground`, `console_mode`.

use abi::errno::{EINTR, EINVAL, EPERM, ESRCH};
use abi::handle::{NO_HANDLE, rights};

use super::handle::lookup;
use super::usercopy::UserSlice;
use crate::object::Object;
use super::{Args, SyscallResult};
use crate::console::input;
use crate::console::line_discipline::{LINE_MAX, Mode};
use crate::task::scheduler;

/// Bytes copied from user memory and written per step of a `write`. Between steps the process
/// may be preempted or killed, so a huge write neither stalls the machine nor needs a large
/// kernel buffer.
const WRITE_CHUNK: u64 = 256;

/// Checks that handle `number` names the console with `rights`.
fn console(number: u64, rights: u32) -> Result<(), i64> {
    lookup(number, rights, |object| matches!(object, Object::Console).then_some(()))
}

/// `write(h, buf, len) -> len`: to the console, through a console handle with WRITE. The
/// framebuffer's pixels are drawn after the bytes, in bounded steps with preemption points
/// between them. A process killed part-way gets the count written so far (or `EINTR` if
/// nothing was).
pub fn write(args: &Args) -> SyscallResult {
    let buffer = UserSlice::new(args[1], args[2]);
    console(args[0], rights::WRITE)?;
    // The whole range is checked up front, so a bad tail fails before anything is written.
    let source = buffer.check_readable()?;
    let mut chunk = [0u8; WRITE_CHUNK as usize];
    let mut offset = 0;
    while offset < source.len() {
        if offset > 0 && scheduler::preemption_point().is_err() {
            break;
        }
        let bytes = &mut chunk[..WRITE_CHUNK.min(source.len() - offset) as usize];
        source.copy_to(offset, bytes);
        crate::console::write_bytes_undrawn(bytes);
        offset += bytes.len() as u64;
    }
    crate::console::draw_in_steps(|| scheduler::preemption_point().is_ok());
    Ok(offset)
}

/// `read(h, buf, len) -> bytes`: through a console handle with READ; blocks until the
/// console has input; 0 at end of input.
pub fn read(args: &Args) -> SyscallResult {
    let buffer = UserSlice::new(args[1], args[2]);
    console(args[0], rights::READ)?;
    let target = buffer.check_writable()?;
    if buffer.is_empty() {
        return Ok(0);
    }
    let mut kernel_buffer = [0u8; LINE_MAX + 1];
    let wanted = (buffer.len() as usize).min(kernel_buffer.len());
    let count = scheduler::wait_for_console(|| input::take_input(&mut kernel_buffer[..wanted])).map_err(|_| EINTR)?;
    target.copy_from(0, &kernel_buffer[..count]);
    Ok(count as u64)
}

/// `set_foreground(h) -> 0`: makes the process `h` names (KILL right; `NO_HANDLE` for none)
/// the one Ctrl-C kills; `ESRCH` if it has ended. Only the foreground process itself, or a holder of a handle with
/// KILL to it, may replace it (`EPERM` otherwise), so a background job cannot take Ctrl-C
/// away from the program in front.
pub fn set_foreground(args: &Args) -> SyscallResult {
    let pid = if args[0] == NO_HANDLE {
        0
    } else {
        let process = lookup(args[0], rights::KILL, |object| match object {
            Object::Process(process) => Some(process.clone()),
            _ => None,
        })?;
        // An ended process is forgotten by the console already; naming it would leave a
        // foreground that nobody could replace.
        if process.exit.lock().is_some() {
            return Err(ESRCH);
        }
        process.pid
    };
    let current = input::foreground();
    if current != 0 && current != scheduler::current_pid() {
        let holds_a_kill_handle = scheduler::current_object().handles.lock().first_where(|handle| {
            handle.rights() & rights::KILL != 0 && matches!(handle.object(), Object::Process(process) if process.pid == current)
        });
        if holds_a_kill_handle.is_none() {
            return Err(EPERM);
        }
    }
    input::set_foreground(pid);
    Ok(0)
}

/// `console_mode(mode) -> previous mode`.
pub fn console_mode(args: &Args) -> SyscallResult {
    let mode = match args[0] {
        abi::CONSOLE_COOKED => Mode::Cooked,
        abi::CONSOLE_RAW => Mode::Raw,
        _ => return Err(EINVAL),
    };
    Ok(match input::set_mode(mode, scheduler::current_pid()) {
        Mode::Cooked => abi::CONSOLE_COOKED,
        Mode::Raw => abi::CONSOLE_RAW,
    })
}
