//! What a fault case expects its child to die of, and the check of a child's [`ExitInfo`]
//! against it.

use alloc::format;
use alloc::string::String;
use core::fmt;

use abi::ExitInfo;
use abi::fault::{GENERAL_PROTECTION, INVALID_OPCODE, PAGE_FAULT};

use crate::process::Ending;

/// The addresses `start..end` (`end` exclusive), or one address when `end == start + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The first address in the span.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl Span {
    /// The one address `address`.
    pub const fn at(address: u64) -> Self {
        Self { start: address, end: address.saturating_add(1) }
    }

    /// The addresses `start..end`.
    pub const fn within(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Whether `address` is in the span.
    pub fn contains(&self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.end == self.start.saturating_add(1) {
            write!(f, "{:#x}", self.start)
        } else {
            write!(f, "{:#x}..{:#x}", self.start, self.end)
        }
    }
}

/// The fault a child must die of: the exception vector, and what is known of the faulting
/// instruction's address, the accessed address (page faults) and the error code. A child that
/// dies of anything else, or of the same exception somewhere else (say, in its own setup),
/// fails the case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The exception vector (`abi::fault::*`).
    pub vector: u32,
    /// Where the faulting instruction must be, if known.
    pub ip: Option<Span>,
    /// For a page fault, where the accessed address must be, if known.
    pub address: Option<Span>,
    /// The error code the CPU must report, if known.
    pub error: Option<u64>,
}

impl Expected {
    /// Exception `vector`, anywhere.
    pub const fn fault(vector: u32) -> Self {
        Self { vector, ip: None, address: None, error: None }
    }

    /// A general protection fault with error code 0 (the code for privileged instructions
    /// and non-canonical addresses).
    pub const fn general_protection() -> Self {
        Self::fault(GENERAL_PROTECTION).error(0)
    }

    /// An invalid-opcode exception (`#UD`, which has no error code).
    pub const fn invalid_opcode() -> Self {
        Self::fault(INVALID_OPCODE).error(0)
    }

    /// A page fault on an access to exactly `address`.
    pub const fn page_fault(address: u64) -> Self {
        Self { address: Some(Span::at(address)), ..Self::fault(PAGE_FAULT) }
    }

    /// A page fault on an access to an address in `start..end`.
    pub const fn page_fault_within(start: u64, end: u64) -> Self {
        Self { address: Some(Span::within(start, end)), ..Self::fault(PAGE_FAULT) }
    }

    /// The same, with the faulting instruction at exactly `ip`.
    pub const fn at(self, ip: u64) -> Self {
        Self { ip: Some(Span::at(ip)), ..self }
    }

    /// The same, with the faulting instruction somewhere in `start..end`.
    pub const fn at_within(self, start: u64, end: u64) -> Self {
        Self { ip: Some(Span::within(start, end)), ..self }
    }

    /// The same, with error code `error` (for page faults, `abi::fault::PF_*` bits).
    pub const fn error(self, error: u64) -> Self {
        Self { error: Some(error), ..self }
    }

    /// Checks how a child ended: `Ok` if it died of this fault, otherwise what happened
    /// instead.
    pub fn check(&self, info: &ExitInfo) -> Result<(), String> {
        let matches = info.status == abi::status::FAULT
            && info.fault() == Some(self.vector)
            && self.ip.is_none_or(|ip| ip.contains(info.fault_ip))
            && self.address.is_none_or(|address| address.contains(info.fault_address))
            && self.error.is_none_or(|error| error == info.fault_error);
        if matches {
            return Ok(());
        }
        let error = if info.fault().is_some() { format!(", error {:#x}", info.fault_error) } else { String::new() };
        Err(format!("expected {self}; the child ended: {}{error}", Ending(*info)))
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = abi::fault::name(self.vector);
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        write!(f, "{article} {name}")?;
        if let Some(address) = self.address {
            write!(f, " at {address}")?;
        }
        if let Some(ip) = self.ip {
            write!(f, " with ip {ip}")?;
        }
        if let Some(error) = self.error {
            write!(f, " and error {error:#x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use abi::fault::{DEBUG, PF_USER, PF_WRITE};

    use super::*;

    fn died(vector: u32, address: u64, ip: u64, error: u64) -> ExitInfo {
        let status = abi::status::FAULT;
        ExitInfo { status, fault_vector: vector, fault_address: address, fault_ip: ip, fault_error: error }
    }

    #[test]
    fn the_expected_fault_passes() {
        let expected = Expected::page_fault(0x1000).at(0x40_0010).error(PF_USER | PF_WRITE);
        assert_eq!(expected.check(&died(PAGE_FAULT, 0x1000, 0x40_0010, 6)), Ok(()));
        let anywhere = Expected::general_protection();
        assert_eq!(anywhere.check(&died(GENERAL_PROTECTION, 0, 0x40_2000, 0)), Ok(()));
    }

    #[test]
    fn another_vector_fails() {
        let outcome = Expected::general_protection().check(&died(PAGE_FAULT, 0x10, 0x40_0000, 4));
        assert_eq!(
            outcome,
            Err("expected a general protection fault and error 0x0; the child ended: killed by a page \
                 fault at 0x10 (ip 0x400000), error 0x4"
                .to_string())
        );
    }

    #[test]
    fn the_same_vector_elsewhere_fails() {
        let at_site = Expected::general_protection().at(0x40_1000);
        assert!(at_site.check(&died(GENERAL_PROTECTION, 0, 0x40_1001, 0)).is_err());
        assert!(at_site.check(&died(GENERAL_PROTECTION, 0, 0x40_1000, 0x10)).is_err());
        let in_guard = Expected::page_fault_within(0x7000, 0x8000);
        assert!(in_guard.check(&died(PAGE_FAULT, 0x6fff, 0, 6)).is_err());
        assert!(in_guard.check(&died(PAGE_FAULT, 0x8000, 0, 6)).is_err());
        assert_eq!(in_guard.check(&died(PAGE_FAULT, 0x7fff, 0, 6)), Ok(()));
        let stepping = Expected::fault(DEBUG).at_within(0x40_0000, 0x40_0010);
        assert_eq!(stepping.check(&died(DEBUG, 0, 0x40_000f, 0)), Ok(()));
        assert!(stepping.check(&died(DEBUG, 0, 0x40_0010, 0)).is_err());
    }

    #[test]
    fn a_child_that_did_not_fault_fails() {
        let expected = Expected::invalid_opcode();
        assert_eq!(
            expected.check(&ExitInfo::exited(0)),
            Err("expected an invalid opcode and error 0x0; the child ended: exited with status 0".to_string())
        );
        assert!(expected.check(&ExitInfo::exited(abi::status::FAULT)).is_err());
        assert!(expected.check(&ExitInfo { status: 0, ..died(INVALID_OPCODE, 0, 0, 0) }).is_err());
    }

    #[test]
    fn spans_show_one_address_or_a_range() {
        assert_eq!(Span::at(0x10).to_string(), "0x10");
        assert_eq!(Span::within(0x10, 0x20).to_string(), "0x10..0x20");
        assert!(Span::at(0x10).contains(0x10) && !Span::at(0x10).contains(0x11));
    }
}
