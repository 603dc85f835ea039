//! `brk`, `mmap`, `munmap` and `mprotect`: growing, shrinking, fixed and chosen addresses,
//! invalid and wrapping arguments, reserved areas, rights, the per-process limit, exhaustion
//! of all physical memory, and page tables given back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::asm;
use core::hint::black_box;

use abi::errno::{EAGAIN, EINVAL, ENOMEM};
use abi::memory::{PHYSICAL_MAP_OFFSET, USER_END, USER_MMAP_BASE, USER_STACK_SIZE, USER_STACK_TOP};
use abi::syscall::MMAP;
use abi::status::KILLED;
use abi::{ExitInfo, PROT_EXEC, PROT_READ, ProcessState};
use userlib::check;
use userlib::process;
use userlib::sys::{self, Errno};
use userlib::testing::{Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    child brk_query_grow_shrink,
    child brk_below_heap_refused,
    child brk_wrapping_refused,
    here mmap_anywhere,
    here mmap_fixed,
    here mmap_reuse_is_zeroed,
    here mmap_invalid,
    here mmap_wrapping_refused,
    child mmap_reserved_areas_refused,
    here munmap_invalid,
    here munmap_partial,
    child munmap_spares_image_heap_stack,
    here mprotect_changes_rights,
    child mprotect_outside_mmap_refused,
    child mmap_code_runs_after_mprotect,
    child page_tables_freed,
    child failed_mmap_leaves_memory_as_it_was,
    child brk_exhaustion,
    child mmap_exhaustion,
    here global_memory_exhaustion,
    here kernel_heap_stays_bounded,
];

/// `brk` for children that own the heap above the allocator's top.
fn brk(end: u64) -> sys::Result<u64> {
    // SAFETY: the callers never move the heap end below the allocator's top, and they do not
    // allocate while the heap is above it.
    unsafe { sys::brk(end) }
}

fn brk_query_grow_shrink() -> Outcome {
    let start = sys::heap_end() as u64;
    let memory = my_memory()?;
    check!(start.is_multiple_of(PAGE) && start > IMAGE_START, "brk(0) returned {start:#x}");
    let grown = brk(start + 3 * PAGE + 5).context("brk grow")?;
    check!(grown == start + 4 * PAGE, "brk(start + 3 pages + 5) returned {grown:#x}, not the next page boundary");
    check!(my_memory()? == memory + 4 * PAGE, "memory did not grow by 4 pages");
    for page in 0..4 {
        let address = (start + page * PAGE) as *mut u64;
        // SAFETY: the four pages were just added to the heap, above the allocator's top.
        unsafe {
            check!(address.read_volatile() == 0, "new heap page {page} is not zeroed");
            address.write_volatile(0x1234_5678);
        }
    }
    check!(brk(start + PAGE).context("brk shrink")? == start + PAGE, "brk shrink");
    check!(my_memory()? == memory + PAGE, "memory did not shrink by 3 pages");
    check!(brk(start + 2 * PAGE).context("brk regrow")? == start + 2 * PAGE, "brk regrow");
    // SAFETY: the page was just mapped again.
    let regrown = unsafe { ((start + PAGE) as *const u64).read_volatile() };
    check!(regrown == 0, "a regrown heap page kept its old contents");
    check!(brk(start).context("brk back")? == start, "brk back to the start");
    check!(brk(0).context("brk(0)")? == start, "brk(0) after shrinking");
    Ok(())
}

fn brk_below_heap_refused() -> Outcome {
    let end = sys::heap_end() as u64;
    for address in [1, IMAGE_START, IMAGE_START + PAGE] {
        check!(brk(address) == Err(Errno(EINVAL)), "brk({address:#x}) below the heap was not refused with EINVAL");
    }
    check!(sys::heap_end() as u64 == end, "refused brk calls moved the heap end");
    Ok(())
}

