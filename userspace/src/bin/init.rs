//! `init`: the first process (pid 1), and the only one the kernel starts, from the boot
//! ramdisk. It holds the root handles the kernel gives it (the console as 0, 1 and 2, the
//! power handle as 3, the ramdisk, read-only, as 4, and the device handles and the kernel's
//! log as `abi::init_handles` numbers them) and hands each program it starts only what that
//! program needs:
//!
//! - `names`, the name server (from the ramdisk): the console and the receiving end of a new
//!   endpoint (as 3);
//! - `fs`, the file system (from the ramdisk): the console, the receiving end of another new
//!   endpoint (as 3) and the ramdisk (as 4). Init registers a handle to that endpoint with
//!   badge 0, which fs serves as its root directory, with the name service as `fs`;
//! - `sh`, the shell, read from the file system: the console, the name service (as 3), the
//!   root directory as its current directory (4), and the power handle (as 5), so that
//!   `shutdown` works from the shell; the programs the shell starts get only the first five.
//!
//! - the name service also gets, registered as `log`, a copy of the kernel's log that may only
//!   be read, for `dmesg`.
//!
//! Then it supervises them: whenever one ends it says how and starts it again (a restarted
//! server has a new endpoint, and the root directory is registered again).
//!
//! With arguments (the kernel's command line, `--init "PROG ARGS"` in the launcher), init
//! starts the servers and then runs `PROG ARGS` instead of the shell, with the shell's
//! handles and, as 6 to 10, the spare devices tests and `bench` drive: the log (READ and
//! WRITE), COM2's line and ports, the keyboard's line (bound by the console, so binding it
//! is refused) and the framebuffer, read-only. It exits with the program's status when it
//! ends (which powers the machine off with it); 127 if it cannot be started.
#![no_std]
#![no_main]

use tar_no_std::TarArchiveRef;
use userlib::ipc::{Endpoint, SharedMemory};
use userlib::process::Ending;
use userlib::sys::{self, Child};
use userlib::time::{self, Duration};
use userlib::{args, eprintln, fs, names, println};

userlib::main!(main);

use abi::init_handles::{FRAMEBUFFER, KEYBOARD_IRQ, LOG, POWER, RAMDISK, SPARE_IRQ, SPARE_PORTS};
use abi::handle::rights;
use userlib::ipc::OwnedHandle;
/// The pause before trying again when starting a program fails.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// The status when the program named on the command line cannot be started.
const NOT_STARTED: i32 = 127;

/// A supervised program.
struct Service {
    name: &'static str,
    running: Option<Child>,
}

impl Service {
    const fn new(name: &'static str) -> Self {
        Self { name, running: None }
    }

    /// Forgets the process if `handle` was its handle; whether it was.
    fn ended(&mut self, handle: u64, info: abi::ExitInfo) -> bool {
        if !self.running.is_some_and(|child| child.handle == handle) {
            return false;
        }
        let pid = self.running.take().map_or(0, |child| child.pid);
        println!("init: {} (pid {pid}) {}; starting it again", self.name, Ending(info));
        true
    }
}

fn main() -> i32 {
    let ramdisk_handle = SharedMemory::from_raw(RAMDISK);
    // SAFETY: the kernel gives init the ramdisk with READ only, and no handle to it can gain
    // WRITE, so nothing ever writes it.
    let mapped = unsafe { ramdisk_handle.map_read_only_forever() };
    // The handle stays: fs gets a copy of it.
    ramdisk_handle.into_raw();
    let ramdisk = match mapped {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("init: cannot map the ramdisk: {error}");
            return 1;
        }
    };
    let mut names = Service::new("names");
    let mut file_system = Service::new("fs");
    let mut shell = Service::new("sh");
    let mut lookup = start_names(&mut names, ramdisk);
    register_log(&lookup);
    let mut root = start_fs(&mut file_system, ramdisk, &lookup);
    if let [_, program, ..] = args() {
        return run_program(program, &args()[1..], &lookup, &root);
    }
    start_shell(&mut shell, &lookup, &root);
    loop {
        match sys::wait(None) {
            Ok((handle, info)) => {
                let names_ended = names.ended(handle, info);
                let fs_ended = file_system.ended(handle, info);
                shell.ended(handle, info);
                if names_ended {
                    lookup = start_names(&mut names, ramdisk);
                    register_log(&lookup);
                }
                if names_ended || fs_ended {
                    root = if fs_ended { start_fs(&mut file_system, ramdisk, &lookup) } else { register_root(root, &lookup) };
                }
                if shell.running.is_none() {
                    start_shell(&mut shell, &lookup, &root);
                }
            }
            Err(error) => {
                eprintln!("init: wait: {error}");
                pause();
            }
        }
    }
}

/// The program `bin/NAME` of the ramdisk, copied into a memory object for `spawn`.
fn image_in_ramdisk(ramdisk: &[u8], name: &str) -> Result<SharedMemory, &'static str> {
    let archive = TarArchiveRef::new(ramdisk).map_err(|_| "the ramdisk is not a tar archive")?;
    let entry = archive
        .entries()
        .find(|entry| entry.filename().as_str().ok().and_then(|path| path.strip_prefix("bin/")) == Some(name))
        .ok_or("not in the ramdisk")?;
    SharedMemory::with_bytes(entry.data()).map_err(|_| "out of memory")
}

