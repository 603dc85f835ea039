//! `init`: the first process (pid 1), and the only one the kernel starts, from the boot
//! ramdisk. It holds the root handles the kernel gives it (the kernel's log as 0, 1 and 2,
//! the power handle as 3, the ramdisk, read-only, as 4, and the device handles as
//! `abi::init_handles` numbers them) and hands each program it starts only what it needs:
//!
//! - `console`, the console server (from the ramdisk), first: the log as 0 to 2, the
//!   receiving end of a new endpoint (as 3), the keyboard's and COM1's lines and ports (4 to
//!   7), a copy of the log that may only be read (8) and the framebuffer (9). Init keeps a *session* handle to it (badge 1, send only),
//!   which everyone else gets as standard input, output and error;
//! - `names`, the name server (from the ramdisk): the log as 0 to 2 (so that it outlives a
//!   console restart) and the receiving end of a new endpoint (as 3). Init keeps the system
//!   session to it and hands out the user session (`userlib::names`). Init registers, as
//!   `log`, a copy of the kernel's log that may only be read (for `dmesg`), and as `init` a
//!   handle to its supervisor endpoint that may only list;
//! - `fs`, the file system (from the ramdisk): the log, the receiving end of another new
//!   endpoint (as 3), the ramdisk (as 4) and the journal of `/tmp` (5 and 6), which init
//!   creates once and keeps so that every new fs finds `/tmp` as the last one left it. Init
//!   keeps the root directory (badge 0, fs's root session) and registers the root in a
//!   session of its own with the name service as `fs`;
//! - `sh`, the shell, read from the file system: the console session as 0 to 2, the name
//!   service's user session (3), the root directory in an fs session of its own (4), the
//!   power handle (5) and the operator's handle to the supervisor, which may restart (6).
//!
//! Each runs in a job of its own below the root job (which init runs in, handle
//! `ROOT_JOB`): when a service or the shell ends, init kills its job, so whatever it started
//! and left running (a shell's background `spin &`) ends with it and no process is ever out
//! of everyone's reach.
//!
//! Then it supervises them. It waits for any child's end with a timeout of
//! [`SUPERVISION_TICK`], and between waits answers its supervisor endpoint without blocking
//! (`userlib::supervisor`: list the services, restart one by killing it). Whenever a service ends
//! it says how and starts it again: a restarted server has a new endpoint (names and the
//! root directory are registered again); when the console or fs ends, the shell is killed
//! too (its standard streams or its current directory named the dead server) and comes
//! back in the new one.
//!
//! With arguments (the kernel's command line, `--init "PROG ARGS"` in the launcher), init
//! starts the console and the servers and then runs `PROG ARGS` instead of the shell, with
//! the shell's handles and, as 6 to 10, the spare devices tests and `bench` drive: the log
//! (READ and WRITE), COM2's line and ports, the keyboard's line (which the console has bound,
//! so binding it is refused) and the framebuffer, read-only, and the operator's handle as
//! 11. It supervises the services meanwhile as with the shell, and exits with the program's
//! status when it ends (which powers the machine off with it); 127 if it cannot be started.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use abi::errno::{EAGAIN, EINVAL, ENOENT, EPERM, EPIPE, ETIMEDOUT};
use abi::handle::NO_HANDLE;
use abi::handle::rights;
use abi::init_handles::{
    FRAMEBUFFER, KEYBOARD_IRQ, LOG, POWER, PS2_PORTS, RAMDISK, ROOT_JOB, SERIAL_IRQ, SERIAL_PORTS, SPARE_IRQ, SPARE_PORTS,
};
use tar_no_std::TarArchiveRef;
use userlib::ipc::{Endpoint, Message, OwnedHandle, Request, SharedMemory, Transfer};
use userlib::process::Ending;
use userlib::sys::{self, Child, Errno};
use userlib::time::{self, Duration};
use userlib::{args, eprintln, fs, names, println};

use userlib::supervisor;

userlib::main!(main);

