//! The VMSA page: one vCPU's register state at one VMPL, the machine's source of truth.
//!
//! Layout: APM vol. 2 appendix B, table "VMSA Layout, State Save Area for SEV-ES" (the
//! same offsets as Linux's `struct sev_es_save_area` in `arch/x86/include/asm/svm.h`).
//! Its first 0x298 bytes have the layout of the VMCB state save area (APM vol. 2
//! appendix B, "VMCB Layout, State Save Area", at VMCB + 0x400), so the bare-metal
//! machine copies [`off::SAVE_AREA_LEN`] bytes into its VMCB and the general-purpose
//! registers ([`off::GPRS`]) into its own register block, and back after the exit.
//!
//! Segment registers are 16 bytes: selector (u16), attributes (u16, the descriptor's
//! type/S/DPL/P byte in bits 7:0 and its AVL/L/D/G nibble in bits 11:8), limit (u32),
//! base (u64).

/// Byte offsets in the VMSA (APM vol. 2 appendix B).
pub mod off {
    /// ES.
    pub const ES: usize = 0x000;
    /// CS.
    pub const CS: usize = 0x010;
    /// SS.
    pub const SS: usize = 0x020;
    /// DS.
    pub const DS: usize = 0x030;
    /// FS.
    pub const FS: usize = 0x040;
    /// GS.
    pub const GS: usize = 0x050;
    /// GDTR (selector and attributes unused).
    pub const GDTR: usize = 0x060;
    /// LDTR.
    pub const LDTR: usize = 0x070;
    /// IDTR (selector and attributes unused).
    pub const IDTR: usize = 0x080;
    /// TR.
    pub const TR: usize = 0x090;
    /// The VMPL of this VMSA (SEV-SNP; byte).
    pub const VMPL: usize = 0x0ca;
    /// CPL (byte).
    pub const CPL: usize = 0x0cb;
    /// EFER.
    pub const EFER: usize = 0x0d0;
    /// XSS.
    pub const XSS: usize = 0x140;
    /// CR4.
    pub const CR4: usize = 0x148;
    /// CR3.
    pub const CR3: usize = 0x150;
    /// CR0.
    pub const CR0: usize = 0x158;
    /// DR7.
    pub const DR7: usize = 0x160;
    /// DR6.
    pub const DR6: usize = 0x168;
    /// RFLAGS.
    pub const RFLAGS: usize = 0x170;
    /// RIP.
    pub const RIP: usize = 0x178;
    /// RSP.
    pub const RSP: usize = 0x1d8;
    /// RAX.
    pub const RAX: usize = 0x1f8;
    /// STAR.
    pub const STAR: usize = 0x200;
    /// LSTAR.
    pub const LSTAR: usize = 0x208;
    /// CSTAR.
    pub const CSTAR: usize = 0x210;
    /// SFMASK.
    pub const SFMASK: usize = 0x218;
    /// KernelGsBase.
    pub const KERNEL_GS_BASE: usize = 0x220;
    /// SYSENTER_CS.
    pub const SYSENTER_CS: usize = 0x228;
    /// SYSENTER_ESP.
    pub const SYSENTER_ESP: usize = 0x230;
    /// SYSENTER_EIP.
    pub const SYSENTER_EIP: usize = 0x238;
    /// CR2.
    pub const CR2: usize = 0x240;
    /// G_PAT.
    pub const G_PAT: usize = 0x268;
    /// Bytes shared with the VMCB state save area (ES .. LASTEXCPTO).
    pub const SAVE_AREA_LEN: usize = 0x298;
    /// RCX; the other GPRs follow (RDX, RBX, a reserved slot where RSP would be, RBP,
    /// RSI, RDI, R8..R15).
    pub const RCX: usize = 0x308;
    /// The general-purpose registers the VMCB does not hold (RCX .. R15).
    pub const GPRS: core::ops::Range<usize> = 0x308..0x380;
    /// SEV_FEATURES (SEV-SNP).
    pub const SEV_FEATURES: usize = 0x3b0;
    /// EVENTINJ (SEV-SNP; the same format as the VMCB's EVENTINJ, APM vol. 2 §15.20).
    pub const EVENT_INJ: usize = 0x3e0;
    /// XCR0.
    pub const XCR0: usize = 0x3e8;
}

