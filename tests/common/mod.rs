//! Shared harness for the end-to-end tests: boots Enigma headless through the launcher binary,
//! captures the serial console (the launcher's stdout) and the launcher's and QEMU's stderr,
//! feeds the serial input, and drives QEMU's human monitor over a unix socket (commands, key
//! presses, screenshots).
//!
//! No QEMU outlives its [`Vm`]: dropping a `Vm` (also while a failing test unwinds) kills the
//! launcher, whose QEMU has SIGKILL as its parent-death signal, and waits until QEMU has closed
//! the output pipes. The launcher itself gets SIGKILL when the test process dies, so even a
//! killed test run leaves nothing behind.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a boot to a prompt, or to a short program's end, may take before a test calls
/// it hung. A hang limit, not a speed bound, so generous on purpose: under TCG a loaded host
/// (other QEMUs, busy loops on every core) stretches a boot of a few seconds to minutes,
/// most of it in the firmware and the bootloader (docs/ARCHITECTURE.md, decision 56).
pub const BOOT_LIMIT: Duration = Duration::from_secs(300);
/// The same for one step after the boot: a shell command, a key typed and echoed.
pub const STEP_LIMIT: Duration = Duration::from_secs(120);

/// How long to wait for QEMU to open its monitor socket and for one monitor command.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause after each key typed by [`Vm::sendkeys`].
const KEY_PAUSE: Duration = Duration::from_millis(50);
/// How often [`Vm::wait_exit`] checks whether the launcher has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The human monitor's prompt, which ends every reply.
const PROMPT: &str = "(qemu) ";

/// A running launcher (and its QEMU) started with `--headless`.
pub struct Vm {
    /// The launcher process; QEMU is its child.
    launcher: Child,
    /// The serial console's input, `None` once closed.
    stdin: Option<ChildStdin>,
    /// What the reader threads have collected.
    shared: Arc<Shared>,
    /// The threads reading the launcher's stdout and stderr.
    readers: Vec<JoinHandle<()>>,
    /// Per-VM scratch directory: the monitor socket and screendumps.
    dir: PathBuf,
    /// The monitor socket, if the VM was started with one.
    monitor_path: Option<PathBuf>,
    /// The monitor connection, opened by the first command.
    monitor: Mutex<Option<UnixStream>>,
    /// Numbers the screendump files.
    screendumps: AtomicUsize,
}

/// Output captured by the reader threads.
#[derive(Default)]
struct Captured {
    /// The serial output.
    stdout: Vec<u8>,
    /// The launcher's and QEMU's messages.
    stderr: Vec<u8>,
    /// The launcher's stdout reached end of file: no more serial output will come.
    stdout_closed: bool,
}

/// [`Captured`] plus a condition variable signalled on every change.
#[derive(Default)]
struct Shared {
    captured: Mutex<Captured>,
    changed: Condvar,
}

