//! The GHCB MSR protocol (GHCB spec #56421 §2.3.1; values from `svsm_abi::ghcb::msr`):
//! a request in the GHCB MSR, VMGEXIT, the response in the same MSR. Once a GHCB page is
//! registered the MSR is set back to its GPA after each request.

use core::sync::atomic::{AtomicU64, Ordering};

use svsm_abi::ghcb::msr;

use super::instr::{halt, rdmsr, vmgexit, wrmsr, MSR_GHCB};

/// The registered GHCB page's GPA (0 until registered).
pub static GHCB_GPA: AtomicU64 = AtomicU64::new(0);

/// One request; returns the response.
pub fn request(value: u64) -> u64 {
    wrmsr(MSR_GHCB, value);
    vmgexit();
    let resp = rdmsr(MSR_GHCB);
    let gpa = GHCB_GPA.load(Ordering::Relaxed);
    if gpa != 0 {
        wrmsr(MSR_GHCB, gpa);
    }
    resp
}

/// Ask the host to end the VM: reason set 1, `code` (0 = success).
pub fn terminate(code: u64) -> ! {
    wrmsr(MSR_GHCB, msr::terminate(1, code));
    vmgexit();
    halt()
}

/// SEV information: (lowest, highest GHCB protocol version, C-bit) or `None` for an
/// answer that is not a SEV information response.
pub fn sev_info() -> Option<(u16, u16, u8)> {
    let r = request(msr::SEV_INFO_REQ);
    (r & msr::INFO_MASK == msr::SEV_INFO_RESP).then(|| {
        (
            msr::sev_info_min(r),
            msr::sev_info_max(r),
            msr::sev_info_cbit(r),
        )
    })
}

/// Hypervisor features bitmap, or `None`.
pub fn hv_features() -> Option<u64> {
    let r = request(msr::HV_FEATURES_REQ);
    (r & msr::INFO_MASK == msr::HV_FEATURES_RESP).then(|| msr::hv_features(r))
}

/// Page state change of one 4 KiB page (`op`: `svsm_abi::ghcb::psc_op`): the error code
/// (0 = done), or `u32::MAX` for an answer that is not a PSC response.
pub fn page_state(gpa: u64, op: u64) -> u32 {
    let r = request(msr::psc_request(gpa >> 12, op));
    if r & msr::INFO_MASK != msr::PSC_RESP {
        return u32::MAX;
    }
    msr::psc_error(r)
}

/// Register `gpa` as this vCPU's GHCB; true when the host echoes its GFN.
pub fn register_ghcb(gpa: u64) -> bool {
    let r = request(msr::register_ghcb_request(gpa >> 12));
    let ok = r & msr::INFO_MASK == msr::REGISTER_GHCB_RESP && msr::gfn_of(r) == gpa >> 12;
    if ok {
        GHCB_GPA.store(gpa, Ordering::Relaxed);
        wrmsr(MSR_GHCB, gpa);
    }
    ok
}
