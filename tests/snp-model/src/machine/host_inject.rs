//! The host's injections into a VMSA, checked against RestrictedInjection
//! (`crate::injection::check`; APM vol. 2 §15.36.16): into a VMSA whose SEV_FEATURES
//! has bit 3 the host may inject only #HV; any other event is refused (VMRUN would fail
//! on hardware, so the model never queues it) and recorded (`injection-refused` lines).
//!
//! The host's injections and the CPU's are told apart by where they come from: the
//! host's go through [`Machine::host_inject`] only (KVM writes EVENTINJ); the exceptions
//! the machine raises while it completes an instruction for the CPU (#UD given back to
//! the guest, #GP from PVALIDATE at CPL > 0 or WRMSR to SEV_STATUS, #PF from the
//! machine's page walk) go through `Vmsa::inject_exception`: on hardware the CPU raises
//! them itself inside the guest, no EVENTINJ is involved, and RestrictedInjection does
//! not apply. The bare-metal CPU's re-injection of an event an exit interrupted
//! (EXITINTINFO) is likewise the CPU completing its own delivery (QEMU's SVM needs
//! EVENTINJ for it), not a host event.

use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::injection::{check, Event};
use crate::machine::stop::Stop;
use crate::machine::vmsa::event;
use crate::machine::Machine;
use crate::record::RefusedInjection;

/// EVENTINJ for `e` (APM vol. 2 §15.20: vector 7:0, type 10:8 (0 INTR, 2 NMI,
/// 3 exception, 4 software interrupt), valid 31). A virtual interrupt, which the model
/// has no V_IRQ for, is delivered as the external interrupt it would become.
pub fn event_inj(e: Event) -> u64 {
    let (vector, ty) = match e {
        Event::Interrupt(v) | Event::VirtualInterrupt(v) => (v, 0),
        Event::Nmi => (2, 2),
        Event::Exception(v) => (v, 3),
        Event::SoftwareInterrupt(v) => (v, 4),
    };
    u64::from(vector) | (ty << 8) | event::VALID
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// The host injects `e` into the VMSA of (`vcpu`, `vmpl`) for its next entry.
    /// `Ok(true)`: queued in EVENTINJ; `Ok(false)`: refused by RestrictedInjection and
    /// recorded; `Err`: that VMSA does not exist.
    pub fn host_inject(&mut self, vcpu: u32, vmpl: u8, e: Event) -> Result<bool, Stop> {
        let mut v = self.vmsa(vcpu, vmpl)?;
        let inj = event_inj(e);
        if check(v.sev_features(), e).is_err() {
            self.record.injections_refused.push(RefusedInjection {
                vcpu,
                vmpl,
                event_inj: inj,
            });
            return Ok(false);
        }
        v.set_event_inj(inj);
        self.store_vmsa(vcpu, vmpl, &v);
        Ok(true)
    }
}
