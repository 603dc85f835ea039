//! Jobs: what every process belongs to, so that no process is out of reach.
//!
//! A job is a node in one tree whose root init runs in (`abi::init_handles::ROOT_JOB`). Each
//! process starts in a job, its spawner's unless the spawner names another it may MANAGE,
//! and stays in it for life; a job may hold jobs below it. Killing a job ends every process
//! in it and in the jobs below it, and from then on nothing starts in any of them. So an
//! orphan is never unreachable: whoever holds a job above it can end it (init holds the
//! root). The tree is at most `abi::JOB_DEPTH_MAX` deep, which bounds every walk up it and
//! the recursion of dropping a chain.
//!
//! A job knows only its parent; which processes are in it is read from the process table
//! when it is killed (the table is small and a kill is rare). Marking the job killed and
//! ending its processes happen in one hold of the scheduler's lock, and a spawn checks the
//! mark in the same hold in which it enters the table, so no process can slip in between.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::ipc::endpoint::EndpointRef;

use abi::errno::{ENOSPC, ESRCH};

use super::LiveObject;

/// A job.
#[derive(Debug)]
pub struct Job {
    parent: Option<Arc<Job>>,
    /// Jobs from the root to this one, both counted.
    depth: usize,
    killed: AtomicBool,
    /// What processes spawned into it (or below it, unless a nearer job has its own) start
    /// with: an exception endpoint, and whether their system calls are messages to it
    /// (`exception_endpoint_set` on the job; decision 72). Taken when the job is killed.
    exception: spin::Mutex<Option<JobException>>,
    _live: LiveObject,
}

/// A job's exception endpoint and mode, for the processes spawned into it.
#[derive(Clone, Debug)]
pub struct JobException {
    /// The endpoint their faults (and system calls, in syscall mode) go to.
    pub endpoint: Arc<EndpointRef>,
    /// Whether they start in syscall mode.
    pub syscalls: bool,
}

impl Job {
    /// The root job (made once, at boot, for init).
    pub fn root() -> Arc<Self> {
        Arc::new(Self { parent: None, depth: 1, killed: AtomicBool::new(false), exception: spin::Mutex::new(None), _live: LiveObject::new() })
    }

    /// A new job below `parent`: `ESRCH` if `parent` or a job above it was killed, `ENOSPC`
    /// past the depth limit.
    pub fn below(parent: &Arc<Self>) -> Result<Arc<Self>, i64> {
        if parent.is_killed() {
            return Err(ESRCH);
        }
        if parent.depth >= abi::JOB_DEPTH_MAX {
            return Err(ENOSPC);
        }
        Ok(Arc::new(Self {
            parent: Some(parent.clone()),
            depth: parent.depth + 1,
            killed: AtomicBool::new(false),
            exception: spin::Mutex::new(None),
            _live: LiveObject::new(),
        }))
    }

    /// This job and the ones above it, nearest first.
    fn lineage(&self) -> impl Iterator<Item = &Job> {
        core::iter::successors(Some(self), |job| job.parent.as_deref())
    }

    /// Whether this job or one above it was killed: nothing may start in it.
    pub fn is_killed(&self) -> bool {
        self.lineage().any(|job| job.killed.load(Ordering::Acquire))
    }

    /// Whether this job is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &Job) -> bool {
        self.lineage().any(|job| core::ptr::eq(job, ancestor))
    }

    /// Marks the job killed; `false` if it was already.
    pub fn mark_killed(&self) -> bool {
        !self.killed.swap(true, Ordering::AcqRel)
    }

    /// Takes the job's exception setting (a killed job starts nothing again), to be dropped
    /// outside the caller's locks.
    pub fn take_exception(&self) -> Option<JobException> {
        self.exception.lock().take()
    }

    /// Sets (or with `None` clears) what processes spawned into this job start with; returns
    /// what was set before, to be dropped outside the caller's locks. `ESRCH` once the job
    /// (or one above it) was killed.
    pub fn set_exception(&self, exception: Option<JobException>) -> Result<Option<JobException>, i64> {
        if self.is_killed() {
            return Err(ESRCH);
        }
        Ok(core::mem::replace(&mut *self.exception.lock(), exception))
    }

    /// What a process spawned into this job starts with: the nearest setting up its lineage.
    pub fn exception_for_new_process(&self) -> Option<JobException> {
        self.lineage().find_map(|job| job.exception.lock().clone())
    }
}
