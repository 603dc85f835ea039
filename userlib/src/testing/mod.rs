//! A test harness for Enigma programs: a test binary lists its cases, and [`Suite::main`]
//! runs them, prints `PASS name` or `FAIL name: why` for each and ends with
//! `N passed, M failed`; its exit status is 0 only when nothing failed. Names on the command
//! line run just those cases, in that order. A case that needs what a machine may lack
//! ([`Case::only_if`]) is reported `SKIP name: needs ...` there, and counted on a line of
//! its own, `K skipped`, before the last.
//!
//! ```ignore
//! use userlib::testing::{Case, Outcome, Suite};
//! userlib::main!(main);
//! const CASES: &[Case] = &[Case::here("getpid_is_positive", getpid_is_positive)];
//! fn main() -> i32 { Suite::new(CASES).main() }
//! fn getpid_is_positive() -> Outcome {
//!     userlib::check!(userlib::sys::getpid() > 0, "getpid returned 0");
//!     Ok(())
//! }
//! ```
//!
//! A case runs in one of three ways ([`Case::here`], [`Case::child`], [`Case::fault`]). The
//! last two run the body in a child, the program itself started as `PROGRAM --child NAME`, so a
//! fault or a hang ends only that child: the suite kills a child still running after the time
//! limit and fails the case. A fault case passes only if its child dies of the fault it
//! declares ([`Expected`]: the vector, and where known the instruction, the address and the
//! error code), so a child that faults early, in its own setup, fails it. Cases with several
//! processes start helper roles the same way (`PROGRAM --child ROLE ARGS...`, see
//! [`Suite::helpers`] and [`spawn_role`]). After every case the suite checks that it left no
//! child behind.
//!
//! With [`Suite::leak_check`] the suite ends with a case named `leak`: it compares the free
//! physical frames (plus the suite's own pages) and the kernel heap's bytes in use after all
//! the other cases with a baseline taken before the first one, and fails unless both are
//! exactly where they were.
//!
//! The pure parts (choosing cases by name, the report lines, matching a child's end against
//! an expectation, comparing resource counts) are unit-tested on the host.

mod expect;

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::memory::PAGE_SIZE;
use abi::ExitInfo;
use abi::errno::ETIMEDOUT;

pub use expect::{Expected, Span};

use crate::process::Ending;
use crate::sys::{self, Child, Errno};
use crate::time::Duration;

/// What a case found wrong, if anything.
pub type Outcome = Result<(), String>;

/// A helper role's body: its arguments (after the role name) in, its exit status out.
pub type Helper = fn(&[&str]) -> i32;

/// The exit status of a child whose case failed; it printed why first.
pub const CHILD_FAILED: i32 = 1;

/// How long a child may run unless the suite says otherwise ([`Suite::time_limit`]).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(15);

/// The name of the leak check ([`Suite::leak_check`]).
pub const LEAK_CASE: &str = "leak";

/// The flag that makes a test program run one case or helper role as a child.
const CHILD_FLAG: &str = "--child";

/// Fails the case with a formatted message unless `condition` holds:
/// `check!(value == 3, "value is {value}")`.
#[macro_export]
macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::testing::message(format_args!($($message)+)));
        }
    };
}

/// Declares cases by kind and function, each named after its function:
/// `cases![here a, child b, fault c => expected_c]` is
/// `&[Case::here("a", a), Case::child("b", b), Case::fault("c", c, expected_c)]`.
/// `child d if has_e` runs `d` only where `has_e()` (a `fn() -> bool`) holds, and reports it
/// skipped elsewhere (see [`Case::only_if`]).
#[macro_export]
macro_rules! cases {
    ($($kind:ident $body:ident $(if $requirement:ident)? $(=> $expected:expr)?),* $(,)?) => {
        &[$($crate::testing::Case::$kind(stringify!($body), $body $(, $expected)?)
            $(.only_if(stringify!($requirement), $requirement))?),*]
    };
}

