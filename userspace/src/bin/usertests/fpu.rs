//! The x87, SSE and AVX registers and the FS and GS bases, which the kernel keeps per context
//! (decision 66): each process's registers, filled with a pattern of its own, come back
//! unchanged after preemption, a blocking call, a sleep and a move to another CPU while other
//! processes fill theirs with other patterns; a new process starts with clean registers even
//! right after one that filled them; SSE arithmetic is exact; unmasked SIMD and x87
//! exceptions end the process with their vector; the bases are per process, address memory,
//! refuse kernel-half and non-canonical values, and a hostile GS base breaks no way into the
//! kernel. The AVX cases are skipped where CPUID has no AVX.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};

use abi::errno::EINVAL;
use abi::fault::{DEBUG, SIMD_FLOATING_POINT, X87_FLOATING_POINT};
use abi::ipc::FOREVER;
use abi::syscall::{GETPID, TLS_GET, TLS_SET};
use abi::tls::{FS, GS};
use abi::ExitInfo;
use userlib::float::F64;
use userlib::ipc::{Endpoint, Message};
use userlib::process::Ending;
use userlib::sys::{self, EntryPath};
use userlib::testing::{Case, Context, Expected, Helper, Outcome};
use userlib::{check, println};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here registers_kept_across_preemption,
    here avx_kept_across_preemption if has_avx,
    here registers_kept_across_a_blocking_ipc_call,
    here avx_kept_across_a_blocking_ipc_call if has_avx,
    here registers_kept_across_a_sleep,
    here avx_kept_across_a_sleep if has_avx,
    here registers_kept_across_migration,
    here avx_kept_across_migration if has_avx,
    here a_new_process_starts_with_clean_registers,
    here sse_arithmetic_is_exact,
    // QEMU's TCG (7.2) never raises #XM: it sets MXCSR's flag and carries on, so the case is
    // skipped there (a child tries the division first, see `raises_simd_exceptions`).
    fault unmasked_simd_exception_ends_the_process if raises_simd_exceptions
        => || Expected::fault(SIMD_FLOATING_POINT).error(0).at(symbol_address!("usertests_simd_fault_site")),
    fault unmasked_x87_exception_ends_the_process
        => || Expected::fault(X87_FLOATING_POINT).error(0).at(symbol_address!("usertests_x87_fault_site")),
    child fs_base_round_trips_and_addresses_memory,
    here fs_and_gs_bases_are_per_process,
    here kernel_half_and_noncanonical_bases_are_refused,
    child hostile_gs_base_survives_syscalls_and_interrupts,
    fault hostile_gs_base_survives_a_fault => || Expected::page_fault(HOLE),
    fault hostile_gs_base_survives_a_debug_trap => || Expected::fault(DEBUG).at(symbol_address!("usertests_mov_ss_syscall_site")),
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("fpu_hold", helper_fpu_hold),
    ("fpu_clean", helper_fpu_clean),
    ("tls_peer", helper_tls_peer),
    ("simd_exception_probe", helper_simd_exception_probe),
];

/// Whether the CPU raises #XM for an unmasked SIMD exception: a child divides by zero with
/// the exception unmasked, and dies of it or not.
fn raises_simd_exceptions() -> bool {
    run_child("simd_exception_probe", &[]).is_ok_and(|ended| ended.fault() == Some(SIMD_FLOATING_POINT))
}

