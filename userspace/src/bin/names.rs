//! `names`: the name server. Keeps up to [`CAPACITY`] endpoints (and the kernel's log, which
//! `init` registers as `log` for `dmesg`) under names and hands out copies; the protocol and
//! who may do what are `userlib::names`'s. `init` starts it with the endpoint to serve as
//! handle 3.
//!
//! Each name accepted is owned by a registration handle minted here with a badge of its own
//! and a close notice: the name is dropped when that notice comes (its holder closed it or
//! exited). The reply carries a copy of the registration; the server's own copy is closed
//! at the next message, once the reply has gone out, so that a caller gone before the reply
//! leaves nothing behind (its close notice then drops the name).
//!
//! Whatever a client sends, the server answers and carries on: a wrong label, a missing or
//! extra handle, a handle that is no endpoint, a name too long or not UTF-8 each get their
//! errno, and every handle it does not keep is closed again.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{EEXIST, EINVAL, ENAMETOOLONG, ENOENT, ENOMEM, ENOSPC, EPERM};
use abi::handle::{Kind, rights};
use abi::ipc::COPY_HANDLE;
use userlib::ipc::{Endpoint, Message, OwnedHandle, Request};
use userlib::names::{
    CAPACITY, LOOKUP, NAME_MAX, NAMES_HANDLE, REGISTER, REGISTRATION_BADGE, SESSION_QUOTA, SYSTEM_NAMES,
    SYSTEM_SESSION, USER_SESSION, label_of,
};
use userlib::sys::{Errno, Result};

userlib::main!(main);

/// A registered name.
struct Entry {
    name: String,
    endpoint: OwnedHandle,
    /// The session that registered it.
    session: u64,
    /// The badge of its registration handle.
    registration: u64,
}

/// The server's state.
struct Names {
    /// A handle to the server's endpoint that may only mint.
    minter: Endpoint,
    entries: Vec<Entry>,
    /// The next registration's badge (without [`REGISTRATION_BADGE`]).
    next_registration: u64,
    /// The server's copy of the registration last handed out, closed at the next message.
    handed_out: Option<OwnedHandle>,
}

fn main() -> i32 {
    let endpoint = Endpoint::from_raw(NAMES_HANDLE);
    let minter = match userlib::ipc::duplicate(NAMES_HANDLE, rights::MINT) {
        Ok(minter) => Endpoint::from_raw(minter),
        Err(error) => {
            userlib::eprintln!("names: cannot copy its endpoint handle: {error}");
            return 1;
        }
    };
    let mut names = Names {
        minter,
        entries: Vec::with_capacity(CAPACITY),
        next_registration: 0,
        handed_out: None,
    };
    userlib::ipc::serve(&endpoint, |request, bytes, answer| {
        drop(names.handed_out.take());
        if let Some(badge) = request.closed_badge() {
            names.entries.retain(|entry| entry.registration != badge);
            return Message::default();
        }
        // Handles that arrived are ours to close unless kept.
        let mut arrived: Vec<OwnedHandle> =
            request.arrived.handles().iter().map(|&number| OwnedHandle::from_raw(u64::from(number))).collect();
        match names.handle(request, bytes, &mut arrived) {
            Ok(Some(sent)) => answer.send_handle(sent),
            Ok(None) => {}
            Err(errno) => return Message::new(label_of(Err(errno)), [0; 4]),
        }
        Message::new(0, [0; 4])
    })
}

impl Names {
    /// Serves one request; returns the handle (a number in this table) to copy into the
    /// reply.
    fn handle(&mut self, request: &Request, bytes: &[u8], arrived: &mut Vec<OwnedHandle>) -> Result<Option<u32>> {
        if request.arrived.len > NAME_MAX {
            return Err(Errno(ENAMETOOLONG));
        }
        let name = core::str::from_utf8(bytes).map_err(|_| Errno(EINVAL))?;
        match request.message.label {
            REGISTER => {
                let [endpoint] = arrived.as_slice() else { return Err(Errno(EINVAL)) };
                if !matches!(endpoint.info()?.0, Some(Kind::Endpoint | Kind::Log)) {
                    return Err(Errno(EINVAL));
                }
                let endpoint = arrived.pop().ok_or(Errno(EINVAL))?;
                if request.badge & REGISTRATION_BADGE != 0 {
                    self.replace(request.badge, name, endpoint).map(|()| None)
                } else {
                    self.register(request.badge, name, endpoint).map(Some)
                }
            }
            LOOKUP if arrived.is_empty() => {
                let entry = self.entries.iter().find(|entry| entry.name == name).ok_or(Errno(ENOENT))?;
                Ok(Some(entry.endpoint.raw() as u32 | COPY_HANDLE))
            }
            _ => Err(Errno(EINVAL)),
        }
    }

    /// Registers `name` for `session`: the registration handle to copy into the reply.
    fn register(&mut self, session: u64, name: &str, endpoint: OwnedHandle) -> Result<u32> {
        if session != SYSTEM_SESSION && (session != USER_SESSION || SYSTEM_NAMES.contains(&name)) {
            return Err(Errno(EPERM));
        }
        if name.is_empty() {
            return Err(Errno(EINVAL));
        }
        if self.entries.iter().any(|entry| entry.name == name) {
            return Err(Errno(EEXIST));
        }
        if session != SYSTEM_SESSION && self.entries.iter().filter(|entry| entry.session == session).count() >= SESSION_QUOTA {
            return Err(Errno(ENOSPC));
        }
        if self.entries.len() >= CAPACITY {
            return Err(Errno(ENOMEM));
        }
        let registration = REGISTRATION_BADGE | self.next_registration;
        let handle = self.minter.mint(registration, true)?;
        self.next_registration = (self.next_registration + 1) & !REGISTRATION_BADGE;
        self.entries.push(Entry { name: String::from(name), endpoint, session, registration });
        let number = handle.handle().raw() as u32;
        self.handed_out = Some(OwnedHandle::from_raw(handle.into_raw()));
        Ok(number | COPY_HANDLE)
    }

    /// Points the name the registration `badge` owns at `endpoint`.
    fn replace(&mut self, badge: u64, name: &str, endpoint: OwnedHandle) -> Result<()> {
        let entry = self.entries.iter_mut().find(|entry| entry.registration == badge).ok_or(Errno(ENOENT))?;
        if entry.name != name {
            return Err(Errno(EINVAL));
        }
        entry.endpoint = endpoint;
        Ok(())
    }
}
