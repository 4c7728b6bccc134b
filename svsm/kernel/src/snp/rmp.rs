//! The SNP platform's pure rules: RMP instruction results as the monitor's types, and
//! which GPAs the platform reaches for the monitor (host-tested; `snp::platform` uses
//! them).

use monitor::platform::{PvalidateOutcome, RmpError};
use svsm_abi::rmp::ret;

/// PVALIDATE/RMPADJUST's EAX as a result (APM vol. 3, PVALIDATE and RMPADJUST): 0 is
/// success, 2 FAIL_PERMISSION, 3 FAIL_INUSE, 6 FAIL_SIZEMISMATCH; 1 and every code the
/// monitor has no name for are FAIL_INPUT (the monitor refuses the request either way).
pub fn rmp_result(eax: u32) -> Result<(), RmpError> {
    match eax {
        ret::SUCCESS => Ok(()),
        ret::FAIL_PERMISSION => Err(RmpError::FailPermission),
        ret::FAIL_INUSE => Err(RmpError::FailInUse),
        ret::FAIL_SIZEMISMATCH => Err(RmpError::FailSizeMismatch),
        _ => Err(RmpError::FailInput),
    }
}

/// PVALIDATE's EAX and RFLAGS.CF as the monitor's outcome: CF = 1 with EAX = 0 means
/// the validated bit already had the value asked for.
pub fn pvalidate_outcome(eax: u32, cf: bool) -> Result<PvalidateOutcome, RmpError> {
    rmp_result(eax)?;
    Ok(if cf {
        PvalidateOutcome::Unchanged
    } else {
        PvalidateOutcome::Changed
    })
}

/// Whether the 4 KiB page at `gpa` is guest RAM the platform may reach for the
/// monitor: below `ram_end` and wholly outside Vigil's `[vigil.0, vigil.1)`.
pub fn guest_page(gpa: u64, vigil: (u64, u64), ram_end: u64) -> bool {
    gpa.checked_add(4096).is_some_and(|end| end <= ram_end)
        && (gpa >= vigil.1 || gpa + 4096 <= vigil.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmp_codes_map_to_the_monitor_errors() {
        assert_eq!(rmp_result(0), Ok(()));
        assert_eq!(rmp_result(1), Err(RmpError::FailInput));
        assert_eq!(rmp_result(2), Err(RmpError::FailPermission));
        assert_eq!(rmp_result(3), Err(RmpError::FailInUse));
        assert_eq!(rmp_result(6), Err(RmpError::FailSizeMismatch));
        assert_eq!(rmp_result(0x10), Err(RmpError::FailInput));
        assert_eq!(pvalidate_outcome(0, true), Ok(PvalidateOutcome::Unchanged));
        assert_eq!(pvalidate_outcome(0, false), Ok(PvalidateOutcome::Changed));
        assert_eq!(pvalidate_outcome(6, true), Err(RmpError::FailSizeMismatch));
    }

    #[test]
    fn only_guest_ram_outside_vigil_is_reachable() {
        let vigil = (0, 16 << 20);
        let end = 48 << 20;
        assert!(guest_page(16 << 20, vigil, end));
        assert!(guest_page(end - 4096, vigil, end));
        assert!(!guest_page(end, vigil, end));
        assert!(!guest_page((16 << 20) - 4096, vigil, end));
        assert!(!guest_page(0x7fd000, vigil, end));
        assert!(!guest_page(!0xfff, vigil, end));
        // A Vigil region in the middle of RAM: pages on both sides are guest pages.
        let mid = (0x100000, 0x800000);
        assert!(guest_page(0xff000, mid, end));
        assert!(guest_page(0x800000, mid, end));
        assert!(!guest_page(0x7ff000, mid, end));
    }
}