/// `simd_exception_probe`: divides by zero with the exception unmasked; exits 0 if that
/// did not fault.
fn helper_simd_exception_probe(_: &[&str]) -> i32 {
    match unmasked_simd_exception_ends_the_process() {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Whether ring 3 may use AVX (the requirement of the AVX cases).
fn has_avx() -> bool {
    userlib::float::avx_usable()
}

// Filling and reading the registers. `fill` loads a `Pattern`: the x87 control word, eight
// integers onto the x87 stack (all eight slots full), MXCSR, xmm0-15 and, with AVX, the upper
// halves of ymm0-15. `snapshot` stores them: `fxsave` (x87 and SSE), then the upper halves.
// Between the two, nothing of this program touches these registers (it is built soft-float).
// The fault routines unmask one exception, divide by zero, and fault at the `_site` label.
global_asm!(
    ".pushsection .text.usertests_fpu_state, \"ax\"",
    ".global usertests_fpu_fill",
    "usertests_fpu_fill:",
    "fninit",
    "fldcw word ptr [rdi]",
    ".irp slot, 0, 1, 2, 3, 4, 5, 6, 7",
    "fild qword ptr [rdi + 8 + \\slot * 8]",
    ".endr",
    "ldmxcsr dword ptr [rdi + 4]",
    ".irp register, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
    "movdqu xmm\\register, xmmword ptr [rdi + 72 + \\register * 16]",
    ".endr",
    "test rsi, rsi",
    "jz 2f",
    ".irp register, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
    "vinsertf128 ymm\\register, ymm\\register, xmmword ptr [rdi + 328 + \\register * 16], 1",
    ".endr",
    "2:",
    "ret",
    ".global usertests_fpu_snapshot",
    "usertests_fpu_snapshot:",
    "fxsave64 [rdi]",
    "test rsi, rsi",
    "jz 2f",
    ".irp register, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
    "vextractf128 xmmword ptr [rdi + 512 + \\register * 16], ymm\\register, 1",
    ".endr",
    "2:",
    "ret",
    ".global usertests_simd_divide_by_zero",
    "usertests_simd_divide_by_zero:",
    "ldmxcsr dword ptr [rdi]",
    "movsd xmm0, qword ptr [rsi]",
    ".global usertests_simd_fault_site",
    "usertests_simd_fault_site:",
    "divsd xmm0, qword ptr [rsi + 8]",
    "ret",
    ".global usertests_x87_divide_by_zero",
    "usertests_x87_divide_by_zero:",
    "fninit",
    "fldcw word ptr [rdi]",
    "fld qword ptr [rsi]",
    "fdiv qword ptr [rsi + 8]",
    ".global usertests_x87_fault_site",
    "usertests_x87_fault_site:",
    "fwait",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn usertests_fpu_fill(pattern: *const Pattern, avx: u64);
    fn usertests_fpu_snapshot(snapshot: *mut Snapshot, avx: u64);
    fn usertests_simd_divide_by_zero(mxcsr: *const u32, operands: *const [f64; 2]);
    fn usertests_x87_divide_by_zero(control: *const u16, operands: *const [f64; 2]);
}

/// What `usertests_fpu_fill` loads (the offsets are the routine's).
#[repr(C)]
struct Pattern {
    x87_control: u16,
    _padding: u16,
    mxcsr: u32,
    x87: [i64; 8],
    xmm: [[u64; 2]; 16],
    ymm_upper: [[u64; 2]; 16],
}

const _: () = assert!(
    core::mem::offset_of!(Pattern, mxcsr) == 4
        && core::mem::offset_of!(Pattern, x87) == 8
        && core::mem::offset_of!(Pattern, xmm) == 72
        && core::mem::offset_of!(Pattern, ymm_upper) == 328
);

impl Pattern {
    /// A pattern of its own for every seed: rounding modes (exceptions stay masked), flush to
    /// zero, and distinct words everywhere.
    fn new(seed: u64) -> Self {
        let word = |index: u64| (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(2 * index + 1).rotate_left(index as u32 % 64);
        let mut pattern = Self {
            x87_control: 0x037f | (((seed & 3) as u16) << 10),
            _padding: 0,
            mxcsr: 0x1f80 | (((seed & 3) as u32) << 13) | (((seed >> 2) & 1) as u32) << 15,
            x87: [0; 8],
            xmm: [[0; 2]; 16],
            ymm_upper: [[0; 2]; 16],
        };
        for (index, value) in pattern.x87.iter_mut().enumerate() {
            *value = (word(100 + index as u64) >> 2) as i64;
        }
        for index in 0..16 {
            pattern.xmm[index] = [word(2 * index as u64), word(2 * index as u64 + 1)];
            pattern.ymm_upper[index] = [word(40 + 2 * index as u64), word(41 + 2 * index as u64)];
        }
        pattern
    }
}

/// What `usertests_fpu_snapshot` stores: the `fxsave` image, then the upper halves.
#[repr(C, align(16))]
struct Snapshot {
    legacy: [u8; 512],
    ymm_upper: [u8; 256],
}

impl Snapshot {
    fn take(avx: bool) -> Self {
        let mut snapshot = Self { legacy: [0; 512], ymm_upper: [0; 256] };
        // SAFETY: the routine writes the 768 bytes of the 16-byte aligned snapshot (the upper
        // halves only with `avx`, which the caller sets only where AVX is enabled).
        unsafe { usertests_fpu_snapshot(&mut snapshot, u64::from(avx)) };
        snapshot
    }

    fn word(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.legacy[offset..offset + 8].try_into().unwrap_or_default())
    }

    fn x87_control(&self) -> u16 {
        u16::from_le_bytes([self.legacy[0], self.legacy[1]])
    }

    fn x87_status(&self) -> u16 {
        u16::from_le_bytes([self.legacy[2], self.legacy[3]])
    }

    /// The abridged tag word: a bit per full x87 slot.
    fn x87_tags(&self) -> u8 {
        self.legacy[4]
    }

    fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.legacy[24], self.legacy[25], self.legacy[26], self.legacy[27]])
    }

    /// The register state that must be kept, by name: control and status words, tags, MXCSR,
    /// the eight x87 registers (80 bits each), xmm0-15 and (with AVX) the upper halves. The
    /// last x87 instruction's address and opcode are left out: they are not the program's
    /// data.
    fn fields(&self, avx: bool) -> Vec<(String, &[u8])> {
        let mut fields = alloc::vec![
            (String::from("x87 control word"), &self.legacy[0..2]),
            (String::from("x87 status word"), &self.legacy[2..4]),
            (String::from("x87 tags"), &self.legacy[4..5]),
            (String::from("MXCSR"), &self.legacy[24..28]),
        ];
        for slot in 0..8 {
            fields.push((format!("st{slot}"), &self.legacy[32 + slot * 16..42 + slot * 16]));
        }
        for register in 0..16 {
            fields.push((format!("xmm{register}"), &self.legacy[160 + register * 16..176 + register * 16]));
        }
        if avx {
            for register in 0..16 {
                fields.push((format!("upper half of ymm{register}"), &self.ymm_upper[register * 16..register * 16 + 16]));
            }
        }
        fields
    }

    /// The first field that differs from `expected`'s.
    fn compare(&self, expected: &Self, avx: bool) -> Outcome {
        for ((name, now), (_, before)) in self.fields(avx).into_iter().zip(expected.fields(avx)) {
            check!(now == before, "{name} was {before:02x?}, is now {now:02x?}");
        }
        Ok(())
    }
}

