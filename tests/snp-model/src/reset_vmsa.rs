//! The VMSA KVM measures for a vCPU that starts from reset (x86 reset state as KVM sets
//! it, synced into the save area by `sev_es_sync_vmsa` before SNP_LAUNCH_UPDATE).
//!
//! Offsets are those of the SEV-ES save area (APM vol. 2 appendix B, table "VMSA Layout,
//! State Save Area for SEV-ES"; Linux `struct sev_es_save_area`). Values: real mode,
//! CS selector 0xF000 with base = EIP & 0xFFFF0000 and RIP = EIP & 0xFFFF; segment
//! attributes as QEMU gives them to KVM (code 0x9B, data 0x93, LDT 0x82, TSS 0x8B);
//! EFER.SVME (KVM keeps it set for SEV-ES), CR4.MCE, CR0.ET, DR6/DR7 reset values,
//! RFLAGS bit 1, the reset PAT, RDX = the CPUID signature, XCR0 = 1, MXCSR 0x1F80 and the
//! x87 control word 0x37F (KVM syncs the FPU state since Linux 6.x; older hosts left 0).

/// VMCB segment offsets: ES, CS, SS, DS, FS, GS, GDTR, LDTR, IDTR, TR (16 bytes each:
/// selector u16, attributes u16, limit u32, base u64).
const SEG_ES: usize = 0x000;
const SEG_CS: usize = 0x010;
const SEG_SS: usize = 0x020;
const SEG_DS: usize = 0x030;
const SEG_FS: usize = 0x040;
const SEG_GS: usize = 0x050;
const SEG_GDTR: usize = 0x060;
const SEG_LDTR: usize = 0x070;
const SEG_IDTR: usize = 0x080;
const SEG_TR: usize = 0x090;
const EFER: usize = 0x0d0;
const CR4: usize = 0x148;
const CR0: usize = 0x158;
const DR7: usize = 0x160;
const DR6: usize = 0x168;
const RFLAGS: usize = 0x170;
const RIP: usize = 0x178;
const G_PAT: usize = 0x268;
const RDX: usize = 0x310;
const SEV_FEATURES: usize = 0x3b0;
const XCR0: usize = 0x3e8;
const MXCSR: usize = 0x408;
const X87_FCW: usize = 0x410;

/// The reset value of the PAT MSR (APM vol. 2 §A.3).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;

fn seg(v: &mut [u8; 4096], o: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
    v[o..o + 2].copy_from_slice(&selector.to_le_bytes());
    v[o + 2..o + 4].copy_from_slice(&attrib.to_le_bytes());
    v[o + 4..o + 8].copy_from_slice(&limit.to_le_bytes());
    v[o + 8..o + 16].copy_from_slice(&base.to_le_bytes());
}

fn q(v: &mut [u8; 4096], o: usize, x: u64) {
    v[o..o + 8].copy_from_slice(&x.to_le_bytes());
}

/// The reset-state VMSA of a vCPU starting at `eip` (0xFFFFFFF0 for the boot CPU; the
/// firmware's AP reset address for the others).
pub fn reset_vmsa(eip: u32, sev_features: u64, vcpu_sig: u32) -> [u8; 4096] {
    let mut v = [0u8; 4096];
    for o in [SEG_ES, SEG_DS, SEG_FS, SEG_GS] {
        seg(&mut v, o, 0, 0x93, 0xffff, 0);
    }
    seg(
        &mut v,
        SEG_CS,
        0xf000,
        0x9b,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    seg(&mut v, SEG_SS, 0, 0x93, 0xffff, 0);
    seg(&mut v, SEG_GDTR, 0, 0, 0xffff, 0);
    seg(&mut v, SEG_IDTR, 0, 0, 0xffff, 0);
    seg(&mut v, SEG_LDTR, 0, 0x82, 0xffff, 0);
    seg(&mut v, SEG_TR, 0, 0x8b, 0xffff, 0);
    q(&mut v, EFER, 0x1000);
    q(&mut v, CR4, 0x40);
    q(&mut v, CR0, 0x10);
    q(&mut v, DR7, 0x400);
    q(&mut v, DR6, 0xffff_0ff0);
    q(&mut v, RFLAGS, 0x2);
    q(&mut v, RIP, u64::from(eip & 0xffff));
    q(&mut v, G_PAT, PAT_RESET);
    q(&mut v, RDX, u64::from(vcpu_sig));
    q(&mut v, SEV_FEATURES, sev_features);
    q(&mut v, XCR0, 1);
    v[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
    v[X87_FCW..X87_FCW + 2].copy_from_slice(&0x37fu16.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_cpu_starts_at_the_reset_vector() {
        let v = reset_vmsa(0xffff_fff0, 1, 0x800f12);
        assert_eq!(&v[0x10..0x12], &0xf000u16.to_le_bytes());
        assert_eq!(&v[0x18..0x20], &0xffff_0000u64.to_le_bytes());
        assert_eq!(&v[0x178..0x180], &0xfff0u64.to_le_bytes());
        assert_eq!(&v[0x310..0x318], &0x800f12u64.to_le_bytes());
        assert_eq!(&v[0x3b0..0x3b8], &1u64.to_le_bytes());
    }
}