impl Shared {
    /// Locks the captured output, shrugging off poisoning (the data stays usable).
    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.captured.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Vm {
    /// Starts the launcher with `--headless` and `args`, stdin/stdout/stderr piped. Reader
    /// threads collect stdout (the serial console) and stderr.
    pub fn boot(args: &[&str]) -> Vm {
        let args = args.iter().map(|arg| arg.to_string()).collect();
        Self::start(args, scratch_dir(), None)
    }

    /// Like [`Vm::boot`], and also gives QEMU a human monitor on a unix socket (a QEMU argument
    /// after `--`), used by [`Vm::monitor`], [`Vm::sendkeys`] and [`Vm::screendump`].
    pub fn boot_with_monitor(args: &[&str]) -> Vm {
        let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        if !args.iter().any(|arg| arg == "--") {
            args.push("--".to_owned());
        }
        let dir = scratch_dir();
        let socket = dir.join("monitor.sock");
        args.push("-monitor".to_owned());
        args.push(format!(
            "unix:{},server,nowait",
            socket.display().to_string().replace(',', ",,")
        ));
        Self::start(args, dir, Some(socket))
    }

    /// Starts the launcher; `dir` is the VM's scratch directory, `monitor_path` its monitor
    /// socket if `args` ask QEMU for one.
    fn start(args: Vec<String>, dir: PathBuf, monitor_path: Option<PathBuf>) -> Vm {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enigma"));
        cmd.arg("--headless")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut launcher = spawn_tied_to_test_process(cmd)
            .unwrap_or_else(|e| panic!("cannot start the launcher with {args:?}: {e}"));
        let shared = Arc::new(Shared::default());
        let stdout = launcher.stdout.take().expect("stdout is piped");
        let stderr = launcher.stderr.take().expect("stderr is piped");
        let readers = vec![
            spawn_reader(stdout, Arc::clone(&shared), Stream::Stdout),
            spawn_reader(stderr, Arc::clone(&shared), Stream::Stderr),
        ];
        Vm {
            stdin: launcher.stdin.take(),
            launcher,
            shared,
            readers,
            dir,
            monitor_path,
            monitor: Mutex::new(None),
            screendumps: AtomicUsize::new(0),
        }
    }

    /// Waits until the serial output contains `needle` and returns the output so far. Panics,
    /// showing everything seen (serial output and stderr), after `timeout` or as soon as the
    /// serial output ends without `needle`. The whole output is searched, so a needle that has
    /// already appeared matches at once.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_after(0, needle, timeout)
    }

    /// Like [`Vm::wait_for`], but searches only the serial output from byte `start` on (a value
    /// of [`Vm::output_len`] taken earlier), so only a `needle` that appeared since counts: for
    /// example the next prompt of an interactive program after typing a command.
    pub fn wait_for_after(&self, start: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut captured = self.shared.lock();
        loop {
            let searched = captured.stdout.get(start..).unwrap_or_default();
            let found = needle.is_empty()
                || searched
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes());
            if found {
                return String::from_utf8_lossy(&captured.stdout).into_owned();
            }
            let now = Instant::now();
            if captured.stdout_closed || now >= deadline {
                let why = if captured.stdout_closed {
                    "the VM exited".to_owned()
                } else {
                    format!("timed out after {timeout:?}")
                };
                drop(captured);
                panic!(
                    "{why} waiting for {needle:?} (from byte {start} on)\n{}",
                    self.transcript()
                );
            }
            captured = self
                .shared
                .changed
                .wait_timeout(captured, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The length of the serial output so far in bytes, for [`Vm::wait_for_after`].
    pub fn output_len(&self) -> usize {
        self.shared.lock().stdout.len()
    }

    /// Writes `text` to the serial console's input. If the VM has already exited the text is
    /// dropped; the next [`Vm::wait_for`] or [`Vm::wait_exit`] reports what happened.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("serial input was closed");
        match stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("writing {text:?} to the serial console: {e}"),
        }
    }

