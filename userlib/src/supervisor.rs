//! The protocol between `svc` (or any program) and `init`'s supervisor endpoint. Replies carry 0 or `-errno`
//! as their label.
//!
//! Who may do what is decided by the badge of the caller's handle. The handle `init`
//! registers with the name service as [`SERVICE`] has badge 0 and may only [`LIST`]. The
//! operator's handle, badge [`OPERATOR_BADGE`], may also [`RESTART`]: `init` gives it only to
//! the shell (as [`SHELL_HANDLE`]) and to the `--init` program (as [`PROGRAM_HANDLE`]), and
//! the shell passes it on only to `svc` (as [`SVC_HANDLE`]).

/// The name `init`'s supervisor endpoint is registered under.
pub const SERVICE: &str = "init";

/// Lists the supervised services: the reply's bytes are lines `NAME PID` (PID 0 while a
/// service is not running).
pub const LIST: u64 = 1;

/// Restarts the service whose name is the message's bytes: `init` kills it, and starts it
/// again when it has ended, as it would after any other end. `ENOENT` for no such service,
/// `EPERM` through a handle without the operator's badge.
pub const RESTART: u64 = 2;

/// The badge of the operator's handle, the one that may restart.
pub const OPERATOR_BADGE: u64 = 1;

/// The shell's handle number for the operator's handle.
pub const SHELL_HANDLE: u64 = 6;

/// The `--init` program's handle number for the operator's handle.
pub const PROGRAM_HANDLE: u64 = 11;

/// `svc`'s handle number for the operator's handle, when the shell started it.
pub const SVC_HANDLE: u64 = 5;