fn brk_wrapping_refused() -> Outcome {
    let end = sys::heap_end() as u64;
    let memory = my_memory()?;
    for address in
        [u64::MAX, u64::MAX - PAGE + 2, USER_END, PHYSICAL_MAP_OFFSET, end + (1 << 40), USER_STACK_TOP - PAGE]
    {
        check!(brk(address) == Err(Errno(ENOMEM)), "brk({address:#x}) was not refused with ENOMEM");
    }
    check!(sys::heap_end() as u64 == end, "refused brk calls moved the heap end");
    check!(my_memory()? == memory, "refused brk calls changed the memory size");
    Ok(())
}

fn mmap_anywhere() -> Outcome {
    let memory = my_memory()?;
    let address = sys::mmap(0, 3 * PAGE, RW).context("mmap")?;
    check!(
        address % PAGE == 0 && address >= USER_MMAP_BASE && address + 3 * PAGE <= USER_END,
        "mmap returned {address:#x}"
    );
    let grown = my_memory()? - memory;
    // Three pages, and the page tables they needed (none if earlier mappings made them).
    check!((3 * PAGE..=6 * PAGE).contains(&grown), "memory grew by {grown} bytes for 3 pages");
    // SAFETY: the three pages were just mapped read-write.
    let bytes = unsafe { core::slice::from_raw_parts_mut(address as *mut u8, 3 * PAGE as usize) };
    check!(bytes.iter().all(|&byte| byte == 0), "new pages are not zeroed");
    bytes.fill(0x42);
    check!(black_box(&bytes[..]).iter().all(|&byte| byte == 0x42), "pages do not keep what was written");
    unmap(address, 3)?;
    check!(my_memory()? == memory, "munmap did not give the pages back");
    Ok(())
}

fn mmap_fixed() -> Outcome {
    let address = sys::mmap(FIXED_BASE, 2 * PAGE, RW).context("mmap at a fixed address")?;
    check!(address == FIXED_BASE, "mmap at {FIXED_BASE:#x} returned {address:#x}");
    let overlap = sys::mmap(FIXED_BASE + PAGE, 2 * PAGE, RW);
    let outcome: Outcome = (|| {
        check!(overlap == Err(Errno(EINVAL)), "mmap over a mapped page returned {overlap:?}");
        let again = sys::mmap(FIXED_BASE, PAGE, PROT_READ);
        check!(again == Err(Errno(EINVAL)), "a second mmap at the same address returned {again:?}");
        Ok(())
    })();
    unmap(FIXED_BASE, 2)?;
    outcome
}

fn mmap_reuse_is_zeroed() -> Outcome {
    for round in 0..2 {
        let address = sys::mmap(FIXED_BASE, PAGE, RW).context("mmap")?;
        // SAFETY: the page was just mapped read-write.
        let word = unsafe { &mut *(address as *mut u64) };
        check!(*word == 0, "round {round}: a reused page still holds {:#x}", *word);
        *word = 0xdead_beef;
        unmap(address, 1)?;
    }
    Ok(())
}

fn mmap_invalid() -> Outcome {
    let memory = my_memory()?;
    for (address, length, prot, what) in [
        (0, 0, RW, "length 0"),
        (FIXED_BASE, 0, RW, "length 0 at a fixed address"),
        (FIXED_BASE + 1, PAGE, RW, "an unaligned address"),
        (0, PAGE, RW | PROT_EXEC, "write and execute"),
        (0, PAGE, 1 << 3, "an unknown prot bit"),
        (0, PAGE, u64::MAX, "prot u64::MAX"),
        (PAGE, PAGE, RW, "below USER_START"),
        (PHYSICAL_MAP_OFFSET, PAGE, RW, "PHYSICAL_MAP_OFFSET"),
        (0xffff_ffff_ffff_f000, PAGE, RW, "the last page"),
        (0x0000_8000_0000_0000, PAGE, RW, "the first non-canonical page"),
        (0xdead_beef_0000_0000, PAGE, RW, "a non-canonical address"),
        (LAST_USER_PAGE, 2 * PAGE, RW, "across the end of the user half"),
    ] {
        let result = call(MMAP, [address, length, prot, 0, 0, 0]);
        expect_errno(&format!("mmap with {what}"), result, EINVAL)?;
    }
    check!(my_memory()? == memory, "refused mmap calls changed the memory size");
    Ok(())
}

