//! Services: who may do what with the servers `init` starts, and requests that are legal one
//! by one but extreme together. `fs`: a directory path longer than any reply may carry
//! (`ENAMETOOLONG`, never a cut path or a crash), read-only files refused at open. `names`:
//! system names that no program may take, names owned by their registration (replaced only
//! through it, gone when it is closed or its holder exits), a quota per session. `init`'s
//! supervisor: the published handle may list but not restart.
//!
//! `fs_survives_restart` is a helper role rather than a case, for it restarts fs under the
//! whole suite's feet: `tests/services.rs` runs it alone as the `--init` program.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::*;
use abi::ipc::FOREVER;
use userlib::check;
use userlib::fs::{self, File, open};
use userlib::ipc::{Arrived, Endpoint, Message, OwnedHandle, Transfer};
use userlib::names::{self, Registration};
use userlib::supervisor;
use userlib::sys::{self, Errno};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here services_fs_path_longer_than_a_reply_is_enametoolong,
    here services_fs_refuses_writing_read_only_files_at_open,
    here services_fs_session_at_its_open_file_limit_leaves_others_working,
    here services_fs_session_at_its_node_and_byte_limits_leaves_others_working,
    here services_fs_sessions_below_cannot_exceed_their_parent,
    here services_names_system_names_cannot_be_taken,
    here services_names_taken_names_are_refused,
    here services_names_only_the_registration_replaces_a_name,
    here services_names_end_with_their_registration,
    here services_names_end_with_the_process_that_registered_them,
    here services_names_quota_per_session,
    here services_supervisor_restart_needs_the_operator_badge,
];

pub const HELPERS: &[(&str, Helper)] = &[
    ("register_and_exit", helper_register_and_exit),
    ("fs_survives_restart", helper_fs_survives_restart),
    ("write_until_refused", helper_write_until_refused),
];

/// How long a server may take to handle the close notices of a handle closed or a process
/// that ended.
const SETTLE_NS: u64 = 2_000_000_000;
/// Directories of the deep tree, and the length of each one's name: 300 × 256 bytes is far
/// beyond `PATH_MAX` and beyond the 64 KiB a reply can carry.
const DEEP_LEVELS: usize = 300;
const LONG_NAME_LEN: usize = fs::NAME_MAX;

/// A call on `handle` (borrowed) with `label`, `words` and `bytes`, and room for a reply's
/// bytes; the reply's label as a result, its words and what arrived.
fn call_on(handle: u64, label: u64, words: [u64; 4], bytes: &[u8], room: Option<&mut [u8]>) -> sys::Result<(u64, Arrived)> {
    let endpoint = Endpoint::from_raw(handle);
    let mut transfer = Transfer { send: bytes, receive: room, ..Transfer::default() };
    let result = endpoint.call_with(&Message::new(label, words), &mut transfer, FOREVER);
    endpoint.into_raw();
    let (reply, arrived) = result?;
    abi::stream::reply_result(reply.label, i64::MAX as u64).map_err(Errno).map(|value| (value, arrived))
}

/// Opens the directory `name` in the open directory `directory`.
fn open_in(directory: &File, name: &str) -> sys::Result<File> {
    directory.open_at(name, open::READ | open::DIRECTORY)
}



/// Builds [`DEEP_LEVELS`] nested directories with long names under `top`, each made
/// relative to its parent: the deepest one, open, and how many were made.
fn build_deep_tree(top: &File, name: &str) -> (sys::Result<File>, usize) {
    let mut current = match open_in(top, ".") {
        Ok(file) => file,
        Err(errno) => return (Err(errno), 0),
    };
    for level in 0..DEEP_LEVELS {
        let made = current.mkdir_at(name).and_then(|()| open_in(&current, name));
        match made {
            Ok(next) => current = next,
            Err(errno) => return (Err(errno), level),
        }
    }
    (Ok(current), DEEP_LEVELS)
}

/// Removes a chain of `levels` directories named `name`, from the deepest (`deepest`) up.
fn remove_deep_tree(mut deepest: File, name: &str, levels: usize) -> sys::Result<()> {
    for _ in 0..levels {
        let parent = open_in(&deepest, "..")?;
        drop(deepest);
        parent.rmdir_at(name)?;
        deepest = parent;
    }
    Ok(())
}