/// Loads `pattern` into the registers and returns what they hold then, checked against the
/// pattern.
fn fill(pattern: &Pattern, avx: bool) -> Result<Snapshot, String> {
    // SAFETY: the routine reads the pattern and writes only x87, SSE and (with `avx`, set
    // only where AVX is enabled) AVX registers, which this soft-float program keeps nothing
    // in; every x87 exception stays masked, so loading eight values cannot fault.
    unsafe { usertests_fpu_fill(pattern, u64::from(avx)) };
    let loaded = Snapshot::take(avx);
    check!(loaded.x87_control() == pattern.x87_control, "x87 control word {:#x} after loading {:#x}", loaded.x87_control(), pattern.x87_control);
    check!(loaded.mxcsr() == pattern.mxcsr, "MXCSR {:#x} after loading {:#x}", loaded.mxcsr(), pattern.mxcsr);
    check!(loaded.x87_tags() == 0xff, "x87 tags {:#x} after eight loads", loaded.x87_tags());
    check!(loaded.word(160) == pattern.xmm[0][0] && loaded.word(408) == pattern.xmm[15][1], "xmm registers not loaded");
    if avx {
        check!(loaded.ymm_upper[..8] == pattern.ymm_upper[0][0].to_le_bytes(), "upper half of ymm0 not loaded");
    }
    Ok(loaded)
}

/// The components a holder fills: `legacy` (x87 and SSE) or `avx` (and the upper halves).
fn components(avx: bool) -> &'static str {
    if avx { "avx" } else { "legacy" }
}

