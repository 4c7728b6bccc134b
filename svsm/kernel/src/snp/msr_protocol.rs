//! The GHCB MSR protocol (#56421, section "GHCB MSR Protocol"): requests written to the
//! GHCB MSR (0xC001_0130), VMGEXIT, and the host's response read back from the same
//! MSR. It needs no shared page, so Vigil uses it before its GHCB page exists: SEV
//! information, hypervisor features, the page-state change that makes the GHCB page
//! shared, the GHCB registration, and termination.
//!
//! Every response is the host's word: [`check`] refuses a response whose GHCBInfo (bits
//! 11:0) is not the one that answers the request, and the per-request checks refuse
//! values Vigil cannot work with, each by name ([`MsrProtocolError`]) and each mapped to
//! the termination reason that ends the boot ([`MsrProtocolError::reason`]).

use core::fmt;

use svsm_abi::ghcb::{hv_feature, msr, psc_op, term, GHCB_PROTOCOL_VERSION};

/// What the SEV information response told Vigil, after [`check_sev_info`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SevInfo {
    /// Lowest GHCB protocol version the host speaks.
    pub min: u16,
    /// Highest.
    pub max: u16,
    /// The C-bit position the host claims (checked against the CPUID page's).
    pub c_bit: u8,
}

/// A refused MSR-protocol response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrProtocolError {
    /// GHCBInfo (bits 11:0) is not the response code that answers the request.
    WrongResponse {
        /// The response code expected.
        expected: u64,
        /// The whole value read back.
        got: u64,
    },
    /// The host's protocol range min..=max excludes [`GHCB_PROTOCOL_VERSION`].
    VersionUnsupported {
        /// Lowest version.
        min: u16,
        /// Highest version.
        max: u16,
    },
    /// The host's C-bit position differs from the CPUID page's.
    CBitMismatch {
        /// The host's word.
        host: u8,
        /// The CPUID page's.
        cpuid_page: u8,
    },
    /// A hypervisor feature Vigil needs is missing.
    FeatureMissing {
        /// The bitmap the host offered.
        offered: u64,
        /// The bits missing from it.
        missing: u64,
    },
    /// The registration response names another GFN than the request.
    RegisteredOtherGfn {
        /// The GFN asked for.
        asked: u64,
        /// The GFN the host answered with.
        answered: u64,
    },
    /// The page state change failed (bits 63:32 of the response).
    PageStateChange {
        /// The host's error code.
        error: u32,
    },
}

impl MsrProtocolError {
    /// The termination reason (set 1) that ends the boot on this error.
    pub const fn reason(&self) -> u64 {
        match self {
            MsrProtocolError::WrongResponse { .. } | MsrProtocolError::CBitMismatch { .. } => {
                term::HOST_INCONSISTENT
            }
            MsrProtocolError::VersionUnsupported { .. } => term::GHCB_VERSION,
            MsrProtocolError::FeatureMissing { .. } => term::HV_FEATURES,
            MsrProtocolError::RegisteredOtherGfn { .. } => term::GHCB_REGISTER,
            MsrProtocolError::PageStateChange { .. } => term::PAGE_STATE,
        }
    }
}

impl fmt::Display for MsrProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsrProtocolError::WrongResponse { expected, got } => write!(
                f,
                "GHCB MSR response {got:#x}: GHCBInfo {:#x}, expected {expected:#x}",
                got & msr::INFO_MASK
            ),
            MsrProtocolError::VersionUnsupported { min, max } => write!(
                f,
                "host speaks GHCB protocol {min}..={max}, Vigil needs {GHCB_PROTOCOL_VERSION}"
            ),
            MsrProtocolError::CBitMismatch { host, cpuid_page } => write!(
                f,
                "host says C-bit {host}, the CPUID page says {cpuid_page}"
            ),
            MsrProtocolError::FeatureMissing { offered, missing } => write!(
                f,
                "hypervisor features {offered:#x} lack {missing:#x} (SNP)"
            ),
            MsrProtocolError::RegisteredOtherGfn { asked, answered } => write!(
                f,
                "GHCB registration asked for GFN {asked:#x}, host answered {answered:#x}"
            ),
            MsrProtocolError::PageStateChange { error } => {
                write!(f, "page state change refused, host error {error:#x}")
            }
        }
    }
}