/// VMSA size.
pub const VMSA_SIZE: usize = 4096;

/// A general-purpose register, numbered as in the x86 ModRM/REX encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gpr {
    /// RAX (0).
    Rax,
    /// RCX (1).
    Rcx,
    /// RDX (2).
    Rdx,
    /// RBX (3).
    Rbx,
    /// RSP (4).
    Rsp,
    /// RBP (5).
    Rbp,
    /// RSI (6).
    Rsi,
    /// RDI (7).
    Rdi,
    /// R8..R15 (8..15), by number.
    R(u8),
}

impl Gpr {
    /// The register's VMSA offset (APM vol. 2 appendix B: RAX 0x1F8, RSP 0x1D8, RCX 0x308,
    /// RDX 0x310, RBX 0x318, RBP 0x328, RSI 0x330, RDI 0x338, R8..R15 0x340..0x378).
    pub fn offset(self) -> usize {
        match self {
            Gpr::Rax => off::RAX,
            Gpr::Rsp => off::RSP,
            Gpr::Rcx => 0x308,
            Gpr::Rdx => 0x310,
            Gpr::Rbx => 0x318,
            Gpr::Rbp => 0x328,
            Gpr::Rsi => 0x330,
            Gpr::Rdi => 0x338,
            Gpr::R(n) => 0x340 + 8 * usize::from(n.clamp(8, 15) - 8),
        }
    }
}

/// A segment register as the VMSA holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Attributes (descriptor byte 5 in bits 7:0, byte 6 bits 7:4 in bits 11:8).
    pub attrib: u16,
    /// Limit.
    pub limit: u32,
    /// Base.
    pub base: u64,
}

impl Segment {
    /// The DPL (attribute bits 6:5).
    pub fn dpl(&self) -> u8 {
        ((self.attrib >> 5) & 3) as u8
    }

    /// The L bit (64-bit code segment; attribute bit 9).
    pub fn long(&self) -> bool {
        self.attrib & (1 << 9) != 0
    }
}

/// EFER bits (APM vol. 2 §3.1.7).
pub mod efer {
    /// Long mode active.
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
    /// SVM enable (VMRUN refuses a guest without it, APM vol. 2 §15.5.1; Linux sets it in
    /// every AP VMSA it makes).
    pub const SVME: u64 = 1 << 12;
}

/// RFLAGS.CF.
pub const RFLAGS_CF: u64 = 1;

/// EVENTINJ fields (APM vol. 2 §15.20, "Event Injection"): vector 7:0, type 10:8, EV
/// (error code valid) 11, V (valid) 31, error code 63:32.
pub mod event {
    /// Type 3: exception.
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
    /// Error code valid.
    pub const EV: u64 = 1 << 11;
    /// Valid.
    pub const VALID: u64 = 1 << 31;
}

/// One VMSA page.
#[derive(Clone, PartialEq, Eq)]
pub struct Vmsa(pub [u8; VMSA_SIZE]);

impl core::fmt::Debug for Vmsa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Vmsa {{ rip: {:#x}, rsp: {:#x}, rax: {:#x}, cpl: {}, vmpl: {} }}",
            self.rip(),
            self.rsp(),
            self.rax(),
            self.cpl(),
            self.vmpl()
        )
    }
}

macro_rules! u64_fields {
    ($($get:ident $set:ident $off:path;)*) => {
        $(
            #[doc = concat!("The `", stringify!($get), "` field.")]
            pub fn $get(&self) -> u64 {
                self.u64_at($off)
            }
            #[doc = concat!("Set the `", stringify!($get), "` field.")]
            pub fn $set(&mut self, v: u64) {
                self.set_u64_at($off, v)
            }
        )*
    };
}

