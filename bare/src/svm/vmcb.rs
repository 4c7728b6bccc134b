//! The SVM Virtual Machine Control Block (AMD APM vol. 2, appendix B): the control area
//! (table B-1, offsets 0x000..0x400) and the state-save area of a non-SEV-ES guest
//! (table B-2, offsets 0x400..0x1000 of the VMCB page).
//!
//! The VMCB is the hypervisor's structure, not an SNP wire fact, so it lives here rather
//! than in `svsm-abi`: Vigil's `emulated` platform and the SNP machine model both fill
//! one VMCB per guest vCPU and run it with VMRUN. Only the fields they use are named;
//! everything else is a reserved byte array so that the layout is complete and every
//! named offset is checked at compile time against the APM. The segment format
//! ([`VmcbSegment`]) is shared with the SNP VMSA and so comes from `svsm-abi`.
pub use svsm_abi::vmsa::VmcbSegment;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a VMCB (one page).
pub const VMCB_SIZE: usize = 4096;
/// Offset of the state-save area inside the VMCB.
pub const SAVE_AREA_OFFSET: usize = 0x400;

/// Intercept bits of the control area's word at 0x00C ("vector 3").
pub mod intercept3 {
    /// Physical INTR.
    pub const INTR: u32 = 1 << 0;
    /// NMI.
    pub const NMI: u32 = 1 << 1;
    /// RDTSC.
    pub const RDTSC: u32 = 1 << 14;
    /// RDPMC.
    pub const RDPMC: u32 = 1 << 15;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// INVD.
    pub const INVD: u32 = 1 << 22;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// IN/OUT through the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// RDMSR/WRMSR through the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// Shutdown (triple fault) of the guest.
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept bits of the control area's word at 0x010 ("vector 4").
pub mod intercept4 {
    /// VMRUN (must be set, or VMRUN fails with VMEXIT_INVALID).
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL (and `rep vmmcall`, the SNP guest's VMGEXIT).
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// RDTSCP.
    pub const RDTSCP: u32 = 1 << 7;
    /// WBINVD and WBNOINVD.
    pub const WBINVD: u32 = 1 << 9;
    /// MONITOR and MONITORX.
    pub const MONITOR: u32 = 1 << 10;
    /// MWAIT and MWAITX, unconditionally.
    pub const MWAIT: u32 = 1 << 11;
    /// XSETBV.
    pub const XSETBV: u32 = 1 << 13;
}

/// #VMEXIT codes (APM vol. 2, appendix C) that Vigil handles by name.
pub mod exit {
    /// Exception vector n exits with code 0x40 + n.
    pub const EXCP_BASE: u64 = 0x40;
    /// Physical interrupt.
    pub const INTR: u64 = 0x60;
    /// NMI.
    pub const NMI: u64 = 0x61;
    /// RDTSC.
    pub const RDTSC: u64 = 0x6e;
    /// RDPMC.
    pub const RDPMC: u64 = 0x6f;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// INVD.
    pub const INVD: u64 = 0x76;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// IN/OUT.
    pub const IOIO: u64 = 0x7b;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7c;
    /// Shutdown.
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMRUN.
    pub const VMRUN: u64 = 0x80;
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
    /// XSETBV.
    pub const XSETBV: u64 = 0x8d;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// The VMCB was invalid (the state checks of VMRUN failed).
    pub const INVALID: u64 = u64::MAX;
}

/// Bits of the control area's NP_ENABLE word (0x090).
pub const NP_ENABLE: u64 = 1 << 0;
/// V_INTR_MASKING (bit 24 of the word at 0x060): the guest's RFLAGS.IF masks only
/// virtual interrupts; physical ones are masked by the host's RFLAGS.IF.
pub const V_INTR_MASKING: u64 = 1 << 24;
/// TLB_CONTROL (byte at 0x05C): flush the whole TLB on VMRUN.
pub const TLB_FLUSH_ALL: u8 = 1;

/// EVENTINJ (0x0A8) bits: valid, type exception (3), error code valid.
pub mod eventinj {
    /// The event is valid.
    pub const VALID: u64 = 1 << 31;
    /// Type = exception (bits 10:8 = 3).
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
    /// An error code is pushed (EVENTINJ bits 63:32 hold it).
    pub const ERROR_VALID: u64 = 1 << 11;
}

/// EXITINFO1 bits of an IOIO exit.
pub mod ioio {
    /// 1 = IN, 0 = OUT.
    pub const TYPE_IN: u64 = 1 << 0;
    /// String instruction.
    pub const STRING: u64 = 1 << 2;
    /// REP prefix.
    pub const REP: u64 = 1 << 3;
    /// 8-bit operand.
    pub const SZ8: u64 = 1 << 4;
    /// 16-bit operand.
    pub const SZ16: u64 = 1 << 5;
    /// 32-bit operand.
    pub const SZ32: u64 = 1 << 6;
}

/// EXITINFO1 bits of an NPF exit (the #PF error-code layout plus bits 32/33).
pub mod npf {
    /// The nested entry was present (a permission fault, not a missing page).
    pub const PRESENT: u64 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u64 = 1 << 1;
    /// The access was an instruction fetch.
    pub const FETCH: u64 = 1 << 4;
    /// The fault happened on the final guest-physical address.
    pub const FINAL_ADDR: u64 = 1 << 32;
    /// The fault happened while walking the guest's own page tables.
    pub const TABLE_WALK: u64 = 1 << 33;
}

/// The control area (APM vol. 2, table B-1).
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VmcbControl {
    /// 0x000: intercept reads of CR0..CR15 (bits 0..15).
    pub intercept_cr_read: u16,
    /// 0x002: intercept writes of CR0..CR15.
    pub intercept_cr_write: u16,
    /// 0x004: intercept reads of DR0..DR15.
    pub intercept_dr_read: u16,
    /// 0x006: intercept writes of DR0..DR15.
    pub intercept_dr_write: u16,
    /// 0x008: intercept exception vectors 0..31.
    pub intercept_exceptions: u32,
    /// 0x00C: intercept vector 3 (see [`intercept3`]).
    pub intercept_misc1: u32,
    /// 0x010: intercept vector 4 (see [`intercept4`]).
    pub intercept_misc2: u32,
    /// 0x014: intercept vector 5.
    pub intercept_misc3: u32,
    /// 0x018: reserved.
    pub reserved_018: [u8; 0x24],
    /// 0x03C: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 0x03E: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 0x040: physical address of the I/O permission map (12 KiB).
    pub iopm_base_pa: u64,
    /// 0x048: physical address of the MSR permission map (8 KiB).
    pub msrpm_base_pa: u64,
    /// 0x050: TSC offset.
    pub tsc_offset: u64,
    /// 0x058: guest ASID (must not be 0).
    pub guest_asid: u32,
    /// 0x05C: TLB_CONTROL.
    pub tlb_control: u8,
    /// 0x05D: reserved.
    pub reserved_05d: [u8; 3],
    /// 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    pub vintr: u64,
    /// 0x068: interrupt shadow and GUEST_INTERRUPT_MASK.
    pub interrupt_shadow: u64,
    /// 0x070: EXITCODE.
    pub exit_code: u64,
    /// 0x078: EXITINFO1.
    pub exit_info1: u64,
    /// 0x080: EXITINFO2.
    pub exit_info2: u64,
    /// 0x088: EXITINTINFO.
    pub exit_int_info: u64,
    /// 0x090: NP_ENABLE, SEV, SEV-ES, ...
    pub np_enable: u64,
    /// 0x098: AVIC APIC_BAR.
    pub avic_apic_bar: u64,
    /// 0x0A0: GHCB GPA (SEV-ES).
    pub ghcb_gpa: u64,
    /// 0x0A8: EVENTINJ.
    pub event_inj: u64,
    /// 0x0B0: N_CR3, the nested page-table root.
    pub n_cr3: u64,
    /// 0x0B8: LBR virtualization enable and friends.
    pub lbr_virt: u64,
    /// 0x0C0: VMCB clean bits.
    pub clean_bits: u32,
    /// 0x0C4: reserved.
    pub reserved_0c4: u32,
    /// 0x0C8: nRIP (next sequential instruction pointer, if saved).
    pub next_rip: u64,
    /// 0x0D0: number of guest instruction bytes fetched.
    pub insn_len: u8,
    /// 0x0D1: the guest instruction bytes.
    pub insn_bytes: [u8; 15],
    /// 0x0E0: AVIC backing page, logical and physical tables.
    pub reserved_0e0: [u8; 0x28],
    /// 0x108: VMSA pointer (SEV-ES).
    pub vmsa_pa: u64,
    /// 0x110: reserved to the end of the control area.
    pub reserved_110: [u8; 0x2f0],
}

/// The state-save area of a non-SEV-ES guest (APM vol. 2, table B-2).
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VmcbSave {
    /// 0x000: ES.
    pub es: VmcbSegment,
    /// 0x010: CS.
    pub cs: VmcbSegment,
    /// 0x020: SS.
    pub ss: VmcbSegment,
    /// 0x030: DS.
    pub ds: VmcbSegment,
    /// 0x040: FS.
    pub fs: VmcbSegment,
    /// 0x050: GS.
    pub gs: VmcbSegment,
    /// 0x060: GDTR.
    pub gdtr: VmcbSegment,
    /// 0x070: LDTR.
    pub ldtr: VmcbSegment,
    /// 0x080: IDTR.
    pub idtr: VmcbSegment,
    /// 0x090: TR.
    pub tr: VmcbSegment,
    /// 0x0A0: reserved.
    pub reserved_0a0: [u8; 0x2b],
    /// 0x0CB: CPL.
    pub cpl: u8,
    /// 0x0CC: reserved.
    pub reserved_0cc: u32,
    /// 0x0D0: EFER.
    pub efer: u64,
    /// 0x0D8: reserved.
    pub reserved_0d8: [u8; 0x70],
    /// 0x148: CR4.
    pub cr4: u64,
    /// 0x150: CR3.
    pub cr3: u64,
    /// 0x158: CR0.
    pub cr0: u64,
    /// 0x160: DR7.
    pub dr7: u64,
    /// 0x168: DR6.
    pub dr6: u64,
    /// 0x170: RFLAGS.
    pub rflags: u64,
    /// 0x178: RIP.
    pub rip: u64,
    /// 0x180: reserved.
    pub reserved_180: [u8; 0x58],
    /// 0x1D8: RSP.
    pub rsp: u64,
    /// 0x1E0: S_CET.
    pub s_cet: u64,
    /// 0x1E8: SSP.
    pub ssp: u64,
    /// 0x1F0: ISST_ADDR.
    pub isst_addr: u64,
    /// 0x1F8: RAX.
    pub rax: u64,
    /// 0x200: STAR.
    pub star: u64,
    /// 0x208: LSTAR.
    pub lstar: u64,
    /// 0x210: CSTAR.
    pub cstar: u64,
    /// 0x218: SFMASK.
    pub sfmask: u64,
    /// 0x220: KernelGsBase.
    pub kernel_gs_base: u64,
    /// 0x228: SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 0x230: SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 0x238: SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 0x240: CR2.
    pub cr2: u64,
    /// 0x248: reserved.
    pub reserved_248: [u8; 0x20],
    /// 0x268: G_PAT (guest PAT, used with nested paging).
    pub g_pat: u64,
    /// 0x270: DBGCTL.
    pub dbgctl: u64,
    /// 0x278: BR_FROM.
    pub br_from: u64,
    /// 0x280: BR_TO.
    pub br_to: u64,
    /// 0x288: LASTEXCPFROM.
    pub last_excp_from: u64,
    /// 0x290: LASTEXCPTO.
    pub last_excp_to: u64,
    /// 0x298: reserved to the end of the page.
    pub reserved_298: [u8; 0xc00 - 0x298],
}

/// A whole VMCB page.
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(4096))]
pub struct Vmcb {
    /// The control area.
    pub control: VmcbControl,
    /// The state-save area.
    pub save: VmcbSave,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<VmcbControl>() == SAVE_AREA_OFFSET);
    assert!(size_of::<VmcbSave>() == VMCB_SIZE - SAVE_AREA_OFFSET);
    assert!(size_of::<Vmcb>() == VMCB_SIZE);
    assert!(offset_of!(Vmcb, save) == SAVE_AREA_OFFSET);
    // Table B-1.
    assert!(offset_of!(VmcbControl, intercept_exceptions) == 0x008);
    assert!(offset_of!(VmcbControl, intercept_misc1) == 0x00c);
    assert!(offset_of!(VmcbControl, intercept_misc2) == 0x010);
    assert!(offset_of!(VmcbControl, pause_filter_threshold) == 0x03c);
    assert!(offset_of!(VmcbControl, iopm_base_pa) == 0x040);
    assert!(offset_of!(VmcbControl, msrpm_base_pa) == 0x048);
    assert!(offset_of!(VmcbControl, tsc_offset) == 0x050);
    assert!(offset_of!(VmcbControl, guest_asid) == 0x058);
    assert!(offset_of!(VmcbControl, tlb_control) == 0x05c);
    assert!(offset_of!(VmcbControl, vintr) == 0x060);
    assert!(offset_of!(VmcbControl, exit_code) == 0x070);
    assert!(offset_of!(VmcbControl, exit_info1) == 0x078);
    assert!(offset_of!(VmcbControl, exit_info2) == 0x080);
    assert!(offset_of!(VmcbControl, exit_int_info) == 0x088);
    assert!(offset_of!(VmcbControl, np_enable) == 0x090);
    assert!(offset_of!(VmcbControl, ghcb_gpa) == 0x0a0);
    assert!(offset_of!(VmcbControl, event_inj) == 0x0a8);
    assert!(offset_of!(VmcbControl, n_cr3) == 0x0b0);
    assert!(offset_of!(VmcbControl, clean_bits) == 0x0c0);
    assert!(offset_of!(VmcbControl, next_rip) == 0x0c8);
    assert!(offset_of!(VmcbControl, insn_len) == 0x0d0);
    assert!(offset_of!(VmcbControl, vmsa_pa) == 0x108);
    // Table B-2.
    assert!(offset_of!(VmcbSave, cs) == 0x010);
    assert!(offset_of!(VmcbSave, gdtr) == 0x060);
    assert!(offset_of!(VmcbSave, idtr) == 0x080);
    assert!(offset_of!(VmcbSave, tr) == 0x090);
    assert!(offset_of!(VmcbSave, cpl) == 0x0cb);
    assert!(offset_of!(VmcbSave, efer) == 0x0d0);
    assert!(offset_of!(VmcbSave, cr4) == 0x148);
    assert!(offset_of!(VmcbSave, cr3) == 0x150);
    assert!(offset_of!(VmcbSave, cr0) == 0x158);
    assert!(offset_of!(VmcbSave, dr7) == 0x160);
    assert!(offset_of!(VmcbSave, rflags) == 0x170);
    assert!(offset_of!(VmcbSave, rip) == 0x178);
    assert!(offset_of!(VmcbSave, rsp) == 0x1d8);
    assert!(offset_of!(VmcbSave, rax) == 0x1f8);
    assert!(offset_of!(VmcbSave, star) == 0x200);
    assert!(offset_of!(VmcbSave, kernel_gs_base) == 0x220);
    assert!(offset_of!(VmcbSave, cr2) == 0x240);
    assert!(offset_of!(VmcbSave, g_pat) == 0x268);
    assert!(offset_of!(VmcbSave, last_excp_to) == 0x290);
};

