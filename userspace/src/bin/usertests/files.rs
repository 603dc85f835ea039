//! Files: the `fs` server through `userlib::fs`, and `read`/`write` on its handles through the
//! kernel's stream calls. Every case works under `/tmp/ut-*` and removes what it made. The
//! hostile ones: `..` above the root, empty paths, names of 1 KiB, NUL bytes inside a path,
//! very deep directories, a file grown until the file system is full (and freed again, with
//! everything back), writing to a directory, unlinking an open file, renaming a directory
//! into itself, reading and writing past the end, bad buffer pointers, malformed requests,
//! and a process that exits with files open.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use abi::errno::*;
use abi::syscall::{READ, WRITE};
use userlib::fs::{self, File, open};
use userlib::ipc::{self, Endpoint, Message, Transfer};
use userlib::sys::{self, Errno};
use userlib::testing::{Case, Context, Outcome, Helper};
use userlib::{check, process};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here files_write_then_read_back,
    here files_append_writes_at_the_end,
    here files_seek_moves_the_offset,
    here files_read_past_the_end_is_empty,
    here files_write_past_the_end_fills_with_zeros,
    here files_truncate_shrinks_and_grows,
    here files_dot_dot_above_the_root_is_the_root,
    here files_empty_paths_are_refused,
    here files_names_of_1_kib_are_refused,
    here files_nul_bytes_in_paths_are_refused,
    here files_very_deep_directories_end_in_enametoolong,
    here files_fill_until_full_then_free_everything,
    here files_writing_to_a_directory_is_refused,
    here files_unlinked_open_file_lives_until_closed,
    here files_rename_a_directory_into_itself_is_refused,
    here files_rename_replaces_only_what_it_may,
    here files_mkdir_errors,
    here files_rmdir_and_unlink_errors,
    here files_only_tmp_is_writable,
    here files_directories_list_in_name_order,
    here files_relative_paths_follow_the_current_directory,
    here files_bad_buffer_pointers_are_refused,
    here files_open_flags_are_checked,
    here files_seek_errors,
    here files_duplicated_handles_share_the_offset,
    here files_many_open_files_close_again,
    here files_programs_start_from_any_file,
    here files_malformed_requests_are_answered,
    here files_exit_with_open_files_leaks_nothing,
];

pub const HELPERS: &[(&str, Helper)] = &[("hold_files_and_pipes", helper_hold_files_and_pipes)];

/// How long fs may take to handle the close notices of a process that ended.
const SETTLE_NS: u64 = 2_000_000_000;

/// A fresh path under `/tmp` for a case (removed first if a failed run left it).
fn scratch(name: &str) -> String {
    let path = format!("/tmp/ut-{name}");
    let _ = fs::unlink(&path);
    path
}

fn expect_fs_errno<T: core::fmt::Debug>(what: &str, result: sys::Result<T>, errno: i64) -> Outcome {
    match result {
        Err(Errno(found)) if found == errno => Ok(()),
        other => Err(format!("{what}: returned {other:?}, expected {}", abi::errno::name(errno))),
    }
}

fn files_write_then_read_back() -> Outcome {
    let path = scratch("write-read");
    fs::write(&path, b"hello, file\n").context("write")?;
    let back = fs::read(&path).context("read")?;
    check!(back == b"hello, file\n", "read back {back:?}");
    let metadata = fs::metadata(&path).context("stat")?;
    check!(metadata.kind == fs::KIND_FILE && metadata.size == 12, "stat says {metadata:?}");
    fs::unlink(&path).context("unlink")
}

fn files_append_writes_at_the_end() -> Outcome {
    let path = scratch("append");
    fs::write(&path, b"one\n").context("write")?;
    let file = File::open_with(&path, open::WRITE | open::APPEND).context("open to append")?;
    file.seek(fs::SEEK_SET, 0).context("seek")?;
    file.write_all(b"two\n").context("append")?;
    drop(file);
    let back = fs::read(&path).context("read")?;
    check!(back == b"one\ntwo\n", "after appending: {back:?}");
    fs::unlink(&path).context("unlink")
}

