//! Walking the frame-pointer chain of the stack the CPU runs on, for kernel backtraces.
//!
//! The walk reads raw stack memory, so it reads only inside the stack that holds the stack
//! pointer, whose range is known: the boot stack (as the bootloader reported it, see
//! [`record_boot_stack`]) or the process kernel stack whose slot holds it (which `mm`, above
//! this layer, tells through [`set_stack_ranges`]). Either is mapped for as long as the CPU runs
//! on it. [`abi::backtrace::walk_frames`] checks every record against that range before it is
//! read, so a corrupt chain ends the walk; on any other stack (an interrupt stack) nothing is
//! walked. The walk takes no lock and allocates nothing, so a panic can use it.
//!
//! A record whose return address is the instruction after `trap_common`'s call of the
//! dispatcher is `trap_dispatch`'s, and the [`TrapFrame`] lies right above it. When that
//! frame interrupted kernel code, the walk reports the interrupted instruction as a frame of
//! its own: a kernel fault's backtrace names the function that faulted, then goes on
//! through that function's callers (the dispatcher saved their frame pointer).

use core::arch::asm;
use core::mem::offset_of;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::backtrace::{Frame, walk_frames};
use bootloader_api::BootInfo;

use spin::Once;

use super::trap::{TrapFrame, trap_dispatch_return_address};

/// The boot stack's range, `start..end` (both 0 until [`record_boot_stack`]).
static BOOT_STACK_START: AtomicU64 = AtomicU64::new(0);
static BOOT_STACK_END: AtomicU64 = AtomicU64::new(0);

/// Remembers where the bootloader put the boot stack (the idle loop's, and the boot code's).
pub fn record_boot_stack(boot_info: &BootInfo) {
    let start = boot_info.kernel_stack_bottom;
    BOOT_STACK_START.store(start, Ordering::Relaxed);
    BOOT_STACK_END.store(start.saturating_add(boot_info.kernel_stack_len), Ordering::Relaxed);
}

/// The ranges of the other stacks the kernel runs on: given a stack pointer, the stack that
/// holds it, if any (see [`set_stack_ranges`]).
static STACK_RANGES: Once<StackRanges> = Once::new();

/// Given a stack pointer, the range of the kernel stack that holds it.
type StackRanges = fn(u64) -> Option<Range<u64>>;

/// Tells the walk where the kernel's other stacks are: `ranges(stack_pointer)` is the stack
/// that holds the pointer. Only the first call counts.
///
/// # Safety
/// Whenever a CPU's stack pointer `sp` lies in `ranges(sp) = Some(range)`, the whole of
/// `range` must be mapped and readable for as long as that CPU runs on it (the walk reads any
/// word of it).
pub(crate) unsafe fn set_stack_ranges(ranges: StackRanges) {
    STACK_RANGES.call_once(|| ranges);
}

/// The range of the stack that holds `stack_pointer`, if it is one the walk knows.
fn stack_holding(stack_pointer: u64) -> Option<Range<u64>> {
    let boot = BOOT_STACK_START.load(Ordering::Relaxed)..BOOT_STACK_END.load(Ordering::Relaxed);
    if boot.contains(&stack_pointer) {
        return Some(boot);
    }
    STACK_RANGES.get().and_then(|ranges| ranges(stack_pointer))
}

/// Calls `visit` with the frames of the code that called this function, innermost first:
/// return addresses, and the interrupted instruction of any trap from kernel code on the
/// way. Reads nothing outside the current stack. Returns `false`, having visited nothing,
/// when the CPU runs on a stack the walk does not know.
#[inline(never)]
pub fn walk_current_stack(mut visit: impl FnMut(Frame)) -> bool {
    let (frame_pointer, stack_pointer): (u64, u64);
    // SAFETY: copies two registers; touches no memory.
    unsafe { asm!("mov {}, rbp", "mov {}, rsp", out(reg) frame_pointer, out(reg) stack_pointer, options(nomem, nostack, preserves_flags)) };
    let Some(stack) = stack_holding(stack_pointer) else { return false };
    let read_word = |address: u64| -> Option<u64> {
        let inside = address.is_multiple_of(8)
            && address >= stack.start
            && address.checked_add(8).is_some_and(|end| end <= stack.end);
        // SAFETY: the word lies inside the stack the CPU runs on (checked just above), which
        // stays mapped while it runs; it is read, never referenced, so what the rest of the
        // kernel does with it does not matter.
        inside.then(|| unsafe { (address as *const u64).read_volatile() })
    };
    let trap_return = trap_dispatch_return_address();
    let read_record = |record: u64| Some([read_word(record)?, read_word(record + 8)?]);
    walk_frames(frame_pointer, stack.clone(), read_record, |record, return_address| {
        visit(Frame::Return(return_address));
        if return_address == trap_return {
            let frame = record + 16;
            let from_kernel = read_word(frame + offset_of!(TrapFrame, cs) as u64).is_some_and(|cs| cs & 3 == 0);
            if from_kernel && let Some(instruction) = read_word(frame + offset_of!(TrapFrame, rip) as u64) {
                visit(Frame::Interrupted(instruction));
            }
        }
    });
    true
}
