//! The Enigma launcher: boots the kernel's BIOS or UEFI disk image (built by `build.rs`) in
//! `qemu-system-x86_64`, wires the serial console to this process's stdin/stdout, passes the
//! kernel command line and in-kernel-test selector through fw_cfg, and turns QEMU's exit status
//! back into the code the kernel wrote to the isa-debug-exit port.
//!
//! stdout carries exactly the serial output; the launcher's own messages go to stderr. See
//! [`USAGE`] for the flags and exit statuses.
//!
//! With `--gdb`, QEMU starts paused with its gdb stub on a local TCP port, and the launcher
//! prints the gdb command that attaches to it with the kernel's symbols and the first
//! program's ([`gdb_command`]).

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::mem::MaybeUninit;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, Command, ExitCode, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The QEMU binary; also the prefix of its error messages.
const QEMU: &str = "qemu-system-x86_64";
/// The UEFI firmware used with `--uefi`.
const OVMF: &str = "/usr/share/OVMF/OVMF_CODE.fd";
/// fw_cfg file holding the kernel command line (`--init`).
const CMDLINE_FILE: &str = "opt/enigma/cmdline";
/// fw_cfg file naming the in-kernel test to run (`--ktest`).
const KTEST_FILE: &str = "opt/enigma/ktest";
/// The gdb stub's port when `--gdb` names none (gdb's and QEMU's usual one).
const DEFAULT_GDB_PORT: u16 = 1234;
/// The program the kernel starts when `--init` names none.
const DEFAULT_INIT: &str = "init";

/// Exit status for a bad flag or a QEMU that could not start.
const EXIT_LAUNCHER_ERROR: u8 = 2;
/// Exit status when `--timeout` expired.
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when QEMU ended without a status from the kernel.
const EXIT_NO_STATUS: u8 = 125;

/// CPUs a machine gets without `--smp`.
const DEFAULT_CPUS: u8 = 2;
/// The most CPUs the kernel runs on (`cpu::MAX_CPUS`).
const MAX_CPUS: u8 = 8;

/// How often the launcher checks on QEMU while a `--timeout` runs.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long QEMU gets to shut down (and restore the terminal) after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// The `--help` text.
const USAGE: &str = "\
Usage: enigma [OPTIONS] [-- QEMU_ARGS...]

Boots Enigma in qemu-system-x86_64. The serial console is this program's stdin/stdout.

Options:
  --uefi              boot the UEFI image with OVMF (default: the BIOS image)
  --headless          no window (also the fallback when $DISPLAY and $WAYLAND_DISPLAY are unset)
  --icount            deterministic timing under TCG (-icount shift=0)
  --smp N             give the machine N CPUs, 1 to 8 (default 2)
  --timeout SECS      kill QEMU after SECS seconds and exit 124
  --init \"PROG ARGS\"  kernel command line: the first user program and its arguments
  --ktest NAME        run the in-kernel test NAME
  --gdb[=PORT]        start paused, with QEMU's gdb stub on 127.0.0.1:PORT (default 1234), and
                      print the gdb command that attaches with the kernel's and the first
                      program's symbols
  -h, --help          show this help
  -- QEMU_ARGS...     pass everything after `--` to QEMU unchanged

When stdin is a terminal, Ctrl-C goes to Enigma and Ctrl-A X quits QEMU.

Exit status: the code the kernel wrote to isa-debug-exit (0 clean shutdown, 101 kernel panic);
124 timeout; 125 QEMU ended without a code from the kernel (triple fault, window closed,
monitor `quit`, signal); 2 bad flag or QEMU failed to start.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Invocation {
    /// Boot Enigma.
    Run(Options),
    /// Print [`USAGE`].
    Help,
}

/// The parsed flags of a boot.
#[derive(Debug, Default, PartialEq)]
struct Options {
    /// Boot the UEFI image under OVMF instead of the BIOS image.
    uefi: bool,
    /// Never open a window.
    headless: bool,
    /// Pass `-icount shift=0`.
    icount: bool,
    /// CPUs (`-smp`); `None` means [`DEFAULT_CPUS`].
    cpus: Option<u8>,
    /// Kill QEMU after this long.
    timeout: Option<Duration>,
    /// Kernel command line, passed as fw_cfg file [`CMDLINE_FILE`].
    init: Option<String>,
    /// In-kernel test name, passed as fw_cfg file [`KTEST_FILE`].
    ktest: Option<String>,
    /// Wait for gdb on this local port.
    gdb: Option<u16>,
    /// Arguments after `--`, appended to QEMU's.
    qemu_args: Vec<OsString>,
}