fn files_seek_moves_the_offset() -> Outcome {
    let path = scratch("seek");
    fs::write(&path, b"0123456789").context("write")?;
    let file = File::open(&path).context("open")?;
    let mut byte = [0u8; 1];
    for (whence, delta, offset, expected) in
        [(fs::SEEK_SET, 3, 3, b'3'), (fs::SEEK_CURRENT, 2, 6, b'6'), (fs::SEEK_END, -1, 9, b'9'), (fs::SEEK_CURRENT, -8, 2, b'2')]
    {
        let moved = file.seek(whence, delta).context("seek")?;
        check!(moved == offset, "seek({whence}, {delta}) went to {moved}, not {offset}");
        file.read(&mut byte).context("read")?;
        check!(byte[0] == expected, "at {offset} read {:?}", byte[0] as char);
    }
    drop(file);
    fs::unlink(&path).context("unlink")
}

fn files_read_past_the_end_is_empty() -> Outcome {
    let path = scratch("past-end");
    fs::write(&path, b"short").context("write")?;
    let file = File::open(&path).context("open")?;
    let mut buffer = [0u8; 16];
    for offset in [5, 6, 4096, 1 << 40, i64::MAX] {
        file.seek(fs::SEEK_SET, offset).context("seek")?;
        let read = file.read(&mut buffer).context("read past the end")?;
        check!(read == 0, "a read at {offset} of a 5-byte file returned {read} bytes");
    }
    drop(file);
    fs::unlink(&path).context("unlink")
}

fn files_write_past_the_end_fills_with_zeros() -> Outcome {
    let path = scratch("hole");
    let file = File::create(&path).context("create")?;
    file.write_all(b"ab").context("write")?;
    file.seek(fs::SEEK_SET, 10_000).context("seek")?;
    file.write_all(b"z").context("write past the end")?;
    file.seek(fs::SEEK_SET, fs::FILE_MAX as i64).context("seek to the largest size")?;
    expect_fs_errno("a write past the largest file", file.write(b"x"), EFBIG)?;
    drop(file);
    let back = fs::read(&path).context("read")?;
    check!(back.len() == 10_001, "the file is {} bytes, not 10001", back.len());
    check!(&back[..2] == b"ab" && back[2..10_000].iter().all(|&byte| byte == 0) && back[10_000] == b'z', "the hole is not zeros");
    fs::unlink(&path).context("unlink")
}

fn files_truncate_shrinks_and_grows() -> Outcome {
    let path = scratch("truncate");
    let file = File::open_with(&path, open::READ | open::WRITE | open::CREATE).context("create")?;
    file.write_all(&[7u8; 6000]).context("write")?;
    file.truncate(3).context("shrink")?;
    file.truncate(5000).context("grow")?;
    check!(file.metadata().context("fstat")?.size == 5000, "the length is not 5000");
    file.seek(fs::SEEK_SET, 0).context("seek")?;
    let back = file.read_to_end().context("read")?;
    check!(back.len() == 5000 && back[..3] == [7, 7, 7] && back[3..].iter().all(|&byte| byte == 0), "cut bytes came back");
    expect_fs_errno("truncate past the largest file", file.truncate(fs::FILE_MAX + 1), EFBIG)?;
    drop(file);
    fs::unlink(&path).context("unlink")
}

fn files_dot_dot_above_the_root_is_the_root() -> Outcome {
    let root = fs::metadata("/").context("stat /")?;
    for path in ["/..", "/../..", "/../../../..", "/./../.", "/tmp/../../.."] {
        let found = fs::metadata(path).context(path)?;
        check!(found.node == root.node, "{path} is node {}, the root is {}", found.node, root.node);
    }
    let motd = fs::read("/../../etc/../etc/motd").context("read through ..")?;
    check!(!motd.is_empty(), "the motd read through .. is empty");
    expect_fs_errno("mkdir /..", fs::mkdir("/.."), EINVAL)?;
    expect_fs_errno("rmdir /", fs::rmdir("/"), EINVAL)
}

