//! Raw register state: junk in every register and flag on both entry paths, misaligned and
//! kernel stack pointers, flags ring 3 may or may not set (TF, NT, DF, IOPL, IF), x87/MMX/SSE
//! state kept apart, and returns to non-canonical addresses.

use alloc::format;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::hint::black_box;

use abi::errno::{EBADF, EFAULT, ENOSYS};
use abi::fault::DEBUG;
use abi::memory::{PHYSICAL_MAP_OFFSET, USER_END};
use abi::syscall::{GETPID, KILL, SYSINFO, WRITE};
use abi::{ExitInfo, SysInfo};
use userlib::check;
use userlib::process::Ending;
use userlib::sys::{self, EntryPath};
use userlib::testing::{Case, Expected, Outcome};

use crate::common::*;
use crate::dirty::Call;

pub const CASES: &[Case] = userlib::cases![
    child garbage_registers_syscall,
    child garbage_registers_int80,
    child int80_misaligned_stack,
    child stack_pointer_in_kernel_half,
    here nt_flag_contained,
    child direction_flag_contained,
    fault trap_flag_syscall => || Expected::fault(DEBUG).at(symbol_address!("usertests_trap_flag_syscall_site")),
    fault trap_flag_int80 => || Expected::fault(DEBUG).at(symbol_address!("usertests_trap_flag_int80_site")),
    // CVE-2018-8897: after `mov ss`, hardware delivers the single-step trap on the first
    // instruction of the `syscall` stub, still on the user's stack; the kernel takes it on an
    // interrupt stack of its own and carries on, and the trap flag (restored by `sysret`)
    // then ends the child one instruction later. QEMU does not delay the trap past `mov ss`
    // and raises it right after `syscall` returns, at the same place.
    fault mov_ss_then_syscall => || Expected::fault(DEBUG).at(symbol_address!("usertests_mov_ss_syscall_site")),
    fault mov_ss_then_int80 => || Expected::fault(DEBUG).at(symbol_address!("usertests_mov_ss_int80_site")),
    child popf_cannot_raise_iopl,
    here fpu_state_not_shared,
    // The kernel returns through `iretq` when the return address is not canonical; the
    // `iretq` faults in ring 0, and the kernel reports the address it was returning to.
    fault sysret_noncanonical_rip => || Expected::general_protection().at(USER_END),
    fault int80_noncanonical_return => || Expected::general_protection().at(USER_END),
    // Hardware may report this #GP at the last instruction before the boundary; QEMU reports
    // it at the first non-canonical address, where the fetch failed.
    fault run_off_user_half => || Expected::general_protection().at(USER_END),
];

/// Distinct junk for every register, with `rsp` as given.
fn noise(seed: u64, rsp: u64) -> [u64; 16] {
    let mut values = [0u64; 16];
    for (index, value) in values.iter_mut().enumerate() {
        *value = seed.rotate_left(index as u32 * 5) ^ (index as u64 * 0x0101_0101_0101_0101);
    }
    values[4] = rsp;
    values
}

/// Runs a few syscalls through `path` with junk in every register and every flag ring 3 may
/// set (DF, AC and NT among them), and checks each result and that no register but the
/// result came back changed.
fn garbage_registers(path: EntryPath) -> Outcome {
    let me = i64::from(sys::getpid());
    let calls: [(u64, [u64; 6], Option<i64>, i64); 5] = [
        (GETPID, [0xdead; 6], Some(me), 0),
        (WRITE, [1, 0xdead_0000_0000_beef, 64, 0x1111, 0x2222, 0x3333], None, EFAULT),
        (1 << 32 | GETPID, [7; 6], None, ENOSYS),
        (SYSINFO, [PHYSICAL_MAP_OFFSET, 1, 2, 3, 4, 5], None, EFAULT),
        (KILL, [u64::MAX, 0, 0, 0, 0, 0], None, EBADF),
    ];
    for (round, rsp) in [0xdead_beef_dead_beef, 0, PHYSICAL_MAP_OFFSET, u64::MAX].into_iter().enumerate() {
        for (number, args, value, errno) in calls {
            let junk = noise(0x0123_4567_89ab_cdef ^ round as u64, rsp);
            let mut entry = Call::new(path, number, args, junk).with_flags(u64::MAX);
            // SAFETY: none of these calls writes memory (their pointers are refused) or ends
            // the process.
            unsafe { entry.run() };
            let what = format!("syscall {number:#x} with rsp {rsp:#x}");
            match value {
                Some(value) => expect_value(&what, entry.result(), value)?,
                None => expect_errno(&what, entry.result(), errno)?,
            }
            if let Some(register) = entry.clobbered() {
                return Err(format!("{what}: the kernel changed {register}"));
            }
        }
    }
    Ok(())
}

