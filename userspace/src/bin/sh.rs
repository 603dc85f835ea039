//! `sh`: Enigma's interactive shell. It reads command lines with editing and history
//! (`userlib::line_editor`, console in raw mode only while a line is typed), runs built-in
//! commands and programs from `/bin` (or any path), connects them with pipes and files, and
//! reports how programs ended. At start it prints `/etc/motd`.
//!
//! - The prompt is `enigma$ `. A line is split into words at whitespace; `'...'` and `"..."`
//!   quote (without escapes). `PROG ARGS...` starts the program `PROG` (`/bin/PROG` unless it
//!   has a `/`) with the words as its argv and waits for it, with the console cooked and the
//!   program as the foreground process, so Ctrl-C ends the program and never the shell. A
//!   non-zero status is reported as `[pid N exited with status S]`, `[pid N killed]`,
//!   `[pid N panicked]` or `[pid N killed by a fault]`.
//! - `A | B | C` runs the programs together, each one's standard output a pipe to the next
//!   one's standard input; the last one is in the foreground and its status is reported.
//!   `< FILE` takes standard input from FILE, `> FILE` sends standard output to FILE (emptied
//!   first), `>> FILE` appends to it, and `2> FILE` sends standard error there. The operators
//!   need no spaces around them (`echo hi>/tmp/a`), except `2>`, which must start a word.
//! - A trailing `&` starts the programs in the background: `[pid N]` each, and the prompt
//!   returns at once. Before each prompt, finished background jobs are reaped and reported as
//!   `[pid N done, status S]`.
//! - Errors: `sh: PROG: not found` for an unknown program, `sh: PROG: ERRNO` for other failures
//!   to start one (for example `sh: yes: EAGAIN` when the process table is full), and
//!   `sh: FILE: ERRNO` for a redirection that cannot be opened.
//! - Built-ins (see [`BUILTINS`]) run inside the shell, also when the line ends with `&`;
//!   they cannot be redirected or piped. Ctrl-D on an empty line is `exit`.
//! - `init` gives the shell the operator's handle to its supervisor (handle 6), which may
//!   restart services; the shell passes it to `svc` alone, never to other programs.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use abi::errno::ENOENT;
use userlib::fs::{self, open};
use userlib::ipc::OwnedHandle;
use userlib::line_editor::{Input, LineEditor};
use userlib::process::{self, Ending, Process, Table};
use userlib::sys::{self, Errno, Pid};
use userlib::time::Duration;
use userlib::{eprintln, print, println};

use userlib::supervisor;

userlib::main!(main);

/// The prompt.
const PROMPT: &str = "enigma$ ";
/// Lines the history keeps.
const HISTORY_LINES: usize = 50;

/// The built-in commands as `help` lists them: usage and what they do.
const BUILTINS: &[(&str, &str)] = &[
    ("help", "list the built-in commands and the programs"),
    ("cd [DIR]", "make DIR (default /) the current directory"),
    ("pwd", "print the current directory"),
    ("ps", "list the processes: pid, parent, state, memory, CPU (last ran on), CPU time, name"),
    ("kill PID...", "end background jobs of this shell (their status becomes 110, killed)"),
    ("jobs", "list the background jobs still running"),
    ("uptime", "time since boot, the number of processes and of CPUs"),
    ("shutdown [STATUS]", "power off; the launcher exits with STATUS (default 0)"),
    ("exit [STATUS]", "leave the shell with STATUS (default 0); init then starts a new one"),
];

fn main() -> i32 {
    println!("Enigma shell, pid {}. Type `help` for the commands and programs.", sys::getpid());
    if let Ok(motd) = fs::read("/etc/motd") {
        print!("{}", String::from_utf8_lossy(&motd));
    }
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
    let tokens = match tokenize(line) {
        Ok(tokens) => tokens,
        Err(why) => {
            eprintln!("sh: {why}");
            return ControlFlow::Continue(());
        }
    };
    let (pipeline, background) = match parse(tokens) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return ControlFlow::Continue(()),
        Err(why) => {
            eprintln!("sh: {why}");
            return ControlFlow::Continue(());
        }
    };
    if let [command] = pipeline.as_slice()
        && command.redirections.is_empty()
        && let Some(flow) = run_builtin(&command.words, jobs)
    {
        return flow;
    }
    if let Some(builtin) = pipeline.iter().find(|command| is_builtin(&command.words[0])) {
        eprintln!("sh: {}: a built-in cannot be piped or redirected", builtin.words[0]);
        return ControlFlow::Continue(());
    }
    run_pipeline(&pipeline, background, jobs);
    ControlFlow::Continue(())
}

/// A piece of a command line.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `|`
    Pipe,
    /// `<`
    Input,
    /// `>`
    Output,
    /// `>>`
    Append,
    /// `2>`
    Errors,
    /// `&`
    Background,
}