fn files_empty_paths_are_refused() -> Outcome {
    expect_fs_errno("open of an empty path", File::open(""), ENOENT)?;
    expect_fs_errno("mkdir of an empty path", fs::mkdir(""), ENOENT)?;
    expect_fs_errno("unlink of an empty path", fs::unlink(""), ENOENT)?;
    expect_fs_errno("rename of an empty path", fs::rename("", "/tmp/ut-empty"), ENOENT)?;
    expect_fs_errno("spawn of an empty path", process::spawn("", &["x"]), ENOENT)
}

fn files_names_of_1_kib_are_refused() -> Outcome {
    let long = format!("/tmp/{}", "n".repeat(1024));
    expect_fs_errno("create with a 1 KiB name", File::create(&long), ENAMETOOLONG)?;
    expect_fs_errno("mkdir with a 1 KiB name", fs::mkdir(&long), ENAMETOOLONG)?;
    let longest = format!("/tmp/{}", "n".repeat(fs::NAME_MAX));
    fs::write(&longest, b"x").context("a name of NAME_MAX bytes")?;
    fs::unlink(&longest).context("unlink")?;
    let over = format!("/tmp/{}", "n".repeat(fs::NAME_MAX + 1));
    expect_fs_errno("a name of NAME_MAX + 1 bytes", File::create(&over), ENAMETOOLONG)?;
    let path = format!("/tmp/{}", "a/".repeat(fs::PATH_MAX));
    expect_fs_errno("a path of 2 KiB", fs::metadata(&path), ENAMETOOLONG)
}

fn files_nul_bytes_in_paths_are_refused() -> Outcome {
    for path in ["/tmp/ut-nul\0", "\0", "/etc\0/motd", "/tmp/ut-\0nul"] {
        expect_fs_errno(&format!("create {path:?}"), File::create(path), EINVAL)?;
        expect_fs_errno(&format!("stat {path:?}"), fs::metadata(path), EINVAL)?;
    }
    expect_fs_errno("rename to a name with a NUL", fs::rename("/etc/motd", "/tmp/a\0b"), EINVAL)
}

fn files_very_deep_directories_end_in_enametoolong() -> Outcome {
    let mut path = scratch("deep");
    let mut made = Vec::new();
    let refusal = loop {
        match fs::mkdir(&path) {
            Ok(()) => made.push(path.clone()),
            Err(errno) => break errno,
        }
        path.push_str("/d");
    };
    let depth = made.len();
    for directory in made.iter().rev() {
        fs::rmdir(directory).context(&format!("rmdir at depth {depth}"))?;
    }
    check!(refusal == Errno(ENAMETOOLONG), "mkdir at depth {depth} failed with {refusal}, not ENAMETOOLONG");
    check!(depth > 400, "only {depth} levels fitted in a path of {} bytes", fs::PATH_MAX);
    Ok(())
}

