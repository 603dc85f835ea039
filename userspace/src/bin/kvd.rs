//! `kvd`: a key-value server, the worked example of an Enigma server. Run it in the
//! background (`kvd &`) and talk to it with `kv`.
//!
//! A server is a loop: create an endpoint, register it with the name service, then answer
//! calls (`userlib::ipc::serve` does the receiving and replying). The protocol is in
//! `kv_protocol.rs`. Whatever a client sends, the server answers with an errno and carries on.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../kv_protocol.rs"]
mod protocol;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use abi::errno::{EINVAL, ENAMETOOLONG, ENOENT, ENOMEM};
use userlib::ipc::{Answer, Endpoint, Message, Request};
use userlib::names::label_of;
use userlib::sys::{Errno, Result};
use userlib::{eprintln, names};

use protocol::{DELETE, GET, LIST, NAME_MAX, SERVICE, SET, VALUE_MAX};

userlib::main!(main);

/// Most names kept.
const CAPACITY: usize = 256;

fn main() -> i32 {
    let endpoint = match Endpoint::create() {
        Ok(endpoint) => endpoint,
        Err(errno) => {
            eprintln!("kvd: cannot create an endpoint: {errno}");
            return 1;
        }
    };
    // Clients get a handle that may only call; this one, which receives, stays here.
    // The name lasts as long as the registration, which lives until the server ends.
    let _registration = match endpoint.mint(0, false).and_then(|client| names::register(SERVICE, &client)) {
        Ok(registration) => registration,
        Err(errno) => {
            eprintln!("kvd: cannot register {SERVICE:?}: {errno}");
            return 1;
        }
    };
    let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    userlib::ipc::serve(&endpoint, |request, bytes, answer| {
        Message::new(label_of(handle(&mut store, request, bytes, answer)), [0; 4])
    })
}

/// Serves one request.
fn handle(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, request: &Request, bytes: &[u8], answer: &mut Answer) -> Result<()> {
    if request.arrived.len > bytes.len() || request.arrived.handle_count > 0 {
        return Err(Errno(EINVAL));
    }
    match request.message.label {
        SET => {
            let name_len = usize::try_from(request.message.words[0]).map_err(|_| Errno(EINVAL))?;
            let (name, value) = bytes.split_at_checked(name_len).ok_or(Errno(EINVAL))?;
            check_name(name)?;
            if value.len() > VALUE_MAX {
                return Err(Errno(EINVAL));
            }
            if !store.contains_key(name) && store.len() >= CAPACITY {
                return Err(Errno(ENOMEM));
            }
            store.insert(name.to_vec(), value.to_vec());
            Ok(())
        }
        GET => {
            let value = store.get(check_name(bytes)?).ok_or(Errno(ENOENT))?;
            answer.write(value);
            Ok(())
        }
        DELETE => store.remove(check_name(bytes)?).map(|_| ()).ok_or(Errno(ENOENT)),
        LIST => {
            for name in store.keys() {
                answer.write(name);
                answer.write(b"\n");
            }
            Ok(())
        }
        _ => Err(Errno(EINVAL)),
    }
}

fn check_name(name: &[u8]) -> Result<&[u8]> {
    match name.len() {
        0 => Err(Errno(EINVAL)),
        1..=NAME_MAX => Ok(name),
        _ => Err(Errno(ENAMETOOLONG)),
    }
}
