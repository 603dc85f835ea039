//! `upper TEXT`: asks `upperd` to shout TEXT.
#![no_std]
#![no_main]

use userlib::ipc::{Message, Transfer};
use userlib::{args, eprintln, names, println};

userlib::main!(main);

fn main() -> i32 {
    let Ok(server) = names::lookup("upper") else {
        eprintln!("upper: no server; start it with `upperd &`");
        return 1;
    };
    let text = args().get(1).copied().unwrap_or("");
    let mut room = [0u8; 256];
    let mut transfer = Transfer { send: text.as_bytes(), receive: Some(&mut room), ..Transfer::default() };
    match server.call_with(&Message::new(0, [0; 4]), &mut transfer, abi::ipc::FOREVER) {
        Ok((_, arrived)) => {
            println!("{}", core::str::from_utf8(&room[..arrived.len.min(room.len())]).unwrap_or("?"));
            0
        }
        Err(errno) => {
            eprintln!("upper: {errno}");
            1
        }
    }
}