fn files_fill_until_full_then_free_everything() -> Outcome {
    let before = fs::statfs().context("statfs")?;
    let paths = [scratch("full-a"), scratch("full-b")];
    let chunk = vec![0xabu8; 64 * 1024];
    let mut written = 0u64;
    let mut refusal = None;
    'fill: for path in &paths {
        let file = File::create(path).context("create")?;
        while refusal.is_none() {
            match file.write(&chunk) {
                Ok(count) if count == chunk.len() => written += count as u64,
                Ok(count) => {
                    written += count as u64;
                    continue 'fill;
                }
                Err(errno) => refusal = Some(errno),
            }
        }
    }
    let full = fs::statfs().context("statfs when full")?;
    // usertests runs in a session `init` started, which may hold `SESSION_LIMITS` bytes.
    let limit = full.capacity.min(fs::SESSION_LIMITS[2]);
    check!(refusal == Some(Errno(ENOSPC)) || refusal == Some(Errno(EFBIG)), "the fill stopped with {refusal:?}");
    check!(full.used == before.used + limit, "full, fs holds {} of {} bytes (the session's limit {limit})", full.used, full.capacity);
    check!(written >= limit - 4096, "only {written} bytes fitted");
    expect_fs_errno("a new file's first write when full", File::create(&scratch("full-c")).and_then(|file| file.write(b"x")), ENOSPC)?;
    for path in paths.iter().chain([&scratch("full-c")]) {
        let _ = fs::unlink(path);
    }
    let after = fs::statfs().context("statfs after")?;
    check!(after == before, "after freeing: {after:?}, before: {before:?}");
    fs::write(&paths[0], b"room again").context("a write after freeing")?;
    fs::unlink(&paths[0]).context("unlink")
}

fn files_writing_to_a_directory_is_refused() -> Outcome {
    expect_fs_errno("open /tmp for writing", File::open_with("/tmp", open::WRITE), EISDIR)?;
    expect_fs_errno("create over /tmp", File::create("/tmp"), EISDIR)?;
    let directory = File::open("/tmp").context("open /tmp")?;
    let raw = directory.handle().raw();
    expect_errno("write to a directory", call(WRITE, [raw, b"x".as_ptr() as u64, 1, 0, 0, 0]), EISDIR)?;
    let mut buffer = [0u8; 8];
    expect_errno("read of a directory", call(READ, [raw, buffer.as_mut_ptr() as u64, 8, 0, 0, 0]), EISDIR)?;
    expect_fs_errno("truncate a directory", directory.truncate(0), EBADF)?;
    expect_fs_errno("load a directory as a program", fs::load_image("/bin"), EISDIR)
}

fn files_unlinked_open_file_lives_until_closed() -> Outcome {
    let before = fs::statfs().context("statfs")?;
    let path = scratch("unlinked");
    fs::write(&path, &[1u8; 9000]).context("write")?;
    let file = File::open(&path).context("open")?;
    fs::unlink(&path).context("unlink")?;
    expect_fs_errno("stat of the unlinked name", fs::metadata(&path), ENOENT)?;
    let back = file.read_to_end().context("read through the open handle")?;
    check!(back.len() == 9000 && back.iter().all(|&byte| byte == 1), "the open file lost its bytes");
    fs::write(&path, b"a new file of the same name").context("reuse the name")?;
    fs::unlink(&path).context("unlink again")?;
    drop(file);
    let after = settled_statfs(&before)?;
    check!(after == before, "after closing: {after:?}, before: {before:?}");
    Ok(())
}

fn files_rename_a_directory_into_itself_is_refused() -> Outcome {
    let top = scratch("into-self");
    fs::mkdir(&top).context("mkdir")?;
    fs::mkdir(&format!("{top}/inner")).context("mkdir inner")?;
    expect_fs_errno("rename a directory into itself", fs::rename(&top, &format!("{top}/moved")), EINVAL)?;
    expect_fs_errno("rename into its own child", fs::rename(&top, &format!("{top}/inner/moved")), EINVAL)?;
    fs::rename(&top, &top).context("rename onto itself")?;
    fs::rmdir(&format!("{top}/inner")).context("rmdir inner")?;
    fs::rmdir(&top).context("rmdir")
}

