//! IPC partners (`fuzz --partner SEED INDEX`): children of a worker that serve and call the
//! endpoints, signal and wait on the notifications, map the memory and kill or wait for the
//! processes they were given (their handles 4 and up: the worker's meeting places, 4 to 7,
//! which every partner gets, so partners meet each other and the worker; 0-2 are the
//! console, 3 the worker's problem board), for a few dozen operations or a few tens of
//! milliseconds, with timeouts under two milliseconds. They make handles of their own and pass them on, copied or moved, answer the
//! calls they receive, drop some replies, and may be killed at any moment by the worker.
//!
//! They check what they get: known errno values; a message with a reply handle that is one,
//! or a notification or close notice without one; labels a sender may use; handles that
//! arrived and name something; how a process they waited for ended. Each problem is printed
//! and counted on the board, which the worker reads at the end of its batch.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::handle::{Kind, NO_HANDLE, rights};
use abi::ipc::{BUFFER_MAX, COPY_HANDLE, HANDLES_MAX, IpcBuffers, LABEL_CLOSED, LABEL_MAX, LABEL_NOTIFICATION};
use abi::syscall::{
    CALL, ENDPOINT_BIND, ENDPOINT_CREATE, ENDPOINT_MINT, HANDLE_CLOSE, HANDLE_DUPLICATE, MEMORY_MAP, MUNMAP,
    NOTIFICATION_CREATE, RECV, REPLY, REPLY_RECV, SIGNAL, WAIT_NOTIFICATION,
};
use abi::{ExitInfo, PROT_READ, PROT_WRITE};
use userlib::ipc::{self, IpcRegisters, Message};
use userlib::println;
use userlib::process::Ending;
use userlib::sys::{self, EntryPath};

use crate::worker::{CHILD_STATUSES, KNOWN_ERRNOS, PARTNER_BOARD as BOARD};
use crate::{MS, Rng};

/// Operations a partner makes at most, and for how long.
const OPERATIONS: usize = 64;
const BUDGET_NS: u64 = 30 * MS;
/// Its first handles: the meeting places (4 to 7).
const MEETING: u64 = 4;
/// Bytes a partner receives or sends at most.
const ROOM: usize = 256;
/// Handles a partner keeps track of.
const POOL: usize = 16;
/// Mixed into the seed, so a partner's draws differ from the worker's call of that index.
const PARTNER_SALT: u64 = 0x7061_7274_6e65_7221;
/// The most a shared-memory object can span: `munmap` after a mapping covers it whole.
const LARGEST_MAPPING: u64 = 4096 * abi::memory::PAGE_SIZE;

/// `fuzz --partner SEED INDEX`: runs one partner; exits 0 (its problems go on the board).
pub fn run(seed: u64, index: u64) -> i32 {
    let mut partner = Partner::new(seed, index);
    let deadline = sys::uptime_ns() + BUDGET_NS;
    for _ in 0..OPERATIONS {
        if sys::uptime_ns() > deadline {
            break;
        }
        partner.step();
    }
    if partner.problems > 0
        && let Some(board) = partner.board
    {
        board.fetch_add(partner.problems, Ordering::Relaxed);
    }
    0
}

struct Partner {
    seed: u64,
    index: u64,
    rng: Rng,
    /// Handles it holds (some closed or given away since), all numbered 4 or more.
    pool: [u64; POOL],
    pool_len: usize,
    /// The problem counter on the board, if the board could be mapped.
    board: Option<&'static AtomicU64>,
    problems: u64,
    room: [u8; ROOM],
    bytes: [u8; ROOM],
}

impl Partner {
    fn new(seed: u64, index: u64) -> Self {
        let mut rng = Rng::for_call(seed ^ PARTNER_SALT, index);
        let bytes = core::array::from_fn(|_| rng.next() as u8);
        let mut partner =
            Self { seed, index, rng, pool: [0; POOL], pool_len: 0, board: None, problems: 0, room: [0; ROOM], bytes };
        for number in 4..4 + HANDLES_MAX as u64 {
            partner.remember(number);
        }
        let address = raw(MEMORY_MAP, [BOARD, 0, PROT_READ | PROT_WRITE, 0, 0, 0]);
        if address > 0 {
            // SAFETY: the board's page is mapped read-write at `address` for the rest of this
            // process (nothing here unmaps below its later mappings, and the board is the
            // first), it is aligned, and every process that maps it uses it only atomically.
            partner.board = Some(unsafe { AtomicU64::from_ptr(address as *mut u64) });
        }
        partner
    }

    fn problem(&mut self, what: core::fmt::Arguments) {
        println!("fuzz: partner of call {} (seed {}): {what}", self.index, self.seed);
        self.problems += 1;
    }

    /// Keeps handle `number` in the pool if it names something.
    fn remember(&mut self, number: u64) {
        if number < 4 || ipc::handle_info(number).is_err() {
            return;
        }
        if self.pool_len < POOL {
            self.pool[self.pool_len] = number;
            self.pool_len += 1;
        } else {
            self.pool[self.rng.below(POOL as u64) as usize] = number;
        }
    }

