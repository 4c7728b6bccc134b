//! The GHCB page and the GHCB MSR protocol (GHCB spec #56421).
//!
//! The GHCB is a 4 KiB page shared with the host: everything in it is written by an
//! untrusted party and must be copied out and checked before use. The save area holds
//! the registers an exit needs (each with a bit in the valid bitmap, bit = offset / 8),
//! the shared buffer holds larger payloads such as the page-state-change descriptor.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The GHCB MSR (also the MSR protocol register).
pub const MSR_GHCB: u32 = 0xC001_0130;

/// Size of the GHCB page.
pub const GHCB_SIZE: usize = 4096;
/// Size of the shared buffer.
pub const SHARED_BUFFER_SIZE: usize = 2032;
/// GHCB protocol version Vigil speaks.
pub const GHCB_PROTOCOL_VERSION: u16 = 2;
/// GHCB usage: the standard layout.
pub const GHCB_USAGE_DEFAULT: u32 = 0;

/// The GHCB page (the registers Vigil uses; the rest is reserved).
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Ghcb {
    /// 0x000..0x0CB reserved.
    pub reserved_0x000: [u8; 0xcb],
    /// 0x0CB: CPL.
    pub cpl: u8,
    /// 0x0CC..0x140 reserved.
    pub reserved_0x0cc: [u8; 0x74],
    /// 0x140: XSS.
    pub xss: u64,
    /// 0x148..0x160 reserved.
    pub reserved_0x148: [u8; 0x18],
    /// 0x160: DR7.
    pub dr7: u64,
    /// 0x168..0x178 reserved.
    pub reserved_0x168: [u8; 0x10],
    /// 0x178: RIP.
    pub rip: u64,
    /// 0x180..0x1D8 reserved.
    pub reserved_0x180: [u8; 0x58],
    /// 0x1D8: RSP.
    pub rsp: u64,
    /// 0x1E0..0x1F8 reserved.
    pub reserved_0x1e0: [u8; 0x18],
    /// 0x1F8: RAX.
    pub rax: u64,
    /// 0x200..0x308 reserved.
    pub reserved_0x200: [u8; 0x108],
    /// 0x308: RCX.
    pub rcx: u64,
    /// 0x310: RDX.
    pub rdx: u64,
    /// 0x318: RBX.
    pub rbx: u64,
    /// 0x320..0x328 reserved.
    pub reserved_0x320: [u8; 8],
    /// 0x328: RBP.
    pub rbp: u64,
    /// 0x330: RSI.
    pub rsi: u64,
    /// 0x338: RDI.
    pub rdi: u64,
    /// 0x340..0x380: R8 to R15.
    pub r8_r15: [u64; 8],
    /// 0x380..0x390 reserved.
    pub reserved_0x380: [u8; 0x10],
    /// 0x390: SW_EXITCODE.
    pub sw_exit_code: u64,
    /// 0x398: SW_EXITINFO1.
    pub sw_exit_info_1: u64,
    /// 0x3A0: SW_EXITINFO2.
    pub sw_exit_info_2: u64,
    /// 0x3A8: SW_SCRATCH.
    pub sw_scratch: u64,
    /// 0x3B0..0x3E8 reserved.
    pub reserved_0x3b0: [u8; 0x38],
    /// 0x3E8: XCR0.
    pub xcr0: u64,
    /// 0x3F0: valid bitmap (bit n covers the quadword at offset 8 * n).
    pub valid_bitmap: [u8; 16],
    /// 0x400..0x800: x87 state GPA and reserved.
    pub reserved_0x400: [u8; 0x400],
    /// 0x800: shared buffer.
    pub shared_buffer: [u8; SHARED_BUFFER_SIZE],
    /// 0xFF0..0xFFA reserved.
    pub reserved_0xff0: [u8; 10],
    /// 0xFFA: protocol version.
    pub protocol_version: u16,
    /// 0xFFC: GHCB usage.
    pub ghcb_usage: u32,
}
const _: () = assert!(core::mem::size_of::<Ghcb>() == GHCB_SIZE);
const _: () = assert!(core::mem::offset_of!(Ghcb, cpl) == 0x0cb);
const _: () = assert!(core::mem::offset_of!(Ghcb, xss) == 0x140);
const _: () = assert!(core::mem::offset_of!(Ghcb, rip) == 0x178);
const _: () = assert!(core::mem::offset_of!(Ghcb, rsp) == 0x1d8);
const _: () = assert!(core::mem::offset_of!(Ghcb, rax) == 0x1f8);
const _: () = assert!(core::mem::offset_of!(Ghcb, rcx) == 0x308);
const _: () = assert!(core::mem::offset_of!(Ghcb, rbx) == 0x318);
const _: () = assert!(core::mem::offset_of!(Ghcb, r8_r15) == 0x340);
const _: () = assert!(core::mem::offset_of!(Ghcb, sw_exit_code) == 0x390);
const _: () = assert!(core::mem::offset_of!(Ghcb, sw_exit_info_1) == 0x398);
const _: () = assert!(core::mem::offset_of!(Ghcb, sw_exit_info_2) == 0x3a0);
const _: () = assert!(core::mem::offset_of!(Ghcb, sw_scratch) == 0x3a8);
const _: () = assert!(core::mem::offset_of!(Ghcb, xcr0) == 0x3e8);
const _: () = assert!(core::mem::offset_of!(Ghcb, valid_bitmap) == 0x3f0);
const _: () = assert!(core::mem::offset_of!(Ghcb, shared_buffer) == 0x800);
const _: () = assert!(core::mem::offset_of!(Ghcb, protocol_version) == 0xffa);
const _: () = assert!(core::mem::offset_of!(Ghcb, ghcb_usage) == 0xffc);

