//! The SNP backend of the kernel seam: not written yet (issue 10, "the backend").
//!
//! What exists is the explicit "not yet": on an SNP (or SEV-ES) machine the kernel
//! must neither touch a port nor run CPUID (both raise #VC, and no #VC handler exists
//! yet), so it ends the boot the one way that needs neither: a GHCB MSR-protocol
//! termination request (#56421, MSR protocol "termination request", reason set 1 =
//! SVSM) followed by VMGEXIT. Writing the GHCB MSR and VMGEXIT do not raise #VC. The
//! host sees the reason code; nothing is printed (there is no console without a GHCB).

/// The GHCB MSR value that asks the host to terminate the guest with `reason`
/// (Vigil's reason set, [`svsm_abi::ghcb::term::SET_SVSM`]).
pub const fn termination_request(reason: u64) -> u64 {
    svsm_abi::ghcb::msr::terminate(svsm_abi::ghcb::term::SET_SVSM, reason)
}

/// Ends an SNP boot: the SNP backend is not implemented yet.
#[cfg(target_os = "none")]
pub fn not_yet() -> ! {
    terminate(svsm_abi::ghcb::term::SNP_NOT_YET)
}

/// Asks the host to terminate the guest with `reason`, through the GHCB MSR protocol.
/// If the host resumes the guest anyway, the CPU halts forever (the request is not
/// retried: a host that ignores it can stop the VM in any case).
#[cfg(target_os = "none")]
pub fn terminate(reason: u64) -> ! {
    // SAFETY: the GHCB MSR exists on every SEV-ES/SNP guest, the only machines that
    // reach this function (`detect::choose`); writing it changes no state Rust relies on.
    unsafe { crate::cpu::instr::wrmsr(svsm_abi::ghcb::MSR_GHCB, termination_request(reason)) };
    loop {
        crate::cpu::instr::vmgexit();
        crate::cpu::instr::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svsm_abi::ghcb::{msr, term};

    #[test]
    fn not_yet_is_a_termination_request_with_its_own_reason() {
        let v = termination_request(term::SNP_NOT_YET);
        assert_eq!(v & msr::INFO_MASK, msr::TERMINATE_REQ);
        assert_eq!((v >> 12) & 0xf, term::SET_SVSM);
        assert_eq!((v >> 16) & 0xff, term::SNP_NOT_YET);
        assert_ne!(term::SNP_NOT_YET, term::SEV_ES_WITHOUT_SNP);
    }
}
