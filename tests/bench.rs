//! End-to-end run of `bench` under `--icount`, where its figures are exact guest instruction
//! counts: every line is printed, and the bounds the kernel promises hold (no stretch with
//! interrupts masked longer than 1 ms of guest time, which under `-icount shift=0` is
//! 1,000,000 instructions). With one CPU: under `--icount` QEMU runs the CPUs in turn, so
//! with two a CPU waiting for the big kernel lock counts, as masked, whatever the other CPU
//! runs until QEMU turns to it again.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::run;

const LIMIT: Duration = Duration::from_secs(300);

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
fn bench_prints_every_figure_and_the_kernel_keeps_its_latency_bound() {
    let (status, output) = run(&["--icount", "--smp", "1", "--init", "bench", "--timeout", "280"], "", LIMIT);
    assert_eq!(status, 0, "output:\n{output}");
    let figures = figures(&output);
    for name in [
        "null_syscall",
        "null_int80",
        "yield_switch",
        "spawn_wait",
        "map_touch_unmap",
        "ipc_call",
        "ipc_call_4k",
        "notify_wait",
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
    let longest = figures["longest_masked_ns"];
    assert!(longest <= 1_000_000.0, "the kernel kept interrupts masked for {longest} ns (over 1 ms):\n{output}");
}
