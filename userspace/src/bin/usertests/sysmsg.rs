//! System calls as messages, thread state by handle and threads started in another process
//! (decision 72). The children in syscall mode are tiny ELF programs made here from
//! position-independent routines of this program (copied between two labels,
//! `process::spawn_code`), so that every
//! instruction they run is known: none of them makes an Enigma system call that the suite
//! would have to answer first. They are spawned into a job whose exception endpoint was set
//! with `SYSCALLS`, and the suite is their handler.

use alloc::format;
use alloc::string::String;
use core::arch::global_asm;

use abi::errno::{E2BIG, EBUSY, EINVAL, EPERM, ESRCH};
use abi::exception::{IN_SYSCALL, REGISTERS_SIZE, Registers, STATE_FPU, STATE_REGISTERS, SYSCALLS, VIA_INT80};
use abi::fault::INVALID_OPCODE;
use abi::handle::{NO_HANDLE, rights};
use abi::status::{FAULT, KILLED};
use abi::ExitInfo;
use userlib::check;
use userlib::exception::{self, Exception, Syscall};
use userlib::ipc::{Endpoint, Reply};
use userlib::process::Ending;
use userlib::sys::{self, Child};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here sysmsg_a_syscall_reaches_the_handler_and_gets_its_result,
    here sysmsg_int80_is_a_message_flagged_apart,
    here sysmsg_the_handlers_registers_are_resumed_exactly,
    here sysmsg_the_first_instruction_is_already_in_the_mode,
    here sysmsg_a_non_canonical_rip_kills_the_child,
    here sysmsg_a_handler_that_dies_kills_the_stopped_child,
    here sysmsg_a_job_below_inherits_the_mode,
    here sysmsg_setting_the_mode_is_checked,
    here sysmsg_thread_state_reads_and_writes_registers,
    here sysmsg_thread_state_reads_and_writes_an_xmm_register,
    here sysmsg_thread_state_needs_a_stopped_thread_and_debug,
    here sysmsg_thread_start_runs_chosen_registers_in_a_child,
    here sysmsg_thread_start_needs_debug_and_a_live_process,
    here sysmsg_a_thread_started_in_a_syscall_mode_child_is_in_the_mode,
    here sysmsg_a_copy_of_a_syscall_mode_child_is_in_the_mode,
];

pub const HELPERS: &[(&str, Helper)] = &[("sysmsg_idle", helper_idle), ("sysmsg_handler", helper_handler)];

// The programs of the children in syscall mode (position-independent: they are copied), and
// the entry of a thread started in another process.
global_asm!(
    ".pushsection .text.usertests_sysmsg, \"ax\"",
    // Six arguments and `syscall` 1000; keeps what it resumed with in r12-r15 and makes
    // `int 0x80` 1001; then `exit(5)`.
    ".global usertests_sysmsg_args",
    "usertests_sysmsg_args:",
    "mov edi, 11",
    "mov esi, 22",
    "mov edx, 33",
    "mov r10d, 44",
    "mov r8d, 55",
    "mov r9d, 66",
    "xor ebx, ebx",
    "mov eax, 1000",
    "syscall",
    "mov r12, rax",
    "mov r13, rcx",
    "mov r14, r11",
    "mov r15, rbx",
    "mov eax, 1001",
    "int 0x80",
    "xor eax, eax",
    "mov edi, 5",
    "syscall",
    "ud2",
    ".global usertests_sysmsg_args_end",
    "usertests_sysmsg_args_end:",
    // `exit(9)` first of all, then `ud2`.
    ".global usertests_sysmsg_exit",
    "usertests_sysmsg_exit:",
    "xor eax, eax",
    "mov edi, 9",
    "syscall",
    "ud2",
    ".global usertests_sysmsg_exit_end",
    "usertests_sysmsg_exit_end:",
    // A known value in xmm3, `syscall` 1000, then xmm3's low half in r12 for `syscall` 1001.
    ".global usertests_sysmsg_fpu",
    "usertests_sysmsg_fpu:",
    "mov rax, 0x1122334455667788",
    "movq xmm3, rax",
    "mov eax, 1000",
    "syscall",
    "movq r12, xmm3",
    "mov eax, 1001",
    "syscall",
    "ud2",
    ".global usertests_sysmsg_fpu_end",
    "usertests_sysmsg_fpu_end:",
    // A thread `thread_start` puts in a child: exits with fs:[0] + rdi + rbx.
    ".global usertests_sysmsg_started",
    "usertests_sysmsg_started:",
    "mov rax, fs:[0]",
    "add rax, rdi",
    "add rax, rbx",
    "mov rdi, rax",
    "xor eax, eax",
    "syscall",
    "ud2",
    ".popsection",
);

