//! Runs every user test program: each program whose name ends in `-tests` (a file
//! `userspace/src/bin/NAME-tests.rs` or a directory `userspace/src/bin/NAME-tests/`) boots as
//! the first process and must exit 0 after a last line `N passed, 0 failed`. Adding such a
//! program is all it takes to have `make test` run it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::run;

/// The suffix that makes a program a test program.
const SUFFIX: &str = "-tests";
/// How long one program may run under TCG on a loaded 2-core machine; the launcher's own
/// `--timeout` stops QEMU a little earlier.
const LIMIT: Duration = common::BOOT_LIMIT;
const LAUNCHER_TIMEOUT: &str = "290";

/// The test programs in `userspace/src/bin`, sorted.
fn test_programs() -> Vec<String> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("userspace/src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&bin)
        .unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()))
        .map(|entry| entry.expect("reading a directory entry").path())
        .filter_map(|path| {
            let name = if path.is_dir() {
                path.join("main.rs").is_file().then(|| path.file_name())??
            } else {
                (path.extension()? == "rs").then(|| path.file_stem())??
            };
            name.to_str().filter(|name| name.ends_with(SUFFIX)).map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The counts of a `N passed, M failed` line.
fn summary(line: &str) -> Option<(u32, u32)> {
    let (passed, failed) = line.trim().strip_suffix(" failed")?.split_once(" passed, ")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

/// What is wrong with a run that ended with `status` and printed `output`, if anything.
fn problem(status: i32, output: &str) -> Option<String> {
    let last = output.lines().rev().find_map(summary);
    match (status, last) {
        (0, Some((passed, 0))) if passed > 0 => None,
        (_, Some((passed, failed))) => Some(format!("exit status {status}, {passed} passed, {failed} failed")),
        (_, None) => Some(format!("exit status {status}, no `N passed, M failed` line")),
    }
}

#[test]
fn every_test_program_passes() {
    let programs = test_programs();
    assert!(programs.iter().any(|name| name == "syscall-tests"), "the example is missing from {programs:?}");
    let mut failures = Vec::new();
    for name in &programs {
        let (status, output) = run(&["--init", name, "--timeout", LAUNCHER_TIMEOUT], "", LIMIT);
        if let Some(problem) = problem(status, &output) {
            failures.push(format!("{name}: {problem}\n--- output of {name} ---\n{output}"));
        }
    }
    let count = programs.len();
    assert!(failures.is_empty(), "{} of {count} test programs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_run_passes_only_with_status_0_and_no_failures() {
    assert_eq!(problem(0, "PASS a\n1 passed, 0 failed\n"), None);
    assert!(problem(1, "FAIL a: x\n0 passed, 1 failed\n").is_some());
    assert!(problem(0, "2 passed, 1 failed\n").is_some());
    assert!(problem(1, "1 passed, 0 failed\n").is_some());
    assert!(problem(0, "0 passed, 0 failed\n").is_some());
    assert!(problem(0, "no summary\n").is_some());
    // A nested suite's summary earlier in the output does not count; the last one does.
    assert!(problem(0, "1 passed, 0 failed\nFAIL b: y\n1 passed, 1 failed\n").is_some());
}
