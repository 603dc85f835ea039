//! The `log` facade's backend: `[   1.234] INFO  message` lines on the serial console and in
//! the log ring, with the level coloured. Only the kernel's own messages are shown, from its
//! two crates ([`KERNEL_CRATES`]): a library's (the tar reader notes every folder of the
//! ramdisk it skips) are not the kernel's to report.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

/// The crates whose messages are shown: the kernel proper and its privileged core.
const KERNEL_CRATES: [&str; 2] = [module_path!(), "enigma_core"];

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the logger. Messages at `Info` and above are shown.
pub(super) fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let source = metadata.target().split("::").next().unwrap_or("");
        metadata.level() <= log::max_level() && KERNEL_CRATES.iter().any(|name| name.split("::").next() == Some(source))
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let colour = match record.level() {
            Level::Error => "31",
            Level::Warn => "33",
            Level::Info => "32",
            Level::Debug => "36",
            Level::Trace => "90",
        };
        let uptime = crate::time::uptime_ns();
        crate::println!(
            "[{:>4}.{:03}] \x1b[{colour}m{:<5}\x1b[0m {}",
            uptime / 1_000_000_000,
            uptime / 1_000_000 % 1000,
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}
