//! The boot sequence, and the kernel's last words (panics and double faults).
//!
//! Order: serial console and logger → banner → framebuffer console → GDT and TSS → per-CPU
//! data → IDT → CPU protections → memory (frames, page tables, heap) → PIC, timer →
//! `syscall` MSRs → command line → (in-kernel tests, if asked) → console input tasks → the
//! first process → the idle loop.

use alloc::string::String;
use alloc::vec::Vec;
use core::panic::PanicInfo;

use bootloader_api::BootInfo;

use crate::arch::x86_64::trap::{CpuFault, TrapFrame};
use crate::arch::x86_64::{cpu, fw_cfg, gdt, pic, qemu, syscall_entry, trap};
use crate::{backtrace, console, ktest, mm, println, task, time};

/// The kernel's version, as the banner shows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Program started when the command line names none.
const DEFAULT_INIT: &str = "init";

/// Exit status when the first program cannot be started (like a shell's "not found").
const FIRST_PROGRAM_FAILED: i32 = 127;

/// The kernel's entry point, called by `main.rs` with the bootloader's hand-over.
pub fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    // First, while the boot information is still whole (the framebuffer keeps its part).
    let kernel_symbols = backtrace::init(boot_info);
    console::init();
    if !kernel_symbols {
        log::warn!("no kernel symbol table: backtraces show addresses only");
    }
    let screen = boot_info.framebuffer.as_mut().and_then(console::attach_framebuffer);
    println!("\x1b[1;36mEnigma {VERSION}\x1b[0m: an x86_64 microkernel in Rust");
    match screen {
        Some(size) => log::info!("framebuffer console: {size}"),
        None => log::warn!("no usable framebuffer; serial console only"),
    }
    gdt::init();
    cpu::init_per_cpu();
    trap::init();
    let protections = cpu::enable_protections();
    log::info!(
        "protections: NX {} WP {} SMEP {} SMAP {} UMIP {}",
        on_off(protections.nx),
        on_off(protections.write_protect),
        on_off(protections.smep),
        on_off(protections.smap),
        on_off(protections.umip)
    );

    let offset = boot_info.physical_memory_offset.into_option();
    assert_eq!(offset, Some(mm::paging::PHYSICAL_MEMORY_OFFSET), "physical memory is not mapped where expected");
    mm::init(&boot_info.memory_regions);
    let heap = mm::heap_stats();
    log::info!(
        "memory: {} of {} frames free, heap {} KiB",
        mm::frame::free_count(),
        mm::frame::total_count(),
        heap.heap_size / 1024
    );

    pic::init();
    time::start();
    syscall_entry::init();
    log::info!("timer {} Hz, syscalls via int 0x80 and syscall", time::TIMER_HZ);

    let command_line = fw_cfg::read_file("opt/enigma/cmdline").map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    log::info!("cmdline: {}", command_line.as_deref().unwrap_or(""));
    if let Some(selection) = fw_cfg::read_file("opt/enigma/ktest") {
        ktest::run(&String::from_utf8_lossy(&selection));
    }

    console::input::start();
    start_first_program(command_line.as_deref().unwrap_or(DEFAULT_INIT));
    task::scheduler::run_idle_loop()
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Starts the program the command line names (its first word) with the command line's
/// words as its arguments.
fn start_first_program(command_line: &str) {
    let mut words: Vec<&str> = command_line.split_whitespace().collect();
    if words.is_empty() {
        words.push(DEFAULT_INIT);
    }
    match task::scheduler::spawn(words[0], &words, 0) {
        Ok(pid) => log::info!("started {} as pid {pid}", words[0]),
        Err(error) => {
            log::error!("cannot start {}: {error:?}", words[0]);
            qemu::exit(FIRST_PROGRAM_FAILED);
        }
    }
}

/// The panic handler's body: reports on both consoles, with a backtrace, and ends QEMU with
/// status 101.
pub fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    console::print_panic(format_args!("\n\x1b[1;31mKERNEL PANIC\x1b[0m: {info}\n"));
    backtrace::print_kernel_backtrace(console::print_panic);
    qemu::exit(abi::status::PANIC)
}

/// Reports a double fault (on its own stack). Ends the kernel, successfully only when the
/// stack-overflow test is waiting for exactly this.
pub fn double_fault(fault: &CpuFault, frame: &TrapFrame) -> ! {
    if ktest::expecting_double_fault() {
        println!("double fault caught on its own stack: {fault} (rsp {:#x})", frame.rsp);
        ktest::finish_double_fault_test();
    }
    panic!("double fault: {fault}\n{frame:#x?}");
}
