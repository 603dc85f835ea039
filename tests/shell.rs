//! End-to-end tests of Enigma's interactive session: `init` keeping `sh` running (beside the
//! name server and the file server it starts first), the example
//! servers (`kvd`/`kv`, `upperd`/`upper`) answering from the shell, the shell's
//! programs and built-ins, its line editing and history, Ctrl-C, background jobs (which end
//! with their shell's job), and shell restarts, typed on the serial console or on the keyboard through the QEMU monitor. Every
//! test boots its own VM with the default first program (`init`, no `--init`).

mod common;

use std::time::{Duration, Instant};

use common::{Screen, Vm};

/// The shell's prompt.
const PROMPT: &str = "enigma$ ";
/// Upper bound for booting to the first prompt (nominal 1-2 s; TCG on a loaded machine).
const BOOT: Duration = common::BOOT_LIMIT;
/// Upper bound for one command to finish.
const STEP: Duration = common::STEP_LIMIT;

/// Boots with no `--init` and waits for the shell's first prompt.
fn boot_to_prompt() -> Vm {
    let vm = Vm::boot(&[]);
    vm.wait_for(PROMPT, BOOT);
    vm
}

/// Waits for the first prompt that starts a line in the serial output from byte `start` on, and
/// returns the output from `start` up to that prompt.
fn until_prompt(vm: &Vm, start: usize) -> String {
    let needle = format!("\r\n{PROMPT}");
    let output = vm.wait_for_after(start, &needle, STEP);
    let since = &output[start..];
    let end = since
        .find(&needle)
        .expect("wait_for_after found the prompt");
    since[..end].to_owned()
}

/// Types `line` and Enter on the serial console and returns what the shell printed until its
/// next prompt: the echoed line, then the command's output.
fn run(vm: &mut Vm, line: &str) -> String {
    let start = vm.output_len();
    vm.send(&format!("{line}\n"));
    until_prompt(vm, start)
}

/// Types `line` and Enter on the keyboard (QEMU `sendkey`) and returns what the shell printed
/// until its next prompt.
fn type_on_keyboard(vm: &Vm, line: &str) -> String {
    let start = vm.output_len();
    vm.sendkeys(&format!("{line}\n"));
    until_prompt(vm, start)
}

/// The number right after the first `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> u32 {
    let (_, rest) = text
        .split_once(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in {text:?}"))
}

/// One row of `ps`.
#[derive(Debug)]
struct Row {
    pid: u32,
    parent: u32,
    state: String,
    cpu: u32,
    threads: u32,
    name: String,
}

/// The rows of the `ps` table in `output`: the lines after its header that have a row's
/// shape (background jobs may print between them).
fn ps_rows(output: &str) -> Vec<Row> {
    output
        .lines()
        .skip_while(|line| !line.contains("PID PARENT"))
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [pid, parent, state, _memory, "KiB", cpu, threads, time, name] = fields[..] else {
                return None;
            };
            time.strip_suffix('s')?.parse::<f64>().ok()?;
            Some(Row {
                threads: threads.parse().ok()?,
                pid: pid.parse().ok()?,
                parent: parent.parse().ok()?,
                state: state.to_owned(),
                cpu: cpu.parse().ok()?,
                name: name.to_owned(),
            })
        })
        .collect()
}

/// The fraction of pixels that differ between two screenshots of the same size.
fn changed_fraction(before: &Screen, after: &Screen) -> f64 {
    assert_eq!((before.width, before.height), (after.width, after.height));
    let pixels = |screen: &Screen| screen.rgb.as_chunks::<3>().0.to_vec();
    let (old, new) = (pixels(before), pixels(after));
    let changed = old.iter().zip(&new).filter(|(old, new)| old != new).count();
    changed as f64 / (before.width * before.height) as f64
}

