//! Copy-on-write copies (`process_copy`): a copy sees the source's memory, each side's
//! writes after it are its own, its first thread starts with the registers it was given, a
//! kernel write into a page still shared (a pipe's `read`) breaks the sharing, frames are
//! charged to the copy and freed exactly, and either side may end first.
//!
//! The source is a helper (`cow_source`) the case spawns, since `process_copy` needs a
//! process handle with DEBUG: it maps its data pages, and a stack for the copy, at fixed
//! addresses, and a shared-memory object the case passes it, through which the case, the
//! source and the copy talk (the copy keeps the mapping: shared memory stays shared). The
//! copy runs this same program from [`copy_entry`], told what to do in `rdi`.

use alloc::vec::Vec;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::errno::{EBADF, EFAULT, EINVAL, EPERM, ESRCH};
use abi::exception::Registers;
use abi::handle::{NO_HANDLE, rights};
use abi::status::KILLED;
use userlib::check;
use userlib::ipc::{self, SharedMemory};
use userlib::sys::{self, Child};
use userlib::testing::{Case, Context, Helper, Outcome};

use crate::common::*;
use crate::helpers::arg;

pub const CASES: &[Case] = userlib::cases![
    here cow_copy_sees_the_sources_memory_and_shares_shared_memory,
    here cow_writes_after_the_copy_are_private_both_ways,
    here cow_copy_starts_with_the_given_registers,
    here cow_pipe_read_into_an_untouched_shared_page_works_on_both_sides,
    here cow_frames_are_freed_exactly,
    here cow_copy_is_charged_for_every_page_it_maps,
    here cow_copy_needs_debug_and_sound_arguments,
    here cow_source_thread_writes_during_copies_are_kept,
    here cow_copy_killed_while_the_source_runs,
    here cow_source_ending_while_the_copy_runs,
    here cow_mprotect_back_to_writable_keeps_a_shared_page_shared,
    here cow_a_copy_of_a_copy_sees_the_source_and_frees_every_frame,
];

pub const HELPERS: &[(&str, Helper)] = &[("cow_source", helper_cow_source)];

/// Where the source maps its data pages, the copy's stack and the shared words.
const DATA: u64 = 0x6000_0000_0000;
const COPY_STACK: u64 = 0x6100_0000_0000;
const COPY_STACK_PAGES: u64 = 16;
const COPY_STACK_TOP: u64 = COPY_STACK + COPY_STACK_PAGES * PAGE;
const SHARED: u64 = 0x6200_0000_0000;

/// The shared words, by index.
const READY: usize = 0;
const SOURCE_COMMAND: usize = 1;
const SOURCE_DONE: usize = 2;
const SOURCE_RESULT: usize = 3;
const COPY_STATE: usize = 4;
const COPY_COMMAND: usize = 5;
const SENTINEL: usize = 6;
const COPY_SAW: usize = 7;

/// What the source does when told (`SOURCE_COMMAND`); it answers in `SOURCE_DONE` and
/// `SOURCE_RESULT` (0: all well).
const SOURCE_EXIT: u64 = 1;
const SOURCE_REWRITE: u64 = 2;
const SOURCE_CHECK: u64 = 3;
const SOURCE_PIPE: u64 = 4;
const SOURCE_START_WRITER: u64 = 5;
const SOURCE_STOP_WRITER: u64 = 6;
const SOURCE_PROTECT_REWRITE: u64 = 7;

/// What a copy does (its `rdi`); it exits 0 when all is well.
const COPY_CHECK: u64 = 1;
const COPY_PRIVATE: u64 = 2;
const COPY_PIPE: u64 = 3;
const COPY_WAIT: u64 = 4;
const COPY_WRITE_ALL: u64 = 5;