/// The pause before trying again when starting a program fails.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// The status when the program named on the command line cannot be started.
const NOT_STARTED: i32 = 127;
/// The longest init waits for a child's end before looking at its supervisor endpoint.
const SUPERVISION_TICK: Duration = Duration::from_millis(50);
/// The badge of the console session init hands out.
const SESSION_BADGE: u64 = 1;

/// A supervised program, and the job it runs in: whatever it starts runs there too, and
/// ends when it ends (killing the job ends them all), so nothing it left behind outlives it.
struct Service {
    name: &'static str,
    running: Option<Child>,
    job: Option<OwnedHandle>,
}

impl Service {
    const fn new(name: &'static str) -> Self {
        Self { name, running: None, job: None }
    }

    /// A new job below the root for the next start (the one before, if any, is let go of):
    /// its handle, or `None` (then the program runs in init's own job, the root, where init
    /// can still end it, but not apart from everything else).
    fn fresh_job(&mut self) -> Option<u64> {
        self.job = sys::job_create(Some(ROOT_JOB))
            .inspect_err(|error| eprintln!("init: no job for {}: {error}", self.name))
            .ok()
            .map(OwnedHandle::from_raw);
        self.job.as_ref().map(OwnedHandle::raw)
    }

    /// Forgets the process if `handle` was its handle, and ends what is left in its job;
    /// whether it was.
    fn ended(&mut self, handle: u64, info: abi::ExitInfo) -> bool {
        if !self.running.is_some_and(|child| child.handle == handle) {
            return false;
        }
        let pid = self.running.take().map_or(0, |child| child.pid);
        println!("init: {} (pid {pid}) {}; starting it again", self.name, Ending(info));
        if let Some(job) = self.job.take() {
            // ESRCH if it was killed already (a restart); either way nothing is left in it.
            let _ = sys::kill_handle(job.raw());
        }
        true
    }

    /// Kills the running process and everything in its job (its end is handled like any
    /// other).
    fn kill(&self) {
        let Some(child) = self.running else { return };
        let _ = match &self.job {
            Some(job) => sys::kill_handle(job.raw()),
            None => sys::kill(child),
        };
    }
}

/// Everything init supervises, and the handles it hands out.
struct Supervisor {
    ramdisk: &'static [u8],
    console: Service,
    names: Service,
    file_system: Service,
    shell: Service,
    /// A console session (send only), everyone's standard streams.
    session: Endpoint,
    /// The name service, as init's own session (`names::SYSTEM_SESSION`).
    names_system: Endpoint,
    /// The name service, as the session the shell or the command line's program gets
    /// (`names::USER_SESSION`).
    names_user: Endpoint,
    /// What init has registered: the log, the supervisor and the root directory.
    published: [Option<names::Registration>; 3],
    /// The journal of `/tmp`, handed to every fs.
    journal: Option<[SharedMemory; 2]>,
    /// The root directory (badge 0, fs's root session).
    root: Endpoint,
    /// The root directory in the session of the shell or the command line's program (none
    /// if fs could not start one: then no program starts until fs is back).
    user_root: Option<Endpoint>,
    /// The root directory in the session published as `fs`.
    public_root: Option<Endpoint>,
    /// Whether init runs the shell (rather than the command line's program).
    runs_shell: bool,
    /// The supervisor endpoint `svc` calls.
    control: Endpoint,
    /// The supervisor with the operator's badge (which may restart), for the shell or the
    /// command line's program only.
    operator: Endpoint,
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
    let Some((control, operator)) =
        Endpoint::create().ok().and_then(|control| control.mint(supervisor::OPERATOR_BADGE, false).ok().map(|operator| (control, operator)))
    else {
        eprintln!("init: no endpoint for supervision");
        return 1;
    };
    let mut console = Service::new("console");
    let session = start_console(&mut console, ramdisk);
    let mut names = Service::new("names");
    let (names_system, names_user) = start_names(&mut names, ramdisk);
    let mut file_system = Service::new("fs");
    // The journal outlives every fs: each new one replays what the last one recorded.
    let pages = |bytes: u64| bytes.div_ceil(abi::memory::PAGE_SIZE);
    let journal = SharedMemory::create(pages(fs::JOURNAL_HEADER + fs::JOURNAL_REGION))
        .and_then(|first| Ok([first, SharedMemory::create(pages(fs::JOURNAL_REGION))?]))
        .inspect_err(|error| eprintln!("init: no memory for the journal of /tmp ({error}); it will not survive a restart of fs"))
        .ok();
    let root = start_fs(&mut file_system, ramdisk, journal.as_ref());
    let (user_root, public_root) = (session_below(&root), session_below(&root));
    let mut supervisor = Supervisor {
        ramdisk,
        console,
        names,
        file_system,
        shell: Service::new("sh"),
        session,
        names_system,
        names_user,
        published: [None, None, None],
        journal,
        root,
        user_root,
        public_root,
        runs_shell: args().len() < 2,
        control,
        operator,
    };
    supervisor.register_names();
    if let [_, program, ..] = args() {
        return supervisor.run_program(program, &args()[1..]);
    }
    supervisor.start_shell();
    supervisor.supervise(None)
}