/// How the serial console is connected to the launcher's stdin/stdout.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Console {
    /// stdin is a terminal: raw mode, monitor muxed behind Ctrl-A, Ctrl-C to the guest.
    Terminal,
    /// stdin is a pipe or file: plain `-serial stdio`.
    Pipe,
}

/// Parses the arguments, then boots Enigma or prints the help or a usage error.
fn main() -> ExitCode {
    match parse_args(std::env::args_os().skip(1)) {
        Ok(Invocation::Run(options)) => ExitCode::from(run(&options)),
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprint!("enigma: {message}\n\n{USAGE}");
            ExitCode::from(EXIT_LAUNCHER_ERROR)
        }
    }
}

/// Parses the launcher's arguments (without the program name).
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|arg| format!("argument {arg:?} is not valid UTF-8"))?;
        if arg == "--" {
            options.qemu_args = args.collect();
            break;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let switch = |on: &mut bool| match inline_value {
            Some(_) => Err(format!("{flag} takes no value")),
            None => {
                *on = true;
                Ok(())
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--uefi" => switch(&mut options.uefi)?,
            "--headless" => switch(&mut options.headless)?,
            "--icount" => switch(&mut options.icount)?,
            "--timeout" => {
                let value = flag_value(flag, inline_value, &mut args)?;
                options.timeout = Some(parse_timeout(&value)?);
            }
            "--smp" => options.cpus = Some(parse_cpus(&flag_value(flag, inline_value, &mut args)?)?),
            "--init" => options.init = Some(non_empty_value(flag, inline_value, &mut args)?),
            "--ktest" => options.ktest = Some(non_empty_value(flag, inline_value, &mut args)?),
            "--gdb" => options.gdb = Some(parse_gdb_port(inline_value.as_deref())?),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    Ok(Invocation::Run(options))
}

/// The value of `flag`: the part after `=`, or else the next argument.
fn flag_value(
    flag: &str,
    inline_value: Option<String>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<String, String> {
    match inline_value {
        Some(value) => Ok(value),
        None => rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .into_string()
            .map_err(|value| format!("the value {value:?} of {flag} is not valid UTF-8")),
    }
}

/// Like [`flag_value`], rejecting an empty value (QEMU refuses empty fw_cfg strings).
fn non_empty_value(
    flag: &str,
    inline_value: Option<String>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<String, String> {
    let value = flag_value(flag, inline_value, rest)?;
    if value.is_empty() {
        return Err(format!("{flag} needs a non-empty value"));
    }
    Ok(value)
}

/// Parses `--smp`'s value: a whole number of CPUs from 1 to [`MAX_CPUS`].
fn parse_cpus(value: &str) -> Result<u8, String> {
    value
        .parse::<u8>()
        .ok()
        .filter(|cpus| (1..=MAX_CPUS).contains(cpus))
        .ok_or_else(|| format!("--smp needs a number of CPUs from 1 to {MAX_CPUS}, not `{value}`"))
}

/// Parses `--timeout`'s value: a positive number of seconds, fractions allowed.
fn parse_timeout(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("--timeout needs a positive number of seconds, not `{value}`"))
}

/// Parses `--gdb`'s optional value: a TCP port, [`DEFAULT_GDB_PORT`] when absent.
fn parse_gdb_port(value: Option<&str>) -> Result<u16, String> {
    match value {
        None => Ok(DEFAULT_GDB_PORT),
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("--gdb needs a TCP port from 1 to 65535, not `{text}`")),
    }
}

/// The gdb command that attaches to a VM started with `--gdb` on `port`: the kernel's
/// symbols at the address the kernel is loaded at, the symbols of the first program (if it
/// is one of the built programs), then the connection.
fn gdb_command(options: &Options, port: u16) -> String {
    let symbols = std::path::Path::new(env!("SYMBOLS_DIR"));
    let mut command = format!(
        "gdb -q -ex 'symbol-file -o {:#x} {}'",
        abi::memory::KERNEL_IMAGE_BASE,
        symbols.join("kernel").display()
    );
    let init = options.init.as_deref().unwrap_or(DEFAULT_INIT);
    let program = symbols.join(init.split_whitespace().next().unwrap_or(DEFAULT_INIT));
    if program.is_file() {
        command.push_str(&format!(" -ex 'add-symbol-file {}'", program.display()));
    }
    command.push_str(&format!(" -ex 'target remote 127.0.0.1:{port}'"));
    command
}

/// Escapes a value for QEMU's option syntax, where `,` separates properties and `,,` is a
/// literal comma.
fn escape_commas(value: &str) -> String {
    value.replace(',', ",,")
}

/// The `-fw_cfg` argument that exposes `text` to the guest as the fw_cfg file `name`.
fn fw_cfg_string(name: &str, text: &str) -> String {
    format!("name={name},string={}", escape_commas(text))
}

/// Builds the QEMU command line for `options`, with the serial console wired as `console` and
/// a window only if `window`. Standard streams and the death signal are set up by [`spawn`].
fn qemu_command(options: &Options, console: Console, window: bool) -> Command {
    let image = if options.uefi {
        env!("UEFI_IMAGE")
    } else {
        env!("BIOS_IMAGE")
    };
    let mut cmd = Command::new(QEMU);
    // `snapshot=on`: guest writes go to a throw-away overlay, so the image stays as built and
    // is opened read-only, which lets several VMs (say, parallel tests) share it; without it,
    // QEMU's image lock fails every boot but the first.
    cmd.arg("-drive").arg(format!(
        "format=raw,snapshot=on,file={}",
        escape_commas(image)
    ));
    if options.uefi {
        cmd.args(["-bios", OVMF]);
    }
    cmd.args([
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-cpu",
        "max",
        "-m",
        "256M",
        "-smp",
    ]);
    cmd.arg(options.cpus.unwrap_or(DEFAULT_CPUS).to_string());
    if !window {
        cmd.args(["-display", "none"]);
    }
    match console {
        Console::Terminal => cmd.args([
            "-chardev",
            "stdio,id=console,mux=on,signal=off",
            "-serial",
            "chardev:console",
            "-mon",
            "chardev=console",
        ]),
        Console::Pipe => cmd.args(["-serial", "stdio"]),
    };
    // COM2, connected to nothing: a spare device (IRQ 3) that `usertests` and `bench` drive
    // through device handles without disturbing the console's.
    cmd.args(["-serial", "null"]);
    if options.icount {
        cmd.args(["-icount", "shift=0"]);
    }
    if let Some(init) = &options.init {
        cmd.arg("-fw_cfg").arg(fw_cfg_string(CMDLINE_FILE, init));
    }
    if let Some(ktest) = &options.ktest {
        cmd.arg("-fw_cfg").arg(fw_cfg_string(KTEST_FILE, ktest));
    }
    if let Some(port) = options.gdb {
        // Only this machine may attach; `-S` holds the CPU until gdb says `continue`.
        cmd.arg("-gdb").arg(format!("tcp:127.0.0.1:{port}")).arg("-S");
    }
    cmd.args(&options.qemu_args);
    cmd
}

/// Boots Enigma as `options` asks and returns the launcher's exit status.
fn run(options: &Options) -> u8 {
    let console = if io::stdin().is_terminal() {
        Console::Terminal
    } else {
        Console::Pipe
    };
    let window = !options.headless && display_available();
    if !options.headless && !window {
        note("neither $DISPLAY nor $WAYLAND_DISPLAY is set; running headless");
    }
    let saved_terminal = match console {
        Console::Terminal => {
            note("serial console on this terminal: Ctrl-C goes to Enigma, Ctrl-A X quits QEMU");
            SavedTerminal::save()
        }
        Console::Pipe => None,
    };

    if let Some(port) = options.gdb {
        note(&format!(
            "QEMU waits for gdb on 127.0.0.1:{port}; attach from another terminal with\n  {}",
            gdb_command(options, port)
        ));
    }
    let mut child = match spawn(qemu_command(options, console, window)) {
        Ok(child) => child,
        Err(e) => {
            note(&format!("cannot start {QEMU}: {e}"));
            return EXIT_LAUNCHER_ERROR;
        }
    };
    let stderr = child
        .stderr
        .take()
        .expect("QEMU's stderr is piped by spawn()");
    let stderr_forwarder = forward_stderr(stderr);

    let status = wait(&mut child, options.timeout);
    if status.is_err() {
        // QEMU's state is unknown: make sure it is gone before waiting for its stderr to close.
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(terminal) = &saved_terminal {
        terminal.restore();
    }
    let qemu_reported_error = stderr_forwarder.join().unwrap_or(false);

    let (code, message) = match status {
        Ok(Some(status)) => exit_code(status, qemu_reported_error),
        Ok(None) => {
            let secs = options.timeout.unwrap_or_default().as_secs_f64();
            (
                EXIT_TIMEOUT,
                Some(format!("timed out after {secs} s; killed QEMU")),
            )
        }
        Err(e) => (
            EXIT_LAUNCHER_ERROR,
            Some(format!("waiting for QEMU failed: {e}")),
        ),
    };
    if let Some(message) = message {
        note(&message);
    }
    code
}

/// Prints one of the launcher's own messages on stderr.
fn note(message: &str) {
    eprintln!("enigma: {message}");
}

/// Whether a graphical session is there for QEMU's window.
fn display_available() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|value| !value.is_empty()))
}

