//! The VMSA (VM save area) page of an SEV-ES/SNP vCPU, APM vol. 2 appendix B, with SEV_FEATURES.
//!
//! Under SEV-ES and SEV-SNP the register state of a vCPU lives in an encrypted 4 KiB page,
//! the VMSA, whose layout is the "state save area" of APM vol. 2, appendix B (table B-4,
//! the SEV-ES/SNP form, which extends the plain VMCB save area with the general-purpose
//! registers, the x87/SSE/AVX state and the SEV-specific fields). [`Vmsa`] is that page,
//! byte for byte: every field sits at the offset the APM gives it, and the compile-time
//! asserts at the end of this file check each offset, so a mistake in the field list
//! cannot compile.
//!
//! Who reads it here:
//! - `vigil-igvm` builds the boot CPU's VMSA into the IGVM file and hashes it into the
//!   SNP launch digest (the digest covers the whole page, so a single byte at the wrong
//!   offset changes the measurement);
//! - the monitor creates and checks lower-VMPL VMSAs (`CREATE_VCPU`), where the fields
//!   that decide isolation are [`Vmsa::vmpl`], [`Vmsa::sev_features`], [`Vmsa::efer`]
//!   and the control registers.
//!
//! Integers are native (little-endian on x86-64, the only architecture with a VMSA); the
//! structure is `repr(C)` with explicit reserved arrays, so it has no implicit padding and
//! converts to and from bytes with `zerocopy` in both directions.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a VMSA page in bytes.
pub const VMSA_SIZE: usize = 4096;

/// A segment register (or descriptor-table register) in VMCB form: selector, the
/// compressed 12-bit attribute word (descriptor bits 40..47 and 52..55), limit, base.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VmcbSegment {
    /// Segment selector.
    pub selector: u16,
    /// Compressed attributes: bits 0..7 are descriptor bits 40..47 (type, S, DPL, P),
    /// bits 8..11 are descriptor bits 52..55 (AVL, L, D/B, G).
    pub attrib: u16,
    /// Segment limit (expanded, in bytes).
    pub limit: u32,
    /// Segment base address.
    pub base: u64,
}

impl VmcbSegment {
    /// A segment with all four fields given.
    pub const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> Self {
        Self {
            selector,
            attrib,
            limit,
            base,
        }
    }
}

/// The SEV_FEATURES field of the VMSA (offset 0x3B0): which SEV-ES/SNP features are
/// enabled for this vCPU. The same bits appear in the SEV_STATUS MSR shifted left by 2
/// (SEV_STATUS bit 2 is `SNP_ACTIVE`, ...). The raw value is what the launch digest
/// and the attestation report's reference values carry, so the type is a thin, copyable
/// wrapper around the `u64` with named bits, in the manner of `bitflags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SevFeatures(pub u64);

impl SevFeatures {
    /// Bit 0: the guest runs under SEV-SNP.
    pub const SNP_ACTIVE: Self = Self(1 << 0);
    /// Bit 1: virtual top of memory (vTOM) is enabled; memory above `virtual_tom` is shared.
    pub const VTOM: Self = Self(1 << 1);
    /// Bit 2: #VC exceptions are reflected to the hypervisor as #VMEXIT(VC) ("ReflectVC").
    pub const REFLECT_VC: Self = Self(1 << 2);
    /// Bit 3: restricted injection: the hypervisor may inject only #HV.
    pub const RESTRICTED_INJECTION: Self = Self(1 << 3);
    /// Bit 4: alternate injection: events are injected through the VMSA by a higher VMPL.
    pub const ALTERNATE_INJECTION: Self = Self(1 << 4);
    /// Bit 5: debug registers are swapped on world switch ("DebugSwap").
    pub const DEBUG_SWAP: Self = Self(1 << 5);
    /// Bit 6: the hypervisor is prevented from using IBS on this guest.
    pub const PREVENT_HOST_IBS: Self = Self(1 << 6);
    /// Bit 7: branch target buffer isolation.
    pub const BTB_ISOLATION: Self = Self(1 << 7);
    /// Bit 8: VMPL supervisor shadow stacks.
    pub const VMPL_SSS: Self = Self(1 << 8);
    /// Bit 9: Secure TSC.
    pub const SECURE_TSC: Self = Self(1 << 9);
    /// Bit 10: VMGEXIT parameter (the GHCB MSR protocol passes a parameter in the VMSA).
    pub const VMGEXIT_PARAMETER: Self = Self(1 << 10);
    /// Bit 11: PMC virtualization.
    pub const PMC_VIRTUALIZATION: Self = Self(1 << 11);
    /// Bit 12: IBS virtualization.
    pub const IBS_VIRTUALIZATION: Self = Self(1 << 12);
    /// Bit 14: VMSA register protection (`reg_prot_nonce`).
    pub const VMSA_REG_PROT: Self = Self(1 << 14);
    /// Bit 15: SMT protection.
    pub const SMT_PROTECTION: Self = Self(1 << 15);
    /// Bit 16: Secure AVIC.
    pub const SECURE_AVIC: Self = Self(1 << 16);

