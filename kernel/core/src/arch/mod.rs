//! The architecture boundary, and the one way in to it. Everything that knows about x86
//! (segment and interrupt tables, entry stubs, MSRs, control registers, port I/O to the PC's
//! legacy devices) lives under `arch/x86_64/`, a private module whose parts are re-exported
//! here: the rest of the core and the kernel crate name `arch::cpu`, `arch::trap`, ... and
//! never the architecture, and they name no register. `arch` imports nothing above it: what
//! it needs from the layers above (syscall and fault handlers, the timer's work) it reaches
//! through the functions they install in [`hooks`].
mod x86_64;

pub use self::x86_64::*;