fn services_fs_path_longer_than_a_reply_is_enametoolong() -> Outcome {
    let top_path = "/tmp/ut-svc-deep";
    let name: String = core::iter::repeat_n('d', LONG_NAME_LEN).collect();
    let _ = fs::rmdir(top_path);
    fs::mkdir(top_path).context("mkdir")?;
    let top = File::open_with(top_path, open::READ | open::DIRECTORY).context("open the top")?;
    let (deepest, levels) = build_deep_tree(&top, &name);
    let deepest = deepest.map_err(|errno| format!("level {levels} of {DEEP_LEVELS}: {errno}"))?;
    let path = deepest.path();
    // A room as large as any reply: fs must refuse, not fill it.
    let mut room = alloc::vec![0u8; abi::ipc::BUFFER_MAX as usize];
    let raw = call_on(deepest.handle().raw(), fs::GETPATH, [0; 4], &[], Some(&mut room));
    let stat = fs::metadata("/etc/motd");
    let removed = remove_deep_tree(deepest, &name, levels);
    drop(top);
    let top_removed = fs::rmdir(top_path);
    expect_errno_of("File::path of the deepest directory", path, ENAMETOOLONG)?;
    expect_errno_of("GETPATH with a 64 KiB room", raw.map(|(_, arrived)| arrived.len), ENAMETOOLONG)?;
    check!(stat.is_ok(), "fs stopped answering: stat /etc/motd gave {stat:?}");
    removed.context("removing the tree")?;
    top_removed.context("rmdir the top")
}

fn services_fs_refuses_writing_read_only_files_at_open() -> Outcome {
    for (flags, what) in [
        (open::WRITE, "WRITE"),
        (open::READ | open::WRITE, "READ | WRITE"),
        (open::READ | open::APPEND, "READ | APPEND"),
        (open::READ | open::TRUNCATE, "READ | TRUNCATE"),
        (open::WRITE | open::CREATE, "WRITE | CREATE"),
    ] {
        expect_errno_of(&format!("open /etc/motd with {what}"), File::open_with("/etc/motd", flags), EROFS)?;
    }
    expect_errno_of("open /bin/true with WRITE", File::open_with("/bin/true", open::WRITE), EROFS)?;
    check!(!fs::read("/etc/motd").context("read")?.is_empty(), "the motd was emptied");
    Ok(())
}

/// A fresh directory under `/tmp` for a case, and a new session there with `limits`.
fn session_in(name: &str, limits: [u64; 3]) -> Result<(String, File), String> {
    let path = format!("/tmp/ut-{name}");
    let _ = fs::rmdir(&path);
    fs::mkdir(&path).context("mkdir")?;
    let directory = File::open_with(&path, open::READ | open::DIRECTORY).context("open the directory")?;
    let session = directory.new_session(limits).context("SESSION")?;
    Ok((path, session))
}

fn services_fs_session_at_its_open_file_limit_leaves_others_working() -> Outcome {
    // The session's own handle is one of its 4 open files.
    let (path, session) = session_in("sess-open", [4, 0, 0])?;
    let sibling = File::open_with(&path, open::READ | open::DIRECTORY).and_then(|directory| directory.new_session([4, 0, 0]));
    let mut held = Vec::new();
    let refusal = loop {
        match session.open_at(".", open::READ | open::DIRECTORY) {
            Ok(file) => held.push(file),
            Err(errno) => break errno,
        }
        if held.len() > 8 {
            break Errno(0);
        }
    };
    let count = held.len();
    // At its limit, the session is refused; this program's session and a sibling are not.
    let own = File::open("/etc/motd").map(drop);
    let sibling_open = sibling.as_ref().map_err(|errno| *errno).and_then(|sibling| sibling.open_at(".", open::READ).map(drop));
    // Closing one gives room again.
    held.pop();
    let again = session.open_at(".", open::READ).map(drop);
    drop((held, session, sibling));
    let removed = fs::rmdir(&path);
    check!(refusal == Errno(EMFILE) && count == 3, "the session opened {count} more, then {refusal:?} (expected 3, then EMFILE)");
    own.context("an open in this program's session")?;
    sibling_open.context("an open in a sibling session")?;
    again.context("an open after one was closed")?;
    removed.context("rmdir")
}