/// GPA-relative offset of the shared buffer (SW_SCRATCH points here).
pub const SHARED_BUFFER_OFFSET: u64 = 0x800;

impl Ghcb {
    /// A zeroed GHCB with the protocol version and usage set.
    pub fn new_zeroed_v2() -> Self {
        let mut g = <Self as zerocopy::FromZeros>::new_zeroed();
        g.protocol_version = GHCB_PROTOCOL_VERSION;
        g.ghcb_usage = GHCB_USAGE_DEFAULT;
        g
    }
    /// Marks the quadword at `offset` valid.
    pub fn set_valid(&mut self, offset: usize) {
        let bit = offset / 8;
        if let Some(b) = self.valid_bitmap.get_mut(bit / 8) {
            *b |= 1 << (bit % 8);
        }
    }
    /// Whether the quadword at `offset` is marked valid.
    pub fn is_valid(&self, offset: usize) -> bool {
        let bit = offset / 8;
        self.valid_bitmap
            .get(bit / 8)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    }
}

/// Offsets of the fields, for the valid bitmap.
pub mod offset {
    /// RAX.
    pub const RAX: usize = 0x1f8;
    /// SW_EXITCODE.
    pub const SW_EXIT_CODE: usize = 0x390;
    /// SW_EXITINFO1.
    pub const SW_EXIT_INFO_1: usize = 0x398;
    /// SW_EXITINFO2.
    pub const SW_EXIT_INFO_2: usize = 0x3a0;
    /// SW_SCRATCH.
    pub const SW_SCRATCH: usize = 0x3a8;
    /// RCX.
    pub const RCX: usize = 0x308;
    /// RDX.
    pub const RDX: usize = 0x310;
    /// RBX.
    pub const RBX: usize = 0x318;
}

/// Non-automatic exit (NAE) codes written into SW_EXITCODE, which are also the #VC
/// error codes for the same events (#56421, "Non-Automatic Exits"; APM vol. 2,
/// appendix C, SVM intercept codes).
pub mod exit {
    /// CPUID (#VC only: an SNP guest answers it from the CPUID page).
    pub const CPUID: u64 = 0x72;
    /// HLT (APM vol. 2 appendix C). An automatic exit on SEV-ES/SNP, not a #VC, as the
    /// APM lists them; named for a guest that forwards one through its GHCB anyway.
    pub const HLT: u64 = 0x78;
    /// IN/OUT/INS/OUTS: SW_EXITINFO1 per [`super::ioio`], RAX holds the data.
    pub const IOIO: u64 = 0x7b;
    /// RDMSR/WRMSR: SW_EXITINFO1 0 = read, 1 = write; RCX the MSR, RDX:RAX the value.
    pub const MSR: u64 = 0x7c;
    /// Nested page fault (#VC for MMIO: a reserved-bit NPF on a shared page).
    pub const NPF: u64 = 0x400;
    /// #VC only: a private access to a page that is not validated (#56421, #VC error
    /// codes; "VMEXIT_VC_NOT_VALIDATED" in Linux's svm.h).
    pub const NOT_VALIDATED: u64 = 0x404;
    /// Page state change (shared buffer holds a [`super::PscDesc`]).
    pub const SNP_PSC: u64 = 0x8000_0010;
    /// SNP guest request: EXITINFO1 = request page GPA, EXITINFO2 = response page GPA.
    pub const SNP_GUEST_REQUEST: u64 = 0x8000_0011;
    /// Extended guest request (certificates).
    pub const SNP_EXT_GUEST_REQUEST: u64 = 0x8000_0012;
    /// AP creation: EXITINFO1 = APIC ID << 32 | request, EXITINFO2 = VMSA GPA, RAX = SEV features.
    pub const SNP_AP_CREATION: u64 = 0x8000_0013;
    /// Run a VMPL (SVSM): EXITINFO1 = target VMPL.
    pub const SNP_RUN_VMPL: u64 = 0x8000_0018;
    /// Hypervisor feature support.
    pub const HV_FEATURES: u64 = 0x8000_fffd;
    /// Termination request.
    pub const TERMINATE: u64 = 0x8000_fffe;
}

