//! End-to-end test of the clock: `uptime` keeps pace with the host's clock while the
//! console is flooded, because uptime comes from a counter (HPET or TSC) and not from
//! counting timer interrupts. The host's side is bracketed, not timed: each reading was
//! taken after the host sent the command and before its answer arrived, so a loaded host,
//! which only delays answers, widens the bracket and cannot fail the test. (That sleeps keep
//! ending during a flood is the usertests case `sleeps_never_end_early_during_a_newline_flood`.)

mod common;

use std::time::{Duration, Instant};

use common::Vm;

const BOOT: Duration = common::BOOT_LIMIT;
/// How long the console is flooded between the two readings of `uptime`.
const FLOOD: Duration = Duration::from_secs(12);
/// How far the guest's clock may run from the host's over the interval, beyond the bracket.
const TOLERANCE: f64 = 0.01;

/// Seconds in the last `up S.mmm s` of `output`. It is looked for anywhere, not at the
/// start of a line: what is typed ahead is echoed as it arrives, between the shell's lines.
fn last_uptime(output: &str) -> f64 {
    let at = output.rfind("up ").unwrap_or_else(|| panic!("no uptime in:\n{output}"));
    let seconds = output[at + "up ".len()..].split(' ').next().unwrap_or_default();
    seconds.parse().unwrap_or_else(|_| panic!("bad uptime {seconds:?} in:\n{}", &output[at..]))
}

/// Asks the shell for the uptime; returns it and the host instants the command was sent and
/// its answer arrived, between which the guest read its clock.
fn read_uptime(vm: &mut Vm, marker: &str) -> (f64, Instant, Instant) {
    let start = vm.output_len();
    let sent = Instant::now();
    vm.send(&format!("uptime\necho {marker}\n"));
    let output = vm.wait_for_after(start, &format!("\n{marker}\r\n"), BOOT);
    let arrived = Instant::now();
    let before_marker = &output[..output.rfind(marker).unwrap_or(output.len())];
    (last_uptime(before_marker), sent, arrived)
}

#[test]
fn uptime_keeps_pace_with_the_host_clock_during_a_console_flood() {
    let mut vm = Vm::boot(&["--init", "sh"]);
    vm.wait_for("enigma$ ", BOOT);
    let (first, first_sent, first_arrived) = read_uptime(&mut vm, "first-reading");
    // `yes` writes newlines as fast as it can; every line feed used to keep interrupts masked
    // for about a millisecond, during which timer ticks were lost.
    vm.send("yes\n");
    std::thread::sleep(FLOOD);
    let flooded = vm.output_len();
    vm.send("\x03");
    vm.wait_for_after(flooded, "enigma$ ", BOOT);
    let (second, second_sent, second_arrived) = read_uptime(&mut vm, "second-reading");
    let guest = second - first;
    // The two readings were at least this far apart on the host's clock, and at most this.
    let least = (second_sent - first_arrived).as_secs_f64();
    let most = (second_arrived - first_sent).as_secs_f64();
    println!("uptime advanced {guest:.3} s; on the host's clock the readings were {least:.3} s to {most:.3} s apart");
    assert!(
        least * (1.0 - TOLERANCE) <= guest && guest <= most * (1.0 + TOLERANCE),
        "uptime advanced {guest:.3} s while the host's clock advanced between {least:.3} s and {most:.3} s"
    );
}

