//! The services worker (`fuzz --services SEED FIRST COUNT`): sends random requests to the
//! servers `init` starts and checks that each still answers correctly afterwards.
//!
//! It holds the console session (0 to 2), the name service (3) and a directory of fs (4),
//! and looks up `init`'s published supervisor handle. Each request goes to the name server,
//! the supervisor or the console, with a label that is the protocol's or random, random
//! words, random bytes or a plausible name, and sometimes a copy of one of its handles; it
//! waits at most [`ANSWER_WITHIN_NS`] for the answer. Every answer must be a success or a
//! known errno; `RESTART` through the published handle must be `EPERM` (an ordinary
//! program may not restart services). Names it registers it keeps for a while (so it meets
//! its quota) and closes. Once per batch it builds a tree too deep for any path (300
//! directories with 255-byte names) and asks fs for the deepest one's path
//! (`ENAMETOOLONG`). At the end each service must still do its job: a lookup of `fs` that
//! leads to a working root, a supervisor list naming every service, and a console write.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{ENAMETOOLONG, EPERM};
use abi::ipc::{COPY_HANDLE, LABEL_MAX};
use userlib::fs::{self, File, open};
use userlib::ipc::{Endpoint, Message, Transfer};
use userlib::names::{self, Registration};
use userlib::println;
use userlib::supervisor;
use userlib::sys::Errno;

use crate::worker::KNOWN_ERRNOS;
use crate::{MS, Rng};

/// The longest a service may take to answer one request.
const ANSWER_WITHIN_NS: u64 = 1_000 * MS;
/// Names the worker keeps registered at most; more than a session's quota.
const KEPT_NAMES: usize = names::SESSION_QUOTA + 4;
/// The deep tree: levels and the length of each name.
const DEEP_LEVELS: usize = 300;
/// Sets call numbers of this worker apart from the syscall workers'.
const SALT: u64 = 0x5e41_71ce_5000_0000;

/// A target of random requests.
#[derive(Clone, Copy, Debug)]
enum Target {
    Names,
    Supervisor,
    Console,
}

/// `fuzz --services SEED FIRST COUNT`: the number of problems (at most 100).
pub fn run(seed: u64, first: u64, count: u64) -> i32 {
    let supervisor = match names::lookup(supervisor::SERVICE) {
        Ok(supervisor) => supervisor,
        Err(errno) => {
            println!("fuzz: services: no supervisor to look up: {errno}");
            return 1;
        }
    };
    let mut problems = 0;
    let mut kept: Vec<Registration> = Vec::new();
    for index in first..first + count {
        let mut rng = Rng::for_call(seed, index ^ SALT);
        // init answers its supervisor between 50 ms waits for its children: one request in
        // ten goes there, so the run stays short.
        let target = match rng.below(10) {
            0 => Target::Supervisor,
            1..=5 => Target::Names,
            _ => Target::Console,
        };
        if let Err(why) = request(&mut rng, target, &supervisor, &mut kept) {
            println!("fuzz: services call {index} (seed {seed}) to {target:?}: {why}");
            problems += 1;
        }
        if kept.len() > KEPT_NAMES {
            kept.clear();
        }
    }
    kept.clear();
    if let Err(why) = deep_tree(seed ^ first) {
        println!("fuzz: services (seed {seed}, batch at {first}): the deep tree: {why}");
        problems += 1;
    }
    if let Err(why) = every_service_answers(&supervisor) {
        println!("fuzz: services (seed {seed}, batch at {first}): {why}");
        problems += 1;
    }
    problems.min(crate::MAX_REPORTED)
}