#[test]
fn serial_session_runs_programs_and_builtins_then_shutdown_exits_0() {
    let mut vm = boot_to_prompt();

    let hello = run(&mut vm, "hello shell-arg");
    assert!(hello.contains("Hello from ring 3"), "{hello:?}");
    assert!(hello.contains("args: hello shell-arg"), "{hello:?}");

    let ps = run(&mut vm, "ps");
    let rows = ps_rows(&ps);
    assert!(
        rows.iter()
            .any(|row| (row.pid, row.parent, row.name.as_str()) == (1, 0, "init")),
        "{ps:?}"
    );
    assert!(
        rows.iter()
            .any(|row| row.parent == 1 && row.name == "sh" && row.state == "running"),
        "{ps:?}"
    );
    assert!(
        rows.iter()
            .any(|row| (row.pid, row.parent, row.name.as_str()) == (2, 1, "console")),
        "{ps:?}"
    );
    assert!(
        rows.iter()
            .any(|row| (row.pid, row.parent, row.name.as_str()) == (3, 1, "names")),
        "{ps:?}"
    );
    assert!(
        rows.iter()
            .any(|row| (row.pid, row.parent, row.name.as_str()) == (4, 1, "fs")),
        "{ps:?}"
    );
    // The launcher's default machine has two CPUs, numbered 0 and 1.
    assert!(rows.iter().all(|row| row.cpu < 2), "{ps:?}");
    // Every program here is single-threaded.
    assert!(rows.iter().all(|row| row.threads == 1), "{ps:?}");
    assert_eq!(
        rows.len(),
        5,
        "only init, the console, the name server, the file system and the shell should be left: {ps:?}"
    );
    let uptime = run(&mut vm, "uptime");
    assert!(uptime.contains(" processes, 2 CPUs"), "{uptime:?}");

    assert_eq!(run(&mut vm, "echo a b c"), "echo a b c\r\na b c");
    assert_eq!(run(&mut vm, "nosuch"), "nosuch\r\nsh: nosuch: not found");

    let help = run(&mut vm, "help");
    for builtin in [
        "help",
        "ps",
        "kill PID",
        "uptime",
        "shutdown [STATUS]",
        "exit [STATUS]",
    ] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(builtin)),
            "{builtin}: {help:?}"
        );
    }
    let programs = help
        .lines()
        .skip_while(|line| !line.starts_with("Programs"))
        .nth(1)
        .unwrap_or("");
    // Every program in the repository, which is what `/bin` holds.
    assert_eq!(
        programs.split_whitespace().collect::<Vec<_>>(),
        common::repository_programs(),
        "{help:?}"
    );

    vm.send("shutdown\n");
    let (code, output) = vm.wait_exit(STEP);
    assert_eq!(code, 0, "{output}");
}

#[test]
fn keyboard_session_through_sendkey_runs_commands_and_draws_them_on_the_framebuffer() {
    let vm = Vm::boot_with_monitor(&[]);
    vm.wait_for(PROMPT, BOOT);
    let before = vm.screendump();

    let hello = type_on_keyboard(&vm, "hello shell-arg");
    assert!(
        hello.contains("Hello from ring 3") && hello.contains("args: hello shell-arg"),
        "{hello:?}"
    );
    let ps = type_on_keyboard(&vm, "ps");
    let names: Vec<String> = ps_rows(&ps).into_iter().map(|row| row.name).collect();
    assert!(
        names.contains(&"init".to_owned()) && names.contains(&"sh".to_owned()),
        "{ps:?}"
    );
    assert_eq!(type_on_keyboard(&vm, "echo a b c"), "echo a b c\r\na b c");
    assert_eq!(
        type_on_keyboard(&vm, "nosuch"),
        "nosuch\r\nsh: nosuch: not found"
    );
    let scrolled = type_on_keyboard(&vm, "yes -n 40 the shell draws on the framebuffer");
    assert_eq!(
        scrolled
            .matches("the shell draws on the framebuffer\r\n")
            .count(),
        40,
        "{scrolled:?}"
    );

    let after = vm.screendump();
    let changed = changed_fraction(&before, &after);
    assert!(
        changed > 0.02,
        "only {changed} of the pixels changed while the shell ran"
    );
    assert!(
        after.distinct_colours() > 2,
        "{} colours",
        after.distinct_colours()
    );
    let text = after.non_background_fraction();
    assert!(
        (0.03..0.5).contains(&text),
        "text covers {text} of the screen"
    );

    vm.sendkeys("shutdown\n");
    let (code, output) = vm.wait_exit(STEP);
    assert_eq!(code, 0, "{output}");
}