/// A failure message from `format_args!` (for [`check!`]).
pub fn message(arguments: fmt::Arguments) -> String {
    alloc::fmt::format(arguments)
}

/// Adds what was being done to a syscall error: `sys::sleep_ms(5).context("sleep")?`.
pub trait Context<T> {
    /// The value, or `"what: ERRNO"`.
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T> Context<T> for sys::Result<T> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|errno| format!("{what}: {errno}"))
    }
}

/// How a case runs.
#[derive(Clone, Copy)]
enum Kind {
    /// In the suite's own process.
    Here(fn() -> Outcome),
    /// In a child, which must exit 0 without a fault.
    Child(fn() -> Outcome),
    /// In a child, which must die of the fault the second function describes. The body sets
    /// up and then does what must fault; `Err` means the setup failed.
    Fault(fn() -> Outcome, fn() -> Expected),
}

/// A named test case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Its name, as `PASS`/`FAIL` lines show it and the command line selects it.
    pub name: &'static str,
    kind: Kind,
    /// What the machine must have for the case to run: a name for the report, and the check.
    requirement: Option<Requirement>,
}

/// What a case needs of the machine: its name, for the report, and the check.
type Requirement = (&'static str, fn() -> bool);

impl Case {
    /// A case whose body runs in the suite's own process: the fastest kind, for cases that
    /// cannot fault or hang.
    pub const fn here(name: &'static str, body: fn() -> Outcome) -> Self {
        Self { name, kind: Kind::Here(body), requirement: None }
    }

    /// A case whose body runs in a child, which must exit 0: a fault or a hang fails only
    /// this case, and whatever the body does to its memory goes with the child.
    pub const fn child(name: &'static str, body: fn() -> Outcome) -> Self {
        Self { name, kind: Kind::Child(body), requirement: None }
    }

    /// A case whose body runs in a child that must die of the fault `expected` describes
    /// (computed in the suite's process, which runs the same program image, so it may name
    /// addresses in it).
    pub const fn fault(name: &'static str, body: fn() -> Outcome, expected: fn() -> Expected) -> Self {
        Self { name, kind: Kind::Fault(body, expected), requirement: None }
    }

    /// Runs the case only where `holds()` (checked in the suite's process before the case
    /// starts): elsewhere it is reported as `SKIP name: needs REQUIREMENT` and counted as
    /// skipped, neither passed nor failed. For what a machine may lack (a CPU feature).
    pub const fn only_if(self, requirement: &'static str, holds: fn() -> bool) -> Self {
        Self { requirement: Some((requirement, holds)), ..self }
    }

    /// Why the case cannot run here, if it cannot.
    fn missing(&self) -> Option<&'static str> {
        self.requirement.and_then(|(name, holds)| (!holds()).then_some(name))
    }
}

/// A test suite: its cases, helper roles, time limit, and whether it checks for leaks.
pub struct Suite<'a> {
    cases: &'a [Case],
    helpers: &'a [(&'static str, Helper)],
    time_limit: Duration,
    leak_check: bool,
}

impl<'a> Suite<'a> {
    /// A suite of `cases`, run in this order.
    pub fn new(cases: &'a [Case]) -> Self {
        Self { cases, helpers: &[], time_limit: DEFAULT_TIME_LIMIT, leak_check: false }
    }

