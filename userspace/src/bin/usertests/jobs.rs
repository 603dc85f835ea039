//! Jobs: every process runs in one, and killing a job ends every process in it and in the
//! jobs below it, orphans included, after which nothing starts in any of them. Rights:
//! MANAGE to start processes and jobs in a job, KILL to kill it; the tree's depth is
//! bounded.

use alloc::format;
use alloc::vec::Vec;

use abi::errno::{EBADF, ENOSPC, EPERM, ESRCH};
use abi::handle::rights;
use abi::status::KILLED;
use userlib::check;
use userlib::ipc::OwnedHandle;
use userlib::process::{self, Ending};
use userlib::sys::{self, Child, Errno, Pid};
use userlib::testing::{self, Case, Context, Outcome};

use crate::common::*;

pub const CASES: &[Case] = userlib::cases![
    here jobs_killing_a_job_ends_its_processes_and_the_jobs_below,
    here jobs_an_orphan_is_ended_with_its_job,
    here jobs_nothing_starts_in_a_killed_job,
    here jobs_need_manage_to_start_and_kill_to_end,
    here jobs_nest_only_so_deep,
];

/// A new job below `parent` (`None`: this process's own job).
fn job(parent: Option<&OwnedHandle>) -> Result<OwnedHandle, alloc::string::String> {
    sys::job_create(parent.map(OwnedHandle::raw)).map(OwnedHandle::from_raw).context("job_create")
}

/// Starts `usertests --child sleeper forever` in `job`.
fn sleeper_in(job: &OwnedHandle) -> Result<Child, alloc::string::String> {
    testing::spawn_self_in(Some(job.raw()), &["usertests", "--child", "sleeper", "forever"], &process::standard_handles())
        .context("spawn into a job")
}

fn jobs_killing_a_job_ends_its_processes_and_the_jobs_below() -> Outcome {
    let objects = live_objects()?;
    let outer = job(None)?;
    let inner = job(Some(&outer))?;
    let children = [sleeper_in(&outer)?, sleeper_in(&outer)?, sleeper_in(&inner)?];
    // A bystander in this process's own job, which the kill must not reach.
    let bystander = spawn_child("sleeper", &["forever"])?;
    sys::kill_handle(outer.raw()).context("kill of the job")?;
    for (index, child) in children.into_iter().enumerate() {
        expect_exit(&format!("process {index} of the job"), finish_within(child, "a process of the killed job")?, KILLED)?;
    }
    check!(state_of(bystander.pid)?.is_some(), "the kill of a job ended a process outside it");
    kill_and_reap(&[bystander])?;
    drop((outer, inner));
    expect_objects_back(objects, "after the killed jobs were closed")
}

fn jobs_an_orphan_is_ended_with_its_job() -> Outcome {
    let objects = live_objects()?;
    let family = job(None)?;
    // The parent starts a sleeper and exits: the sleeper is an orphan no process holds a
    // handle to, reachable only through the job it inherited.
    let parent = testing::spawn_self_in(
        Some(family.raw()),
        &["usertests", "--child", "orphan_parent", "sleeper", "forever"],
        &process::standard_handles(),
    )
    .context("spawn of the orphan's parent")?;
    let ended = finish_within(parent, "orphan_parent")?;
    check!(ended.status > 0 && ended.fault().is_none(), "orphan_parent {}", Ending(ended));
    let orphan = ended.status as Pid;
    check!(state_of(orphan)?.is_some(), "the orphan (pid {orphan}) is not running before the kill");
    sys::kill_handle(family.raw()).context("kill of the orphan's job")?;
    wait_until_gone(orphan, "the orphan")?;
    drop(family);
    expect_objects_back(objects, "after the orphan ended")
}

fn jobs_nothing_starts_in_a_killed_job() -> Outcome {
    let objects = live_objects()?;
    let outer = job(None)?;
    let inner = job(Some(&outer))?;
    sys::kill_handle(outer.raw()).context("kill of an empty job")?;
    expect_errno_of("a second kill of the job", sys::kill_handle(outer.raw()), ESRCH)?;
    for (what, target) in [("the killed job", &outer), ("a job below it", &inner)] {
        let errno = spawn_errno(target);
        check!(errno == ESRCH, "spawn into {what}: errno {errno} ({}), expected ESRCH", abi::errno::name(errno));
        expect_errno_of(&format!("job_create below {what}"), sys::job_create(Some(target.raw())), ESRCH)?;
    }
    drop((outer, inner));
    expect_objects_back(objects, "after the refused starts")
}

/// The errno of a spawn of a sleeper into `job`.
fn spawn_errno(job: &OwnedHandle) -> i64 {
    match testing::spawn_self_in(Some(job.raw()), &["usertests", "--child", "sleeper", "forever"], &process::standard_handles()) {
        Ok(child) => {
            let _ = sys::kill(child);
            let _ = sys::wait(Some(child));
            0
        }
        Err(Errno(errno)) => errno,
    }
}

fn jobs_need_manage_to_start_and_kill_to_end() -> Outcome {
    let objects = live_objects()?;
    let whole = job(None)?;
    let all_but = |right: u32| {
        userlib::ipc::duplicate(whole.raw(), rights::JOB_HANDLE & !right)
            .map(OwnedHandle::from_raw)
            .context("handle_duplicate")
    };
    let (no_manage, no_kill) = (all_but(rights::MANAGE)?, all_but(rights::KILL)?);
    let errno = spawn_errno(&no_manage);
    check!(errno == EPERM, "spawn into a job without MANAGE: errno {errno} ({}), expected EPERM", abi::errno::name(errno));
    expect_errno_of("job_create below a job without MANAGE", sys::job_create(Some(no_manage.raw())), EPERM)?;
    expect_errno_of("kill of a job without KILL", sys::kill_handle(no_kill.raw()), EPERM)?;
    // A process handle is not a job, and a job is not a process to wait for.
    let child = spawn_child("sleeper", &["forever"])?;
    expect_errno_of("a process handle as the job", sys::job_create(Some(child.handle)), EBADF)?;
    expect_errno_of("wait on a job", sys::wait_handle(whole.raw(), 0).map(|_| ()), EBADF)?;
    kill_and_reap(&[child])?;
    // With MANAGE the same job takes a process, which KILL then ends.
    let member = sleeper_in(&no_kill)?;
    sys::kill_handle(no_manage.raw()).context("kill through the handle without MANAGE")?;
    expect_exit("the process of the job", finish_within(member, "the job's process")?, KILLED)?;
    drop((whole, no_manage, no_kill));
    expect_objects_back(objects, "after the rights checks")
}

fn jobs_nest_only_so_deep() -> Outcome {
    let objects = live_objects()?;
    let mut chain: Vec<OwnedHandle> = Vec::new();
    let refused = loop {
        match sys::job_create(chain.last().map(OwnedHandle::raw)) {
            Ok(handle) => chain.push(OwnedHandle::from_raw(handle)),
            Err(Errno(errno)) => break errno,
        }
        check!(chain.len() < abi::JOB_DEPTH_MAX, "{} jobs nested below this process's job", chain.len());
    };
    check!(refused == ENOSPC, "the job past the limit was refused with {}, not ENOSPC", abi::errno::name(refused));
    check!(!chain.is_empty(), "not even one job could be made below this process's job");
    // The deepest still takes a process.
    let deepest = sleeper_in(chain.last().expect("the chain is not empty"))?;
    kill_and_reap(&[deepest])?;
    drop(chain);
    expect_objects_back(objects, "after the chain was closed")
}