/// Tags of the data pages' words: as the source filled them, as it rewrote them after a
/// copy, as a copy wrote them.
const SOURCE_TAG: u64 = 0x5000_0000_0000_0000;
const REWRITE_TAG: u64 = 0x6000_0000_0000_0000;
const COPY_TAG: u64 = 0x7000_0000_0000_0000;
/// The case's word in shared memory, and the copy's answer.
const SENTINEL_VALUE: u64 = 0x5e47_1e11;
const COPY_SAW_VALUE: u64 = 0xc0b7_5a77;
/// Every copy's registers but rax (0, as a fork's child has it), rdi (its job), rsi (the
/// data pages) and rbp (0): `REGISTER_BASE + n` for the n-th of rbx, rcx, rdx, r8 .. r15.
const REGISTER_BASE: u64 = 0x1111_2222_3333_0000;
/// Statuses a copy exits with when something is wrong.
const BAD_REGISTERS: i32 = 20;
const BAD_MEMORY: i32 = 21;
const NOT_PRIVATE: i32 = 22;
const PIPE_FAILED: i32 = 23;
const TIMED_OUT: i32 = 24;

const WORDS_PER_PAGE: u64 = PAGE / 8;

fn shared_words() -> &'static [AtomicU64; 512] {
    // SAFETY: the source maps the shared page at `SHARED` before anything reads it, and a copy
    // has the same mapping; atomics may alias memory others write.
    unsafe { &*(SHARED as *const [AtomicU64; 512]) }
}

fn data_word(page: u64, word: u64) -> *mut u64 {
    (DATA + page * PAGE + word * 8) as *mut u64
}

fn pattern(tag: u64, page: u64, word: u64) -> u64 {
    tag ^ (page << 16) ^ word
}

/// Fills every word of the data pages with `tag`'s pattern.
fn fill(pages: u64, tag: u64) {
    for page in 0..pages {
        for word in 0..WORDS_PER_PAGE {
            // SAFETY: the data pages are mapped writable by the source before this runs.
            unsafe { data_word(page, word).write_volatile(pattern(tag, page, word)) };
        }
    }
}

/// 0 if every word of the data pages holds `tag`'s pattern, else 1 + the first bad page.
fn verify(pages: u64, tag: u64) -> u64 {
    for page in 0..pages {
        for word in 0..WORDS_PER_PAGE {
            // SAFETY: as for `fill`.
            if unsafe { data_word(page, word).read_volatile() } != pattern(tag, page, word) {
                return page + 1;
            }
        }
    }
    0
}

/// Reads from a new pipe into data page `page`, which nothing has written since the copy:
/// 0 if the bytes arrived, else a code for what failed.
fn pipe_into_page(page: u64) -> u64 {
    const BYTES: &[u8] = b"copy-on-write pipe bytes";
    // `pipe_create` stores the ends in this stack frame, in a page still shared too.
    let Ok((read_end, write_end)) = sys::pipe_create() else { return 1 };
    let outcome = (|| {
        if sys::write(write_end, BYTES) != Ok(BYTES.len()) {
            return 2;
        }
        // SAFETY: the data page is mapped writable and this thread alone uses it now.
        let target = unsafe { core::slice::from_raw_parts_mut(data_word(page, 0).cast::<u8>(), BYTES.len()) };
        match sys::read(read_end, target) {
            Ok(count) if count == BYTES.len() && target == BYTES => 0,
            Ok(_) => 3,
            Err(error) => 100 + error.0.unsigned_abs(),
        }
    })();
    let _ = ipc::close(read_end);
    let _ = ipc::close(write_end);
    outcome
}

/// Set by the source to stop its writer thread.
static STOP_WRITER: AtomicBool = AtomicBool::new(false);

