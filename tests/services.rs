//! End-to-end tests of the services `init` supervises: a restarted fs keeps `/tmp` (also
//! when the first program is an `--init` program, which init supervises the services for
//! as well), and from the shell, `svc restart fs` brings fs back with the files and the
//! shell with it.

mod common;

use std::time::Duration;

use common::{Vm, run};

const PROMPT: &str = "enigma$ ";
/// Upper bound for booting to the first prompt under TCG on a loaded machine.
const BOOT: Duration = Duration::from_secs(60);
/// Upper bound for one command.
const STEP: Duration = Duration::from_secs(30);
/// Upper bound for the whole `--init` run (nominally a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(150);

#[test]
fn fs_restarted_under_an_init_program_keeps_every_file_in_tmp() {
    let (status, output) = run(&["--init", "usertests --child fs_survives_restart", "--timeout", "140"], "", RUN_LIMIT);
    assert!(output.contains("fs_survives_restart: every file came back"), "{output}");
    assert_eq!(output.matches("init: fs (pid ").count(), 2, "init did not restart fs twice:\n{output}");
    assert!(output.contains("fs: /tmp restored from the journal"), "{output}");
    assert_eq!(status, 0, "{output}");
}

/// Types `line` on the serial line and returns the output up to the next prompt after it.
fn command(vm: &mut Vm, line: &str) -> String {
    let start = vm.output_len();
    vm.send(&format!("{line}\n"));
    let output = vm.wait_for_after(start, &format!("\r\n{PROMPT}"), STEP);
    output[start..].to_owned()
}

#[test]
fn svc_restart_fs_from_the_shell_keeps_tmp() {
    let mut vm = Vm::boot(&[]);
    vm.wait_for(PROMPT, BOOT);
    command(&mut vm, "mkdir /tmp/d");
    command(&mut vm, "echo kept across the restart > /tmp/d/note");
    let start = vm.output_len();
    vm.send("svc restart fs\n");
    vm.wait_for_after(start, "init: fs (pid ", STEP);
    // The shell comes back too, in the new fs: its banner, then its prompt.
    let banner = vm.wait_for_after(start, "Enigma shell, pid ", STEP);
    let new_shell = banner.rfind("Enigma shell, pid ").expect("the banner was found");
    vm.wait_for_after(new_shell, PROMPT, STEP);
    let shown = command(&mut vm, "cat /tmp/d/note");
    assert!(shown.contains("cat /tmp/d/note\r\nkept across the restart"), "{shown:?}");
    let listed = command(&mut vm, "svc list");
    assert!(listed.contains("fs "), "{listed:?}");
    vm.send("shutdown\n");
    let (status, output) = vm.wait_exit(STEP);
    assert_eq!(status, 0, "{output}");
}
