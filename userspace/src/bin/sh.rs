//! `sh`: Enigma's interactive shell. It reads command lines with editing and history
//! (`userlib::line_editor`, console in raw mode only while a line is typed), runs built-in
//! commands and embedded programs, and reports how programs ended.
//!
//! - The prompt is `enigma$ `. A line is split into words at whitespace; `'...'` and `"..."`
//!   quote (without escapes). `PROG ARGS...` starts the embedded program `PROG` with the words
//!   as its argv and waits for it, with the console cooked and the program as the foreground
//!   process, so Ctrl-C ends the program and never the shell. A non-zero status is reported as
//!   `[pid N exited with status S]`, `[pid N killed]`, `[pid N panicked]` or
//!   `[pid N killed by a fault]`.
//! - A trailing `&` starts the program in the background: `[pid N]`, and the prompt returns
//!   at once. Before each prompt, finished background jobs are reaped and reported as
//!   `[pid N done, status S]`.
//! - Errors: `sh: PROG: not found` for an unknown program, `sh: PROG: ERRNO` for other failures
//!   to start one (for example `sh: yes: EAGAIN` when the process table is full).
//! - Built-ins (see [`BUILTINS`]) run inside the shell, also when the line ends with `&`.
//!   Ctrl-D on an empty line is `exit`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use abi::errno::ENOENT;
use userlib::line_editor::{Input, LineEditor};
use userlib::process::{self, Ending, Process, Table};
use userlib::sys::{self, Errno, Pid};
use userlib::time::Duration;
use userlib::{eprintln, print, println};

userlib::main!(main);

/// The prompt.
const PROMPT: &str = "enigma$ ";
/// Lines the history keeps.
const HISTORY_LINES: usize = 50;

/// The built-in commands as `help` lists them: usage and what they do.
const BUILTINS: &[(&str, &str)] = &[
    ("help", "list the built-in commands and the programs"),
    ("ps", "list the processes: pid, parent, state, memory, CPU (last ran on), CPU time, name"),
    ("kill PID...", "end background jobs of this shell (their status becomes 110, killed)"),
    ("jobs", "list the background jobs still running"),
    ("uptime", "time since boot, the number of processes and of CPUs"),
    ("shutdown [STATUS]", "power off; the launcher exits with STATUS (default 0)"),
    ("exit [STATUS]", "leave the shell with STATUS (default 0); init then starts a new one"),
];

fn main() -> i32 {
    println!("Enigma shell, pid {}. Type `help` for the commands and programs.", sys::getpid());
    let mut editor = LineEditor::new(HISTORY_LINES);
    let mut jobs = Vec::new();
    loop {
        // At the prompt nothing is in the foreground, so Ctrl-C only abandons the line, also in
        // a shell started from another shell (which made it the foreground program). Clearing
        // fails only if another shell's program is in front, which is then left there.
        let _ = sys::set_foreground(None);
        report_finished_jobs(&mut jobs);
        match editor.read_line(PROMPT) {
            Ok(Input::Line(line)) => {
                if let ControlFlow::Break(status) = run_line(&line, &mut jobs) {
                    return status;
                }
            }
            Ok(Input::Interrupted) => {}
            Ok(Input::EndOfInput) => {
                println!("exit");
                return 0;
            }
            Err(error) => {
                eprintln!("sh: cannot read the console: {error}");
                return 1;
            }
        }
    }
}

