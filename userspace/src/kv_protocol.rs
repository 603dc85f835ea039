//! The key-value service's protocol, shared by the server (`kvd`) and its client (`kv`).
//!
//! Every request is one call on the endpoint registered as [`SERVICE`]; the name (and for
//! `SET`, the value) travel in the message's bytes; the reply's label is 0 or `-errno`.
//!
//! | label    | words         | bytes          | reply bytes                 |
//! |----------|---------------|----------------|-----------------------------|
//! | `SET`    | name length   | name, value    |                             |
//! | `GET`    |               | name           | the value                   |
//! | `DELETE` |               | name           |                             |
//! | `LIST`   |               |                | the names, one per line     |

/// The name `kvd` registers with the name service.
pub const SERVICE: &str = "kv";
/// Stores a value under a name.
pub const SET: u64 = 1;
/// Fetches a value.
pub const GET: u64 = 2;
/// Forgets a name.
pub const DELETE: u64 = 3;
/// Lists the names.
pub const LIST: u64 = 4;
/// Longest name, in bytes.
pub const NAME_MAX: usize = 64;
/// Longest value, in bytes.
pub const VALUE_MAX: usize = 1024;
