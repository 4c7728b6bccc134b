//! The VMSA of the probe's VMPL2 context: flat 32-bit protected mode without paging (the
//! same register state `vigil-igvm build` gives the boot VMSA: CS 0x8 with attributes
//! 0xC9B, data segments 0x10 with 0xC93, CR0 = PE | ET, EFER = SVME, CR4 = MCE), VMPL 2,
//! RIP at the VMPL2 entry code, SEV_FEATURES = SNP active only (what the model's host
//! expects of VMPL2 VMSAs by default; the AP-creation exit passes the same value in RAX).
//! Layout: `svsm_abi::vmsa::Vmsa` (APM vol. 2 appendix B, VMSA).

use svsm_abi::vmsa::{SevFeatures, VmcbSegment, Vmsa};
use zerocopy::FromZeros;

/// The VMPL the probe creates.
pub const VMPL: u8 = 2;
/// The SEV features of its VMSA.
pub const SEV_FEATURES: u64 = SevFeatures::SNP_ACTIVE.bits();
/// The value the VMPL2 code leaves in RBX before it exits to VMPL0 ("VPL2" in ASCII, little-endian),
/// which VMPL0 reads back from the VMSA.
pub const MARKER: u32 = 0x324c_5056;
/// G_PAT's reset value (APM vol. 2 §7.8.2).
const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// The VMSA that starts at `entry` (a GPA below 4 GiB).
pub fn vmsa(entry: u64) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let code = VmcbSegment::new(8, 0xc9b, 0xffff_ffff, 0);
    let data = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.cs = code;
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, 0x82, 0xffff, 0);
    v.tr = VmcbSegment::new(0, 0x8b, 0xffff, 0);
    v.vmpl = VMPL;
    v.efer = 0x1000;
    v.cr0 = 0x11;
    v.cr4 = 0x40;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.rflags = 0x2;
    v.rip = entry;
    v.g_pat = PAT_RESET;
    v.xcr0 = 1;
    v.mxcsr = 0x1f80;
    v.x87_fcw = 0x37f;
    v.sev_features = SEV_FEATURES;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn fields_at_their_offsets() {
        let v = vmsa(0x10_3000);
        let b = v.as_bytes();
        let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(b[0xcb - 1], 2, "VMPL at 0x0CA");
        assert_eq!(q(0x178), 0x10_3000, "RIP");
        assert_eq!(q(0x3b0), 1, "SEV_FEATURES");
        assert_eq!(q(0x0d0), 0x1000, "EFER");
        assert_eq!(q(0x158), 0x11, "CR0");
    }
}
