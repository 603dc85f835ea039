//! Tasks: user processes (the process table and scheduler, the ELF loader) and the kernel's
//! own async tasks (the executor).
pub mod executor;
pub mod loader;
pub mod process;
pub mod scheduler;
pub mod table;

pub use scheduler::{
    before_user_return, kill, kill_current_for_fault, on_timer_tick, preemption_point, start_user, timer_tick_without_lock,
};