impl Supervisor {
    /// Waits for ends and answers `svc`: for ever, or until `program` ends (its exit
    /// status).
    fn supervise(&mut self, program: Option<Child>) -> i32 {
        let mut room = [0u8; 64];
        loop {
            match sys::wait_handle(abi::WAIT_ANY as u64, SUPERVISION_TICK.as_nanos() as u64) {
                Ok((handle, info)) if program.is_some_and(|child| child.handle == handle) => return info.status,
                Ok((handle, info)) => self.ended(handle, info),
                Err(Errno(EAGAIN | ETIMEDOUT)) => {}
                Err(error) => {
                    eprintln!("init: wait: {error}");
                    pause();
                }
            }
            while let Ok(request) = self.control.recv(&mut room, 0) {
                let len = request.arrived.len.min(room.len());
                self.answer(request, &room[..len]);
            }
        }
    }

    /// Starts again whatever ended (the process `handle` named).
    fn ended(&mut self, handle: u64, info: abi::ExitInfo) {
        if self.console.ended(handle, info) {
            self.session = start_console(&mut self.console, self.ramdisk);
            // The shell's standard streams name the console that is gone: it starts again
            // (when its end comes round) with the new session.
            self.shell.kill();
        }
        let names_ended = self.names.ended(handle, info);
        let fs_ended = self.file_system.ended(handle, info);
        self.shell.ended(handle, info);
        if names_ended {
            (self.names_system, self.names_user) = start_names(&mut self.names, self.ramdisk);
        }
        if fs_ended {
            // The shell's current directory named the fs that is gone: it starts again (when
            // its end comes round) in the new one.
            self.shell.kill();
            self.root = start_fs(&mut self.file_system, self.ramdisk, self.journal.as_ref());
            (self.user_root, self.public_root) = (session_below(&self.root), session_below(&self.root));
        }
        if names_ended || fs_ended {
            self.register_names();
        }
        if self.runs_shell && self.shell.running.is_none() && self.console.running.is_some() {
            self.start_shell();
        }
    }

    /// Answers one `svc` request.
    fn answer(&mut self, request: Request, bytes: &[u8]) {
        let Some(reply) = request.reply else { return };
        // Handles sent along are not wanted.
        for &number in request.arrived.handles() {
            drop(OwnedHandle::from_raw(u64::from(number)));
        }
        let services = [&self.console, &self.names, &self.file_system, &self.shell];
        let operator = request.badge == supervisor::OPERATOR_BADGE;
        let (label, text) = match request.message.label {
            supervisor::LIST => {
                let mut text = String::new();
                for service in services {
                    text += &format!("{} {}\n", service.name, service.running.map_or(0, |child| child.pid));
                }
                (0, text)
            }
            supervisor::RESTART if !operator => (abi::stream::reply_label(Err(EPERM)), String::new()),
            supervisor::RESTART => match services.iter().find(|service| service.name.as_bytes() == bytes) {
                Some(service) => {
                    println!("init: restarting {} at a user's request", service.name);
                    service.kill();
                    (0, String::new())
                }
                None => (abi::stream::reply_label(Err(ENOENT)), String::new()),
            },
            _ => (abi::stream::reply_label(Err(EINVAL)), String::new()),
        };
        let mut transfer = Transfer { send: text.as_bytes(), ..Transfer::default() };
        let _ = reply.send_with(&Message::new(label, [0; 4]), &mut transfer);
    }

