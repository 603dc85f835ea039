//! Synchronous IPC between threads (of one process or of several): endpoints (`call`, `recv`, `reply`, `reply_recv`),
//! reply capabilities, and notifications.
//!
//! **Rendezvous.** A message is delivered when a caller and a receiver meet: whichever
//! arrives second delivers, running in its own context, straight from the sender's memory
//! and handle table into the receiver's (bytes through the physical-memory map, so neither
//! address space needs to be active). Until then the message waits in its blocked sender's
//! [`state::IpcState`], never in the endpoint and never in a kernel buffer the user sizes.
//!
//! **Handles in messages** leave the sender's table when it sends (a copy leaves the original
//! behind) and go back to the same slots if the message cannot be delivered.
//!
//! **Failures.** A receiver whose handle table cannot take the message's handles fails with
//! `EMFILE` and the message stays queued; a reply that cannot be delivered fails both sides
//! with the same errno. A blocked thread that is killed or whose timeout expires takes
//! itself off every queue, gets its message's handles back (into its process's table), and returns `EINTR` or
//! `ETIMEDOUT`; a server that replies to it later gets `EPIPE`.
//!
//! **Locks.** Handle tables, IPC states, endpoint queues and notification words each have
//! their own lock, held only for a few instructions and never while taking the scheduler's
//! (which is taken last) or another of their kind; wake-ups happen after they are released.

pub mod endpoint;
pub mod futex;
pub mod notification;
pub mod pipe;
pub mod reply;
pub mod state;
mod transfer;

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use abi::errno::{EAGAIN, EFAULT, EINTR, EPIPE, ETIMEDOUT};

use endpoint::{Endpoint, EndpointRef};
use notification::Notification;
use reply::Reply;
use state::{Bytes, Destination, KERNEL_BYTES_MAX, KernelBytes, Outgoing, Phase, Received, Room};
use crate::syscall::usercopy::UserSlice;
use crate::task::thread::ThreadObject;
use crate::task::scheduler::{self, BlockOutcome, Handoff};

pub use transfer::restore_handles;

/// How long a blocking operation may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Not at all: `EAGAIN` if it would block.
    Poll,
    /// Until the clock reaches this many nanoseconds since boot: then `ETIMEDOUT`.
    Until(u64),
    /// For as long as it takes.
    Forever,
}

impl Timeout {
    /// The timeout a syscall's argument asks for: 0 polls, `abi::ipc::FOREVER` never
    /// expires, anything else is nanoseconds from now.
    pub fn from_nanoseconds(timeout: u64) -> Self {
        match timeout {
            0 => Self::Poll,
            abi::ipc::FOREVER => Self::Forever,
            nanoseconds => Self::Until(crate::time::uptime_ns().saturating_add(nanoseconds)),
        }
    }

    fn deadline(self) -> Option<u64> {
        match self {
            Self::Poll => Some(0),
            Self::Until(deadline) => Some(deadline),
            Self::Forever => None,
        }
    }
}

/// Hands `result` to a blocked thread and wakes it.
pub(crate) fn finish(thread: &ThreadObject, result: Result<Received, i64>) {
    drop(hand_over(thread, result));
}

/// Hands `result` to a blocked thread, which the returned handoff wakes (or runs next).
fn hand_over(thread: &ThreadObject, result: Result<Received, i64>) -> Handoff {
    thread.ipc.lock().result = Some(result);
    thread.ipc_ready.store(true, Ordering::Release);
    Handoff::new(thread)
}

/// Fails a queued caller: its message's handles go back to its process.
fn fail_call(caller: &ThreadObject, errno: i64) {
    let phase = core::mem::take(&mut caller.ipc.lock().phase);
    if let Phase::Calling { message, .. } = phase {
        restore_handles(&caller.process, message);
    }
    finish(caller, Err(errno));
}

