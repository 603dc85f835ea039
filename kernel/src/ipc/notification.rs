//! Notifications: a word of bits that `signal` ORs in and `wait` takes.
//!
//! A notification never blocks its signaller and never queues more than its one word, so
//! it is how interrupts and servers tell others that something happened. `wait` blocks until
//! the word is non-zero and takes it whole. A notification can be *bound* to an endpoint:
//! then `recv` on that endpoint also returns when bits are set (label
//! [`LABEL_NOTIFICATION`], the bits as the badge), so a server waits for messages and
//! notifications in one place.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};

use abi::ipc::LABEL_NOTIFICATION;
use spin::Mutex;

use super::endpoint::Endpoint;
use super::state::{Phase, Received};
use crate::object::LiveObject;
use crate::task::thread::ThreadObject;

#[derive(Debug, Default)]
struct Word {
    bits: u64,
    /// Blocked in `wait`.
    waiters: VecDeque<Arc<ThreadObject>>,
    /// The endpoint whose receivers also take the bits.
    bound: Option<Weak<Endpoint>>,
}

/// A notification.
#[derive(Debug)]
pub struct Notification {
    word: Mutex<Word>,
    _live: LiveObject,
}

/// What a notification delivers: its bits as the badge.
pub fn message(bits: u64) -> Received {
    Received { badge: bits, label: LABEL_NOTIFICATION, ..Received::default() }
}

impl Notification {
    /// A notification with no bits set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { word: Mutex::new(Word::default()), _live: LiveObject::new() })
    }

    /// Takes the bits (0 if none are set).
    pub fn take_bits(&self) -> u64 {
        core::mem::take(&mut self.word.lock().bits)
    }

    /// Sets `bits`: wakes a waiter (which takes every bit set), or else a receiver on the
    /// bound endpoint, or else keeps them for the next `wait`.
    pub fn signal(&self, bits: u64) {
        let (waiter, bound) = {
            let mut word = self.word.lock();
            word.bits |= bits;
            if word.bits == 0 {
                return;
            }
            match word.waiters.pop_front() {
                Some(waiter) => (Some((waiter, core::mem::take(&mut word.bits))), None),
                None => (None, word.bound.as_ref().and_then(Weak::upgrade)),
            }
        };
        if let Some((waiter, bits)) = waiter {
            waiter.ipc.lock().phase = Phase::Idle;
            super::finish(&waiter, Ok(message(bits)));
        } else if let Some(endpoint) = bound {
            deliver_to_bound_receiver(self, &endpoint);
        }
    }

    /// Queues a blocked waiter; `ENOMEM` if the queue cannot grow.
    pub(super) fn queue_waiter(&self, waiter: Arc<ThreadObject>) -> Result<(), i64> {
        let mut word = self.word.lock();
        super::endpoint::room_for_one(&mut word.waiters)?;
        word.waiters.push_back(waiter);
        Ok(())
    }

    /// Removes `thread` from the waiters (its wait ended without bits: killed or timed out).
    pub(super) fn forget(&self, thread: &ThreadObject) {
        self.word.lock().waiters.retain(|queued| queued.tid != thread.tid);
    }

    /// Binds this notification to `endpoint`, and delivers bits already set if a receiver
    /// is waiting there.
    pub(super) fn bind_to(self: &Arc<Self>, endpoint: &Arc<Endpoint>) {
        self.word.lock().bound = Some(Arc::downgrade(endpoint));
        endpoint.bind(self.clone());
        deliver_to_bound_receiver(self, endpoint);
    }
}

/// Hands the bits to a receiver waiting on the bound endpoint, if there are both.
fn deliver_to_bound_receiver(notification: &Notification, endpoint: &Endpoint) {
    let Some(receiver) = endpoint.pop_receiver() else { return };
    let bits = notification.take_bits();
    if bits == 0 {
        endpoint.requeue_receiver(receiver);
        return;
    }
    receiver.ipc.lock().phase = Phase::Idle;
    super::finish(&receiver, Ok(message(bits)));
}
