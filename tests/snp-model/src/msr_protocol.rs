//! The host's side of the GHCB MSR protocol (GHCB spec #56421 §2.3.1, "GHCB MSR
//! protocol"), answered as KVM's `sev_handle_vmgexit_msr_protocol` answers.
//!
//! GHCBInfo (bits 11:0) is the request code; the data is in bits 63:12. A guest writes
//! the request into the GHCB MSR and VMGEXITs; the host writes the response into the
//! same MSR (per VMSA) before it resumes the guest.

use crate::host::{Action, Host};
use crate::memory::Memory;
use crate::psc::{self, Op};
use crate::rmp::{Rmp, PAGE_SIZE};

/// Request and response codes (GHCB spec table "GHCB MSR protocol"; Linux sev-common.h).
pub mod code {
    /// SEV information response.
    pub const SEV_INFO_RESP: u64 = 0x001;
    /// SEV information request.
    pub const SEV_INFO_REQ: u64 = 0x002;
    /// CPUID request.
    pub const CPUID_REQ: u64 = 0x004;
    /// CPUID response.
    pub const CPUID_RESP: u64 = 0x005;
    /// AP reset hold request.
    pub const AP_RESET_HOLD_REQ: u64 = 0x006;
    /// AP reset hold response.
    pub const AP_RESET_HOLD_RESP: u64 = 0x007;
    /// GHCB GPA registration request.
    pub const REG_GPA_REQ: u64 = 0x012;
    /// GHCB GPA registration response.
    pub const REG_GPA_RESP: u64 = 0x013;
    /// Page state change request.
    pub const PSC_REQ: u64 = 0x014;
    /// Page state change response.
    pub const PSC_RESP: u64 = 0x015;
    /// Run at VMPL request.
    pub const VMPL_REQ: u64 = 0x016;
    /// Run at VMPL response.
    pub const VMPL_RESP: u64 = 0x017;
    /// Hypervisor features request.
    pub const HV_FT_REQ: u64 = 0x080;
    /// Hypervisor features response.
    pub const HV_FT_RESP: u64 = 0x081;
    /// Termination request.
    pub const TERM_REQ: u64 = 0x100;
}

/// GHCBInfo mask.
pub const INFO_MASK: u64 = 0xfff;
/// Highest GHCB protocol version the host speaks (KVM `GHCB_VERSION_MAX`).
pub const GHCB_VERSION_MAX: u64 = 2;
/// Lowest (KVM `GHCB_VERSION_MIN`).
pub const GHCB_VERSION_MIN: u64 = 1;
/// KVM's generic PSC error: bit 63 with the PSC response code (`GHCB_MSR_PSC_RESP_ERROR`).
pub const PSC_RESP_ERROR: u64 = (1 << 63) | code::PSC_RESP;

/// One MSR-protocol exit of vCPU `vcpu` at `vmpl` with GHCB MSR value `msr`.
/// Returns the new GHCB MSR value and what to do.
pub fn handle(
    host: &mut Host,
    mem: &mut Memory,
    rmp: &mut Rmp,
    vcpu: u32,
    vmpl: u8,
    msr: u64,
) -> (u64, Action) {
    match msr & INFO_MASK {
        // SEV_INFO: versions and the C-bit (KVM `GHCB_MSR_SEV_INFO`): bits 63:48 max,
        // 47:32 min, 31:24 C-bit position.
        code::SEV_INFO_REQ => (
            (GHCB_VERSION_MAX << 48)
                | (GHCB_VERSION_MIN << 32)
                | (u64::from(crate::cpuid::C_BIT) << 24)
                | code::SEV_INFO_RESP,
            Action::Resume,
        ),
        code::CPUID_REQ => (cpuid(msr), Action::Resume),
        // AP reset hold: KVM presets the result bits 63:12 to 0 ("non-SIPI return"),
        // answers 0x007 and halts the vCPU until a SIPI.
        code::AP_RESET_HOLD_REQ => (code::AP_RESET_HOLD_RESP, Action::Halt),
        // Registration: KVM records the GFN and echoes it; it does not check it here.
        code::REG_GPA_REQ => {
            let gfn = msr >> 12;
            if let Some(c) = host.vcpu_mut(vcpu) {
                c.ghcb[usize::from(vmpl & 3)] = Some(gfn * PAGE_SIZE);
            }
            ((gfn << 12) | code::REG_GPA_RESP, Action::Resume)
        }
        code::PSC_REQ => (psc_msr(mem, rmp, msr), Action::Resume),
        code::VMPL_REQ => vmpl_req(host, vcpu, msr),
        code::HV_FT_REQ => (
            (host.profile.hv_features << 12) | code::HV_FT_RESP,
            Action::Resume,
        ),
        // Termination: bits 15:12 reason set, 23:16 reason code.
        code::TERM_REQ => (
            msr,
            Action::Terminate {
                set: ((msr >> 12) & 0xf) as u8,
                code: ((msr >> 16) & 0xff) as u8,
            },
        ),
        // Unknown request: KVM logs it and keeps the GHCB MSR value as it is.
        _ => (msr, Action::Resume),
    }
}