impl Vmsa {
    /// An all-zero VMSA.
    pub fn zeroed() -> Vmsa {
        Vmsa([0; VMSA_SIZE])
    }

    /// The u64 at `o` (little-endian; `o + 8 <= 4096`, else 0).
    pub fn u64_at(&self, o: usize) -> u64 {
        let mut b = [0u8; 8];
        if let Some(s) = self.0.get(o..o + 8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    }

    /// Write the u64 at `o` (ignored when out of the page).
    pub fn set_u64_at(&mut self, o: usize, v: u64) {
        if let Some(s) = self.0.get_mut(o..o + 8) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }

    u64_fields! {
        efer set_efer off::EFER;
        cr0 set_cr0 off::CR0;
        cr2 set_cr2 off::CR2;
        cr3 set_cr3 off::CR3;
        cr4 set_cr4 off::CR4;
        dr6 set_dr6 off::DR6;
        dr7 set_dr7 off::DR7;
        rflags set_rflags off::RFLAGS;
        rip set_rip off::RIP;
        rsp set_rsp off::RSP;
        rax set_rax off::RAX;
        g_pat set_g_pat off::G_PAT;
        sev_features set_sev_features off::SEV_FEATURES;
        event_inj set_event_inj off::EVENT_INJ;
        xcr0 set_xcr0 off::XCR0;
    }

    /// A general-purpose register.
    pub fn gpr(&self, r: Gpr) -> u64 {
        self.u64_at(r.offset())
    }

    /// Set a general-purpose register.
    pub fn set_gpr(&mut self, r: Gpr, v: u64) {
        self.set_u64_at(r.offset(), v)
    }

    /// CPL (byte 0xCB).
    pub fn cpl(&self) -> u8 {
        self.0[off::CPL]
    }

    /// Set CPL.
    pub fn set_cpl(&mut self, cpl: u8) {
        self.0[off::CPL] = cpl;
    }

    /// The VMPL byte (0xCA).
    pub fn vmpl(&self) -> u8 {
        self.0[off::VMPL]
    }

    /// Set the VMPL byte.
    pub fn set_vmpl(&mut self, vmpl: u8) {
        self.0[off::VMPL] = vmpl;
    }

    /// The segment register at `o` (one of `off::ES` .. `off::TR`).
    pub fn segment(&self, o: usize) -> Segment {
        let w = |i: usize| u16::from_le_bytes([self.0[o + i], self.0[o + i + 1]]);
        Segment {
            selector: w(0),
            attrib: w(2),
            limit: u32::from(w(4)) | (u32::from(w(6)) << 16),
            base: self.u64_at(o + 8),
        }
    }

    /// Set the segment register at `o`.
    pub fn set_segment(&mut self, o: usize, s: Segment) {
        self.0[o..o + 2].copy_from_slice(&s.selector.to_le_bytes());
        self.0[o + 2..o + 4].copy_from_slice(&s.attrib.to_le_bytes());
        self.0[o + 4..o + 8].copy_from_slice(&s.limit.to_le_bytes());
        self.set_u64_at(o + 8, s.base);
    }

    /// Whether the vCPU runs 64-bit code (EFER.LMA and CS.L).
    pub fn in_64bit_mode(&self) -> bool {
        self.efer() & efer::LMA != 0 && self.segment(off::CS).long()
    }

    /// Set or clear RFLAGS.CF.
    pub fn set_cf(&mut self, cf: bool) {
        let f = self.rflags() & !RFLAGS_CF;
        self.set_rflags(f | u64::from(cf));
    }

    /// Queue exception `vector` (with `error_code` if given) for the next entry: the
    /// binary copies EVENTINJ into its VMCB (APM vol. 2 §15.20).
    pub fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        let mut e = u64::from(vector) | event::TYPE_EXCEPTION | event::VALID;
        if let Some(c) = error_code {
            e |= event::EV | (u64::from(c) << 32);
        }
        self.set_event_inj(e);
    }

