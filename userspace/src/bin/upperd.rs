//! `upperd [THREADS]`: answers every call with its bytes in upper case, from THREADS threads
//! (4 by default) receiving on one endpoint, so several clients are served at once.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;

use userlib::ipc::{Endpoint, Message};
use userlib::{args, eprintln, names, thread};

userlib::main!(main);

fn main() -> i32 {
    let threads = args().get(1).and_then(|count| count.parse::<usize>().ok()).unwrap_or(4).clamp(1, 16);
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
    // Every thread receives on the same endpoint: a call goes to whichever waits first.
    let endpoint = Arc::new(endpoint);
    for _ in 1..threads {
        let endpoint = endpoint.clone();
        if let Err(errno) = thread::spawn(move || serve(&endpoint)) {
            eprintln!("upperd: a serving thread: {errno}");
        }
    }
    serve(&endpoint)
}

/// Answers calls on `endpoint` for ever.
fn serve(endpoint: &Endpoint) -> ! {
    userlib::ipc::serve(endpoint, |_request, bytes, answer| {
        for byte in bytes {
            answer.write(&[byte.to_ascii_uppercase()]);
        }
        Message::new(0, [0; 4])
    })
}
