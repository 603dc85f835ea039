//! `svc list` shows the services `init` supervises and their pids; `svc restart NAME` asks
//! init to restart one (it kills it, and starts it again as after any end). Restarting
//! `console` also restarts the shell, whose standard streams were the old console's.
//!
//! It calls the operator's handle the shell passes it as handle 5 if it has one; otherwise
//! the supervisor it finds through the name service, which may only list (`restart` then
//! fails with `EPERM`).
#![no_std]
#![no_main]

extern crate alloc;

use userlib::ipc::{Endpoint, Message, Transfer};
use userlib::{args, eprintln, names, print};

use userlib::supervisor;

userlib::main!(main);

fn main() -> i32 {
    let (label, name) = match args() {
        [_, "list"] => (supervisor::LIST, ""),
        [_, "restart", name] => (supervisor::RESTART, *name),
        _ => {
            eprintln!("usage: svc list | svc restart NAME");
            return 2;
        }
    };
    let operator = matches!(userlib::ipc::handle_info(supervisor::SVC_HANDLE), Ok((Some(abi::handle::Kind::Endpoint), _)));
    let found = if operator { Ok(Endpoint::from_raw(supervisor::SVC_HANDLE)) } else { names::lookup(supervisor::SERVICE) };
    let init = match found {
        Ok(init) => init,
        Err(error) => {
            eprintln!("svc: cannot reach init: {error}");
            return 1;
        }
    };
    let mut room = [0u8; 512];
    let mut transfer = Transfer { send: name.as_bytes(), receive: Some(&mut room), ..Transfer::default() };
    let answer = init.call_with(&Message::new(label, [0; 4]), &mut transfer, abi::ipc::FOREVER);
    match answer.map(|(reply, arrived)| (abi::stream::reply_result(reply.label, i64::MAX as u64), arrived.len)) {
        Ok((Ok(_), len)) => {
            print!("{}", core::str::from_utf8(&room[..len.min(room.len())]).unwrap_or("?"));
            0
        }
        Ok((Err(errno), _)) => {
            eprintln!("svc: {}", abi::errno::name(errno));
            1
        }
        Err(error) => {
            eprintln!("svc: {error}");
            1
        }
    }
}