fn services_fs_session_at_its_node_and_byte_limits_leaves_others_working() -> Outcome {
    let before = fs::statfs().context("statfs")?;
    let (path, session) = session_in("sess-space", [0, 3, 8192])?;
    let made: Vec<sys::Result<()>> = ["a", "b"].iter().map(|name| session.mkdir_at(name)).collect();
    let file = session.open_at("a/data", open::WRITE | open::CREATE);
    let file_made = file.as_ref().map(drop).map_err(|errno| *errno);
    let fourth = session.mkdir_at("c");
    let own_mkdir = fs::mkdir(&format!("{path}/own"));
    // 2 blocks fit: a write of 3 is cut to 2, the next refused.
    let chunk = alloc::vec![0x5au8; 3 * 4096];
    let (first, second) = match &file {
        Ok(file) => (file.write(&chunk), file.write(&chunk)),
        Err(errno) => (Err(*errno), Err(*errno)),
    };
    let own_write = fs::write(&format!("{path}/own/data"), &chunk);
    drop((file, session));
    let cleaned = [format!("{path}/own/data"), format!("{path}/a/data")].iter().try_for_each(|file| fs::unlink(file));
    let cleaned_dirs = ["own", "a", "b"].iter().try_for_each(|name| fs::rmdir(&format!("{path}/{name}")));
    let removed = fs::rmdir(&path);
    check!(made.iter().all(Result::is_ok), "the session's mkdirs: {made:?}");
    file_made.context("the third node, a file")?;
    expect_errno_of("a node past the limit", fourth, ENOSPC)?;
    check!(first == Ok(8192), "the first write of 12 KiB gave {first:?}, expected 8192 (the session's limit)");
    expect_errno_of("a write past the byte limit", second, ENOSPC)?;
    own_mkdir.context("a mkdir in this program's session")?;
    own_write.context("a write in this program's session")?;
    cleaned.context("unlink")?;
    cleaned_dirs.context("rmdir")?;
    removed.context("rmdir the top")?;
    let after = fs::statfs().context("statfs after")?;
    check!(after.used == before.used && after.nodes == before.nodes, "after: {after:?}, before: {before:?}");
    Ok(())
}

fn services_fs_sessions_below_cannot_exceed_their_parent() -> Outcome {
    let (path, parent) = session_in("sess-nested", [3, 0, 0])?;
    // Asking for more than the parent has gives no more: both handles count in the parent.
    let child = parent.new_session([100, 0, 0]).context("a session below")?;
    let opened = child.open_at(".", open::READ);
    let refused = child.open_at(".", open::READ);
    drop((opened, child, parent));
    fs::rmdir(&path).context("rmdir")?;
    expect_errno_of("the third open of the parent's three", refused, EMFILE)
}

/// A new endpoint and a send-only handle to it.
fn endpoint_pair() -> Result<(Endpoint, Endpoint), String> {
    let receiver = Endpoint::create().context("endpoint_create")?;
    let caller = receiver.mint(0, false).context("mint")?;
    Ok((receiver, caller))
}

/// Whether the endpoint `name` resolves to is served: a call with a short timeout times out
/// on a live endpoint nobody answers, and fails with `EPIPE` on one whose receiver is gone.
fn call_outcome(name: &str) -> sys::Result<()> {
    let endpoint = names::lookup(name)?;
    endpoint.call_with(&Message::new(1, [0; 4]), &mut Transfer::default(), 10 * MS).map(|_| ())
}

fn services_names_system_names_cannot_be_taken() -> Outcome {
    let (_receiver, impostor) = endpoint_pair()?;
    for name in names::SYSTEM_NAMES {
        expect_errno_of(&format!("registering {name:?}"), names::register(name, &impostor), EPERM)?;
    }
    // The real ones still answer: the root directory, and the supervisor's list.
    let root = names::lookup(fs::SERVICE).context("lookup fs")?;
    call_on(root.handle().raw(), fs::STAT, [0; 4], b"/etc/motd", None).context("stat through the looked-up fs")?;
    let init = names::lookup(supervisor::SERVICE).context("lookup init")?;
    let mut room = [0u8; 256];
    let (_, arrived) = call_on(init.handle().raw(), supervisor::LIST, [0; 4], &[], Some(&mut room)).context("LIST")?;
    let list = core::str::from_utf8(&room[..arrived.len.min(room.len())]).unwrap_or("");
    check!(list.lines().any(|line| line.starts_with("fs ")), "the supervisor's list has no fs: {list:?}");
    Ok(())
}