    /// Write a result to EAX the way a 32-bit register write does in 64-bit mode: the
    /// upper half of RAX is zeroed (APM vol. 1 §3.1.2.3).
    pub fn set_eax(&mut self, v: u32) {
        self.set_rax(u64::from(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_the_apm_table() {
        // Spot values of APM vol. 2 appendix B (SEV-ES save area) that the GHCB spec also
        // names for its own save-area copy: RAX 0x1F8, RCX 0x308, RDX 0x310, RBX 0x318,
        // CPL 0x0CB, XCR0 0x3E8.
        assert_eq!(Gpr::Rax.offset(), 0x1f8);
        assert_eq!(Gpr::Rcx.offset(), 0x308);
        assert_eq!(Gpr::Rdx.offset(), 0x310);
        assert_eq!(Gpr::Rbx.offset(), 0x318);
        assert_eq!(Gpr::R(8).offset(), 0x340);
        assert_eq!(Gpr::R(15).offset(), 0x378);
        assert_eq!(off::GPRS.end, Gpr::R(15).offset() + 8);
        assert_eq!(
            (off::CPL, off::XCR0, off::SEV_FEATURES),
            (0xcb, 0x3e8, 0x3b0)
        );
    }

    #[test]
    fn the_reset_vmsa_reads_back_through_the_typed_view() {
        let v = Vmsa(crate::reset_vmsa::reset_vmsa(0xffff_fff0, 1, 0x800f12));
        let cs = v.segment(off::CS);
        assert_eq!((cs.selector, cs.attrib, cs.limit), (0xf000, 0x9b, 0xffff));
        assert_eq!(cs.base, 0xffff_0000);
        assert_eq!(v.rip(), 0xfff0);
        assert_eq!(v.gpr(Gpr::Rdx), 0x800f12);
        assert_eq!(v.efer(), efer::SVME);
        assert_eq!(v.sev_features(), 1);
        assert_eq!(v.xcr0(), 1);
        assert!(!v.in_64bit_mode());
    }

    #[test]
    fn setters_write_little_endian_at_their_offsets() {
        let mut v = Vmsa::zeroed();
        v.set_rip(0x1122_3344_5566_7788);
        assert_eq!(&v.0[0x178..0x180], &0x1122_3344_5566_7788u64.to_le_bytes());
        v.set_segment(
            off::TR,
            Segment {
                selector: 0x28,
                attrib: 0x89,
                limit: 0x67,
                base: 0xffff_8000_0000_1000,
            },
        );
        assert_eq!(&v.0[0x90..0x92], &[0x28, 0]);
        assert_eq!(v.segment(off::TR).base, 0xffff_8000_0000_1000);
        v.set_rax(u64::MAX);
        v.set_eax(7);
        assert_eq!(v.rax(), 7);
        v.set_cf(true);
        assert_eq!(v.rflags(), 1);
        v.set_cf(false);
        assert_eq!(v.rflags(), 0);
    }

    #[test]
    fn injected_exception_has_the_eventinj_format() {
        let mut v = Vmsa::zeroed();
        v.inject_exception(14, Some(0x11));
        assert_eq!(v.event_inj(), 14 | 3 << 8 | 1 << 11 | 1 << 31 | 0x11 << 32);
        v.inject_exception(6, None);
        assert_eq!(v.event_inj(), 6 | 3 << 8 | 1 << 31);
    }

    #[test]
    fn out_of_page_accesses_are_ignored() {
        let mut v = Vmsa::zeroed();
        v.set_u64_at(4092, 1);
        assert_eq!(v.u64_at(4092), 0);
    }
}