fn garbage_registers_syscall() -> Outcome {
    garbage_registers(EntryPath::Syscall)
}

fn garbage_registers_int80() -> Outcome {
    garbage_registers(EntryPath::Int80)
}

fn int80_misaligned_stack() -> Outcome {
    let me = i64::from(sys::getpid());
    let mut area = [0x7777_7777_7777_7777u64; 64];
    let top = area.as_mut_ptr() as u64 + 256;
    for misalignment in [1, 3, 8, 13] {
        let mut entry = Call::new(EntryPath::Int80, GETPID, [0; 6], noise(misalignment, top - misalignment));
        // SAFETY: `getpid` touches no memory; the stack pointer points into `area`.
        unsafe { entry.run() };
        expect_value(&format!("getpid with rsp misaligned by {misalignment}"), entry.result(), me)?;
        if let Some(register) = entry.clobbered() {
            return Err(format!("the kernel changed {register}"));
        }
        check!(
            black_box(&area).iter().all(|&word| word == 0x7777_7777_7777_7777),
            "the kernel wrote to the user stack"
        );
    }
    Ok(())
}

fn stack_pointer_in_kernel_half() -> Outcome {
    let me = i64::from(sys::getpid());
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        for rsp in [PHYSICAL_MAP_OFFSET + 0x10_0000, 0xffff_9800_0000_8000, 0x8000_0000_0000, u64::MAX - 7] {
            let mut entry = Call::new(path, GETPID, [0; 6], noise(rsp, rsp));
            // SAFETY: `getpid` touches no memory.
            unsafe { entry.run() };
            expect_value(&format!("getpid with rsp {rsp:#x} ({path:?})"), entry.result(), me)?;
        }
    }
    Ok(())
}

fn nt_flag_contained() -> Outcome {
    // Wide, so that a spinner a loaded host starts late still runs inside it.
    let start = now() + 100 * MS;
    let end = start + 500 * MS;
    let (start, end) = (format!("{start}"), format!("{end}"));
    let spinner = spawn_child("spin_window", &[&start, &end])?;
    let sleeper = spawn_child("int80_sleeper", &[])?;
    let yielder = spawn_child("nt_yielder", &[])?;
    let mut failures = Vec::new();
    for (child, role) in [(yielder, "nt_yielder"), (sleeper, "int80_sleeper"), (spinner, "spin_window")] {
        let info = finish_within(child, role)?;
        if info != ExitInfo::exited(0) {
            failures.push(format!("{role} {}", Ending(info)));
        }
    }
    check!(failures.is_empty(), "with NT set in another process: {}", failures.join(", "));
    Ok(())
}

fn direction_flag_contained() -> Outcome {
    for path in [EntryPath::Syscall, EntryPath::Int80] {
        let mut info = SysInfo::default();
        let result: i64;
        match path {
            // SAFETY: `sysinfo` writes only `info`; the direction flag is set just for the
            // syscall and cleared right after, as Rust code expects.
            EntryPath::Syscall => unsafe {
                asm!("std", "syscall", "cld", inlateout("rax") SYSINFO as i64 => result, in("rdi") &raw mut info,
                    lateout("rcx") _, lateout("r11") _, options(nostack));
            },
            // SAFETY: as above, through `int 0x80`.
            EntryPath::Int80 => unsafe {
                asm!("std", "int 0x80", "cld", inlateout("rax") SYSINFO as i64 => result, in("rdi") &raw mut info,
                    options(nostack));
            },
        }
        expect_value(&format!("sysinfo with DF set ({path:?})"), result, 0)?;
        check!(
            info.max_processes as usize == MAX_ROWS && info.timer_hz == 1000 && info.total_frames > 0,
            "sysinfo with DF set ({path:?}) wrote {info:?}"
        );
    }
    Ok(())
}