    /// Registers with the name service what init publishes: the log (read-only), the
    /// supervisor endpoint (a handle with badge 0, which may only list) and the root
    /// directory. A name init registered before is pointed at the new handle through its
    /// registration; after a restart of the name server, whose registrations died with it,
    /// it is registered anew.
    fn register_names(&mut self) {
        let log = userlib::ipc::duplicate(LOG, rights::DUPLICATE | rights::TRANSFER | rights::READ).map(OwnedHandle::from_raw);
        let control = self.control.mint(0, false).map(|caller| OwnedHandle::from_raw(caller.into_raw()));
        let handles = [log.as_ref().map_err(|error| *error), control.as_ref().map_err(|error| *error), self.public_root.as_ref().map(Endpoint::handle).ok_or(Errno(EPIPE))];
        for ((name, handle), slot) in ["log", supervisor::SERVICE, fs::SERVICE].into_iter().zip(handles).zip(&mut self.published) {
            if let (Ok(handle), Some(registration)) = (handle, &*slot)
                && registration.replace(name, handle).is_ok()
            {
                continue;
            }
            match handle.and_then(|handle| names::register_handle_with(&self.names_system, name, handle)) {
                Ok(registration) => *slot = Some(registration),
                Err(error) => eprintln!("init: cannot register {name}: {error}"),
            }
        }
        fs::use_current_dir_handle(self.root.handle().raw());
    }

    /// The handles the shell and the command line's program get: the console session, the
    /// name service, the root directory and the power handle.
    fn session_handles(&self) -> [u32; 6] {
        let session = self.session.handle().raw() as u32;
        [session, session, session, self.names_user.handle().raw() as u32, self.user_root.as_ref().map_or(NO_HANDLE, |root| root.handle().raw()) as u32, POWER as u32]
    }

    /// Starts the shell from the file system.
    fn start_shell(&mut self) {
        loop {
            let mut handles = self.session_handles().to_vec();
            handles.push(self.operator.handle().raw() as u32);
            let job = self.shell.fresh_job();
            match userlib::process::spawn_child_in(job, self.shell.name, &[self.shell.name], &handles) {
                Ok(child) => {
                    self.shell.running = Some(child);
                    return;
                }
                Err(error) => {
                    eprintln!("init: cannot start {}: {error}; trying again in {RETRY_DELAY:?}", self.shell.name);
                    pause();
                }
            }
        }
    }

