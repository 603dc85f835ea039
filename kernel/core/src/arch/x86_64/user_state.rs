//! The registers of a context that the trap frame does not hold: the x87, SSE and AVX
//! registers with MXCSR, and the FS and user GS bases (what user programs use for
//! thread-local storage). Every context has a [`UserState`], which a switch saves the leaving
//! context's registers into and loads the entering one's from (`context::switch_context`):
//! eagerly, on every switch, so that no process ever runs with another's registers loaded,
//! not even ones it cannot read yet (lazy switching is the LazyFP leak, CVE-2018-3665).
//!
//! [`enable`] turns the registers on for ring 3 on each CPU (CR0.EM off, CR0.MP and NE,
//! CR4.OSFXSR and OSXMMEXCPT, and where CPUID has XSAVE CR4.OSXSAVE with XCR0 = x87, SSE and,
//! where CPUID has it, AVX) and picks how to save them: `xsaveopt` (which skips what is
//! unchanged since the last `xrstor` from the same area: every switch into a context
//! restores from its area, so that tracking always names the right one), `xsave` on a CPU
//! without it, `fxsave` on one without XSAVE. The kernel itself is built soft-float and never
//! touches these registers, so the user's values stay in them from the switch in to the
//! switch out.
//!
//! The bases are the kernel's record, set by the `tls_set` syscall, and loaded into
//! `IA32_FS_BASE` and `IA32_KERNEL_GS_BASE` (where the user's GS base waits while the kernel
//! runs, `swapgs` having put the per-CPU block's in `IA32_GS_BASE`) at every switch in. Only
//! lower-half values are accepted: the paranoid entry path (see [`super::trap`]) tells a
//! kernel GS base from a user one by its sign. CR4.FSGSBASE stays off, so ring 3 cannot write
//! either base itself; a segment load in ring 3 (`mov fs, ax`) sets a base to 0 (the
//! descriptor's) until the context's next switch in loads the record again.

use core::arch::x86_64::{__cpuid, __cpuid_count};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use ::x86_64::VirtAddr;
use ::x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use ::x86_64::registers::model_specific::{FsBase, KernelGsBase};
use ::x86_64::registers::xcontrol::{XCr0, XCr0Flags};

/// Bytes of a save area kept for the registers. The standard XSAVE layout with x87, SSE and
/// AVX ends at 832 (a 512-byte legacy region, the 64-byte header, 256 bytes of YMM upper
/// halves); [`enable`] checks the size CPUID reports against this.
pub const SAVE_AREA_BYTES: usize = 960;

/// How the switch saves and restores the registers ([`SAVE_METHOD`]).
pub(super) const SAVE_XSAVEOPT: u8 = 0;
/// `xsave`/`xrstor`: a CPU with XSAVE but not XSAVEOPT.
pub(super) const SAVE_XSAVE: u8 = 1;
/// `fxsave`/`fxrstor`: a CPU without XSAVE.
pub(super) const SAVE_FXSAVE: u8 = 2;

/// The save method every CPU uses, one of the `SAVE_*` values; the switch reads it. Set by
/// the first CPU's [`enable`], before any switch; every other CPU checks it would choose the
/// same.
pub(super) static SAVE_METHOD: AtomicU8 = AtomicU8::new(SAVE_FXSAVE);
static SAVE_METHOD_CHOSEN: AtomicBool = AtomicBool::new(false);
/// Whether XCR0 includes AVX.
static AVX_ENABLED: AtomicBool = AtomicBool::new(false);
/// Bytes of the save area the CPU uses with the enabled components (CPUID 0xd's for XCR0,
/// or `fxsave`'s 512): what `thread_state_read` copies.
static AREA_SIZE: AtomicU64 = AtomicU64::new(FXSAVE_AREA_BYTES as u64);
/// `fxsave`'s area, the legacy region of an `xsave` one.
const FXSAVE_AREA_BYTES: usize = 512;
/// Byte offsets of the `xsave` header's fields: XSTATE_BV, then XCOMP_BV and reserved
/// bytes up to the end of the header, which must be zero in the standard format.
const XSTATE_BV_OFFSET: usize = 512;
const HEADER_END: usize = 576;
/// MXCSR_MASK in the legacy region: the MXCSR bits the CPU supports (0 means 0xffbf).
const MXCSR_MASK_OFFSET: usize = 28;
const DEFAULT_MXCSR_MASK: u32 = 0xffbf;

