//! End-to-end tests of the console server under `init`'s supervision: the default boot lists
//! `console` among the processes; killing it from the shell (`svc restart console`) brings
//! it and the shell back, usable on the serial line and on the keyboard; and `dmesg` shows
//! the kernel's boot log.

mod common;

use std::time::{Duration, Instant};

use common::Vm;

const PROMPT: &str = "enigma$ ";
/// Upper bound for booting to the first prompt under TCG on a loaded machine.
const BOOT: Duration = common::BOOT_LIMIT;
/// Upper bound for one command, and for the console and shell to come back after a kill:
/// a hang limit, since how soon they are back under TCG depends on the host's load (the
/// figure is printed).
const STEP: Duration = common::STEP_LIMIT;

/// Types `line` on the serial line and returns the output up to the next prompt after it.
fn run(vm: &mut Vm, line: &str) -> String {
    let start = vm.output_len();
    vm.send(&format!("{line}\n"));
    let output = vm.wait_for_after(start, &format!("\r\n{PROMPT}"), STEP);
    output[start..].to_owned()
}

#[test]
fn a_killed_console_comes_back_with_the_shell_on_serial_and_keyboard() {
    let mut vm = Vm::boot_with_monitor(&[]);
    vm.wait_for(PROMPT, BOOT);
    let processes = run(&mut vm, "ps");
    assert!(processes.lines().any(|line| line.trim_end().ends_with(" console")), "ps shows no console:\n{processes}");
    let listed = run(&mut vm, "svc list");
    assert!(listed.contains("console "), "svc list:\n{listed}");

    let start = vm.output_len();
    let asked = Instant::now();
    vm.send("svc restart console\n");
    let output = vm.wait_for_after(start, "init: console (pid ", STEP);
    let restarted_at = output.len();
    vm.wait_for_after(restarted_at, PROMPT, STEP);
    let back = asked.elapsed();
    println!("console and shell back {} ms after `svc restart console` was typed", back.as_millis());

    let echoed = run(&mut vm, "echo serial-after-restart");
    assert!(echoed.contains("serial-after-restart\r\nserial-after-restart"), "serial input after the restart:\n{echoed}");
    // Typed on the keyboard: the shell's echo of the line, then the command's output.
    let start = vm.output_len();
    vm.sendkeys("echo keys-after-restart\n");
    let answer = "keys-after-restart\r\nkeys-after-restart";
    let typed = vm.wait_for_after(start, answer, STEP);
    let answered = start + typed[start..].find(answer).expect("the answer was found");
    vm.wait_for_after(answered, PROMPT, STEP);

    vm.send("shutdown\n");
    let (status, output) = vm.wait_exit(STEP);
    assert_eq!(status, 0, "{output}");
}

#[test]
fn dmesg_shows_the_boot_log() {
    let mut vm = Vm::boot(&[]);
    vm.wait_for(PROMPT, BOOT);
    let log = run(&mut vm, "dmesg");
    for line in ["an x86_64 microkernel in Rust", "protections: NX on", "started init as pid 1"] {
        assert!(log.contains(line), "dmesg shows no {line:?}:\n{log}");
    }
    vm.send("shutdown\n");
    let (status, output) = vm.wait_exit(STEP);
    assert_eq!(status, 0, "{output}");
}
