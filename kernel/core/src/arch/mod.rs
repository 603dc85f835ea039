//! The architecture boundary. Everything that knows about x86 (segment and interrupt tables,
//! entry stubs, MSRs, control registers, port I/O to the PC's legacy devices) lives under
//! `arch/x86_64/`. The rest of the kernel calls it through a few functions and types, and
//! names no register.
pub mod x86_64;