fn mmap_wrapping_refused() -> Outcome {
    let memory = my_memory()?;
    for (address, length) in [
        (0, u64::MAX),
        (0, u64::MAX - PAGE + 2),
        (0, 1 << 62),
        (FIXED_BASE, u64::MAX - FIXED_BASE + 1),
        (FIXED_BASE, u64::MAX),
        (FIXED_BASE, 1 << 47),
    ] {
        let result = call(MMAP, [address, length, RW, 0, 0, 0]);
        check!(result == -EINVAL || result == -ENOMEM, "mmap({address:#x}, {length:#x}) returned {}", show(result));
    }
    check!(my_memory()? == memory, "refused mmap calls changed the memory size");
    Ok(())
}

fn mmap_reserved_areas_refused() -> Outcome {
    let heap = sys::heap_end() as u64;
    for (address, what) in [
        (USER_STACK_TOP - USER_STACK_SIZE - PAGE, "the stack guard"),
        (USER_STACK_TOP - PAGE, "the stack"),
        (heap + 16 * PAGE, "the heap's reserved range"),
        (heap - PAGE, "the heap"),
        (IMAGE_START, "the program image"),
        (text_address() & !(PAGE - 1), "the program's text"),
    ] {
        let result = call(MMAP, [address, PAGE, RW, 0, 0, 0]);
        expect_errno(&format!("mmap over {what}"), result, EINVAL)?;
    }
    Ok(())
}

fn munmap_invalid() -> Outcome {
    for (address, length, what) in [
        (FIXED_BASE + 8, PAGE, "an unaligned address"),
        (FIXED_BASE, 0, "length 0"),
        (FIXED_BASE, u64::MAX, "length u64::MAX"),
        (FIXED_BASE, u64::MAX - FIXED_BASE + 1, "a wrapping length"),
        (0, PAGE, "null"),
        (PHYSICAL_MAP_OFFSET, PAGE, "PHYSICAL_MAP_OFFSET"),
        (0xdead_beef_0000_0000, PAGE, "a non-canonical address"),
    ] {
        // SAFETY: every one of these ranges is invalid and must be refused, leaving every
        // mapping in place.
        let result = unsafe { sys::munmap(address, length) };
        check!(result == Err(Errno(EINVAL)), "munmap of {what} returned {result:?}");
    }
    Ok(())
}

fn munmap_partial() -> Outcome {
    let memory = my_memory()?;
    let address = sys::mmap(0, 4 * PAGE, RW).context("mmap")?;
    unmap(address + PAGE, 2)?;
    let outcome: Outcome = (|| {
        // Two pages, and the page tables the mapping needed (none if earlier mappings made
        // them).
        check!(
            (2 * PAGE..=5 * PAGE).contains(&(my_memory()? - memory)),
            "unmapping the middle two of four pages left {} bytes",
            my_memory()? - memory
        );
        for page in [address, address + 3 * PAGE] {
            // SAFETY: the outer pages are still mapped read-write.
            unsafe { core::ptr::write_volatile(page as *mut u8, 1) };
        }
        // SAFETY: the range is not fully mapped and must be refused.
        let result = unsafe { sys::mprotect(address, 4 * PAGE, PROT_READ) };
        check!(result == Err(Errno(EINVAL)), "mprotect over the hole returned {result:?}");
        Ok(())
    })();
    unmap(address, 4)?;
    check!(my_memory()? == memory, "unmapping the rest did not give all pages back");
    outcome
}

fn munmap_spares_image_heap_stack() -> Outcome {
    let memory = my_memory()?;
    let heap = sys::heap_end() as u64;
    let (stack_start, stack_end) = (USER_STACK_TOP - USER_STACK_SIZE, USER_STACK_TOP);
    for (address, length, what) in
        [(IMAGE_START, heap - IMAGE_START, "the image and heap"), (stack_start, stack_end - stack_start, "the stack")]
    {
        // SAFETY: `munmap` affects only `mmap`ed pages, so this must leave the image, heap
        // and stack alone, which the rest of the child then relies on.
        let result = unsafe { sys::munmap(address, length) };
        check!(result == Ok(()), "munmap of {what} returned {result:?}");
    }
    check!(my_memory()? == memory, "munmap of non-mmap memory changed the memory size");
    let text = black_box(format!("{}", black_box(41) + 1));
    check!(text == "42", "the heap or text no longer works");
    Ok(())
}