/// The source's writer: writes a rising count to word 1 of one data page after another
/// until told to stop, then returns how many pages do not hold the last count written to
/// them (each is a lost write), or `u64::MAX` if it wrote too little to mean anything.
fn writer(pages: u64) -> u64 {
    let mut last: Vec<u64> = alloc::vec![0; pages as usize];
    let mut count = 0u64;
    while !STOP_WRITER.load(Ordering::Acquire) {
        count += 1;
        let page = count % pages;
        // SAFETY: the data pages are mapped writable; word 1 is this thread's alone.
        unsafe { data_word(page, 1).write_volatile(count) };
        last[page as usize] = count;
    }
    if count < pages {
        return u64::MAX;
    }
    // SAFETY: as above.
    (0..pages).filter(|&page| unsafe { data_word(page, 1).read_volatile() } != last[page as usize]).count() as u64
}

/// `cow_source PAGES`: maps the shared object (its handle 0) at `SHARED`, `PAGES` data pages
/// filled with the source's pattern at `DATA` and a stack for copies at `COPY_STACK`, says it
/// is ready, and serves commands until told to exit (0), or for at most 30 s (1).
fn helper_cow_source(args: &[&str]) -> i32 {
    let pages: u64 = arg(args, 0);
    if SharedMemory::from_raw(0).map(SHARED, RW) != Ok(SHARED)
        || sys::mmap(DATA, pages * PAGE, RW) != Ok(DATA)
        || sys::mmap(COPY_STACK, COPY_STACK_PAGES * PAGE, RW) != Ok(COPY_STACK)
    {
        return 2;
    }
    fill(pages, SOURCE_TAG);
    let words = shared_words();
    words[READY].store(1, Ordering::Release);
    let mut writer_thread = None;
    let deadline = sys::uptime_ns() + 30_000_000_000;
    while sys::uptime_ns() < deadline {
        let command = words[SOURCE_COMMAND].swap(0, Ordering::AcqRel);
        let result = match command {
            0 => {
                let _ = sys::sleep_ms(1);
                continue;
            }
            SOURCE_EXIT => return 0,
            SOURCE_REWRITE => {
                fill(pages, REWRITE_TAG);
                0
            }
            SOURCE_CHECK => verify(pages, SOURCE_TAG),
            SOURCE_PROTECT_REWRITE => {
                // SAFETY: the data pages are this helper's own, and nothing writes them while
                // they are read-only.
                let protected = unsafe {
                    sys::mprotect(DATA, pages * PAGE, abi::PROT_READ).is_ok() && sys::mprotect(DATA, pages * PAGE, RW).is_ok()
                };
                if protected {
                    fill(pages, REWRITE_TAG);
                    0
                } else {
                    1
                }
            }
            SOURCE_PIPE => pipe_into_page(pages - 1),
            SOURCE_START_WRITER => match userlib::thread::spawn(move || writer(pages)) {
                Ok(handle) => {
                    writer_thread = Some(handle);
                    0
                }
                Err(_) => 1,
            },
            SOURCE_STOP_WRITER => {
                STOP_WRITER.store(true, Ordering::Release);
                writer_thread.take().and_then(|handle| handle.join().ok()).unwrap_or(u64::MAX - 1)
            }
            _ => u64::MAX - 2,
        };
        words[SOURCE_RESULT].store(result, Ordering::Release);
        words[SOURCE_DONE].store(command, Ordering::Release);
    }
    1
}

/// Where a copy starts: saves every general register on its stack (rax first, lowest) and
/// calls [`copy_main`] with where they are.
#[unsafe(naked)]
extern "C" fn copy_entry() -> ! {
    naked_asm!(
        "push r15", "push r14", "push r13", "push r12", "push r11", "push r10", "push r9", "push r8",
        "push rbp", "push rdi", "push rsi", "push rdx", "push rcx", "push rbx", "push rax",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {main}",
        "ud2",
        main = sym copy_main,
    )
}

/// The registers [`copy_entry`] saved, in its order.
const SAVED_REGISTERS: usize = 15;