/// Runs one command line; `Break` carries the shell's exit status. `jobs` are the background
/// programs still running.
fn run_line(line: &str, jobs: &mut Vec<Process>) -> ControlFlow<i32> {
    let trimmed = line.trim_end();
    let (text, background) = match trimmed.strip_suffix('&') {
        Some(rest) => (rest, true),
        None => (trimmed, false),
    };
    let words = match split_words(text) {
        Ok(words) => words,
        Err(why) => {
            eprintln!("sh: {why}");
            return ControlFlow::Continue(());
        }
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let Some((&name, arguments)) = words.split_first() else {
        if background {
            eprintln!("sh: & needs a command before it");
        }
        return ControlFlow::Continue(());
    };
    match name {
        "help" => help(),
        "ps" => ps(),
        "kill" => kill(arguments, jobs),
        "jobs" => list_jobs(jobs),
        "uptime" => uptime(),
        "shutdown" => {
            if let Some(status) = status_argument(name, arguments) {
                shutdown(status);
            }
        }
        "exit" => {
            if let Some(status) = status_argument(name, arguments) {
                return ControlFlow::Break(status);
            }
        }
        _ => run_program(&words, background, jobs),
    }
    ControlFlow::Continue(())
}

/// Splits `text` into words at whitespace; single or double quotes make one word of what
/// they enclose, spaces included (`''` is an empty word).
fn split_words(text: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    // `Some` once a word has begun, even if it is still empty (after `''`).
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for character in text.chars() {
        match quote {
            Some(open) if character == open => quote = None,
            Some(_) => word.get_or_insert_default().push(character),
            None if character == '\'' || character == '"' => {
                quote = Some(character);
                word.get_or_insert_default();
            }
            None if character.is_whitespace() => words.extend(word.take()),
            None => word.get_or_insert_default().push(character),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote");
    }
    words.extend(word);
    Ok(words)
}

/// Starts the program `argv[0]` with the shell's standard handles; in the foreground, waits
/// for it and reports a non-zero status; in the background, adds it to `jobs`.
fn run_program(argv: &[&str], background: bool, jobs: &mut Vec<Process>) {
    let name = argv[0];
    let child = match process::spawn(name, argv) {
        Ok(child) => child,
        Err(Errno(ENOENT)) => {
            eprintln!("sh: {name}: not found");
            return;
        }
        Err(error) => {
            eprintln!("sh: {name}: {error}");
            return;
        }
    };
    let pid = child.pid();
    if background {
        println!("[pid {pid}]");
        jobs.push(child);
        return;
    }
    // Until the next prompt Ctrl-C ends the program.
    let _ = sys::set_foreground(Some(child.child()));
    match child.wait() {
        Ok(info) if info.status == 0 => {}
        Ok(info) => println!("[pid {pid} {}]", Ending(info)),
        Err(error) => eprintln!("sh: waiting for pid {pid}: {error}"),
    }
}

/// Reports the background jobs that have finished, and forgets them.
fn report_finished_jobs(jobs: &mut Vec<Process>) {
    jobs.retain_mut(|job| match job.wait_for(0) {
        Ok(info) => {
            println!("[pid {} done, status {}]", job.pid(), info.status);
            false
        }
        Err(_) => true,
    });
}

fn list_jobs(jobs: &[Process]) {
    for job in jobs {
        println!("[pid {}]", job.pid());
    }
}

/// Powers off through the power handle the shell was given, if it was.
fn shutdown(status: i32) {
    let power = (0..abi::handle::HANDLE_MAX as u64)
        .find(|&handle| matches!(userlib::ipc::handle_info(handle), Ok((Some(abi::handle::Kind::Power), _))));
    match power {
        Some(power) => {
            if let Err(error) = sys::shutdown(power, status) {
                eprintln!("sh: shutdown: {error}");
            }
        }
        None => eprintln!("sh: shutdown: this shell was given no power handle"),
    }
}

/// The optional status argument of `exit` and `shutdown`; `None` (after saying why) if it is
/// not a number or there are more arguments.
fn status_argument(command: &str, arguments: &[&str]) -> Option<i32> {
    match arguments {
        [] => Some(0),
        [text] => match text.parse() {
            Ok(status) => Some(status),
            Err(_) => {
                eprintln!("sh: {command}: bad status '{text}'");
                None
            }
        },
        _ => {
            eprintln!("sh: {command}: too many arguments");
            None
        }
    }
}

fn help() {
    println!("Built-in commands:");
    for (usage, description) in BUILTINS {
        println!("  {usage:<18} {description}");
    }
    println!("Programs (PROG ARGS... runs one; a trailing & runs it in the background):");
    match process::programs() {
        Ok(names) => println!("  {}", names.join(" ")),
        Err(error) => eprintln!("sh: cannot list the programs: {error}"),
    }
    println!("Keys: Left, Right, Home and End move in the line; Up and Down recall earlier lines;");
    println!("Ctrl-C abandons the line or ends the running program; Ctrl-D leaves the shell.");
}

fn ps() {
    match process::list() {
        Ok(rows) => print!("{}", Table(&rows)),
        Err(error) => eprintln!("sh: ps: {error}"),
    }
}

/// Kills background jobs by pid: the shell holds a handle to each job it started, and no
/// authority over any other process.
fn kill(arguments: &[&str], jobs: &[Process]) {
    if arguments.is_empty() {
        eprintln!("sh: usage: kill PID...");
    }
    for text in arguments {
        let Ok(pid) = text.parse::<Pid>() else {
            eprintln!("sh: kill: not a pid: '{text}'");
            continue;
        };
        match jobs.iter().find(|job| job.pid() == pid) {
            Some(job) => {
                if let Err(error) = job.kill() {
                    eprintln!("sh: kill {pid}: {error}");
                }
            }
            None => eprintln!("sh: kill {pid}: not a job of this shell"),
        }
    }
}

fn uptime() {
    match sys::sysinfo() {
        Ok(info) => {
            let up = Duration::from_nanos(info.uptime_ns);
            println!("up {}.{:03} s, {} processes, {} CPUs", up.as_secs(), up.subsec_millis(), info.processes, info.cpus);
        }
        Err(error) => eprintln!("sh: uptime: {error}"),
    }
}