// A syscall with RFLAGS.TF set, through each entry path: the kernel runs with TF masked, and
// the single-step trap arrives in ring 3, where the `_site` label marks it. After `sysretq`
// QEMU delivers the trap at once, before the next instruction; after `iretq` the restored TF
// takes effect one instruction later, so the trap follows the `nop`.
global_asm!(
    ".pushsection .text.usertests_trap_flag, \"ax\"",
    ".global usertests_trap_flag_syscall",
    "usertests_trap_flag_syscall:",
    "mov eax, {getpid}",
    "pushfq",
    "or qword ptr [rsp], 0x100",
    "popfq",
    "syscall",
    ".global usertests_trap_flag_syscall_site",
    "usertests_trap_flag_syscall_site:",
    "nop",
    "ret",
    ".global usertests_trap_flag_int80",
    "usertests_trap_flag_int80:",
    "mov eax, {getpid}",
    "pushfq",
    "or qword ptr [rsp], 0x100",
    "popfq",
    "int 0x80",
    "nop",
    ".global usertests_trap_flag_int80_site",
    "usertests_trap_flag_int80_site:",
    "ret",
    ".global usertests_mov_ss_syscall",
    "usertests_mov_ss_syscall:",
    "mov eax, {getpid}",
    "mov rcx, ss",
    "push rcx",
    "pushfq",
    "or qword ptr [rsp], 0x100",
    "popfq",
    "mov ss, [rsp]",
    "syscall",
    ".global usertests_mov_ss_syscall_site",
    "usertests_mov_ss_syscall_site:",
    "nop",
    "ret",
    ".global usertests_mov_ss_int80",
    "usertests_mov_ss_int80:",
    "mov eax, {getpid}",
    "mov rcx, ss",
    "push rcx",
    "pushfq",
    "or qword ptr [rsp], 0x100",
    "popfq",
    "mov ss, [rsp]",
    "int 0x80",
    "nop",
    ".global usertests_mov_ss_int80_site",
    "usertests_mov_ss_int80_site:",
    "ret",
    ".popsection",
    getpid = const GETPID,
);

fn trap_flag_syscall() -> Outcome {
    // SAFETY: the child exists to fault: with TF set, the single-step trap after the
    // `syscall` kills it; the routine touches only caller-saved registers.
    unsafe { asm!("call usertests_trap_flag_syscall", clobber_abi("C")) };
    Ok(())
}

fn trap_flag_int80() -> Outcome {
    // SAFETY: as in `trap_flag_syscall`, through `int 0x80`.
    unsafe { asm!("call usertests_trap_flag_int80", clobber_abi("C")) };
    Ok(())
}

fn mov_ss_then_syscall() -> Outcome {
    // SAFETY: the child exists to fault (see the case list); the routine pushes one word it
    // never pops, which the fault makes moot.
    unsafe { asm!("call usertests_mov_ss_syscall", clobber_abi("C")) };
    Ok(())
}

fn mov_ss_then_int80() -> Outcome {
    // SAFETY: as in `mov_ss_then_syscall`, through `int 0x80`.
    unsafe { asm!("call usertests_mov_ss_int80", clobber_abi("C")) };
    Ok(())
}

fn popf_cannot_raise_iopl() -> Outcome {
    // SAFETY: `popfq` at CPL 3 may change only the flags ring 3 owns; the kernel-controlled
    // bits the code asks for (IOPL 3, IF clear) must be left alone, which is checked below.
    unsafe { asm!("pushfq", "or qword ptr [rsp], 0x3000", "and qword ptr [rsp], ~0x200", "popfq") };
    let flags = rflags();
    check!(flags & 0x3000 == 0, "ring 3 raised IOPL: rflags {flags:#x}");
    check!(flags & 0x200 != 0, "ring 3 cleared IF: rflags {flags:#x}");
    Ok(())
}

// x87, MMX and SSE state, which every process has its own of (decision 66 in
// docs/ARCHITECTURE.md; `fpu.rs` checks all of it, this case the MMX alias too).
global_asm!(
    ".pushsection .text.usertests_fpu, \"ax\"",
    ".global usertests_mmx_write",
    "usertests_mmx_write:",
    "movq mm1, rdi",
    "ret",
    ".global usertests_mmx_read",
    "usertests_mmx_read:",
    "movq rax, mm1",
    "ret",
    ".global usertests_x87_write",
    "usertests_x87_write:",
    "fldcw word ptr [rdi]",
    "ret",
    ".global usertests_x87_read",
    "usertests_x87_read:",
    "fnstcw word ptr [rdi]",
    "movzx eax, word ptr [rdi]",
    "ret",
    ".global usertests_sse_write",
    "usertests_sse_write:",
    "movq xmm1, rdi",
    "ret",
    ".global usertests_sse_read",
    "usertests_sse_read:",
    "movq rax, xmm1",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn usertests_mmx_write(value: u64);
    fn usertests_mmx_read() -> u64;
    fn usertests_x87_write(control: *const u16);
    fn usertests_x87_read(control: *mut u16) -> u64;
    fn usertests_sse_write(value: u64);
    fn usertests_sse_read() -> u64;
}

