//! The kernel's heap allocators.