/// SW_EXITINFO1 of an IOIO exit: the IOIO intercept information of APM vol. 2
/// 15.10.2 ("IN and OUT Behavior", EXITINFO1 for IOIO): bit 0 type (1 = IN), bit 2
/// string, bit 3 REP, bits 6:4 operand size (one-hot 8/16/32), bits 9:7 address size,
/// bits 12:10 effective segment, bits 31:16 port.
pub mod ioio {
    /// Bit 0: IN (clear: OUT).
    pub const TYPE_IN: u64 = 1 << 0;
    /// Bit 2: string instruction.
    pub const STRING: u64 = 1 << 2;
    /// Bit 3: REP prefix.
    pub const REP: u64 = 1 << 3;
    /// Bit 4: 8-bit operand.
    pub const SIZE_8: u64 = 1 << 4;
    /// Bit 5: 16-bit operand.
    pub const SIZE_16: u64 = 1 << 5;
    /// Bit 6: 32-bit operand.
    pub const SIZE_32: u64 = 1 << 6;
    /// Mask of the operand size bits.
    pub const SIZE_MASK: u64 = 0x70;
    /// Bit 7: 16-bit address size.
    pub const ADDR_16: u64 = 1 << 7;
    /// Bit 8: 32-bit address size.
    pub const ADDR_32: u64 = 1 << 8;
    /// Bit 9: 64-bit address size.
    pub const ADDR_64: u64 = 1 << 9;
    /// Bits 31:16: the port.
    pub const PORT_SHIFT: u32 = 16;

    /// SW_EXITINFO1 of a non-string IN/OUT of `bytes` (1, 2 or 4) at `port`, with the
    /// 64-bit address size of long mode; `None` for another operand size.
    pub const fn info1(port: u16, bytes: u8, is_in: bool) -> Option<u64> {
        let size = match bytes {
            1 => SIZE_8,
            2 => SIZE_16,
            4 => SIZE_32,
            _ => return None,
        };
        let dir = if is_in { TYPE_IN } else { 0 };
        Some(((port as u64) << PORT_SHIFT) | size | ADDR_64 | dir)
    }
}

/// SNP AP creation (GHCB spec #56421, SNP AP Creation NAE event): SW_EXITINFO1 holds
/// the APIC ID in bits 63:32, the VMPL of the VMSA in bits 19:16 and the request type
/// in bits 15:0; SW_EXITINFO2 the VMSA's GPA; RAX the SEV_FEATURES of the VMSA. Linux's
/// `vmgexit_ap_control` builds `apic_id << 32 | snp_vmpl << 16 | event`.
pub mod ap_create {
    /// Create the vCPU when it receives INIT.
    pub const CREATE_ON_INIT: u64 = 0;
    /// Create and run the vCPU now.
    pub const CREATE: u64 = 1;
    /// Destroy the vCPU.
    pub const DESTROY: u64 = 2;
    /// SW_EXITINFO1 bits 15:0: the request type.
    pub const TYPE_MASK: u64 = 0xffff;
    /// SW_EXITINFO1 bits 19:16: the VMPL the VMSA runs at.
    pub const VMPL_SHIFT: u32 = 16;
    /// Mask of the VMPL field after the shift.
    pub const VMPL_MASK: u64 = 0xf;
    /// SW_EXITINFO1 bits 63:32: the APIC ID.
    pub const APIC_SHIFT: u32 = 32;

