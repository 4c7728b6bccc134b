//! Which vCPUs run: the launch makes every vCPU with a launch VMSA runnable at VMPL0;
//! the others wait until the guest creates them through the host (GHCB AP creation),
//! as KVM does.
//!
//! KVM `sev_snp_ap_creation` records the VMSA GPA for the target vCPU, sets
//! `snp_ap_waiting_for_reset` and kicks it; the target, on its next run
//! (`sev_snp_init_protected_guest_state`), loads the new VMSA and becomes runnable, or,
//! when the GPA was cleared (destroy, request 2), stays halted without a VMSA. The model
//! applies the host's request after every exit ([`Machine::apply_ap_requests`]):
//! - a vCPU that is not running (never started, held in AP reset hold, or destroyed)
//!   becomes runnable at the most privileged VMPL that now has a VMSA (VMPL0 for an
//!   SVSM's AP; KVM without planes has one VMSA per vCPU, the GHCB spec v2.03 VMPL field
//!   adds the others), or stays halted if none has one;
//! - a running vCPU keeps its VMPL (a VMSA created for another VMPL runs on a run-VMPL
//!   request) unless its running VMPL's VMSA was destroyed: then it halts.
//!
//! AP reset hold (MSR protocol 0x006, KVM `sev_handle_vmgexit_msr_protocol`
//! GHCB_MSR_AP_RESET_HOLD_REQ) halts the vCPU until the next AP creation for it.

use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::Machine;
use crate::rmp::VMPLS;

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// Whether vCPU `vcpu` runs (false for one that does not exist).
    pub fn runnable(&self, vcpu: u32) -> bool {
        self.vcpus.get(vcpu as usize).is_some_and(|c| c.runnable)
    }

    /// Halt vCPU `vcpu` until an AP creation names it again.
    pub(super) fn halt(&mut self, vcpu: u32) {
        let vmpl = self.running_vmpl(vcpu).unwrap_or(0);
        self.mark_in_use(vcpu, vmpl, false);
        if let Some(c) = self.vcpus.get_mut(vcpu as usize) {
            c.runnable = false;
        }
    }

    /// Apply the AP creations and destructions the host recorded (module docs).
    pub(super) fn apply_ap_requests(&mut self) {
        for id in 0..self.vcpus.len() {
            let Some(h) = self.host.vcpus.get_mut(id) else {
                continue;
            };
            if !core::mem::take(&mut h.waiting_for_reset) {
                continue;
            }
            let first = (0..VMPLS).find(|&l| h.vmsa[usize::from(l)].is_some());
            let c = &mut self.vcpus[id];
            if c.runnable {
                if h.vmsa[usize::from(c.running)].is_none() {
                    c.runnable = false;
                }
                continue;
            }
            if let Some(l) = first {
                c.runnable = true;
                c.running = l;
            }
        }
    }
}
