//! `init`: the first process (pid 1). It keeps a shell on the console: starts `sh`, starts a
//! new one whenever it exits (saying how the old one ended), and reaps every other child, which
//! are the orphans the kernel gives to pid 1. It never exits; if `sh` cannot be started it says
//! why and tries again after a pause.
#![no_std]
#![no_main]

use userlib::process::Ending;
use userlib::sys::{self, Pid};
use userlib::time::{self, Duration};
use userlib::{eprintln, println};

userlib::main!(main);

/// The program init keeps running.
const SHELL: &str = "sh";
/// The pause before trying again when starting the shell or waiting fails.
const RETRY_DELAY: Duration = Duration::from_secs(1);

fn main() -> i32 {
    loop {
        let shell = start_shell();
        reap_until_shell_exits(shell);
    }
}

/// Starts the shell, trying again after [`RETRY_DELAY`] until it starts.
fn start_shell() -> Pid {
    loop {
        match sys::spawn(SHELL, &[]) {
            Ok(pid) => return pid,
            Err(error) => {
                eprintln!("init: cannot start {SHELL}: {error}; trying again in {RETRY_DELAY:?}");
                pause();
            }
        }
    }
}

/// Reaps children (orphans) until the shell `shell` exits, then says how it ended.
fn reap_until_shell_exits(shell: Pid) {
    loop {
        match sys::wait(None) {
            Ok((pid, info)) if pid == shell => {
                println!("init: {SHELL} (pid {pid}) {}; starting a new one", Ending(info));
                return;
            }
            Ok(_) => {}
            Err(error) => {
                // Only possible if the shell is gone without a status; start a new one.
                eprintln!("init: waiting for {SHELL} (pid {shell}): {error}");
                pause();
                return;
            }
        }
    }
}

/// Sleeps for [`RETRY_DELAY`]; init cannot be killed, so the sleep cannot be cut short.
fn pause() {
    let _ = time::sleep(RETRY_DELAY);
}