/// `IA32_FS_BASE`.
pub(super) const FS_BASE_MSR: u32 = 0xc000_0100;
/// `IA32_KERNEL_GS_BASE`: the user's GS base while the kernel runs.
pub(super) const KERNEL_GS_BASE_MSR: u32 = 0xc000_0102;

/// The x87 control word of a fresh context: every exception masked, 64-bit precision, round
/// to nearest (what `fninit` sets).
const INITIAL_X87_CONTROL: u16 = 0x037f;
/// MXCSR of a fresh context: every SIMD exception masked, round to nearest.
const INITIAL_MXCSR: u32 = 0x1f80;
/// Byte offsets in the legacy region of the save area.
const X87_CONTROL_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;

/// Turns on the x87, SSE and (where the CPU has it) AVX registers for ring 3 on this CPU, and
/// chooses how switches save them. Every CPU calls it once, before it runs any process.
/// Panics if the CPU's save area would not fit [`SAVE_AREA_BYTES`] or if CPUs differ.
pub(super) fn enable() {
    let features = __cpuid(1).ecx;
    let xsave = features & (1 << 26) != 0;
    let avx = xsave && features & (1 << 28) != 0;
    // SAFETY: EM off and MP/NE on make x87, MMX and SSE instructions run (NE reports x87
    // errors as #MF, which ends the process that caused them); TS off means no #NM. The
    // kernel never executes any of them, and every context's registers are switched.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        })
    };
    let mut cr4 = Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE;
    if xsave {
        cr4 |= Cr4Flags::OSXSAVE;
    }
    // SAFETY: OSFXSR enables `fxsave`/`fxrstor` and SSE, OSXMMEXCPT reports unmasked SIMD
    // exceptions as #XM, OSXSAVE enables XSAVE and XCR0; all of them exist on this CPU.
    unsafe { Cr4::update(|flags| flags.insert(cr4)) };
    let method = if xsave {
        let mut components = XCr0Flags::X87 | XCr0Flags::SSE;
        if avx {
            components |= XCr0Flags::AVX;
        }
        // SAFETY: x87 and SSE are always valid XCR0 components, AVX only with SSE and where
        // CPUID has it; CR4.OSXSAVE is on. No bit past 31 is set, which the switch relies on
        // (it leaves EDX of the requested-feature mask as it finds it).
        unsafe { XCr0::write(components) };
        let size = __cpuid_count(0xd, 0).ebx as usize;
        assert!(size <= SAVE_AREA_BYTES, "the XSAVE area is {size} bytes, more than the {SAVE_AREA_BYTES} kept per context");
        AREA_SIZE.store(size as u64, Ordering::Relaxed);
        if __cpuid_count(0xd, 1).eax & 1 != 0 { SAVE_XSAVEOPT } else { SAVE_XSAVE }
    } else {
        SAVE_FXSAVE
    };
    if SAVE_METHOD_CHOSEN.swap(true, Ordering::AcqRel) {
        assert_eq!(SAVE_METHOD.load(Ordering::Relaxed), method, "CPUs save their registers differently");
        assert_eq!(AVX_ENABLED.load(Ordering::Relaxed), avx, "CPUs differ in AVX");
    } else {
        SAVE_METHOD.store(method, Ordering::Relaxed);
        AVX_ENABLED.store(avx, Ordering::Relaxed);
    }
}

/// How switches save the registers, for the boot log.
pub fn save_method() -> &'static str {
    match SAVE_METHOD.load(Ordering::Relaxed) {
        SAVE_XSAVEOPT => "xsaveopt",
        SAVE_XSAVE => "xsave",
        _ => "fxsave",
    }
}