    /// Helper roles for cases with several processes, started by [`spawn_role`] as
    /// `PROGRAM --child ROLE ARGS...`; each gets its arguments and returns its exit status.
    pub fn helpers(self, helpers: &'a [(&'static str, Helper)]) -> Self {
        Self { helpers, ..self }
    }

    /// How long a child case may run before it is killed and fails.
    pub fn time_limit(self, time_limit: Duration) -> Self {
        Self { time_limit, ..self }
    }

    /// Ends the suite with the `leak` case (see the module documentation).
    pub fn leak_check(self) -> Self {
        Self { leak_check: true, ..self }
    }

    /// The test program's main function: runs the cases named on the command line (all
    /// without names), or one case or helper role as a child with `--child NAME`. Returns the
    /// exit status.
    pub fn main(&self) -> i32 {
        let args = crate::args();
        match args.get(1..).unwrap_or_default() {
            [flag, role, rest @ ..] if *flag == CHILD_FLAG => self.child_main(role, rest),
            names => self.run(names),
        }
    }

    /// Runs the cases `names` select and prints the report; returns the exit status.
    fn run(&self, names: &[&str]) -> i32 {
        let mut report = Report::default();
        for name in duplicates(self.cases, self.leak_check) {
            report.record(name, &Err(String::from("more than one case has this name")));
        }
        let selection = select(self.cases, names, self.leak_check);
        // Read once, before the baseline: the cases' children start from it.
        if let Err(errno) = own_image() {
            crate::eprintln!("{}: cannot read its own image: {errno}", crate::program_name());
        }
        for name in &selection.unknown {
            report.record(name, &Err(String::from("no such case")));
        }
        let baseline = selection.leak.then(Resources::baseline);
        for case in &selection.cases {
            if let Some(requirement) = case.missing() {
                report.skipped += 1;
                crate::println!("{}", skip_line(case.name, requirement));
                continue;
            }
            let outcome = self.run_case(case);
            let cleanup = reap_leftovers();
            report.record(case.name, &outcome.and(cleanup));
        }
        if let Some(baseline) = baseline {
            let outcome = baseline.and_then(|before| Resources::measure()?.compare_with(&before));
            report.record(LEAK_CASE, &outcome);
        }
        if report.skipped > 0 {
            crate::println!("{} skipped", report.skipped);
        }
        crate::println!("{}", summary_line(report.passed, report.failed));
        if report.failed == 0 { 0 } else { 1 }
    }

    /// Runs one case the way its kind says.
    fn run_case(&self, case: &Case) -> Outcome {
        match case.kind {
            Kind::Here(body) => body(),
            Kind::Child(_) => {
                let info = self.run_child(case.name)?;
                check!(info == ExitInfo::exited(0), "the child {}", describe(&info));
                Ok(())
            }
            Kind::Fault(_, expected) => {
                let expected = expected();
                expected.check(&self.run_child(case.name)?)
            }
        }
    }

    /// Runs `PROGRAM --child NAME` to its end within the time limit.
    fn run_child(&self, name: &str) -> Result<ExitInfo, String> {
        let pid = spawn_role(name, &[])?;
        finish_within(pid, "the child", self.time_limit)
    }

    /// `PROGRAM --child ROLE ARGS...`: a helper role, or the body of a child or fault case.
    fn child_main(&self, role: &str, args: &[&str]) -> i32 {
        if let Some((_, helper)) = self.helpers.iter().find(|(name, _)| *name == role) {
            return helper(args);
        }
        let failure = match self.cases.iter().find(|case| case.name == role).map(|case| case.kind) {
            Some(Kind::Child(body)) => match body() {
                Ok(()) => return 0,
                Err(why) => why,
            },
            Some(Kind::Fault(body, _)) => match body() {
                Ok(()) => String::from("the body returned without faulting"),
                Err(why) => format!("setup failed: {why}"),
            },
            _ => {
                crate::eprintln!("{}: no child case or helper role {role:?}", crate::program_name());
                return 2;
            }
        };
        crate::println!("  {role}: {failure}");
        CHILD_FAILED
    }
}

/// The counts of a run, and its `PASS`/`FAIL` lines as they happen.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    fn record(&mut self, name: &str, outcome: &Outcome) {
        match outcome {
            Ok(()) => self.passed += 1,
            Err(_) => self.failed += 1,
        }
        crate::println!("{}", result_line(name, outcome));
    }
}

/// A case's report line: `PASS name` or `FAIL name: why`.
pub fn result_line(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Ok(()) => format!("PASS {name}"),
        Err(why) => format!("FAIL {name}: {why}"),
    }
}