    /// SW_EXITINFO1 of an AP creation request.
    pub const fn info1(apic_id: u32, vmpl: u8, request: u64) -> u64 {
        ((apic_id as u64) << APIC_SHIFT)
            | (((vmpl as u64) & VMPL_MASK) << VMPL_SHIFT)
            | (request & TYPE_MASK)
    }
    /// (APIC ID, VMPL, request type) of SW_EXITINFO1.
    pub const fn decode(info1: u64) -> (u32, u8, u64) {
        (
            (info1 >> APIC_SHIFT) as u32,
            ((info1 >> VMPL_SHIFT) & VMPL_MASK) as u8,
            info1 & TYPE_MASK,
        )
    }
}

/// GHCB MSR protocol: request and response codes in GHCBInfo (bits 11:0).
pub mod msr {
    /// Mask of GHCBInfo.
    pub const INFO_MASK: u64 = 0xfff;
    /// SEV information response.
    pub const SEV_INFO_RESP: u64 = 0x001;
    /// SEV information request.
    pub const SEV_INFO_REQ: u64 = 0x002;
    /// CPUID request.
    pub const CPUID_REQ: u64 = 0x004;
    /// CPUID response.
    pub const CPUID_RESP: u64 = 0x005;
    /// Register GHCB GPA request (bits 63:12 = GFN).
    pub const REGISTER_GHCB_REQ: u64 = 0x012;
    /// Register GHCB GPA response.
    pub const REGISTER_GHCB_RESP: u64 = 0x013;
    /// Page state change request: bits 51:12 GFN, bits 55:52 operation.
    pub const PSC_REQ: u64 = 0x014;
    /// Page state change response: bits 63:32 error code (0 = success).
    pub const PSC_RESP: u64 = 0x015;
    /// AP reset hold request (#56421 §2.3.1, "AP Reset Hold"): the vCPU is held until
    /// the host restarts it (KVM: the next AP creation naming it, on SNP).
    pub const AP_RESET_HOLD_REQ: u64 = 0x006;
    /// AP reset hold response: bits 63:12 non-zero once released.
    pub const AP_RESET_HOLD_RESP: u64 = 0x007;
    /// Run VMPL request: bits 39:32 target VMPL.
    pub const RUN_VMPL_REQ: u64 = 0x016;
    /// Run VMPL response: bits 63:32 error code.
    pub const RUN_VMPL_RESP: u64 = 0x017;
    /// Hypervisor feature request.
    pub const HV_FEATURES_REQ: u64 = 0x080;
    /// Hypervisor feature response (bits 63:12 feature bitmap).
    pub const HV_FEATURES_RESP: u64 = 0x081;
    /// Termination request: bits 15:12 reason set, bits 23:16 reason code.
    pub const TERMINATE_REQ: u64 = 0x100;

    /// SEV information response, bits 63:48: the highest GHCB protocol version the
    /// hypervisor supports (#56421, GHCB MSR protocol, "SEV Information").
    pub const fn sev_info_max(resp: u64) -> u16 {
        (resp >> 48) as u16
    }
    /// SEV information response, bits 47:32: the lowest protocol version supported.
    pub const fn sev_info_min(resp: u64) -> u16 {
        (resp >> 32) as u16
    }
    /// SEV information response, bits 31:24: the encryption bit (C-bit) position the
    /// hypervisor claims.
    pub const fn sev_info_cbit(resp: u64) -> u8 {
        (resp >> 24) as u8
    }
    /// Builds an SEV information response (for tests and models of the host).
    pub const fn sev_info_response(min: u16, max: u16, cbit: u8) -> u64 {
        ((max as u64) << 48) | ((min as u64) << 32) | ((cbit as u64) << 24) | SEV_INFO_RESP
    }
    /// Builds a CPUID request (#56421 §2.3.1, GHCB MSR protocol, "CPUID Request"):
    /// bits 63:32 the function, bits 31:30 the register wanted (0 EAX, 1 EBX, 2 ECX,
    /// 3 EDX); the sub-function (ECX) is 0.
    pub const fn cpuid_request(function: u32, register: u8) -> u64 {
        ((function as u64) << 32) | (((register as u64) & 3) << 30) | CPUID_REQ
    }
    /// The register selector (bits 31:30) of a CPUID request or response.
    pub const fn cpuid_register(value: u64) -> u8 {
        ((value >> 30) & 3) as u8
    }
    /// The value of a CPUID response (bits 63:32).
    pub const fn cpuid_value(resp: u64) -> u32 {
        (resp >> 32) as u32
    }
    /// Builds a register-GHCB-GPA request for the page with frame number `gfn`
    /// (#56421, "SNP Guest GHCB GPA Registration": GFN in bits 63:12); the response
    /// carries the same GFN in the same bits.
    pub const fn register_ghcb_request(gfn: u64) -> u64 {
        (gfn << 12) | REGISTER_GHCB_REQ
    }
    /// The GFN of a register-GHCB-GPA request or response (bits 63:12).
    pub const fn gfn_of(value: u64) -> u64 {
        value >> 12
    }
    /// Page state change response, bits 63:32: the error code (0 = success).
    pub const fn psc_error(resp: u64) -> u32 {
        (resp >> 32) as u32
    }
    /// The hypervisor feature bitmap of a hypervisor feature response (bits 63:12).
    pub const fn hv_features(resp: u64) -> u64 {
        resp >> 12
    }