fn files_rename_replaces_only_what_it_may() -> Outcome {
    let (a, b, directory, full) = (scratch("ren-a"), scratch("ren-b"), scratch("ren-dir"), scratch("ren-full"));
    fs::write(&a, b"from a").context("write a")?;
    fs::write(&b, b"from b").context("write b")?;
    fs::mkdir(&directory).context("mkdir")?;
    fs::mkdir(&full).context("mkdir full")?;
    fs::write(&format!("{full}/x"), b"").context("fill full")?;
    expect_fs_errno("a file over a directory", fs::rename(&a, &directory), EISDIR)?;
    expect_fs_errno("a directory over a file", fs::rename(&directory, &a), ENOTDIR)?;
    expect_fs_errno("a directory over a non-empty one", fs::rename(&directory, &full), ENOTEMPTY)?;
    expect_fs_errno("a missing name", fs::rename(&scratch("ren-missing"), &a), ENOENT)?;
    fs::rename(&a, &b).context("a file over a file")?;
    check!(fs::read(&b).context("read")? == b"from a", "the replaced file kept its bytes");
    expect_fs_errno("the old name", fs::metadata(&a), ENOENT)?;
    fs::rename(&directory, &format!("{full}/moved")).context("a directory into another")?;
    fs::unlink(&b).context("unlink")?;
    fs::rmdir(&format!("{full}/moved")).context("rmdir")?;
    fs::unlink(&format!("{full}/x")).context("unlink")?;
    fs::rmdir(&full).context("rmdir")
}

fn files_mkdir_errors() -> Outcome {
    let directory = scratch("mkdir");
    fs::mkdir(&directory).context("mkdir")?;
    expect_fs_errno("mkdir of an existing directory", fs::mkdir(&directory), EEXIST)?;
    expect_fs_errno("mkdir under a missing parent", fs::mkdir(&format!("{directory}/no/such")), ENOENT)?;
    fs::write(&format!("{directory}/file"), b"").context("create")?;
    expect_fs_errno("mkdir under a file", fs::mkdir(&format!("{directory}/file/sub")), ENOTDIR)?;
    expect_fs_errno("mkdir in /etc", fs::mkdir("/etc/ut-mkdir"), EROFS)?;
    fs::unlink(&format!("{directory}/file")).context("unlink")?;
    fs::rmdir(&directory).context("rmdir")
}

fn files_rmdir_and_unlink_errors() -> Outcome {
    let directory = scratch("rmdir");
    fs::mkdir(&directory).context("mkdir")?;
    fs::write(&format!("{directory}/file"), b"").context("create")?;
    expect_fs_errno("rmdir of a non-empty directory", fs::rmdir(&directory), ENOTEMPTY)?;
    expect_fs_errno("rmdir of a file", fs::rmdir(&format!("{directory}/file")), ENOTDIR)?;
    expect_fs_errno("unlink of a directory", fs::unlink(&directory), EISDIR)?;
    expect_fs_errno("unlink of a missing file", fs::unlink(&format!("{directory}/missing")), ENOENT)?;
    expect_fs_errno("rmdir of /tmp", fs::rmdir("/tmp"), EROFS)?;
    fs::unlink(&format!("{directory}/file")).context("unlink")?;
    fs::rmdir(&directory).context("rmdir")
}

fn files_only_tmp_is_writable() -> Outcome {
    expect_fs_errno("create in /etc", File::create("/etc/ut-new"), EROFS)?;
    expect_fs_errno("unlink /bin/true", fs::unlink("/bin/true"), EROFS)?;
    expect_fs_errno("rename /etc/motd", fs::rename("/etc/motd", "/tmp/ut-motd"), EROFS)?;
    expect_fs_errno("open /etc/motd to write", File::open_with("/etc/motd", open::READ | open::WRITE), EROFS)?;
    let motd = File::open("/etc/motd").context("open /etc/motd")?;
    expect_fs_errno("write to /etc/motd opened to read", motd.write(b"x"), EBADF)?;
    expect_fs_errno("truncate /etc/motd opened to read", motd.truncate(0), EBADF)?;
    check!(!fs::read("/etc/motd").context("read")?.is_empty(), "the motd was emptied");
    Ok(())
}