/// A skipped case's report line.
pub fn skip_line(name: &str, requirement: &str) -> String {
    format!("SKIP {name}: needs {requirement}")
}

/// The last line of a run: `N passed, M failed` (skipped cases, if any, are counted on the
/// line before it, `K skipped`).
pub fn summary_line(passed: usize, failed: usize) -> String {
    format!("{passed} passed, {failed} failed")
}

/// The cases a command line selects.
struct Selection<'c, 'n> {
    /// The cases to run, in order.
    cases: Vec<&'c Case>,
    /// Names that match no case.
    unknown: Vec<&'n str>,
    /// Whether the leak check runs (after the cases).
    leak: bool,
}

/// Every case (and the leak check, if the suite has one) when `names` is empty; otherwise
/// the cases named, in the order named.
fn select<'c, 'n>(cases: &'c [Case], names: &[&'n str], leak_check: bool) -> Selection<'c, 'n> {
    if names.is_empty() {
        return Selection { cases: cases.iter().collect(), unknown: Vec::new(), leak: leak_check };
    }
    let mut selection = Selection { cases: Vec::new(), unknown: Vec::new(), leak: false };
    for &name in names {
        match cases.iter().find(|case| case.name == name) {
            Some(case) => selection.cases.push(case),
            None if leak_check && name == LEAK_CASE => selection.leak = true,
            None => selection.unknown.push(name),
        }
    }
    selection
}

/// Names used by more than one case (the leak check counts as a case named `leak`).
fn duplicates(cases: &[Case], leak_check: bool) -> Vec<&'static str> {
    let leak = leak_check.then_some(LEAK_CASE);
    let names: Vec<&'static str> = cases.iter().map(|case| case.name).chain(leak).collect();
    let mut repeated: Vec<&'static str> = names
        .iter()
        .enumerate()
        .filter(|(index, name)| names[..*index].contains(name))
        .map(|(_, name)| *name)
        .collect();
    repeated.dedup();
    repeated
}

/// How a child ended, for a failure message.
fn describe(info: &ExitInfo) -> String {
    if *info == ExitInfo::exited(CHILD_FAILED) {
        String::from("failed (its reason is above)")
    } else {
        format!("ended: {}", Ending(*info))
    }
}

/// This program's own image (a memory handle), read from the file system once
/// (`NO_HANDLE` until then).
static OWN_IMAGE: AtomicU64 = AtomicU64::new(abi::handle::NO_HANDLE);

/// A memory object holding this program's own image, read from its file (see
/// `process::program_path`) the first time and kept, so that a test program starts its
/// children without asking the file system each time. [`Suite::main`] reads it before the
/// leak check's baseline, so keeping it is no leak.
pub fn own_image() -> sys::Result<u64> {
    let known = OWN_IMAGE.load(Ordering::Relaxed);
    if known != abi::handle::NO_HANDLE {
        return Ok(known);
    }
    let (image, _) = crate::fs::load_image(&crate::process::program_path(crate::program_name()))?;
    let image = image.into_raw();
    OWN_IMAGE.store(image, Ordering::Relaxed);
    Ok(image)
}

/// Makes `handle` (a memory object holding this program's image, which its parent gave it)
/// the image [`spawn_self`] starts from, for a child that cannot reach the file system.
pub fn set_own_image(handle: u64) {
    OWN_IMAGE.store(handle, Ordering::Relaxed);
}

/// Starts this program again with `args` (argv\[0\] first) and the child's `handles`.
pub fn spawn_self(args: &[&str], handles: &[u32]) -> sys::Result<Child> {
    spawn_self_in(None, args, handles)
}

/// [`spawn_self`] in `job` (a job handle with MANAGE; `None`: this program's own job).
pub fn spawn_self_in(job: Option<u64>, args: &[&str], handles: &[u32]) -> sys::Result<Child> {
    sys::spawn(own_image()?, args, handles, job)
}

