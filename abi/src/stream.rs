//! The stream protocol: how `read` and `write` reach a server.
//!
//! `read` and `write` work on every stream handle. On a pipe end or the kernel's log the
//! kernel does the work itself; on an endpoint handle with SEND (an open file of the `fs`
//! server, a console session) it forwards the call to the endpoint's server as ordinary IPC
//! calls, which the server answers like any other:
//!
//! | syscall | message the server receives | its reply |
//! |---|---|---|
//! | `write(h, buf, len)` | label [`WRITE`], `words[0]` = the length, the bytes as the message's buffer | label = bytes written, or `-errno` |
//! | `read(h, buf, len)` | label [`READ`], `words[0]` = `len` (at most `BUFFER_MAX`) | label = bytes read (0: end of the stream), or `-errno`; the bytes as the reply's buffer |
//!
//! A write longer than [`crate::ipc::BUFFER_MAX`] goes out as several calls of at most that
//! many bytes, and stops at the first that is short or fails (the count so far is returned
//! if it is not 0, else the error). A read makes one call for at most `BUFFER_MAX` bytes
//! (`words[0]` says how many the caller can take). A server may answer a read with
//! `-EAGAIN`: the kernel then asks it again (the console does so with reads it has held for
//! a second, so that it never keeps for long the reply handle of a reader that was killed
//! meanwhile, and with it that reader's process object). A count larger than the call could have
//! moved (more than was sent, or than the reply carried) is `EIO` ([`reply_result`]), and
//! handles a server puts in a stream reply are closed, never left in the caller's table.
//! The badge of the handle tells the server which open file or session the call is for. A
//! caller killed while it waits gets `EINTR`, as in any call; a server that is gone is
//! `EPIPE`. Everything else a server offers (seeking, `stat`, console modes) is an ordinary
//! call that `userlib` makes; a console session also answers [`MODE`] and [`FOREGROUND`].

/// The label of a forwarded `write`.
pub const WRITE: u64 = 0x5354_5257;
/// The label of a forwarded `read`.
pub const READ: u64 = 0x5354_5244;

/// A console session's mode call: `words[0]` is [`crate::CONSOLE_COOKED`] or
/// [`crate::CONSOLE_RAW`]; the reply label is the mode before, or `-errno`.
pub const MODE: u64 = 0x5354_4d44;
/// A console session's foreground call: the message carries a process handle with KILL and
/// WAIT (Ctrl-C kills that process), or no handle (Ctrl-C kills nothing); the reply label is
/// 0 or `-errno`.
pub const FOREGROUND: u64 = 0x5354_4647;

/// Bytes a kernel pipe holds: a writer blocks when it is full.
pub const PIPE_CAPACITY: usize = 4096;

/// The reply label for a count or an errno, as a server answers a stream call.
pub fn reply_label(result: Result<u64, i64>) -> u64 {
    match result {
        Ok(count) => count,
        Err(errno) => errno.wrapping_neg() as u64,
    }
}

/// How the kernel reads a reply label: a count of at most `limit` (the most the call could
/// have moved), or the errno of a label in `-4095..=-1`. Anything else is the server's
/// mistake, reported as `EIO`: a larger count, or a label that is neither.
pub fn reply_result(label: u64, limit: u64) -> Result<u64, i64> {
    match label as i64 {
        count @ 0.. if label <= limit => Ok(count as u64),
        error @ -4095..=-1 => Err(-error),
        _ => Err(crate::errno::EIO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::{EIO, ENOENT};

    #[test]
    fn labels_round_trip_counts_and_errors() {
        assert_eq!(reply_result(reply_label(Ok(4096)), 4096), Ok(4096));
        assert_eq!(reply_result(reply_label(Ok(0)), 0), Ok(0));
        assert_eq!(reply_result(reply_label(Err(ENOENT)), 10), Err(ENOENT));
    }

    #[test]
    fn server_mistakes_are_eio() {
        assert_eq!(reply_result(11, 10), Err(EIO));
        assert_eq!(reply_result((-5000i64) as u64, 10), Err(EIO));
        assert_eq!(reply_result(u64::MAX / 2 + 1, u64::MAX), Err(EIO));
    }
}
