//! Reply capabilities: the right to answer one call, made by `recv` and used up by `reply`.
//!
//! A reply names the caller and the number of its call. If the reply is dropped unused (the
//! server closed it, or died), the caller's call fails with `EPIPE` at once; if the caller is
//! no longer waiting for that call (killed, timed out), `reply` fails with `EPIPE` and the
//! server carries on.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::errno::EPIPE;

use super::state::{Destination, Phase};
use crate::object::LiveObject;
use crate::task::thread::ThreadObject;

/// Numbers calls, so a reply can only answer the call it was made for.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// A fresh call number.
pub fn next_call() -> u64 {
    NEXT_CALL.fetch_add(1, Ordering::Relaxed)
}

/// The right to answer one call.
#[derive(Debug)]
pub struct Reply {
    caller: Arc<ThreadObject>,
    call: u64,
    used: AtomicBool,
    _live: LiveObject,
}

impl Reply {
    /// A reply to `caller`'s call number `call`.
    pub fn new(caller: Arc<ThreadObject>, call: u64) -> Self {
        Self { caller, call, used: AtomicBool::new(false), _live: LiveObject::new() }
    }

    /// Uses the reply up: returns the caller and where its reply goes, if the caller still
    /// waits for this call (and stops waiting for anything else from it); `EPIPE` if not,
    /// or if the reply was used already.
    pub fn take(&self) -> Result<(Arc<ThreadObject>, Destination), i64> {
        if self.used.swap(true, Ordering::AcqRel) {
            return Err(EPIPE);
        }
        let mut ipc = self.caller.ipc.lock();
        match ipc.phase {
            Phase::AwaitingReply { call, reply_into } if call == self.call => {
                ipc.phase = Phase::Idle;
                Ok((self.caller.clone(), reply_into))
            }
            _ => Err(EPIPE),
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Ok((caller, _)) = self.take() {
            super::finish(&caller, Err(EPIPE));
        }
    }
}
