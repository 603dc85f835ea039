//! Durations as user programs take them on the command line (`2`, `0.5`, `1.25s`, `300ms`),
//! the time since boot, and sleeping for a [`Duration`].

pub use core::time::Duration;

use crate::sys;

/// How [`parse_duration`] wants durations written, for usage messages.
pub const DURATION_SYNTAX: &str = "seconds such as 2 or 0.5, or milliseconds such as 300ms";

/// Parses a duration typed by a user: whole or fractional seconds (`2`, `0.5`, `.25`), with an
/// optional `s` suffix (`1.5s`), or whole milliseconds with an `ms` suffix (`300ms`). Digits
/// beyond nanoseconds are ignored. Returns `None` for anything else (signs, spaces, exponents,
/// overflow, an empty number).
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(millis) = text.strip_suffix("ms") {
        return digits(millis).and_then(|millis| millis.parse().ok()).map(Duration::from_millis);
    }
    let seconds = text.strip_suffix('s').unwrap_or(text);
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole = if whole.is_empty() { 0 } else { digits(whole)?.parse().ok()? };
    let fraction = if fraction.is_empty() { "" } else { digits(fraction)? };
    let nanos = fraction
        .bytes()
        .chain(core::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |nanos, digit| nanos * 10 + u32::from(digit - b'0'));
    Some(Duration::new(whole, nanos))
}

/// `text` if it is a non-empty run of ASCII digits.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())).then_some(text)
}

/// Time since boot.
pub fn uptime() -> Duration {
    Duration::from_nanos(sys::uptime_ns())
}

/// Blocks for at least `duration` (the kernel rounds up to its timer ticks).
pub fn sleep(duration: Duration) -> sys::Result<()> {
    sys::sleep_ns(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_fractions_and_milliseconds() {
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(".25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3."), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("0.0000000019"), Some(Duration::from_nanos(1)));
    }

    #[test]
    fn rejects_what_is_not_a_plain_duration() {
        for text in ["", ".", "s", "ms", "-1", "+1", "1e3", "1.5ms", " 1", "1 ", "a", "1.2.3", "99999999999999999999"] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }
}
