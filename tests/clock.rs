//! End-to-end test of the clock: `uptime` keeps pace with the host's clock while the kernel
//! is kept busy with interrupts masked (a console flood), because uptime comes from a counter
//! (HPET or TSC) and not from counting timer interrupts, which are lost meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::Vm;

const BOOT: Duration = Duration::from_secs(90);
/// How long the console is flooded between the two readings of `uptime`.
const FLOOD: Duration = Duration::from_secs(12);
/// The most the guest's clock may differ from the host's over the interval.
const TOLERANCE: f64 = 0.01;

/// Seconds in the last `up S.mmm s` of `output`. It is looked for anywhere, not at the
/// start of a line: what is typed ahead is echoed as it arrives, between the shell's lines.
fn last_uptime(output: &str) -> f64 {
    let at = output.rfind("up ").unwrap_or_else(|| panic!("no uptime in:\n{output}"));
    let seconds = output[at + "up ".len()..].split(' ').next().unwrap_or_default();
    seconds.parse().unwrap_or_else(|_| panic!("bad uptime {seconds:?} in:\n{}", &output[at..]))
}

/// Asks the shell for the uptime; returns it and the host instant its answer arrived.
fn read_uptime(vm: &mut Vm, marker: &str) -> (f64, Instant) {
    let start = vm.output_len();
    vm.send(&format!("uptime\necho {marker}\n"));
    let output = vm.wait_for_after(start, &format!("\n{marker}\r\n"), BOOT);
    let arrived = Instant::now();
    let before_marker = &output[..output.rfind(marker).unwrap_or(output.len())];
    (last_uptime(before_marker), arrived)
}

#[test]
fn uptime_keeps_pace_with_the_host_clock_during_a_console_flood() {
    let mut vm = Vm::boot(&["--init", "sh"]);
    vm.wait_for("enigma$ ", BOOT);
    let (first, first_arrived) = read_uptime(&mut vm, "first-reading");
    // `yes` writes newlines as fast as it can; every line feed used to keep interrupts masked
    // for about a millisecond, during which timer ticks were lost.
    vm.send("yes\n");
    std::thread::sleep(FLOOD);
    let flooded = vm.output_len();
    vm.send("\x03");
    vm.wait_for_after(flooded, "enigma$ ", BOOT);
    let (second, second_arrived) = read_uptime(&mut vm, "second-reading");
    let guest = second - first;
    let host = (second_arrived - first_arrived).as_secs_f64();
    let drift = (guest - host).abs() / host;
    assert!(
        drift <= TOLERANCE,
        "uptime advanced {guest:.3} s while the host's clock advanced {host:.3} s ({:.2} % apart)",
        drift * 100.0
    );
}
