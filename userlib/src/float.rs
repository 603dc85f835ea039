//! Floating point in SSE registers, for programs built soft-float.
//!
//! User programs are built for `x86_64-unknown-none`, whose ABI is soft-float: the compiler
//! computes with `f64` through integer routines and never touches an XMM register. Since the
//! kernel keeps every process's x87, SSE and AVX registers (decision 66), a program may use
//! them, but the compiler will not: `#[target_feature(enable = "sse2")]` is refused on this
//! target (the `x86_softfloat_sse` lint) and `-C target-feature=+sse2` is being phased out
//! with a warning and still calls the soft-float routines. So [`F64`] does each operation
//! with one SSE instruction in inline assembly:
//!
//! ```ignore
//! use userlib::float::F64;
//! let (x, y) = (F64::new(1.5), F64::from_int(3));
//! let z = (x * x + y).sqrt();          // mulsd, addsd, sqrtsd
//! assert_eq!(z.get(), 5.25f64.sqrt());  // an ordinary f64 again, the same to the bit
//! ```
//!
//! Results are the IEEE-754 ones (round to nearest unless the program changes MXCSR), so they
//! equal the soft-float routines' to the bit; the gain is speed: one instruction and a few
//! register moves instead of a routine call.
//!
//! Each operation moves its operands into `xmm0` and `xmm1` through general registers. On a
//! soft-float build the compiler keeps nothing in XMM registers, so using them without
//! telling it is sound; where the compiler has SSE (the host's unit tests) the two are
//! declared clobbered.

use core::cmp::Ordering;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// An `f64` computed on in SSE registers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct F64(f64);