/// What a started thread finds at its FS base (the same address in every process of this
/// program).
static FS_WORD: u64 = 3;

/// The bytes between two labels of this program.
fn code_between(start: u64, end: u64) -> &'static [u8] {
    // SAFETY: both labels lie in this program's text, `start` before `end`, which stays
    // mapped readable for the program's life.
    unsafe { core::slice::from_raw_parts(start as *const u8, (end - start) as usize) }
}

/// Which tiny program a child runs.
#[derive(Clone, Copy)]
enum Program {
    Args,
    Exit,
    Fpu,
}

impl Program {
    fn code(self) -> &'static [u8] {
        match self {
            Self::Args => code_between(symbol_address!("usertests_sysmsg_args"), symbol_address!("usertests_sysmsg_args_end")),
            Self::Exit => code_between(symbol_address!("usertests_sysmsg_exit"), symbol_address!("usertests_sysmsg_exit_end")),
            Self::Fpu => code_between(symbol_address!("usertests_sysmsg_fpu"), symbol_address!("usertests_sysmsg_fpu_end")),
        }
    }
}

/// A job in syscall mode with the suite's endpoint as its handler.
struct ModeJob {
    job: u64,
    handler: Endpoint,
}

impl ModeJob {
    fn new() -> Result<Self, String> {
        let handler = endpoint()?;
        let job = sys::job_create(None).context("job_create")?;
        exception::set_job(job, Some(&handler), SYSCALLS).context("exception_endpoint_set on a job with SYSCALLS")?;
        Ok(Self { job, handler })
    }

    /// Spawns `program` into `job` (this one's, or one below it).
    fn spawn_into(&self, job: u64, program: Program) -> Result<Child, String> {
        userlib::process::spawn_code(program.code(), "sysmsg-tiny", Some(job)).context("spawn into the syscall-mode job")
    }

    fn spawn(&self, program: Program) -> Result<Child, String> {
        self.spawn_into(self.job, program)
    }

    /// The next syscall message and its reply handle.
    fn next_syscall(&self) -> Result<(Syscall, Reply), String> {
        let mut room = [0u8; REGISTERS_SIZE];
        let request = self.handler.recv(&mut room, HANG_NS).context("recv of a syscall message")?;
        let syscall = Syscall::decode(&request, &room)
            .ok_or_else(|| format!("not a syscall message: label {:#x}, {} bytes", request.message.label, request.arrived.len))?;
        Ok((syscall, request.reply.ok_or("the syscall message came without a reply handle")?))
    }
}

impl Drop for ModeJob {
    fn drop(&mut self) {
        let _ = sys::kill_handle(self.job);
        let _ = userlib::ipc::close(self.job);
    }
}

/// Answers `reply` with `registers`.
fn resume(reply: Reply, registers: &Registers) -> Outcome {
    exception::resume(reply, Some(registers)).context("reply RESUME")
}

/// Fails unless `info` is an end by a kill (status KILLED, no fault).
fn expect_killed(what: &str, info: ExitInfo) -> Outcome {
    check!(info == ExitInfo::exited(KILLED), "{what} {}, expected a kill", Ending(info));
    Ok(())
}