/// Checks that `resp` carries the response code `expected` in GHCBInfo.
pub fn check(resp: u64, expected: u64) -> Result<u64, MsrProtocolError> {
    if resp & msr::INFO_MASK != expected {
        return Err(MsrProtocolError::WrongResponse {
            expected,
            got: resp,
        });
    }
    Ok(resp)
}

/// Checks the SEV information response: the right code, a version range that contains
/// [`GHCB_PROTOCOL_VERSION`] (SNP needs version 2: #56421, "GHCB protocol version"),
/// and the same C-bit position as the CPUID page (`cpuid_c_bit`), which is the trusted
/// one; a host that disagrees is inconsistent.
pub fn check_sev_info(resp: u64, cpuid_c_bit: u8) -> Result<SevInfo, MsrProtocolError> {
    let resp = check(resp, msr::SEV_INFO_RESP)?;
    let info = SevInfo {
        min: msr::sev_info_min(resp),
        max: msr::sev_info_max(resp),
        c_bit: msr::sev_info_cbit(resp),
    };
    if !(info.min..=info.max).contains(&GHCB_PROTOCOL_VERSION) {
        return Err(MsrProtocolError::VersionUnsupported {
            min: info.min,
            max: info.max,
        });
    }
    if info.c_bit != cpuid_c_bit {
        return Err(MsrProtocolError::CBitMismatch {
            host: info.c_bit,
            cpuid_page: cpuid_c_bit,
        });
    }
    Ok(info)
}

/// The hypervisor features Vigil cannot boot without: SNP itself (#56421, "Hypervisor
/// Feature Support": an SNP guest must terminate when bit 0 is clear). Multi-VMPL and AP
/// creation are needed by the monitor's part of the backend, not checked yet.
pub const REQUIRED_HV_FEATURES: u64 = hv_feature::SNP;

/// Checks the hypervisor feature response and returns the bitmap.
pub fn check_hv_features(resp: u64) -> Result<u64, MsrProtocolError> {
    let offered = msr::hv_features(check(resp, msr::HV_FEATURES_RESP)?);
    let missing = REQUIRED_HV_FEATURES & !offered;
    if missing != 0 {
        return Err(MsrProtocolError::FeatureMissing { offered, missing });
    }
    Ok(offered)
}

/// Checks the register-GHCB-GPA response: the right code and the GFN asked for
/// (#56421: "If the hypervisor cannot register the GPA, it returns 0xFFF...F in the GFN
/// field", which is a different GFN and refused the same way).
pub fn check_register(resp: u64, gfn: u64) -> Result<(), MsrProtocolError> {
    let answered = msr::gfn_of(check(resp, msr::REGISTER_GHCB_RESP)?);
    if answered != gfn {
        return Err(MsrProtocolError::RegisteredOtherGfn {
            asked: gfn,
            answered,
        });
    }
    Ok(())
}

/// Checks a page-state-change response: the right code and error code 0.
pub fn check_psc(resp: u64) -> Result<(), MsrProtocolError> {
    let error = msr::psc_error(check(resp, msr::PSC_RESP)?);
    if error != 0 {
        return Err(MsrProtocolError::PageStateChange { error });
    }
    Ok(())
}

/// The page-state-change request that makes the 4 KiB page `gfn` shared.
pub const fn psc_shared_request(gfn: u64) -> u64 {
    msr::psc_request(gfn, psc_op::SHARED)
}