    /// Closes the serial console's input (end of file for QEMU).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Runs one human-monitor command and returns its reply (without the echoed command and
    /// the prompt, lines separated by `\n`). Needs [`Vm::boot_with_monitor`].
    pub fn monitor(&self, command: &str) -> String {
        let mut connection = self.monitor.lock().unwrap_or_else(PoisonError::into_inner);
        let stream = match &mut *connection {
            Some(stream) => stream,
            None => connection.insert(self.connect_monitor()),
        };
        let raw = stream
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| read_until_prompt(stream))
            .unwrap_or_else(|e| {
                panic!(
                    "monitor command {command:?} failed: {e}\n{}",
                    self.transcript()
                )
            });
        monitor_reply(&raw)
    }

    /// Types `text` on the guest's keyboard with the monitor's `sendkey`, pausing briefly after
    /// each key. Panics on a character without a key mapping or a key QEMU rejects.
    pub fn sendkeys(&self, text: &str) {
        for c in text.chars() {
            let key = key_for(c).unwrap_or_else(|| panic!("no key mapping for {c:?}"));
            let reply = self.monitor(&format!("sendkey {key}"));
            assert!(
                reply.trim().is_empty(),
                "sendkey {key} (for {c:?}) failed: {reply}"
            );
            thread::sleep(KEY_PAUSE);
        }
    }

    /// Takes a screenshot of the display with the monitor's `screendump`.
    pub fn screendump(&self) -> Screen {
        let n = self.screendumps.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("screen-{n}.ppm"));
        let reply = self.monitor(&format!("screendump {}", path.display()));
        let ppm = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "screendump wrote no {} ({e}); monitor said: {reply}",
                path.display()
            )
        });
        // Best effort: the directory is removed with the VM anyway.
        let _ = std::fs::remove_file(&path);
        Screen::from_ppm(&ppm)
    }

    /// Waits for the launcher to exit and returns its exit status (128 + signal number if a
    /// signal killed it) and the whole serial output. On timeout, kills the VM and panics with
    /// everything seen.
    pub fn wait_exit(mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.launcher.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) => {
                    self.kill();
                    panic!(
                        "the VM did not exit within {timeout:?}\n{}",
                        self.transcript()
                    );
                }
                Err(e) => panic!("waiting for the launcher: {e}"),
            }
        };
        self.join_readers();
        let code = status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .expect("an exit status has a code or a signal");
        (code, self.output())
    }

    /// The launcher's process id (QEMU is its child).
    pub fn launcher_pid(&self) -> u32 {
        self.launcher.id()
    }

    /// The serial output so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().stdout).into_owned()
    }

    /// What the launcher and QEMU wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().stderr).into_owned()
    }

    /// Everything seen so far, for failure messages.
    fn transcript(&self) -> String {
        format!(
            "--- serial output ---\n{}\n--- stderr ---\n{}\n---",
            self.output(),
            self.stderr()
        )
    }

    /// Connects to the monitor socket, retrying while QEMU starts, and reads the greeting.
    fn connect_monitor(&self) -> UnixStream {
        let path = self
            .monitor_path
            .as_ref()
            .expect("monitor commands need Vm::boot_with_monitor");
        let deadline = Instant::now() + MONITOR_TIMEOUT;
        let mut stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => panic!(
                    "cannot connect to the monitor at {}: {e}\n{}",
                    path.display(),
                    self.transcript()
                ),
                Err(_) if self.shared.lock().stdout_closed => panic!(
                    "the VM exited before its monitor could be reached\n{}",
                    self.transcript()
                ),
                Err(_) => thread::sleep(POLL_INTERVAL),
            }
        };
        stream
            .set_read_timeout(Some(MONITOR_TIMEOUT))
            .expect("setting a socket timeout");
        read_until_prompt(&mut stream)
            .unwrap_or_else(|e| panic!("no greeting from the monitor: {e}\n{}", self.transcript()));
        stream
    }

    /// Kills the launcher if it is still running (QEMU follows through its parent-death
    /// signal) and reaps it.
    fn kill(&mut self) {
        if let Ok(None) = self.launcher.try_wait() {
            // Failure means it has exited meanwhile; the wait below reaps it either way.
            let _ = self.launcher.kill();
        }
        let _ = self.launcher.wait();
    }

    /// Waits for the reader threads, which end when every holder of the output pipes (the
    /// launcher and QEMU) has gone.
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
        self.join_readers();
        // Best effort: a leftover scratch directory is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A screenshot: `width * height` pixels, 3 bytes (red, green, blue) each, row by row.