fn files_directories_list_in_name_order() -> Outcome {
    let directory = scratch("list");
    fs::mkdir(&directory).context("mkdir")?;
    for (name, size) in [("b", 2), ("a", 1), ("c", 3)] {
        fs::write(&format!("{directory}/{name}"), &vec![0u8; size]).context("create")?;
    }
    fs::mkdir(&format!("{directory}/d")).context("mkdir d")?;
    let listed: Vec<(String, u64, u64)> =
        fs::read_dir(&directory).context("read_dir")?.into_iter().map(|entry| (entry.name, entry.kind, entry.size)).collect();
    let expected = [("a", fs::KIND_FILE, 1), ("b", fs::KIND_FILE, 2), ("c", fs::KIND_FILE, 3), ("d", fs::KIND_DIRECTORY, 0)];
    check!(
        listed.len() == 4 && listed.iter().zip(expected).all(|(found, (name, kind, size))| found.0 == name && found.1 == kind && found.2 == size),
        "listed {listed:?}"
    );
    let bin = fs::read_dir("/bin").context("read_dir /bin")?;
    check!(bin.len() > 20 && bin.iter().any(|entry| entry.name == "usertests"), "/bin lists {} entries", bin.len());
    for name in ["a", "b", "c"] {
        fs::unlink(&format!("{directory}/{name}")).context("unlink")?;
    }
    fs::rmdir(&format!("{directory}/d")).context("rmdir")?;
    fs::rmdir(&directory).context("rmdir")
}

fn files_relative_paths_follow_the_current_directory() -> Outcome {
    let directory = scratch("cwd");
    fs::mkdir(&directory).context("mkdir")?;
    // The suite's own current directory comes back at the end (a copy: the same object).
    let original = fs::current_dir_handle().ok_or("no current directory")?;
    let saved = ipc::duplicate(original, abi::handle::rights::ALL).context("duplicate the current directory")?;
    fs::set_current_dir(&directory).context("cd")?;
    let outcome = (|| {
        check!(fs::current_dir().context("pwd")? == directory, "the current directory is not {directory}");
        fs::write("relative", b"here").context("create relative")?;
        check!(fs::read(&format!("{directory}/relative")).context("read absolute")? == b"here", "relative went elsewhere");
        check!(fs::read("./relative").context("read ./")? == b"here", "./relative differs");
        check!(fs::read("../ut-cwd/relative").context("read ../")? == b"here", "../ut-cwd/relative differs");
        fs::set_current_dir("..").context("cd ..")?;
        check!(fs::current_dir().context("pwd")? == "/tmp", "cd .. did not lead to /tmp");
        fs::unlink("ut-cwd/relative").context("unlink")
    })();
    if let Some(replaced) = fs::current_dir_handle() {
        fs::use_current_dir_handle(saved);
        let _ = ipc::close(replaced);
    }
    outcome?;
    fs::rmdir(&directory).context("rmdir")
}

fn files_bad_buffer_pointers_are_refused() -> Outcome {
    let path = scratch("pointers");
    fs::write(&path, b"original").context("write")?;
    let file = File::open_with(&path, open::READ | open::WRITE).context("open")?;
    let raw = file.handle().raw();
    for &(pointer, what) in BAD_POINTERS {
        expect_errno(&format!("write to a file from {what}"), call(WRITE, [raw, pointer, 8, 0, 0, 0]), EFAULT)?;
        expect_errno(&format!("read of a file into {what}"), call(READ, [raw, pointer, 8, 0, 0, 0]), EFAULT)?;
    }
    let edge = Edge::new()?;
    expect_errno("write across the edge", call(WRITE, [raw, edge.before_end(4), 8, 0, 0, 0]), EFAULT)?;
    expect_errno("read into .rodata", call(READ, [raw, READ_ONLY.as_ptr() as u64, 8, 0, 0, 0]), EFAULT)?;
    drop(file);
    check!(fs::read(&path).context("read")? == b"original", "a refused write changed the file");
    fs::unlink(&path).context("unlink")
}

