//! The machine's timing facts for the bench (`record`: `mark` and `round-trip` lines):
//! the first entry of each VMPL with the CPU's TSC, and each trip from VMPL0 to a lower
//! VMPL and back with the host exits it took and its TSC cycles. The TSC comes from
//! [`Cpu::tsc`] (the bare-metal model's RDTSC; 0 in the scripted tests).

use alloc::string::String;

use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::{Cpu, Machine};
use crate::record::{Mark, RoundTrip};

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// Before an entry of (`vcpu`, `vmpl`): mark the first entry of each VMPL.
    pub(super) fn note_entry(&mut self, cpu: &impl Cpu, vcpu: u32, vmpl: u8) {
        let Some(seen) = self.entered.get_mut(usize::from(vmpl)) else {
            return;
        };
        if !*seen {
            *seen = true;
            self.record.marks.push(Mark {
                name: String::from("first-entry"),
                vcpu,
                vmpl,
                tsc: cpu.tsc(),
            });
        }
    }

    /// After an exit of `vcpu` (TSC `tsc`), dispatched with the vCPU at `before` and
    /// now at `after`: count the exit in an open trip, open a trip when VMPL0 hands the
    /// vCPU to a lower VMPL, close it when VMPL0 has it back.
    pub(super) fn note_exit(&mut self, vcpu: u32, before: u8, after: u8, tsc: u64) {
        let Some(c) = self.vcpus.get_mut(vcpu as usize) else {
            return;
        };
        if let Some((exits, _, _)) = c.trip.as_mut() {
            *exits += 1;
        }
        if before == 0 && after != 0 {
            c.trip = Some((1, tsc, after));
        } else if before != 0 && after == 0 {
            if let Some((exits, start, vmpl)) = c.trip.take() {
                self.record.round_trip(RoundTrip {
                    vcpu,
                    vmpl,
                    exits,
                    cycles: tsc.wrapping_sub(start),
                });
            }
        }
    }
}