/// The args program's first message, answered with rax = 7, rcx, r11, rbx and the FS base
/// changed; returns the second (the `int 0x80`).
fn args_to_int80(mode: &ModeJob, child: Child) -> Result<(Syscall, Syscall, Reply), String> {
    let (first, reply) = mode.next_syscall()?;
    let answer = Registers { rax: 7, rcx: 0x1111, r11: 0x2222, rbx: 0x3333, fs_base: 0x5000, ..first.registers };
    resume(reply, &answer)?;
    let (second, reply) = mode.next_syscall()?;
    check!(second.tid == child.pid, "the int 0x80 came from thread {}, not {}", second.tid, child.pid);
    Ok((first, second, reply))
}

fn sysmsg_a_syscall_reaches_the_handler_and_gets_its_result() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Args)?;
    let (first, second, reply) = args_to_int80(&mode, child)?;
    exception::kill(reply).context("reply KILL")?;
    let info = finish_within(child, "the syscall-mode child")?;
    check!(first.number == 1000, "syscall number {}, expected 1000", first.number);
    check!(first.args() == [11, 22, 33, 44, 55, 66], "arguments {:?}", first.args());
    check!(first.flags == IN_SYSCALL && first.registers.flags == IN_SYSCALL, "flags {:#x}/{:#x}", first.flags, first.registers.flags);
    check!(first.tid == child.pid, "thread {} is not the child's first ({})", first.tid, child.pid);
    // `syscall` left the return address in rcx, as the CPU does.
    check!(first.registers.rcx == first.registers.rip, "rcx {:#x} is not the rip {:#x}", first.registers.rcx, first.registers.rip);
    check!(second.registers.r12 == 7, "the child saw rax {:#x}, not the handler's 7", second.registers.r12);
    expect_killed("the child answered KILL", info)
}

fn sysmsg_int80_is_a_message_flagged_apart() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Args)?;
    let (first, second, reply) = args_to_int80(&mode, child)?;
    exception::kill(reply).context("reply KILL")?;
    let info = finish_within(child, "the syscall-mode child")?;
    check!(second.number == 1001, "int 0x80 number {}, expected 1001", second.number);
    check!(second.flags == IN_SYSCALL | VIA_INT80, "int 0x80 flags {:#x}", second.flags);
    check!(first.flags & VIA_INT80 == 0, "the syscall instruction was flagged int 0x80");
    // `int 0x80` is two bytes, as `syscall` is: it resumed right after the first.
    check!(second.registers.rip > first.registers.rip, "rip went from {:#x} to {:#x}", first.registers.rip, second.registers.rip);
    expect_killed("the child answered KILL", info)
}

fn sysmsg_the_handlers_registers_are_resumed_exactly() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Args)?;
    let (_, second, reply) = args_to_int80(&mode, child)?;
    exception::kill(reply).context("reply KILL")?;
    let info = finish_within(child, "the syscall-mode child")?;
    let seen = &second.registers;
    // rcx and r11 cannot come back through sysret: the kernel returns through iretq.
    check!(seen.r13 == 0x1111 && seen.r14 == 0x2222, "rcx/r11 after the resume: {:#x}/{:#x}", seen.r13, seen.r14);
    check!(seen.r15 == 0x3333, "rbx after the resume: {:#x}", seen.r15);
    check!(seen.fs_base == 0x5000, "FS base after the resume: {:#x}", seen.fs_base);
    expect_killed("the child answered KILL", info)
}

fn sysmsg_the_first_instruction_is_already_in_the_mode() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Exit)?;
    // Its first instruction block is `exit(9)`: run by the kernel, no message would come.
    let (exit, reply) = mode.next_syscall()?;
    check!(exit.number == abi::syscall::EXIT && exit.args()[0] == 9, "first syscall {} ({:?})", exit.number, exit.args());
    exception::resume(reply, None).context("reply RESUME")?;
    // Resumed past the `exit`, it reaches the `ud2`, a fault to the same endpoint.
    let mut room = [0u8; exception::ROOM];
    let request = mode.handler.recv(&mut room, HANG_NS).context("recv of the fault")?;
    let fault = Exception::decode(&request, &room).ok_or("no fault message after the exit was resumed")?;
    exception::kill(request.reply.ok_or("no reply handle")?).context("reply KILL")?;
    let info = finish_within(child, "the syscall-mode child")?;
    check!(fault.vector == INVALID_OPCODE, "fault {} after the exit", fault.name());
    check!(info.status == FAULT && info.fault() == Some(INVALID_OPCODE), "the child {}, expected its ud2", Ending(info));
    Ok(())
}