pub struct Screen {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The pixels, `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Screen {
    /// Parses a binary PPM (`P6`, maximum value 255) as written by QEMU's `screendump`.
    pub fn from_ppm(data: &[u8]) -> Screen {
        let mut rest = data;
        let mut fields = [0usize; 3];
        let magic = next_ppm_token(&mut rest);
        assert_eq!(magic, b"P6", "not a binary PPM");
        for field in &mut fields {
            let token = next_ppm_token(&mut rest);
            *field = std::str::from_utf8(token)
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("bad PPM header field {token:?}"));
        }
        let [width, height, max] = fields;
        assert_eq!(max, 255, "PPM with maximum value {max}");
        // Exactly one whitespace byte separates the header from the pixels.
        let pixels = rest.get(1..).expect("PPM without pixel data");
        assert_eq!(
            pixels.len(),
            width * height * 3,
            "PPM size does not match {width}x{height}"
        );
        Screen {
            width,
            height,
            rgb: pixels.to_vec(),
        }
    }

    /// The pixels as `[red, green, blue]`.
    fn pixels(&self) -> &[[u8; 3]] {
        self.rgb.as_chunks::<3>().0
    }

    /// The number of different colours on the screen.
    pub fn distinct_colours(&self) -> usize {
        self.pixels().iter().collect::<HashSet<_>>().len()
    }

    /// The fraction of pixels that differ from the background, taken to be the most common
    /// colour; 0.0 for an empty screen.
    pub fn non_background_fraction(&self) -> f64 {
        let mut counts = HashMap::new();
        for pixel in self.pixels() {
            *counts.entry(pixel).or_insert(0usize) += 1;
        }
        let total: usize = counts.values().sum();
        let background = counts.values().copied().max().unwrap_or(0);
        if total == 0 {
            0.0
        } else {
            (total - background) as f64 / total as f64
        }
    }
}

/// Takes the next whitespace-separated token of a PPM header from `rest`, skipping `#`
/// comments.
fn next_ppm_token<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    loop {
        match rest.first() {
            Some(byte) if byte.is_ascii_whitespace() => *rest = &rest[1..],
            Some(b'#') => {
                let end = rest.iter().position(|&byte| byte == b'\n');
                *rest = &rest[end.unwrap_or(rest.len())..];
            }
            _ => break,
        }
    }
    let end = rest.iter().position(u8::is_ascii_whitespace);
    let (token, tail) = rest.split_at(end.unwrap_or(rest.len()));
    *rest = tail;
    token
}

/// Boots headless with `args`, writes `stdin` to the serial console and closes it, and waits
/// up to `timeout` for the exit: returns the launcher's exit status and the serial output.
pub fn run(args: &[&str], stdin: &str, timeout: Duration) -> (i32, String) {
    let mut vm = Vm::boot(args);
    vm.send(stdin);
    vm.close_stdin();
    vm.wait_exit(timeout)
}

/// Which of the launcher's output streams a reader thread collects.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Starts a thread appending everything from `source` to the `stream` part of `shared`.
fn spawn_reader(
    mut source: impl Read + Send + 'static,
    shared: Arc<Shared>,
    stream: Stream,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = match source.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            let mut captured = shared.lock();
            match (n, stream) {
                (0, Stream::Stdout) => captured.stdout_closed = true,
                (0, Stream::Stderr) => {}
                (_, Stream::Stdout) => captured.stdout.extend_from_slice(&buf[..n]),
                (_, Stream::Stderr) => captured.stderr.extend_from_slice(&buf[..n]),
            }
            shared.changed.notify_all();
            if n == 0 {
                return;
            }
        }
    })
}

