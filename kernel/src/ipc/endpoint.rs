//! Endpoints: where calls meet receivers.
//!
//! An endpoint keeps two queues of blocked processes, callers whose message no receiver has
//! taken yet and receivers waiting for a message (at most one of them is non-empty), plus
//! the badges of closed minted handles waiting to be reported, and an optional bound
//! notification. Messages themselves wait in their senders.
//!
//! The endpoint counts the handles that may receive on it. When the last one goes (the
//! server closed it or died), every queued caller fails with `EPIPE` at once, and so does
//! every later call. An [`EndpointRef`] is what a handle holds: the endpoint and the badge
//! calls through it carry; one minted with close notification tells the endpoint's receiver
//! when its last handle is closed.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

use abi::errno::{ENOMEM, EPIPE};
use abi::ipc::LABEL_CLOSED;
use spin::Mutex;

use super::notification::Notification;
use super::state::{Phase, Received};
use crate::object::LiveObject;
use crate::task::thread::ThreadObject;

/// Room every queue of an endpoint has from its start. A queue that grows past it for a
/// burst (many callers at once, many close notices) gives the extra back when it empties, so
/// the kernel heap's use comes back exactly once the burst is over (decision 23), while the
/// usual case, a queue of a few, never allocates after the endpoint is made.
const QUEUE_ROOM: usize = 4;

/// A queue with [`QUEUE_ROOM`] room (when the heap has it; `endpoint_create` checked).
fn queue_with_room<T>() -> VecDeque<T> {
    let mut queue = VecDeque::new();
    let _ = queue.try_reserve_exact(QUEUE_ROOM);
    queue
}

/// Gives back what `queue` grew past [`QUEUE_ROOM`], once it is empty again.
fn settle<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > QUEUE_ROOM {
        let fresh = queue_with_room();
        if fresh.capacity() >= QUEUE_ROOM {
            *queue = fresh;
        }
    }
}

/// The queues of an endpoint.
#[derive(Debug)]
struct Queues {
    /// Blocked in `call`, message not taken yet.
    callers: VecDeque<Arc<ThreadObject>>,
    /// Blocked in `recv`.
    receivers: VecDeque<Arc<ThreadObject>>,
    /// Badges whose last handle was closed, not reported yet.
    closed: VecDeque<u64>,
    /// The notification whose bits `recv` also takes.
    bound: Option<Arc<Notification>>,
}

/// An IPC endpoint.
#[derive(Debug)]
pub struct Endpoint {
    queues: Mutex<Queues>,
    /// Handles with the RECEIVE right.
    receivers_alive: AtomicUsize,
    _live: LiveObject,
}

impl Endpoint {
    /// A new endpoint with no handles yet.
    pub fn new() -> Arc<Self> {
        let queues = Queues { callers: queue_with_room(), receivers: queue_with_room(), closed: queue_with_room(), bound: None };
        Arc::new(Self { queues: Mutex::new(queues), receivers_alive: AtomicUsize::new(0), _live: LiveObject::new() })
    }

    /// Counts one more handle that may receive, for as long as the token lives.
    pub fn receiver_token(self: &Arc<Self>) -> ReceiverToken {
        self.receivers_alive.fetch_add(1, Ordering::AcqRel);
        ReceiverToken(self.clone())
    }

    /// Whether some handle may still receive.
    pub fn has_receivers(&self) -> bool {
        self.receivers_alive.load(Ordering::Acquire) > 0
    }

    /// Takes the first waiting receiver.
    pub(super) fn pop_receiver(&self) -> Option<Arc<ThreadObject>> {
        let mut queues = self.queues.lock();
        let receiver = queues.receivers.pop_front();
        settle(&mut queues.receivers);
        receiver
    }

    /// Takes the first waiting caller.
    pub(super) fn pop_caller(&self) -> Option<Arc<ThreadObject>> {
        let mut queues = self.queues.lock();
        let caller = queues.callers.pop_front();
        settle(&mut queues.callers);
        caller
    }

    /// Puts a caller whose message could not be delivered back at the front.
    pub(super) fn requeue_caller(&self, caller: Arc<ThreadObject>) {
        self.queues.lock().callers.push_front(caller);
    }

    /// Queues a blocked caller: `EPIPE` (and nothing queued) if no receiver is left,
    /// `ENOMEM` if the queue cannot grow.
    pub(super) fn queue_caller(&self, caller: Arc<ThreadObject>) -> Result<(), i64> {
        let mut queues = self.queues.lock();
        if !self.has_receivers() {
            return Err(EPIPE);
        }
        room_for_one(&mut queues.callers)?;
        queues.callers.push_back(caller);
        Ok(())
    }