#[test]
fn ctrl_c_kills_the_foreground_program_and_the_shell_survives() {
    let mut vm = boot_to_prompt();
    let start = vm.output_len();
    vm.send("spin\n");
    let output = vm.wait_for_after(start, "spinning until killed", STEP);
    let pid = number_after(&output[start..], "spin: pid ");

    // The shell makes `spin` the foreground process just after starting it; on a loaded host
    // the first Ctrl-C can land before that (the known window until spawn can start a
    // process suspended), so press it again until the prompt is back, as a user would.
    let deadline = Instant::now() + STEP;
    loop {
        vm.send("\x03");
        let since = vm.output_len();
        std::thread::sleep(Duration::from_millis(500));
        if vm.output().get(since.saturating_sub(PROMPT.len())..).is_some_and(|tail| tail.contains(PROMPT)) {
            break;
        }
        assert!(Instant::now() < deadline, "Ctrl-C never ended `spin`");
    }
    let interrupted = until_prompt(&vm, start);
    assert!(interrupted.contains(&format!("^C\r\n[pid {pid} killed]")), "{interrupted:?}");

    assert_eq!(run(&mut vm, "echo alive"), "echo alive\r\nalive");
    let ps = run(&mut vm, "ps");
    assert!(ps_rows(&ps).iter().all(|row| row.name != "spin"), "{ps:?}");
}

#[test]
fn background_jobs_return_the_prompt_at_once_and_are_reported_when_done() {
    let mut vm = boot_to_prompt();
    let shell = number_after(&vm.output(), "Enigma shell, pid ");

    let started = run(&mut vm, "spin 1 &");
    let timed = number_after(&started, "[pid ");
    assert!(
        !started.contains("done"),
        "the prompt came back only after the job: {started:?}"
    );
    let forever = number_after(&run(&mut vm, "spin &"), "[pid ");

    let ps = run(&mut vm, "ps");
    for pid in [timed, forever] {
        let row = ps_rows(&ps).into_iter().find(|row| row.pid == pid);
        let row = row.unwrap_or_else(|| panic!("pid {pid} missing: {ps:?}"));
        assert_eq!((row.parent, row.name.as_str()), (shell, "spin"), "{ps:?}");
        assert_ne!(row.state, "zombie", "{ps:?}");
    }

    let start = vm.output_len();
    let kill = run(&mut vm, &format!("kill {forever}"));
    assert!(!kill.contains("sh: kill"), "{kill:?}");
    vm.wait_for(&format!("spin: pid {timed} done"), STEP);
    // A job is reported at the first prompt after it has exited: press Enter until both are.
    let reports = [
        format!("[pid {timed} done, status 0]"),
        format!("[pid {forever} done, status 110]"),
    ];
    let deadline = Instant::now() + STEP;
    while !reports
        .iter()
        .all(|report| vm.output()[start..].contains(report.as_str()))
    {
        assert!(
            Instant::now() < deadline,
            "jobs not reported: {:?}",
            &vm.output()[start..]
        );
        run(&mut vm, "");
    }
    let ps = run(&mut vm, "ps");
    assert_eq!(
        ps_rows(&ps).len(),
        5,
        "the jobs should be gone, leaving init, console, names, fs and sh: {ps:?}"
    );
}