/// A seed no other process of this run uses.
fn seed_for(index: u64) -> u64 {
    u64::from(sys::getpid()) << 32 | index << 8 | index
}

/// `fpu_hold SEED COMPONENTS MODE N`: fills the registers with the pattern of SEED, then
/// checks after every step that they are unchanged: `spin N` (spins for N ms), `sleep N`
/// (N sleeps of 2 ms), `call N` (N calls on handle 0, answered by an `fpu_hold ... serve`),
/// `serve N` (answers N calls on handle 0), `migrate N` (spins up to N ms, until it has run
/// on two CPUs). Exits 0 when they were kept (for `migrate`, and it moved), [`STAYED`] when
/// they were kept but it never moved, 1 when they changed (saying how), 2 on a usage or
/// syscall error.
fn helper_fpu_hold(args: &[&str]) -> i32 {
    let [seed, components, mode, count] = args else { return 2 };
    let (Ok(seed), Ok(count)) = (seed.parse::<u64>(), count.parse::<u64>()) else { return 2 };
    let avx = *components == "avx";
    match hold(seed, avx, mode, count) {
        Ok(status) => status,
        Err(why) => {
            println!("  fpu_hold {seed} {components} {mode}: {why}");
            1
        }
    }
}

/// Exit status of an `fpu_hold ... migrate` that kept its registers but ran on one CPU only.
const STAYED: i32 = 5;

fn hold(seed: u64, avx: bool, mode: &str, count: u64) -> Result<i32, String> {
    let expected = fill(&Pattern::new(seed), avx)?;
    let check = |when: &str| Snapshot::take(avx).compare(&expected, avx).map_err(|why| format!("after {when}: {why}"));
    match mode {
        "spin" | "migrate" => {
            let deadline = now() + count * MS;
            let first_cpu = info()?.current_cpu;
            let mut moved = false;
            while now() < deadline && !(mode == "migrate" && moved) {
                for _ in 0..2000 {
                    check("spinning")?;
                }
                moved |= info()?.current_cpu != first_cpu;
            }
            check("spinning")?;
            return Ok(if mode == "migrate" && !moved { STAYED } else { 0 });
        }
        "sleep" => {
            for _ in 0..count {
                sleep_ms(2)?;
                check("a sleep")?;
            }
        }
        "call" => {
            let server = Endpoint::from_raw(0);
            for round in 0..count {
                let answer = server.call(&Message::new(round, [seed; 4])).map_err(|errno| format!("call: {errno}"))?;
                check!(answer.label == round + 1, "answer {} to call {round}", answer.label);
                check("a blocking call")?;
            }
        }
        "serve" => {
            let endpoint = Endpoint::from_raw(0);
            for _ in 0..count {
                let request = endpoint.recv(&mut [], FOREVER).map_err(|errno| format!("recv: {errno}"))?;
                check("a receive")?;
                let reply = request.reply.ok_or("a message that is not a call")?;
                reply.send(&Message::new(request.message.label + 1, [seed; 4])).map_err(|errno| format!("reply: {errno}"))?;
            }
        }
        "fill" => {}
        _ => return Ok(2),
    }
    Ok(0)
}

