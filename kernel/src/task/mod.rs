//! Tasks: user processes and their threads (the tables and the scheduler, futexes, the ELF
//! loader) and the kernel's own async tasks (the executor).
pub mod exception;
pub mod executor;
pub mod loader;
pub mod process;
pub mod scheduler;
pub mod table;
pub mod thread;

pub use scheduler::{
    before_user_return, kill_current_for_fault, on_timer_tick, preemption_point, start_user, timer_tick_without_lock,
};
