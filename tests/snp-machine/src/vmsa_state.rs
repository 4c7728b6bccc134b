//! Moving a vCPU's state between an SNP VMSA page and a VMCB plus the VMRUN register
//! block.
//!
//! Layout (AMD APM vol. 2 appendix B, tables B-2 and B-4): the VMSA's first 0x298 bytes
//! have the layout of the VMCB state-save area (segments, CPL, EFER, control registers,
//! RIP, RSP, RAX, the syscall MSRs, CR2, G_PAT, ...), so they are copied as bytes. The
//! general registers that VMRUN does not switch sit after it: RCX 0x308, RDX 0x310,
//! RBX 0x318, RBP 0x328, RSI 0x330, RDI 0x338, R8..R15 0x340..0x378 (RSP 0x320 is unused:
//! the save area's 0x1D8 is the one loaded). EVENTINJ is at 0x3E0 (the SEV-ES save area,
//! Linux `struct sev_es_save_area`, `event_inj`).
//!
//! EFER: VMRUN refuses a guest without EFER.SVME (APM vol. 2 15.5.1, "canonicalization
//! and consistency checks"), so the VMCB copy always has it; the VMSA keeps the value the
//! guest or the launch gave it.

use bare::svm::vmcb::{eventinj, Vmcb, SHARED_WITH_VMSA};
use bare::svm::Gprs;
use zerocopy::IntoBytes;

/// A VMSA page.
pub type VmsaPage = [u8; 4096];

/// EFER.SVME.
pub const EFER_SVME: u64 = 1 << 12;
/// EFER's offset in the save area and the VMSA.
const EFER: usize = 0xd0;
/// EVENTINJ's offset in the VMSA.
pub const EVENT_INJ: usize = 0x3e0;

/// The VMSA offsets of the registers in [`Gprs`], in its field order.
const GPR_OFFSETS: [usize; 14] = [
    0x318, // rbx
    0x308, // rcx
    0x310, // rdx
    0x330, // rsi
    0x338, // rdi
    0x328, // rbp
    0x340, 0x348, 0x350, 0x358, 0x360, 0x368, 0x370, 0x378, // r8..r15
];

fn get(vmsa: &VmsaPage, off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&vmsa[off..off + 8]);
    u64::from_le_bytes(b)
}