fn mprotect_changes_rights() -> Outcome {
    let page = map_page_at(0)?;
    let outcome: Outcome = (|| {
        // SAFETY: the page was just mapped read-write.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x1234) };
        // SAFETY: nothing writes the page while it is read-only.
        unsafe { sys::mprotect(page, PAGE, PROT_READ) }.context("mprotect to read-only")?;
        // SAFETY: the page is still readable.
        check!(unsafe { core::ptr::read_volatile(page as *const u64) } == 0x1234, "the contents changed");
        // SAFETY: back to read-write.
        unsafe { sys::mprotect(page, PAGE, RW) }.context("mprotect back to read-write")?;
        // SAFETY: the page is writable again.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x5678) };
        for (address, length, prot, what) in [
            (page, PAGE, RW | PROT_EXEC, "write and execute"),
            (page, PAGE, 1 << 5, "an unknown bit"),
            (page + 8, PAGE, PROT_READ, "an unaligned address"),
            (page, 0, PROT_READ, "length 0"),
            (page, 2 * PAGE, PROT_READ, "a range running past the mapping"),
            (HOLE, PAGE, PROT_READ, "an unmapped page"),
            (page, u64::MAX, PROT_READ, "length u64::MAX"),
        ] {
            // SAFETY: each of these must be refused, leaving the page read-write.
            let result = unsafe { sys::mprotect(address, length, prot) };
            check!(result == Err(Errno(EINVAL)), "mprotect with {what} returned {result:?}");
        }
        // SAFETY: still read-write after the refusals.
        unsafe { core::ptr::write_volatile(page as *mut u64, 0x9abc) };
        Ok(())
    })();
    unmap(page, 1)?;
    outcome
}

fn mprotect_outside_mmap_refused() -> Outcome {
    let heap = sys::heap_end() as u64;
    for (address, prot, what) in [
        (text_address() & !(PAGE - 1), RW, "the text"),
        (USER_STACK_TOP - PAGE, RX, "the stack"),
        (heap - PAGE, RX, "the heap"),
        (READ_ONLY.as_ptr() as u64 & !(PAGE - 1), RW, ".rodata"),
    ] {
        // SAFETY: `mprotect` covers only `mmap`ed pages, so each must be refused and leave
        // the rights alone, which the child then relies on.
        let result = unsafe { sys::mprotect(address, PAGE, prot) };
        check!(result == Err(Errno(EINVAL)), "mprotect of {what} returned {result:?}");
    }
    check!(black_box(format!("{}", black_box(6) * 7)) == "42", "the heap or text no longer works");
    Ok(())
}

fn mmap_code_runs_after_mprotect() -> Outcome {
    let page = map_page_at(0)?;
    let code = [0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3];
    // SAFETY: the page was just mapped read-write.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), page as *mut u8, code.len()) };
    // SAFETY: nothing writes the page once it is executable.
    unsafe { sys::mprotect(page, PAGE, RX) }.context("mprotect to read-execute")?;
    let result: u64;
    // SAFETY: the page holds `mov eax, 42; ret` and is mapped read-execute.
    unsafe { asm!("call {}", in(reg) page, out("rax") result, clobber_abi("C")) };
    check!(result == 42, "the code returned {result}");
    Ok(())
}

fn page_tables_freed() -> Outcome {
    let before = info()?.free_frames;
    for index in 0..32u64 {
        let address = HOLE + (index << 30);
        let mapped = sys::mmap(address, PAGE, RW).context("mmap")?;
        check!(mapped == address, "mmap at {address:#x} returned {mapped:#x}");
        // SAFETY: the page was just mapped read-write.
        unsafe { core::ptr::write_volatile(address as *mut u8, 1) };
        unmap(address, 1)?;
    }
    let after = info()?.free_frames;
    check!(
        after == before,
        "mapping and unmapping 32 pages, 1 GiB apart, kept {} frames",
        before.saturating_sub(after)
    );
    Ok(())
}