/// Whether ring 3 may use AVX (XCR0 includes it).
pub fn avx_enabled() -> bool {
    AVX_ENABLED.load(Ordering::Relaxed)
}

/// Bytes of a context's x87/SSE/AVX state as [`UserState::read_area`] copies it.
pub fn area_size() -> usize {
    AREA_SIZE.load(Ordering::Relaxed) as usize
}

/// Why [`UserState::write_area`] refused an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadArea {
    /// Not [`area_size`] bytes.
    Length,
    /// MXCSR sets a bit the CPU does not support (`fxrstor`/`xrstor` would fault).
    Mxcsr,
    /// The `xsave` header names a component XCR0 lacks, asks for the compacted format, or
    /// has a reserved byte set (`xrstor` would fault).
    Header,
}

/// Which base register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// FS.
    Fs,
    /// GS, as ring 3 sees it.
    Gs,
}

/// The refusal of a base that is not a lower-half address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotUserAddress;

/// One context's registers beyond the trap frame, while it does not run (and its bases while
/// it does). 64-byte aligned, as `xsave` needs.
#[repr(C, align(64))]
pub struct UserState {
    /// The save area of `xsave`/`fxsave`: written by the switch that leaves the context, read
    /// by the one that enters it, and by nothing else while the context lives (see
    /// [`UserState::reset`]).
    registers: UnsafeCell<[u8; SAVE_AREA_BYTES]>,
    /// The FS base.
    fs_base: AtomicU64,
    /// The user GS base.
    gs_base: AtomicU64,
}

/// Byte offsets of the bases, which the switch loads.
pub(super) const FS_BASE_OFFSET: usize = SAVE_AREA_BYTES;
pub(super) const GS_BASE_OFFSET: usize = SAVE_AREA_BYTES + 8;

const _: () = assert!(
    core::mem::offset_of!(UserState, fs_base) == FS_BASE_OFFSET
        && core::mem::offset_of!(UserState, gs_base) == GS_BASE_OFFSET
        && SAVE_AREA_BYTES.is_multiple_of(64)
);

// SAFETY: the bases are atomics; the save area is written and read only by the switch that
// leaves or enters the context (one CPU at a time: the context switching protocol of
// `mm::kernel_stack` orders a leaving CPU's save before any entering CPU's restore) and by
// `reset`, whose callers guarantee no switch uses it meanwhile.
unsafe impl Sync for UserState {}

impl UserState {
    /// A state of zeroes: a switch may save into it, but must not restore from it before
    /// [`UserState::reset`] (the zero x87 control word would unmask every exception).
    pub(crate) const fn new() -> Self {
        Self { registers: UnsafeCell::new([0; SAVE_AREA_BYTES]), fs_base: AtomicU64::new(0), gs_base: AtomicU64::new(0) }
    }

    /// Makes this the state of a fresh context: every register in its initial state (XMM and
    /// YMM zero, x87 empty with control word 0x37f, MXCSR 0x1f80: an `xsave` header with no
    /// component present, whose MXCSR `xrstor` still loads) and both bases 0. Nothing of the
    /// context that had it before is left.
    ///
    /// # Safety
    /// No CPU may save into or restore from this state meanwhile: its context does not run
    /// and no switch to it has begun, and the last switch out of it has finished saving.
    pub(crate) unsafe fn reset(&self) {
        let area = self.registers.get().cast::<u8>();
        // SAFETY: the caller guarantees nothing else touches the area; the writes are inside
        // it (`SAVE_AREA_BYTES` > 28) and unaligned writes are allowed.
        unsafe {
            area.write_bytes(0, SAVE_AREA_BYTES);
            area.add(X87_CONTROL_OFFSET).cast::<u16>().write_unaligned(INITIAL_X87_CONTROL);
            area.add(MXCSR_OFFSET).cast::<u32>().write_unaligned(INITIAL_MXCSR);
        }
        self.fs_base.store(0, Ordering::Relaxed);
        self.gs_base.store(0, Ordering::Relaxed);
    }

