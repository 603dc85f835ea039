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

use abi::ProcessState;
use abi::errno::ENOENT;
use userlib::line_editor::{Input, LineEditor};
use userlib::process::{self, Ending, Table};
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
    ("ps", "list the processes: pid, parent, state, memory, name"),
    ("kill PID...", "end processes (their status becomes 110, killed)"),
    ("uptime", "time since boot and the number of processes"),
    ("shutdown [STATUS]", "power off; the launcher exits with STATUS (default 0)"),
    ("exit [STATUS]", "leave the shell with STATUS (default 0); init then starts a new one"),
];

fn main() -> i32 {
    println!("Enigma shell, pid {}. Type `help` for the commands and programs.", sys::getpid());
    let mut editor = LineEditor::new(HISTORY_LINES);
    loop {
        // At the prompt nothing is in the foreground, so Ctrl-C only abandons the line, also in
        // a shell started from another shell (which made it the foreground program). Clearing
        // cannot fail.
        let _ = sys::set_foreground(0);
        report_finished_jobs();
        match editor.read_line(PROMPT) {
            Ok(Input::Line(line)) => {
                if let ControlFlow::Break(status) = run_line(&line) {
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

/// Runs one command line; `Break` carries the shell's exit status.
fn run_line(line: &str) -> ControlFlow<i32> {
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
        "kill" => kill(arguments),
        "uptime" => uptime(),
        "shutdown" => {
            if let Some(status) = status_argument(name, arguments) {
                sys::shutdown(status);
            }
        }
        "exit" => {
            if let Some(status) = status_argument(name, arguments) {
                return ControlFlow::Break(status);
            }
        }
        _ => run_program(&words, background),
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

/// Starts the program `argv[0]`; in the foreground, waits for it and reports a non-zero status.
fn run_program(argv: &[&str], background: bool) {
    let name = argv[0];
    let pid = match sys::spawn(name, argv) {
        Ok(pid) => pid,
        Err(Errno(ENOENT)) => {
            eprintln!("sh: {name}: not found");
            return;
        }
        Err(error) => {
            eprintln!("sh: {name}: {error}");
            return;
        }
    };
    if background {
        println!("[pid {pid}]");
        return;
    }
    // Until the next prompt Ctrl-C ends the program. If it has already exited (ESRCH), there is
    // nothing left to interrupt.
    let _ = sys::set_foreground(pid);
    match sys::wait(Some(pid)) {
        Ok((_, info)) if info.status == 0 => {}
        Ok((_, info)) => println!("[pid {pid} {}]", Ending(info)),
        Err(error) => eprintln!("sh: waiting for pid {pid}: {error}"),
    }
}

/// Reaps and reports the background jobs that have finished. The foreground program is always
/// waited for, so every zombie child of the shell is a finished background job, and waiting
/// for zombies never blocks.
fn report_finished_jobs() {
    let me = sys::getpid();
    let Ok(table) = process::list() else { return };
    let zombie = ProcessState::Zombie as u32;
    for row in table.iter().filter(|row| row.parent == me && row.state == zombie) {
        if let Ok((pid, info)) = sys::wait(Some(row.pid)) {
            println!("[pid {pid} done, status {}]", info.status);
        }
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

fn kill(arguments: &[&str]) {
    if arguments.is_empty() {
        eprintln!("sh: usage: kill PID...");
    }
    for text in arguments {
        match text.parse::<Pid>() {
            Ok(pid) => {
                if let Err(error) = sys::kill(pid) {
                    eprintln!("sh: kill {pid}: {error}");
                }
            }
            Err(_) => eprintln!("sh: kill: not a pid: '{text}'"),
        }
    }
}

fn uptime() {
    match sys::sysinfo() {
        Ok(info) => {
            let up = Duration::from_nanos(info.uptime_ns);
            println!("up {}.{:03} s, {} processes", up.as_secs(), up.subsec_millis(), info.processes);
        }
        Err(error) => eprintln!("sh: uptime: {error}"),
    }
}