/// Splits `text` into words at whitespace and at the operators `| < > >> 2> &`; single or
/// double quotes make one word of what they enclose, spaces and operators included (`''` is
/// an empty word).
fn tokenize(text: &str) -> Result<Vec<Token>, &'static str> {
    let mut tokens = Vec::new();
    // `Some` once a word has begun, even if it is still empty (after `''`).
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match quote {
            Some(open) if character == open => quote = None,
            Some(_) => word.get_or_insert_default().push(character),
            None if character == '\'' || character == '"' => {
                quote = Some(character);
                word.get_or_insert_default();
            }
            None if character.is_whitespace() => tokens.extend(word.take().map(Token::Word)),
            None if "|<>&".contains(character) => {
                let operator = match character {
                    '|' => Token::Pipe,
                    '<' => Token::Input,
                    '&' => Token::Background,
                    _ if characters.peek() == Some(&'>') => {
                        characters.next();
                        Token::Append
                    }
                    _ if word.as_deref() == Some("2") => {
                        word = None;
                        Token::Errors
                    }
                    _ => Token::Output,
                };
                tokens.extend(word.take().map(Token::Word));
                tokens.push(operator);
            }
            None => word.get_or_insert_default().push(character),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote");
    }
    tokens.extend(word.map(Token::Word));
    Ok(tokens)
}

/// Where a redirection sends a stream.
#[derive(Debug, PartialEq, Eq)]
enum Redirection {
    /// `< FILE`
    Input(String),
    /// `> FILE` or, appending, `>> FILE`.
    Output(String, bool),
    /// `2> FILE`
    Errors(String),
}

/// One program of a pipeline.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    words: Vec<String>,
    redirections: Vec<Redirection>,
}

/// The pipeline a line's tokens make, and whether it runs in the background; `None` for an
/// empty line.
fn parse(tokens: Vec<Token>) -> Result<Option<(Vec<Command>, bool)>, &'static str> {
    let mut tokens = tokens.into_iter().peekable();
    let mut pipeline = Vec::new();
    let mut command = Command { words: Vec::new(), redirections: Vec::new() };
    let mut background = false;
    while let Some(token) = tokens.next() {
        if background {
            return Err("& must end the line");
        }
        match token {
            Token::Word(word) => command.words.push(word),
            Token::Pipe => {
                if command.words.is_empty() {
                    return Err("| needs a command on each side");
                }
                pipeline.push(core::mem::replace(&mut command, Command { words: Vec::new(), redirections: Vec::new() }));
            }
            Token::Background => background = true,
            operator => {
                let Some(Token::Word(file)) = tokens.next() else { return Err("a redirection needs a file name") };
                command.redirections.push(match operator {
                    Token::Input => Redirection::Input(file),
                    Token::Output => Redirection::Output(file, false),
                    Token::Append => Redirection::Output(file, true),
                    _ => Redirection::Errors(file),
                });
            }
        }
    }
    if command.words.is_empty() {
        return match (pipeline.is_empty(), background || !command.redirections.is_empty()) {
            (true, false) => Ok(None),
            (true, true) => Err("& and redirections need a command"),
            (false, _) => Err("| needs a command on each side"),
        };
    }
    pipeline.push(command);
    Ok(Some((pipeline, background)))
}

fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(usage, _)| usage.split(' ').next() == Some(name))
}

/// Runs `words` if it is a built-in: `Some` with what the shell does next, else `None`.
fn run_builtin(words: &[String], jobs: &mut [Process]) -> Option<ControlFlow<i32>> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (&name, arguments) = words.split_first()?;
    match name {
        "help" => help(),
        "ps" => ps(),
        "kill" => kill(arguments, jobs),
        "jobs" => list_jobs(jobs),
        "uptime" => uptime(),
        "cd" => change_directory(arguments),
        "pwd" => match fs::current_dir() {
            Ok(path) => println!("{path}"),
            Err(error) => eprintln!("sh: pwd: {error}"),
        },
        "shutdown" => {
            if let Some(status) = status_argument(name, arguments) {
                shutdown(status);
            }
        }
        "exit" => {
            if let Some(status) = status_argument(name, arguments) {
                return Some(ControlFlow::Break(status));
            }
        }
        _ => return None,
    }
    Some(ControlFlow::Continue(()))
}

fn change_directory(arguments: &[&str]) {
    match arguments {
        [] | [_] => {
            let target = arguments.first().copied().unwrap_or("/");
            if let Err(error) = fs::set_current_dir(target) {
                eprintln!("sh: cd: {target}: {error}");
            }
        }
        _ => eprintln!("sh: cd: too many arguments"),
    }
}

/// Opens the file a redirection names; says why if it cannot.
fn open_redirection(path: &str, flags: u64) -> Option<OwnedHandle> {
    match fs::File::open_with(path, flags) {
        Ok(file) => Some(OwnedHandle::from_raw(file.into_raw())),
        Err(error) => {
            eprintln!("sh: {path}: {error}");
            None
        }
    }
}