fn files_open_flags_are_checked() -> Outcome {
    let path = scratch("flags");
    expect_fs_errno("open of a missing file", File::open(&path), ENOENT)?;
    fs::write(&path, b"x").context("create")?;
    expect_fs_errno("exclusive create of an existing file", File::open_with(&path, open::WRITE | open::CREATE | open::EXCLUSIVE), EEXIST)?;
    expect_fs_errno("open a file as a directory", File::open_with(&path, open::DIRECTORY), ENOTDIR)?;
    expect_fs_errno("unknown flags", File::open_with(&path, 1 << 40), EINVAL)?;
    expect_fs_errno("a path through a file", File::open(&format!("{path}/below")), ENOTDIR)?;
    let reader = File::open(&path).context("open to read")?;
    expect_fs_errno("write through a handle opened to read", reader.write(b"y"), EBADF)?;
    let writer = File::open_with(&path, open::WRITE).context("open to write")?;
    expect_fs_errno("read through a handle opened to write", writer.read(&mut [0u8; 4]), EBADF)?;
    drop((reader, writer));
    fs::unlink(&path).context("unlink")
}

fn files_seek_errors() -> Outcome {
    let path = scratch("seek-errors");
    fs::write(&path, b"12345").context("write")?;
    let file = File::open(&path).context("open")?;
    expect_fs_errno("seek before the start", file.seek(fs::SEEK_SET, -1), EINVAL)?;
    expect_fs_errno("seek back past the start", file.seek(fs::SEEK_END, -6), EINVAL)?;
    expect_fs_errno("an unknown whence", file.seek(3, 0), EINVAL)?;
    expect_fs_errno("seek overflowing", file.seek(fs::SEEK_END, i64::MAX), EINVAL)?;
    let directory = File::open("/etc").context("open /etc")?;
    expect_fs_errno("seek in a directory", directory.seek(fs::SEEK_SET, 0), EISDIR)?;
    drop((file, directory));
    fs::unlink(&path).context("unlink")
}

fn files_duplicated_handles_share_the_offset() -> Outcome {
    let path = scratch("shared-offset");
    let file = File::create(&path).context("create")?;
    let copy = File::from_raw(file.handle().duplicate(abi::handle::rights::ALL).context("duplicate")?.into_raw());
    file.write_all(b"first,").context("write")?;
    copy.write_all(b"second").context("write through the copy")?;
    drop((file, copy));
    check!(fs::read(&path).context("read")? == b"first,second", "the copy did not continue at the shared offset");
    fs::unlink(&path).context("unlink")
}

fn files_many_open_files_close_again() -> Outcome {
    let before = fs::statfs().context("statfs")?;
    let objects = info()?.kernel_objects;
    let files: Vec<File> = (0..200).map(|_| File::open("/etc/motd")).collect::<sys::Result<_>>().context("open 200 times")?;
    let mut byte = [0u8; 1];
    for file in &files {
        check!(file.read(&mut byte).context("read")? == 1, "an open file read nothing");
    }
    check!(fs::statfs().context("statfs")?.open_files == before.open_files + 200, "fs does not count 200 open files");
    drop(files);
    let after = settled_statfs(&before)?;
    check!(after.open_files == before.open_files, "{} files still open, {} before", after.open_files, before.open_files);
    let objects_after = info()?.kernel_objects;
    check!(objects_after == objects, "{objects_after} kernel objects, {objects} before");
    Ok(())
}

fn files_programs_start_from_any_file() -> Outcome {
    let path = scratch("true-copy");
    fs::write(&path, &fs::read("/bin/true").context("read /bin/true")?).context("copy")?;
    let child = process::spawn(&path, &["true-copy"]).context("spawn a copy of true")?;
    let ended = child.wait().context("wait")?;
    check!(ended == abi::ExitInfo::exited(0), "the copy of true {}", process::Ending(ended));
    fs::unlink(&path).context("unlink")
}

