//! Guest vCPUs: their VMCBs, built for the boot vCPU by Vigil (as an IGVM loader would
//! build a 64-bit VMSA) and for later vCPUs from the VMSA the guest gave CREATE_VCPU
//! (which the monitor checked, and which the guest can no longer touch).

use alloc::boxed::Box;

use bare::svm::vmcb::{intercept3, intercept4, Vmcb, NP_ENABLE, V_INTR_MASKING};
use svsm_abi::vmsa::{VmcbSegment, Vmsa};
use zerocopy::FromZeros;

use bare::svm::Gprs;

/// CR0: PE, MP, ET, NE, WP, PG.
pub const GUEST_CR0: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// CR4: PAE, OSFXSR, OSXMMEXCPT.
pub const GUEST_CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
/// EFER: SCE, LME, LMA, NXE, SVME (VMRUN requires SVME in the guest's EFER).
pub const GUEST_EFER: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12);
/// The guest's ASID (0 is the host's).
pub const GUEST_ASID: u32 = 1;

/// One guest vCPU.
pub struct GuestVcpu {
    /// APIC ID.
    pub apic_id: u32,
    /// The VMCB (page aligned, on the identity-mapped heap).
    pub vmcb: Box<Vmcb>,
    /// Registers VMRUN does not switch.
    pub gprs: Gprs,
    /// The virtual GHCB MSR.
    pub ghcb_msr: u64,
    /// The VMSA page it was created from (None for the boot vCPU).
    pub vmsa: Option<u64>,
}

/// Fills the control area: intercepts, permission maps, ASID, nested paging.
pub fn init_control(v: &mut Vmcb, iopm_pa: u64, msrpm_pa: u64, n_cr3: u64) {
    let c = &mut v.control;
    c.intercept_misc1 = intercept3::CPUID
        | intercept3::HLT
        | intercept3::IOIO_PROT
        | intercept3::MSR_PROT
        | intercept3::SHUTDOWN;
    c.intercept_misc2 = intercept4::VMRUN
        | intercept4::VMMCALL
        | intercept4::VMLOAD
        | intercept4::VMSAVE
        | intercept4::STGI
        | intercept4::CLGI
        | intercept4::SKINIT
        | intercept4::XSETBV;
    c.iopm_base_pa = iopm_pa;
    c.msrpm_base_pa = msrpm_pa;
    c.guest_asid = GUEST_ASID;
    // The guest's IF masks only virtual interrupts; physical ones stay masked by Vigil's
    // own IF (always clear), so the host's timer never reaches the guest.
    c.vintr = V_INTR_MASKING;
    c.np_enable = NP_ENABLE;
    c.n_cr3 = n_cr3;
}

fn code64() -> VmcbSegment {
    // Selector 0x08; P, S, type 0xB (execute/read, accessed), L.
    VmcbSegment::new(0x08, 0x029b, 0xffff_ffff, 0)
}
fn data64() -> VmcbSegment {
    // Selector 0x10; P, S, type 0x3 (read/write, accessed), D/B, G.
    VmcbSegment::new(0x10, 0x0c93, 0xffff_ffff, 0)
}

/// The boot vCPU in 64-bit mode: CR3 = the guest's tables, RIP = entry, RSP = stack,
/// RSI = secrets page, and the rest of the emulated boot protocol in RDI/RDX/RCX.
pub fn boot_vcpu(vmcb: &mut Vmcb, cr3: u64, rip: u64, rsp: u64, args: [u64; 4]) -> Gprs {
    let s = &mut vmcb.save;
    s.cs = code64();
    for seg in [&mut s.ds, &mut s.es, &mut s.ss, &mut s.fs, &mut s.gs] {
        *seg = data64();
    }
    s.ldtr = VmcbSegment::new(0, 0x0082, 0xffff, 0);
    s.tr = VmcbSegment::new(0, 0x008b, 0xffff, 0);
    s.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    s.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    s.cr0 = GUEST_CR0;
    s.cr3 = cr3;
    s.cr4 = GUEST_CR4;
    s.efer = GUEST_EFER;
    s.rflags = 0x2;
    s.rip = rip;
    s.rsp = rsp;
    s.dr6 = 0xffff_0ff0;
    s.dr7 = 0x400;
    s.g_pat = 0x0007_0406_0007_0406;
    s.cpl = 0;
    Gprs {
        rsi: args[0],
        rdi: args[1],
        rdx: args[2],
        rcx: args[3],
        ..Gprs::default()
    }
}