/// The registers a copy is started with for `job`.
fn copy_registers(job: u64, pages: u64) -> Registers {
    let other = |index: u64| REGISTER_BASE + index;
    Registers {
        rip: copy_entry as *const () as u64,
        rsp: COPY_STACK_TOP,
        rflags: 0x202,
        rax: 0,
        rbx: other(1),
        rcx: other(2),
        rdx: other(3),
        rsi: pages,
        rdi: job,
        rbp: 0,
        r8: other(8),
        r9: other(9),
        r10: other(10),
        r11: other(11),
        r12: other(12),
        r13: other(13),
        r14: other(14),
        r15: other(15),
        // The FS base a fork's child keeps (its thread-local storage): the data pages.
        fs_base: DATA,
        gs_base: 0,
        flags: 0,
        reserved: 0,
    }
}

extern "C" fn copy_main(saved: &[u64; SAVED_REGISTERS]) -> ! {
    sys::exit(run_copy(saved))
}

/// What a copy does: checks its registers, then its job.
fn run_copy(saved: &[u64; SAVED_REGISTERS]) -> i32 {
    let [rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15] = *saved;
    let expected = copy_registers(rdi, rsi);
    let given = [rax, rbx, rcx, rdx, rbp, r8, r9, r10, r11, r12, r13, r14, r15];
    let wanted = [
        expected.rax, expected.rbx, expected.rcx, expected.rdx, expected.rbp, expected.r8, expected.r9, expected.r10,
        expected.r11, expected.r12, expected.r13, expected.r14, expected.r15,
    ];
    let saved_at = core::ptr::from_ref(saved) as u64;
    let bases = (sys::tls_get(abi::tls::FS), sys::tls_get(abi::tls::GS));
    if given != wanted || saved_at != COPY_STACK_TOP - SAVED_REGISTERS as u64 * 8 || bases != (Ok(expected.fs_base), Ok(0)) {
        return BAD_REGISTERS;
    }
    let pages = rsi;
    let words = shared_words();
    let wait_for_command = |value: u64| {
        let deadline = sys::uptime_ns() + 20_000_000_000;
        while words[COPY_COMMAND].load(Ordering::Acquire) != value {
            if sys::uptime_ns() > deadline {
                return false;
            }
            let _ = sys::sleep_ms(1);
        }
        true
    };
    match rdi {
        COPY_CHECK => {
            if verify(pages, SOURCE_TAG) != 0 || words[SENTINEL].load(Ordering::Acquire) != SENTINEL_VALUE {
                return BAD_MEMORY;
            }
            words[COPY_SAW].store(COPY_SAW_VALUE, Ordering::Release);
            0
        }
        COPY_PRIVATE => {
            if verify(pages, SOURCE_TAG) != 0 {
                return BAD_MEMORY;
            }
            fill(pages, COPY_TAG);
            words[COPY_STATE].store(1, Ordering::Release);
            // The source rewrites its pages meanwhile.
            if !wait_for_command(1) {
                return TIMED_OUT;
            }
            if verify(pages, COPY_TAG) != 0 { NOT_PRIVATE } else { 0 }
        }
        COPY_PIPE => {
            if pipe_into_page(pages - 1) != 0 { PIPE_FAILED } else { 0 }
        }
        COPY_WAIT => {
            words[COPY_STATE].store(1, Ordering::Release);
            // Killed here, or told to look at its memory once the source has gone.
            if !wait_for_command(2) {
                return TIMED_OUT;
            }
            if verify(pages, SOURCE_TAG) != 0 { BAD_MEMORY } else { 0 }
        }
        COPY_WRITE_ALL => {
            fill(pages, COPY_TAG);
            0
        }
        _ => BAD_REGISTERS,
    }
}

/// A running source with `pages` data pages, and the case's view of the shared words (the
/// object mapped at `at` until the source is dropped).
struct Source {
    child: Child,
    shared: SharedMemory,
    at: u64,
    words: &'static [AtomicU64; 512],
    pages: u64,
}

impl Drop for Source {
    fn drop(&mut self) {
        // SAFETY: the case's mapping of the shared page, used through `words` only while the
        // source lives.
        let _ = unsafe { sys::munmap(self.at, PAGE) };
    }
}

