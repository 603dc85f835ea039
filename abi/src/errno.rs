//! Error numbers. A syscall that fails returns `-errno` in `rax`. The values are Linux's, so
//! they read familiarly in a debugger.

/// Operation not permitted.
pub const EPERM: i64 = 1;
/// No such program or file.
pub const ENOENT: i64 = 2;
/// No such process.
pub const ESRCH: i64 = 3;
/// Interrupted: the caller was killed while it waited.
pub const EINTR: i64 = 4;
/// An input/output error: a server answered a stream call with something that is neither a
/// count nor an errno.
pub const EIO: i64 = 5;
/// Argument list too long.
pub const E2BIG: i64 = 7;
/// Bad file descriptor.
pub const EBADF: i64 = 9;
/// No child process to wait for.
pub const ECHILD: i64 = 10;
/// A limit is reached (for example the process table is full); try again later.
pub const EAGAIN: i64 = 11;
/// Out of memory, or over the per-process memory limit.
pub const ENOMEM: i64 = 12;
/// A pointer or range is not valid, mapped user memory with the needed rights.
pub const EFAULT: i64 = 14;
/// The resource is taken: an interrupt line another holder has bound.
pub const EBUSY: i64 = 16;
/// The file or directory exists already.
pub const EEXIST: i64 = 17;
/// The operation would move something into another file system (or into itself).
pub const EXDEV: i64 = 18;
/// A path component that must be a directory is not one.
pub const ENOTDIR: i64 = 20;
/// The operation needs a file and found a directory.
pub const EISDIR: i64 = 21;
/// An argument is out of its domain.
pub const EINVAL: i64 = 22;
/// The handle table is full.
pub const EMFILE: i64 = 24;
/// The file would grow past its largest size.
pub const EFBIG: i64 = 27;
/// No space left: the file system is full.
pub const ENOSPC: i64 = 28;
/// The stream cannot seek (a pipe, the console).
pub const ESPIPE: i64 = 29;
/// The file system or file is read-only.
pub const EROFS: i64 = 30;
/// The other side is gone: a server with no receiver left, a caller that died.
pub const EPIPE: i64 = 32;
/// A name is too long.
pub const ENAMETOOLONG: i64 = 36;
/// No such syscall.
pub const ENOSYS: i64 = 38;
/// The directory is not empty.
pub const ENOTEMPTY: i64 = 39;
/// A blocking call's timeout expired.
pub const ETIMEDOUT: i64 = 110;

/// The symbolic name of an errno value, for messages.
pub fn name(errno: i64) -> &'static str {
    match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EFAULT => "EFAULT",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        EMFILE => "EMFILE",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        EPIPE => "EPIPE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ETIMEDOUT => "ETIMEDOUT",
        _ => "E?",
    }
}
