//! End-to-end tests of the clock and of latency: `uptime` keeps pace with the host's clock
//! while the console is flooded, because uptime comes from a counter (HPET or TSC) and not
//! from counting timer interrupts; and while the console server writes 1 MiB of newlines,
//! other processes' sleeps stay on time.

mod common;

use std::time::{Duration, Instant};

use common::Vm;

const BOOT: Duration = Duration::from_secs(90);
/// How long the console is flooded between the two readings of `uptime`.
const FLOOD: Duration = Duration::from_secs(12);
/// The most the guest's clock may differ from the host's over the interval.
const TOLERANCE: f64 = 0.01;
/// The same over the newline flood, which is shorter (a few seconds), so that the host's
/// reading of the markers weighs more.
const FLOOD_TOLERANCE: f64 = 0.05;

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

/// The guest's uptime in a `flood: ... at NS ns` marker line after byte `from` of `output`.
fn marker_uptime(output: &str, from: usize, marker: &str) -> f64 {
    let at = output[from..].find(marker).map(|at| from + at + marker.len()).unwrap_or_else(|| panic!("no {marker:?}"));
    let digits: String = output[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<f64>().unwrap_or_else(|_| panic!("bad marker {:?}", &output[at..at + 40])) / 1e9
}

/// The latency case: while a child writes 1 MiB of newlines to the console server,
/// `usertests`' 10 ms sleeps must return within 30 ms (the case checks that), and the guest's
/// uptime must advance with the host's clock within 5 % over the flood (checked here, from the
/// markers the case writes to the kernel's log, which reach the serial line at once).
#[test]
fn a_newline_flood_leaves_sleeps_on_time_and_uptime_at_the_host_pace() {
    let case = "sleep_on_time_during_a_newline_flood";
    let vm = Vm::boot(&["--init", &format!("usertests {case}")]);
    let output = vm.wait_for("flood: start at ", BOOT);
    let started = Instant::now();
    let from = output.find("flood: start at ").expect("the start marker");
    // The marker's number is whole once the words after it have arrived.
    let output = vm.wait_for_after(from, " sleeps of 10 ms", BOOT);
    let ended = Instant::now();
    let guest = marker_uptime(&output, from, "flood: end at ") - marker_uptime(&output, from, "flood: start at ");
    let host = (ended - started).as_secs_f64();
    let (status, whole) = vm.wait_exit(BOOT);
    let summary: Vec<&str> = whole.lines().filter(|line| line.contains("flood: end") || line.contains(case)).collect();
    println!("{}", summary.join("\n"));
    assert!(whole.contains(&format!("PASS {case}")), "the case failed: {summary:?}");
    assert_eq!(status, 0, "{summary:?}");
    let drift = (guest - host).abs() / host;
    assert!(
        drift <= FLOOD_TOLERANCE,
        "uptime advanced {guest:.3} s while the host's clock advanced {host:.3} s during the flood ({:.2} % apart); markers: {:?} {:?}",
        drift * 100.0,
        &output[from..(from + 40).min(output.len())],
        summary
    );
}
