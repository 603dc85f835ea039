//! Processes as programs see them: [`Process`], a started program held by its handle, and
//! starting one from a file ([`spawn`], [`program_path`]) or from a few bytes of
//! position-independent code ([`spawn_code`]); a whole snapshot of the process
//! table, the list of programs in `/bin`, a `ps`-style table, and how a process ended in
//! words.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use abi::{ExitInfo, ProcessInfo, ProcessState};

use crate::sys::{self, Child};

/// Where [`code_image`] loads its code: the first user page, at [`CODE_OFFSET`] into it.
pub const CODE_LOAD_ADDRESS: u64 = abi::memory::USER_START;
/// Where the code starts in a [`code_image`]: past the ELF header and its program header.
pub const CODE_OFFSET: usize = 0x80;

/// A minimal static ELF executable: one read-execute segment holding the whole file at
/// [`CODE_LOAD_ADDRESS`], `code` (position-independent; it may not write itself) at
/// [`CODE_OFFSET`], the entry at its first byte. For programs whose every instruction must
/// be known: no runtime runs before `code`.
pub fn code_image(code: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; CODE_OFFSET + code.len()];
    let size = image.len() as u64;
    let fields: [(usize, &[u8]); 17] = [
        (0, b"\x7fELF\x02\x01\x01"),
        (16, &2u16.to_le_bytes()),    // ET_EXEC
        (18, &0x3eu16.to_le_bytes()), // x86_64
        (20, &1u32.to_le_bytes()),
        (24, &(CODE_LOAD_ADDRESS + CODE_OFFSET as u64).to_le_bytes()),
        (32, &64u64.to_le_bytes()), // the program header right after this one
        (52, &64u16.to_le_bytes()),
        (54, &56u16.to_le_bytes()),
        (56, &1u16.to_le_bytes()),
        (64, &1u32.to_le_bytes()), // PT_LOAD
        (68, &5u32.to_le_bytes()), // read, execute
        (72, &0u64.to_le_bytes()),
        (80, &CODE_LOAD_ADDRESS.to_le_bytes()),
        (88, &CODE_LOAD_ADDRESS.to_le_bytes()),
        (96, &size.to_le_bytes()),
        (104, &size.to_le_bytes()),
        (112, &0x1000u64.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    image[CODE_OFFSET..].copy_from_slice(code);
    image
}

/// Starts [`code_image`]`(code)` as a process named `name` in `job` (`None`: this program's
/// own), with no handles; at most a page of image.
pub fn spawn_code(code: &[u8], name: &str, job: Option<u64>) -> sys::Result<Child> {
    let image = code_image(code);
    if image.len() as u64 > abi::memory::PAGE_SIZE {
        return Err(sys::Errno(abi::errno::E2BIG));
    }
    let memory = crate::ipc::SharedMemory::create(1)?;
    let address = memory.map(0, abi::PROT_READ | abi::PROT_WRITE)?;
    // SAFETY: a page was just mapped writable at `address`, used by nothing else, and the
    // image fits it.
    unsafe { core::slice::from_raw_parts_mut(address as *mut u8, image.len()) }.copy_from_slice(&image);
    // SAFETY: the copy above was the mapping's only use.
    unsafe { sys::munmap(address, abi::memory::PAGE_SIZE) }?;
    sys::spawn(memory.handle().raw(), &[name], &[], job)
}

/// Where programs are: a program named without a `/` is looked up here.
pub const PROGRAM_DIRECTORY: &str = "/bin";

/// The handles a program passes to the programs it starts: standard input, output and
/// error (0, 1 and 2), then, if this program has the name service (3), that, and then its
/// current directory (which becomes the child's 4, `fs::CWD_HANDLE`).
pub fn standard_handles() -> Vec<u32> {
    standard_handles_with([0, 1, 2])
}

/// [`standard_handles`] with other handles as the child's standard input, output and error.
pub fn standard_handles_with(stdio: [u64; 3]) -> Vec<u32> {
    let mut handles: Vec<u32> = stdio.iter().map(|&handle| handle as u32).collect();
    if matches!(crate::ipc::handle_info(crate::names::NAMES_HANDLE), Ok((Some(abi::handle::Kind::Endpoint), _))) {
        handles.push(crate::names::NAMES_HANDLE as u32);
        if let Some(directory) = crate::fs::current_dir_handle() {
            handles.push(directory as u32);
        }
    }
    handles
}

/// The file a program name means: itself if it has a `/` (or is empty), else the file of
/// that name in [`PROGRAM_DIRECTORY`].
pub fn program_path(name: &str) -> String {
    if name.is_empty() || name.contains('/') { String::from(name) } else { alloc::format!("{PROGRAM_DIRECTORY}/{name}") }
}

/// Starts the program `name` (see [`program_path`]) with `args` (argv\[0\] first) and this
/// program's [`standard_handles`].
pub fn spawn(name: &str, args: &[&str]) -> sys::Result<Process> {
    Process::spawn(name, args, &standard_handles())
}

/// Starts the program `name` (see [`program_path`]) with `args` and the child's `handles`,
/// reading its image from the file system.
pub fn spawn_child(name: &str, args: &[&str], handles: &[u32]) -> sys::Result<Child> {
    spawn_child_in(None, name, args, handles)
}

/// [`spawn_child`] in `job` (a job handle with MANAGE; `None`: this program's own job).
pub fn spawn_child_in(job: Option<u64>, name: &str, args: &[&str], handles: &[u32]) -> sys::Result<Child> {
    let (image, _) = crate::fs::load_image(&program_path(name))?;
    sys::spawn(image.handle().raw(), args, handles, job)
}

/// A process this program started (or was given a handle to), held by its process handle,
/// which is closed when this is dropped; the process itself runs on. What the handle allows
/// (WAIT, KILL) is what this program may do to it.
#[derive(Debug, PartialEq, Eq)]
pub struct Process {
    child: Child,
    /// `wait` closed the handle already.
    reaped: bool,
}

impl Process {
    /// Starts the program `name` (see [`program_path`]) with `args` (argv\[0\] first); the
    /// child gets copies of `handles`, numbered from 0.
    pub fn spawn(name: &str, args: &[&str], handles: &[u32]) -> sys::Result<Self> {
        spawn_child(name, args, handles).map(|child| Self { child, reaped: false })
    }

    /// Its process id (for `ps` and messages; never needed to act on it).
    pub fn pid(&self) -> sys::Pid {
        self.child.pid
    }

    /// The raw handle, for a syscall this type does not wrap (`set_foreground`, or passing
    /// it on at `spawn`).
    pub fn child(&self) -> Child {
        self.child
    }

    /// Ends the process (status `abi::status::KILLED`).
    pub fn kill(&self) -> sys::Result<()> {
        if self.reaped { Err(sys::Errno(abi::errno::ESRCH)) } else { sys::kill(self.child) }
    }

    /// Waits until it has ended and says how.
    pub fn wait(mut self) -> sys::Result<ExitInfo> {
        self.wait_for(abi::ipc::FOREVER)
    }

    /// Waits at most `timeout` nanoseconds (0: only looks) for it to end: `EAGAIN` or
    /// `ETIMEDOUT` if it has not. Once it has, the handle is closed and later calls fail with
    /// `ECHILD`.
    pub fn wait_for(&mut self, timeout: u64) -> sys::Result<ExitInfo> {
        if self.reaped {
            return Err(sys::Errno(abi::errno::ECHILD));
        }
        let (_, info) = sys::wait_handle(self.child.handle, timeout)?;
        self.reaped = true;
        Ok(info)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = crate::ipc::close(self.child.handle);
        }
    }
}