/// CPUID: bits 63:32 the function, 31:30 the register (0 EAX .. 3 EDX). KVM answers
/// with ECX = 0 and rewrites only bits 63:32 and 11:0, so the register selector stays.
fn cpuid(msr: u64) -> u64 {
    let func = (msr >> 32) as u32;
    let reg = ((msr >> 30) & 3) as usize;
    let value = crate::cpuid::cpuid(func, 0)[reg];
    (u64::from(value) << 32) | (msr & (3 << 30)) | code::CPUID_RESP
}

/// PSC by MSR: bits 55:52 the operation (1 private, 2 shared), 51:12 the GFN (KVM
/// `snp_begin_psc_msr`). Any other operation, or a GFN outside memory (the VMM's
/// KVM_HC_MAP_GPA_RANGE fails), is `PSC_RESP_ERROR`; success is 0x015 with bits 63:32 = 0.
fn psc_msr(mem: &mut Memory, rmp: &mut Rmp, msr: u64) -> u64 {
    let op = match (msr >> 52) & 0xf {
        1 => Op::Private,
        2 => Op::Shared,
        _ => return PSC_RESP_ERROR,
    };
    let gfn = (msr >> 12) & ((1 << 40) - 1);
    match psc::convert(mem, rmp, gfn * PAGE_SIZE, 1, op) {
        Ok(()) => code::PSC_RESP,
        Err(_) => PSC_RESP_ERROR,
    }
}