/// Starts QEMU with stdin/stdout inherited (the serial console), stderr piped (so start-up
/// errors can be recognised) and SIGKILL as its parent-death signal, so it never outlives the
/// launcher.
fn spawn(mut cmd: Command) -> io::Result<Child> {
    let launcher = std::process::id();
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    // SAFETY: the hook runs in the forked child before exec; it only calls `prctl` and
    // `getppid` (async-signal-safe) and builds errors without allocating. The `getppid` check
    // catches a launcher that died before the death signal was armed.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != launcher {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Copies QEMU's stderr to the launcher's stderr line by line as it arrives. The thread returns
/// whether QEMU printed an error line (see [`is_qemu_error`]).
fn forward_stderr(stderr: ChildStderr) -> JoinHandle<bool> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut saw_error = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return saw_error,
                Ok(_) => {
                    saw_error |= is_qemu_error(&String::from_utf8_lossy(&line));
                    let mut out = io::stderr().lock();
                    // Nowhere to report a failing stderr; keep draining QEMU's.
                    let _ = out.write_all(&line).and_then(|()| out.flush());
                }
            }
        }
    })
}

/// Whether a line of QEMU's stderr is an error (as opposed to a warning or other chatter).
fn is_qemu_error(line: &str) -> bool {
    line.strip_prefix(QEMU)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| !rest.trim_start().starts_with("warning"))
}

