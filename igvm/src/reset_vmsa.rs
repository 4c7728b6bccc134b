//! The initial VMSAs that a VMM (QEMU/KVM, AWS EC2, Google GCE) creates for an SEV-ES or
//! SEV-SNP guest whose firmware starts at the x86 reset vector, and the 32-bit VMSA that
//! COCONUT's QEMU branch created for a pre-IGVM SVSM image. These are what the PSP
//! measures as VMSA pages, so they must be right to the byte.
//!
//! The values are the architectural reset state as each VMM programs it (APM vol. 2,
//! "Processor initialization state"), with the VMM-specific differences sev-snp-measure
//! documents: segment attribute bytes, RDX (the CPUID signature on QEMU), MXCSR/FCW and
//! G_PAT. The x87 control word is a named [`LoaderRules`](crate::LoaderRules)-style choice
//! ([`Fpu`]) instead of a special case: KVM hosts before Linux 6.x left FCW (and on some
//! VMMs MXCSR) at 0 in the VMSA they measured.

use serde::Serialize;
use svsm_abi::vmsa::{VmcbSegment, Vmsa};
use zerocopy::{FromZeros, IntoBytes};

/// The VMM that builds the VMSAs (sev-snp-measure's `--vmm-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[allow(non_camel_case_types)]
pub enum VmmType {
    /// QEMU with KVM.
    #[value(name = "QEMU", alias = "qemu")]
    QEMU,
    /// AWS EC2 (Nitro).
    #[value(name = "ec2")]
    ec2,
    /// Google Compute Engine.
    #[value(name = "gce")]
    gce,
}

/// The x87/SSE control state written into measured VMSAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fpu {
    /// The VMM's own values (QEMU/KVM on Linux >= 6.x: FCW 0x37F, MXCSR 0x1F80; EC2 and
    /// GCE: both 0).
    VmmDefault,
    /// The VMM's MXCSR but FCW left at 0, as KVM hosts of the Linux 5.19/6.0 era did
    /// (needed for the two hardware-read digests of the fixtures, and what sev-snp-measure
    /// 0.0.13 does in `snp:svsm` mode without saying so).
    FcwZero,
}

/// The reset EIP of the boot CPU.
pub const BSP_EIP: u32 = 0xFFFF_FFF0;
/// The G_PAT reset value (APM vol. 2, PAT MSR).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// The VMSA of a vCPU that starts in real mode at `eip` (CS base = eip & 0xFFFF0000,
/// RIP = eip & 0xFFFF), as `vmm` programs it.
pub fn reset_vmsa(eip: u32, sev_features: u64, vcpu_sig: u32, vmm: VmmType, fpu: Fpu) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let (cs_flags, ss_flags, tr_flags, rdx, mxcsr, mut fcw, g_pat) = match vmm {
        VmmType::QEMU => (
            0x9b,
            0x93,
            0x8b,
            u64::from(vcpu_sig),
            0x1f80,
            0x37f,
            PAT_RESET,
        ),
        VmmType::ec2 => (
            if eip == BSP_EIP { 0x9a } else { 0x9b },
            0x92,
            0x83,
            0x600,
            0,
            0,
            PAT_RESET,
        ),
        VmmType::gce => (0x9b, 0x93, 0x8b, 0x600, 0, 0, 0x0007_0106),
    };
    if fpu == Fpu::FcwZero {
        fcw = 0;
    }
    v.es = VmcbSegment::new(0, 0x93, 0xffff, 0);
    v.cs = VmcbSegment::new(0xf000, cs_flags, 0xffff, u64::from(eip & 0xffff_0000));
    v.ss = VmcbSegment::new(0, ss_flags, 0xffff, 0);
    v.ds = VmcbSegment::new(0, 0x93, 0xffff, 0);
    v.fs = VmcbSegment::new(0, 0x93, 0xffff, 0);
    v.gs = VmcbSegment::new(0, 0x93, 0xffff, 0);
    v.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, 0x82, 0xffff, 0);
    v.tr = VmcbSegment::new(0, tr_flags, 0xffff, 0);
    v.efer = 0x1000; // KVM sets EFER.SVME
    v.cr4 = 0x40; // KVM sets CR4.MCE
    v.cr0 = 0x10;
    v.dr7 = 0x400;
    v.dr6 = 0xffff_0ff0;
    v.rflags = 0x2;
    v.rip = u64::from(eip & 0xffff);
    v.g_pat = g_pat;
    v.rdx = rdx;
    v.sev_features = sev_features;
    v.xcr0 = 1;
    v.mxcsr = mxcsr;
    v.x87_fcw = fcw;
    v
}