/// One MSR-protocol exchange: writes `request` to the GHCB MSR, VMGEXITs and returns
/// what the host left in the MSR. The caller restores the GHCB GPA afterwards if a
/// GHCB page is registered ([`super::ghcb`] writes it before every page-based exit).
#[cfg(target_os = "none")]
pub fn exchange(request: u64) -> u64 {
    use crate::cpu::instr::{rdmsr, vmgexit, wrmsr};
    use svsm_abi::ghcb::MSR_GHCB;
    // SAFETY: the GHCB MSR exists on every SNP guest (the only machines that reach the
    // SNP path); writing and reading it changes no state Rust relies on.
    unsafe { wrmsr(MSR_GHCB, request) };
    vmgexit();
    // SAFETY: as above.
    unsafe { rdmsr(MSR_GHCB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sev_info_accepts_a_range_with_version_2_and_the_page_c_bit() {
        let r = msr::sev_info_response(1, 2, 51);
        assert_eq!(
            check_sev_info(r, 51),
            Ok(SevInfo {
                min: 1,
                max: 2,
                c_bit: 51
            })
        );
    }

    #[test]
    fn sev_info_refuses_old_hosts_wrong_codes_and_another_c_bit() {
        let e = check_sev_info(msr::sev_info_response(1, 1, 51), 51).unwrap_err();
        assert_eq!(e, MsrProtocolError::VersionUnsupported { min: 1, max: 1 });
        assert_eq!(e.reason(), term::GHCB_VERSION);
        let e = check_sev_info(msr::sev_info_response(3, 4, 51), 51).unwrap_err();
        assert_eq!(e, MsrProtocolError::VersionUnsupported { min: 3, max: 4 });
        let e = check_sev_info(msr::sev_info_response(1, 2, 47), 51).unwrap_err();
        assert_eq!(
            e,
            MsrProtocolError::CBitMismatch {
                host: 47,
                cpuid_page: 51
            }
        );
        assert_eq!(e.reason(), term::HOST_INCONSISTENT);
        // The request code echoed back is not a response.
        let e = check_sev_info(msr::SEV_INFO_REQ, 51).unwrap_err();
        assert!(matches!(
            e,
            MsrProtocolError::WrongResponse { expected: 1, .. }
        ));
        assert!(std::format!("{e}").contains("GHCBInfo 0x2"));
    }

    #[test]
    fn hv_features_need_snp() {
        let resp = |bits: u64| (bits << 12) | msr::HV_FEATURES_RESP;
        assert_eq!(check_hv_features(resp(0b10_0011)), Ok(0b10_0011));
        let e = check_hv_features(resp(hv_feature::SNP_AP_CREATION)).unwrap_err();
        assert_eq!(
            e,
            MsrProtocolError::FeatureMissing {
                offered: hv_feature::SNP_AP_CREATION,
                missing: hv_feature::SNP
            }
        );
        assert_eq!(e.reason(), term::HV_FEATURES);
        assert!(matches!(
            check_hv_features(resp(1) & !0xfff | msr::SEV_INFO_RESP),
            Err(MsrProtocolError::WrongResponse { .. })
        ));
    }

    #[test]
    fn registration_must_echo_the_gfn() {
        let gfn = 0x137;
        assert_eq!(
            check_register((gfn << 12) | msr::REGISTER_GHCB_RESP, gfn),
            Ok(())
        );
        let refusal = (0xf_ffff_ffff_ffff << 12) | msr::REGISTER_GHCB_RESP;
        let e = check_register(refusal, gfn).unwrap_err();
        assert_eq!(
            e,
            MsrProtocolError::RegisteredOtherGfn {
                asked: gfn,
                answered: 0xf_ffff_ffff_ffff
            }
        );
        assert_eq!(e.reason(), term::GHCB_REGISTER);
        assert!(check_register(msr::register_ghcb_request(gfn), gfn).is_err());
    }

    #[test]
    fn page_state_change_needs_error_zero() {
        assert_eq!(check_psc(msr::PSC_RESP), Ok(()));
        let e = check_psc((7 << 32) | msr::PSC_RESP).unwrap_err();
        assert_eq!(e, MsrProtocolError::PageStateChange { error: 7 });
        assert_eq!(e.reason(), term::PAGE_STATE);
        let req = psc_shared_request(0x137);
        assert_eq!(req & msr::INFO_MASK, msr::PSC_REQ);
        assert_eq!((req >> 12) & 0xff_ffff_ffff, 0x137);
        assert_eq!((req >> 52) & 0xf, psc_op::SHARED);
    }
}