/// A vCPU from a checked VMSA: the save-area fields the two layouts share, the
/// general registers the VMSA holds, and EFER with SVME (the monitor required it).
pub fn from_vmsa(vmcb: &mut Vmcb, vmsa: &Vmsa) -> Gprs {
    let s = &mut vmcb.save;
    s.es = vmsa.es;
    s.cs = vmsa.cs;
    s.ss = vmsa.ss;
    s.ds = vmsa.ds;
    s.fs = vmsa.fs;
    s.gs = vmsa.gs;
    s.gdtr = vmsa.gdtr;
    s.ldtr = vmsa.ldtr;
    s.idtr = vmsa.idtr;
    s.tr = vmsa.tr;
    s.cpl = vmsa.cpl;
    s.efer = vmsa.efer;
    s.cr0 = vmsa.cr0;
    s.cr3 = vmsa.cr3;
    s.cr4 = vmsa.cr4;
    s.dr6 = vmsa.dr6;
    s.dr7 = vmsa.dr7;
    s.rflags = vmsa.rflags;
    s.rip = vmsa.rip;
    s.rsp = vmsa.rsp;
    s.rax = vmsa.rax;
    s.g_pat = vmsa.g_pat;
    Gprs {
        rbx: vmsa.rbx,
        rcx: vmsa.rcx,
        rdx: vmsa.rdx,
        rsi: vmsa.rsi,
        rdi: vmsa.rdi,
        rbp: vmsa.rbp,
        r8: vmsa.r8,
        r9: vmsa.r9,
        r10: vmsa.r10,
        r11: vmsa.r11,
        r12: vmsa.r12,
        r13: vmsa.r13,
        r14: vmsa.r14,
        r15: vmsa.r15,
    }
}

/// A zeroed VMCB on the heap.
pub fn new_vmcb() -> Box<Vmcb> {
    Box::new(Vmcb::new_zeroed())
}

/// Translates a guest-virtual address through the guest's 4-level tables at `cr3`,
/// reading table entries with `read` (None when unreadable). Handles 1 GiB and 2 MiB
/// pages. Used to find the instruction at RIP (no next-RIP save under QEMU).
pub fn guest_virt_to_phys(
    cr3: u64,
    va: u64,
    read: &mut dyn FnMut(u64) -> Option<u64>,
) -> Option<u64> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let mut table = cr3 & ADDR;
    for level in (1..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 0x1ff;
        let e = read(table + idx * 8)?;
        if e & 1 == 0 {
            return None;
        }
        if (level == 2 || level == 3) && e & 0x80 != 0 {
            let size = 1u64 << (12 + 9 * (level - 1));
            return Some((e & ADDR & !(size - 1)) | (va & (size - 1)));
        }
        table = e & ADDR;
    }
    Some(table | (va & 0xfff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn walks_2m_and_4k_pages() {
        let mut m: HashMap<u64, u64> = HashMap::new();
        m.insert(0x1000, 0x2000 | 3);
        m.insert(0x2000, 0x3000 | 3);
        m.insert(0x3000 + 8 * 8, 0x100_0000 | 0x83); // 2 MiB page at 16 MiB
        m.insert(0x3000, 0x4000 | 3);
        m.insert(0x4000 + 5 * 8, 0x7000 | 3);
        let mut rd = |a: u64| m.get(&a).copied();
        assert_eq!(
            guest_virt_to_phys(0x1000, 0x100_0123, &mut rd),
            Some(0x100_0123)
        );
        assert_eq!(guest_virt_to_phys(0x1000, 0x5abc, &mut rd), Some(0x7abc));
        assert_eq!(guest_virt_to_phys(0x1000, 0x6000, &mut rd), None);
    }

    #[test]
    fn vmsa_state_carries_over() {
        let mut vmsa = Vmsa::new_zeroed();
        vmsa.rip = 0x100_2000;
        vmsa.rsp = 0x120_0000;
        vmsa.efer = GUEST_EFER;
        vmsa.cs = code64();
        vmsa.rdi = 7;
        vmsa.r15 = 9;
        let mut v = new_vmcb();
        let g = from_vmsa(&mut v, &vmsa);
        assert_eq!(v.save.rip, 0x100_2000);
        assert_eq!(v.save.rsp, 0x120_0000);
        assert_eq!(v.save.efer, GUEST_EFER);
        assert_eq!(v.save.cs, code64());
        assert_eq!((g.rdi, g.r15), (7, 9));
    }

    #[test]
    fn control_area_meets_vmrun_requirements() {
        let mut v = new_vmcb();
        init_control(&mut v, 0x1000, 0x4000, 0x9000);
        assert_ne!(v.control.intercept_misc2 & intercept4::VMRUN, 0);
        assert_ne!(v.control.guest_asid, 0);
        assert_eq!(v.control.np_enable & NP_ENABLE, NP_ENABLE);
        let mut v2 = new_vmcb();
        boot_vcpu(&mut v2, 0, 0, 0, [0; 4]);
        assert_ne!(v2.save.efer & (1 << 12), 0, "guest EFER must have SVME");
    }
}