fn failed_mmap_leaves_memory_as_it_was() -> Outcome {
    let limit = info()?.max_process_memory;
    let memory = my_memory()?;
    let frames = info()?.free_frames;
    // Exactly the pages the limit has left, somewhere nothing is mapped: the page tables they
    // need push the process over the limit part-way, so the mapping must fail after building
    // tables, and take them all back.
    let result = sys::mmap(HOLE, limit - memory, RW);
    check!(result == Err(Errno(ENOMEM)), "mmap of the whole remaining limit returned {result:?}, not ENOMEM");
    check!(my_memory()? == memory, "the failed mmap left {} bytes charged", my_memory()? - memory);
    check!(info()?.free_frames == frames, "the failed mmap kept {} frames", frames - info()?.free_frames);
    Ok(())
}

fn brk_exhaustion() -> Outcome {
    let limit = info()?.max_process_memory;
    let start = sys::heap_end() as u64;
    let memory = my_memory()?;
    let grow_until_refused = || -> Result<u64, String> {
        let mut end = start;
        for step in [MIB, PAGE] {
            loop {
                match brk(end + step) {
                    Ok(new_end) => end = new_end,
                    Err(Errno(ENOMEM)) => break,
                    Err(errno) => return Err(format!("brk grow failed with {errno}, not ENOMEM")),
                }
            }
        }
        Ok(end)
    };
    let first = grow_until_refused()?;
    // The limit counts page tables too; the last page may have needed up to three of them.
    check!(
        (limit - 3 * PAGE..=limit).contains(&my_memory()?),
        "the heap stopped growing at {} bytes of memory, not at the limit {limit}",
        my_memory()?
    );
    // SAFETY: the last heap page is mapped; nothing else uses it.
    unsafe { core::ptr::write_volatile((first - 8) as *mut u64, 7) };
    check!(brk(start).context("brk shrink")? == start, "brk shrink");
    check!(my_memory()? == memory, "shrinking did not free the heap");
    let second = grow_until_refused()?;
    check!(second == first, "the heap regrew to {second:#x}, first time {first:#x}");
    check!(brk(start).context("brk shrink")? == start, "brk shrink");
    Ok(())
}

fn mmap_exhaustion() -> Outcome {
    let limit = info()?.max_process_memory;
    let memory = my_memory()?;
    let mut mappings: Vec<(u64, u64)> = Vec::with_capacity(2048);
    for step in [MIB, PAGE] {
        loop {
            check!(mappings.len() < mappings.capacity(), "more than {} mappings", mappings.capacity());
            match sys::mmap(0, step, RW) {
                Ok(address) => mappings.push((address, step)),
                Err(Errno(ENOMEM)) => break,
                Err(errno) => return Err(format!("mmap failed with {errno}, not ENOMEM")),
            }
        }
    }
    let total: u64 = mappings.iter().map(|(_, length)| length).sum();
    // The limit counts page tables too; the last page may have needed up to three of them.
    check!(
        (limit - 3 * PAGE..=limit).contains(&my_memory()?),
        "mmap stopped at {} bytes of memory, not at the limit {limit}",
        my_memory()?
    );
    for &(address, length) in &mappings {
        unmap(address, length / PAGE)?;
    }
    check!(my_memory()? == memory, "unmapping everything left {} bytes", my_memory()? - memory);
    let again = sys::mmap(0, total, RW).context("mmap of everything in one piece")?;
    unmap(again, total / PAGE)
}

