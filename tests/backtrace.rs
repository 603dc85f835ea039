//! End-to-end tests of backtraces: a deliberate kernel panic (`--ktest panic`), a user
//! program killed by a fault and a user program's own panic (`crash fault`, `crash panic`)
//! each print a backtrace that names the function that failed and its callers, in the
//! shared format `  #N 0xADDRESS function+0xOFFSET`. A process whose frame pointer points
//! into the kernel gets a report that stops at the faulting function, and the kernel lives on.

mod common;

use std::time::Duration;

use common::run;

/// A boot plus a short program under TCG on a loaded 2-core machine.
const BOOT: Duration = common::BOOT_LIMIT;

/// The function names of the backtrace that follows `heading_after` in `output`, in order:
/// the lines after the first `backtrace:` line that follows it, while they have the frame
/// format. Panics, showing the output, if there is none or a line is malformed.
fn backtrace_after(output: &str, heading_after: &str) -> Vec<String> {
    let start = output.find(heading_after).unwrap_or_else(|| panic!("no {heading_after:?} in:\n{output}"));
    let mut lines = output[start..].lines().skip_while(|line| line.trim() != "backtrace:").skip(1);
    let mut functions = Vec::new();
    for (index, line) in lines.by_ref().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix('#') else { break };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "malformed frame line {line:?} in:\n{output}");
        assert_eq!(fields[0], index.to_string(), "frames out of order at {line:?} in:\n{output}");
        assert!(fields[1].starts_with("0x") && fields[1].len() == 18, "bad address in {line:?}:\n{output}");
        functions.push(fields[2].to_owned());
    }
    assert!(!functions.is_empty(), "no backtrace after {heading_after:?} in:\n{output}");
    functions
}

/// The position of the first frame in `functions` that is `name+0x...`.
fn frame_of(functions: &[String], name: &str, output: &str) -> usize {
    functions
        .iter()
        .position(|function| function.strip_prefix(name).is_some_and(|rest| rest.starts_with("+0x")))
        .unwrap_or_else(|| panic!("no frame of {name} in {functions:?}; output:\n{output}"))
}

#[test]
fn a_kernel_panic_names_the_panicking_function_and_its_callers() {
    let (status, output) = run(&["--ktest", "panic"], "", BOOT);
    assert_eq!(status, 101, "output:\n{output}");
    let functions = backtrace_after(&output, "KERNEL PANIC");
    let failed = frame_of(&functions, "kernel::ktest::deliberate_panic", &output);
    let caller = frame_of(&functions, "kernel::ktest::run", &output);
    let boot = frame_of(&functions, "kernel::boot::kernel_main", &output);
    assert!(failed < caller && caller < boot, "callers out of order: {functions:?}");
}

#[test]
fn a_user_fault_names_the_faulting_function_and_its_callers() {
    let (status, output) = run(&["--init", "crash fault"], "", BOOT);
    assert_eq!(status, 111, "output:\n{output}");
    let functions = backtrace_after(&output, "(crash) killed: page fault");
    assert_eq!(frame_of(&functions, "crash::write_to_own_code", &output), 0, "{functions:?}");
    assert_eq!(frame_of(&functions, "crash::fail", &output), 1, "{functions:?}");
    frame_of(&functions, "userlib::rt::entry::start", &output);
}

#[test]
fn a_user_panic_names_the_panicking_function_and_its_callers() {
    let (status, output) = run(&["--init", "crash panic"], "", BOOT);
    assert_eq!(status, 101, "output:\n{output}");
    assert!(output.contains("crash panic: panicking on purpose"), "no panic message:\n{output}");
    let functions = backtrace_after(&output, "crash: panicked");
    let failed = frame_of(&functions, "crash::panic_on_purpose", &output);
    let caller = frame_of(&functions, "crash::fail", &output);
    assert_eq!(caller, failed + 1, "{functions:?}");
}

#[test]
fn a_wild_frame_pointer_ends_the_report_at_the_faulting_function() {
    let (status, output) = run(&["--init", "crash wild-frame"], "", BOOT);
    // The program's own status reaches the launcher through init: the kernel survived the
    // report.
    assert_eq!(status, 111, "output:\n{output}");
    let functions = backtrace_after(&output, "(crash) killed: invalid opcode");
    assert_eq!(functions.len(), 1, "the walk followed a frame pointer into the kernel: {functions:?}");
    frame_of(&functions, "crash::fault_with_wild_frame_pointer", &output);
}