/// Run at VMPL (GHCB spec v2.03+, "VMPL Request"): bits 39:32 the VMPL. The response
/// 0x017 carries an error code in bits 63:32 (bits 31:12 zero), 0 on success; the
/// requester sees it when it runs again. A VMPL above 3 gets error 1 without a switch,
/// as in the planes KVM branch (`GHCB_MSR_VMPL_REQ` in `sev_handle_vmgexit_msr_protocol`;
/// upstream KVM has no VMPL switching). For a VMPL with no VMSA on this vCPU the planes
/// branch fails KVM_RUN; the model answers error 1 too, so that a guest can see it.
fn vmpl_req(host: &Host, vcpu: u32, msr: u64) -> (u64, Action) {
    let target = (msr >> 32) & 0xff;
    if !host.has_vmsa(vcpu, target) {
        return ((1 << 32) | code::VMPL_RESP, Action::Resume);
    }
    (code::VMPL_RESP, Action::RunVmpl(target as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Profile;

    fn setup() -> (Host, Memory, Rmp) {
        (
            Host::new(Profile::default(), 2, 1),
            Memory::new(0x10_0000),
            Rmp::new(0x100),
        )
    }

    fn run(msr: u64) -> (u64, Action) {
        let (mut h, mut m, mut r) = setup();
        handle(&mut h, &mut m, &mut r, 0, 0, msr)
    }

    #[test]
    fn sev_info_gives_versions_and_c_bit() {
        assert_eq!(run(0x002), (0x0002_0001_3300_0001, Action::Resume));
    }

    #[test]
    fn cpuid_answers_each_register_and_keeps_the_selector() {
        let leaf = crate::cpuid::cpuid(0x8000_001f, 0);
        for reg in 0..4u64 {
            let (v, a) = run((0x8000_001f << 32) | (reg << 30) | 0x004);
            assert_eq!(a, Action::Resume);
            assert_eq!(v & 0xfff, 0x005);
            assert_eq!((v >> 30) & 3, reg);
            assert_eq!((v >> 32) as u32, leaf[reg as usize]);
        }
    }

    #[test]
    fn hv_features_include_multi_vmpl() {
        let (v, _) = run(0x080);
        assert_eq!(v & 0xfff, 0x081);
        assert_eq!(v >> 12, 0b10_0011);
    }

    #[test]
    fn register_gpa_echoes_and_records_per_vmpl() {
        let (mut h, mut m, mut r) = setup();
        let (v, a) = handle(&mut h, &mut m, &mut r, 1, 2, (0x1234 << 12) | 0x012);
        assert_eq!((v, a), ((0x1234 << 12) | 0x013, Action::Resume));
        assert_eq!(h.vcpu(1).unwrap().ghcb[2], Some(0x123_4000));
        assert_eq!(h.vcpu(1).unwrap().ghcb[0], None);
    }

    #[test]
    fn psc_flips_the_rmp_and_refuses_bad_ops_and_gfns() {
        let (mut h, mut m, mut r) = setup();
        let (v, _) = handle(
            &mut h,
            &mut m,
            &mut r,
            0,
            0,
            (1 << 52) | (0x20 << 12) | 0x014,
        );
        assert_eq!(v, 0x015);
        assert!(r.entry(0x2_0000).unwrap().assigned);
        assert!(!r.entry(0x2_0000).unwrap().validated);
        let (v, _) = handle(
            &mut h,
            &mut m,
            &mut r,
            0,
            0,
            (2 << 52) | (0x20 << 12) | 0x014,
        );
        assert_eq!(v, 0x015);
        assert!(!r.entry(0x2_0000).unwrap().assigned);
        // Operation 3 (PSMASH) and a GFN beyond memory.
        assert_eq!(run((3 << 52) | (0x20 << 12) | 0x014).0, PSC_RESP_ERROR);
        assert_eq!(run((1 << 52) | (0x100 << 12) | 0x014).0, PSC_RESP_ERROR);
    }

    #[test]
    fn vmpl_request_switches_only_to_a_vmpl_with_a_vmsa() {
        let (mut h, mut m, mut r) = setup();
        // VMPL2 asks for VMPL0: VMPL0 has its launch VMSA.
        assert_eq!(
            handle(&mut h, &mut m, &mut r, 0, 2, 0x016),
            (0x017, Action::RunVmpl(0))
        );
        // VMPL0 asks for VMPL2, which has no VMSA yet; VMPL 9 does not exist.
        assert_eq!(
            handle(&mut h, &mut m, &mut r, 0, 0, (2 << 32) | 0x016),
            ((1 << 32) | 0x017, Action::Resume)
        );
        assert_eq!(
            handle(&mut h, &mut m, &mut r, 0, 0, (9 << 32) | 0x016),
            ((1 << 32) | 0x017, Action::Resume)
        );
    }

    #[test]
    fn reset_hold_termination_and_unknown_requests() {
        assert_eq!(run(0x006), (0x007, Action::Halt));
        assert_eq!(
            run((0x03 << 16) | (0x1 << 12) | 0x100),
            (
                (0x03 << 16) | (0x1 << 12) | 0x100,
                Action::Terminate { set: 1, code: 3 }
            )
        );
        assert_eq!(run(0xabc_0ff0), (0xabc_0ff0, Action::Resume));
    }
}