/// Every process in the table, in pid order.
pub fn list() -> sys::Result<Vec<ProcessInfo>> {
    let mut rows = vec![ProcessInfo::EMPTY; 16];
    loop {
        let total = sys::process_list(&mut rows)?;
        if total <= rows.len() {
            rows.truncate(total);
            return Ok(rows);
        }
        // The table grew between the calls; ask again with room to spare.
        rows.resize(total + 8, ProcessInfo::EMPTY);
    }
}

/// The names of the programs in [`PROGRAM_DIRECTORY`], sorted.
pub fn programs() -> sys::Result<Vec<String>> {
    let entries = crate::fs::read_dir(PROGRAM_DIRECTORY)?;
    Ok(entries.into_iter().filter(|entry| entry.kind == crate::fs::KIND_FILE).map(|entry| entry.name).collect())
}

/// Formats rows of the process table as `ps` shows them: a header line, then one line per
/// process (pid, parent, state, memory charged in KiB, the CPU it runs or last ran on, its
/// threads, the CPU time they have used in seconds, name).
pub struct Table<'a>(pub &'a [ProcessInfo]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>5} {:>6}  {:<8} {:>8}  {:>3} {:>3} {:>9}  NAME", "PID", "PARENT", "STATE", "MEMORY", "CPU", "THR", "TIME")?;
        for row in self.0 {
            let state = ProcessState::from_u32(row.state).map_or("?", ProcessState::label);
            let memory = alloc::format!("{} KiB", row.memory_bytes / 1024);
            let millis = row.cpu_time_ns / 1_000_000;
            let time = alloc::format!("{}.{:03}s", millis / 1000, millis % 1000);
            writeln!(
                f,
                "{:>5} {:>6}  {:<8} {:>8}  {:>3} {:>3} {:>9}  {}",
                row.pid,
                row.parent,
                state,
                memory,
                row.cpu,
                row.threads,
                time,
                row.name()
            )?;
        }
        Ok(())
    }
}

