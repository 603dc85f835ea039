//! The console server's logic, free of any system call so that it is unit-tested on the
//! host: [`screen`] (a VT100-style text terminal drawn on a linear framebuffer: colours,
//! ANSI sequences, cursor, scrolling), [`line_discipline`] (cooked and raw input, echo,
//! Backspace, Ctrl-C, Ctrl-D) and [`keyboard`] (PS/2 scancodes to input bytes, US layout).
//! The `console` program (`userspace/src/bin/console`) drives them with its devices.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod keyboard;
pub mod line_discipline;
pub mod screen;