#[test]
fn init_starts_a_new_shell_after_exit_and_ctrl_d_and_the_shell_kills_only_its_jobs() {
    let mut vm = boot_to_prompt();
    let first = number_after(&vm.output(), "Enigma shell, pid ");

    let exited = run(&mut vm, "exit 7");
    assert!(
        exited.contains(&format!(
            "init: sh (pid {first}) exited with status 7; starting it again"
        )),
        "{exited:?}"
    );
    let second = number_after(&exited, "Enigma shell, pid ");
    assert_eq!(run(&mut vm, "echo again"), "echo again\r\nagain");
    let ps = run(&mut vm, "ps");
    let shells: Vec<(u32, u32)> = ps_rows(&ps)
        .iter()
        .filter(|row| row.name == "sh")
        .map(|row| (row.pid, row.parent))
        .collect();
    assert_eq!(shells, [(second, 1)], "{ps:?}");

    let start = vm.output_len();
    vm.send("\x04");
    let ended = until_prompt(&vm, start);
    assert!(
        ended.contains(&format!(
            "exit\r\ninit: sh (pid {second}) exited with status 0; starting it again"
        )),
        "{ended:?}"
    );
    let third = number_after(&ended, "Enigma shell, pid ");

    // The shell holds handles to its own jobs and to nothing else: init, the console, the
    // name server, the file server and the shell itself are out of its reach.
    for pid in [1, 2, 3, 4, third] {
        assert_eq!(
            run(&mut vm, &format!("kill {pid}")),
            format!("kill {pid}\r\nsh: kill {pid}: not a job of this shell")
        );
    }
    let ps = run(&mut vm, "ps");
    let rows = ps_rows(&ps);
    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(names, ["init", "console", "names", "fs", "sh"], "{ps:?}");
    assert_eq!(
        run(&mut vm, "echo still here"),
        "echo still here\r\nstill here"
    );
}

#[test]
fn a_dead_shells_background_job_is_ended_with_its_job() {
    let mut vm = boot_to_prompt();
    let first = number_after(&vm.output(), "Enigma shell, pid ");
    let spin = number_after(&run(&mut vm, "spin &"), "[pid ");
    // The console's restart takes the shell with it (its standard streams named the old
    // console): the shell held the only handle to `spin`.
    let start = vm.output_len();
    vm.send("svc restart console\n");
    vm.wait_for_after(start, &format!("init: sh (pid {first})"), STEP);
    let banner = vm.wait_for_after(start, "Enigma shell, pid ", STEP);
    let new_shell = banner.rfind("Enigma shell, pid ").expect("the banner was found");
    vm.wait_for_after(new_shell, PROMPT, STEP);
    // init killed the old shell's job before starting the new one; `spin` may still be on its
    // way out (`ending`) at the first look.
    let deadline = Instant::now() + STEP;
    loop {
        let ps = run(&mut vm, "ps");
        let rows = ps_rows(&ps);
        assert!(rows.iter().any(|row| row.name == "sh"), "no shell in {ps:?}");
        if !rows.iter().any(|row| row.pid == spin) {
            break;
        }
        assert!(Instant::now() < deadline, "spin (pid {spin}) outlived its shell's job: {ps:?}");
    }
}