/// Waits for QEMU to exit. With a timeout, QEMU is stopped when it expires (SIGTERM, so it can
/// restore the terminal; SIGKILL if it is still there after [`TERMINATE_GRACE`]) and the result
/// is `None`.
fn wait(child: &mut Child, timeout: Option<Duration>) -> io::Result<Option<ExitStatus>> {
    let Some(timeout) = timeout else {
        return child.wait().map(Some);
    };
    if let Some(status) = wait_until(child, Instant::now() + timeout)? {
        return Ok(Some(status));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit in pid_t");
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is our unreaped child, so it
    // cannot have been reused by another process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    if wait_until(child, Instant::now() + TERMINATE_GRACE)?.is_none() {
        child.kill()?;
        child.wait()?;
    }
    Ok(None)
}

/// Polls `child` until it exits (its status) or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Maps QEMU's exit status to the launcher's, with a note to print if the kernel did not choose
/// it. `qemu_reported_error` says whether QEMU printed an error line, which tells a start-up
/// failure (exit 1) from the kernel writing 0 to isa-debug-exit (also exit 1).
fn exit_code(status: ExitStatus, qemu_reported_error: bool) -> (u8, Option<String>) {
    match status.code() {
        None => (
            EXIT_NO_STATUS,
            Some(format!(
                "QEMU was killed by signal {}",
                status.signal().unwrap_or_default()
            )),
        ),
        Some(0) => (
            EXIT_NO_STATUS,
            Some(
                "QEMU exited without a status from the kernel \
                 (triple fault, window closed, Ctrl-A X or monitor `quit`)"
                    .to_owned(),
            ),
        ),
        Some(1) if qemu_reported_error => (
            EXIT_LAUNCHER_ERROR,
            Some("QEMU failed to start (its error is above)".to_owned()),
        ),
        Some(code) if code & 1 == 1 => {
            // isa-debug-exit makes QEMU exit with (value << 1) | 1, truncated to 8 bits.
            let kernel_code = u8::try_from(code >> 1).expect("exit statuses fit in 8 bits");
            (kernel_code, None)
        }
        Some(code) => (
            EXIT_LAUNCHER_ERROR,
            Some(format!("QEMU exited with unexpected status {code}")),
        ),
    }
}

