//! `names`: the name server. Keeps up to [`CAPACITY`] endpoints (and the kernel's log, which
//! `init` registers as `log` for `dmesg`) under names and hands out
//! copies (see `userlib::names` for the protocol). `init` starts it with the endpoint to
//! serve as handle 3.
//!
//! Whatever a client sends, the server answers and carries on: a wrong label, a missing or
//! extra handle, a handle that is no endpoint, a name too long or not UTF-8 each get their
//! errno, and every handle it does not keep is closed again.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use abi::errno::{EINVAL, ENAMETOOLONG, ENOENT, ENOMEM};
use abi::handle::Kind;
use abi::ipc::COPY_HANDLE;
use userlib::ipc::{Endpoint, Message, OwnedHandle, Request};
use userlib::names::{LOOKUP, NAME_MAX, NAMES_HANDLE, REGISTER, label_of};
use userlib::sys::{Errno, Result};

userlib::main!(main);

/// Most names kept.
const CAPACITY: usize = 64;

fn main() -> i32 {
    let endpoint = Endpoint::from_raw(NAMES_HANDLE);
    let mut names: Vec<(String, OwnedHandle)> = Vec::with_capacity(CAPACITY);
    userlib::ipc::serve(&endpoint, |request, bytes, answer| {
        // Handles that arrived are ours to close unless kept.
        let mut arrived: Vec<OwnedHandle> =
            request.arrived.handles().iter().map(|&number| OwnedHandle::from_raw(u64::from(number))).collect();
        match handle(&mut names, request, bytes, &mut arrived) {
            Ok(Some(kept)) => answer.send_handle(kept),
            Ok(None) => {}
            Err(errno) => return Message::new(label_of(Err(errno)), [0; 4]),
        }
        Message::new(0, [0; 4])
    })
}

/// Serves one request; returns the handle (a number in this table) to copy into the reply.
fn handle(
    names: &mut Vec<(String, OwnedHandle)>,
    request: &Request,
    bytes: &[u8],
    arrived: &mut Vec<OwnedHandle>,
) -> Result<Option<u32>> {
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
            match names.iter().position(|(known, _)| known == name) {
                Some(index) => names[index].1 = endpoint,
                None if names.len() < CAPACITY => names.push((String::from(name), endpoint)),
                None => return Err(Errno(ENOMEM)),
            }
            Ok(None)
        }
        LOOKUP if arrived.is_empty() => {
            let (_, endpoint) = names.iter().find(|(known, _)| known == name).ok_or(Errno(ENOENT))?;
            Ok(Some(endpoint.raw() as u32 | COPY_HANDLE))
        }
        _ => Err(Errno(EINVAL)),
    }
}
