//! `mandel [WIDTH HEIGHT]`: the Mandelbrot set as ASCII art on standard output (72 by 24
//! characters unless told), computed with `f64` in SSE registers through `userlib::float`,
//! and how many iterations that took.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use userlib::float::F64;
use userlib::{args, eprintln, println};

userlib::main!(main);

/// Iterations before a point counts as inside the set.
const MAX_ITERATIONS: u32 = 200;
/// Characters for escapes after 1, 2-3, 4-7, ... iterations (by the iterations' binary
/// logarithm); inside the set is `@`.
const SHADES: &[u8] = b" .:-=+*%#";

/// How many iterations `z = z^2 + c` takes to leave the circle of radius 2 (at most
/// [`MAX_ITERATIONS`]).
fn escape_time(cx: F64, cy: F64) -> u32 {
    let (mut x, mut y) = (F64::new(0.0), F64::new(0.0));
    let (two, four) = (F64::new(2.0), F64::new(4.0));
    for iteration in 0..MAX_ITERATIONS {
        let (xx, yy) = (x * x, y * y);
        if xx + yy > four {
            return iteration;
        }
        y = two * x * y + cy;
        x = xx - yy + cx;
    }
    MAX_ITERATIONS
}

fn number(argument: Option<&&str>, default: i64) -> Option<i64> {
    argument.map_or(Some(default), |text| text.parse().ok().filter(|value| (1..=1000).contains(value)))
}

fn main() -> i32 {
    let arguments = args();
    let (Some(width), Some(height)) = (number(arguments.get(1), 72), number(arguments.get(2), 24)) else {
        eprintln!("usage: mandel [WIDTH HEIGHT] (1 to 1000 each)");
        return 2;
    };
    // The picture spans -2.2..1.0 across and -1.2..1.2 down.
    let (left, top) = (F64::new(-2.2), F64::new(1.2));
    let step_x = F64::new(3.2) / F64::from_int(width);
    let step_y = F64::new(2.4) / F64::from_int(height);
    let mut total: u64 = 0;
    let mut line = String::new();
    for row in 0..height {
        line.clear();
        let cy = top - F64::from_int(row) * step_y;
        for column in 0..width {
            let cx = left + F64::from_int(column) * step_x;
            let iterations = escape_time(cx, cy);
            total += u64::from(iterations);
            let shade = match iterations {
                MAX_ITERATIONS => b'@',
                0 => b' ',
                _ => SHADES[(iterations.ilog2() as usize).min(SHADES.len() - 1)],
            };
            line.push(char::from(shade));
        }
        println!("{}", line.trim_end());
    }
    println!("mandel: {width}x{height} points, {total} iterations in SSE");
    0
}
