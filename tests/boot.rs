//! End-to-end tests of the foundation, through the launcher: the boot banner (BIOS and
//! UEFI), the command line, console echo of serial and keyboard input, text on the
//! framebuffer, the in-kernel tests, the double-fault stack, and a kernel panic's status.

mod common;

use std::time::Duration;

use common::{Vm, run};

/// Upper bound for a boot plus a short program under TCG on a loaded 2-core machine.
const BOOT: Duration = common::BOOT_LIMIT;

fn banner() -> String {
    format!("Enigma {}", env!("CARGO_PKG_VERSION"))
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn headless_bios_boot_shows_the_banner_and_exits_with_the_programs_status() {
    let (status, output) = run(&["--init", "hello"], "", BOOT);
    assert!(output.contains(&banner()), "no banner in:\n{output}");
    assert!(output.contains("Hello from ring 3"), "hello did not run:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn uefi_boot_reaches_the_banner() {
    let (status, output) = run(&["--uefi", "--init", "hello"], "", BOOT);
    assert!(output.contains(&banner()), "no banner in:\n{output}");
    // OVMF prints its own messages on the serial port first; the bootloader must not.
    assert!(!output.contains("Jumping to kernel"), "bootloader log on serial:\n{output}");
    assert!(output.contains("Hello from ring 3"), "hello did not run:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn the_command_line_reaches_the_kernel_and_the_program() {
    let (status, output) = run(&["--init", "hello one,two  three"], "", BOOT);
    assert!(output.contains("cmdline: hello one,two  three"), "cmdline not logged:\n{output}");
    assert!(output.contains("args: hello one,two three"), "arguments not passed:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn a_missing_first_program_ends_with_status_127() {
    let (status, output) = run(&["--init", "no-such-program"], "", BOOT);
    assert!(output.contains("cannot start no-such-program"), "output:\n{output}");
    assert_eq!(status, 127, "output:\n{output}");
}

/// The tests in `kernel/src/ktest.rs`'s `TESTS`: change it with that list, so that a test
/// that stops running (or is dropped) fails here.
const IN_KERNEL_TESTS: usize = 19;

#[test]
fn every_in_kernel_test_passes() {
    let (status, output) = run(&["--ktest", "all"], "", BOOT);
    let summary = output.lines().find(|line| line.starts_with("ktest: ")).unwrap_or_else(|| panic!("no summary:\n{output}"));
    assert_eq!(summary, format!("ktest: {IN_KERNEL_TESTS} passed, 0 failed"), "output:\n{output}");
    let passed = output.lines().filter(|line| line.starts_with("ktest ") && line.ends_with(" ... ok")).count();
    assert_eq!(passed, IN_KERNEL_TESTS, "`... ok` lines; output:\n{output}");
    assert!(!output.contains("FAILED"), "output:\n{output}");
    assert!(output.contains("breakpoint at "), "the breakpoint handler did not report:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn four_cpus_come_up_and_each_takes_timer_interrupts() {
    let test = "every_listed_cpu_runs_and_takes_timer_interrupts";
    let (status, output) = run(&["--smp", "4", "--ktest", test], "", BOOT);
    for cpu in 0..4 {
        assert!(output.contains(&format!("cpu {cpu} up (apic id ")), "cpu {cpu} not named in the boot log:\n{output}");
    }
    assert!(output.contains(&format!("ktest {test} ... ok")), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn a_kernel_stack_overflow_reaches_the_double_fault_handler() {
    let (status, output) = run(&["--ktest", "stack_overflow"], "", BOOT);
    assert!(output.contains("double fault caught on its own stack"), "output:\n{output}");
    assert!(output.contains("ktest stack_overflow ... ok"), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn a_process_kernel_stack_overflow_is_reported_as_that_stack() {
    let (status, output) = run(&["--ktest", "process_stack_overflow"], "", BOOT);
    assert!(output.contains("kernel stack overflow: the stack in slot"), "the report does not name the stack:\n{output}");
    assert!(output.contains("running context"), "the report does not say it was the running stack:\n{output}");
    assert!(output.contains("ktest process_stack_overflow ... ok"), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn freeing_the_kernel_stack_the_cpu_runs_on_panics() {
    let (status, output) = run(&["--ktest", "free_running_stack"], "", BOOT);
    assert!(output.contains("freeing the kernel stack the CPU is running on"), "output:\n{output}");
    assert!(!output.contains("FAILED"), "output:\n{output}");
    assert_eq!(status, 101, "output:\n{output}");
}

#[test]
fn a_machine_check_ends_the_kernel_with_a_report() {
    let (status, output) = run(&["--ktest", "machine_check"], "", BOOT);
    assert!(output.contains("KERNEL PANIC"), "output:\n{output}");
    assert!(output.contains("kernel machine check"), "the report does not name the machine check:\n{output}");
    assert!(!output.contains("FAILED"), "output:\n{output}");
    assert_eq!(status, 101, "output:\n{output}");
}

#[test]
fn non_maskable_interrupts_are_survived_while_the_console_is_busy() {
    let mut vm = Vm::boot_with_monitor(&["--init", "sh"]);
    vm.wait_for("enigma$ ", BOOT);
    // `yes` keeps the kernel inside console writes (holding their locks) most of the time.
    vm.send("yes\n");
    vm.wait_for("y\r\ny\r\ny\r\n", BOOT);
    for _ in 0..5 {
        vm.monitor("nmi");
        std::thread::sleep(Duration::from_millis(50));
    }
    vm.send("\x03");
    vm.wait_for("non-maskable interrupt (5 so far)", BOOT);
    vm.send("echo still-alive\n");
    let output = vm.wait_for("still-alive\r\n", BOOT);
    assert!(!output.contains("KERNEL PANIC"), "output:\n{output}");
}

#[test]
fn a_kernel_panic_exits_with_status_101() {
    let (status, output) = run(&["--ktest", "panic"], "", BOOT);
    assert!(output.contains("KERNEL PANIC"), "output:\n{output}");
    assert!(output.contains("deliberate panic"), "the panic message is missing:\n{output}");
    assert_eq!(status, 101, "output:\n{output}");
}

#[test]
fn serial_input_is_echoed_and_read_line_by_line() {
    let mut vm = Vm::boot(&["--init", "cat"]);
    vm.wait_for("init: starting cat", BOOT);
    vm.send("ping-serial\n");
    // Once echoed by the line discipline, once written back by `cat` after it read the line.
    let output = vm.wait_for("ping-serial\r\nping-serial", BOOT);
    assert_eq!(count(&output, "ping-serial"), 2, "output:\n{output}");
    vm.send("\x04");
    let (status, output) = vm.wait_exit(BOOT);
    assert_eq!(status, 0, "cat did not end at Ctrl-D:\n{output}");
}

#[test]
fn keyboard_input_is_echoed() {
    let vm = Vm::boot_with_monitor(&["--init", "cat"]);
    vm.wait_for("init: starting cat", BOOT);
    vm.sendkeys("key-echo\n");
    let output = vm.wait_for("key-echo\r\nkey-echo", BOOT);
    assert_eq!(count(&output, "key-echo"), 2, "output:\n{output}");
}

#[test]
fn the_framebuffer_shows_the_console_text() {
    let vm = Vm::boot_with_monitor(&["--init", "cat"]);
    vm.wait_for("init: starting cat", BOOT);
    let screen = vm.screendump();
    assert_eq!((screen.width, screen.height), (1280, 720), "unexpected screen size");
    let drawn = screen.non_background_fraction();
    // A dozen lines of text cover a small part of the screen; a blank screen covers none.
    assert!((0.002..0.5).contains(&drawn), "{:.4} of the screen is drawn", drawn);
    assert!(screen.distinct_colours() > 2, "only {} colours: no coloured text", screen.distinct_colours());
}
