//! `syscall-tests [NAME...]`: a small test program, and the example of how to write one. It
//! checks `getpid`, `uptime` and `sleep`, and that an invalid instruction kills only the
//! process that runs it. `make test` runs it, as it runs every program whose name ends in
//! `-tests`, and wants the last line to say `N passed, 0 failed`.
#![no_std]
#![no_main]

use userlib::check;
use userlib::sys;
use userlib::testing::{Case, Context, Expected, Outcome, Suite};

userlib::main!(main);

const CASES: &[Case] = userlib::cases![
    here getpid_is_stable,
    here uptime_never_goes_back,
    child sleep_lasts_as_long_as_asked,
    fault ud2_kills_the_process => Expected::invalid_opcode,
];

fn main() -> i32 {
    Suite::new(CASES).leak_check().main()
}

fn getpid_is_stable() -> Outcome {
    let pid = sys::getpid();
    check!(pid > 0, "getpid returned 0");
    check!(sys::getpid() == pid, "getpid changed from {pid} to {}", sys::getpid());
    Ok(())
}

fn uptime_never_goes_back() -> Outcome {
    let mut last = sys::uptime_ns();
    for _ in 0..1000 {
        let now = sys::uptime_ns();
        check!(now >= last, "uptime went back from {last} to {now} ns");
        last = now;
    }
    Ok(())
}

fn sleep_lasts_as_long_as_asked() -> Outcome {
    let start = sys::uptime_ns();
    sys::sleep_ms(20).context("sleep")?;
    let slept = sys::uptime_ns() - start;
    check!((20_000_000..100_000_000).contains(&slept), "a 20 ms sleep took {slept} ns");
    Ok(())
}

fn ud2_kills_the_process() -> Outcome {
    // SAFETY: `ud2` raises an invalid-opcode exception, which ends this child; that is the
    // case.
    unsafe { core::arch::asm!("ud2") };
    Ok(())
}
