//! The short version of `make stress`, run by `make test`: `scripts/stress.sh` with the
//! syscall fuzzer at three seeds, 25 000 calls each, at two CPUs and at four (one test per
//! CPU count, so the two run side by side), without the host busy loops and the usertests
//! runs of the full version. Every run must end with the kernel intact (no panic, the
//! fuzzer's last line), and the script's one summary line must count three passes.

use std::process::Command;

/// Seeds the short version fuzzes with.
const SEEDS: &str = "1 2 3";
/// Runs per CPU count: one per seed.
const RUNS: usize = 3;

/// Runs the short version at `cpus` CPUs and checks its summary.
fn fuzzing_leaves_the_kernel_intact_at(cpus: &str) {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/stress.sh"))
        .env("ENIGMA", env!("CARGO_BIN_EXE_enigma"))
        .env("SEEDS", SEEDS)
        .env("CPUS", cpus)
        .env("CALLS", "25000")
        .env("USERTESTS_RUNS", "0")
        .env("HOGS", "0")
        .env("RUN_TIMEOUT", "600")
        .output()
        .expect("scripts/stress.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, format!("stress: {RUNS} passed, 0 failed"), "output:\n{stdout}");
    assert!(output.status.success(), "status {:?}; output:\n{stdout}", output.status);
}

#[test]
fn fuzzing_three_seeds_at_two_cpus_leaves_the_kernel_intact() {
    fuzzing_leaves_the_kernel_intact_at("2");
}

#[test]
fn fuzzing_three_seeds_at_four_cpus_leaves_the_kernel_intact() {
    fuzzing_leaves_the_kernel_intact_at("4");
}