/// A request to the spawner thread: the command and where to send the result.
type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` with SIGKILL as its parent-death signal, from one thread that lives as long as
/// the test process. (The signal fires when the spawning *thread* ends, so spawning from a
/// test's own thread would kill a VM handed to another thread when the test thread finishes.)
fn spawn_tied_to_test_process(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::spawn(move || {
            for (mut cmd, reply) in incoming {
                // The requester waits for the reply; if it is gone, so is the need.
                let _ = reply.send(cmd.spawn());
            }
        });
        requests
    });
    let test_process = std::process::id();
    // SAFETY: the hook runs in the forked child before exec and only calls the
    // async-signal-safe `prctl` and `getppid`, building errors without allocating. The
    // `getppid` check catches a test process that died before the signal was armed.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != test_process {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply, result) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .expect("the spawner thread lives as long as the process");
    result
        .recv()
        .expect("the spawner thread answers every request")
}

/// A fresh scratch directory for one VM under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("enigma-vm-{}-{n}", std::process::id()));
    // A directory left by an earlier process with the same pid may be in the way.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Reads monitor output up to and including the next prompt (or the end of the connection,
/// as after `quit`).
fn read_until_prompt(stream: &mut UnixStream) -> io::Result<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.ends_with(PROMPT.as_bytes()) {
        match stream.read(&mut buf)? {
            0 => break,
            n => raw.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The reply in a monitor transcript: QEMU first echoes the command line (redrawn with cursor
/// escapes) up to `\r\n`, then prints the reply and a new prompt.
fn monitor_reply(raw: &str) -> String {
    let without_prompt = raw.strip_suffix(PROMPT).unwrap_or(raw);
    let reply = without_prompt
        .split_once("\r\n")
        .map_or("", |(_echo, reply)| reply);
    reply.replace("\r\n", "\n")
}

/// The QEMU key name (as `sendkey` takes it) that types `c` on a US keyboard.
fn key_for(c: char) -> Option<String> {
    let plain = |name: &str| Some(name.to_owned());
    let shifted = |name: &str| Some(format!("shift-{name}"));
    match c {
        'a'..='z' | '0'..='9' => Some(c.to_string()),
        'A'..='Z' => shifted(&c.to_ascii_lowercase().to_string()),
        ' ' => plain("spc"),
        '\n' => plain("ret"),
        '\t' => plain("tab"),
        '\u{8}' => plain("backspace"),
        '-' => plain("minus"),
        '=' => plain("equal"),
        '.' => plain("dot"),
        ',' => plain("comma"),
        '/' => plain("slash"),
        '\\' => plain("backslash"),
        ';' => plain("semicolon"),
        '\'' => plain("apostrophe"),
        '`' => plain("grave_accent"),
        '[' => plain("bracket_left"),
        ']' => plain("bracket_right"),
        '!' => shifted("1"),
        '@' => shifted("2"),
        '#' => shifted("3"),
        '$' => shifted("4"),
        '%' => shifted("5"),
        '^' => shifted("6"),
        '&' => shifted("7"),
        '*' => shifted("8"),
        '(' => shifted("9"),
        ')' => shifted("0"),
        '_' => shifted("minus"),
        '+' => shifted("equal"),
        '>' => shifted("dot"),
        '<' => shifted("comma"),
        '?' => shifted("slash"),
        '|' => shifted("backslash"),
        ':' => shifted("semicolon"),
        '"' => shifted("apostrophe"),
        '~' => shifted("grave_accent"),
        '{' => shifted("bracket_left"),
        '}' => shifted("bracket_right"),
        _ => None,
    }
}

/// The names of the user programs in the repository (`userspace/src/bin/`: a file `NAME.rs`,
/// or a directory `NAME/` with a `main.rs`), sorted: what the boot ramdisk's `/bin` holds.
pub fn repository_programs() -> Vec<String> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("userspace/src/bin");
    let mut programs: Vec<String> = std::fs::read_dir(&bin)
        .expect("reading userspace/src/bin")
        .filter_map(|entry| {
            let path = entry.expect("a directory entry").path();
            match path.extension() {
                Some(extension) if extension == "rs" => path.file_stem().map(|stem| stem.to_string_lossy().into_owned()),
                None if path.join("main.rs").is_file() => path.file_name().map(|name| name.to_string_lossy().into_owned()),
                _ => None,
            }
        })
        .collect();
    programs.sort();
    programs
}
