//! The SEV_STATUS MSR (APM vol. 2).
//!
//! SEV_STATUS (MSR 0xC001_0131) tells a guest which SEV features are active. Bits 2 and
//! up mirror the SEV_FEATURES of the running VMSA.

/// The MSR number.
pub const MSR_SEV_STATUS: u32 = 0xC001_0131;

/// Bit 0: SEV is enabled.
pub const SEV_ENABLED: u64 = 1 << 0;
/// Bit 1: SEV-ES is enabled.
pub const SEV_ES_ENABLED: u64 = 1 << 1;
/// Bit 2: SEV-SNP is enabled.
pub const SNP_ENABLED: u64 = 1 << 2;
/// Bit 3: virtual TOM.
pub const VTOM: u64 = 1 << 3;
/// Bit 4: reflect #VC.
pub const REFLECT_VC: u64 = 1 << 4;
/// Bit 5: restricted injection.
pub const RESTRICTED_INJECTION: u64 = 1 << 5;
/// Bit 6: alternate injection.
pub const ALTERNATE_INJECTION: u64 = 1 << 6;
/// Bit 7: debug register swap.
pub const DEBUG_SWAP: u64 = 1 << 7;
/// Bit 8: prevent host IBS.
pub const PREVENT_HOST_IBS: u64 = 1 << 8;
/// Bit 9: BTB isolation.
pub const BTB_ISOLATION: u64 = 1 << 9;
/// Bit 10: VMPL supervisor shadow stack.
pub const VMPL_SSS: u64 = 1 << 10;
/// Bit 11: secure TSC.
pub const SECURE_TSC: u64 = 1 << 11;
/// Bit 12: VMGEXIT parameter.
pub const VMGEXIT_PARAMETER: u64 = 1 << 12;
/// Bit 14: IBS virtualization.
pub const IBS_VIRTUALIZATION: u64 = 1 << 14;
/// Bit 16: VMSA register protection.
pub const VMSA_REG_PROT: u64 = 1 << 16;
/// Bit 17: SMT protection.
pub const SMT_PROTECTION: u64 = 1 << 17;
/// Bit 18: Secure AVIC.
pub const SECURE_AVIC: u64 = 1 << 18;
