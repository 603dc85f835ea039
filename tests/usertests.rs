//! End-to-end runs of the ring-3 test suite and the syscall fuzzer through the launcher:
//! `usertests` must pass every case (all 293 it has today, the leak check last), one fault
//! case must pass when run alone by name, and a short fuzz run must end with the kernel
//! intact.

mod common;

use std::time::Duration;

use common::run;

/// Limits for TCG on a loaded 2-core machine; nominally the suite takes about 5 s and the
/// short fuzz run about 3 s. The launcher's own `--timeout` stops QEMU a little earlier.
const SUITE_LIMIT: Duration = Duration::from_secs(300);
const SINGLE_CASE_LIMIT: Duration = Duration::from_secs(60);
const FUZZ_LIMIT: Duration = Duration::from_secs(180);

/// The counts of a `N passed, M failed` line.
fn summary(line: &str) -> Option<(u32, u32)> {
    let (passed, failed) = line.trim().strip_suffix(" failed")?.split_once(" passed, ")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

/// The suite's final summary (a nested suite prints its own earlier).
fn final_summary(output: &str) -> (u32, u32) {
    output.lines().rev().find_map(summary).unwrap_or_else(|| panic!("no summary line in:\n{output}"))
}

#[test]
fn usertests_passes_every_case() {
    let (status, output) = run(&["--init", "usertests", "--timeout", "280"], "", SUITE_LIMIT);
    let failures: Vec<&str> = output.lines().filter(|line| line.starts_with("FAIL")).collect();
    assert!(failures.is_empty(), "failing cases:\n{}\n\nfull output:\n{output}", failures.join("\n"));
    let (passed, failed) = final_summary(&output);
    assert_eq!(failed, 0, "output:\n{output}");
    // Cases may be added; none may go missing.
    assert!(passed >= 293, "only {passed} cases passed; output:\n{output}");
    let last_case = output.lines().rev().find(|line| line.starts_with("PASS ") || line.starts_with("FAIL "));
    assert_eq!(last_case, Some("PASS leak"), "the leak check did not run last; output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn usertests_runs_a_fault_case_by_name() {
    let (status, output) = run(&["--init", "usertests write_to_text", "--timeout", "50"], "", SINGLE_CASE_LIMIT);
    assert!(output.lines().any(|line| line == "PASS write_to_text"), "output:\n{output}");
    assert!(output.contains("(usertests) killed: page fault"), "the child was not killed by a page fault:\n{output}");
    assert_eq!(final_summary(&output), (1, 0), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn usertests_reports_an_unknown_case() {
    let (status, output) = run(&["--init", "usertests no_such_case", "--timeout", "50"], "", SINGLE_CASE_LIMIT);
    assert!(output.lines().any(|line| line == "FAIL no_such_case: no such case"), "output:\n{output}");
    assert_eq!(final_summary(&output), (0, 1), "output:\n{output}");
    assert_eq!(status, 1, "output:\n{output}");
}

#[test]
fn short_fuzz_run_leaves_the_kernel_intact() {
    let (status, output) = run(&["--init", "fuzz --seed 1 --calls 5000", "--timeout", "170"], "", FUZZ_LIMIT);
    let last = output.lines().rev().find(|line| line.starts_with("fuzz:")).unwrap_or_default();
    assert_eq!(last, "fuzz: 5000 calls, seed 1, kernel intact", "output:\n{output}");
    assert!(output.contains("fuzz: seed 1, 5000 calls"), "the seed is not printed first:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}

#[test]
fn the_kernel_heap_survives_full_process_table_of_region_hogs_with_4_gib() {
    // With 4 GiB the frames no longer run out first, so only the kernel's own limits stand
    // between 63 processes full of separate mappings and an exhausted kernel heap.
    let (status, output) =
        run(&["--init", "usertests kernel_heap_stays_bounded", "--timeout", "170", "--", "-m", "4G"], "", FUZZ_LIMIT);
    assert!(output.lines().any(|line| line == "PASS kernel_heap_stays_bounded"), "output:\n{output}");
    assert!(!output.contains("KERNEL PANIC"), "output:\n{output}");
    assert_eq!(status, 0, "output:\n{output}");
}