    /// Builds a page state change request.
    pub const fn psc_request(gfn: u64, op: u64) -> u64 {
        ((gfn & 0xff_ffff_ffff) << 12) | ((op & 0xf) << 52) | PSC_REQ
    }
    /// Builds a run-VMPL request: `vmpl` in bits 39:32 (#56421, GHCB MSR protocol, SNP Run VMPL request).
    pub const fn run_vmpl_request(vmpl: u8) -> u64 {
        RUN_VMPL_REQ | ((vmpl as u64) << 32)
    }
    /// Builds a termination request.
    pub const fn terminate(reason_set: u64, reason_code: u64) -> u64 {
        TERMINATE_REQ | ((reason_set & 0xf) << 12) | ((reason_code & 0xff) << 16)
    }
}

/// Hypervisor feature bits (#56421, "Hypervisor Feature Support": the bitmap of the
/// HV_FEATURES MSR-protocol response or NAE, bit n = GHCBData bit n + 12).
pub mod hv_feature {
    /// SEV-SNP is supported (required by an SNP guest).
    pub const SNP: u64 = 1 << 0;
    /// SNP AP creation is supported.
    pub const SNP_AP_CREATION: u64 = 1 << 1;
    /// Restricted injection is supported.
    pub const SNP_RESTRICTED_INJECTION: u64 = 1 << 2;
    /// Restricted injection timer is supported.
    pub const SNP_RESTRICTED_INJECTION_TIMER: u64 = 1 << 3;
    /// APIC ID list is supported.
    pub const APIC_ID_LIST: u64 = 1 << 4;
    /// Multiple VMPLs are supported (an SVSM needs it).
    pub const SNP_MULTI_VMPL: u64 = 1 << 5;
}

