//! Kernel objects and the handles that name them.
//!
//! Every object a process can name is reference-counted (an `Arc`) and dies with its last
//! reference: the handles to it, plus whatever the kernel itself holds (a mapping of shared
//! memory, a queued caller). A [`Handle`] pairs an object with the rights its holder has on
//! it; [`handles::HandleTable`] is a process's table of them. The kinds and rights are
//! `abi::handle`'s.
//!
//! The number of live objects is counted ([`live_objects`], reported by `sysinfo`), so a test
//! can see an object that leaked.

pub mod device;
pub mod handles;
pub mod job;
pub mod memory;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::errno::EPERM;
use abi::handle::{Kind, rights};

use crate::ipc::endpoint::{EndpointRef, ReceiverToken};
use crate::ipc::notification::Notification;
use crate::ipc::pipe::PipeEnd;
use crate::ipc::reply::Reply;
use crate::task::process::ProcessObject;
use crate::task::thread::ThreadObject;
use device::{DeviceMemory, IoPorts, Irq};
use job::Job;
use memory::MemoryObject;

static LIVE_OBJECTS: AtomicU64 = AtomicU64::new(0);

/// Kernel objects alive now.
pub fn live_objects() -> u64 {
    LIVE_OBJECTS.load(Ordering::Relaxed)
}

/// A field that counts its object among the live ones for as long as the object lives.
#[derive(Debug)]
pub struct LiveObject(());

impl LiveObject {
    /// Counts one more live object.
    pub fn new() -> Self {
        LIVE_OBJECTS.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Default for LiveObject {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LiveObject {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a handle names.
#[derive(Debug)]
pub enum Object {
    /// An endpoint, with the badge this handle sends with.
    Endpoint(Arc<EndpointRef>),
    /// The right to answer one call; held in the handle itself, since it is never shared
    /// (so `recv` allocates nothing for it).
    Reply(Reply),
    /// A notification.
    Notification(Arc<Notification>),
    /// Shared memory.
    Memory(Arc<MemoryObject>),
    /// A process.
    Process(Arc<ProcessObject>),
    /// The authority to power off (there is one; it is not counted).
    Power,
    /// One end of a pipe (handles duplicated from one another share it).
    Pipe(Arc<PipeEnd>),
    /// An interrupt line.
    Irq(Arc<Irq>),
    /// A range of I/O ports.
    IoPorts(Arc<IoPorts>),
    /// A device's physical memory.
    DeviceMemory(Arc<DeviceMemory>),
    /// The kernel's log (there is one; it is not counted).
    Log,
    /// A job.
    Job(Arc<Job>),
    /// A thread.
    Thread(Arc<ThreadObject>),
}

impl Object {
    /// Another reference to the same object, for a second handle; `None` for a reply,
    /// which is one of a kind.
    pub fn duplicate(&self) -> Option<Self> {
        Some(match self {
            Self::Endpoint(endpoint) => Self::Endpoint(endpoint.clone()),
            Self::Reply(_) => return None,
            Self::Notification(notification) => Self::Notification(notification.clone()),
            Self::Memory(memory) => Self::Memory(memory.clone()),
            Self::Process(process) => Self::Process(process.clone()),
            Self::Power => Self::Power,
            Self::Pipe(end) => Self::Pipe(end.clone()),
            Self::Irq(irq) => Self::Irq(irq.clone()),
            Self::IoPorts(ports) => Self::IoPorts(ports.clone()),
            Self::DeviceMemory(memory) => Self::DeviceMemory(memory.clone()),
            Self::Log => Self::Log,
            Self::Job(job) => Self::Job(job.clone()),
            Self::Thread(thread) => Self::Thread(thread.clone()),
        })
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Endpoint(_) => Kind::Endpoint,
            Self::Reply(_) => Kind::Reply,
            Self::Notification(_) => Kind::Notification,
            Self::Memory(_) => Kind::Memory,
            Self::Process(_) => Kind::Process,
            Self::Power => Kind::Power,
            Self::Pipe(_) => Kind::Pipe,
            Self::Irq(_) => Kind::Irq,
            Self::IoPorts(_) => Kind::IoPorts,
            Self::DeviceMemory(_) => Kind::DeviceMemory,
            Self::Log => Kind::Log,
            Self::Job(_) => Kind::Job,
            Self::Thread(_) => Kind::Thread,
        }
    }
}

/// An object and the rights one holder has on it.
#[derive(Debug)]
pub struct Handle {
    object: Object,
    rights: u32,
    /// For an endpoint handle with the RECEIVE right: keeps the endpoint counted as having
    /// a receiver, so callers learn at once when the last one is gone.
    _receiver: Option<ReceiverToken>,
}

impl Handle {
    /// A handle to `object` with `rights`.
    pub fn new(object: Object, rights: u32) -> Self {
        let receiver = match &object {
            Object::Endpoint(endpoint) if rights & rights::RECEIVE != 0 => Some(endpoint.endpoint().receiver_token()),
            _ => None,
        };
        Self { object, rights, _receiver: receiver }
    }

    /// What it names.
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// Its rights.
    pub fn rights(&self) -> u32 {
        self.rights
    }

    /// `Ok` if the handle has every right in `wanted`, else `EPERM`.
    pub fn require(&self, wanted: u32) -> Result<(), i64> {
        if self.rights & wanted == wanted { Ok(()) } else { Err(EPERM) }
    }

    /// A second handle to the same object with the rights in `rights` that this one has
    /// (never more). Needs the DUPLICATE right.
    pub fn duplicate(&self, rights: u32) -> Result<Self, i64> {
        self.require(rights::DUPLICATE)?;
        let object = self.object.duplicate().ok_or(EPERM)?;
        Ok(Self::new(object, self.rights & rights))
    }
}