fn sysmsg_a_non_canonical_rip_kills_the_child() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Exit)?;
    let (exit, reply) = mode.next_syscall()?;
    resume(reply, &Registers { rip: 1 << 47, ..exit.registers })?;
    let info = finish_within(child, "the syscall-mode child")?;
    expect_killed("the child resumed at a non-canonical rip", info)?;
    // Killed at the answer: it never ran on to its `ud2`.
    let mut room = [0u8; exception::ROOM];
    expect_errno_of("a message after the refused resume", mode.handler.recv(&mut room, 0).map(|_| ()), abi::errno::EAGAIN)
}

/// `sysmsg_handler`: receives one message on its handle 3 and exits without answering.
fn helper_handler(_: &[&str]) -> i32 {
    let endpoint = Endpoint::from_raw(3);
    let mut room = [0u8; REGISTERS_SIZE];
    match endpoint.recv(&mut room, abi::ipc::FOREVER) {
        Ok(request) if request.message.label == exception::SYSCALL => 0,
        _ => 1,
    }
}

fn sysmsg_a_handler_that_dies_kills_the_stopped_child() -> Outcome {
    let mode = ModeJob::new()?;
    let handler = spawn_with_handles("sysmsg_handler", &[], &[0, 1, 2, mode.handler.handle().raw() as u32])?;
    let child = mode.spawn(Program::Exit)?;
    let handler_info = finish_within(handler, "the handler")?;
    let info = finish_within(child, "the syscall-mode child")?;
    expect_exit("the handler", handler_info, 0)?;
    expect_killed("the child whose handler died", info)
}

fn sysmsg_a_job_below_inherits_the_mode() -> Outcome {
    let mode = ModeJob::new()?;
    let below = sys::job_create(Some(mode.job)).context("job_create below")?;
    let child = mode.spawn_into(below, Program::Exit);
    let _ = userlib::ipc::close(below);
    let child = child?;
    let (exit, reply) = mode.next_syscall()?;
    exception::kill(reply).context("reply KILL")?;
    let info = finish_within(child, "the child in the job below")?;
    check!(exit.number == abi::syscall::EXIT, "syscall {} from the job below", exit.number);
    expect_killed("the child answered KILL", info)
}

fn sysmsg_setting_the_mode_is_checked() -> Outcome {
    let handler = endpoint()?;
    let raw = handler.handle().raw();
    let job = sys::job_create(None).context("job_create")?;
    let child = spawn_child("sysmsg_idle", &[])?;
    let outcome = (|| {
        expect_errno_of("SYSCALLS on a process", sys::exception_endpoint_set(child.handle, Some(raw), SYSCALLS), EINVAL)?;
        expect_errno_of("SYSCALLS without an endpoint", sys::exception_endpoint_set(job, None, SYSCALLS), EINVAL)?;
        expect_errno_of("an unknown flag", sys::exception_endpoint_set(job, Some(raw), 1 << 5), EINVAL)?;
        let unmanaged = userlib::ipc::duplicate(job, rights::ALL & !rights::MANAGE).context("handle_duplicate")?;
        let refused = sys::exception_endpoint_set(unmanaged, Some(raw), SYSCALLS);
        let _ = userlib::ipc::close(unmanaged);
        expect_errno_of("a job handle without MANAGE", refused, EPERM)?;
        sys::kill_handle(job).context("kill of the job")?;
        expect_errno_of("a killed job", sys::exception_endpoint_set(job, Some(raw), SYSCALLS), ESRCH)?;
        // Without the mode (every process so far), int 0x80 is the Enigma system call.
        let pid = call_int80(abi::syscall::GETPID);
        check!(pid == i64::from(sys::getpid()), "int 0x80 getpid gave {pid}");
        Ok(())
    })();
    let _ = userlib::ipc::close(job);
    kill_and_reap(&[child])?;
    outcome
}