/// Termination reason set 0 (general) codes; Vigil uses set 1 (SVSM) for its own.
pub mod term {
    /// Reason set for SVSM-specific reasons.
    pub const SET_SVSM: u64 = 1;
    /// General termination.
    pub const GENERAL: u64 = 0;
    /// The host answered inconsistently.
    pub const HOST_INCONSISTENT: u64 = 0x10;
    /// The host refused a service Vigil needs.
    pub const HOST_REFUSED: u64 = 0x11;
    /// The security processor's answer failed authentication.
    pub const GUEST_REQUEST_AUTH: u64 = 0x12;
    /// Vigil booted on SEV-SNP, whose kernel path is not written yet.
    pub const SNP_NOT_YET: u64 = 0x13;
    /// Vigil booted on SEV-ES without SNP, which it refuses (it needs VMPLs).
    pub const SEV_ES_WITHOUT_SNP: u64 = 0x14;
    /// The BootParams page (or the boot register that names it) was refused.
    pub const BOOT_PARAMS: u64 = 0x15;
    /// The CPUID page is missing, malformed or lacks the C-bit leaf 0x8000_001F.
    pub const CPUID_PAGE: u64 = 0x16;
    /// The hypervisor's GHCB protocol version range excludes the version Vigil speaks.
    pub const GHCB_VERSION: u64 = 0x17;
    /// The hypervisor does not offer the SNP features Vigil needs.
    pub const HV_FEATURES: u64 = 0x18;
    /// Registering the GHCB page with the hypervisor failed.
    pub const GHCB_REGISTER: u64 = 0x19;
    /// A page state change (private/shared) was refused.
    pub const PAGE_STATE: u64 = 0x1a;
    /// PVALIDATE of Vigil's own memory failed.
    pub const PVALIDATE: u64 = 0x1b;
    /// A #VC for an event Vigil does not handle.
    pub const VC_UNEXPECTED: u64 = 0x1c;
    /// A #VC inside the #VC handler (or a GHCB call re-entered while the page was in use).
    pub const VC_NESTED: u64 = 0x1d;
    /// Vigil's own page tables (C-bit on private mappings) could not be built.
    pub const PAGE_TABLES: u64 = 0x1e;
    /// Vigil's heap could not be placed or started.
    pub const HEAP: u64 = 0x1f;
    /// The monitor or the guest's first VMSA could not be set up on SNP.
    pub const GUEST_START: u64 = 0x23;
    /// The run ended normally (the kernel's `ExitCode::Success`).
    pub const EXIT_SUCCESS: u64 = 0x20;
    /// In-kernel tests failed (`ExitCode::TestsFailed`).
    pub const EXIT_TESTS_FAILED: u64 = 0x21;
    /// A panic or an unexpected exception (`ExitCode::Fatal`).
    pub const EXIT_FATAL: u64 = 0x22;
    /// The host took Vigil's own memory away (a #VC or a refused access on it).
    pub const VIGIL_MEMORY_LOST: u64 = 0x24;

    /// Every code of reason set 1, for the test that keeps them distinct.
    pub const ALL: [u64; 22] = [
        HOST_INCONSISTENT,
        HOST_REFUSED,
        GUEST_REQUEST_AUTH,
        SNP_NOT_YET,
        SEV_ES_WITHOUT_SNP,
        BOOT_PARAMS,
        CPUID_PAGE,
        GHCB_VERSION,
        HV_FEATURES,
        GHCB_REGISTER,
        PAGE_STATE,
        PVALIDATE,
        VC_UNEXPECTED,
        VC_NESTED,
        PAGE_TABLES,
        HEAP,
        GUEST_START,
        EXIT_SUCCESS,
        EXIT_TESTS_FAILED,
        EXIT_FATAL,
        VIGIL_MEMORY_LOST,
        GENERAL,
    ];
}

/// Page state change operations.
pub mod psc_op {
    /// Make the page private (assigned to the guest).
    pub const PRIVATE: u64 = 1;
    /// Make the page shared.
    pub const SHARED: u64 = 2;
    /// Split a 2 MiB RMP entry into 4 KiB entries.
    pub const PSMASH: u64 = 3;
    /// Merge 4 KiB RMP entries into a 2 MiB entry.
    pub const UNSMASH: u64 = 4;
}

/// Header of the page-state-change descriptor in the shared buffer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PscHeader {
    /// Index of the entry the host works on next.
    pub cur_entry: u16,
    /// Index of the last entry.
    pub end_entry: u16,
    /// Reserved.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<PscHeader>() == 8);

/// Most entries in one page-state-change descriptor (the shared buffer's size).
pub const PSC_MAX_ENTRIES: usize = (SHARED_BUFFER_SIZE - 8) / 8;
const _: () = assert!(PSC_MAX_ENTRIES == 253);

/// The page-state-change descriptor that fills the shared buffer.
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PscDesc {
    /// Header.
    pub header: PscHeader,
    /// Entries (see [`PscEntry`]).
    pub entries: [u64; PSC_MAX_ENTRIES],
}
const _: () = assert!(core::mem::size_of::<PscDesc>() == SHARED_BUFFER_SIZE);

/// One page-state-change entry: bits 11:0 cur_page, bits 51:12 GFN, bits 55:52
/// operation, bit 56 page size (1 = 2 MiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscEntry(pub u64);