/// How a process ended, in words: `exited with status 3`, `killed`, `panicked`, or for a CPU
/// fault its name and place: `killed by a page fault at 0x0 (ip 0x401234)`, `killed by a
/// general protection fault at ip 0x401234`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending(pub ExitInfo);

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use abi::status::{FAULT, KILLED, PANIC, describe};
        let info = &self.0;
        match (info.status, info.fault()) {
            (_, Some(vector @ abi::fault::PAGE_FAULT)) => write!(
                f,
                "killed by a {} at {:#x} (ip {:#x})",
                abi::fault::name(vector),
                info.fault_address,
                info.fault_ip
            ),
            (_, Some(vector)) => write!(f, "killed by a {} at ip {:#x}", abi::fault::name(vector), info.fault_ip),
            (KILLED | FAULT | PANIC, None) => f.write_str(describe(info.status)),
            (status, None) => write!(f, "exited with status {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    fn row(
        pid: u32,
        parent: u32,
        state: ProcessState,
        name: &str,
        memory_bytes: u64,
        (cpu, threads): (u32, u32),
        cpu_time_ns: u64,
    ) -> ProcessInfo {
        let mut info = ProcessInfo::EMPTY;
        info.pid = pid;
        info.parent = parent;
        info.state = state as u32;
        info.name[..name.len()].copy_from_slice(name.as_bytes());
        info.name_len = name.len() as u32;
        info.memory_bytes = memory_bytes;
        info.cpu = cpu;
        info.threads = threads;
        info.cpu_time_ns = cpu_time_ns;
        info
    }

    #[test]
    fn table_has_a_header_and_one_aligned_line_per_process() {
        let rows = [
            row(1, 0, ProcessState::Blocked, "init", 90 * 1024, (0, 1), 12_345_678),
            row(12, 1, ProcessState::Running, "sh", 1 << 20, (3, 12), 61_002_000_000),
        ];
        let text = Table(&rows).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "  PID PARENT  STATE      MEMORY  CPU THR      TIME  NAME",
                "    1      0  blocked    90 KiB    0   1    0.012s  init",
                "   12      1  running  1024 KiB    3  12   61.002s  sh"
            ]
        );
    }

    #[test]
    fn endings_name_the_special_statuses() {
        let ending = |status| Ending(ExitInfo::exited(status)).to_string();
        assert_eq!(ending(0), "exited with status 0");
        assert_eq!(ending(3), "exited with status 3");
        assert_eq!(ending(abi::status::KILLED), "killed");
        assert_eq!(ending(abi::status::FAULT), "killed by a fault");
        assert_eq!(ending(abi::status::PANIC), "panicked");
    }

    #[test]
    fn endings_name_the_fault_and_where_it_happened() {
        let fault = |vector, address| ExitInfo {
            status: abi::status::FAULT,
            fault_vector: vector,
            fault_address: address,
            fault_ip: 0x40_1234,
            fault_error: 0,
        };
        assert_eq!(
            Ending(fault(abi::fault::PAGE_FAULT, 0)).to_string(),
            "killed by a page fault at 0x0 (ip 0x401234)"
        );
        assert_eq!(
            Ending(fault(abi::fault::GENERAL_PROTECTION, 0)).to_string(),
            "killed by a general protection fault at ip 0x401234"
        );
    }
}