/// `fpu_clean COMPONENTS`: exits 0 if the registers are as a new process must find them:
/// x87 empty with control word 0x37f and status 0, MXCSR 0x1f80, every XMM register (and
/// with `avx` every upper half) zero.
fn helper_fpu_clean(args: &[&str]) -> i32 {
    let avx = args.first() == Some(&"avx");
    let state = Snapshot::take(avx);
    let dirty: Vec<String> = [
        (state.x87_control() != 0x037f).then(|| format!("x87 control word {:#x}", state.x87_control())),
        (state.x87_status() != 0).then(|| format!("x87 status word {:#x}", state.x87_status())),
        (state.x87_tags() != 0).then(|| format!("x87 tags {:#x}", state.x87_tags())),
        (state.mxcsr() != 0x1f80).then(|| format!("MXCSR {:#x}", state.mxcsr())),
        state.legacy[160..416].iter().any(|&byte| byte != 0).then(|| String::from("an XMM register not zero")),
        (avx && state.ymm_upper.iter().any(|&byte| byte != 0)).then(|| String::from("an upper half not zero")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if dirty.is_empty() {
        return 0;
    }
    println!("  fpu_clean: a new process found {}", dirty.join(", "));
    1
}

/// Starts one holder per CPU and one more (so that they must take turns on every CPU), each
/// with a seed of its own, in `mode`, and fails unless every one kept its registers; returns
/// their exit statuses.
fn holders_keep_their_registers(avx: bool, mode: &str, count: &str) -> Result<Vec<i32>, String> {
    let holders = info()?.cpus as u64 + 1;
    let seeds: Vec<String> = (0..holders).map(|index| format!("{}", seed_for(index))).collect();
    let mut children = Vec::new();
    for seed in &seeds {
        match spawn_child("fpu_hold", &[seed, components(avx), mode, count]) {
            Ok(child) => children.push(child),
            Err(why) => {
                kill_and_reap(&children)?;
                return Err(why);
            }
        }
    }
    let mut statuses = Vec::new();
    for child in children {
        let ended = finish_within(child, "fpu_hold")?;
        check!(ended.fault().is_none(), "a holder {}", Ending(ended));
        statuses.push(ended.status);
    }
    check!(statuses.iter().all(|&status| status == 0 || (mode == "migrate" && status == STAYED)), "holders ended with {statuses:?} (see above)");
    Ok(statuses)
}

fn kept_across_preemption(avx: bool) -> Outcome {
    holders_keep_their_registers(avx, "spin", "150").map(|_| ())
}

fn registers_kept_across_preemption() -> Outcome {
    kept_across_preemption(false)
}

fn avx_kept_across_preemption() -> Outcome {
    kept_across_preemption(true)
}

/// A caller and its server, each with its own pattern, and spinners with theirs on every
/// CPU, so that each call blocks and the CPUs pass between them.
fn kept_across_a_blocking_call(avx: bool) -> Outcome {
    let endpoint = Endpoint::create().context("endpoint_create")?;
    let handle = [endpoint.handle().raw() as u32];
    let (caller_seed, server_seed) = (format!("{}", seed_for(1)), format!("{}", seed_for(2)));
    let server = spawn_with_handles("fpu_hold", &[&server_seed, components(avx), "serve", "50"], &handle)?;
    let caller = match spawn_with_handles("fpu_hold", &[&caller_seed, components(avx), "call", "50"], &handle) {
        Ok(caller) => caller,
        Err(why) => {
            kill_and_reap(&[server])?;
            return Err(why);
        }
    };
    let spinners = holders_keep_their_registers(avx, "spin", "50");
    let (caller, server) = (finish_within(caller, "the caller")?, finish_within(server, "the server")?);
    spinners?;
    check!(caller == ExitInfo::exited(0) && server == ExitInfo::exited(0), "the caller {} and the server {}", Ending(caller), Ending(server));
    Ok(())
}

fn registers_kept_across_a_blocking_ipc_call() -> Outcome {
    kept_across_a_blocking_call(false)
}

fn avx_kept_across_a_blocking_ipc_call() -> Outcome {
    kept_across_a_blocking_call(true)
}

fn kept_across_a_sleep(avx: bool) -> Outcome {
    let sleepers: Vec<String> = (0..2).map(|index| format!("{}", seed_for(10 + index))).collect();
    let mut children = Vec::new();
    for seed in &sleepers {
        children.push(spawn_child("fpu_hold", &[seed, components(avx), "sleep", "20"])?);
    }
    let spinners = holders_keep_their_registers(avx, "spin", "60");
    for child in children {
        let ended = finish_within(child, "a sleeper")?;
        check!(ended == ExitInfo::exited(0), "a sleeper {}", Ending(ended));
    }
    spinners.map(|_| ())
}

fn registers_kept_across_a_sleep() -> Outcome {
    kept_across_a_sleep(false)
}

fn avx_kept_across_a_sleep() -> Outcome {
    kept_across_a_sleep(true)
}

fn kept_across_migration(avx: bool, case: &str) -> Outcome {
    let cpus = info()?.cpus;
    // Each holder stops as soon as it has run on two CPUs; the limit only bounds a run on a
    // host so busy that the guest's CPUs barely get to run (2 s was not always enough; each is reaped within 15 s).
    let statuses = holders_keep_their_registers(avx, "migrate", "10000")?;
    if cpus == 1 {
        println!("  {case}: one CPU, so nothing can move: checked that the registers were kept");
        check!(statuses.iter().all(|&status| status == STAYED), "a holder moved on a one-CPU machine: {statuses:?}");
    } else {
        check!(statuses.contains(&0), "no holder ran on two CPUs in 10 s: {statuses:?}");
    }
    Ok(())
}

fn registers_kept_across_migration() -> Outcome {
    kept_across_migration(false, "registers_kept_across_migration")
}

fn avx_kept_across_migration() -> Outcome {
    kept_across_migration(true, "avx_kept_across_migration")
}

/// A process fills every register and exits; the next one starts clean. Several rounds, so
/// that kernel stacks (and their saved registers) are reused.
fn a_new_process_starts_with_clean_registers() -> Outcome {
    let avx = has_avx();
    for round in 0..6 {
        let seed = format!("{}", seed_for(20 + round));
        let filler = run_child("fpu_hold", &[&seed, components(avx), "fill", "0"])?;
        check!(filler == ExitInfo::exited(0), "the filler {}", Ending(filler));
        let clean = run_child("fpu_clean", &[components(avx)])?;
        check!(clean == ExitInfo::exited(0), "round {round}: the new process {}", Ending(clean));
    }
    Ok(())
}

/// SSE gives the IEEE results: bit for bit what the soft-float routines give, and known
/// constants.
fn sse_arithmetic_is_exact() -> Outcome {
    let sum = F64::new(0.1) + F64::new(0.2);
    check!(sum.get().to_bits() == 0x3fd3_3333_3333_3334, "0.1 + 0.2 = {:?}", sum.get());
    let root = F64::new(2.0).sqrt();
    check!(root.get().to_bits() == 0x3ff6_a09e_667f_3bcd, "sqrt(2) = {:?}", root.get());
    let (mut hardware, mut software) = (F64::new(0.0), 0.0f64);
    for k in 1..=1000 {
        hardware = hardware + F64::new(1.0) / F64::from_int(k) * F64::new(1.5) - F64::new(0.25);
        software = software + 1.0 / k as f64 * 1.5 - 0.25;
    }
    check!(hardware.get().to_bits() == software.to_bits(), "a harmonic sum: SSE {:?}, soft-float {software:?}", hardware.get());
    check!(F64::new(-7.9).truncate() == -7, "truncating -7.9 gave {}", F64::new(-7.9).truncate());
    Ok(())
}

fn unmasked_simd_exception_ends_the_process() -> Outcome {
    // MXCSR with the divide-by-zero mask (bit 9) cleared.
    let mxcsr: u32 = 0x1f80 & !(1 << 9);
    // SAFETY: the child exists to fault: the routine loads MXCSR and divides 1 by 0 in xmm0,
    // which this soft-float program keeps nothing in.
    unsafe { usertests_simd_divide_by_zero(&mxcsr, &[1.0, 0.0]) };
    Ok(())
}

fn unmasked_x87_exception_ends_the_process() -> Outcome {
    // The x87 control word with the divide-by-zero mask (bit 2) cleared.
    let control: u16 = 0x037f & !(1 << 2);
    // SAFETY: the child exists to fault: the routine divides 1 by 0 on the x87 stack, and
    // the pending exception faults at the next `fwait`.
    unsafe { usertests_x87_divide_by_zero(&control, &[1.0, 0.0]) };
    Ok(())
}

/// A word read through the FS or GS segment at `offset`.
fn read_through(which: u64, offset: u64) -> u64 {
    let value: u64;
    // SAFETY: reads the word at the segment's base plus `offset`, which the caller mapped.
    unsafe {
        if which == FS {
            asm!("mov {value}, qword ptr fs:[{offset}]", value = out(reg) value, offset = in(reg) offset, options(nostack, readonly, preserves_flags));
        } else {
            asm!("mov {value}, qword ptr gs:[{offset}]", value = out(reg) value, offset = in(reg) offset, options(nostack, readonly, preserves_flags));
        }
    }
    value
}

/// A page of this process holding `words`, for a base to point at.
fn page_holding(words: &[u64]) -> Result<u64, String> {
    let page = sys::mmap(0, PAGE, RW).context("mmap")?;
    for (index, &word) in words.iter().enumerate() {
        // SAFETY: the page was just mapped writable for this process, and `words` fits it.
        unsafe { (page as *mut u64).add(index).write_volatile(word) };
    }
    Ok(page)
}

fn fs_base_round_trips_and_addresses_memory() -> Outcome {
    check!(sys::tls_get(FS) == Ok(0) && sys::tls_get(GS) == Ok(0), "a new process's bases are not 0");
    let page = page_holding(&[0x1111_2222_3333_4444, 0x5555_6666_7777_8888])?;
    sys::tls_set(FS, page).context("tls_set FS")?;
    check!(sys::tls_get(FS) == Ok(page), "tls_get FS gave {:?}, set {page:#x}", sys::tls_get(FS));
    check!(read_through(FS, 0) == 0x1111_2222_3333_4444, "fs:[0] read {:#x}", read_through(FS, 0));
    sys::tls_set(GS, page + 8).context("tls_set GS")?;
    check!(read_through(GS, 0) == 0x5555_6666_7777_8888, "gs:[0] read {:#x}", read_through(GS, 0));
    // Across a switch: the kernel loads both again.
    sleep_ms(3)?;
    check!(read_through(FS, 8) == 0x5555_6666_7777_8888, "fs:[8] after a sleep read {:#x}", read_through(FS, 8));
    check!(read_through(GS, 0) == 0x5555_6666_7777_8888, "gs:[0] after a sleep read {:#x}", read_through(GS, 0));
    check!(sys::tls_get(GS) == Ok(page + 8), "tls_get GS gave {:?}", sys::tls_get(GS));
    Ok(())
}

/// `tls_peer FS GS`: finds its bases 0, sets them to FS and GS, spins and sleeps past other
/// processes, and exits 0 if they stayed its own.
fn helper_tls_peer(args: &[&str]) -> i32 {
    let [Ok(fs), Ok(gs)] = [0, 1].map(|index| args.get(index).copied().unwrap_or("").parse::<u64>()) else { return 2 };
    if sys::tls_get(FS) != Ok(0) || sys::tls_get(GS) != Ok(0) {
        println!("  tls_peer: started with bases {:?} and {:?}", sys::tls_get(FS), sys::tls_get(GS));
        return 1;
    }
    if sys::tls_set(FS, fs).is_err() || sys::tls_set(GS, gs).is_err() {
        return 2;
    }
    for round in 0..10 {
        let until = now() + 5 * MS;
        while now() < until {}
        let _ = sleep_ms(1);
        let (found_fs, found_gs) = (sys::tls_get(FS), sys::tls_get(GS));
        if found_fs != Ok(fs) || found_gs != Ok(gs) {
            println!("  tls_peer: round {round}: bases {found_fs:?} and {found_gs:?}, set {fs:#x} and {gs:#x}");
            return 1;
        }
    }
    0
}

fn fs_and_gs_bases_are_per_process() -> Outcome {
    let page = page_holding(&[0xfeed_f00d])?;
    sys::tls_set(FS, page).context("tls_set FS")?;
    sys::tls_set(GS, page + 16).context("tls_set GS")?;
    let peers: Vec<(String, String)> =
        (1..=3u64).map(|index| (format!("{}", 0x1000 * index), format!("{}", 0x7fff_0000_0000 + index))).collect();
    let mut children = Vec::new();
    for (fs, gs) in &peers {
        children.push(spawn_child("tls_peer", &[fs, gs])?);
    }
    let mut statuses = Vec::new();
    for child in children {
        statuses.push(finish_within(child, "tls_peer")?);
    }
    let (fs, gs) = (sys::tls_get(FS), sys::tls_get(GS));
    let read = read_through(FS, 0);
    sys::tls_set(FS, 0).context("tls_set FS")?;
    sys::tls_set(GS, 0).context("tls_set GS")?;
    // SAFETY: the page was mapped above and nothing refers to it any more.
    unsafe { sys::munmap(page, PAGE) }.context("munmap")?;
    check!(statuses.iter().all(|&ended| ended == ExitInfo::exited(0)), "peers ended: {statuses:?}");
    check!(fs == Ok(page) && gs == Ok(page + 16), "this process's bases became {fs:?} and {gs:?}");
    check!(read == 0xfeed_f00d, "fs:[0] read {read:#x}");
    Ok(())
}

fn kernel_half_and_noncanonical_bases_are_refused() -> Outcome {
    let before = (sys::tls_get(FS), sys::tls_get(GS));
    for which in [FS, GS] {
        for address in [0x8000_0000_0000, 0xffff_8000_0000_0000, KERNEL_ADDRESS, 0x1234_5678_9abc_def0, u64::MAX] {
            for path in [EntryPath::Syscall, EntryPath::Int80] {
                expect_errno(&format!("tls_set({which}, {address:#x})"), call_via(path, TLS_SET, [which, address, 0, 0, 0, 0]), EINVAL)?;
            }
        }
    }
    expect_errno("tls_set of base 2", call(TLS_SET, [2, 0x1000, 0, 0, 0, 0]), EINVAL)?;
    expect_errno("tls_get of base 2", call(TLS_GET, [2, 0, 0, 0, 0, 0]), EINVAL)?;
    check!((sys::tls_get(FS), sys::tls_get(GS)) == before, "a refused tls_set changed a base");
    // The last lower-half address is a base.
    sys::tls_set(GS, 0x7fff_ffff_ffff).context("tls_set of the last lower-half address")?;
    let kept = sys::tls_get(GS);
    sys::tls_set(GS, 0).context("tls_set GS back")?;
    check!(kept == Ok(0x7fff_ffff_ffff), "tls_get gave {kept:?}");
    Ok(())
}

/// GS bases a process may set that the kernel must survive on every entry: a page it owns,
/// the first and the last lower-half addresses, and unmapped ones.
const HOSTILE_GS_BASES: [u64; 4] = [1, 0x7fff_ffff_ffff, HOLE, 0x4000_0000_0000];

fn hostile_gs_base_survives_syscalls_and_interrupts() -> Outcome {
    let me = i64::from(sys::getpid());
    let page = page_holding(&[0xabad_cafe])?;
    for base in HOSTILE_GS_BASES.into_iter().chain([page]) {
        sys::tls_set(GS, base).context("tls_set GS")?;
        for path in [EntryPath::Syscall, EntryPath::Int80] {
            expect_value(&format!("getpid with GS base {base:#x}"), call_via(path, GETPID, [0; 6]), me)?;
        }
        // Spin for 30 ms, across some thirty timer interrupts from ring 3 (and, with other
        // processes ready, preemption).
        let start = now();
        while now() < start + 30 * MS {}
        check!(sys::tls_get(GS) == Ok(base), "the GS base became {:?}, set {base:#x}", sys::tls_get(GS));
    }
    check!(read_through(GS, 0) == 0xabad_cafe, "gs:[0] read {:#x} after every entry", read_through(GS, 0));
    Ok(())
}

fn hostile_gs_base_survives_a_fault() -> Outcome {
    sys::tls_set(GS, 0x7fff_ffff_ffff).context("tls_set GS")?;
    // SAFETY: the child exists to fault: nothing is mapped at `HOLE`.
    unsafe { core::ptr::read_volatile(HOLE as *const u8) };
    Ok(())
}

fn hostile_gs_base_survives_a_debug_trap() -> Outcome {
    sys::tls_set(GS, 0x7fff_ffff_ffff).context("tls_set GS")?;
    // SAFETY: the child exists to fault: the routine (registers.rs) arms a single-step trap
    // with `mov ss` right before `syscall`, which delivers it in the kernel on hardware (the
    // paranoid path decides on `swapgs` from the GS base) and after the return under QEMU.
    unsafe { asm!("call usertests_mov_ss_syscall", clobber_abi("C")) };
    Ok(())
}