    /// Queues a blocked receiver; `ENOMEM` if the queue cannot grow.
    pub(super) fn queue_receiver(&self, receiver: Arc<ThreadObject>) -> Result<(), i64> {
        let mut queues = self.queues.lock();
        room_for_one(&mut queues.receivers)?;
        queues.receivers.push_back(receiver);
        Ok(())
    }

    /// Puts a receiver that was taken off the queue but given nothing back at the front.
    pub(super) fn requeue_receiver(&self, receiver: Arc<ThreadObject>) {
        self.queues.lock().receivers.push_front(receiver);
    }

    /// Removes `thread` from both queues (a blocked call or receive that ended without a
    /// partner: killed or timed out).
    pub(super) fn forget(&self, thread: &ThreadObject) {
        let mut queues = self.queues.lock();
        queues.callers.retain(|queued| queued.tid != thread.tid);
        queues.receivers.retain(|queued| queued.tid != thread.tid);
        settle(&mut queues.callers);
        settle(&mut queues.receivers);
    }

    /// The next closed badge to report, if any.
    pub(super) fn pop_closed(&self) -> Option<u64> {
        let mut queues = self.queues.lock();
        let badge = queues.closed.pop_front();
        settle(&mut queues.closed);
        badge
    }

    /// The bound notification.
    pub(super) fn bound(&self) -> Option<Arc<Notification>> {
        self.queues.lock().bound.clone()
    }

    /// Binds `notification`: `recv` on this endpoint also returns its bits.
    pub(super) fn bind(&self, notification: Arc<Notification>) {
        self.queues.lock().bound = Some(notification);
    }

    /// Reports that the last handle with `badge` was closed: to a waiting receiver at once,
    /// or to the next `recv`.
    fn post_closed(&self, badge: u64) {
        let receiver = {
            let mut queues = self.queues.lock();
            let receiver = queues.receivers.pop_front();
            if receiver.is_none() {
                queues.closed.push_back(badge);
            }
            receiver
        };
        if let Some(receiver) = receiver {
            receiver.ipc.lock().phase = Phase::Idle;
            super::finish(&receiver, Ok(Received { badge, label: LABEL_CLOSED, ..Received::default() }));
        }
    }

    /// The last receiving handle is gone: every queued caller fails, now and later.
    fn receivers_gone(&self) {
        let callers: VecDeque<Arc<ThreadObject>> = core::mem::take(&mut self.queues.lock().callers);
        for caller in callers {
            super::fail_call(&caller, EPIPE);
        }
    }
}

/// Makes room for one more entry in `queue`. Growing it draws on the kernel heap, so like
/// every allocation a process can cause it needs the heap's reserve intact (`ENOMEM`
/// otherwise); a queue with room left costs nothing. Queues never hold more than
/// `MAX_THREADS` entries, so this bounds them too.
pub(super) fn room_for_one<T>(queue: &mut VecDeque<T>) -> Result<(), i64> {
    if queue.len() < queue.capacity() {
        return Ok(());
    }
    if !crate::mm::heap_has_room() {
        return Err(ENOMEM);
    }
    queue.try_reserve(1).map_err(|_| ENOMEM)
}

/// Keeps an endpoint counted as having a receiver (held by handles with RECEIVE).
#[derive(Debug)]
pub struct ReceiverToken(Arc<Endpoint>);

impl Drop for ReceiverToken {
    fn drop(&mut self) {
        if self.0.receivers_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.receivers_gone();
        }
    }
}

/// What an endpoint handle holds: the endpoint and the badge its calls carry.
#[derive(Debug)]
pub struct EndpointRef {
    endpoint: Arc<Endpoint>,
    badge: u64,
    notify_close: bool,
    _live: LiveObject,
}

impl EndpointRef {
    /// A reference with `badge` (0 for the endpoint's own, unbadged handle); with
    /// `notify_close`, the endpoint's receiver hears when the last handle holding it is closed.
    pub fn new(endpoint: Arc<Endpoint>, badge: u64, notify_close: bool) -> Self {
        Self { endpoint, badge, notify_close, _live: LiveObject::new() }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The badge.
    pub fn badge(&self) -> u64 {
        self.badge
    }
}

impl Drop for EndpointRef {
    fn drop(&mut self) {
        if self.notify_close {
            self.endpoint.post_closed(self.badge);
        }
    }
}
