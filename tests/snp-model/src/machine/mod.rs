//! The machine's CPU core: everything between "the CPU exited" and "run it again".
//!
//! The bare-metal model (tests/snp-machine) runs a guest under QEMU's software SVM. It
//! implements [`Cpu`]: load a VMSA into its VMCB and registers, VMRUN, copy the state
//! back, and keep one nested page table per VMPL that [`Cpu::map`] fills and
//! [`Cpu::unmap`] empties. [`Machine`] owns the SNP state (memory, RMP, host, security
//! processor, record) and turns each exit into what SEV-SNP hardware and a KVM host
//! would do: an automatic exit to the host (VMGEXIT, HLT, NPF), a #VC to the guest (the
//! non-automatic exits, APM vol. 2 §15.35.5), the SNP instructions QEMU lacks (they
//! raise #UD there and are emulated here), or a stop with a named reason.
//!
//! The VMSA page is the source of truth for a vCPU's state at a VMPL: it is loaded from
//! guest memory (or, for a launch VMSA, from the machine's own copy) before every entry
//! and written back after every exit, so a VMPL0 SVSM that edits a lower VMPL's VMSA in
//! memory is seen at that VMPL's next entry.
//!
//! The nested tables start empty and are filled lazily: an NPF is checked against the
//! RMP (`access::check`) and either maps the page for the running VMPL with what the RMP
//! allows, or becomes #VC 0x404, or the host's reaction (`access::host_reaction`). Every
//! RMP change that can shrink rights (PVALIDATE, RMPADJUST, page-state changes) unmaps
//! the page. QEMU flushes its TLB on every VMRUN and #VMEXIT, so an unmap takes effect
//! at the next entry.

pub mod decode;
mod dispatch;
mod guest;
mod host_inject;
mod instructions;
mod npf;
mod schedule;
mod stop;
mod timing;
mod vc_delivery;
mod vmgexit;
pub mod vmsa;
pub mod walk;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::ghcb_exits::SecurityProcessor;
use crate::host::{Devices, Host, VmsaRef};
use crate::launch::Launched;
use crate::memory::Memory;
use crate::record::Record;
use crate::rmp::{Perms, Rmp, PAGE_SIZE, VMPLS};

pub use stop::{Stop, VcFailure};
pub use vmsa::Vmsa;

/// One #VMEXIT as the CPU reports it (APM vol. 2 §15.6 and appendix C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
}

/// The CPU the machine drives (the bare-metal model's SVM; a scripted fake in tests).
pub trait Cpu {
    /// Run vCPU `vcpu` at `vmpl` from `vmsa` until the next #VMEXIT, then write the state
    /// back into `vmsa`. A valid EVENTINJ in the VMSA ([`Vmsa::event_inj`]) is injected
    /// on this entry; the machine clears it after `run` returns.
    fn run(&mut self, vcpu: u32, vmpl: u8, vmsa: &mut [u8; 4096]) -> Exit;
    /// Map the 4 KiB page at `gpa` in `vmpl`'s nested table with `perms` (read, write,
    /// user-execute, supervisor-execute; nested tables cannot tell the two executes
    /// apart, so either one maps executable).
    fn map(&mut self, vmpl: u8, gpa: u64, perms: Perms);
    /// Remove the page at `gpa` from every VMPL's nested table.
    fn unmap(&mut self, gpa: u64);
    /// The CPU's time stamp counter (for the record's timing lines); 0 if it has none.
    fn tsc(&self) -> u64 {
        0
    }
}

/// The machine's state per vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VcpuState {
    /// The VMPL the vCPU runs at.
    running: u8,
    /// Whether the vCPU runs (`schedule`).
    runnable: bool,
    /// An open VMPL round trip: exits so far, TSC at its start, the lower VMPL.
    trip: Option<(u64, u64, u8)>,
    /// The GHCB MSR (0xC001_0130) of each VMPL's VMSA (GHCB spec #56421 §2.3: per VMSA).
    ghcb_msr: [u64; 4],
}