/// A kind of register state one process might leave behind for the next: `mm1`, the x87
/// control word, `xmm1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpuState {
    Mmx,
    X87,
    Sse,
}

impl FpuState {
    pub const ALL: [Self; 3] = [Self::Mmx, Self::X87, Self::Sse];

    /// The name `fpu_writer` and `fpu_reader` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mmx => "mmx",
            Self::X87 => "x87",
            Self::Sse => "sse",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.name() == name)
    }

    /// What the writer leaves in the register (for x87, a rounding mode and precision nobody
    /// uses by default: the default control word is 0x037f).
    pub fn marker(self) -> u64 {
        match self {
            Self::Mmx => 0x5eed_f00d_cafe_d00d,
            Self::X87 => 0x0c7f,
            Self::Sse => 0x0ddb_a11c_0ffe_e000,
        }
    }

    /// Leaves `value` in the register.
    pub fn write(self, value: u64) {
        match self {
            // SAFETY: the routine writes `mm1` only.
            Self::Mmx => unsafe { usertests_mmx_write(value) },
            // SAFETY: the routine loads the x87 control word from the `u16` it is given.
            Self::X87 => unsafe { usertests_x87_write(&(value as u16)) },
            // SAFETY: the routine writes `xmm1` only.
            Self::Sse => unsafe { usertests_sse_write(value) },
        }
    }

    /// The register's value.
    pub fn read(self) -> u64 {
        match self {
            // SAFETY: the routine reads `mm1` only.
            Self::Mmx => unsafe { usertests_mmx_read() },
            // SAFETY: the routine stores the x87 control word into the `u16` it is given.
            Self::X87 => unsafe { usertests_x87_read(&mut 0) },
            // SAFETY: the routine reads `xmm1` only.
            Self::Sse => unsafe { usertests_sse_read() },
        }
    }

}

/// For each kind of state, a writer leaves its marker and keeps running (sleeping) while a
/// reader starts and reads the register: each process has its own, so the writer finds its
/// marker kept and the reader does not see it.
fn fpu_state_not_shared() -> Outcome {
    for state in FpuState::ALL {
        let name = state.name();
        let writer = spawn_child("fpu_writer", &[name])?;
        sleep_ms(5)?;
        let reader = run_child("fpu_reader", &[name])?;
        let writer = finish_within(writer, "fpu_writer")?;
        check!(
            writer == ExitInfo::exited(0) && reader == ExitInfo::exited(0),
            "{name} state: the writer {} and the reader {}; expected both to exit 0 (the reader exits 1 when \
             it sees the writer's marker, the writer 2 when it lost it)",
            Ending(writer),
            Ending(reader)
        );
    }
    Ok(())
}

fn sysret_noncanonical_rip() -> Outcome {
    let start = code_at_top_of_user_half(&[0x0f, 0x05])?;
    // SAFETY: the child exists to fault: the `syscall` at the top of the user half returns to
    // 0x8000_0000_0000, which is not canonical, so the kernel must end the child.
    unsafe { asm!("jmp {}", in(reg) start, in("rax") GETPID, options(noreturn)) }
}

fn int80_noncanonical_return() -> Outcome {
    let start = code_at_top_of_user_half(&[0xcd, 0x80])?;
    // SAFETY: as in `sysret_noncanonical_rip`, through `int 0x80`.
    unsafe { asm!("jmp {}", in(reg) start, in("rax") GETPID, options(noreturn)) }
}

fn run_off_user_half() -> Outcome {
    let start = code_at_top_of_user_half(&[0x90, 0x90])?;
    // SAFETY: the child exists to fault: after two `nop`s, execution reaches the first
    // non-canonical address.
    unsafe { asm!("jmp {}", in(reg) start, options(noreturn)) }
}