/// The standard streams of each program of `pipeline`: pipes between neighbours, files for
/// redirections (the last one of each stream wins), else the shell's own. The handles are
/// the shell's until the programs have their copies.
fn connect(pipeline: &[Command]) -> Option<(Vec<[u64; 3]>, Vec<OwnedHandle>)> {
    let mut held = Vec::new();
    let mut streams = Vec::new();
    let mut next_input = 0;
    for (index, command) in pipeline.iter().enumerate() {
        let mut stdio = [next_input, 1, 2];
        if index + 1 < pipeline.len() {
            let (read_end, write_end) = match sys::pipe_create() {
                Ok(ends) => ends,
                Err(error) => {
                    eprintln!("sh: pipe: {error}");
                    return None;
                }
            };
            held.push(OwnedHandle::from_raw(read_end));
            held.push(OwnedHandle::from_raw(write_end));
            stdio[1] = write_end;
            next_input = read_end;
        }
        for redirection in &command.redirections {
            let (slot, path, flags) = match redirection {
                Redirection::Input(path) => (0, path, open::READ),
                Redirection::Output(path, false) => (1, path, open::WRITE | open::CREATE | open::TRUNCATE),
                Redirection::Output(path, true) => (1, path, open::WRITE | open::CREATE | open::APPEND),
                Redirection::Errors(path) => (2, path, open::WRITE | open::CREATE | open::TRUNCATE),
            };
            let file = open_redirection(path, flags)?;
            stdio[slot] = file.raw();
            held.push(file);
        }
        streams.push(stdio);
    }
    Some((streams, held))
}

/// Starts the programs of `pipeline`, connected; in the foreground, waits for them all and
/// reports the last one's non-zero status; in the background, adds them to `jobs`.
fn run_pipeline(pipeline: &[Command], background: bool, jobs: &mut Vec<Process>) {
    let Some((streams, held)) = connect(pipeline) else { return };
    let mut started = Vec::new();
    for (command, stdio) in pipeline.iter().zip(&streams) {
        let argv: Vec<&str> = command.words.iter().map(String::as_str).collect();
        let name = argv[0];
        let mut handles = process::standard_handles_with(*stdio);
        // Each program gets its current directory in a session of its own (or, if fs cannot
        // start one, the shell's), so what it holds in fs is bounded by `fs::JOB_LIMITS`.
        let session = job_session();
        if let (Some(session), Some(directory)) = (&session, handles.get_mut(fs::CWD_HANDLE as usize)) {
            *directory = session.handle().raw() as u32;
        }
        // Only `svc` gets the operator's handle to init's supervisor, as its handle 5.
        if name == "svc" && handles.len() == supervisor::SVC_HANDLE as usize && matches!(userlib::ipc::handle_info(supervisor::SHELL_HANDLE), Ok((Some(abi::handle::Kind::Endpoint), _))) {
            handles.push(supervisor::SHELL_HANDLE as u32);
        }
        match Process::spawn(name, &argv, &handles) {
            Ok(child) => started.push(child),
            Err(Errno(ENOENT)) => eprintln!("sh: {name}: not found"),
            Err(error) => eprintln!("sh: {name}: {error}"),
        }
    }
    // The programs hold their own copies now: the shell's must go, or a reader would never
    // see the end of its pipe.
    drop(held);
    if started.len() < pipeline.len() {
        // The rest ends on its own once its pipes lose their other ends.
        for child in &started {
            let _ = child.kill();
        }
        for child in started {
            let _ = child.wait();
        }
        return;
    }
    if background {
        for child in started {
            println!("[pid {}]", child.pid());
            jobs.push(child);
        }
        return;
    }
    // Until the next prompt Ctrl-C ends the last program (the others end with their pipes).
    if let Some(last) = started.last() {
        let _ = sys::set_foreground(Some(last.child()));
    }
    let count = started.len();
    for (index, child) in started.into_iter().enumerate() {
        let pid = child.pid();
        match child.wait() {
            Ok(info) if info.status == 0 || index + 1 < count => {}
            Ok(info) => println!("[pid {pid} {}]", Ending(info)),
            Err(error) => eprintln!("sh: waiting for pid {pid}: {error}"),
        }
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

/// The current directory in a new session of fs with `fs::JOB_LIMITS`, if fs starts one.
fn job_session() -> Option<fs::File> {
    let current = fs::File::from_raw(fs::current_dir_handle()?);
    let session = current.new_session(fs::JOB_LIMITS);
    // The current directory stays the shell's.
    current.into_raw();
    session.ok()
}

/// Powers off through the power handle the shell was given, if it was.
fn shutdown(status: i32) {
    let power = userlib::ipc::held_handles()
        .unwrap_or_default()
        .into_iter()
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