/// Blocks `me` until a partner delivers, the deadline passes or it is killed, handing the
/// CPU to `handed` (a process just handed a message) if there is one. On anything but a
/// delivery, `cleanup` takes it off whatever queue it was on (with the phase it was in), and
/// the errno says why.
fn wait_for_partner(
    me: &ThreadObject,
    timeout: Timeout,
    handed: Option<Handoff>,
    cleanup: impl FnOnce(&ThreadObject, Phase),
) -> Result<Received, i64> {
    let outcome = scheduler::block_for_ipc(&me.ipc_ready, timeout.deadline(), handed);
    let mut ipc = me.ipc.lock();
    if let Some(result) = ipc.result.take() {
        me.ipc_ready.store(false, Ordering::Release);
        return result;
    }
    let phase = core::mem::take(&mut ipc.phase);
    drop(ipc);
    cleanup(me, phase);
    Err(match outcome {
        BlockOutcome::Killed => EINTR,
        BlockOutcome::TimedOut | BlockOutcome::Ready => ETIMEDOUT,
    })
}

/// Takes what is left of an interrupted blocking operation off its queues, and gives a
/// queued message's handles back.
fn abandon(me: &ThreadObject, phase: Phase) {
    match phase {
        Phase::Calling { endpoint, message, .. } => {
            endpoint.forget(me);
            restore_handles(&me.process, message);
        }
        Phase::Receiving { endpoint, .. } => endpoint.forget(me),
        Phase::Waiting { notification } => notification.forget(me),
        Phase::AwaitingReply { .. } | Phase::Idle => {}
    }
}

/// `call`: sends `message` through `target` and waits for the reply, which lands in
/// `reply_into`.
pub fn call(
    me: &Arc<ThreadObject>,
    target: &EndpointRef,
    mut message: Outgoing,
    reply_into: Destination,
    timeout: Timeout,
) -> Result<Received, i64> {
    let endpoint = target.endpoint();
    let call = reply::next_call();
    loop {
        if !endpoint.has_receivers() {
            restore_handles(&me.process, message);
            return Err(EPIPE);
        }
        let Some(receiver) = endpoint.pop_receiver() else { break };
        let into = match core::mem::take(&mut receiver.ipc.lock().phase) {
            Phase::Receiving { into, .. } => into,
            // A queued receiver is always in `Receiving`; anything else is not waiting.
            _ => continue,
        };
        me.ipc.lock().phase = Phase::AwaitingReply { call, reply_into };
        match transfer::deliver(&me.process, message, &receiver.process, into, target.badge(), Some((me, call))) {
            Ok(received) => {
                let handoff = hand_over(&receiver, Ok(received));
                return wait_for_partner(me, timeout, Some(handoff), abandon);
            }
            Err(undelivered) => {
                // The receiver could not take it: its `recv` fails; try the next one.
                me.ipc.lock().phase = Phase::Idle;
                finish(&receiver, Err(undelivered.errno));
                message = undelivered.message;
            }
        }
    }
    if timeout == Timeout::Poll {
        restore_handles(&me.process, message);
        return Err(EAGAIN);
    }
    me.ipc.lock().phase = Phase::Calling { endpoint: endpoint.clone(), badge: target.badge(), message, reply_into, call };
    if let Err(errno) = endpoint.queue_caller(me.clone()) {
        let phase = core::mem::take(&mut me.ipc.lock().phase);
        abandon(me, phase);
        return Err(errno);
    }
    wait_for_partner(me, timeout, None, abandon)
}

/// `recv`: waits for a message on `endpoint`: a close notice, the bound notification's bits,
/// or a call (whose reply handle the result names). If it has to wait, `handed` (a caller
/// this process just replied to) gets the CPU first.
pub fn recv(
    me: &Arc<ThreadObject>,
    endpoint: &Arc<Endpoint>,
    into: Destination,
    timeout: Timeout,
    handed: Option<Handoff>,
) -> Result<Received, i64> {
    if let Some(badge) = endpoint.pop_closed() {
        return Ok(Received { badge, label: abi::ipc::LABEL_CLOSED, ..Received::default() });
    }
    if let Some(notification) = endpoint.bound() {
        let bits = notification.take_bits();
        if bits != 0 {
            return Ok(notification::message(bits));
        }
    }
    while let Some(caller) = endpoint.pop_caller() {
        let taken = {
            let mut ipc = caller.ipc.lock();
            match core::mem::take(&mut ipc.phase) {
                Phase::Calling { badge, message, reply_into, call, .. } => {
                    ipc.phase = Phase::AwaitingReply { call, reply_into };
                    Some((badge, message, call, reply_into))
                }
                other => {
                    ipc.phase = other;
                    None
                }
            }
        };
        let Some((badge, message, call, reply_into)) = taken else { continue };
        match transfer::deliver(&caller.process, message, &me.process, into, badge, Some((&caller, call))) {
            Ok(received) => return Ok(received),
            Err(undelivered) => {
                // This receiver cannot take the message: it stays queued, first in line.
                let mut ipc = caller.ipc.lock();
                ipc.phase =
                    Phase::Calling { endpoint: endpoint.clone(), badge, message: undelivered.message, reply_into, call };
                drop(ipc);
                endpoint.requeue_caller(caller);
                return Err(undelivered.errno);
            }
        }
    }
    if timeout == Timeout::Poll {
        return Err(EAGAIN);
    }
    me.ipc.lock().phase = Phase::Receiving { endpoint: endpoint.clone(), into };
    if let Err(errno) = endpoint.queue_receiver(me.clone()) {
        me.ipc.lock().phase = Phase::Idle;
        return Err(errno);
    }
    wait_for_partner(me, timeout, handed, abandon)
}

