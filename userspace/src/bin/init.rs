//! `init`: the first process (pid 1), and the only one the kernel starts. It holds the root
//! handles the kernel gives it (the console as 0, 1 and 2, the power handle as 3) and hands
//! each program it starts only what that program needs:
//!
//! - `names`, the name server: the console and the receiving end of a new endpoint (as 3);
//! - `sh`, the shell: the console, a handle to the name service (as 3, as every program gets
//!   it) and the power handle (as 4), so that `shutdown` works from the shell; the programs
//!   the shell starts get only the first four.
//!
//! Then it supervises them: whenever one ends it says how and starts it again (a name server
//! that restarts has a new endpoint, so init asks nothing of the old one). It never exits.
#![no_std]
#![no_main]

use userlib::ipc::Endpoint;
use userlib::process::Ending;
use userlib::sys::{self, Child};
use userlib::time::{self, Duration};
use userlib::{eprintln, println};

userlib::main!(main);

/// The handle the kernel gives the first process to power off with.
const POWER: u32 = 3;
/// The pause before trying again when starting a program fails.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A supervised program and what it is started with.
struct Service {
    name: &'static str,
    running: Option<Child>,
}

fn main() -> i32 {
    let mut names = Service { name: "names", running: None };
    let mut shell = Service { name: "sh", running: None };
    let mut lookup = start_names(&mut names);
    start_shell(&mut shell, &lookup);
    loop {
        match sys::wait(None) {
            Ok((handle, info)) => {
                for service in [&mut names, &mut shell] {
                    if service.running.is_some_and(|child| child.handle == handle) {
                        let pid = service.running.take().map_or(0, |child| child.pid);
                        println!("init: {} (pid {pid}) {}; starting it again", service.name, Ending(info));
                    }
                }
                if names.running.is_none() {
                    lookup = start_names(&mut names);
                }
                if shell.running.is_none() {
                    start_shell(&mut shell, &lookup);
                }
            }
            Err(error) => {
                eprintln!("init: wait: {error}");
                pause();
            }
        }
    }
}

/// Starts the name server with a new endpoint, which it gets whole; returns a handle that
/// may only call it, for the others. (The endpoint's own handle is closed here once the
/// server has its copy, so the server is its only receiver: if it dies, callers learn it.)
fn start_names(names: &mut Service) -> Endpoint {
    loop {
        let started = Endpoint::create().and_then(|endpoint| {
            let caller = endpoint.mint(0, false)?;
            let child = sys::spawn(names.name, &[], &[0, 1, 2, endpoint.handle().raw() as u32])?;
            Ok((child, caller))
        });
        match started {
            Ok((child, caller)) => {
                names.running = Some(child);
                return caller;
            }
            Err(error) => {
                eprintln!("init: cannot start {}: {error}; trying again in {RETRY_DELAY:?}", names.name);
                pause();
            }
        }
    }
}

/// Starts the shell with the console, the name service as handle 3 and the power handle as
/// handle 4.
fn start_shell(shell: &mut Service, lookup: &Endpoint) {
    loop {
        let handles = [0, 1, 2, lookup.handle().raw() as u32, POWER];
        match sys::spawn(shell.name, &[], &handles) {
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

/// Sleeps for [`RETRY_DELAY`]; init cannot be killed, so the sleep cannot be cut short.
fn pause() {
    let _ = time::sleep(RETRY_DELAY);
}