fn global_memory_exhaustion() -> Outcome {
    let before = system_frames()?;
    let info = info()?;
    let hogs = (info.free_frames * PAGE / info.max_process_memory + 1).min(16);
    let mut pids = Vec::new();
    for _ in 0..hogs {
        pids.push(spawn_child("memory_hog", &[])?);
    }
    let outcome: Outcome = (|| {
        // Until every hog sleeps (it mapped until ENOMEM) or one is gone (it failed).
        let settled = wait_until(CHILD_LIMIT * 2, || {
            let table = Table::read()?;
            let states: Vec<Option<u32>> = pids.iter().map(|child| table.find(child.pid).map(|row| row.state)).collect();
            Ok(states.iter().any(Option::is_none) || states.iter().all(|&state| state == Some(ProcessState::Blocked as u32)))
        })?;
        check!(settled, "the memory hogs did not finish mapping");
        let info = sys::sysinfo().context("sysinfo while memory is exhausted")?;
        let free = info.free_frames;
        check!(free < 64, "{hogs} hogs left {free} frames free: physical memory was not exhausted");
        check!(info.processes < info.max_processes, "the process table is full: a refused spawn would not be about memory");
        // Exhausted memory refuses a spawn and a mapping with ENOMEM, and nothing else.
        let spawned = userlib::testing::spawn_self(&["usertests", "--child", "exit_with", "0"], &process::standard_handles());
        if let Ok(child) = spawned {
            wait_for(child)?;
        }
        check!(spawned.is_err_and(|errno| errno == Errno(ENOMEM)), "spawn without memory returned {spawned:?}, not ENOMEM");
        let pages = free + 16;
        let mapped = sys::mmap(0, pages * PAGE, RW);
        if let Ok(address) = mapped {
            unmap(address, pages)?;
        }
        check!(mapped == Err(Errno(ENOMEM)), "mmap of {pages} pages with {free} frames free returned {mapped:?}, not ENOMEM");
        Ok(())
    })();
    let mut endings = Vec::new();
    for &child in &pids {
        let _ = sys::kill(child);
        endings.push(wait_for(child)?);
    }
    outcome?;
    check!(
        endings.iter().all(|ending| *ending == ExitInfo::exited(KILLED)),
        "a memory hog ended before it was killed (4: a refusal other than ENOMEM): {endings:?}"
    );
    let after = system_frames()?;
    check!(after == before, "{} frames missing after the hogs were reaped", before.saturating_sub(after));
    Ok(())
}


/// As many processes as the table holds, each with as many separate `mmap` regions as it may
/// have: the kernel's bookkeeping must stay within its heap (with `-m 4G` the frames do not
/// run out first), every refusal must be ENOMEM, and killing them all must give every heap
/// byte back.
fn kernel_heap_stays_bounded() -> Outcome {
    let before = info()?;
    let mut pids = Vec::new();
    let refusal = loop {
        match userlib::testing::spawn_self(&["usertests", "--child", "region_hog"], &process::standard_handles()) {
            Ok(child) => pids.push(child),
            Err(errno) => break errno,
        }
    };
    let table_full = info()?.processes == before.max_processes;
    let settled = wait_until(CHILD_LIMIT, || {
        let table = Table::read()?;
        Ok(pids.iter().all(|child| table.find(child.pid).is_some_and(|row| row.state != ProcessState::Ready as u32)))
    })?;
    let during = info()?;
    let mut endings = Vec::new();
    for &child in &pids {
        let _ = sys::kill(child);
        endings.push(wait_for(child)?);
    }
    let after = info()?;
    check!(settled, "the region hogs did not all finish mapping within {CHILD_LIMIT:?}");
    check!(pids.len() >= 32, "only {} processes could be started", pids.len());
    // The spawns stop at the process table's end (EAGAIN) or, with less memory, at the
    // machine's memory (ENOMEM); any other refusal is a failure.
    check!(
        (table_full && refusal == Errno(EAGAIN)) || (!table_full && refusal == Errno(ENOMEM)),
        "the spawns of region hogs ended with {refusal} with the process table {}",
        if table_full { "full" } else { "not full" }
    );
    check!(
        endings.iter().all(|ending| *ending == ExitInfo::exited(KILLED)),
        "a region hog failed: {endings:?}"
    );
    check!(
        during.heap_used < during.heap_size,
        "heap use {} of {} with every process full of regions",
        during.heap_used,
        during.heap_size
    );
    check!(after.heap_used == before.heap_used, "heap use {} after the hogs, {} before", after.heap_used, before.heap_used);
    check!(after.free_frames == before.free_frames, "{} frames missing after the hogs", before.free_frames - after.free_frames);
    Ok(())
}
