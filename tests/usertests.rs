//! End-to-end runs of the ring-3 test suite through the launcher: `usertests` must pass
//! every one of its [`CASES`] cases (the leak check last) with one CPU and with four, one
//! fault case must pass when run alone by name, the floating-point cases must pass on a CPU
//! without XSAVE and AVX (the `fxsave` fallback), and the kernel's heap must survive a full
//! process table of region hogs with 4 GiB. (The syscall fuzzer runs in `tests/stress.rs`.)
//!
//! The tests here run side by side like any others: no case judges speed by the host's
//! clock (the suite's hang limits are one-sided and generous), so a second QEMU beside a
//! run only slows it.

mod common;

use std::time::Duration;

use common::run;

/// Hang limits for TCG on a loaded 2-core machine; nominally the suite takes about 10 s (15 s
/// with four CPUs). The launcher's own `--timeout` stops QEMU a little earlier.
const SUITE_LIMIT: Duration = Duration::from_secs(600);
const SINGLE_CASE_LIMIT: Duration = common::BOOT_LIMIT;
const HEAP_CASE_LIMIT: Duration = common::BOOT_LIMIT;
/// The cases `usertests` runs, the leak check included. Change it with the cases (in
/// `userspace/src/bin/usertests/`), so that a case that stops running fails here.
const CASES: u32 = 460;
/// The one case QEMU's TCG cannot run, and so the suite skips: TCG sets MXCSR's flags for an
/// unmasked SIMD exception but never raises #XM.
const SKIPPED: &str = "SKIP unmasked_simd_exception_ends_the_process: needs raises_simd_exceptions";

/// The counts of a `N passed, M failed` line.
fn summary(line: &str) -> Option<(u32, u32)> {
    let (passed, failed) = line.trim().strip_suffix(" failed")?.split_once(" passed, ")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

/// The suite's final summary (a nested suite prints its own earlier).
fn final_summary(output: &str) -> (u32, u32) {
    output.lines().rev().find_map(summary).unwrap_or_else(|| panic!("no summary line in:\n{output}"))
}

/// Runs the whole suite on a machine with `cpus` CPUs and checks that every case passed,
/// the leak check last.
fn suite_passes_with(cpus: &str) {
    let (status, output) = run(&["--smp", cpus, "--init", "usertests", "--timeout", "580"], "", SUITE_LIMIT);
    let failures: Vec<&str> = output.lines().filter(|line| line.starts_with("FAIL")).collect();
    assert!(failures.is_empty(), "failing cases with {cpus} CPUs:\n{}\n\nfull output:\n{output}", failures.join("\n"));
    let (passed, failed) = final_summary(&output);
    assert_eq!(failed, 0, "output:\n{output}");
    let skipped: Vec<&str> = output.lines().filter(|line| line.starts_with("SKIP ")).collect();
    assert_eq!(skipped, [SKIPPED], "cases skipped; output:\n{output}");
    assert_eq!(passed + 1, CASES, "cases passed; output:\n{output}");
    let last_case = output.lines().rev().find(|line| line.starts_with("PASS ") || line.starts_with("FAIL "));
    assert_eq!(last_case, Some("PASS leak"), "the leak check did not run last; output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn usertests_passes_every_case_on_one_cpu() {
    suite_passes_with("1");
}

#[test]
fn usertests_passes_every_case_on_four_cpus() {
    suite_passes_with("4");
}

#[test]
fn usertests_runs_a_fault_case_by_name() {
    let (status, output) = run(&["--init", "usertests write_to_text", "--timeout", "290"], "", SINGLE_CASE_LIMIT);
    assert!(output.lines().any(|line| line == "PASS write_to_text"), "output:\n{output}");
    assert!(output.contains("(usertests) killed: page fault"), "the child was not killed by a page fault:\n{output}");
    assert_eq!(final_summary(&output), (1, 0), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

/// The floating-point cases that need no AVX, the leak check last.
const FXSAVE_CASES: &[&str] = &[
    "registers_kept_across_preemption",
    "registers_kept_across_a_blocking_ipc_call",
    "registers_kept_across_a_sleep",
    "registers_kept_across_migration",
    "a_new_process_starts_with_clean_registers",
    "sse_arithmetic_is_exact",
    "unmasked_x87_exception_ends_the_process",
    "fs_and_gs_bases_are_per_process",
    "avx_kept_across_preemption",
    "leak",
];

#[test]
fn registers_are_kept_with_fxsave_on_a_cpu_without_xsave_and_avx() {
    let init = format!("usertests {}", FXSAVE_CASES.join(" "));
    let (status, output) =
        run(&["--smp", "2", "--init", &init, "--timeout", "290", "--", "-cpu", "max,-xsave,-avx"], "", SINGLE_CASE_LIMIT);
    assert!(output.contains("user registers: x87, SSE, saved with fxsave at every switch"), "output:\n{output}");
    // The AVX case is asked for, and skipped: CPUID has no AVX without XSAVE.
    assert!(output.lines().any(|line| line == "SKIP avx_kept_across_preemption: needs has_avx"), "output:\n{output}");
    for case in FXSAVE_CASES.iter().filter(|case| !case.starts_with("avx")) {
        assert!(output.lines().any(|line| line == format!("PASS {case}")), "{case} did not pass:\n{output}");
    }
    assert_eq!(final_summary(&output), (FXSAVE_CASES.len() as u32 - 1, 0), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn usertests_reports_an_unknown_case() {
    let (status, output) = run(&["--init", "usertests no_such_case", "--timeout", "290"], "", SINGLE_CASE_LIMIT);
    assert!(output.lines().any(|line| line == "FAIL no_such_case: no such case"), "output:\n{output}");
    assert_eq!(final_summary(&output), (0, 1), "output:\n{output}");
    assert_eq!(status, 1, "output:\n{output}");
}

#[test]
fn the_kernel_heap_survives_full_process_table_of_region_hogs_with_4_gib() {
    // With 4 GiB the frames no longer run out first, so only the kernel's own limits stand
    // between 63 processes full of separate mappings and an exhausted kernel heap.
    let (status, output) =
        run(&["--init", "usertests kernel_heap_stays_bounded", "--timeout", "290", "--", "-m", "4G"], "", HEAP_CASE_LIMIT);
    assert!(output.lines().any(|line| line == "PASS kernel_heap_stays_bounded"), "output:\n{output}");
    assert!(!output.contains("KERNEL PANIC"), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}