/// The SNP machine: the guest's memory, the RMP, the host, the security processor, the
/// out-of-band record, and each vCPU's running VMPL and GHCB MSRs.
pub struct Machine<D: Devices, P: SecurityProcessor> {
    /// Guest memory.
    pub mem: Memory,
    /// The RMP.
    pub rmp: Rmp,
    /// The host (KVM's side of the GHCB; which VMSA each (vCPU, VMPL) has).
    pub host: Host,
    /// The security processor.
    pub psp: P,
    /// The host's devices.
    pub devices: D,
    /// The out-of-band record.
    pub record: Record,
    launch_vmsas: Vec<Box<Vmsa>>,
    vcpus: Vec<VcpuState>,
    /// Which VMPLs have been entered (`timing`).
    entered: [bool; 4],
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// A machine after `launched`: the launch VMSAs are its own copies (they are not in
    /// guest memory, KVM `snp_launch_update_vmsa`), every vCPU runs VMPL0, every GHCB MSR
    /// is 0, and the record holds the launch digest.
    pub fn new(mem: Memory, rmp: Rmp, host: Host, psp: P, devices: D, launched: &Launched) -> Self {
        let record = Record {
            launch_digest: Some(launched.digest),
            ..Record::default()
        };
        let vcpus = host
            .vcpus
            .iter()
            .map(|c| VcpuState {
                runnable: c.vmsa[0].is_some(),
                ..VcpuState::default()
            })
            .collect();
        Machine {
            mem,
            rmp,
            host,
            psp,
            devices,
            record,
            launch_vmsas: launched.vmsas.iter().map(|v| Box::new(Vmsa(*v))).collect(),
            vcpus,
            entered: [false; 4],
        }
    }

    /// The VMPL vCPU `vcpu` runs at.
    pub fn running_vmpl(&self, vcpu: u32) -> Option<u8> {
        self.vcpus.get(vcpu as usize).map(|c| c.running)
    }

    /// Make vCPU `vcpu` run at `vmpl` from its next entry (the binary does this for an AP
    /// whose first VMSA is not VMPL0's). False if either does not exist.
    pub fn set_running_vmpl(&mut self, vcpu: u32, vmpl: u8) -> bool {
        match self.vcpus.get_mut(vcpu as usize) {
            Some(c) if vmpl < VMPLS => {
                c.running = vmpl;
                true
            }
            _ => false,
        }
    }

    /// The GHCB MSR of (`vcpu`, `vmpl`).
    pub fn ghcb_msr(&self, vcpu: u32, vmpl: u8) -> u64 {
        self.vcpus
            .get(vcpu as usize)
            .map_or(0, |c| c.ghcb_msr[usize::from(vmpl & 3)])
    }

    fn set_ghcb_msr(&mut self, vcpu: u32, vmpl: u8, v: u64) {
        if let Some(c) = self.vcpus.get_mut(vcpu as usize) {
            c.ghcb_msr[usize::from(vmpl & 3)] = v;
        }
    }

    /// The VMSA of (`vcpu`, `vmpl`) as it is now: the launch copy, or the page at its GPA.
    pub fn vmsa(&self, vcpu: u32, vmpl: u8) -> Result<Box<Vmsa>, Stop> {
        let r = self
            .host
            .vcpu(vcpu)
            .ok_or(Stop::NoVcpu)?
            .vmsa
            .get(usize::from(vmpl))
            .copied()
            .flatten()
            .ok_or(Stop::NoVmsa { vmpl })?;
        match r {
            VmsaRef::Launch => self
                .launch_vmsas
                .get(vcpu as usize)
                .cloned()
                .ok_or(Stop::NoVmsa { vmpl }),
            VmsaRef::Gpa(gpa) => {
                let mut v = Box::new(Vmsa::zeroed());
                self.mem
                    .read(gpa, &mut v.0)
                    .map_err(|_| Stop::NoVmsa { vmpl })?;
                Ok(v)
            }
        }
    }