/// Raw calls to the root directory with what a client must not send.
fn files_malformed_requests_are_answered() -> Outcome {
    let root = Endpoint::from_raw(fs::directory_handle().context("the root")?);
    let outcome = (|| {
        let ask = |label: u64, words: [u64; 4], bytes: &[u8], handles: &[u32]| -> Result<u64, String> {
            let mut transfer = Transfer { send: bytes, send_handles: handles, ..Transfer::default() };
            root.call_with(&Message::new(label, words), &mut transfer, abi::ipc::FOREVER).map(|(reply, _)| reply.label).context("call fs")
        };
        let errno_of = |label: u64| userlib::fs::status(label).err().map(|errno| errno.0);
        check!(errno_of(ask(0, [0; 4], b"", &[])?) == Some(EINVAL), "label 0 was not refused");
        check!(errno_of(ask(9999, [u64::MAX; 4], b"/etc", &[])?) == Some(EINVAL), "an unknown label was not refused");
        check!(errno_of(ask(fs::OPEN, [0; 4], b"/etc/\xff\xfe", &[])?) == Some(EINVAL), "a path that is not UTF-8 was opened");
        check!(errno_of(ask(fs::OPEN, [0; 4], &[b'/'; 60_000], &[])?) == Some(ENAMETOOLONG), "a 60 KB path was accepted");
        check!(errno_of(ask(fs::RENAME, [0; 4], b"/tmp/no-separator", &[])?) == Some(EINVAL), "a rename without a NUL");
        check!(errno_of(ask(fs::READDIR, [u64::MAX; 4], b"", &[])?).is_none(), "a listing from index u64::MAX failed");
        let carried = ipc::duplicate(1, abi::handle::rights::ALL).context("duplicate")?;
        check!(errno_of(ask(fs::STAT, [0; 4], b"/etc/motd", &[carried as u32])?).is_none(), "a stat carrying a handle failed");
        expect_errno("the handle sent along", ipc::handle_info(carried).map(|_| 0).unwrap_or_else(|errno| -errno.0), EBADF)?;
        check!(fs::read("/etc/motd").is_ok(), "fs stopped answering");
        Ok(())
    })();
    root.into_raw();
    outcome
}

fn files_exit_with_open_files_leaks_nothing() -> Outcome {
    let before = fs::statfs().context("statfs")?;
    let objects = info()?.kernel_objects;
    expect_child_status("hold_files_and_pipes", &[], 0)?;
    let after = settled_statfs(&before)?;
    check!(after == before, "after the child: {after:?}, before: {before:?}");
    let objects_after = info()?.kernel_objects;
    check!(objects_after == objects, "{objects_after} kernel objects, {objects} before");
    Ok(())
}

/// `hold_files_and_pipes`: opens files (one unlinked while open, one written), a directory,
/// and pipes with bytes in them, and exits without closing any; 0, or 1 if a step failed.
fn helper_hold_files_and_pipes(_: &[&str]) -> i32 {
    let made = (|| -> sys::Result<()> {
        let path = "/tmp/ut-held";
        let written = File::create(path)?;
        written.write_all(&[3u8; 5000])?;
        let reader = File::open(path)?;
        fs::unlink(path)?;
        let directory = File::open("/bin")?;
        let motd = File::open("/etc/motd")?;
        let (read_end, write_end) = sys::pipe_create()?;
        sys::write(write_end, b"left in the pipe")?;
        let _ = sys::pipe_create()?;
        // Exits here, with every handle above still open.
        let _kept = (written.into_raw(), reader.into_raw(), directory.into_raw(), motd.into_raw(), read_end, write_end);
        sys::exit(0)
    })();
    i32::from(made.is_err())
}

/// `statfs`, once fs has handled the close notices that make it equal to `before` (or after
/// a while, whatever it is then).
fn settled_statfs(before: &fs::FsInfo) -> Result<fs::FsInfo, String> {
    let deadline = sys::uptime_ns() + SETTLE_NS;
    loop {
        let now = fs::statfs().context("statfs")?;
        if now == *before || sys::uptime_ns() > deadline {
            return Ok(now);
        }
        let _ = sys::sleep_ms(1);
    }
}