impl Source {
    fn start(pages: u64) -> Result<Self, alloc::string::String> {
        let shared = SharedMemory::create(1).context("memory_create")?;
        let at = shared.map(0, RW).context("memory_map")?;
        // SAFETY: one page just mapped, read and written only through atomics.
        let words = unsafe { &*(at as *const [AtomicU64; 512]) };
        words[SENTINEL].store(SENTINEL_VALUE, Ordering::Release);
        let handle = shared.handle().raw() as u32;
        let child = spawn_with_handles("cow_source", &[&alloc::format!("{pages}")], &[handle])?;
        let source = Self { child, shared, at, words, pages };
        let ready = wait_until(CHILD_LIMIT, || Ok(source.words[READY].load(Ordering::Acquire) == 1))?;
        if !ready {
            let _ = source.finish();
            return Err("the source never became ready".into());
        }
        Ok(source)
    }

    /// Starts a copy of the source doing `job`.
    fn copy(&self, job: u64) -> Result<Child, alloc::string::String> {
        sys::process_copy(self.child.handle, &copy_registers(job, self.pages), None).context("process_copy")
    }

    /// Tells the source to do `command` and returns its result.
    fn command(&self, command: u64) -> Result<u64, alloc::string::String> {
        self.words[SOURCE_DONE].store(0, Ordering::Release);
        self.words[SOURCE_COMMAND].store(command, Ordering::Release);
        let done = wait_until(CHILD_LIMIT, || Ok(self.words[SOURCE_DONE].load(Ordering::Acquire) == command))?;
        check!(done, "the source did not answer command {command}");
        Ok(self.words[SOURCE_RESULT].load(Ordering::Acquire))
    }

