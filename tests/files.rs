//! End-to-end tests of files and pipes from the shell: redirections into and out of files in
//! `/tmp`, pipelines (`cat /tmp/a | wc -c`, `yes | head -n 3`), `ls /bin` against the
//! programs in the repository, every file of `rootfs/` readable as it is in the repository,
//! `cd` and `pwd`, and a background pipeline. Every test boots its own VM with the default
//! first program (`init`, which starts the shell).

mod common;

use std::path::Path;
use std::time::Duration;

use common::Vm;

/// The shell's prompt.
const PROMPT: &str = "enigma$ ";
/// Upper bound for booting to the first prompt.
const BOOT: Duration = common::BOOT_LIMIT;
/// Upper bound for one command to finish.
const STEP: Duration = common::STEP_LIMIT;

fn boot_to_prompt() -> Vm {
    let vm = Vm::boot(&[]);
    vm.wait_for(PROMPT, BOOT);
    vm
}

/// Types `line` and returns what the shell printed until its next prompt, without the echoed
/// line, with `\r\n` as `\n`.
fn run(vm: &mut Vm, line: &str) -> String {
    let start = vm.output_len();
    vm.send(&format!("{line}\n"));
    let needle = format!("\r\n{PROMPT}");
    let output = vm.wait_for_after(start, &needle, STEP);
    let since = &output[start..];
    let end = since.find(&needle).expect("wait_for_after found the prompt");
    let text = since[..end].replace("\r\n", "\n");
    text.strip_prefix(line).unwrap_or(&text).trim_start_matches('\n').to_owned()
}

#[test]
fn redirections_and_pipes_through_tmp() {
    let mut vm = boot_to_prompt();
    assert_eq!(run(&mut vm, "echo hello > /tmp/a"), "");
    assert_eq!(run(&mut vm, "cat /tmp/a | wc -c"), "6");
    assert_eq!(run(&mut vm, "cat /tmp/a"), "hello");
    assert_eq!(run(&mut vm, "echo again >> /tmp/a"), "");
    assert_eq!(run(&mut vm, "wc -l < /tmp/a"), "2");
    assert_eq!(run(&mut vm, "cat /tmp/a | grep gai | wc -w"), "1");
    let failed = run(&mut vm, "cat /tmp/no-such-file 2> /tmp/errors");
    assert!(failed.starts_with("[pid ") && failed.ends_with(" exited with status 1]"), "{failed}");
    assert_eq!(run(&mut vm, "cat /tmp/errors"), "cat: /tmp/no-such-file: ENOENT");
    assert_eq!(run(&mut vm, "cp /tmp/a /tmp/b"), "");
    assert_eq!(run(&mut vm, "mv /tmp/b /tmp/c"), "");
    assert_eq!(run(&mut vm, "ls /tmp"), "a\nc\nerrors");
    assert_eq!(run(&mut vm, "rm /tmp/a /tmp/c /tmp/errors"), "");
    assert_eq!(run(&mut vm, "ls /tmp"), "");
}

#[test]
fn yes_into_head_prints_three_lines_and_ends() {
    let mut vm = boot_to_prompt();
    assert_eq!(run(&mut vm, "yes | head -n 3"), "y\ny\ny");
    // Neither is left behind.
    let processes = run(&mut vm, "ps");
    assert!(!processes.contains(" yes") && !processes.contains(" head"), "{processes}");
}

#[test]
fn ls_bin_lists_every_program() {
    let mut vm = boot_to_prompt();
    let listed = run(&mut vm, "ls /bin");
    assert_eq!(listed.lines().collect::<Vec<_>>(), common::repository_programs(), "ls /bin:\n{listed}");
}

#[test]
fn every_rootfs_file_is_readable_as_it_is_in_the_repository() {
    let mut vm = boot_to_prompt();
    let rootfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs");
    let mut files = Vec::new();
    let mut folders = vec![rootfs.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("reading rootfs") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() { folders.push(path) } else { files.push(path) }
        }
    }
    assert!(!files.is_empty(), "rootfs/ holds no file");
    for file in files {
        let inside = format!("/{}", file.strip_prefix(&rootfs).expect("inside rootfs").display());
        let expected = std::fs::read_to_string(&file).expect("a text file in rootfs");
        assert_eq!(run(&mut vm, &format!("cat {inside}")), expected.trim_end(), "{inside}");
    }
}

#[test]
fn cd_and_pwd_give_programs_their_directory() {
    let mut vm = boot_to_prompt();
    assert_eq!(run(&mut vm, "pwd"), "/");
    assert_eq!(run(&mut vm, "mkdir /tmp/work"), "");
    assert_eq!(run(&mut vm, "cd /tmp/work"), "");
    assert_eq!(run(&mut vm, "pwd"), "/tmp/work");
    assert_eq!(run(&mut vm, "echo here > note"), "");
    assert_eq!(run(&mut vm, "ls -l"), "-        5 note");
    assert_eq!(run(&mut vm, "cd .."), "");
    assert_eq!(run(&mut vm, "cat work/note"), "here");
    assert_eq!(run(&mut vm, "cd /no/such"), "sh: cd: /no/such: ENOENT");
    assert_eq!(run(&mut vm, "pwd"), "/tmp");
    assert_eq!(run(&mut vm, "echo x > /etc/motd"), "sh: /etc/motd: EROFS");
}

#[test]
fn a_background_pipeline_finishes_into_a_file() {
    let mut vm = boot_to_prompt();
    let started = run(&mut vm, "yes hi | head -n 100 > /tmp/bg &");
    // Two jobs started; they may already be reported done before the prompt.
    let jobs = started.lines().filter(|line| line.starts_with("[pid ") && !line.contains("done")).count();
    assert_eq!(jobs, 2, "{started}");
    // The jobs are reaped and reported before a later prompt.
    let mut reported = started.clone();
    for _ in 0..20 {
        reported.push_str(&run(&mut vm, "wc -l /tmp/bg"));
        if reported.matches("done, status 0]").count() == 2 && reported.contains("100 /tmp/bg") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the background pipeline did not finish: {reported}");
}