/// The segment and register fields of the VMCB save area that an SNP VMSA shares with
/// it: the first 0x298 bytes use the same offsets in both (APM vol. 2 tables B-2 and
/// B-4), which is what lets Vigil run a guest-supplied VMSA as a plain VMCB guest.
pub const SHARED_WITH_VMSA: usize = 0x298;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use svsm_abi::vmsa::Vmsa;
    use zerocopy::FromZeros;

    #[test]
    fn save_area_offsets_match_the_vmsa() {
        assert_eq!(offset_of!(VmcbSave, efer), offset_of!(Vmsa, efer));
        assert_eq!(offset_of!(VmcbSave, cr3), offset_of!(Vmsa, cr3));
        assert_eq!(offset_of!(VmcbSave, rip), offset_of!(Vmsa, rip));
        assert_eq!(offset_of!(VmcbSave, rsp), offset_of!(Vmsa, rsp));
        assert_eq!(offset_of!(VmcbSave, rax), offset_of!(Vmsa, rax));
        assert_eq!(offset_of!(VmcbSave, g_pat), offset_of!(Vmsa, g_pat));
        assert_eq!(offset_of!(VmcbSave, tr), offset_of!(Vmsa, tr));
    }

    #[test]
    fn fields_land_at_their_byte_offsets() {
        let mut v = Vmcb::new_zeroed();
        v.control.exit_code = 0x81;
        v.control.n_cr3 = 0x1234_5000;
        v.save.rip = 0xdead_beef;
        v.save.efer = 1 << 12;
        let b = v.as_bytes();
        assert_eq!(b[0x070], 0x81);
        assert_eq!(&b[0x0b0..0x0b8], &0x1234_5000u64.to_le_bytes());
        assert_eq!(
            &b[0x400 + 0x178..0x400 + 0x180],
            &0xdead_beefu64.to_le_bytes()
        );
        assert_eq!(b[0x400 + 0x0d1], 0x10);
    }
}
