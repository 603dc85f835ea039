//! The protocol between `svc` and `init`'s supervisor endpoint, which `init` registers with
//! the name service as [`SERVICE`]. Replies carry 0 or `-errno` as their label.

/// The name `init`'s supervisor endpoint is registered under.
pub const SERVICE: &str = "init";

/// Lists the supervised services: the reply's bytes are lines `NAME PID` (PID 0 while a
/// service is not running).
pub const LIST: u64 = 1;

/// Restarts the service whose name is the message's bytes: `init` kills it, and starts it
/// again when it has ended, as it would after any other end. `ENOENT` for no such service.
pub const RESTART: u64 = 2;
