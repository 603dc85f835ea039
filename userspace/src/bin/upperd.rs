//! `upperd`: answers every call with its bytes in upper case.
#![no_std]
#![no_main]

use userlib::ipc::{Endpoint, Message};
use userlib::{eprintln, names};

userlib::main!(main);

fn main() -> i32 {
    let Ok(endpoint) = Endpoint::create() else { return 1 };
    // Clients get a handle that may only call; this one, which receives, stays here.
    // The name lasts as long as the registration, which lives until the server ends.
    let _registration = match endpoint.mint(0, false).and_then(|client| names::register("upper", &client)) {
        Ok(registration) => registration,
        Err(errno) => {
            eprintln!("upperd: {errno}");
            return 1;
        }
    };
    userlib::ipc::serve(&endpoint, |_request, bytes, answer| {
        for byte in bytes {
            answer.write(&[byte.to_ascii_uppercase()]);
        }
        Message::new(0, [0; 4])
    })
}