/// Makes system call `number` (no arguments) through `int 0x80`.
fn call_int80(number: u64) -> i64 {
    let result: i64;
    // SAFETY: a system call without arguments that changes no memory of this program.
    unsafe { core::arch::asm!("int 0x80", inlateout("rax") number as i64 => result, options(nostack)) };
    result
}

/// `sysmsg_idle`: sleeps until it is killed (at most 10 s, then exits 1).
fn helper_idle(_: &[&str]) -> i32 {
    let _ = sys::sleep_ms(10_000);
    1
}

fn sysmsg_thread_state_reads_and_writes_registers() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Args)?;
    let outcome = (|| {
        let (first, reply) = mode.next_syscall()?;
        let mut bytes = [0u8; REGISTERS_SIZE];
        let size = sys::thread_state_read(child.handle, STATE_REGISTERS, &mut bytes).context("thread_state_read")?;
        check!(size == REGISTERS_SIZE, "registers of {size} bytes");
        check!(Registers::from_bytes(&bytes) == Some(first.registers), "the registers read differ from the message's");
        let changed = Registers { rax: 77, rbx: 0x3333, ..first.registers };
        sys::thread_state_write(child.handle, STATE_REGISTERS, &changed.to_bytes()).context("thread_state_write")?;
        let bad = Registers { rsp: 0xffff_8000_0000_0000, ..first.registers };
        expect_errno_of("a kernel-half rsp", sys::thread_state_write(child.handle, STATE_REGISTERS, &bad.to_bytes()), EINVAL)?;
        // Resumed without registers: with the ones written.
        exception::resume(reply, None).context("reply RESUME")?;
        let (second, reply) = mode.next_syscall()?;
        exception::kill(reply).context("reply KILL")?;
        check!(second.registers.r12 == 77 && second.registers.r15 == 0x3333, "rax/rbx after the write: {:#x}/{:#x}", second.registers.r12, second.registers.r15);
        Ok(())
    })();
    let info = finish_within(child, "the syscall-mode child")?;
    outcome?;
    expect_killed("the child answered KILL", info)
}

/// Offset of XMM3 in the save area's legacy region, and of the XSAVE header's XSTATE_BV.
const XMM3_OFFSET: usize = 160 + 3 * 16;
const XSTATE_BV_OFFSET: usize = 512;
const MXCSR_OFFSET: usize = 24;

fn sysmsg_thread_state_reads_and_writes_an_xmm_register() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Fpu)?;
    let outcome = (|| {
        let (_, reply) = mode.next_syscall()?;
        let size = sys::thread_state_read(child.handle, STATE_FPU, &mut []).context("thread_state_read of the size")?;
        check!(size >= 512, "an FPU area of {size} bytes");
        let mut small = [0u8; 16];
        expect_errno_of("a buffer below the size", sys::thread_state_read(child.handle, STATE_FPU, &mut small), E2BIG)?;
        let mut area = alloc::vec![0u8; size];
        sys::thread_state_read(child.handle, STATE_FPU, &mut area).context("thread_state_read")?;
        let xmm3 = u64::from_le_bytes(area[XMM3_OFFSET..XMM3_OFFSET + 8].try_into().unwrap_or_default());
        check!(xmm3 == 0x1122_3344_5566_7788, "xmm3 read as {xmm3:#x}");
        area[XMM3_OFFSET..XMM3_OFFSET + 8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        if size > XSTATE_BV_OFFSET {
            area[XSTATE_BV_OFFSET] |= 1 << 1;
        }
        let mut bad = area.clone();
        bad[MXCSR_OFFSET + 3] = 0x80;
        expect_errno_of("a reserved MXCSR bit", sys::thread_state_write(child.handle, STATE_FPU, &bad), EINVAL)?;
        if size > XSTATE_BV_OFFSET {
            let mut bad = area.clone();
            bad[XSTATE_BV_OFFSET + 7] = 0x80;
            expect_errno_of("a component not enabled", sys::thread_state_write(child.handle, STATE_FPU, &bad), EINVAL)?;
        }
        expect_errno_of("a short area", sys::thread_state_write(child.handle, STATE_FPU, &area[..size - 1]), EINVAL)?;
        sys::thread_state_write(child.handle, STATE_FPU, &area).context("thread_state_write")?;
        exception::resume(reply, None).context("reply RESUME")?;
        let (second, reply) = mode.next_syscall()?;
        exception::kill(reply).context("reply KILL")?;
        check!(second.registers.r12 == 0x0102_0304_0506_0708, "xmm3 after the write: {:#x}", second.registers.r12);
        Ok(())
    })();
    let info = finish_within(child, "the syscall-mode child")?;
    outcome?;
    expect_killed("the child answered KILL", info)
}