/// Starts `PROGRAM --child ROLE EXTRA...` (a helper role or a child case) as a child of this
/// process, with this process's standard handles.
pub fn spawn_role(role: &str, extra: &[&str]) -> Result<Child, String> {
    let program = crate::program_name();
    let mut argv = vec![program, CHILD_FLAG, role];
    argv.extend_from_slice(extra);
    spawn_self(&argv, &crate::process::standard_handles()).context(&format!("spawn of {program} {CHILD_FLAG} {role}"))
}

/// Waits for `child` to end within `limit` and closes its handle; a child still running then
/// is killed, and the result is an error naming it as `what`.
pub fn finish_within(child: Child, what: &str, limit: Duration) -> Result<ExitInfo, String> {
    match sys::wait_handle(child.handle, limit.as_nanos() as u64) {
        Ok((_, info)) => Ok(info),
        Err(Errno(ETIMEDOUT)) => {
            let _ = sys::kill(child);
            let _ = sys::wait(Some(child));
            Err(format!("{what} still ran after {} ms and was killed", limit.as_millis()))
        }
        Err(errno) => Err(format!("wait for {what} (pid {}): {errno}", child.pid)),
    }
}

/// Kills every process this one still holds a handle to after a case, and waits for them;
/// an error if there was one.
fn reap_leftovers() -> Outcome {
    let held = crate::ipc::held_handles().map_err(|errno| format!("handle_list: {errno}"))?;
    let leftovers: Vec<u64> = held
        .into_iter()
        .filter(|&handle| matches!(crate::ipc::handle_info(handle), Ok((Some(abi::handle::Kind::Process), _))))
        .collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    for &handle in &leftovers {
        let _ = sys::kill_handle(handle);
        let _ = sys::wait_handle(handle, abi::ipc::FOREVER);
    }
    Err(format!("left {} child process(es) behind", leftovers.len()))
}

/// What the leak check counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Resources {
    /// Free physical frames plus the pages charged to every process: what a process does
    /// with its own memory moves frames between the two (a server such as `fs` may keep
    /// memory it grew into for files since removed), so only frames the kernel lost change
    /// the sum.
    frames: u64,
    /// Kernel heap bytes in use.
    heap_bytes: u64,
    /// Kernel objects alive (endpoints, notifications, memory, processes...).
    objects: u64,
}

impl Resources {
    fn measure() -> Result<Self, String> {
        let info = sys::sysinfo().context("sysinfo")?;
        let rows = crate::process::list().context("process_list")?;
        let charged: u64 = rows.iter().map(|row| row.memory_bytes / PAGE_SIZE).sum();
        Ok(Self {
            frames: info.free_frames + charged,
            heap_bytes: info.heap_used,
            objects: info.kernel_objects,
        })
    }

    /// The baseline, taken after growing this process's heap, so that allocations during the
    /// cases find room without new brk pages (whose page tables the count cannot see).
    fn baseline() -> Result<Self, String> {
        drop(black_box(vec![0u8; 512 * 1024]));
        Self::measure()
    }

    /// `Ok` if nothing was lost or gained since `before`; otherwise by how much each count
    /// moved.
    fn compare_with(&self, before: &Self) -> Outcome {
        let mut differences = Vec::new();
        if self.frames != before.frames {
            differences.push(format!("{} free frames, {} before", self.frames, before.frames));
        }
        if self.heap_bytes != before.heap_bytes {
            differences.push(format!("{} kernel heap bytes in use, {} before", self.heap_bytes, before.heap_bytes));
        }
        if self.objects != before.objects {
            differences.push(format!("{} kernel objects alive, {} before", self.objects, before.objects));
        }
        check!(differences.is_empty(), "{}", differences.join("; "));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    fn passes() -> Outcome {
        Ok(())
    }

    fn expected() -> Expected {
        Expected::general_protection()
    }

    const CASES: &[Case] = &[
        Case::here("first", passes),
        Case::child("second", passes),
        Case::fault("third", passes, expected),
    ];

    fn names(selection: &Selection) -> Vec<&'static str> {
        selection.cases.iter().map(|case| case.name).collect()
    }