/// Starts `name` from the ramdisk with a new endpoint, whose receiving end it gets whole as
/// handle 3, after the console and before `extra`; returns the endpoint's handle here.
fn start_server(service: &mut Service, ramdisk: &[u8], extra: &[u32]) -> Endpoint {
    loop {
        let started = image_in_ramdisk(ramdisk, service.name).and_then(|image| {
            let endpoint = Endpoint::create().map_err(|_| "no endpoint")?;
            let mut handles = [0, 1, 2, endpoint.handle().raw() as u32, 0];
            handles[4..4 + extra.len()].copy_from_slice(extra);
            let child = sys::spawn(image.handle().raw(), &[service.name], &handles[..4 + extra.len()], 0)
                .map_err(|_| "spawn failed")?;
            Ok((child, endpoint))
        });
        match started {
            Ok((child, endpoint)) => {
                service.running = Some(child);
                return endpoint;
            }
            Err(why) => {
                eprintln!("init: cannot start {}: {why}; trying again in {RETRY_DELAY:?}", service.name);
                pause();
            }
        }
    }
}

/// Starts the name server; returns a handle that may only call it, for the others. (The
/// endpoint's own handle is closed here once the server has its copy, so the server is its
/// only receiver: if it dies, callers learn it.)
fn start_names(names: &mut Service, ramdisk: &[u8]) -> Endpoint {
    loop {
        let endpoint = start_server(names, ramdisk, &[]);
        match endpoint.mint(0, false) {
            Ok(caller) => return caller,
            Err(error) => {
                eprintln!("init: cannot mint a handle to names: {error}");
                pause();
            }
        }
    }
}

/// Starts the file system with the ramdisk; returns its root directory (badge 0), registered
/// with the name service.
fn start_fs(file_system: &mut Service, ramdisk: &[u8], lookup: &Endpoint) -> Endpoint {
    loop {
        let endpoint = start_server(file_system, ramdisk, &[RAMDISK as u32]);
        match endpoint.mint(0, false) {
            Ok(root) => return register_root(root, lookup),
            Err(error) => {
                eprintln!("init: cannot mint the root directory: {error}");
                pause();
            }
        }
    }
}

/// Registers a copy of the kernel's log that may only be read with the name service as
/// `log`, for `dmesg`.
fn register_log(lookup: &Endpoint) {
    let registered = userlib::ipc::duplicate(LOG, rights::DUPLICATE | rights::TRANSFER | rights::READ)
        .and_then(|reader| names::register_handle_with(lookup, "log", &OwnedHandle::from_raw(reader)));
    if let Err(error) = registered {
        eprintln!("init: cannot register the log: {error}");
    }
}

/// Registers the root directory with the name service as `fs`, and makes it init's own.
fn register_root(root: Endpoint, lookup: &Endpoint) -> Endpoint {
    if let Err(error) = names::register_with(lookup, fs::SERVICE, &root) {
        eprintln!("init: cannot register {}: {error}", fs::SERVICE);
    }
    fs::use_current_dir_handle(root.handle().raw());
    root
}

/// The handles the shell and the command line's program get: the console, the name service,
/// the root directory and the power handle.
fn session_handles(lookup: &Endpoint, root: &Endpoint) -> [u32; 6] {
    [0, 1, 2, lookup.handle().raw() as u32, root.handle().raw() as u32, POWER as u32]
}

/// Starts the shell from the file system.
fn start_shell(shell: &mut Service, lookup: &Endpoint, root: &Endpoint) {
    loop {
        match userlib::process::spawn_child(shell.name, &[shell.name], &session_handles(lookup, root)) {
            Ok(child) => {
                shell.running = Some(child);
                return;
            }
            Err(error) => {
                eprintln!("init: cannot start {}: {error}; trying again in {RETRY_DELAY:?}", shell.name);
                pause();
            }
        }
    }
}

/// Runs the command line's program to its end: its exit status, or 127 if it cannot start.
fn run_program(program: &str, argv: &[&str], lookup: &Endpoint, root: &Endpoint) -> i32 {
    let screen = match userlib::ipc::duplicate(FRAMEBUFFER, rights::DUPLICATE | rights::READ) {
        Ok(screen) => screen,
        Err(error) => {
            eprintln!("init: cannot copy the framebuffer handle for {program}: {error}");
            return NOT_STARTED;
        }
    };
    let mut handles = [0u32; 11];
    handles[..6].copy_from_slice(&session_handles(lookup, root));
    handles[6..].copy_from_slice(&[LOG, SPARE_IRQ, SPARE_PORTS, KEYBOARD_IRQ, screen].map(|number| number as u32));
    let child = match userlib::process::spawn_child(program, argv, &handles) {
        Ok(child) => {
            println!("init: started {program} as pid {}", child.pid);
            child
        }
        Err(error) => {
            eprintln!("init: cannot start {program}: {error}");
            return NOT_STARTED;
        }
    };
    // The program may be stopped with Ctrl-C.
    let _ = sys::set_foreground(Some(child));
    match sys::wait(Some(child)) {
        Ok((_, info)) => info.status,
        Err(error) => {
            eprintln!("init: waiting for {program}: {error}");
            1
        }
    }
}

/// Sleeps for [`RETRY_DELAY`]; init cannot be killed, so the sleep cannot be cut short.
fn pause() {
    let _ = time::sleep(RETRY_DELAY);
}