fn sysmsg_thread_state_needs_a_stopped_thread_and_debug() -> Outcome {
    let child = spawn_child("sysmsg_idle", &[])?;
    let kept = userlib::ipc::duplicate(child.handle, rights::ALL).context("handle_duplicate")?;
    let outcome = (|| {
        wait_until_blocked(child.pid, "the idle child")?;
        let mut bytes = [0u8; REGISTERS_SIZE];
        expect_errno_of("a thread that is not stopped", sys::thread_state_read(child.handle, STATE_REGISTERS, &mut bytes), EBUSY)?;
        expect_errno_of("writing one", sys::thread_state_write(child.handle, STATE_REGISTERS, &bytes), EBUSY)?;
        expect_errno_of("an unknown state", sys::thread_state_read(child.handle, 7, &mut bytes), EINVAL)?;
        let without = userlib::ipc::duplicate(child.handle, rights::ALL & !rights::DEBUG).context("handle_duplicate")?;
        let refused = sys::thread_state_read(without, STATE_REGISTERS, &mut bytes);
        let _ = userlib::ipc::close(without);
        expect_errno_of("a handle without DEBUG", refused, EPERM)
    })();
    kill_and_reap(&[child])?;
    let mut bytes = [0u8; REGISTERS_SIZE];
    let after = sys::thread_state_read(kept, STATE_REGISTERS, &mut bytes);
    let _ = userlib::ipc::close(kept);
    outcome?;
    expect_errno_of("an ended process", after, ESRCH)
}

/// Registers that run [`usertests_sysmsg_started`] with rdi = 100, rbx = 20 and the FS base
/// at [`FS_WORD`]: the thread exits with 123.
fn started_registers() -> Registers {
    Registers {
        rip: symbol_address!("usertests_sysmsg_started"),
        rsp: 0x7000_0000,
        rdi: 100,
        rbx: 20,
        fs_base: core::ptr::from_ref(&FS_WORD) as u64,
        ..Registers::default()
    }
}

fn sysmsg_thread_start_runs_chosen_registers_in_a_child() -> Outcome {
    let child = spawn_child("sysmsg_idle", &[])?;
    let started = sys::thread_start(child.handle, &started_registers());
    let info = finish_within(child, "the child with a started thread")?;
    let thread = started.context("thread_start")?;
    let _ = userlib::ipc::close(thread);
    // Its thread exited the whole process with fs:[0] + rdi + rbx.
    expect_exit("the child", info, 123)
}

fn sysmsg_thread_start_needs_debug_and_a_live_process() -> Outcome {
    let child = spawn_child("sysmsg_idle", &[])?;
    let kept = userlib::ipc::duplicate(child.handle, rights::ALL).context("handle_duplicate")?;
    let outcome = (|| {
        let without = userlib::ipc::duplicate(child.handle, rights::ALL & !rights::DEBUG).context("handle_duplicate")?;
        let refused = sys::thread_start(without, &started_registers());
        let _ = userlib::ipc::close(without);
        expect_errno_of("a process handle without DEBUG", refused, EPERM)?;
        let kernel = Registers { rip: 0xffff_8000_0000_0000, ..started_registers() };
        expect_errno_of("a kernel-half rip", sys::thread_start(child.handle, &kernel), EINVAL)?;
        let base = Registers { fs_base: 1 << 47, ..started_registers() };
        expect_errno_of("a non-canonical FS base", sys::thread_start(child.handle, &base), EINVAL)?;
        expect_errno_of("no process handle", sys::thread_start(NO_HANDLE, &started_registers()), abi::errno::EBADF)
    })();
    kill_and_reap(&[child])?;
    let after = sys::thread_start(kept, &started_registers());
    let _ = userlib::ipc::close(kept);
    outcome?;
    expect_errno_of("an ended process", after, ESRCH)
}