    /// A handle to use: mostly a meeting place or another of its own, sometimes a number
    /// that names nothing.
    fn handle(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=4 => MEETING + self.rng.below(4),
            5..=7 if self.pool_len > 0 => self.pool[self.rng.below(self.pool_len as u64) as usize],
            8 => 4 + self.rng.below(60),
            _ => 256 + self.rng.below(8),
        }
    }

    /// A timeout under two milliseconds, sometimes 0.
    fn timeout(&mut self) -> u64 {
        if self.rng.below(4) == 0 { 0 } else { self.rng.below(2 * MS) }
    }

    /// Fails unless `result` is a value or a known errno.
    fn check(&mut self, what: &str, result: i64) -> i64 {
        if result < 0 && !KNOWN_ERRNOS.contains(&-result) {
            self.problem(format_args!("{what} returned {result}, not an errno"));
        }
        result
    }

    fn step(&mut self) {
        let handle = self.handle();
        match self.rng.below(16) {
            0..=4 => self.receive(handle),
            5..=8 => self.call(handle),
            9 => {
                let bits = self.rng.next() >> self.rng.below(64);
                self.check("signal", raw(SIGNAL, [handle, bits, 0, 0, 0, 0]));
            }
            10 => {
                let timeout = self.timeout();
                self.check("wait_notification", raw(WAIT_NOTIFICATION, [handle, timeout, 0, 0, 0, 0]));
            }
            11 => self.map(handle),
            12 => {
                let (badge, granted) = (self.rng.next(), self.rng.below(1 << 12));
                let number = match self.rng.below(2) {
                    0 => raw(HANDLE_DUPLICATE, [handle, granted, 0, 0, 0, 0]),
                    _ => raw(ENDPOINT_MINT, [handle, badge, granted, self.rng.below(2), 0, 0]),
                };
                if self.check("handle_duplicate or endpoint_mint", number) >= 0 {
                    self.remember(number as u64);
                }
            }
            13 => {
                self.check("handle_close", raw(HANDLE_CLOSE, [handle, 0, 0, 0, 0, 0]));
            }
            14 => self.process(handle),
            _ => self.create(handle),
        }
    }

    /// Makes an endpoint or a notification, and sometimes binds a notification to one.
    fn create(&mut self, other: u64) {
        let endpoint = self.check("endpoint_create", raw(ENDPOINT_CREATE, [0; 6]));
        let notification = self.check("notification_create", raw(NOTIFICATION_CREATE, [0; 6]));
        for number in [endpoint, notification] {
            if number >= 0 {
                self.remember(number as u64);
            }
        }
        if notification >= 0 && self.rng.below(2) == 0 {
            // Bound to the new endpoint, or to whatever `other` is.
            let target = if endpoint >= 0 && self.rng.below(2) == 0 { endpoint as u64 } else { other };
            self.check("endpoint_bind", raw(ENDPOINT_BIND, [target, notification as u64, 0, 0, 0, 0]));
        }
    }

    /// Maps `handle` (as shared memory), reads its first byte, and unmaps it.
    fn map(&mut self, handle: u64) {
        let prot = if self.rng.below(2) == 0 { PROT_READ } else { PROT_READ | PROT_WRITE };
        let address = self.check("memory_map", raw(MEMORY_MAP, [handle, 0, prot, 0, 0, 0]));
        if address <= 0 {
            return;
        }
        // SAFETY: the whole object was just mapped readable at `address`.
        let _ = unsafe { core::ptr::read_volatile(address as *const u8) };
        // Unmapping from its start covers only this mapping and later ones, never the board.
        self.check("munmap", raw(MUNMAP, [address as u64, LARGEST_MAPPING, 0, 0, 0, 0]));
    }

    /// Kills `handle` (as a process) or waits for it a moment.
    fn process(&mut self, handle: u64) {
        if self.rng.below(2) == 0 {
            self.check("kill", raw(abi::syscall::KILL, [handle, 0, 0, 0, 0, 0]));
            return;
        }
        let timeout = self.timeout();
        match sys::wait_handle(handle, timeout) {
            Ok((_, info)) => {
                let fine = info == ExitInfo::exited(abi::status::KILLED)
                    || (info.fault().is_none() && (0..CHILD_STATUSES as i32).contains(&info.status));
                if !fine {
                    self.problem(format_args!("a process it waited for {}", Ending(info)));
                }
            }
            Err(errno) => {
                self.check("wait", -errno.0);
            }
        }
    }

    /// The `IpcBuffers` of a message from this partner: some of its bytes, maybe one of its
    /// handles (copied or moved), and its room for what comes back.
    fn buffers(&mut self) -> IpcBuffers {
        let mut send_handles = [0u32; HANDLES_MAX];
        let count = if self.pool_len > 0 && self.rng.below(3) == 0 { 1 } else { 0 };
        if count == 1 {
            let copy = if self.rng.below(2) == 0 { COPY_HANDLE } else { 0 };
            send_handles[0] = self.pool[self.rng.below(self.pool_len as u64) as usize] as u32 | copy;
        }
        let send_len = self.rng.below(ROOM as u64 + 1);
        IpcBuffers {
            send_ptr: self.bytes.as_ptr() as u64,
            send_len,
            recv_ptr: self.room.as_mut_ptr() as u64,
            recv_capacity: ROOM as u64,
            send_handles,
            send_handle_count: count,
            ..IpcBuffers::default()
        }
    }

    /// A label, mostly one a sender may use.
    fn label(&mut self) -> u64 {
        if self.rng.below(16) == 0 { LABEL_MAX + 1 + self.rng.below(2) } else { self.rng.below(1000) }
    }

    /// Checks what arrived with a message into `buffers`, and keeps its handles.
    fn arrived(&mut self, what: &str, buffers: &IpcBuffers) {
        if buffers.received_len > BUFFER_MAX || buffers.received_handle_count as usize > HANDLES_MAX {
            let (len, count) = (buffers.received_len, buffers.received_handle_count);
            self.problem(format_args!("{what}: {len} bytes and {count} handles arrived"));
            return;
        }
        for &handle in &buffers.received_handles[..buffers.received_handle_count as usize] {
            if ipc::handle_info(u64::from(handle)).is_err() {
                self.problem(format_args!("{what}: handle {handle} arrived naming nothing"));
            }
            self.remember(u64::from(handle));
        }
    }

    /// Receives on `handle` and answers (or drops) what came.
    fn receive(&mut self, handle: u64) {
        let mut buffers = self.buffers();
        buffers.send_handle_count = 0;
        let timeout = self.timeout();
        let received = ipc_call(RECV, handle, &Message::default(), &mut buffers, timeout, 0);
        if self.check("recv", received.result) < 0 {
            return;
        }
        self.check_received(&received);
        self.arrived("recv", &buffers);
        if received.reply == NO_HANDLE {
            return;
        }
        let answer = Message::new(self.label(), core::array::from_fn(|_| self.rng.next()));
        let mut reply = self.buffers();
        match self.rng.below(4) {
            0 => {
                self.check("handle_close of a reply", raw(HANDLE_CLOSE, [received.reply, 0, 0, 0, 0, 0]));
            }
            1 => {
                let timeout = self.timeout();
                let next = ipc_call(REPLY_RECV, received.reply, &answer, &mut reply, timeout, handle);
                if self.check("reply_recv", next.result) >= 0 {
                    self.check_received(&next);
                    self.arrived("reply_recv", &reply);
                    if next.reply != NO_HANDLE {
                        self.remember(next.reply);
                    }
                }
            }
            2 => self.remember(received.reply),
            _ => {
                self.check("reply", ipc_call(REPLY, received.reply, &answer, &mut reply, 0, 0).result);
            }
        }
    }

    /// Checks the registers of a message received: a call has a reply handle that is one and
    /// a label a sender may use; a notification or close notice has no reply handle.
    fn check_received(&mut self, received: &IpcRegisters) {
        let label = received.message.label;
        if received.reply == NO_HANDLE {
            if label != LABEL_NOTIFICATION && label != LABEL_CLOSED {
                self.problem(format_args!("recv returned label {label:#x} without a reply handle"));
            }
            return;
        }
        if label > LABEL_MAX {
            self.problem(format_args!("recv returned a call with label {label:#x}"));
        }
        let reply = ipc::handle_info(received.reply);
        if reply != Ok((Some(Kind::Reply), rights::REPLY_HANDLE)) {
            self.problem(format_args!("recv's reply handle {} is {reply:?}", received.reply));
        }
    }

    /// Calls `handle` with some bytes, maybe a handle, and a short timeout.
    fn call(&mut self, handle: u64) {
        let message = Message::new(self.label(), core::array::from_fn(|_| self.rng.next()));
        let mut buffers = self.buffers();
        let timeout = self.timeout();
        let answered = ipc_call(CALL, handle, &message, &mut buffers, timeout, 0);
        if self.check("call", answered.result) < 0 {
            return;
        }
        // A reply may carry any label (only a caller receives it), so there is none to check.
        self.arrived("call", &buffers);
    }
}

/// An IPC syscall with `buffers`.
fn ipc_call(number: u64, first: u64, message: &Message, buffers: &mut IpcBuffers, timeout: u64, endpoint: u64) -> IpcRegisters {
    // SAFETY: `buffers` describes the partner's own `bytes` and `room`, with their sizes,
    // which outlive the call.
    unsafe { ipc::raw_ipc(number, first, message, buffers as *mut IpcBuffers as u64, timeout, endpoint) }
}

/// A syscall that reads and writes no memory of the partner's.
fn raw(number: u64, args: [u64; 6]) -> i64 {
    // SAFETY: the callers make only calls that touch no memory, and unmap only what they
    // mapped themselves.
    unsafe { sys::raw(EntryPath::Syscall, number, args) }
}