/// The terminal settings of stdin, saved before QEMU switches the terminal to raw mode, so they
/// can be put back even when QEMU dies without restoring them.
struct SavedTerminal(libc::termios);

impl SavedTerminal {
    /// Saves stdin's terminal settings; `None` if they cannot be read.
    fn save() -> Option<Self> {
        let mut termios = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: the pointer is valid for writing a `termios`, which `tcgetattr` fills in
        // completely when it returns 0.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, termios.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: `tcgetattr` succeeded, so `termios` is initialised.
        Some(Self(unsafe { termios.assume_init() }))
    }

    /// Puts the saved settings back.
    fn restore(&self) {
        // SAFETY: `self.0` is a valid `termios` obtained from `tcgetattr`. A failure leaves the
        // terminal as it is, which is all that can be done.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Invocation, String> {
        parse_args(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Invocation::Run(options)) => options,
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn args_of(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|arg| arg.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn no_flags_gives_defaults() {
        assert_eq!(options(&[]), Options::default());
    }

    #[test]
    fn every_flag() {
        let parsed = options(&[
            "--uefi",
            "--headless",
            "--icount",
            "--smp",
            "4",
            "--timeout",
            "30",
            "--init",
            "shell -x",
            "--ktest",
            "frames",
            "--gdb",
        ]);
        assert_eq!(
            parsed,
            Options {
                uefi: true,
                headless: true,
                icount: true,
                cpus: Some(4),
                timeout: Some(Duration::from_secs(30)),
                init: Some("shell -x".to_owned()),
                ktest: Some("frames".to_owned()),
                gdb: Some(DEFAULT_GDB_PORT),
                qemu_args: Vec::new(),
            }
        );
    }

    #[test]
    fn values_after_equals_sign() {
        let parsed = options(&["--timeout=1.5", "--init=echo a=b", "--ktest=heap", "--gdb=4321"]);
        assert_eq!(parsed.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(parsed.gdb, Some(4321));
        assert_eq!(parsed.init.as_deref(), Some("echo a=b"));
        assert_eq!(parsed.ktest.as_deref(), Some("heap"));
    }

    #[test]
    fn value_may_start_with_dashes() {
        assert_eq!(
            options(&["--init", "--weird"]).init.as_deref(),
            Some("--weird")
        );
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["--help"]), Ok(Invocation::Help));
        assert_eq!(parse(&["--uefi", "-h"]), Ok(Invocation::Help));
    }

    #[test]
    fn everything_after_double_dash_goes_to_qemu() {
        let parsed = options(&[
            "--headless",
            "--",
            "-monitor",
            "unix:/tmp/m,server,nowait",
            "--uefi",
            "--",
        ]);
        assert!(parsed.headless);
        assert!(!parsed.uefi);
        assert_eq!(
            parsed.qemu_args,
            ["-monitor", "unix:/tmp/m,server,nowait", "--uefi", "--"].map(OsString::from)
        );
    }

    #[test]
    fn errors() {
        for bad in [
            &["--bogus"][..],
            &["positional"],
            &["-u"],
            &["--timeout"],
            &["--timeout", "soon"],
            &["--timeout", "0"],
            &["--timeout", "-3"],
            &["--timeout", "inf"],
            &["--init"],
            &["--init", ""],
            &["--ktest"],
            &["--ktest="],
            &["--uefi=yes"],
            &["--headless=1"],
            &["--gdb=0"],
            &["--gdb=65536"],
            &["--gdb=port"],
            &["--smp"],
            &["--smp", "0"],
            &["--smp", "9"],
            &["--smp", "two"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse(&["--bogus"]),
            Err("unknown argument `--bogus`".to_owned())
        );
        assert_eq!(parse(&["--init"]), Err("--init needs a value".to_owned()));
    }

    #[test]
    fn commas_are_doubled() {
        assert_eq!(escape_commas("plain"), "plain");
        assert_eq!(escape_commas("a,b,,c,"), "a,,b,,,,c,,");
        assert_eq!(
            fw_cfg_string(CMDLINE_FILE, "echo 1,2"),
            "name=opt/enigma/cmdline,string=echo 1,,2"
        );
    }

    #[test]
    fn kernel_codes_are_recovered() {
        assert_eq!(exit_code(exited(1), false), (0, None));
        assert_eq!(exit_code(exited(3), false), (1, None));
        assert_eq!(exit_code(exited(203), false), (101, None));
        assert_eq!(exit_code(exited(255), false), (127, None));
        // An error line only matters when it explains an exit status of 1.
        assert_eq!(exit_code(exited(203), true), (101, None));
    }

    #[test]
    fn endings_without_kernel_code() {
        assert_eq!(exit_code(exited(0), false).0, EXIT_NO_STATUS);
        let (code, note) = exit_code(ExitStatus::from_raw(libc::SIGKILL), false);
        assert_eq!(code, EXIT_NO_STATUS);
        assert!(note.unwrap().contains("signal 9"));
        assert_eq!(exit_code(exited(1), true).0, EXIT_LAUNCHER_ERROR);
        assert_eq!(exit_code(exited(2), false).0, EXIT_LAUNCHER_ERROR);
    }

    #[test]
    fn error_lines_are_told_from_warnings() {
        assert!(is_qemu_error(
            "qemu-system-x86_64: -bogus: invalid option\n"
        ));
        assert!(is_qemu_error(
            "qemu-system-x86_64: -drive format=raw,file=x: Could not open 'x'"
        ));
        assert!(!is_qemu_error(
            "qemu-system-x86_64: warning: host doesn't support feature\n"
        ));
        assert!(!is_qemu_error("some other output"));
        assert!(!is_qemu_error("qemu-system-x86_64-extra: thing"));
    }

    #[test]
    fn piped_headless_command() {
        let opts = options(&[
            "--icount",
            "--init",
            "sh -c a,b",
            "--ktest",
            "t",
            "--",
            "-S",
        ]);
        let args = args_of(&qemu_command(&opts, Console::Pipe, false));
        let expected_start = [
            "-drive".to_owned(),
            format!(
                "format=raw,snapshot=on,file={}",
                escape_commas(env!("BIOS_IMAGE"))
            ),
        ];
        assert_eq!(args[..2], expected_start);
        let rest = args[2..].join(" ");
        assert_eq!(
            rest,
            "-no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -cpu max -m 256M -smp 2 \
             -display none -serial stdio -serial null -icount shift=0 \
             -fw_cfg name=opt/enigma/cmdline,string=sh -c a,,b \
             -fw_cfg name=opt/enigma/ktest,string=t -S"
        );
    }

    #[test]
    fn gdb_waits_on_a_local_port_and_gets_the_symbols() {
        let opts = options(&["--gdb=4321", "--init", "hello one"]);
        let args = args_of(&qemu_command(&opts, Console::Pipe, false)).join(" ");
        assert!(args.ends_with(" -gdb tcp:127.0.0.1:4321 -S"), "{args}");
        let symbols = env!("SYMBOLS_DIR");
        let command = gdb_command(&opts, 4321);
        assert_eq!(
            command,
            format!(
                "gdb -q -ex 'symbol-file -o 0xffff880000000000 {symbols}/kernel' \
                 -ex 'add-symbol-file {symbols}/hello' -ex 'target remote 127.0.0.1:4321'"
            )
        );
        let default_init = gdb_command(&options(&["--gdb"]), DEFAULT_GDB_PORT);
        assert!(default_init.contains(&format!("add-symbol-file {symbols}/init'")), "{default_init}");
        let unknown = gdb_command(&options(&["--init", "no-such-program"]), 1);
        assert!(!unknown.contains("add-symbol-file"), "{unknown}");
    }

    #[test]
    fn terminal_window_uefi_command() {
        let args = args_of(&qemu_command(
            &options(&["--uefi"]),
            Console::Terminal,
            true,
        ));
        assert!(args[1].contains(&escape_commas(env!("UEFI_IMAGE"))));
        assert_eq!(args[2..4], ["-bios", OVMF]);
        let joined = args.join(" ");
        assert!(joined.ends_with(
            "-chardev stdio,id=console,mux=on,signal=off -serial chardev:console -mon chardev=console -serial null"
        ));
        assert!(!joined.contains("-display"));
        assert!(!joined.contains("-fw_cfg"));
        assert!(!joined.contains("-icount"));
    }
}