    /// Reads word `word` of data page `page` in `process` (the source or a copy).
    fn read_word(&self, process: u64, page: u64, word: u64) -> Result<u64, alloc::string::String> {
        let mut bytes = [0u8; 8];
        sys::process_read(process, data_word(page, word) as u64, &mut bytes).context("process_read")?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Waits until a copy says it is running its job.
    fn wait_for_copy_state(&self) -> Outcome {
        let running = wait_until(CHILD_LIMIT, || Ok(self.words[COPY_STATE].load(Ordering::Acquire) == 1))?;
        check!(running, "the copy never said it was running");
        Ok(())
    }

    /// Tells the source to exit and checks that it exited 0.
    fn stop(&self) -> Outcome {
        self.words[SOURCE_COMMAND].store(SOURCE_EXIT, Ordering::Release);
        let ended = finish_within(self.child, "the source")?;
        expect_exit("the source", ended, 0)
    }

    /// [`stop`](Self::stop), and the case's mapping goes.
    fn finish(self) -> Outcome {
        self.stop()
    }
}

fn cow_copy_sees_the_sources_memory_and_shares_shared_memory() -> Outcome {
    let source = Source::start(16)?;
    let copy = source.copy(COPY_CHECK)?;
    let ended = finish_within(copy, "the copy");
    let saw = source.words[COPY_SAW].load(Ordering::Acquire);
    source.finish()?;
    expect_exit("the copy checking the source's pages and the case's shared word", ended?, 0)?;
    check!(saw == COPY_SAW_VALUE, "the copy's write to shared memory did not reach the case ({saw:#x})");
    Ok(())
}

fn cow_writes_after_the_copy_are_private_both_ways() -> Outcome {
    let source = Source::start(16)?;
    let copy = source.copy(COPY_PRIVATE)?;
    let outcome = (|| {
        source.wait_for_copy_state()?;
        // The copy has written every page: the source still has its own.
        check!(source.command(SOURCE_CHECK)? == 0, "the copy's writes reached the source");
        check!(source.command(SOURCE_REWRITE)? == 0, "the source could not rewrite its pages");
        let copy_word = source.read_word(copy.handle, 3, 5)?;
        check!(copy_word == pattern(COPY_TAG, 3, 5), "the copy's page shows {copy_word:#x}, not its own write");
        let source_word = source.read_word(source.child.handle, 3, 5)?;
        check!(source_word == pattern(REWRITE_TAG, 3, 5), "the source's page shows {source_word:#x}, not its own write");
        Ok(())
    })();
    source.words[COPY_COMMAND].store(1, Ordering::Release);
    let ended = finish_within(copy, "the copy");
    source.finish()?;
    outcome?;
    // The copy exits 0 only if its pages still hold its own writes after the source's.
    expect_exit("the copy", ended?, 0)
}

fn cow_copy_starts_with_the_given_registers() -> Outcome {
    let source = Source::start(1)?;
    // rax 0 as a fork's child has it, rip in this program, rsp on a stack of the copy's:
    // the copy checks every register it was given and exits 20 if one differs.
    let copy = source.copy(COPY_WRITE_ALL)?;
    let ended = finish_within(copy, "the copy");
    source.finish()?;
    expect_exit("the copy checking its registers", ended?, 0)
}

fn cow_pipe_read_into_an_untouched_shared_page_works_on_both_sides() -> Outcome {
    let source = Source::start(8)?;
    let copy = source.copy(COPY_PIPE)?;
    let copy_ended = finish_within(copy, "the copy");
    // The copy has ended: the source's page is its own again, but still read-only until
    // written, and the copy may have broken its page first. A second copy keeps it shared.
    let second = source.copy(COPY_WAIT)?;
    let outcome = (|| {
        source.wait_for_copy_state()?;
        let result = source.command(SOURCE_PIPE)?;
        check!(result == 0, "the source's read into a shared page failed (code {result})");
        let word = source.read_word(second.handle, source.pages - 1, 0)?;
        check!(word == pattern(SOURCE_TAG, source.pages - 1, 0), "the source's read reached the copy's page ({word:#x})");
        Ok(())
    })();
    let _ = sys::kill(second);
    let second_ended = finish_within(second, "the second copy");
    source.finish()?;
    outcome?;
    expect_exit("the second copy, killed", second_ended?, KILLED)?;
    expect_exit("the copy reading from a pipe into a shared page", copy_ended?, 0)
}

fn cow_frames_are_freed_exactly() -> Outcome {
    let source = Source::start(64)?;
    let before = system_frames()?;
    let outcome = (|| {
        // A copy that writes every page (64 private frames) and exits.
        let copy = source.copy(COPY_WRITE_ALL)?;
        expect_exit("the copy writing every page", finish_within(copy, "the copy")?, 0)?;
        // A copy killed while every page is still shared.
        let copy = source.copy(COPY_WAIT)?;
        source.wait_for_copy_state()?;
        sys::kill(copy).context("kill of the copy")?;
        expect_exit("the copy, killed", finish_within(copy, "the copy")?, KILLED)?;
        // The source writes its pages, shared with nobody now: no frame is taken.
        check!(source.command(SOURCE_REWRITE)? == 0, "the source could not rewrite its pages");
        let after = system_frames()?;
        check!(after == before, "{before} frames before the copies, {after} after");
        Ok(())
    })();
    source.finish()?;
    outcome
}

fn cow_a_copy_of_a_copy_sees_the_source_and_frees_every_frame() -> Outcome {
    let source = Source::start(16)?;
    let before = system_frames()?;
    let outcome = (|| {
        let first = source.copy(COPY_WAIT)?;
        let copies_of_the_copy = (|| {
            source.wait_for_copy_state()?;
            // Every data page has three owners while this runs: the source and both copies.
            let copy_of_copy = |job| {
                sys::process_copy(first.handle, &copy_registers(job, source.pages), None).context("process_copy of a copy")
            };
            let checker = copy_of_copy(COPY_CHECK)?;
            expect_exit("the copy of the copy checking", finish_within(checker, "the copy of the copy")?, 0)?;
            let saw = source.words[COPY_SAW].load(Ordering::Acquire);
            check!(saw == COPY_SAW_VALUE, "the copy of the copy did not see the source's memory ({saw:#x})");
            let writer = copy_of_copy(COPY_WRITE_ALL)?;
            expect_exit("the copy of the copy writing every page", finish_within(writer, "the copy of the copy")?, 0)?;
            // Its writes were its own: the first copy still holds the source's words.
            let word = source.read_word(first.handle, source.pages - 1, 5)?;
            check!(word == pattern(SOURCE_TAG, source.pages - 1, 5), "the first copy's word became {word:#x}");
            Ok(())
        })();
        let _ = sys::kill(first);
        let ended = finish_within(first, "the first copy");
        copies_of_the_copy?;
        expect_exit("the first copy, killed", ended?, KILLED)?;
        check!(source.command(SOURCE_CHECK)? == 0, "the source's pages changed under its copies");
        // Shared with nobody now: rewriting takes no frame.
        check!(source.command(SOURCE_REWRITE)? == 0, "the source could not rewrite its pages");
        let after = system_frames()?;
        check!(after == before, "{before} frames before the copies, {after} after");
        Ok(())
    })();
    source.finish()?;
    outcome
}

fn cow_copy_is_charged_for_every_page_it_maps() -> Outcome {
    let source = Source::start(256)?;
    let copy = source.copy(COPY_WAIT)?;
    let outcome = (|| {
        source.wait_for_copy_state()?;
        let table = Table::read()?;
        let memory = |pid| table.find(pid).map(|row| row.memory_bytes).ok_or("a process missing from process_list");
        let (source_memory, copy_memory) = (memory(source.child.pid)?, memory(copy.pid)?);
        check!(copy_memory >= 256 * PAGE, "the copy is charged {copy_memory} bytes for 256 shared pages and more");
        check!(
            copy_memory == source_memory,
            "the copy is charged {copy_memory} bytes, the source {source_memory}: the same pages and tables"
        );
        Ok(())
    })();
    let _ = sys::kill(copy);
    let ended = finish_within(copy, "the copy");
    source.finish()?;
    outcome?;
    expect_exit("the copy, killed", ended?, KILLED)
}

fn cow_copy_needs_debug_and_sound_arguments() -> Outcome {
    let source = Source::start(1)?;
    let outcome = (|| {
        let registers = copy_registers(COPY_WRITE_ALL, 1);
        let copy = |handle: u64, registers: u64, job: u64| call(abi::syscall::PROCESS_COPY, [handle, registers, job, 0, 0, 0]);
        let good = core::ptr::from_ref(&registers) as u64;
        let without_debug = ipc::duplicate(source.child.handle, rights::PROCESS_HANDLE & !rights::DEBUG).context("duplicate")?;
        let refused = copy(without_debug, good, NO_HANDLE);
        let _ = ipc::close(without_debug);
        expect_errno("process_copy through a handle without DEBUG", refused, EPERM)?;
        expect_errno("process_copy of no handle", copy(NO_HANDLE, good, NO_HANDLE), EBADF)?;
        expect_errno("process_copy of a memory object", copy(source.shared.handle().raw(), good, NO_HANDLE), EBADF)?;
        expect_errno("process_copy into no job", copy(source.child.handle, good, 0x7777), EBADF)?;
        for &(pointer, what) in BAD_POINTERS {
            expect_errno(&alloc::format!("process_copy with registers at {what}"), copy(source.child.handle, pointer, NO_HANDLE), EFAULT)?;
        }
        let kernel_rip = Registers { rip: KERNEL_ADDRESS, ..registers };
        let rip = core::ptr::from_ref(&kernel_rip) as u64;
        expect_errno("process_copy with a kernel rip", copy(source.child.handle, rip, NO_HANDLE), EINVAL)?;
        let odd_rsp = Registers { rsp: 0x8000_0000_0000, ..registers };
        let rsp = core::ptr::from_ref(&odd_rsp) as u64;
        expect_errno("process_copy with a non-canonical rsp", copy(source.child.handle, rsp, NO_HANDLE), EINVAL)
    })();
    // An ended source: killed, gone from the table, its handle still held.
    let killed = sys::kill_handle(source.child.handle);
    let gone = wait_until_gone(source.child.pid, "the source");
    let registers = copy_registers(COPY_WRITE_ALL, 1);
    let after_end = call(abi::syscall::PROCESS_COPY, [source.child.handle, core::ptr::from_ref(&registers) as u64, NO_HANDLE, 0, 0, 0]);
    let ended = finish_within(source.child, "the source");
    outcome?;
    killed.context("kill of the source")?;
    gone?;
    expect_exit("the source, killed", ended?, KILLED)?;
    expect_errno("process_copy of an ended process", after_end, ESRCH)
}

fn cow_source_thread_writes_during_copies_are_kept() -> Outcome {
    let source = Source::start(32)?;
    let outcome = (|| {
        check!(source.command(SOURCE_START_WRITER)? == 0, "the source could not start its writer thread");
        for round in 0..12 {
            let copy = source.copy(COPY_WRITE_ALL)?;
            let ended = finish_within(copy, "the copy")?;
            expect_exit(&alloc::format!("copy {round}"), ended, 0)?;
        }
        let lost = source.command(SOURCE_STOP_WRITER)?;
        check!(lost == 0, "the source's writer lost writes on {lost} pages during the copies");
        Ok(())
    })();
    source.finish()?;
    outcome
}

fn cow_copy_killed_while_the_source_runs() -> Outcome {
    let source = Source::start(16)?;
    let copy = source.copy(COPY_WAIT)?;
    let outcome = (|| {
        source.wait_for_copy_state()?;
        sys::kill(copy).context("kill of the copy")?;
        expect_exit("the copy, killed", finish_within(copy, "the copy")?, KILLED)?;
        let result = source.command(SOURCE_CHECK)?;
        check!(result == 0, "the source's page {} changed after its copy was killed", result - 1);
        Ok(())
    })();
    source.finish()?;
    outcome
}

fn cow_source_ending_while_the_copy_runs() -> Outcome {
    let source = Source::start(16)?;
    let copy = source.copy(COPY_WAIT)?;
    let waited = source.wait_for_copy_state();
    let source_ended = source.stop();
    // The copy now looks at its pages, whose frames the source's end must not have freed.
    source.words[COPY_COMMAND].store(2, Ordering::Release);
    let ended = finish_within(copy, "the copy");
    drop(source);
    waited?;
    source_ended?;
    expect_exit("the copy looking at its memory after the source ended", ended?, 0)
}

fn cow_mprotect_back_to_writable_keeps_a_shared_page_shared() -> Outcome {
    let source = Source::start(8)?;
    let copy = source.copy(COPY_WAIT)?;
    let outcome = (|| {
        source.wait_for_copy_state()?;
        // Read-only, then writable again, then written: the write must not reach the copy.
        check!(source.command(SOURCE_PROTECT_REWRITE)? == 0, "the source's mprotect or rewrite failed");
        let copy_word = source.read_word(copy.handle, 3, 5)?;
        check!(copy_word == pattern(SOURCE_TAG, 3, 5), "the source's write after mprotect reached the copy ({copy_word:#x})");
        let source_word = source.read_word(source.child.handle, 3, 5)?;
        check!(source_word == pattern(REWRITE_TAG, 3, 5), "the source's page shows {source_word:#x}, not its write");
        Ok(())
    })();
    let _ = sys::kill(copy);
    let ended = finish_within(copy, "the copy");
    source.finish()?;
    outcome?;
    expect_exit("the copy, killed", ended?, KILLED)
}