/// Runs `line` until its output no longer contains `not_yet` (a server started in the
/// background registers its name a moment later), and returns the output that did not.
fn run_until_served(vm: &mut Vm, line: &str, not_yet: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let output = run(vm, line);
        if !output.contains(not_yet) {
            return output;
        }
        assert!(Instant::now() < deadline, "never served: {output:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_example_servers_answer_their_clients_from_the_shell() {
    let mut vm = boot_to_prompt();
    let shell = number_after(&vm.output(), "Enigma shell, pid ");

    let missing = run(&mut vm, "kv get colour");
    assert!(
        missing.contains("kv: no \"kv\" service (ENOENT); start it with `kvd &`"),
        "{missing:?}"
    );
    let kvd = number_after(&run(&mut vm, "kvd &"), "[pid ");
    let first = run_until_served(&mut vm, "kv set colour blue", "no \"kv\" service");
    assert_eq!(first, "kv set colour blue");
    assert_eq!(run(&mut vm, "kv set shape round"), "kv set shape round");
    assert_eq!(run(&mut vm, "kv get colour"), "kv get colour\r\nblue");
    assert_eq!(run(&mut vm, "kv set colour green"), "kv set colour green");
    assert_eq!(run(&mut vm, "kv get colour"), "kv get colour\r\ngreen");
    assert_eq!(run(&mut vm, "kv list"), "kv list\r\ncolour\r\nshape");
    assert_eq!(run(&mut vm, "kv del colour"), "kv del colour");
    let unset = run(&mut vm, "kv get colour");
    assert!(unset.contains("kv: colour: not set"), "{unset:?}");
    assert!(unset.contains("exited with status 1"), "{unset:?}");
    let usage = run(&mut vm, "kv frobnicate");
    assert!(usage.contains("usage: kv set NAME VALUE"), "{usage:?}");

    let upperd = number_after(&run(&mut vm, "upperd &"), "[pid ");
    let shout = run_until_served(&mut vm, "upper \"hello, server\"", "no server");
    assert_eq!(shout, "upper \"hello, server\"\r\nHELLO, SERVER");

    let ps = run(&mut vm, "ps");
    // upperd serves from four threads on one endpoint (all blocked in `recv`).
    for (pid, name, threads) in [(kvd, "kvd", 1), (upperd, "upperd", 4)] {
        let row = ps_rows(&ps).into_iter().find(|row| row.pid == pid);
        let row = row.unwrap_or_else(|| panic!("{name} (pid {pid}) missing: {ps:?}"));
        assert_eq!(
            (row.parent, row.name.as_str(), row.state.as_str(), row.threads),
            (shell, name, "blocked", threads),
            "{ps:?}"
        );
    }

    // A dead server: its name ends with it (its registration closed when it died), so its
    // clients soon find no such service.
    let killed = run(&mut vm, &format!("kill {kvd}"));
    // The end may be reported at once, before the prompt.
    let reported = format!("kill {kvd}\r\n[pid {kvd} done, status 110]");
    assert!(killed == format!("kill {kvd}") || killed == reported, "{killed:?}");
    let gone = run_until_served(&mut vm, "kv get shape", "the server has gone");
    assert!(gone.contains("kv: no \"kv\" service (ENOENT); start it with `kvd &`"), "{gone:?}");
    // Started again, it registers its name again and starts empty.
    run(&mut vm, "kvd &");
    let fresh = run_until_served(&mut vm, "kv get shape", "no \"kv\" service");
    assert!(fresh.contains("kv: shape: not set"), "{fresh:?}");
}

#[test]
fn line_editing_history_quotes_and_ctrl_c_at_the_prompt_work_over_serial() {
    let mut vm = boot_to_prompt();
    // Both Backspace codes erase; Left moves the insertion point.
    assert!(run(&mut vm, "echo vwz\x08\x7fxy").ends_with("\r\nvxy"));
    assert!(run(&mut vm, "echo ac\x1b[Db").ends_with("\r\nabc"));
    // Up twice recalls the line before last.
    assert!(run(&mut vm, "\x1b[A\x1b[A").ends_with("\r\nvxy"));
    // Quotes keep spaces and make empty words.
    assert!(run(&mut vm, "echo 'a  b' \"\" c").ends_with("\r\na  b  c"));

    // Ctrl-C abandons the line: nothing runs.
    let start = vm.output_len();
    vm.send("echo never\x03");
    let abandoned = until_prompt(&vm, start);
    assert_eq!(abandoned, "echo never^C");

    // `\r\n` from a serial terminal is one Enter: one command, one new prompt.
    let start = vm.output_len();
    vm.send("echo crlf\r\n");
    until_prompt(&vm, start);
    run(&mut vm, "echo after");
    let since = &vm.output()[start..];
    assert_eq!(since.matches(PROMPT).count(), 2, "{since:?}");
}