    /// Runs the command line's program to its end, supervising the services meanwhile as
    /// with the shell: its exit status, or 127 if it cannot start.
    fn run_program(&mut self, program: &str, argv: &[&str]) -> i32 {
        let screen = match userlib::ipc::duplicate(FRAMEBUFFER, rights::DUPLICATE | rights::READ) {
            Ok(screen) => screen,
            Err(error) => {
                eprintln!("init: cannot copy the framebuffer handle for {program}: {error}");
                return NOT_STARTED;
            }
        };
        let mut handles = [0u32; 12];
        handles[..6].copy_from_slice(&self.session_handles());
        handles[6..].copy_from_slice(
            &[LOG, SPARE_IRQ, SPARE_PORTS, KEYBOARD_IRQ, screen, self.operator.handle().raw()].map(|number| number as u32),
        );
        // Said before the start, not after: the program's first line would race with it (on
        // another CPU its output and this line came out interleaved mid-word).
        println!("init: starting {program}");
        let child = match userlib::process::spawn_child(program, argv, &handles) {
            Ok(child) => child,
            Err(error) => {
                eprintln!("init: cannot start {program}: {error}");
                return NOT_STARTED;
            }
        };
        // The program may be stopped with Ctrl-C.
        let _ = sys::set_foreground_on(self.session.handle().raw(), Some(child));
        self.supervise(Some(child))
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
/// handle 3, after the log and before `extra`; returns the endpoint's handle here.
fn start_server(service: &mut Service, ramdisk: &[u8], extra: &[u64]) -> Endpoint {
    loop {
        let started = image_in_ramdisk(ramdisk, service.name).and_then(|image| {
            let endpoint = Endpoint::create().map_err(|_| "no endpoint")?;
            let mut handles = [0u32; 4 + 6];
            handles[..4].copy_from_slice(&[0, 1, 2, endpoint.handle().raw() as u32]);
            for (slot, &number) in handles[4..].iter_mut().zip(extra) {
                *slot = number as u32;
            }
            let job = service.fresh_job();
            let child = sys::spawn(image.handle().raw(), &[service.name], &handles[..4 + extra.len()], job)
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

/// Mints a handle to `endpoint` with `badge` that may only call it, trying again until it
/// works. (The endpoint's own handle is closed by the caller once the server has its copy,
/// so the server is its only receiver: if it dies, callers learn it.)
fn caller(endpoint: &Endpoint, badge: u64, what: &str) -> Endpoint {
    loop {
        match endpoint.mint(badge, false) {
            Ok(caller) => return caller,
            Err(error) => {
                eprintln!("init: cannot mint a handle to {what}: {error}");
                pause();
            }
        }
    }
}

/// Starts the console server with the devices it drives and a copy of the log it may only
/// read (to show it on the screen); returns a session handle.
fn start_console(console: &mut Service, ramdisk: &[u8]) -> Endpoint {
    // Without the copy (no room) it gets init's standard output, which may only be written:
    // the screen starts empty, and the console works all the same.
    let log_reader = userlib::ipc::duplicate(LOG, rights::DUPLICATE | rights::READ).map(OwnedHandle::from_raw);
    let reader_number = log_reader.as_ref().map_or(1, OwnedHandle::raw);
    let devices = [KEYBOARD_IRQ, SERIAL_IRQ, PS2_PORTS, SERIAL_PORTS, reader_number, FRAMEBUFFER];
    // Without a framebuffer the console drives the serial port alone.
    let present = if userlib::ipc::handle_info(FRAMEBUFFER).is_ok() { devices.len() } else { devices.len() - 1 };
    let endpoint = start_server(console, ramdisk, &devices[..present]);
    caller(&endpoint, SESSION_BADGE, "the console")
}

/// Starts the name server; returns init's own session with it and the session for the shell
/// or the command line's program (handles that may only call it).
fn start_names(names: &mut Service, ramdisk: &[u8]) -> (Endpoint, Endpoint) {
    let endpoint = start_server(names, ramdisk, &[]);
    (caller(&endpoint, names::SYSTEM_SESSION, "names"), caller(&endpoint, names::USER_SESSION, "names"))
}

/// Starts the file system with the ramdisk and the journal of `/tmp`; returns its root
/// directory (badge 0).
fn start_fs(file_system: &mut Service, ramdisk: &[u8], journal: Option<&[SharedMemory; 2]>) -> Endpoint {
    let endpoint = match journal {
        Some([first, second]) => start_server(file_system, ramdisk, &[RAMDISK, first.handle().raw(), second.handle().raw()]),
        None => start_server(file_system, ramdisk, &[RAMDISK]),
    };
    caller(&endpoint, 0, "the root directory")
}

/// The root directory in a new session of fs below `root`'s, with `fs::SESSION_LIMITS`
/// (none, said why, if fs cannot start one: it has ended, and starts again).
fn session_below(root: &Endpoint) -> Option<Endpoint> {
    let root = fs::File::from_raw(root.handle().raw());
    let session = root.new_session(fs::SESSION_LIMITS);
    // The handle is init's root, lent for the call.
    root.into_raw();
    match session {
        Ok(session) => Some(Endpoint::from_raw(session.into_raw())),
        Err(error) => {
            eprintln!("init: cannot start a session of fs: {error}");
            None
        }
    }
}

/// Sleeps for [`RETRY_DELAY`]; init cannot be killed, so the sleep cannot be cut short.
fn pause() {
    let _ = time::sleep(RETRY_DELAY);
}