    fn store_vmsa(&mut self, vcpu: u32, vmpl: u8, v: &Vmsa) {
        let r = self
            .host
            .vcpu(vcpu)
            .and_then(|c| c.vmsa.get(usize::from(vmpl)).copied().flatten());
        match r {
            Some(VmsaRef::Launch) => {
                if let Some(slot) = self.launch_vmsas.get_mut(vcpu as usize) {
                    slot.0 = v.0;
                }
            }
            Some(VmsaRef::Gpa(gpa)) => {
                self.mem.write(gpa, &v.0).ok();
            }
            None => {}
        }
    }

    /// One entry and the handling of its exit. `Err` says why the vCPU stopped (the
    /// reason is counted in the record too). A stopped vCPU is halted (`runnable`
    /// turns false) until an AP creation names it again: for AP reset hold that is
    /// KVM's rule; for the other stops, where KVM would fail KVM_RUN and the VMM end
    /// the VM, it keeps a stopped AP from being entered again while the boot vCPU
    /// runs on. AP creations and destructions the exit asked for are applied before
    /// this returns (`schedule`).
    pub fn step(&mut self, cpu: &mut impl Cpu, vcpu: u32) -> Result<(), Stop> {
        let r = self.step_inner(cpu, vcpu);
        if let Err(s) = &r {
            self.record.stop(vcpu, s.reason());
            self.halt(vcpu);
        }
        self.apply_ap_requests();
        r
    }

    fn step_inner(&mut self, cpu: &mut impl Cpu, vcpu: u32) -> Result<(), Stop> {
        let vmpl = self.running_vmpl(vcpu).ok_or(Stop::NoVcpu)?;
        let mut v = self.vmsa(vcpu, vmpl)?;
        // EFER.SVME stays set in an SNP guest (VMRUN requires it, APM vol. 2 §15.5.1).
        v.set_efer(v.efer() | vmsa::efer::SVME);
        self.mark_in_use(vcpu, vmpl, true);
        self.note_entry(cpu, vcpu, vmpl);
        let exit = cpu.run(vcpu, vmpl, &mut v.0);
        let tsc = cpu.tsc();
        v.set_event_inj(0);
        self.record.exit(exit.code, vmpl);
        let r = self.dispatch(cpu, vcpu, vmpl, &mut v, exit);
        self.store_vmsa(vcpu, vmpl, &v);
        let after = self.running_vmpl(vcpu).unwrap_or(vmpl);
        self.note_exit(vcpu, vmpl, after, tsc);
        r
    }

    /// Run vCPU `vcpu` until it stops.
    pub fn run(&mut self, cpu: &mut impl Cpu, vcpu: u32) -> Stop {
        loop {
            if let Err(s) = self.step(cpu, vcpu) {
                return s;
            }
        }
    }

    /// Mark (vCPU, VMPL)'s VMSA page as the one the vCPU runs on, or not (the RMP's
    /// in-use state RMPADJUST checks; launch VMSAs are not in guest memory).
    fn mark_in_use(&mut self, vcpu: u32, vmpl: u8, in_use: bool) {
        let r = self
            .host
            .vcpu(vcpu)
            .and_then(|c| c.vmsa.get(usize::from(vmpl)).copied().flatten());
        if let Some(VmsaRef::Gpa(gpa)) = r {
            self.rmp.set_in_use(gpa, in_use).ok();
        }
    }

    /// Unmap `bytes` from `gpa` (page by page) in every VMPL's nested table.
    fn unmap_range(cpu: &mut impl Cpu, gpa: u64, bytes: u64) {
        let first = gpa & !(PAGE_SIZE - 1);
        for i in 0..bytes.div_ceil(PAGE_SIZE) {
            cpu.unmap(first + i * PAGE_SIZE);
        }
    }
}