impl PscEntry {
    /// Builds an entry.
    pub const fn new(gfn: u64, op: u64, size_2m: bool) -> Self {
        Self(((gfn & 0xff_ffff_ffff) << 12) | ((op & 0xf) << 52) | ((size_2m as u64) << 56))
    }
    /// Guest frame number.
    pub const fn gfn(self) -> u64 {
        (self.0 >> 12) & 0xff_ffff_ffff
    }
    /// Operation.
    pub const fn op(self) -> u64 {
        (self.0 >> 52) & 0xf
    }
    /// Whether the entry covers a 2 MiB page.
    pub const fn size_2m(self) -> bool {
        self.0 & (1 << 56) != 0
    }
    /// 4 KiB pages of a 2 MiB entry already processed.
    pub const fn cur_page(self) -> u64 {
        self.0 & 0xfff
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn termination_codes_are_distinct_and_fit_the_msr_field() {
        let all = super::term::ALL;
        for (i, a) in all.iter().enumerate() {
            assert!(*a <= 0xff, "code {a:#x} does not fit bits 23:16");
            for b in &all[i + 1..] {
                assert_ne!(a, b, "two termination reasons share code {a:#x}");
            }
        }
    }

    use super::*;
    /// GHCB spec SNP AP Creation: the VMPL of the VMSA travels in SW_EXITINFO1 19:16.
    #[test]
    fn ghcb_ap_creation_vmpl_in_exitinfo1_bits_19_16() {
        let i = ap_create::info1(7, 2, ap_create::CREATE);
        assert_eq!(i, (7 << 32) | (2 << 16) | 1);
        assert_eq!(ap_create::decode(i), (7, 2, ap_create::CREATE));
        assert_eq!(ap_create::decode(0x3_0000_0002), (3, 0, ap_create::DESTROY));
    }
    #[test]
    fn valid_bitmap_and_psc_entry() {
        let mut g = Ghcb::new_zeroed_v2();
        assert!(!g.is_valid(offset::SW_EXIT_CODE));
        g.set_valid(offset::SW_EXIT_CODE);
        assert!(g.is_valid(offset::SW_EXIT_CODE));
        // SW_EXITCODE is quadword 0x72: byte 14, bit 2.
        assert_eq!(g.valid_bitmap[14], 1 << 2);
        let e = PscEntry::new(0xabcde, psc_op::SHARED, true);
        assert_eq!(
            (e.gfn(), e.op(), e.size_2m(), e.cur_page()),
            (0xabcde, 2, true, 0)
        );
        assert_eq!(msr::psc_request(1, 1) & 0xfff, 0x014);
    }

    #[test]
    fn msr_protocol_fields_sit_where_56421_puts_them() {
        let r = msr::sev_info_response(1, 2, 51);
        assert_eq!(r, 0x0002_0001_3300_0001);
        assert_eq!(
            (
                msr::sev_info_min(r),
                msr::sev_info_max(r),
                msr::sev_info_cbit(r)
            ),
            (1, 2, 51)
        );
        assert_eq!(msr::register_ghcb_request(0x7f), 0x7f012);
        assert_eq!(msr::gfn_of(0x7f013), 0x7f);
        assert_eq!(msr::psc_error(0x0000_0005_0000_0015), 5);
        assert_eq!(
            msr::hv_features(0x3081),
            hv_feature::SNP | hv_feature::SNP_AP_CREATION
        );
    }

    #[test]
    fn ioio_info1_puts_port_size_and_direction_in_their_bits() {
        // OUT DX, AL to COM1: port 0x3f8 in 31:16, SZ8, A64, type OUT.
        assert_eq!(ioio::info1(0x3f8, 1, false), Some(0x03f8_0210));
        assert_eq!(ioio::info1(0x3fd, 1, true), Some(0x03fd_0211));
        assert_eq!(ioio::info1(0xf4, 4, false), Some(0x00f4_0240));
        assert_eq!(ioio::info1(0xf4, 3, false), None);
    }

    #[test]
    fn cpuid_request_puts_function_and_register_where_56421_does() {
        // CPUID 0x8000_001F, EBX.
        let r = msr::cpuid_request(0x8000_001f, 1);
        assert_eq!(r, 0x8000_001f_4000_0004);
        assert_eq!(msr::cpuid_register(r), 1);
        assert_eq!(msr::cpuid_value(0x0000_0033_4000_0005), 0x33);
        assert_eq!(msr::cpuid_request(1, 7) & (3 << 30), 3 << 30);
    }

    #[test]
    fn run_vmpl_request_puts_the_vmpl_in_bits_39_32() {
        assert_eq!(msr::run_vmpl_request(0), 0x016);
        assert_eq!(msr::run_vmpl_request(2), 0x0000_0002_0000_0016);
        assert_eq!(msr::run_vmpl_request(0xff) >> 32, 0xff);
    }
}
