//! End-to-end tests of the launcher's contract (flags, serial wiring, exit statuses) and of the
//! shared harness in `common`. They boot `hello`, which prints a greeting with its arguments
//! and exits 0, after which the kernel writes that status to isa-debug-exit.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Screen, Vm, run};

/// Generous limits for TCG on a loaded 2-core machine (nominal: BIOS ~1 s, UEFI ~4 s).
const BIOS_BOOT: Duration = common::BOOT_LIMIT;
const UEFI_BOOT: Duration = common::BOOT_LIMIT;

/// Runs the launcher directly, for cases that end before QEMU runs a guest.
fn launcher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the launcher runs")
}

/// The pids of the processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|child| child.parse().expect("pids are numbers"))
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        state != Some(Some('Z'))
    })
}

/// The first bytes the kernel writes: its banner (coloured).
const BANNER_START: &str = "\x1b[1;36mEnigma ";

#[test]
fn bios_boot_prints_only_the_kernel_output_and_exits_0() {
    let (code, output) = run(&["--init", "hello"], "input nobody reads\n", BIOS_BOOT);
    // Neither the firmware nor the bootloader writes to the serial port under BIOS.
    assert!(output.starts_with(BANNER_START), "output: {output:?}");
    assert!(output.contains("Hello from ring 3"), "output: {output:?}");
    assert_eq!(code, 0, "output: {output:?}");
}

#[test]
fn commas_in_init_and_ktest_reach_the_kernel_intact() {
    // Unescaped, the commas would make QEMU reject the -fw_cfg option (exit 2).
    let (code, output) = run(&["--icount", "--init", "hello a,b"], "", BIOS_BOOT);
    assert!(output.contains("args: hello a,b"), "output: {output:?}");
    assert_eq!(code, 0, "output: {output:?}");
    let (code, output) = run(&["--ktest", "x,,y"], "", BIOS_BOOT);
    assert!(output.contains("ktest: no test named \"x,,y\""), "output: {output:?}");
    assert_eq!(code, 2, "output: {output:?}");
}

#[test]
fn timeout_kills_qemu_and_exits_124() {
    let start = Instant::now();
    let vm = Vm::boot(&["--timeout", "2", "--", "-S"]);
    let (code, output) = vm.wait_exit(BIOS_BOOT);
    assert_eq!(code, 124, "output: {output:?}");
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(output, "");
}

#[test]
fn bad_qemu_argument_exits_2_with_qemu_error() {
    assert_eq!(
        run(&["--", "-no-such-option"], "", BIOS_BOOT),
        (2, String::new())
    );
    let out = launcher(&["--headless", "--", "-no-such-option"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("qemu-system-x86_64: -no-such-option"),
        "{stderr}"
    );
    assert!(stderr.contains("enigma: QEMU failed to start"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_launcher_flag_prints_usage_on_stderr_and_exits_2() {
    for args in [
        &["--bogus"][..],
        &["--timeout"],
        &["--timeout", "x"],
        &["--ktest", ""],
    ] {
        let out = launcher(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_exits_0() {
    let out = launcher(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--ktest NAME"));
}

#[test]
fn monitor_sees_a_paused_vm_that_boots_after_cont() {
    let vm = Vm::boot_with_monitor(&["--init", "hello", "--", "-S"]);
    let status = vm.monitor("info status");
    assert!(status.contains("VM status: paused"), "{status:?}");
    assert_eq!(vm.output(), "");
    vm.monitor("cont");
    vm.wait_for("Hello from ring 3", BIOS_BOOT);
    let (code, output) = vm.wait_exit(BIOS_BOOT);
    assert_eq!(code, 0, "output: {output:?}");
}

#[test]
fn monitor_quit_exits_125() {
    let vm = Vm::boot_with_monitor(&["--", "-S"]);
    vm.monitor("quit");
    assert_eq!(vm.wait_exit(BIOS_BOOT), (125, String::new()));
}

#[test]
fn sendkeys_types_every_mapped_character() {
    let vm = Vm::boot_with_monitor(&["--init", "cat"]);
    vm.wait_for("init: starting cat", BIOS_BOOT);
    let start = vm.output_len();
    // Every character `sendkeys` maps but Enter and Backspace, which end and edit the line:
    // an `X` erased with Backspace, then Enter. `cat` writes the line back once it has read
    // it, after the line discipline's echo (which ends with the erasure and the newline).
    let text = "az09 AZ-=.,/\\;'`[]!@#$%^&*()_+<>?|:\"~{}\t";
    vm.sendkeys(&format!("{text}X\u{8}\n"));
    let echo_then_line = format!("{text}X\x08 \x08\r\n{text}\r\n");
    vm.wait_for_after(start, &echo_then_line, BIOS_BOOT);
}

#[test]
fn screendump_of_a_paused_vm_shows_qemus_placeholder() {
    let vm = Vm::boot_with_monitor(&["--", "-S"]);
    // Before the guest sets a video mode, QEMU shows "Guest has not initialized the display
    // (yet)." in grey on black, 640x480.
    let screen = vm.screendump();
    assert_eq!((screen.width, screen.height), (640, 480));
    assert_eq!(screen.distinct_colours(), 2);
    let text = screen.non_background_fraction();
    assert!(0.0 < text && text < 0.01, "text covers {text}");
}

#[test]
fn screen_metrics_of_a_known_picture() {
    let mut ppm = b"P6\n# made by hand\n2 2\n255\n".to_vec();
    ppm.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 10, 20]);
    let screen = Screen::from_ppm(&ppm);
    assert_eq!((screen.width, screen.height), (2, 2));
    assert_eq!(screen.distinct_colours(), 2);
    assert_eq!(screen.non_background_fraction(), 0.25);
}

#[test]
#[should_panic(expected = "the VM exited waiting for \"never printed\"")]
fn wait_for_fails_fast_when_the_vm_exits() {
    // The default init keeps a shell running and never exits; `hello` exits at once.
    Vm::boot(&["--init", "hello"]).wait_for("never printed", UEFI_BOOT);
}

#[test]
#[should_panic(expected = "timed out after 1s waiting for \"E\"")]
fn wait_for_times_out_on_a_paused_vm() {
    Vm::boot(&["--", "-S"]).wait_for("E", Duration::from_secs(1));
}

#[test]
fn dropping_a_vm_kills_qemu() {
    let vm = Vm::boot_with_monitor(&["--", "-S"]);
    // Once the monitor answers, QEMU is running.
    vm.monitor("info status");
    let qemu = children(vm.launcher_pid());
    assert_eq!(qemu.len(), 1, "the launcher should have one child, QEMU");
    assert!(alive(qemu[0]));
    drop(vm);
    // Dropping waits until QEMU has closed its end of the output pipes, which a dying process
    // does shortly before it becomes a zombie. The limit only catches a QEMU left running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(qemu[0]) {
        assert!(
            Instant::now() < deadline,
            "QEMU {} outlived its Vm",
            qemu[0]
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
