//! End-to-end run of `bench` under `--icount`, where its figures are exact guest instruction
//! counts: every line is printed, no figure grows more than 5 % over its value in
//! `bench/baseline.txt` (and none of the baseline's figures goes missing, and no figure is
//! printed that the baseline lacks), and the bounds the kernel promises hold (no stretch
//! with interrupts masked longer than 1 ms of guest time, which under `-icount shift=0` is
//! 1,000,000 instructions). With one CPU: under `--icount` QEMU runs the CPUs in turn, so
//! with two a CPU waiting for the big kernel lock counts, as masked, whatever the other CPU
//! runs until QEMU turns to it again.
//!
//! The baseline is updated by hand (`make bench` prints the figures in its format), in a
//! commit that says why a figure grew; see docs/ARCHITECTURE.md.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::run;

const LIMIT: Duration = Duration::from_secs(600);
/// The committed figures, `NAME VALUE` per line.
const BASELINE: &str = include_str!("../bench/baseline.txt");
/// How much a figure may grow over its baseline before the test fails: 5 %.
const GROWTH_ALLOWED: f64 = 1.05;

/// The figures of [`BASELINE`]; `#` starts a comment line.
fn baseline() -> BTreeMap<&'static str, f64> {
    BASELINE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once(' ').unwrap_or_else(|| panic!("bad baseline line {line:?}"));
            (name, value.trim().parse().unwrap_or_else(|_| panic!("bad baseline value in {line:?}")))
        })
        .collect()
}

/// What is wrong with `figures` against `baseline`: figures over 5 % above theirs, figures
/// of the baseline not measured, figures the baseline lacks.
fn regressions(figures: &HashMap<String, f64>, baseline: &BTreeMap<&str, f64>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (&name, &base) in baseline {
        match figures.get(name) {
            None => wrong.push(format!("{name}: in the baseline ({base}) but not measured")),
            Some(&value) if value > base * GROWTH_ALLOWED => {
                wrong.push(format!("{name}: {value} is {:+.1} % over the baseline {base}", (value / base - 1.0) * 100.0));
            }
            Some(_) => {}
        }
    }
    let mut unknown: Vec<&String> = figures.keys().filter(|name| !baseline.contains_key(name.as_str())).collect();
    unknown.sort();
    wrong.extend(unknown.into_iter().map(|name| format!("{name}: measured ({}) but not in bench/baseline.txt", figures[name])));
    wrong
}

/// The `bench: NAME VALUE` lines of `output` (instruction counts, and `file_read_1m` in
/// instructions per byte with two decimals).
fn figures(output: &str) -> HashMap<String, f64> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("bench: "))
        .filter_map(|rest| rest.split_once(' '))
        .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
        .collect()
}

#[test]
fn no_bench_figure_grows_over_its_baseline_and_the_kernel_keeps_its_latency_bound() {
    let (status, output) = run(&["--icount", "--smp", "1", "--init", "bench", "--timeout", "580"], "", LIMIT);
    assert_eq!(status, 0, "output:\n{output}");
    let figures = figures(&output);
    let baseline = baseline();
    for (name, base) in &baseline {
        if let Some(value) = figures.get(*name) {
            println!("bench: {name} {value} (baseline {base}, {:+.1} %)", (value / base - 1.0) * 100.0);
        }
    }
    let wrong = regressions(&figures, &baseline);
    assert!(wrong.is_empty(), "bench figures against bench/baseline.txt:\n{}\n\noutput:\n{output}", wrong.join("\n"));
    for name in [
        "null_syscall",
        "null_int80",
        "yield_switch",
        "spawn_wait",
        "map_touch_unmap",
        "ipc_call",
        "ipc_call_4k",
        "notify_wait",
        "syscall_message",
        "spawn_file_wait",
        "pipe_pingpong",
        "file_read_1m",
        "irq_to_driver",
        "console_write_4k",
        "longest_masked_ns",
    ] {
        assert!(figures.get(name).is_some_and(|&value| value > 0.0), "no figure for {name}:\n{output}");
    }
    // Reading a file moves its bytes twice at least (fs's copy, the kernel's), and a round
    // trip over two pipes is two writes, two reads and two switches.
    assert!(figures["file_read_1m"] > 0.1, "{output}");
    assert!(figures["pipe_pingpong"] > 2.0 * figures["yield_switch"], "{output}");
    // A device interrupt reaches its driver through a switch at least; 4 KiB through the
    // console is a call and 4096 bytes sent to COM1 one by one, each a port write or more.
    assert!(figures["irq_to_driver"] > figures["yield_switch"], "{output}");
    assert!(figures["console_write_4k"] > 4096.0, "{output}");
    // Copying 4 KiB each way costs more than registers alone.
    assert!(figures["ipc_call_4k"] > figures["ipc_call"], "{output}");
    // A switch between two threads of one process changes no page table or I/O bitmap, so it
    // costs less than one between processes.
    assert!(figures["thread_switch"] < figures["yield_switch"], "{output}");
    let longest = figures["longest_masked_ns"];
    assert!(longest <= 1_000_000.0, "the kernel kept interrupts masked for {longest} ns (over 1 ms):\n{output}");
}

#[test]
fn the_baseline_check_flags_growth_missing_and_unknown_figures() {
    let baseline = BTreeMap::from([("a", 100.0), ("b", 10.0)]);
    let measured = |pairs: &[(&str, f64)]| pairs.iter().map(|&(name, value)| (name.to_owned(), value)).collect();
    assert!(regressions(&measured(&[("a", 105.0), ("b", 2.0)]), &baseline).is_empty());
    let grown = regressions(&measured(&[("a", 105.1), ("b", 10.0)]), &baseline);
    assert_eq!(grown.len(), 1, "{grown:?}");
    assert!(grown[0].starts_with("a: 105.1 is +5.1 % over"), "{grown:?}");
    assert_eq!(regressions(&measured(&[("a", 1.0)]), &baseline), ["b: in the baseline (10) but not measured"]);
    assert_eq!(
        regressions(&measured(&[("a", 1.0), ("b", 1.0), ("c", 3.0)]), &baseline),
        ["c: measured (3) but not in bench/baseline.txt"]
    );
    assert!(!self::baseline().is_empty(), "bench/baseline.txt holds no figure");
}
