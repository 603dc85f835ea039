//! `kv set NAME VALUE`, `kv get NAME`, `kv del NAME`, `kv list`: the client of `kvd`.
//!
//! It finds the server through the name service, then makes one call per command (the
//! protocol is in `kv_protocol.rs`).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../kv_protocol.rs"]
mod protocol;

use alloc::vec;
use alloc::vec::Vec;

use userlib::ipc::{Endpoint, Message, Transfer};
use abi::errno::{ENOENT, EPIPE};
use userlib::sys::{Errno, Result};
use userlib::{args, eprintln, names, print};

use protocol::{DELETE, GET, LIST, NAME_MAX, SERVICE, SET, VALUE_MAX};

userlib::main!(main);

const USAGE: &str = "usage: kv set NAME VALUE | kv get NAME | kv del NAME | kv list";

fn main() -> i32 {
    let server = match names::lookup(SERVICE) {
        Ok(server) => server,
        Err(errno) => {
            eprintln!("kv: no {SERVICE:?} service ({errno}); start it with `kvd &`");
            return 1;
        }
    };
    if let [_, _, name, rest @ ..] = args()
        && (name.len() > NAME_MAX || rest.iter().any(|value| value.len() > VALUE_MAX))
    {
        eprintln!("kv: names are at most {NAME_MAX} bytes, values {VALUE_MAX}");
        return 2;
    }
    let outcome = match args() {
        [_, "set", name, value] => {
            let mut bytes = Vec::from(name.as_bytes());
            bytes.extend_from_slice(value.as_bytes());
            request(&server, SET, name.len() as u64, &bytes).map(drop)
        }
        [_, "get", name] => request(&server, GET, 0, name.as_bytes()).map(|value| {
            print!("{}\n", alloc::string::String::from_utf8_lossy(&value));
        }),
        [_, "del", name] => request(&server, DELETE, 0, name.as_bytes()).map(drop),
        [_, "list"] => request(&server, LIST, 0, &[]).map(|names| print!("{}", alloc::string::String::from_utf8_lossy(&names))),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match (outcome, args()) {
        (Ok(()), _) => 0,
        (Err(Errno(ENOENT)), [_, _, name]) => {
            eprintln!("kv: {name}: not set");
            1
        }
        (Err(Errno(EPIPE)), _) => {
            eprintln!("kv: the server has gone; start it again with `kvd &`");
            1
        }
        (Err(errno), _) => {
            eprintln!("kv: {errno}");
            1
        }
    }
}

/// One call: `label` with `word` and `bytes`; the reply's bytes.
fn request(server: &Endpoint, label: u64, word: u64, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut room = vec![0u8; abi::ipc::BUFFER_MAX as usize];
    let mut transfer = Transfer { send: bytes, receive: Some(&mut room), ..Transfer::default() };
    let (reply, arrived) = server.call_with(&Message::new(label, [word, 0, 0, 0]), &mut transfer, abi::ipc::FOREVER)?;
    names::status(reply.label)?;
    room.truncate(arrived.len.min(room.len()));
    Ok(room)
}