fn services_names_taken_names_are_refused() -> Outcome {
    let (_first_receiver, first) = endpoint_pair()?;
    let (_second_receiver, second) = endpoint_pair()?;
    let registration = names::register("ut-taken", &first).context("register")?;
    expect_errno_of("registering a taken name", names::register("ut-taken", &second), EEXIST)?;
    expect_errno_of("the looked-up endpoint (the first one)", call_outcome("ut-taken"), ETIMEDOUT)?;
    drop(registration);
    Ok(())
}

fn services_names_only_the_registration_replaces_a_name() -> Outcome {
    let (first_receiver, first) = endpoint_pair()?;
    let (_second_receiver, second) = endpoint_pair()?;
    let registration = names::register("ut-replaced", &first).context("register")?;
    expect_errno_of("replacing under another name", registration.replace("ut-other", second.handle()), EINVAL)?;
    registration.replace("ut-replaced", second.handle()).context("replace through the registration")?;
    drop(first_receiver);
    // The name now leads to the second endpoint, still served.
    expect_errno_of("a call through the replaced name", call_outcome("ut-replaced"), ETIMEDOUT)?;
    Ok(())
}

/// Looks `name` up until it is gone (or a while has passed): the last result.
fn settled_lookup(name: &str) -> sys::Result<Endpoint> {
    let deadline = sys::uptime_ns() + SETTLE_NS;
    loop {
        let found = names::lookup(name);
        if found.is_err() || sys::uptime_ns() > deadline {
            return found;
        }
        let _ = sys::sleep_ms(1);
    }
}

fn services_names_end_with_their_registration() -> Outcome {
    let (_receiver, caller) = endpoint_pair()?;
    let registration = names::register("ut-dropped", &caller).context("register")?;
    names::lookup("ut-dropped").context("lookup while registered")?;
    drop(registration);
    expect_errno_of("lookup after the registration was closed", settled_lookup("ut-dropped"), ENOENT)?;
    // The name is free again.
    let again = names::register("ut-dropped", &caller).context("registering it again")?;
    drop(again);
    Ok(())
}

fn services_names_end_with_the_process_that_registered_them() -> Outcome {
    expect_child_status("register_and_exit", &["ut-exited"], 0)?;
    expect_errno_of("lookup after its owner exited", settled_lookup("ut-exited"), ENOENT)
}

/// `register_and_exit NAME`: registers an endpoint of its own as NAME and exits holding the
/// registration; 0, or 1 if it could not register.
fn helper_register_and_exit(args: &[&str]) -> i32 {
    let [name] = args else { return 2 };
    let registered = Endpoint::create().and_then(|endpoint| endpoint.mint(0, false)).and_then(|caller| names::register(name, &caller));
    match registered {
        Ok(registration) => {
            // Exits with the registration still open.
            let _kept = registration.handle().raw();
            core::mem::forget(registration);
            sys::exit(0)
        }
        Err(_) => 1,
    }
}

fn services_names_quota_per_session() -> Outcome {
    let (_receiver, caller) = endpoint_pair()?;
    let mut held: Vec<Registration> = Vec::new();
    let refusal = loop {
        match names::register(&format!("ut-quota-{}", held.len()), &caller) {
            Ok(registration) => held.push(registration),
            Err(errno) => break errno,
        }
        if held.len() > names::CAPACITY {
            break Errno(0);
        }
    };
    let count = held.len();
    // System names still resolve while this session is at its limit.
    let root = names::lookup(fs::SERVICE);
    held.clear();
    check!(refusal == Errno(ENOSPC), "after {count} names the refusal was {refusal:?}, not ENOSPC");
    check!(count <= names::SESSION_QUOTA, "{count} names fitted, more than the quota of {}", names::SESSION_QUOTA);
    check!(root.is_ok(), "lookup fs at the limit: {root:?}");
    // Closing the registrations gives the room back.
    let deadline = sys::uptime_ns() + SETTLE_NS;
    let again = loop {
        match names::register("ut-quota-again", &caller) {
            Err(Errno(ENOSPC)) if sys::uptime_ns() < deadline => {
                let _ = sys::sleep_ms(1);
            }
            other => break other,
        }
    };
    again.map(drop).context("a registration once the others were closed")?;
    // Every closed registration's name goes (the server's copies of the endpoints with them).
    for index in 0..count {
        expect_errno_of("a name whose registration was closed", settled_lookup(&format!("ut-quota-{index}")), ENOENT)?;
    }
    expect_errno_of("the last name", settled_lookup("ut-quota-again"), ENOENT)
}