    /// The base recorded for `which`.
    pub fn base(&self, which: Base) -> u64 {
        match which {
            Base::Fs => self.fs_base.load(Ordering::Relaxed),
            Base::Gs => self.gs_base.load(Ordering::Relaxed),
        }
    }

    /// Records `address` as the `which` base of a context that does not run; the switch that
    /// next enters it loads it. Refused past the lower half, as in `set_base_of_running`.
    pub(crate) fn set_base_of_suspended(&self, which: Base, address: u64) -> Result<(), NotUserAddress> {
        if address >= abi::tls::BASE_END {
            return Err(NotUserAddress);
        }
        match which {
            Base::Fs => self.fs_base.store(address, Ordering::Relaxed),
            Base::Gs => self.gs_base.store(address, Ordering::Relaxed),
        }
        Ok(())
    }

    /// Copies the first [`area_size`] bytes of the save area into `out` (which must be that
    /// long).
    ///
    /// # Safety
    /// As for [`UserState::reset`]: no CPU saves into or restores from this state meanwhile.
    pub(crate) unsafe fn read_area(&self, out: &mut [u8]) {
        let size = area_size();
        // SAFETY: the caller guarantees nothing writes the area meanwhile; `size` is at most
        // `SAVE_AREA_BYTES` (checked in `enable`).
        let area = unsafe { &*self.registers.get() };
        out[..size].copy_from_slice(&area[..size]);
    }

    /// Replaces the save area with `bytes` (exactly [`area_size`] of them) after checking
    /// that restoring it cannot fault: MXCSR sets only supported bits and, with XSAVE, the
    /// header names only enabled components in the standard format with its reserved bytes
    /// zero. The area is left as it was when refused.
    ///
    /// # Safety
    /// As for [`UserState::reset`]: no CPU saves into or restores from this state meanwhile.
    pub(crate) unsafe fn write_area(&self, bytes: &[u8]) -> Result<(), BadArea> {
        let size = area_size();
        if bytes.len() != size {
            return Err(BadArea::Length);
        }
        // SAFETY: the caller guarantees nothing else touches the area meanwhile.
        let area = unsafe { &mut *self.registers.get() };
        let word = |bytes: &[u8], offset: usize| u32::from_le_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]]);
        // The CPU wrote the supported bits when it saved this area.
        let mask = match word(area, MXCSR_MASK_OFFSET) {
            0 => DEFAULT_MXCSR_MASK,
            mask => mask,
        };
        if word(bytes, MXCSR_OFFSET) & !mask != 0 {
            return Err(BadArea::Mxcsr);
        }
        if SAVE_METHOD.load(Ordering::Relaxed) != SAVE_FXSAVE {
            let enabled = if avx_enabled() { 0b111 } else { 0b11 };
            let xstate_bv = u64::from_le_bytes(bytes[XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8].try_into().map_err(|_| BadArea::Header)?);
            if xstate_bv & !enabled != 0 || bytes[XSTATE_BV_OFFSET + 8..HEADER_END].iter().any(|&byte| byte != 0) {
                return Err(BadArea::Header);
            }
        }
        area[..size].copy_from_slice(bytes);
        Ok(())
    }

    /// Records `address` as the `which` base and loads it into this CPU's register, for the
    /// context this CPU runs (the caller's promise; `mm::kernel_stack` passes the running
    /// context's state). A value past the lower half is refused: a kernel-half GS base
    /// would make the paranoid path skip `swapgs` for a trap from ring 3, and a
    /// non-canonical one would fault in `wrmsr`.
    pub(crate) fn set_base_of_running(&self, which: Base, address: u64) -> Result<(), NotUserAddress> {
        if address >= abi::tls::BASE_END {
            return Err(NotUserAddress);
        }
        let value = VirtAddr::new(address);
        match which {
            Base::Fs => {
                self.fs_base.store(address, Ordering::Relaxed);
                FsBase::write(value);
            }
            Base::Gs => {
                self.gs_base.store(address, Ordering::Relaxed);
                // While the kernel runs, the user's GS base is the swapped-out one.
                KernelGsBase::write(value);
            }
        }
        Ok(())
    }
}
