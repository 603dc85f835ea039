//! The boot sequence, and the kernel's last words (panics and double faults).
//!
//! Order: serial log and logger → banner → framebuffer kept for panics → GDT and TSS →
//! per-CPU data → the big kernel lock → IDT and the kernel's trap hooks → CPU protections →
//! memory (frames, page tables, heap) → guarded interrupt stacks → ACPI → interrupt
//! controllers (IOAPIC or 8259s) and the local APIC → clock (HPET/TSC) and the calibrated
//! local timer → `syscall` MSRs → the other CPUs (each to its idle loop) → command line →
//! (in-kernel tests, if asked) → device objects → `/bin/init` from the boot ramdisk, with
//! them → the idle loop.
//!
//! The trap hooks ([`HOOKS`]) are where the CPU's reports reach the rest of the kernel.

use alloc::string::String;
use alloc::vec::Vec;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use bootloader_api::BootInfo;

use crate::arch::hooks::{self, KernelHooks};
use crate::arch::trap::{CpuFault, TrapFrame};
use crate::arch::smp::{self, StartupParameters};
use crate::arch::{acpi, cpu, fw_cfg, gdt, hpet, irq, kernel_lock, ps2, qemu, serial, syscall_entry, trap, user_state};
use crate::mm::kernel_stack;
use crate::{backtrace, klog, ktest, mm, object, println, syscall, task, time};

/// The kernel's version, as the banner shows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The first process: the one program the kernel starts, from the ramdisk.
const INIT: &str = "init";
/// Where it is in the ramdisk (a tar archive with relative names).
const INIT_PATH: &str = "bin/init";

/// Exit status when the first program cannot be started (like a shell's "not found").
const FIRST_PROGRAM_FAILED: i32 = 127;

/// The kernel's answers to the CPU's traps.
static HOOKS: KernelHooks = KernelHooks {
    syscall: syscall::dispatch_frame,
    user_fault: task::kill_current_for_fault,
    user_exception: task::exception::user_exception,
    before_user_return: task::before_user_return,
    device_interrupt,
    timer_tick,
    fatal_fault,
    process_start: task::start_user,
};

/// The kernel's entry point, called by `main.rs` with the bootloader's hand-over.
pub fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    // First, while the boot information is still whole (the framebuffer keeps its part).
    let kernel_symbols = backtrace::init(boot_info);
    klog::init();
    if !kernel_symbols {
        log::warn!("no kernel symbol table: backtraces show addresses only");
    }
    let framebuffer = boot_info.framebuffer.as_ref().map(framebuffer_layout);
    let screen = boot_info.framebuffer.as_mut().and_then(klog::keep_framebuffer_for_panics);
    println!("\x1b[1;36mEnigma {VERSION}\x1b[0m: an x86_64 microkernel in Rust");
    match screen {
        Some(size) => log::info!("framebuffer: {size}"),
        None => log::warn!("no usable framebuffer; serial console only"),
    }
    gdt::init(0);
    cpu::init_per_cpu(0);
    // The boot processor holds the big kernel lock from here on, as kernel code does, until
    // its idle loop first halts.
    kernel_lock::acquire();
    hooks::install(&HOOKS);
    trap::init();
    let protections = cpu::enable_protections();
    log::info!(
        "protections: NX {} WP {} SMEP {} SMAP {} UMIP {}",
        on_off(protections.nx),
        on_off(protections.write_protect),
        on_off(protections.smep),
        on_off(protections.smap),
        on_off(protections.umip)
    );
    log::info!(
        "user registers: x87, SSE{}, saved with {} at every switch",
        if user_state::avx_enabled() { ", AVX" } else { "" },
        user_state::save_method()
    );

    let offset = boot_info.physical_memory_offset.into_option();
    assert_eq!(offset, Some(mm::physical_map::PHYSICAL_MEMORY_OFFSET), "physical memory is not mapped where expected");
    mm::init(&boot_info.memory_regions);
    let ramdisk = mm::ramdisk::Ramdisk::from_boot(boot_info.ramdisk_addr.into_option(), boot_info.ramdisk_len);
    let heap = mm::heap_stats();
    log::info!(
        "memory: {} of {} frames free, heap {} KiB",
        mm::frame::free_count(),
        mm::frame::total_count(),
        heap.heap_size / 1024
    );

    kernel_stack::install_interrupt_stacks(0);

    let platform = boot_info.rsdp_addr.into_option().map(acpi::discover).unwrap_or_default();
    let hpet = platform.hpet.as_ref().and_then(hpet::start);
    let apic = platform.apic.as_ref();
    let local_apic_base = apic.map_or(DEFAULT_LOCAL_APIC_BASE, |apic| apic.local_apic_base);
    let boot_apic_id = apic.and_then(|apic| apic.processors.first().copied()).unwrap_or(0);
    let through_ioapic = irq::init(apic, boot_apic_id);
    smp::init_boot_processor(local_apic_base, through_ioapic, apic.map_or(1, |apic| apic.processors.len()));
    log::info!(
        "interrupts: {} local APIC, devices through the {}",
        if crate::arch::apic::is_x2apic() { "x2APIC" } else { "xAPIC" },
        if through_ioapic { "IOAPIC" } else { "8259s" }
    );
    let (clock, timer_counts) = time::start(hpet);
    match clock {
        time::ClockSource::Ticks => log::warn!("no HPET: uptime counts timer ticks and loses time while interrupts are masked"),
        source => log::info!("clock: {source:?}"),
    }
    syscall_entry::init();
    log::info!(
        "timer {} Hz per CPU ({timer_counts} APIC counts, divided by 16), syscalls via int 0x80 and syscall",
        time::TIMER_HZ
    );
    log::info!("cpu 0 up (apic id {boot_apic_id}, boot processor)");
    if let Some(apic) = apic {
        start_other_processors(&apic.processors);
    }

    let command_line = fw_cfg::read_file("opt/enigma/cmdline").map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    log::info!("cmdline: {}", command_line.as_deref().unwrap_or(""));
    if let Some(selection) = fw_cfg::read_file("opt/enigma/ktest") {
        ktest::run(&String::from_utf8_lossy(&selection));
    }

    let devices = find_devices(framebuffer);
    start_init(command_line.as_deref().unwrap_or(""), ramdisk.as_ref(), devices);
    // Boot ran with interrupts masked throughout; what is measured from here on is what
    // processes cause.
    cpu::reset_longest_masked();
    task::scheduler::run_idle_loop()
}

