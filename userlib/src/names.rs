//! The name service: servers register an endpoint under a name, clients look names up.
//!
//! `init` starts the name server (`names`) and hands every program it starts a handle to it
//! as handle [`NAMES_HANDLE`]; `userlib::process::spawn` passes it on, like the standard
//! streams. The protocol is a call per request:
//!
//! | label       | sent on             | bytes    | handles      | reply label | reply handles  |
//! |-------------|---------------------|----------|--------------|-------------|----------------|
//! | [`REGISTER`]| a session handle    | the name | the endpoint | 0 or `-errno` | the registration |
//! | [`REGISTER`]| a registration      | its name | the endpoint | 0 or `-errno` |              |
//! | [`LOOKUP`]  | any handle          | the name |              | 0 or `-ENOENT` | an endpoint   |
//!
//! **Who may do what.** The badge of the handle a request comes through says who asks; the
//! name server believes nothing else. `init` mints the badges when it starts the server:
//! [`SYSTEM_SESSION`] for itself and [`USER_SESSION`] for the program it runs (the shell,
//! or the `--init` program), which every program started from it inherits. Badge 0, and
//! any badge the server did not hand out, may only look up.
//!
//! - A name belongs to its [`Registration`]: a handle the server mints for each name it
//!   accepts (badged, with a close notice). Only through it can the name be pointed at
//!   another endpoint (`REGISTER` on it); when its last copy is closed (its holder exits,
//!   say) the name is gone.
//! - A name that is taken cannot be registered again through a session (`EEXIST`); the
//!   [`SYSTEM_NAMES`] only through [`SYSTEM_SESSION`] (`EPERM`), even while they are free
//!   (when a system server restarts), so no program can shadow them.
//! - A session other than the system's holds at most [`SESSION_QUOTA`] names at once
//!   (`ENOSPC`); the server holds [`CAPACITY`] in all (`ENOMEM`).
//!
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
/// The badge of `init`'s own handle to the name service.
pub const SYSTEM_SESSION: u64 = 1;
/// The badge of the handle `init` gives the shell or the `--init` program.
pub const USER_SESSION: u64 = 2;
/// Registration handles have badges with this bit set.
pub const REGISTRATION_BADGE: u64 = 1 << 63;
/// Names only [`SYSTEM_SESSION`] may register.
pub const SYSTEM_NAMES: [&str; 5] = ["init", "console", "names", "fs", "log"];
/// Most names a session other than the system's holds at once.
pub const SESSION_QUOTA: usize = 16;
/// Most names the server holds.
pub const CAPACITY: usize = 64;

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

/// A registered name: it lasts while this handle (or a copy of it) is open, and only it
/// may point the name at another endpoint.
#[derive(Debug)]
pub struct Registration(Endpoint);

impl Registration {
    /// Points the name `name` (the one registered) at `handle` instead.
    pub fn replace(&self, name: &str, handle: &OwnedHandle) -> Result<()> {
        call_register(&self.0, name, handle).map(|_| ())
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedHandle {
        self.0.handle()
    }

    /// Takes over handle `number`, a registration the name server handed out.
    pub fn from_raw(number: u64) -> Self {
        Self(Endpoint::from_raw(number))
    }
}

/// Registers `endpoint` (a handle that may be copied and passed on) under `name`; the name
/// lasts as long as the returned registration.
pub fn register(name: &str, endpoint: &Endpoint) -> Result<Registration> {
    let names = service();
    let result = register_with(&names, name, endpoint);
    // The handle number belongs to the program, not to this function.
    names.into_raw();
    result
}

/// [`register`] through the name service handle `names` (for `init`, which holds it
/// elsewhere than [`NAMES_HANDLE`]).
pub fn register_with(names: &Endpoint, name: &str, endpoint: &Endpoint) -> Result<Registration> {
    register_handle_with(names, name, endpoint.handle())
}

/// [`register_with`] for a handle of any kind the name service keeps (an endpoint, or the
/// kernel's log).
pub fn register_handle_with(names: &Endpoint, name: &str, handle: &OwnedHandle) -> Result<Registration> {
    let arrived = call_register(names, name, handle)?;
    match arrived.handles() {
        [registration] => Ok(Registration(Endpoint::from_raw(u64::from(*registration)))),
        extra => {
            for &number in extra {
                let _ = crate::ipc::close(u64::from(number));
            }
            Err(Errno(EINVAL))
        }
    }
}

/// A `REGISTER` call through `names`: the reply's handles.
fn call_register(names: &Endpoint, name: &str, handle: &OwnedHandle) -> Result<crate::ipc::Arrived> {
    check(name)?;
    let handles = [handle.raw() as u32 | COPY_HANDLE];
    let mut transfer = Transfer { send: name.as_bytes(), send_handles: &handles, receive: None };
    let (reply, arrived) = names.call_with(&Message::new(REGISTER, [0; 4]), &mut transfer, abi::ipc::FOREVER)?;
    status(reply.label)?;
    Ok(arrived)
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