/// Sends one random request to `target` and checks the answer.
fn request(rng: &mut Rng, target: Target, supervisor: &Endpoint, kept: &mut Vec<Registration>) -> Result<(), String> {
    let (endpoint, labels): (u64, &[u64]) = match target {
        Target::Names => (names::NAMES_HANDLE, &[names::REGISTER, names::LOOKUP]),
        Target::Supervisor => (supervisor.handle().raw(), &[supervisor::LIST, supervisor::RESTART]),
        // Never READ: it waits for typed input.
        Target::Console => (0, &[abi::stream::MODE, abi::stream::FOREGROUND]),
    };
    let label = match rng.below(4) {
        0 => rng.below(LABEL_MAX),
        1 => rng.below(16),
        _ => rng.pick(labels),
    };
    let words: [u64; 4] = core::array::from_fn(|_| if rng.below(2) == 0 { rng.below(4) } else { rng.next() });
    let mut bytes = [0u8; 64];
    let length = match rng.below(3) {
        0 => rng.below(bytes.len() as u64 + 1) as usize,
        _ => {
            let name = rng.pick(&["fs", "init", "log", "names", "console", "sh", "fuzz-a", "fuzz-b", "", "fuzz-quota-0"]);
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            name.len()
        }
    };
    if length > 0 && rng.below(3) == 0 {
        for byte in &mut bytes[..length] {
            *byte = rng.next() as u8;
        }
    }
    // Sometimes a handle along: a copy of the console session, the name service or the
    // directory, or one that names nothing.
    let handles = [rng.pick(&[0u32, names::NAMES_HANDLE as u32, fs::CWD_HANDLE as u32, 200]) | COPY_HANDLE];
    let with_handle = rng.below(4) == 0;
    let mut room = [0u8; 512];
    let mut transfer = Transfer {
        send: &bytes[..length],
        send_handles: if with_handle { &handles } else { &[] },
        receive: Some(&mut room),
    };
    let answer = Endpoint::from_raw(endpoint);
    let result = answer.call_with(&Message::new(label, words), &mut transfer, ANSWER_WITHIN_NS);
    answer.into_raw();
    let (reply, arrived) = match result {
        Ok(answered) => answered,
        // A handle that names nothing is refused by the kernel before any server sees it.
        Err(Errno(errno)) if with_handle && handles[0] & !COPY_HANDLE == 200 && KNOWN_ERRNOS.contains(&errno) => return Ok(()),
        Err(errno) => return Err(format!("label {label:#x}: the call failed: {errno}")),
    };
    let status = reply.label as i64;
    let mut handed: Vec<u64> = arrived.handles().iter().map(|&number| u64::from(number)).collect();
    if !(status >= 0 || KNOWN_ERRNOS.contains(&-status)) {
        return Err(format!("label {label:#x}: answered {status}, neither a count nor a known errno"));
    }
    if matches!(target, Target::Supervisor) && label == supervisor::RESTART && status != -EPERM {
        return Err(format!("RESTART of {:?} through the published handle answered {status}, not EPERM", &bytes[..length]));
    }
    if matches!(target, Target::Names) && label == names::REGISTER && status == 0 && handed.len() == 1 {
        kept.push(Registration::from_raw(handed.remove(0)));
    }
    for number in handed {
        let _ = userlib::ipc::close(number);
    }
    if status < 0 && !KNOWN_ERRNOS.contains(&-status) {
        return Err(format!("label {label:#x}: errno {}", -status));
    }
    Ok(())
}

/// Builds [`DEEP_LEVELS`] nested directories with names of `NAME_MAX` bytes under `/tmp`,
/// checks that fs refuses the deepest one's path with `ENAMETOOLONG`, and removes them.
fn deep_tree(tag: u64) -> Result<(), String> {
    let top = format!("/tmp/fuzz-deep-{tag}");
    fs::mkdir(&top).map_err(|errno| format!("mkdir {top}: {errno}"))?;
    let name: String = core::iter::repeat_n('n', fs::NAME_MAX).collect();
    let mut current = File::open_with(&top, open::READ | open::DIRECTORY).map_err(|errno| format!("open {top}: {errno}"))?;
    let mut levels = 0;
    let mut outcome = Ok(());
    while levels < DEEP_LEVELS {
        match current.mkdir_at(&name).and_then(|()| current.open_at(&name, open::READ | open::DIRECTORY)) {
            Ok(next) => current = next,
            Err(errno) => {
                outcome = Err(format!("level {levels}: {errno}"));
                break;
            }
        }
        levels += 1;
    }
    if outcome.is_ok() {
        outcome = match current.path() {
            Err(Errno(ENAMETOOLONG)) => Ok(()),
            other => Err(format!("the path of the deepest directory: {other:?}, not ENAMETOOLONG")),
        };
    }
    for _ in 0..levels {
        let parent = current.open_at("..", open::READ | open::DIRECTORY).map_err(|errno| format!("open ..: {errno}"))?;
        drop(current);
        parent.rmdir_at(&name).map_err(|errno| format!("rmdir: {errno}"))?;
        current = parent;
    }
    drop(current);
    fs::rmdir(&top).map_err(|errno| format!("rmdir {top}: {errno}"))?;
    outcome
}

/// Checks that every service still does its job.
fn every_service_answers(supervisor: &Endpoint) -> Result<(), String> {
    let root = names::lookup(fs::SERVICE).map_err(|errno| format!("lookup fs: {errno}"))?;
    let root = File::from_raw(root.into_raw());
    let tmp = root.open_at("tmp", open::READ | open::DIRECTORY).map_err(|errno| format!("open tmp through the looked-up fs: {errno}"))?;
    drop(tmp);
    let mut room = [0u8; 256];
    let mut transfer = Transfer { receive: Some(&mut room), ..Transfer::default() };
    let (reply, arrived) = supervisor
        .call_with(&Message::new(supervisor::LIST, [0; 4]), &mut transfer, ANSWER_WITHIN_NS)
        .map_err(|errno| format!("LIST: {errno}"))?;
    let list = core::str::from_utf8(&room[..arrived.len.min(room.len())]).unwrap_or("");
    if reply.label != 0 || !["console ", "names ", "fs "].iter().all(|service| list.contains(service)) {
        return Err(format!("LIST answered {} with {list:?}", reply.label as i64));
    }
    let _ = userlib::sys::console_mode(abi::CONSOLE_COOKED);
    userlib::sys::write(1, b"fuzz: the services answer\n").map(drop).map_err(|errno| format!("a console write: {errno}"))
}