/// The VMSA COCONUT's QEMU branch built for every vCPU of a pre-IGVM SVSM image: flat
/// 32-bit protected mode at `eip`, SEV features 0x1.
pub fn svsm_legacy_vmsa(eip: u64, vcpu_sig: u32, fpu: Fpu) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    v.es = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.cs = VmcbSegment::new(8, 0xc9b, 0xffff_ffff, 0);
    v.ss = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.ds = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.fs = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.gs = VmcbSegment::new(0, 0x093, 0xffff, 0);
    v.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, 0x82, 0xffff, 0);
    v.tr = VmcbSegment::new(0, 0x8b, 0xffff, 0);
    v.efer = 0x1000;
    v.cr4 = 0x40;
    v.cr0 = 0x11;
    v.dr7 = 0x400;
    v.dr6 = 0xffff_0ff0;
    v.rflags = 0x2;
    v.rip = eip;
    v.g_pat = PAT_RESET;
    v.rdx = u64::from(vcpu_sig);
    v.sev_features = 0x1;
    v.xcr0 = 1;
    v.mxcsr = 0x1f80;
    v.x87_fcw = if fpu == Fpu::FcwZero { 0 } else { 0x37f };
    v
}

/// The VMSA as a 4 KiB page.
pub fn to_page(v: &Vmsa) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// CPU signature (CPUID Fn0000_0001_EAX) from family, model and stepping (AMD #25481).
pub fn cpu_sig(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) = if family > 0xf {
        (0xf, (family - 0xf) & 0xff)
    } else {
        (family, 0)
    };
    (family_high << 20)
        | (((model >> 4) & 0xf) << 16)
        | (family_low << 8)
        | ((model & 0xf) << 4)
        | (stepping & 0xf)
}

/// The vCPU types of QEMU's built-in x86 models that sev-snp-measure knows, with their
/// signatures.
pub fn vcpu_types() -> Vec<(&'static str, u32)> {
    let epyc = cpu_sig(23, 1, 2);
    let rome = cpu_sig(23, 49, 0);
    let milan = cpu_sig(25, 1, 1);
    let genoa = cpu_sig(25, 17, 0);
    vec![
        ("EPYC", epyc),
        ("EPYC-v1", epyc),
        ("EPYC-v2", epyc),
        ("EPYC-IBPB", epyc),
        ("EPYC-v3", epyc),
        ("EPYC-v4", epyc),
        ("EPYC-Rome", rome),
        ("EPYC-Rome-v1", rome),
        ("EPYC-Rome-v2", rome),
        ("EPYC-Rome-v3", rome),
        ("EPYC-Milan", milan),
        ("EPYC-Milan-v1", milan),
        ("EPYC-Milan-v2", milan),
        ("EPYC-Genoa", genoa),
        ("EPYC-Genoa-v1", genoa),
        ("EPYC-Turin", cpu_sig(26, 0, 0)),
    ]
}

/// The signature of a named vCPU type.
pub fn vcpu_type_sig(name: &str) -> Option<u32> {
    vcpu_types()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(vcpu_type_sig("EPYC-v4"), Some(0x800f12));
        assert_eq!(vcpu_type_sig("EPYC-Milan"), Some(0xa00f11));
        assert_eq!(vcpu_type_sig("EPYC-Genoa"), Some(0xa10f10));
        assert_eq!(vcpu_type_sig("EPYC-Turin"), Some(0xb00f00));
        assert_eq!(vcpu_type_sig("i486"), None);
    }

    #[test]
    fn qemu_bsp_fields() {
        let v = reset_vmsa(BSP_EIP, 0x21, 0x800f12, VmmType::QEMU, Fpu::VmmDefault);
        assert_eq!(v.rip, 0xfff0);
        assert_eq!(v.cs.base, 0xffff_0000);
        assert_eq!(v.x87_fcw, 0x37f);
        assert_eq!(v.rdx, 0x800f12);
        let z = reset_vmsa(BSP_EIP, 0x21, 0x800f12, VmmType::QEMU, Fpu::FcwZero);
        assert_eq!(z.x87_fcw, 0);
        assert_eq!(z.mxcsr, 0x1f80);
        let e = reset_vmsa(BSP_EIP, 1, 0, VmmType::ec2, Fpu::VmmDefault);
        assert_eq!((e.cs.attrib, e.rdx, e.mxcsr), (0x9a, 0x600, 0));
    }
}
