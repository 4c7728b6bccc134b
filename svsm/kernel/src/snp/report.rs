//! The boot's guest-request check on SNP: before the guest runs, the monitor asks the
//! security processor for one VMPL0 report over [`DATA`] through its own VMPCK0
//! channel (`Monitor::boot_report`: MSG_REPORT_REQ sealed with AES-256-GCM, SNP
//! firmware ABI #56860 "Guest Messages", sent through the GHCB guest-request exit of
//! `SnpPlatform`). The monitor checks the answer (tag, sequence number, type, status,
//! size, REPORT_DATA echoed, VMPL 0) and ends the VM with VMPCK0 wiped on any
//! deviation; here the report's version and the first MEASUREMENT bytes are read out
//! for the boot log.
//!
//! Going through the monitor's channel (not a channel of the boot's own) keeps the
//! sequence numbers in step: the security processor expects the guest's first
//! attestation request to continue where this check left off.

use monitor::platform::TermReason;
use monitor::Monitor;
use svsm_abi::report::AttestationReport;
use zerocopy::FromBytes;

use super::platform::SnpPlatform;

/// The REPORT_DATA the check asks for ("VIGIL-BOOT" then zeros).
pub const DATA: [u8; 64] = {
    let mut d = [0u8; 64];
    let s = b"VIGIL-BOOT";
    let mut i = 0;
    while i < s.len() {
        d[i] = s[i];
        i += 1;
    }
    d
};

/// Asks the monitor for the boot report; returns the report's version and its
/// MEASUREMENT (the launch digest). On a failed request the monitor has
/// already asked the host to terminate (which does not return on SNP); the reason is
/// returned for the caller to end the boot with.
pub fn check(m: &mut Monitor<SnpPlatform>) -> Result<(u32, [u8; 48]), TermReason> {
    let raw = m.boot_report(&DATA)?;
    let r = AttestationReport::read_from_bytes(&raw).map_err(|_| TermReason::GuestRequestFailed)?;
    Ok((r.version, r.measurement))
}