fn put(vmsa: &mut VmsaPage, off: usize, v: u64) {
    vmsa[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn gprs_as_array(g: &mut Gprs) -> [&mut u64; 14] {
    [
        &mut g.rbx, &mut g.rcx, &mut g.rdx, &mut g.rsi, &mut g.rdi, &mut g.rbp, &mut g.r8,
        &mut g.r9, &mut g.r10, &mut g.r11, &mut g.r12, &mut g.r13, &mut g.r14, &mut g.r15,
    ]
}

/// Loads `vmsa` into the save area of `vmcb` (with EFER.SVME forced on) and returns the
/// register block. A valid EVENTINJ in the VMSA is put into the control area; otherwise
/// `pending` (an event the last exit interrupted, from EXITINTINFO) is.
pub fn load(vmcb: &mut Vmcb, vmsa: &VmsaPage, pending: u64) -> Gprs {
    vmcb.save.as_mut_bytes()[..SHARED_WITH_VMSA].copy_from_slice(&vmsa[..SHARED_WITH_VMSA]);
    vmcb.save.efer |= EFER_SVME;
    let ev = get(vmsa, EVENT_INJ);
    vmcb.control.event_inj = if ev & eventinj::VALID != 0 {
        ev
    } else {
        pending
    };
    let mut g = Gprs::default();
    for (slot, off) in gprs_as_array(&mut g).into_iter().zip(GPR_OFFSETS) {
        *slot = get(vmsa, off);
    }
    g
}

/// Writes the state after a #VMEXIT back into `vmsa`: the save area, EFER as the VMSA
/// had it before `load` apart from SVME (which only the VMCB copy carries), and the
/// register block. EVENTINJ in the VMSA is left for the caller (the machine clears it).
pub fn store(vmcb: &Vmcb, gprs: &Gprs, vmsa: &mut VmsaPage) {
    let had_svme = get(vmsa, EFER) & EFER_SVME != 0;
    vmsa[..SHARED_WITH_VMSA].copy_from_slice(&vmcb.save.as_bytes()[..SHARED_WITH_VMSA]);
    if !had_svme {
        put(vmsa, EFER, vmcb.save.efer & !EFER_SVME);
    }
    let mut g = *gprs;
    for (slot, off) in gprs_as_array(&mut g).into_iter().zip(GPR_OFFSETS) {
        put(vmsa, off, *slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn vmsa_with(fields: &[(usize, u64)]) -> VmsaPage {
        let mut v = [0u8; 4096];
        for &(off, val) in fields {
            put(&mut v, off, val);
        }
        v
    }

    #[test]
    fn registers_land_at_the_apm_offsets() {
        // RIP 0x178, RSP 0x1D8, RAX 0x1F8 (save area); RCX.. after it.
        let v = vmsa_with(&[
            (0x178, 0x1000),
            (0x1d8, 0x8000),
            (0x1f8, 0xa),
            (0x308, 0xc),
            (0x310, 0xd),
            (0x318, 0xb),
            (0x328, 0xbb),
            (0x330, 0x51),
            (0x338, 0xd1),
            (0x340, 8),
            (0x378, 15),
        ]);
        let mut vmcb = Vmcb::new_zeroed();
        let g = load(&mut vmcb, &v, 0);
        assert_eq!(
            (vmcb.save.rip, vmcb.save.rsp, vmcb.save.rax),
            (0x1000, 0x8000, 0xa)
        );
        assert_eq!((g.rcx, g.rdx, g.rbx, g.rbp), (0xc, 0xd, 0xb, 0xbb));
        assert_eq!((g.rsi, g.rdi, g.r8, g.r15), (0x51, 0xd1, 8, 15));
    }

    #[test]
    fn svme_is_forced_in_the_vmcb_only() {
        let mut v = vmsa_with(&[(EFER, 0x500)]);
        let mut vmcb = Vmcb::new_zeroed();
        let g = load(&mut vmcb, &v, 0);
        assert_eq!(vmcb.save.efer, 0x500 | EFER_SVME);
        vmcb.save.rip = 0x2000;
        store(&vmcb, &g, &mut v);
        assert_eq!(get(&v, EFER), 0x500, "the VMSA keeps EFER without SVME");
        assert_eq!(get(&v, 0x178), 0x2000);
        // A VMSA that had SVME keeps it.
        let mut v = vmsa_with(&[(EFER, 0x500 | EFER_SVME)]);
        let g = load(&mut vmcb, &v, 0);
        store(&vmcb, &g, &mut v);
        assert_eq!(get(&v, EFER), 0x500 | EFER_SVME);
    }

    #[test]
    fn registers_round_trip_through_a_run() {
        let mut v = vmsa_with(&[(0x310, 1)]);
        let mut vmcb = Vmcb::new_zeroed();
        let mut g = load(&mut vmcb, &v, 0);
        g.rdx = 0x1234;
        g.r11 = 0x11;
        store(&vmcb, &g, &mut v);
        assert_eq!((get(&v, 0x310), get(&v, 0x358)), (0x1234, 0x11));
    }

    #[test]
    fn the_vmsa_event_wins_over_a_pending_one() {
        let ud = eventinj::VALID | eventinj::TYPE_EXCEPTION | 6;
        let gp = eventinj::VALID | eventinj::TYPE_EXCEPTION | 13;
        let mut vmcb = Vmcb::new_zeroed();
        load(&mut vmcb, &vmsa_with(&[(EVENT_INJ, ud)]), gp);
        assert_eq!(vmcb.control.event_inj, ud);
        load(&mut vmcb, &vmsa_with(&[]), gp);
        assert_eq!(vmcb.control.event_inj, gp);
        load(&mut vmcb, &vmsa_with(&[]), 0);
        assert_eq!(vmcb.control.event_inj, 0);
    }
}
