//! Thread-local storage: `tls_set` and `tls_get`, the FS and GS bases of the calling
//! context, which the core keeps with its other registers and loads at every switch
//! (`mm::kernel_stack::set_user_base`, decision 66).

use abi::errno::EINVAL;
use abi::tls::{FS, GS};

use super::{Args, SyscallResult};
use crate::arch::user_state::Base;
use crate::mm::kernel_stack;

/// The base a `which` argument names.
fn base(which: u64) -> Result<Base, i64> {
    match which {
        FS => Ok(Base::Fs),
        GS => Ok(Base::Gs),
        _ => Err(EINVAL),
    }
}

/// `tls_set(which, address) -> 0`; `EINVAL` for an address outside the lower half.
pub fn tls_set(args: &Args) -> SyscallResult {
    kernel_stack::set_user_base(base(args[0])?, args[1]).map_err(|_| EINVAL)?;
    Ok(0)
}

/// `tls_get(which) -> address`.
pub fn tls_get(args: &Args) -> SyscallResult {
    Ok(kernel_stack::user_base(base(args[0])?))
}