    #[test]
    fn no_names_select_every_case_and_the_leak_check() {
        let selection = select(CASES, &[], true);
        assert_eq!(names(&selection), ["first", "second", "third"]);
        assert!(selection.unknown.is_empty());
        assert!(selection.leak);
        assert!(!select(CASES, &[], false).leak);
    }

    #[test]
    fn names_select_cases_in_the_order_given() {
        let selection = select(CASES, &["third", "first", "nope", "leak"], false);
        assert_eq!(names(&selection), ["third", "first"]);
        assert_eq!(selection.unknown, ["nope", "leak"]);
        assert!(!selection.leak);
        let selection = select(CASES, &["leak"], true);
        assert!(selection.cases.is_empty() && selection.unknown.is_empty() && selection.leak);
    }

    #[test]
    fn repeated_names_are_found() {
        assert!(duplicates(CASES, true).is_empty());
        let twice =
            [Case::here("a", passes), Case::here("leak", passes), Case::child("a", passes), Case::here("a", passes)];
        assert_eq!(duplicates(&twice, false), ["a"]);
        assert_eq!(duplicates(&twice, true), ["a", "leak"]);
    }

    #[test]
    fn a_case_with_a_requirement_that_fails_is_missing_it() {
        fn body() -> Outcome {
            Ok(())
        }
        assert_eq!(Case::child("a", body).only_if("never", || false).missing(), Some("never"));
        assert_eq!(Case::child("a", body).only_if("always", || true).missing(), None);
        assert_eq!(Case::child("a", body).missing(), None);
    }

    #[test]
    fn report_lines() {
        assert_eq!(result_line("x", &Ok(())), "PASS x");
        assert_eq!(result_line("x", &Err("why".to_string())), "FAIL x: why");
        assert_eq!(summary_line(164, 0), "164 passed, 0 failed");
        assert_eq!(skip_line("x", "has_avx"), "SKIP x: needs has_avx");
        assert_eq!(summary_line(2, 1), "2 passed, 1 failed");
    }

    #[test]
    fn a_failed_child_points_at_its_own_message() {
        assert_eq!(describe(&ExitInfo::exited(CHILD_FAILED)), "failed (its reason is above)");
        assert_eq!(describe(&ExitInfo::exited(7)), "ended: exited with status 7");
    }

    #[test]
    fn the_leak_check_wants_every_count_exactly_back() {
        let before = Resources { frames: 1000, heap_bytes: 5000, objects: 7 };
        assert_eq!(before.compare_with(&before), Ok(()));
        let lost_frame = Resources { frames: 999, ..before };
        assert_eq!(lost_frame.compare_with(&before), Err("999 free frames, 1000 before".to_string()));
        let gained_frame = Resources { frames: 1001, ..before };
        assert!(gained_frame.compare_with(&before).is_err());
        let heap = Resources { heap_bytes: 5016, ..before };
        assert_eq!(heap.compare_with(&before), Err("5016 kernel heap bytes in use, 5000 before".to_string()));
        let object = Resources { objects: 8, ..before };
        assert_eq!(object.compare_with(&before), Err("8 kernel objects alive, 7 before".to_string()));
        let both = Resources { frames: 998, heap_bytes: 4000, ..before };
        assert_eq!(
            both.compare_with(&before),
            Err("998 free frames, 1000 before; 4000 kernel heap bytes in use, 5000 before".to_string())
        );
    }

    #[test]
    fn check_returns_the_formatted_message() {
        fn odd(value: u32) -> Outcome {
            check!(value % 2 == 1, "{value} is even");
            Ok(())
        }
        assert_eq!(odd(3), Ok(()));
        assert_eq!(odd(4), Err("4 is even".to_string()));
    }
}