fn services_supervisor_restart_needs_the_operator_badge() -> Outcome {
    let published = names::lookup(supervisor::SERVICE).context("lookup init")?;
    let list = |handle: u64| -> Result<String, String> {
        let mut room = [0u8; 256];
        let (_, arrived) = call_on(handle, supervisor::LIST, [0; 4], &[], Some(&mut room)).context("LIST")?;
        Ok(String::from(core::str::from_utf8(&room[..arrived.len.min(room.len())]).unwrap_or("")))
    };
    let before = list(published.handle().raw())?;
    for service in ["fs", "names", "console", "sh"] {
        let refused = call_on(published.handle().raw(), supervisor::RESTART, [0; 4], service.as_bytes(), None);
        expect_errno_of(&format!("RESTART {service} through the published handle"), refused, EPERM)?;
    }
    // A handle copied from the published one carries its badge, and no more right.
    let copy = OwnedHandle::from_raw(
        userlib::ipc::duplicate(published.handle().raw(), abi::handle::rights::SEND).context("duplicate")?,
    );
    let refused = call_on(copy.raw(), supervisor::RESTART, [0; 4], b"fs", None);
    expect_errno_of("RESTART through a copy", refused, EPERM)?;
    let after = list(published.handle().raw())?;
    check!(after == before, "the services changed: {before:?} before, {after:?} after");
    // The operator's handle this program got from init has the right: a name that is no
    // service is the one answer it can get without killing anything.
    let operator = supervisor::PROGRAM_HANDLE;
    check!(
        matches!(userlib::ipc::handle_info(operator), Ok((Some(abi::handle::Kind::Endpoint), _))),
        "handle {operator} is not the operator's handle (run usertests as the --init program)"
    );
    expect_errno_of("RESTART of no service through the operator's handle", call_on(operator, supervisor::RESTART, [0; 4], b"nothing", None), ENOENT)
}

/// The bytes `write_until_refused` writes at `offset`: a pattern that tells every position
/// apart, so a lost or misplaced piece shows.
fn pattern_at(offset: usize) -> u8 {
    (offset.wrapping_mul(7) ^ (offset >> 12)) as u8
}

/// Bytes of each of `write_until_refused`'s writes.
const STREAM_CHUNK: usize = 4096;

/// `write_until_refused PATH`: creates PATH and writes the pattern to it in chunks of
/// [`STREAM_CHUNK`] until a write fails (fs was killed: `EPIPE`); 0 then, 1 if it could not
/// start.
fn helper_write_until_refused(args: &[&str]) -> i32 {
    let [path] = args else { return 2 };
    let Ok(file) = File::create(path) else { return 1 };
    let mut offset = 0;
    loop {
        let chunk: Vec<u8> = (offset..offset + STREAM_CHUNK).map(pattern_at).collect();
        match file.write(&chunk) {
            Ok(count) => offset += count,
            Err(_) => return 0,
        }
    }
}

/// `fs_survives_restart`: fills `/tmp` with files made by every kind of change, restarts fs
/// through the operator's handle (once while a child writes a file), and checks that the new
/// fs has them all, byte for byte, that old handles get `EPIPE`, and that the file being
/// written when fs died holds a whole number of the child's writes. 0 if so; 1, after
/// printing why, if not.
fn helper_fs_survives_restart(_: &[&str]) -> i32 {
    match fs_survives_restart() {
        Ok(()) => {
            userlib::println!("fs_survives_restart: every file came back");
            0
        }
        Err(why) => {
            userlib::println!("fs_survives_restart: {why}");
            1
        }
    }
}

/// What `fs_survives_restart` leaves in `/tmp`: path and bytes.
fn kept_files() -> Vec<(String, Vec<u8>)> {
    let big: Vec<u8> = (0..200_000).map(pattern_at).collect();
    let mut patched = big[..50_000].to_vec();
    patched[10_000..10_005].copy_from_slice(b"patch");
    alloc::vec![
        (String::from("/tmp/keep/big"), big),
        (String::from("/tmp/keep/sub/deeper/small"), b"small file".to_vec()),
        (String::from("/tmp/keep/renamed"), b"moved here".to_vec()),
        (String::from("/tmp/keep/patched"), patched),
        (String::from("/tmp/keep/empty"), Vec::new()),
    ]
}