/// Runs `$code` (assembly naming `{a}` and `{b}`, general registers holding `$a` and `$b`,
/// and using no XMM register but `xmm0` and `xmm1`), and returns `{a}` as an `F64`'s bits.
macro_rules! sse {
    ($code:expr, $a:expr, $b:expr) => {{
        let mut bits: u64 = $a;
        #[cfg(not(target_feature = "sse"))]
        // SAFETY: the code reads and writes xmm0, xmm1 and the two general registers given,
        // nothing else; on this soft-float build the compiler keeps nothing in XMM registers.
        unsafe {
            core::arch::asm!($code, a = inout(reg) bits, b = in(reg) $b, options(pure, nomem, nostack, preserves_flags))
        };
        #[cfg(target_feature = "sse")]
        // SAFETY: as above; the XMM registers used are declared clobbered.
        unsafe {
            core::arch::asm!(
                $code, a = inout(reg) bits, b = in(reg) $b, out("xmm0") _, out("xmm1") _,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        F64(f64::from_bits(bits))
    }};
}

/// `$instruction xmm0, xmm1` on two `F64`s.
macro_rules! binary {
    ($instruction:literal, $a:expr, $b:expr) => {
        sse!(
            concat!("movq xmm0, {a}\n", "movq xmm1, {b}\n", $instruction, " xmm0, xmm1\n", "movq {a}, xmm0"),
            $a.0.to_bits(),
            $b.0.to_bits()
        )
    };
}

impl F64 {
    /// The value `value`.
    pub const fn new(value: f64) -> Self {
        Self(value)
    }

    /// The integer `value`, converted by `cvtsi2sd` (rounded to nearest past 2^53).
    pub fn from_int(value: i64) -> Self {
        sse!("cvtsi2sd xmm0, {b}\nmovq {a}, xmm0", 0, value)
    }

    /// The value as an ordinary `f64`.
    pub const fn get(self) -> f64 {
        self.0
    }

    /// The square root (`sqrtsd`).
    pub fn sqrt(self) -> Self {
        sse!("movq xmm1, {b}\nsqrtsd xmm0, xmm1\nmovq {a}, xmm0", 0, self.0.to_bits())
    }

    /// The value truncated towards zero (`cvttsd2si`; `i64::MIN` for NaN and values out of
    /// range, as the instruction gives).
    pub fn truncate(self) -> i64 {
        let mut value: i64 = 0;
        let bits = self.0.to_bits();
        #[cfg(not(target_feature = "sse"))]
        // SAFETY: reads the general register given and writes `value` and xmm0 only; on this
        // soft-float build the compiler keeps nothing in XMM registers.
        unsafe {
            core::arch::asm!("movq xmm0, {b}", "cvttsd2si {a}, xmm0", a = out(reg) value, b = in(reg) bits, options(pure, nomem, nostack, preserves_flags))
        };
        #[cfg(target_feature = "sse")]
        // SAFETY: as above; xmm0 is declared clobbered.
        unsafe {
            core::arch::asm!(
                "movq xmm0, {b}", "cvttsd2si {a}, xmm0", a = out(reg) value, b = in(reg) bits, out("xmm0") _,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        value
    }
}

/// Whether this program may use AVX: CPUID has AVX and OSXSAVE, and XCR0 (which the kernel
/// sets) enables the SSE and AVX state. Without it an AVX instruction is `#UD`.
pub fn avx_usable() -> bool {
    let features = core::arch::x86_64::__cpuid(1).ecx;
    if features & (1 << 27) == 0 || features & (1 << 28) == 0 {
        return false;
    }
    let (enabled, _high): (u32, u32);
    // SAFETY: `xgetbv` with ECX 0 reads XCR0; CPUID says CR4.OSXSAVE is on, so it does not
    // fault in ring 3.
    unsafe { core::arch::asm!("xgetbv", in("ecx") 0, out("eax") enabled, out("edx") _high, options(nomem, nostack, preserves_flags)) };
    enabled & 0b110 == 0b110
}

impl From<f64> for F64 {
    fn from(value: f64) -> Self {
        Self(value)
    }
}

impl Add for F64 {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        binary!("addsd", self, other)
    }
}

impl Sub for F64 {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        binary!("subsd", self, other)
    }
}

impl Mul for F64 {
    type Output = Self;
    fn mul(self, other: Self) -> Self {
        binary!("mulsd", self, other)
    }
}

impl Div for F64 {
    type Output = Self;
    fn div(self, other: Self) -> Self {
        binary!("divsd", self, other)
    }
}

impl Neg for F64 {
    type Output = Self;
    /// Flips the sign bit, as `-x` on an `f64` does (no instruction needed).
    fn neg(self) -> Self {
        Self(-self.0)
    }
}

impl PartialOrd for F64 {
    /// Compared as `f64`s: an exact integer comparison, no rounding involved.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.0.partial_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_gives_the_ieee_result() {
        let values = [0.0, -0.0, 1.0, -2.5, 0.1, 3.0e300, 1.0e-310, f64::INFINITY, f64::MAX, core::f64::consts::PI];
        for &a in &values {
            for &b in &values {
                let (x, y) = (F64::new(a), F64::new(b));
                assert_eq!((x + y).get().to_bits(), (a + b).to_bits(), "{a} + {b}");
                assert_eq!((x - y).get().to_bits(), (a - b).to_bits(), "{a} - {b}");
                assert_eq!((x * y).get().to_bits(), (a * b).to_bits(), "{a} * {b}");
                let quotient = (x / y).get();
                assert!(quotient.to_bits() == (a / b).to_bits() || (quotient.is_nan() && (a / b).is_nan()), "{a} / {b}");
            }
            if a >= 0.0 {
                assert_eq!(F64::new(a).sqrt().get().to_bits(), a.sqrt().to_bits(), "sqrt {a}");
            }
        }
        assert_eq!(F64::from_int(-7).get(), -7.0);
        assert_eq!(F64::from_int((1 << 53) + 1).get(), (1u64 << 53) as f64);
        assert_eq!(F64::new(-2.9).truncate(), -2);
        assert_eq!(F64::new(f64::NAN).truncate(), i64::MIN);
    }
}
