//! What the guest may do outside the SVSM protocol, decided in one place: CPUID, MSRs and
//! port I/O (every access not passed through exits to Vigil and lands here).
//!
//! * CPUID: the real CPU's answer, with what the guest must not believe it has removed:
//!   SVM (leaf 0x8000_0001 ECX bit 2, and leaf 0x8000_000A), and SEV/SNP (leaf
//!   0x8000_001F). Vigil is the only hypervisor here; a guest that tried nested SVM or
//!   SEV would only fail later in stranger ways.
//! * MSRs: an allow list. The GHCB MSR (0xC001_0130) is virtual, one per vCPU: it is how
//!   the guest asks for the SVSM (the GHCB MSR protocol's "run VMPL 0" request before
//!   VMGEXIT), as on SNP. EFER reads return the VMCB's value. TSC reads are allowed.
//!   SEV_STATUS (0xC001_0131) reads 0: the guest is not encrypted here, and reading it
//!   is how a guest (Linux, the test guest) tells SNP from no SEV; writes get #GP as on
//!   SNP. Every other MSR access gets #GP, as a real CPU gives for an absent MSR.
//! * Ports: COM1 (0x3F8-0x3FF) is passed through in the I/O permission map and never
//!   exits. Port 0xF4 (isa-debug-exit) exits so that Vigil has the last word: it writes
//!   the evidence and its statistics, then forwards the guest's value to the device.
//!   Every other port: reads return all ones, writes are dropped (an absent device).

/// The GHCB MSR (defined once in `svsm-abi`).
pub use svsm_abi::ghcb::MSR_GHCB;
/// EFER.
pub const MSR_EFER: u32 = 0xc000_0080;
/// TSC.
pub const MSR_TSC: u32 = 0x10;
use svsm_abi::ghcb::msr;
/// SEV_STATUS (defined once in `svsm-abi`).
pub use svsm_abi::sev_status::MSR_SEV_STATUS;

/// The debug-exit port (the kernel's own, `crate::exit`).
pub use crate::exit::DEBUG_EXIT_PORT as PORT_DEBUG_EXIT;
/// COM1's ports, passed through.
pub const COM1: core::ops::RangeInclusive<u16> = 0x3f8..=0x3ff;

/// Filters a CPUID answer for the guest.
pub fn cpuid_for_guest(leaf: u32, _subleaf: u32, r: (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
    let (a, b, c, d) = r;
    match leaf {
        0x8000_0001 => (a, b, c & !(1 << 2), d),
        0x8000_000a | 0x8000_001f => (0, 0, 0, 0),
        _ => (a, b, c, d),
    }
}

/// The outcome of an MSR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAction {
    /// Read: the value. Write: done.
    Ok(u64),
    /// Inject #GP(0).
    Gp,
}

/// The value of a read of `msr` that the policy answers with a constant, or `None`
/// (the caller decides: the per-vCPU MSRs, or #GP). SEV_STATUS is 0 on `emulated`: no
/// SEV, SEV-ES or SNP bit (APM vol. 2 15.34.10), so the guest takes its unencrypted path.
pub fn fixed_msr_read(msr: u32) -> Option<u64> {
    match msr {
        MSR_SEV_STATUS => Some(0),
        _ => None,
    }
}

/// Whether the GHCB MSR value asks for the SVSM at VMPL 0.
pub fn is_svsm_request(ghcb_msr: u64) -> bool {
    ghcb_msr & msr::INFO_MASK == msr::RUN_VMPL_REQ && (ghcb_msr >> 32) & 0xff == 0
}

/// Whether the I/O permission map passes `port` through.
pub fn port_passed_through(port: u16) -> bool {
    COM1.contains(&port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_hides_svm_and_sev() {
        let all = (u32::MAX, u32::MAX, u32::MAX, u32::MAX);
        assert_eq!(cpuid_for_guest(0x8000_0001, 0, all).2 & (1 << 2), 0);
        assert_eq!(cpuid_for_guest(0x8000_000a, 0, all), (0, 0, 0, 0));
        assert_eq!(cpuid_for_guest(0x8000_001f, 0, all), (0, 0, 0, 0));
        assert_eq!(cpuid_for_guest(1, 0, all), all);
    }

    #[test]
    fn svsm_requests_are_recognised() {
        assert!(is_svsm_request(0x016));
        assert!(!is_svsm_request(0x016 | (2 << 32)));
        assert!(!is_svsm_request(0x014));
    }

    #[test]
    fn sev_status_reads_zero_and_nothing_else_is_fixed() {
        assert_eq!(MSR_SEV_STATUS, 0xc001_0131);
        assert_eq!(fixed_msr_read(MSR_SEV_STATUS), Some(0));
        for m in [MSR_GHCB, MSR_EFER, MSR_TSC, 0xc001_0117, 0xc001_0132] {
            assert_eq!(fixed_msr_read(m), None, "{m:#x}");
        }
    }

    #[test]
    fn only_com1_passes() {
        assert!(port_passed_through(0x3f8));
        assert!(port_passed_through(0x3ff));
        assert!(!port_passed_through(PORT_DEBUG_EXIT));
        assert!(!port_passed_through(0x80));
    }
}