fn fs_survives_restart() -> Outcome {
    fs::mkdir("/tmp/keep").context("mkdir")?;
    fs::mkdir("/tmp/keep/sub").context("mkdir sub")?;
    fs::mkdir("/tmp/keep/sub/deeper").context("mkdir deeper")?;
    fs::mkdir("/tmp/keep/gone-dir").context("mkdir gone-dir")?;
    fs::rmdir("/tmp/keep/gone-dir").context("rmdir")?;
    let files = kept_files();
    for (path, bytes) in &files {
        match path.as_str() {
            "/tmp/keep/renamed" => {
                fs::write("/tmp/keep/before-rename", bytes).context("write")?;
                fs::rename("/tmp/keep/before-rename", path).context("rename")?;
            }
            "/tmp/keep/patched" => {
                // Written long, then cut and patched in the middle.
                let file = File::create(path).context("create")?;
                file.write_all(&files[0].1).context("write")?;
                file.truncate(50_000).context("truncate")?;
                file.seek(fs::SEEK_SET, 10_000).context("seek")?;
                file.write_all(b"patch").context("patch")?;
            }
            _ => fs::write(path, bytes).context(path)?,
        }
    }
    fs::write("/tmp/keep/unlinked", b"x").context("write")?;
    fs::unlink("/tmp/keep/unlinked").context("unlink")?;
    let held = File::open("/tmp/keep/big").context("open")?;

    // A child writes while fs is killed.
    let writer = spawn_child("write_until_refused", &["/tmp/keep/stream"])?;
    let _ = sys::sleep_ms(200);
    restart_fs()?;
    let ended = finish_within(writer, "the writer")?;
    check!(ended == abi::ExitInfo::exited(0), "the writer {}", userlib::process::Ending(ended));
    let mut room = [0u8; 16];
    let stale = sys::read(held.handle().raw(), &mut room);
    check!(stale == Err(Errno(EPIPE)), "a read on a handle from the old fs gave {stale:?}, not EPIPE");
    drop(held);
    let stream = fs::read("/tmp/keep/stream").context("read the stream")?;
    check!(stream.len() % STREAM_CHUNK == 0, "the stream holds {} bytes, not whole writes of {STREAM_CHUNK}", stream.len());
    check!(stream.iter().enumerate().all(|(offset, &byte)| byte == pattern_at(offset)), "the stream's bytes differ from what was written");
    check_files(&files)?;
    // A second restart replays the first one's replay (and what came after) as well.
    fs::unlink("/tmp/keep/stream").context("unlink the stream")?;
    restart_fs()?;
    check_files(&files)?;
    expect_errno_of("the stream after it was unlinked", fs::read("/tmp/keep/stream"), ENOENT)?;
    expect_errno_of("a file unlinked before the restarts", fs::read("/tmp/keep/unlinked"), ENOENT)?;
    expect_errno_of("a directory removed before the restarts", fs::metadata("/tmp/keep/gone-dir"), ENOENT)?;
    Ok(())
}

/// Checks that every file holds its bytes.
fn check_files(files: &[(String, Vec<u8>)]) -> Outcome {
    for (path, bytes) in files {
        let found = fs::read(path).context(path)?;
        check!(found.len() == bytes.len(), "{path} holds {} bytes, not {}", found.len(), bytes.len());
        if let Some(offset) = found.iter().zip(bytes).position(|(found, expected)| found != expected) {
            return Err(format!("{path} differs at byte {offset}"));
        }
    }
    Ok(())
}

/// Restarts fs through the operator's handle and waits until the new one answers through
/// the name service; makes its root the current directory.
fn restart_fs() -> Outcome {
    let old = names::lookup(fs::SERVICE).context("lookup fs")?;
    call_on(supervisor::PROGRAM_HANDLE, supervisor::RESTART, [0; 4], b"fs", None).context("RESTART fs")?;
    let deadline = sys::uptime_ns() + 10 * SETTLE_NS;
    loop {
        // The old fs's handle fails once it is gone; the name then leads to the new one.
        let old_gone = call_on(old.handle().raw(), fs::STAT, [0; 4], b"/", None).is_err();
        if old_gone && let Ok(root) = names::lookup(fs::SERVICE)
            && call_on(root.handle().raw(), fs::STAT, [0; 4], b"/tmp", None).is_ok()
        {
            fs::use_current_dir_handle(root.into_raw());
            return Ok(());
        }
        check!(sys::uptime_ns() < deadline, "fs did not come back within {} s", 10 * SETTLE_NS / 1_000_000_000);
        let _ = sys::sleep_ms(10);
    }
}
