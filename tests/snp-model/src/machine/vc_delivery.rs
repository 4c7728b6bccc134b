//! #VC delivered in software: QEMU's event injection pushes no error code for vector 29,
//! so the machine reads what the CPU would read (the IDT gate, the target code
//! segment's descriptor, the TSS stacks; APM vol. 2 §8.9.3, §4.8.4, §12.2.5), lets
//! `vc::deliver` compute the frame and new state (APM vol. 2 §15.35.5), writes the frame
//! to the guest's stack and loads the new state into the VMSA.

use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::guest::GuestFault;
use crate::machine::stop::{Stop, VcFailure};
use crate::machine::vmsa::{efer, off, Segment, Vmsa};
use crate::machine::walk::LinearAccess;
use crate::machine::Machine;
use crate::vc::{self, Gate, Tss, VC_VECTOR};

/// Size of the 64-bit TSS (APM vol. 2 §12.2.5): RSP0 at 4, RSP1 at 12, RSP2 at 20, IST1
/// to IST7 at 36..92.
const TSS_LEN: usize = 104;

const SUPERVISOR_READ: LinearAccess = LinearAccess {
    write: false,
    fetch: false,
    user: false,
};

fn failed((la, f): (u64, GuestFault)) -> Stop {
    Stop::VcDelivery(match f {
        GuestFault::Walk(error) => VcFailure::Walk { la, error },
        GuestFault::Rmp { access, .. } => VcFailure::Rmp { gpa: access.gpa },
    })
}

fn q(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}

/// The code segment a gate names, as the VMSA holds it (base 0 and the descriptor's
/// attributes and limit; a 64-bit code segment's base is ignored, APM vol. 2 §4.8.2).
fn code_segment(selector: u16, d: &[u8; 8]) -> Segment {
    Segment {
        selector,
        attrib: u16::from(d[5]) | (u16::from(d[6] & 0xf0) << 4),
        limit: u32::from(u16::from_le_bytes([d[0], d[1]])) | (u32::from(d[6] & 0xf) << 16),
        base: 0,
    }
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// Deliver #VC with error code `code` to the vCPU whose state is `v`, at `vmpl`.
    pub(super) fn deliver_vc(&mut self, v: &mut Vmsa, vmpl: u8, code: u64) -> Result<(), Stop> {
        if v.efer() & efer::LMA == 0 {
            return Err(Stop::VcDelivery(VcFailure::NotLongMode));
        }
        let idtr = v.segment(off::IDTR);
        let slot = u64::from(VC_VECTOR) * 16;
        if slot + 15 > u64::from(idtr.limit) {
            return Err(Stop::VcDelivery(VcFailure::IdtLimit));
        }
        let mut g = [0u8; 16];
        self.read_linear(
            v,
            vmpl,
            idtr.base.wrapping_add(slot),
            SUPERVISOR_READ,
            &mut g,
        )
        .map_err(failed)?;
        let gate = Gate::parse(&g);
        // A gate that is not present is #NP before its selector is looked at.
        if !gate.present {
            let e = vc::DeliveryError::NotPresent;
            return Err(Stop::VcDelivery(VcFailure::Delivery(e)));
        }
        let gdtr = v.segment(off::GDTR);
        let sel = gate.selector;
        let bad = Stop::VcDelivery(VcFailure::BadSelector { selector: sel });
        if sel & !3 == 0 || sel & 4 != 0 || u32::from(sel | 7) > gdtr.limit {
            return Err(bad);
        }
        let mut desc = [0u8; 8];
        let at = gdtr.base.wrapping_add(u64::from(sel & !7));
        self.read_linear(v, vmpl, at, SUPERVISOR_READ, &mut desc)
            .map_err(failed)?;
        // The TSS is read only when delivery needs it: an IST stack, or a privilege
        // change (RSPn). A guest with neither need not have a TSS at all (APM vol. 2
        // §8.9.3, the stack switch of long-mode interrupt delivery).
        let dpl = (desc[5] >> 5) & 3;
        let mut t = [0u8; TSS_LEN];
        if gate.ist != 0 || dpl < v.cpl() & 3 {
            let tr = v.segment(off::TR);
            self.read_linear(v, vmpl, tr.base, SUPERVISOR_READ, &mut t)
                .map_err(failed)?;
        }
        let mut tss = Tss::default();
        for (i, r) in tss.rsp.iter_mut().enumerate() {
            *r = q(&t, 4 + 8 * i);
        }
        for (i, r) in tss.ist.iter_mut().enumerate() {
            *r = q(&t, 36 + 8 * i);
        }
        let cs = v.segment(off::CS);
        let ss = v.segment(off::SS);
        let state = vc::State {
            rip: v.rip(),
            rsp: v.rsp(),
            rflags: v.rflags(),
            cs: cs.selector,
            ss: ss.selector,
            cpl: v.cpl(),
        };
        let d = vc::deliver(&state, &gate, dpl, &tss, code)
            .map_err(|e| Stop::VcDelivery(VcFailure::Delivery(e)))?;
        let mut frame = [0u8; 48];
        for (i, w) in d.frame.iter().enumerate() {
            frame[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        self.write_linear(v, vmpl, d.rsp, d.cpl == 3, &frame)
            .map_err(failed)?;
        v.set_segment(off::CS, code_segment(d.cs, &desc));
        // SS: a privilege change loads a null selector with RPL = the new CPL; QEMU
        // takes the CPL from SS.DPL, so the attributes carry it too.
        v.set_segment(
            off::SS,
            Segment {
                selector: d.ss,
                attrib: (ss.attrib & !0x60) | (u16::from(d.cpl) << 5),
                base: if d.cpl == state.cpl & 3 { ss.base } else { 0 },
                ..ss
            },
        );
        v.set_cpl(d.cpl);
        v.set_rip(d.rip);
        v.set_rsp(d.rsp);
        v.set_rflags(d.rflags);
        Ok(())
    }
}