/// Where the local APIC is when the firmware's tables do not say (the architectural default).
const DEFAULT_LOCAL_APIC_BASE: u64 = 0xfee0_0000;

/// Starts every other CPU the MADT lists (up to `cpu::MAX_CPUS`), one at a time, each with
/// guarded interrupt stacks and an idle stack; logs each one that comes up.
fn start_other_processors(apic_ids: &[u32]) {
    if apic_ids.len() <= 1 {
        return;
    }
    if apic_ids.len() > cpu::MAX_CPUS {
        log::warn!("the MADT lists {} CPUs; using the first {}", apic_ids.len(), cpu::MAX_CPUS);
    }
    let (Some(trampoline_page), Some(startup_table)) = (mm::frame::low_memory_page(), mm::paging::StartupTable::new())
    else {
        log::warn!("no memory below 1 MiB or for a start-up table: running on one CPU");
        return;
    };
    let parameters = StartupParameters {
        trampoline_page: trampoline_page.as_u64(),
        startup_table: startup_table.root(),
        kernel_root: mm::paging::kernel_root(),
        entry: processor_main,
    };
    let mut all_started = true;
    for (cpu, &apic_id) in apic_ids.iter().enumerate().take(cpu::MAX_CPUS).skip(1) {
        kernel_stack::install_interrupt_stacks(cpu);
        let Some(stack) = kernel_stack::idle_stack(cpu) else {
            log::warn!("no memory for cpu {cpu}'s idle stack");
            break;
        };
        match smp::start_processor(cpu, apic_id, stack, &parameters) {
            Ok(()) => log::info!("cpu {cpu} up (apic id {apic_id})"),
            Err(error) => {
                log::warn!("cpu {cpu} (apic id {apic_id}) did not start: {error:?}");
                all_started = false;
            }
        }
    }
    if all_started {
        drop(startup_table);
    } else {
        // A CPU that did not answer in time may still run the start-up code later, with this
        // table: it must stay.
        core::mem::forget(startup_table);
    }
}

/// What every CPU but the boot processor runs once it is set up: its idle loop, under the big
/// kernel lock like all kernel code.
fn processor_main() -> ! {
    kernel_lock::acquire();
    task::scheduler::run_idle_loop()
}

