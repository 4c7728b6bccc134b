//! The SNP backend of the kernel seam (`KernelPlatform` on SEV-SNP): console on COM1
//! through the GHCB IOIO exit, exits as GHCB MSR-protocol termination requests, CPUID
//! from the CPUID page. The boot sequence that sets these up is `snp::boot`.
//!
//! Termination (#56421, MSR protocol "Termination Request", reason set 1 = Vigil's,
//! codes in `svsm_abi::ghcb::term`): writing the GHCB MSR and VMGEXIT do not raise #VC,
//! so it works at every point of the boot, before the GHCB page exists too. Until the
//! GHCB page is registered the console drops its output (a port write would raise #VC
//! for an exit that cannot be made yet); the termination reason then says why the boot
//! ended.

use svsm_abi::ghcb::term;

use crate::exit::ExitCode;

/// The GHCB MSR value that asks the host to terminate the guest with `reason`
/// (Vigil's reason set, [`svsm_abi::ghcb::term::SET_SVSM`]).
pub const fn termination_request(reason: u64) -> u64 {
    svsm_abi::ghcb::msr::terminate(term::SET_SVSM, reason)
}

/// The termination reason for an end of the run with `code`.
pub const fn exit_reason(code: ExitCode) -> u64 {
    match code {
        ExitCode::Success => term::EXIT_SUCCESS,
        ExitCode::TestsFailed => term::EXIT_TESTS_FAILED,
        ExitCode::Fatal => term::EXIT_FATAL,
    }
}

/// The SNP platform (its state is the GHCB page and the CPUID table in `snp`).
#[cfg(target_os = "none")]
pub struct Snp;

/// The one instance `platform::install_snp` installs.
#[cfg(target_os = "none")]
pub static SNP: Snp = Snp;

#[cfg(target_os = "none")]
impl super::KernelPlatform for Snp {
    fn name(&self) -> &'static str {
        "snp (COM1 through the GHCB, CPUID page, GHCB termination)"
    }

    fn console_write(&self, bytes: &[u8]) {
        use crate::snp::ghcb::{page, Exit, GhcbError};
        for &b in bytes {
            for out in [b'\r', b] {
                if out == b'\r' && b != b'\n' {
                    continue;
                }
                let e = Exit::Out {
                    port: crate::console::serial::COM1,
                    bytes: 1,
                    value: u32::from(out),
                };
                match page::call(&e) {
                    // No GHCB yet, or a report from inside another exit: dropped.
                    Ok(_) | Err(GhcbError::NotReady | GhcbError::Busy) => {}
                    // The host refused console output: nothing can be said any more.
                    Err(err) => terminate(err.reason()),
                }
            }
        }
    }

    fn exit(&self, code: ExitCode) -> ! {
        terminate(exit_reason(code))
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
        crate::snp::cpuid_answer(leaf, subleaf)
    }

    fn apic_id(&self) -> u32 {
        // The CPUID page's leaf 1 EBX[31:24]: the boot CPU's initial APIC ID (the page
        // is the same for every vCPU; APs will take theirs from their VMSA setup).
        self.cpuid(1, 0).1 >> 24
    }
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
    use svsm_abi::ghcb::msr;

    #[test]
    fn not_yet_is_a_termination_request_with_its_own_reason() {
        let v = termination_request(term::SNP_NOT_YET);
        assert_eq!(v & msr::INFO_MASK, msr::TERMINATE_REQ);
        assert_eq!((v >> 12) & 0xf, term::SET_SVSM);
        assert_eq!((v >> 16) & 0xff, term::SNP_NOT_YET);
        assert_ne!(term::SNP_NOT_YET, term::SEV_ES_WITHOUT_SNP);
    }

    #[test]
    fn every_exit_code_has_its_own_reason_distinct_from_the_boot_reasons() {
        let reasons = [
            exit_reason(ExitCode::Success),
            exit_reason(ExitCode::TestsFailed),
            exit_reason(ExitCode::Fatal),
        ];
        assert_eq!(reasons, [0x20, 0x21, 0x22]);
        for r in reasons {
            assert!(r <= 0xff, "reason codes are 8 bits");
            assert_ne!(r, term::SNP_NOT_YET);
            assert_ne!(r, term::VC_UNEXPECTED);
        }
    }
}