/// `reply`: answers the call `reply` names with `message`, and hands the caller over (see
/// [`Handoff`]). `EPIPE` if the caller no longer waits (the message's handles come back); if the
/// reply cannot be delivered, both sides fail with the same errno.
pub fn reply(me: &ThreadObject, reply: &Reply, message: Outgoing) -> Result<Handoff, i64> {
    let (caller, reply_into) = match reply.take() {
        Ok(taken) => taken,
        Err(errno) => {
            restore_handles(&me.process, message);
            return Err(errno);
        }
    };
    if reply_into.buffer == Some(Room::Kernel) {
        return reply_to_kernel_room(me, &caller, message);
    }
    match transfer::deliver(&me.process, message, &caller.process, reply_into, 0, None) {
        Ok(received) => {
            let handoff = hand_over(&caller, Ok(received));
            Ok(handoff)
        }
        Err(undelivered) => {
            finish(&caller, Err(undelivered.errno));
            restore_handles(&me.process, undelivered.message);
            Err(undelivered.errno)
        }
    }
}

/// [`reply`] to a call the kernel made for `caller` (a fault): the reply's bytes go to the
/// caller's IPC state. They come from this thread's own memory (it runs this syscall): read
/// first, stored once the rest is delivered.
#[cold]
#[inline(never)]
fn reply_to_kernel_room(me: &ThreadObject, caller: &ThreadObject, message: Outgoing) -> Result<Handoff, i64> {
    let mut bytes = None;
    if let Some(Bytes::User(source)) = message.buffer {
        let mut read = KernelBytes::default();
        let len = (source.len as usize).min(KERNEL_BYTES_MAX);
        if UserSlice::new(source.address, len as u64).read_into(&mut read.0[..len]).is_err() {
            finish(caller, Err(EFAULT));
            restore_handles(&me.process, message);
            return Err(EFAULT);
        }
        bytes = Some(read);
    }
    match transfer::deliver(&me.process, message, &caller.process, Destination::default(), 0, None) {
        Ok(received) => {
            if let Some(bytes) = bytes {
                caller.ipc.lock().kernel_bytes = bytes;
            }
            Ok(hand_over(caller, Ok(received)))
        }
        Err(undelivered) => {
            finish(caller, Err(undelivered.errno));
            restore_handles(&me.process, undelivered.message);
            Err(undelivered.errno)
        }
    }
}

/// `wait` on a notification: its bits, once any are set.
pub fn wait(me: &Arc<ThreadObject>, notification: &Arc<Notification>, timeout: Timeout) -> Result<u64, i64> {
    let bits = notification.take_bits();
    if bits != 0 {
        return Ok(bits);
    }
    if timeout == Timeout::Poll {
        return Err(EAGAIN);
    }
    me.ipc.lock().phase = Phase::Waiting { notification: notification.clone() };
    if let Err(errno) = notification.queue_waiter(me.clone()) {
        me.ipc.lock().phase = Phase::Idle;
        return Err(errno);
    }
    // A signal between the check above and the queueing cannot happen: nothing else runs.
    wait_for_partner(me, timeout, None, abandon).map(|received| received.badge)
}

/// Binds `notification` to `endpoint` (see [`notification`]).
pub fn bind(endpoint: &Arc<Endpoint>, notification: &Arc<Notification>) {
    notification.bind_to(endpoint);
}
