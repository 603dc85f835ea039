//! The name service: servers register an endpoint under a name, clients look names up.
//!
//! `init` starts the name server (`names`) and hands every program it starts a handle to it
//! as handle [`NAMES_HANDLE`]; `userlib::process::spawn` passes it on, like the standard
//! streams. The protocol is a call per request:
//!
//! | label       | bytes      | handles          | reply label          | reply handles |
//! |-------------|------------|------------------|----------------------|---------------|
//! | [`REGISTER`]| the name   | the endpoint     | 0 or `-errno`        |               |
//! | [`LOOKUP`]  | the name   |                  | 0 or `-ENOENT`       | an endpoint   |
//!
//! Registering a name that is taken replaces it (a restarted server takes its name back).
//! Names are at most [`NAME_MAX`] bytes of UTF-8.

use abi::errno::{EINVAL, ENAMETOOLONG};
use abi::ipc::COPY_HANDLE;

use crate::ipc::{Endpoint, Message, OwnedHandle, Transfer};
use crate::sys::{Errno, Result};

/// The handle number the name service has in every program `init` (or a program started
/// through `userlib`) starts.
pub const NAMES_HANDLE: u64 = 3;
/// `REGISTER(name; endpoint) -> status`.
pub const REGISTER: u64 = 1;
/// `LOOKUP(name) -> status; endpoint`.
pub const LOOKUP: u64 = 2;
/// Longest name, in bytes.
pub const NAME_MAX: usize = 32;

/// A reply label as a result: 0 is success, `-errno` is that error.
pub fn status(label: u64) -> Result<()> {
    match label as i64 {
        0 => Ok(()),
        negative if negative < 0 => Err(Errno(-negative)),
        _ => Err(Errno(EINVAL)),
    }
}

/// The reply label for a result.
pub fn label_of(result: Result<()>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(errno) => (-errno.0) as u64,
    }
}

fn service() -> Endpoint {
    Endpoint::from_raw(NAMES_HANDLE)
}

fn check(name: &str) -> Result<()> {
    if name.len() > NAME_MAX { Err(Errno(ENAMETOOLONG)) } else { Ok(()) }
}

/// Registers `endpoint` (a handle that may be copied and passed on) under `name`.
pub fn register(name: &str, endpoint: &Endpoint) -> Result<()> {
    let names = service();
    let result = register_with(&names, name, endpoint);
    // The handle number belongs to the program, not to this function.
    names.into_raw();
    result
}

/// [`register`] through the name service handle `names` (for `init`, which holds it
/// elsewhere than [`NAMES_HANDLE`]).
pub fn register_with(names: &Endpoint, name: &str, endpoint: &Endpoint) -> Result<()> {
    register_handle_with(names, name, endpoint.handle())
}

/// [`register_with`] for a handle of any kind the name service keeps (an endpoint, or the
/// kernel's log).
pub fn register_handle_with(names: &Endpoint, name: &str, handle: &OwnedHandle) -> Result<()> {
    check(name)?;
    let handles = [handle.raw() as u32 | COPY_HANDLE];
    let mut transfer = Transfer { send: name.as_bytes(), send_handles: &handles, receive: None };
    let result = names.call_with(&Message::new(REGISTER, [0; 4]), &mut transfer, abi::ipc::FOREVER);
    status(result?.0.label)
}

/// The endpoint registered under `name`.
pub fn lookup(name: &str) -> Result<Endpoint> {
    lookup_handle(name).map(|handle| Endpoint::from_raw(handle.into_raw()))
}

/// The handle registered under `name`, of whatever kind.
pub fn lookup_handle(name: &str) -> Result<OwnedHandle> {
    check(name)?;
    let names = service();
    let mut transfer = Transfer { send: name.as_bytes(), ..Transfer::default() };
    let result = names.call_with(&Message::new(LOOKUP, [0; 4]), &mut transfer, abi::ipc::FOREVER);
    names.into_raw();
    let (reply, arrived) = result?;
    status(reply.label)?;
    match arrived.handles() {
        [handle] => Ok(OwnedHandle::from_raw(u64::from(*handle))),
        _ => Err(Errno(EINVAL)),
    }
}