    /// Every bit named above.
    pub const ALL_KNOWN: Self = Self(
        Self::SNP_ACTIVE.0
            | Self::VTOM.0
            | Self::REFLECT_VC.0
            | Self::RESTRICTED_INJECTION.0
            | Self::ALTERNATE_INJECTION.0
            | Self::DEBUG_SWAP.0
            | Self::PREVENT_HOST_IBS.0
            | Self::BTB_ISOLATION.0
            | Self::VMPL_SSS.0
            | Self::SECURE_TSC.0
            | Self::VMGEXIT_PARAMETER.0
            | Self::PMC_VIRTUALIZATION.0
            | Self::IBS_VIRTUALIZATION.0
            | Self::VMSA_REG_PROT.0
            | Self::SMT_PROTECTION.0
            | Self::SECURE_AVIC.0,
    );

    /// The raw value.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// The union of both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// Bits set in `self` that no constant above names (reserved bits a checker must refuse).
    pub const fn unknown_bits(self) -> u64 {
        self.0 & !Self::ALL_KNOWN.0
    }
    /// The name of each known bit, for diagnostics, in bit order.
    pub const NAMES: [(Self, &'static str); 16] = [
        (Self::SNP_ACTIVE, "SNPActive"),
        (Self::VTOM, "vTOM"),
        (Self::REFLECT_VC, "ReflectVC"),
        (Self::RESTRICTED_INJECTION, "RestrictedInjection"),
        (Self::ALTERNATE_INJECTION, "AlternateInjection"),
        (Self::DEBUG_SWAP, "DebugSwap"),
        (Self::PREVENT_HOST_IBS, "PreventHostIBS"),
        (Self::BTB_ISOLATION, "BTBIsolation"),
        (Self::VMPL_SSS, "VmplSSS"),
        (Self::SECURE_TSC, "SecureTSC"),
        (Self::VMGEXIT_PARAMETER, "VmgexitParameter"),
        (Self::PMC_VIRTUALIZATION, "PmcVirtualization"),
        (Self::IBS_VIRTUALIZATION, "IbsVirtualization"),
        (Self::VMSA_REG_PROT, "VmsaRegProt"),
        (Self::SMT_PROTECTION, "SmtProtection"),
        (Self::SECURE_AVIC, "SecureAVIC"),
    ];
}

impl core::ops::BitOr for SevFeatures {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// The SEV-ES/SNP VMSA page (APM vol. 2, table B-4). 4096 bytes; offsets in the field
/// comments are checked at compile time.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Vmsa {
    /// 0x000 ES.
    pub es: VmcbSegment,
    /// 0x010 CS.
    pub cs: VmcbSegment,
    /// 0x020 SS.
    pub ss: VmcbSegment,
    /// 0x030 DS.
    pub ds: VmcbSegment,
    /// 0x040 FS.
    pub fs: VmcbSegment,
    /// 0x050 GS.
    pub gs: VmcbSegment,
    /// 0x060 GDTR (selector and attributes unused).
    pub gdtr: VmcbSegment,
    /// 0x070 LDTR.
    pub ldtr: VmcbSegment,
    /// 0x080 IDTR (selector and attributes unused).
    pub idtr: VmcbSegment,
    /// 0x090 TR.
    pub tr: VmcbSegment,
    /// 0x0A0 PL0_SSP (CET shadow stack pointer, CPL 0).
    pub pl0_ssp: u64,
    /// 0x0A8 PL1_SSP.
    pub pl1_ssp: u64,
    /// 0x0B0 PL2_SSP.
    pub pl2_ssp: u64,
    /// 0x0B8 PL3_SSP.
    pub pl3_ssp: u64,
    /// 0x0C0 U_CET.
    pub u_cet: u64,
    /// 0x0C8 reserved.
    pub reserved_0c8: [u8; 2],
    /// 0x0CA VMPL of this vCPU (0..=3). Set at VMSA creation; decides its privilege.
    pub vmpl: u8,
    /// 0x0CB CPL.
    pub cpl: u8,
    /// 0x0CC reserved.
    pub reserved_0cc: [u8; 4],
    /// 0x0D0 EFER.
    pub efer: u64,
    /// 0x0D8 reserved.
    pub reserved_0d8: [u8; 104],
    /// 0x140 XSS.
    pub xss: u64,
    /// 0x148 CR4.
    pub cr4: u64,
    /// 0x150 CR3.
    pub cr3: u64,
    /// 0x158 CR0.
    pub cr0: u64,
    /// 0x160 DR7.
    pub dr7: u64,
    /// 0x168 DR6.
    pub dr6: u64,
    /// 0x170 RFLAGS.
    pub rflags: u64,
    /// 0x178 RIP.
    pub rip: u64,
    /// 0x180 DR0.
    pub dr0: u64,
    /// 0x188 DR1.
    pub dr1: u64,
    /// 0x190 DR2.
    pub dr2: u64,
    /// 0x198 DR3.
    pub dr3: u64,
    /// 0x1A0 DR0 address mask.
    pub dr0_addr_mask: u64,
    /// 0x1A8 DR1 address mask.
    pub dr1_addr_mask: u64,
    /// 0x1B0 DR2 address mask.
    pub dr2_addr_mask: u64,
    /// 0x1B8 DR3 address mask.
    pub dr3_addr_mask: u64,
    /// 0x1C0 reserved.
    pub reserved_1c0: [u8; 24],
    /// 0x1D8 RSP.
    pub rsp: u64,
    /// 0x1E0 S_CET.
    pub s_cet: u64,
    /// 0x1E8 SSP.
    pub ssp: u64,
    /// 0x1F0 ISST_ADDR (interrupt shadow stack table).
    pub isst_addr: u64,
    /// 0x1F8 RAX.
    pub rax: u64,
    /// 0x200 STAR.
    pub star: u64,
    /// 0x208 LSTAR.
    pub lstar: u64,
    /// 0x210 CSTAR.
    pub cstar: u64,
    /// 0x218 SFMASK.
    pub sfmask: u64,
    /// 0x220 KernelGsBase.
    pub kernel_gs_base: u64,
    /// 0x228 SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 0x230 SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 0x238 SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 0x240 CR2.
    pub cr2: u64,
    /// 0x248 reserved.
    pub reserved_248: [u8; 32],
    /// 0x268 G_PAT (guest PAT MSR).
    pub g_pat: u64,
    /// 0x270 DBGCTL.
    pub dbgctl: u64,
    /// 0x278 BR_FROM.
    pub br_from: u64,
    /// 0x280 BR_TO.
    pub br_to: u64,
    /// 0x288 LASTEXCPFROM.
    pub last_excp_from: u64,
    /// 0x290 LASTEXCPTO.
    pub last_excp_to: u64,
    /// 0x298 reserved.
    pub reserved_298: [u8; 72],
    /// 0x2E0 SPEC_CTRL.
    pub spec_ctrl: u64,
    /// 0x2E8 PKRU.
    pub pkru: u32,
    /// 0x2EC TSC_AUX.
    pub tsc_aux: u32,
    /// 0x2F0 GUEST_TSC_SCALE (Secure TSC).
    pub guest_tsc_scale: u64,
    /// 0x2F8 GUEST_TSC_OFFSET (Secure TSC).
    pub guest_tsc_offset: u64,
    /// 0x300 REG_PROT_NONCE (VMSA register protection).
    pub reg_prot_nonce: u64,
    /// 0x308 RCX.
    pub rcx: u64,
    /// 0x310 RDX.
    pub rdx: u64,
    /// 0x318 RBX.
    pub rbx: u64,
    /// 0x320 reserved (RSP lives at 0x1D8).
    pub reserved_320: u64,
    /// 0x328 RBP.
    pub rbp: u64,
    /// 0x330 RSI.
    pub rsi: u64,
    /// 0x338 RDI.
    pub rdi: u64,
    /// 0x340 R8.
    pub r8: u64,
    /// 0x348 R9.
    pub r9: u64,
    /// 0x350 R10.
    pub r10: u64,
    /// 0x358 R11.
    pub r11: u64,
    /// 0x360 R12.
    pub r12: u64,
    /// 0x368 R13.
    pub r13: u64,
    /// 0x370 R14.
    pub r14: u64,
    /// 0x378 R15.
    pub r15: u64,
    /// 0x380 reserved.
    pub reserved_380: [u8; 16],
    /// 0x390 GUEST_EXITINFO1.
    pub guest_exit_info_1: u64,
    /// 0x398 GUEST_EXITINFO2.
    pub guest_exit_info_2: u64,
    /// 0x3A0 GUEST_EXITINTINFO.
    pub guest_exit_int_info: u64,
    /// 0x3A8 GUEST_NRIP.
    pub guest_nrip: u64,
    /// 0x3B0 SEV_FEATURES (see [`SevFeatures`]).
    pub sev_features: u64,
    /// 0x3B8 VINTR_CTRL.
    pub vintr_ctrl: u64,
    /// 0x3C0 GUEST_EXIT_CODE.
    pub guest_exit_code: u64,
    /// 0x3C8 VIRTUAL_TOM.
    pub virtual_tom: u64,
    /// 0x3D0 TLB_ID.
    pub tlb_id: u64,
    /// 0x3D8 PCPU_ID.
    pub pcpu_id: u64,
    /// 0x3E0 EVENTINJ.
    pub event_inj: u64,
    /// 0x3E8 XCR0.
    pub xcr0: u64,
    /// 0x3F0 reserved.
    pub reserved_3f0: [u8; 16],
    /// 0x400 X87 data pointer.
    pub x87_dp: u64,
    /// 0x408 MXCSR.
    pub mxcsr: u32,
    /// 0x40C X87 tag word (abridged, FXSAVE form).
    pub x87_ftw: u16,
    /// 0x40E X87 status word.
    pub x87_fsw: u16,
    /// 0x410 X87 control word. Its architectural reset value is 0x037F; some host kernels
    /// left it 0 in the launch VMSA, which changes the launch digest.
    pub x87_fcw: u16,
    /// 0x412 X87 last opcode.
    pub x87_fop: u16,
    /// 0x414 X87 data segment.
    pub x87_ds: u16,
    /// 0x416 X87 code segment.
    pub x87_cs: u16,
    /// 0x418 X87 instruction pointer.
    pub x87_rip: u64,
    /// 0x420 X87 registers ST0..ST7, 10 bytes each.
    pub fpreg_x87: [u8; 80],
    /// 0x470 XMM0..XMM15, 16 bytes each.
    pub fpreg_xmm: [u8; 256],
    /// 0x570 upper halves of YMM0..YMM15, 16 bytes each.
    pub fpreg_ymm: [u8; 256],
    /// 0x670 .. 0x1000: the extended state area (AVX-512 opmask and ZMM state on CPUs
    /// that have it) and reserved space; kept as bytes.
    pub ext_state: [u8; 2448],
}

impl Vmsa {
    /// The SEV_FEATURES field as a typed value.
    pub const fn features(&self) -> SevFeatures {
        SevFeatures(self.sev_features)
    }
}

/// Field offsets of [`Vmsa`] that callers name by number (the QEMU VMSA whitelist, lints,
/// diagnostics). They equal `core::mem::offset_of!` of the field, asserted below.
pub mod offsets {
    /// Offset of `vmpl`.
    pub const VMPL: usize = 0x0CA;
    /// Offset of `efer`.
    pub const EFER: usize = 0x0D0;
    /// Offset of `rip`.
    pub const RIP: usize = 0x178;
    /// Offset of `sev_features`.
    pub const SEV_FEATURES: usize = 0x3B0;
    /// Offset of `x87_fcw`.
    pub const X87_FCW: usize = 0x410;
}

// Compile-time layout checks against APM vol. 2 table B-4.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<VmcbSegment>() == 16);
    assert!(size_of::<Vmsa>() == VMSA_SIZE);
    assert!(offset_of!(Vmsa, es) == 0x000);
    assert!(offset_of!(Vmsa, cs) == 0x010);
    assert!(offset_of!(Vmsa, ss) == 0x020);
    assert!(offset_of!(Vmsa, ds) == 0x030);
    assert!(offset_of!(Vmsa, fs) == 0x040);
    assert!(offset_of!(Vmsa, gs) == 0x050);
    assert!(offset_of!(Vmsa, gdtr) == 0x060);
    assert!(offset_of!(Vmsa, ldtr) == 0x070);
    assert!(offset_of!(Vmsa, idtr) == 0x080);
    assert!(offset_of!(Vmsa, tr) == 0x090);
    assert!(offset_of!(Vmsa, pl0_ssp) == 0x0A0);
    assert!(offset_of!(Vmsa, u_cet) == 0x0C0);
    assert!(offset_of!(Vmsa, vmpl) == offsets::VMPL);
    assert!(offset_of!(Vmsa, cpl) == 0x0CB);
    assert!(offset_of!(Vmsa, efer) == offsets::EFER);
    assert!(offset_of!(Vmsa, xss) == 0x140);
    assert!(offset_of!(Vmsa, cr4) == 0x148);
    assert!(offset_of!(Vmsa, cr3) == 0x150);
    assert!(offset_of!(Vmsa, cr0) == 0x158);
    assert!(offset_of!(Vmsa, dr7) == 0x160);
    assert!(offset_of!(Vmsa, dr6) == 0x168);
    assert!(offset_of!(Vmsa, rflags) == 0x170);
    assert!(offset_of!(Vmsa, rip) == offsets::RIP);
    assert!(offset_of!(Vmsa, dr0) == 0x180);
    assert!(offset_of!(Vmsa, dr3_addr_mask) == 0x1B8);
    assert!(offset_of!(Vmsa, rsp) == 0x1D8);
    assert!(offset_of!(Vmsa, s_cet) == 0x1E0);
    assert!(offset_of!(Vmsa, ssp) == 0x1E8);
    assert!(offset_of!(Vmsa, isst_addr) == 0x1F0);
    assert!(offset_of!(Vmsa, rax) == 0x1F8);
    assert!(offset_of!(Vmsa, star) == 0x200);
    assert!(offset_of!(Vmsa, lstar) == 0x208);
    assert!(offset_of!(Vmsa, cstar) == 0x210);
    assert!(offset_of!(Vmsa, sfmask) == 0x218);
    assert!(offset_of!(Vmsa, kernel_gs_base) == 0x220);
    assert!(offset_of!(Vmsa, sysenter_cs) == 0x228);
    assert!(offset_of!(Vmsa, sysenter_esp) == 0x230);
    assert!(offset_of!(Vmsa, sysenter_eip) == 0x238);
    assert!(offset_of!(Vmsa, cr2) == 0x240);
    assert!(offset_of!(Vmsa, g_pat) == 0x268);
    assert!(offset_of!(Vmsa, dbgctl) == 0x270);
    assert!(offset_of!(Vmsa, br_from) == 0x278);
    assert!(offset_of!(Vmsa, br_to) == 0x280);
    assert!(offset_of!(Vmsa, last_excp_from) == 0x288);
    assert!(offset_of!(Vmsa, last_excp_to) == 0x290);
    assert!(offset_of!(Vmsa, spec_ctrl) == 0x2E0);
    assert!(offset_of!(Vmsa, pkru) == 0x2E8);
    assert!(offset_of!(Vmsa, tsc_aux) == 0x2EC);
    assert!(offset_of!(Vmsa, guest_tsc_scale) == 0x2F0);
    assert!(offset_of!(Vmsa, guest_tsc_offset) == 0x2F8);
    assert!(offset_of!(Vmsa, reg_prot_nonce) == 0x300);
    assert!(offset_of!(Vmsa, rcx) == 0x308);
    assert!(offset_of!(Vmsa, rdx) == 0x310);
    assert!(offset_of!(Vmsa, rbx) == 0x318);
    assert!(offset_of!(Vmsa, rbp) == 0x328);
    assert!(offset_of!(Vmsa, rsi) == 0x330);
    assert!(offset_of!(Vmsa, rdi) == 0x338);
    assert!(offset_of!(Vmsa, r8) == 0x340);
    assert!(offset_of!(Vmsa, r15) == 0x378);
    assert!(offset_of!(Vmsa, guest_exit_info_1) == 0x390);
    assert!(offset_of!(Vmsa, guest_exit_info_2) == 0x398);
    assert!(offset_of!(Vmsa, guest_exit_int_info) == 0x3A0);
    assert!(offset_of!(Vmsa, guest_nrip) == 0x3A8);
    assert!(offset_of!(Vmsa, sev_features) == offsets::SEV_FEATURES);
    assert!(offset_of!(Vmsa, vintr_ctrl) == 0x3B8);
    assert!(offset_of!(Vmsa, guest_exit_code) == 0x3C0);
    assert!(offset_of!(Vmsa, virtual_tom) == 0x3C8);
    assert!(offset_of!(Vmsa, tlb_id) == 0x3D0);
    assert!(offset_of!(Vmsa, pcpu_id) == 0x3D8);
    assert!(offset_of!(Vmsa, event_inj) == 0x3E0);
    assert!(offset_of!(Vmsa, xcr0) == 0x3E8);
    assert!(offset_of!(Vmsa, x87_dp) == 0x400);
    assert!(offset_of!(Vmsa, mxcsr) == 0x408);
    assert!(offset_of!(Vmsa, x87_ftw) == 0x40C);
    assert!(offset_of!(Vmsa, x87_fsw) == 0x40E);
    assert!(offset_of!(Vmsa, x87_fcw) == offsets::X87_FCW);
    assert!(offset_of!(Vmsa, x87_fop) == 0x412);
    assert!(offset_of!(Vmsa, x87_ds) == 0x414);
    assert!(offset_of!(Vmsa, x87_cs) == 0x416);
    assert!(offset_of!(Vmsa, x87_rip) == 0x418);
    assert!(offset_of!(Vmsa, fpreg_x87) == 0x420);
    assert!(offset_of!(Vmsa, fpreg_xmm) == 0x470);
    assert!(offset_of!(Vmsa, fpreg_ymm) == 0x570);
    assert!(offset_of!(Vmsa, ext_state) == 0x670);
};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn fields_land_at_their_byte_offsets() {
        let mut v = Vmsa::new_zeroed();
        v.rip = 0x1122_3344_5566_7788;
        v.sev_features = (SevFeatures::SNP_ACTIVE | SevFeatures::DEBUG_SWAP).bits();
        v.vmpl = 2;
        v.x87_fcw = 0x037F;
        v.cs = VmcbSegment::new(0xF000, 0x9B, 0xFFFF, 0xFFFF_0000);
        let b = v.as_bytes();
        assert_eq!(b.len(), VMSA_SIZE);
        assert_eq!(&b[0x178..0x180], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[0x3B0..0x3B8], &0x21u64.to_le_bytes());
        assert_eq!(b[0xCA], 2);
        assert_eq!(&b[0x410..0x412], &[0x7F, 0x03]);
        assert_eq!(
            &b[0x10..0x20],
            &[0x00, 0xF0, 0x9B, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0]
        );
        let back = Vmsa::read_from_bytes(b).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn sev_features_names_and_unknown_bits() {
        let f = SevFeatures(0x21 | (1 << 40));
        assert!(f.contains(SevFeatures::SNP_ACTIVE));
        assert!(f.contains(SevFeatures::DEBUG_SWAP));
        assert!(!f.contains(SevFeatures::VTOM));
        assert_eq!(f.unknown_bits(), 1 << 40);
        assert_eq!(SevFeatures::NAMES[5].1, "DebugSwap");
        for (i, (bit, _)) in SevFeatures::NAMES.iter().enumerate() {
            assert_eq!(bit.bits().count_ones(), 1, "entry {i}");
        }
    }
}