fn sysmsg_a_thread_started_in_a_syscall_mode_child_is_in_the_mode() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Exit)?;
    let outcome = (|| {
        // The first thread stops in its `exit`; a second one (what `clone` makes) runs the
        // same code from the entry with a stack and an FS base of the handler's choosing.
        let (first, first_reply) = mode.next_syscall()?;
        let entry = userlib::process::CODE_LOAD_ADDRESS + userlib::process::CODE_OFFSET as u64;
        let chosen = Registers { rip: entry, rsp: 0x7000_0000, fs_base: 0x6000, ..Registers::default() };
        let thread = sys::thread_start(child.handle, &chosen).context("thread_start")?;
        let second = mode.next_syscall();
        let mut bytes = [0u8; REGISTERS_SIZE];
        let state = sys::thread_state_read(thread, STATE_REGISTERS, &mut bytes);
        let _ = userlib::ipc::close(thread);
        let (second, second_reply) = second?;
        state.context("thread_state_read through the new thread's handle")?;
        exception::kill(second_reply).context("reply KILL")?;
        drop(first_reply);
        check!(second.number == abi::syscall::EXIT && second.tid != first.tid, "second syscall {} from thread {}", second.number, second.tid);
        check!(second.registers.rsp == 0x7000_0000 && second.registers.fs_base == 0x6000, "the new thread's rsp {:#x}, FS base {:#x}", second.registers.rsp, second.registers.fs_base);
        check!(Registers::from_bytes(&bytes) == Some(second.registers), "its state read through its handle differs from its message's");
        Ok(())
    })();
    let info = finish_within(child, "the syscall-mode child")?;
    outcome?;
    expect_killed("the child answered KILL", info)
}

fn sysmsg_a_copy_of_a_syscall_mode_child_is_in_the_mode() -> Outcome {
    let mode = ModeJob::new()?;
    let child = mode.spawn(Program::Args)?;
    let outcome = (|| {
        // The child stops in its `syscall` 1000; a copy of it (what `fork` makes), put in this
        // process's own job, which has no endpoint, resumes after that `syscall` with rax 0
        // and a new FS base, and its `int 0x80` 1001 must come here as a message too.
        let (first, first_reply) = mode.next_syscall()?;
        let forked = Registers { rax: 0, fs_base: 0x6000, ..first.registers };
        let copy = sys::process_copy(child.handle, &forked, None).context("process_copy of a stopped syscall-mode child")?;
        let second = mode.next_syscall();
        drop(first_reply);
        let copied = (|| {
            let (second, second_reply) = second?;
            exception::kill(second_reply).context("reply KILL")?;
            check!(second.tid == copy.pid, "the int 0x80 came from thread {}, not the copy's {}", second.tid, copy.pid);
            check!(second.number == 1001 && second.flags == IN_SYSCALL | VIA_INT80, "the copy sent {} flagged {:#x}", second.number, second.flags);
            check!(second.registers.r12 == 0, "the copy saw rax {:#x} after its `syscall`, not 0", second.registers.r12);
            check!(second.registers.fs_base == 0x6000, "the copy's FS base is {:#x}", second.registers.fs_base);
            Ok(())
        })();
        let info = finish_within(copy, "the copy");
        copied?;
        expect_killed("the copy answered KILL", info?)
    })();
    let info = finish_within(child, "the syscall-mode child")?;
    outcome?;
    expect_killed("the child whose reply was dropped", info)
}
