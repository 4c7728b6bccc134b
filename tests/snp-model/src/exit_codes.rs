//! SW_EXITCODE values of the GHCB page protocol: the SVM exit codes (APM vol. 2
//! appendix C, "SVM Intercept Exit Codes") and the VMGEXIT-only codes of the GHCB spec
//! #56421 (table "Non-Automatic Exit Codes"). The #VC exit codes are the same SVM codes.

/// READ_DR7.
pub const READ_DR7: u64 = 0x27;
/// WRITE_DR7.
pub const WRITE_DR7: u64 = 0x37;
/// #AC exception.
pub const EXCP_AC: u64 = 0x51;
/// RDTSC.
pub const RDTSC: u64 = 0x6e;
/// RDPMC.
pub const RDPMC: u64 = 0x6f;
/// CPUID.
pub const CPUID: u64 = 0x72;
/// INVD.
pub const INVD: u64 = 0x76;
/// IOIO.
pub const IOIO: u64 = 0x7b;
/// MSR.
pub const MSR: u64 = 0x7c;
/// VMMCALL.
pub const VMMCALL: u64 = 0x81;
/// RDTSCP.
pub const RDTSCP: u64 = 0x87;
/// WBINVD.
pub const WBINVD: u64 = 0x89;
/// MONITOR.
pub const MONITOR: u64 = 0x8a;
/// MWAIT.
pub const MWAIT: u64 = 0x8b;
/// Nested page fault (MMIO on SNP: a #VC for a reserved-bit NPT entry).
pub const NPF: u64 = 0x400;
/// VMGEXIT (the automatic exit of the instruction itself).
pub const VMGEXIT: u64 = 0x403;
/// Page not validated (#VC only).
pub const PAGE_NOT_VALIDATED: u64 = 0x404;
/// MMIO read.
pub const MMIO_READ: u64 = 0x8000_0001;
/// MMIO write.
pub const MMIO_WRITE: u64 = 0x8000_0002;
/// NMI complete.
pub const NMI_COMPLETE: u64 = 0x8000_0003;
/// AP reset hold.
pub const AP_HLT_LOOP: u64 = 0x8000_0004;
/// AP jump table.
pub const AP_JUMP_TABLE: u64 = 0x8000_0005;
/// Page state change.
pub const PSC: u64 = 0x8000_0010;
/// SNP guest request.
pub const GUEST_REQUEST: u64 = 0x8000_0011;
/// SNP extended guest request.
pub const EXT_GUEST_REQUEST: u64 = 0x8000_0012;
/// SNP AP creation.
pub const AP_CREATION: u64 = 0x8000_0013;
/// SNP run VMPL (GHCB spec v2.03+).
pub const SNP_RUN_VMPL: u64 = 0x8000_0018;
/// Hypervisor features.
pub const HV_FEATURES: u64 = 0x8000_fffd;
/// Termination request.
pub const TERM_REQUEST: u64 = 0x8000_fffe;
/// Unsupported event.
pub const UNSUPPORTED: u64 = 0x8000_ffff;

/// GHCB error reasons in SW_EXITINFO2 when SW_EXITINFO1 = 2 (GHCB spec; KVM
/// `GHCB_ERR_*`).
pub mod err {
    /// GHCB not registered.
    pub const NOT_REGISTERED: u64 = 1;
    /// GHCB usage not 0.
    pub const INVALID_USAGE: u64 = 2;
    /// Bad scratch area.
    pub const INVALID_SCRATCH_AREA: u64 = 3;
    /// A required field is not marked valid.
    pub const MISSING_INPUT: u64 = 4;
    /// A field has a bad value.
    pub const INVALID_INPUT: u64 = 5;
    /// Unknown exit code.
    pub const INVALID_EVENT: u64 = 6;
}