/// NMIs reported so far. The NMI handler itself takes no lock (it may have interrupted a
/// holder), so the report waits for the next timer interrupt, which only arrives where the
/// kernel holds none.
static NMIS_REPORTED: AtomicU64 = AtomicU64::new(0);

fn report_new_nmis() {
    let count = trap::nmi_count();
    if NMIS_REPORTED.swap(count, Ordering::Relaxed) != count {
        log::warn!("non-maskable interrupt ({count} so far)");
    }
}

/// A timer interrupt, before (and usually without) the big kernel lock: counts the tick and
/// checks time slices; asks for the lock when sleepers are due, an NMI is to be reported, or
/// the running process has something to look at.
fn timer_tick() -> bool {
    time::tick();
    let nmi_unreported = trap::nmi_count() != NMIS_REPORTED.load(Ordering::Relaxed);
    task::timer_tick_without_lock() || nmi_unreported
}

/// Device interrupts: the timer wakes sleepers (when `timer_tick` found some due) and reports
/// NMIs; every other line goes to the driver that bound it (an unbound line is masked, so it
/// does not fire).
fn device_interrupt(line: u8) {
    if line == irq::TIMER_LINE {
        task::on_timer_tick();
        report_new_nmis();
    } else if !object::device::interrupt(line) {
        log::warn!("interrupt on line {line}, which no driver has bound");
        irq::mask_line(line);
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// The framebuffer's virtual address, length and layout, for the console server's device
/// memory.
fn framebuffer_layout(framebuffer: &bootloader_api::info::FrameBuffer) -> (u64, u64, abi::FramebufferInfo) {
    let info = framebuffer.info();
    let format = match info.pixel_format {
        bootloader_api::info::PixelFormat::Bgr => abi::PIXEL_BGR,
        bootloader_api::info::PixelFormat::U8 => abi::PIXEL_GRAY,
        _ => abi::PIXEL_RGB,
    };
    let layout = abi::FramebufferInfo {
        width: info.width as u32,
        height: info.height as u32,
        stride: info.stride as u32,
        bytes_per_pixel: info.bytes_per_pixel as u32,
        format,
    };
    (framebuffer.buffer().as_ptr() as u64, info.byte_len as u64, layout)
}

/// The device objects `init` gets, by handle number (`abi::init_handles`).
type Devices = Vec<(u64, object::Handle)>;

/// Makes the device objects from what boot found: the keyboard's and COM1's lines and ports,
/// the framebuffer, the log, and COM2 if it answers.
fn find_devices(framebuffer: Option<(u64, u64, abi::FramebufferInfo)>) -> Devices {
    use abi::handle::rights::{DUPLICATE, READ, TRANSFER, WAIT, WRITE};
    use abi::init_handles::*;
    use alloc::sync::Arc;
    use object::device::{DeviceMemory, IoPorts, Irq};
    use object::{Handle, Object};
    let shared = DUPLICATE | TRANSFER;
    let interrupt_line = |line| Handle::new(Object::Irq(Arc::new(Irq::new(line))), shared | WAIT);
    let ports = |first, count| Handle::new(Object::IoPorts(Arc::new(IoPorts::new(first, count))), shared | READ | WRITE);
    let mut devices = alloc::vec![
        (KEYBOARD_IRQ, interrupt_line(irq::KEYBOARD_LINE)),
        (SERIAL_IRQ, interrupt_line(irq::COM1_LINE)),
        (PS2_PORTS, ports(ps2::DATA_PORT, ps2::STATUS_PORT - ps2::DATA_PORT + 1)),
        (SERIAL_PORTS, ports(serial::COM1_BASE, 8)),
        (LOG, Handle::new(Object::Log, shared | READ | WRITE)),
    ];
    let screen = framebuffer.filter(|&(address, _, _)| address % mm::frame::FRAME_SIZE == 0);
    match screen.and_then(|(address, len, layout)| Some((mm::paging::kernel_frames(address, len)?, layout))) {
        Some((frames, layout)) => {
            let memory = DeviceMemory::new(mm::shared::SharedFrames::boot_memory(frames), Some(layout));
            devices.push((FRAMEBUFFER, Handle::new(Object::DeviceMemory(Arc::new(memory)), shared | READ | WRITE)));
        }
        None => log::warn!("no framebuffer for the console server"),
    }
    if serial::com2_present() {
        devices.push((SPARE_IRQ, interrupt_line(irq::COM2_LINE)));
        devices.push((SPARE_PORTS, ports(serial::COM2_BASE, 8)));
    }
    devices
}

/// Starts `/bin/init` from the ramdisk with the command line's words as its arguments after
/// its own name (`init` runs the program they name instead of the shell), the kernel's log as
/// handles 0 to 2, the power handle as 3, the ramdisk, read-only, as 4, and the device
/// handles and the root job (which it runs in) as `abi::init_handles` numbers them.
fn start_init(command_line: &str, ramdisk: Option<&mm::ramdisk::Ramdisk>, devices: Devices) {
    let mut words: Vec<&str> = command_line.split_whitespace().collect();
    if words.first() != Some(&INIT) {
        words.insert(0, INIT);
    }
    let Some(ramdisk) = ramdisk else {
        log::error!("cannot start {INIT}: the bootloader loaded no ramdisk");
        qemu::exit(FIRST_PROGRAM_FAILED);
    };
    let image = tar_no_std::TarArchiveRef::new(ramdisk.bytes).ok().and_then(|archive| {
        archive.entries().find(|entry| entry.filename().as_str() == Ok(INIT_PATH)).map(|entry| entry.data())
    });
    let Some(image) = image else {
        log::error!("cannot start {INIT}: no {INIT_PATH} in the ramdisk");
        qemu::exit(FIRST_PROGRAM_FAILED);
    };
    let mut handles = crate::object::handles::HandleTable::for_first_process().expect("no memory for the first handle table");
    let ramdisk_object = crate::object::memory::MemoryObject::new(ramdisk.shared_frames());
    let ramdisk_rights = abi::handle::rights::DUPLICATE | abi::handle::rights::TRANSFER | abi::handle::rights::READ;
    let ramdisk_handle = crate::object::Handle::new(crate::object::Object::Memory(alloc::sync::Arc::new(ramdisk_object)), ramdisk_rights);
    handles.insert_at(4, ramdisk_handle);
    for (number, handle) in devices {
        handles.insert_at(number as u32, handle);
    }
    let root_job = crate::object::job::Job::root();
    let root_job_handle = crate::object::Handle::new(crate::object::Object::Job(root_job.clone()), abi::handle::rights::JOB_HANDLE);
    handles.insert_at(abi::init_handles::ROOT_JOB as u32, root_job_handle);
    match task::scheduler::spawn(INIT, image, &words, 0, root_job, handles) {
        Ok(process) => log::info!("started {INIT} as pid {} ({} KiB ramdisk)", process.pid, ramdisk.bytes.len() / 1024),
        Err(error) => {
            log::error!("cannot start {INIT}: {error:?}");
            qemu::exit(FIRST_PROGRAM_FAILED);
        }
    }
}

/// The panic handler's body: reports on both consoles, with a backtrace, and ends QEMU with
/// status 101.
pub fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    smp::stop_other_processors();
    klog::print_panic(format_args!("\n\x1b[1;31mKERNEL PANIC\x1b[0m: {info}\n"));
    backtrace::print_kernel_backtrace(klog::print_panic);
    qemu::exit(abi::status::PANIC)
}

/// Reports a fault the kernel cannot survive (a CPU exception in ring 0, a double fault, a
/// machine check) and ends the kernel. A double fault whose stack pointer lies in a kernel
/// stack's guard page is named as that stack overflowing; the stack-overflow tests end
/// successfully here when they are waiting for exactly that.
fn fatal_fault(fault: &CpuFault, frame: &TrapFrame) -> ! {
    let overflowed_slot = kernel_stack::guard_page_slot(::x86_64::VirtAddr::new_truncate(frame.rsp));
    if frame.vector == 8 {
        if let Some(slot) = overflowed_slot {
            klog::print_panic(format_args!(
                "kernel stack overflow: the stack in slot {slot} ran into its guard page (rsp {:#x}, {} context)\n",
                frame.rsp,
                if kernel_stack::running().stack_slot() == Some(slot) { "running" } else { "another" },
            ));
        }
        if ktest::expecting_double_fault() {
            println!("double fault caught on its own stack: {fault} (rsp {:#x})", frame.rsp);
            ktest::finish_double_fault_test(overflowed_slot);
        }
    }
    panic!("kernel {fault}\n{frame:#x?}");
}
