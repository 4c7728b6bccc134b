//! A whole simulated VM: the machine launched with Vigil's memory and a guest image,
//! the monitor on top, and guest-side helpers (calls, lists, page-state changes) for
//! tests, property tests, the soak run, benchmarks and fuzzers.
use super::hypervisor::HostMode;
use super::machine::SimMachine;
use crate::access::{Access, RefusedAccess};
use crate::addr::{Gpa, PageSize, PAGE_SIZE_4K};
use crate::memory::MemError;
use crate::platform::ApOp;
use crate::platform::{HostError, Perms, PscOp, PscRequest};
use crate::policy::Policy;
use crate::{CallOutcome, Monitor, MonitorConfig};
use sha2::{Digest, Sha384};
use std::vec::Vec;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::Vmsa;
use zerocopy::{FromZeros, IntoBytes};

/// Layout of a simulated VM.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Bytes of RAM.
    pub ram_size: u64,
    /// Vigil's memory.
    pub vigil_base: u64,
    /// Size of Vigil's memory.
    pub vigil_size: u64,
    /// The launch image: [0, launch_size) validated for the guest, 4 KiB pages.
    pub launch_size: u64,
    /// The policy.
    pub policy: Policy,
    /// Seed of the hypervisor's randomness.
    pub seed: u64,
    /// SEV_FEATURES of the boot vCPU (every VMSA the guest creates must match).
    pub boot_sev_features: u64,
}

impl SimConfig {
    /// 8 MiB of RAM: launch image [0, 1 MiB), Vigil at [4 MiB, 6 MiB), the rest free
    /// (with two 2 MiB-aligned regions, [2, 4) and [6, 8) MiB).
    pub fn small(seed: u64) -> Self {
        Self {
            ram_size: 8 << 20,
            vigil_base: 4 << 20,
            vigil_size: 2 << 20,
            launch_size: 1 << 20,
            policy: Policy::default(),
            seed,
            boot_sev_features: svsm_abi::vmsa::SevFeatures::SNP_ACTIVE.bits(),
        }
    }
    /// 1 GiB of free RAM at [4 MiB, 1 GiB + 4 MiB) for the benchmarks; Vigil above it.
    pub fn gib(seed: u64) -> Self {
        Self {
            ram_size: (1 << 30) + (8 << 20),
            vigil_base: (1 << 30) + (4 << 20),
            vigil_size: 4 << 20,
            launch_size: 1 << 20,
            policy: Policy::default(),
            seed,
            boot_sev_features: svsm_abi::vmsa::SevFeatures::SNP_ACTIVE.bits(),
        }
    }
}

/// Boot vCPU's APIC ID.
pub const BOOT_APIC: u32 = 0;
/// Boot vCPU's calling area.
pub const BOOT_CAA: Gpa = Gpa(0x1000);
/// A page of the launch image the tests use for lists.
pub const LIST_PAGE: Gpa = Gpa(0x2000);

/// A call during which a host answer that Vigil received deviated from an honest
/// host's (invariant 5's evidence): what the call returned, and a digest of the
/// protected state (page table, vCPUs, RMP) before and after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostileCall {
    /// What became of the call.
    pub outcome: CallOutcome,
    /// RAX returned to the guest.
    pub rax: u64,
    /// State digest before the call.
    pub before: [u8; 48],
    /// State digest after the call.
    pub after: [u8; 48],
}

/// The VM.
pub struct SimVm {
    /// The monitor (which owns the machine).
    pub m: Monitor<SimMachine>,
    /// Calls that reached the dispatcher (each must have logged one record).
    pub dispatched: u64,
    /// Calls that met a deviating host answer.
    pub hostile_calls: Vec<HostileCall>,
    cfg: SimConfig,
}

impl SimVm {
    /// Launches a VM.
    pub fn new(cfg: SimConfig) -> Self {
        let mut mach = SimMachine::new(cfg.ram_size, cfg.seed);
        mach.vigil_range = (cfg.vigil_base, cfg.vigil_size);
        let gv = cfg.policy.guest_vmpl;
        let mut pre = Vec::new();
        let mut a = 0;
        while a < cfg.launch_size {
            mach.launch_page(Gpa(a), gv, Perms::all());
            pre.push((Gpa(a), PageSize::Size4K));
            a += PAGE_SIZE_4K;
        }
        let mut a = cfg.vigil_base;
        while a < cfg.vigil_base + cfg.vigil_size {
            mach.launch_page(Gpa(a), gv, Perms::empty());
            a += PAGE_SIZE_4K;
        }
        // The launch's RMPUPDATEs are the security processor's, not a host's change.
        mach.rmp.host_updated.clear();
        let mc = MonitorConfig {
            ram_size: cfg.ram_size,
            vigil_base: Gpa(cfg.vigil_base),
            vigil_size: cfg.vigil_size,
            boot_apic_id: BOOT_APIC,
            boot_caa: BOOT_CAA,
            prevalidated: pre,
            boot_sev_features: cfg.boot_sev_features,
            vmpck0: super::psp::test_vmpcks()[0],
            policy: cfg.policy,
        };
        // The sim's own layouts are valid; a failure here is a bug in the config.
        let m = Monitor::new(mach, mc).expect("the simulated VM's layout is a valid configuration");
        Self {
            m,
            dispatched: 0,
            hostile_calls: Vec::new(),
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    /// The machine.
    pub fn mach(&self) -> &SimMachine {
        self.m.platform()
    }
    /// The machine, mutably.
    pub fn mach_mut(&mut self) -> &mut SimMachine {
        self.m.platform_mut()
    }
    fn gv(&self) -> u8 {
        self.m.guest_vmpl().get()
    }

    /// A digest of the state a host must not change: Vigil's page table, its vCPUs,
    /// and the RMP (assigned, validated, VMSA, rights).
    pub fn state_digest(&self) -> [u8; 48] {
        let mut h = Sha384::new();
        for (gfn, st) in self.m.pages().iter() {
            h.update(gfn.to_le_bytes());
            h.update([st as u8]);
            if let Some(e) = self.mach().rmp.get(gfn) {
                h.update([e.assigned as u8, e.validated as u8, e.vmsa as u8]);
                h.update(e.perms);
            }
        }
        for v in self.m.vcpus().iter() {
            h.update(v.apic_id.to_le_bytes());
            h.update(v.caa.0.to_le_bytes());
            h.update(v.vmsa.map_or(u64::MAX, |g| g.0).to_le_bytes());
        }
        h.finalize().into()
    }

    /// Runs `handler` as one call: opens the machine's window of Vigil's reads
    /// (invariant 4) and, when the host answered Vigil other than honestly during it,
    /// records the call with the state digests around it (invariant 5). The invariant
    /// checker judges both. [`SimVm::call_from`] runs the monitor through it; a test
    /// can pass a deliberately broken handler.
    pub fn observe<F>(&mut self, handler: F) -> (CallOutcome, u64)
    where
        F: FnOnce(&mut Monitor<SimMachine>) -> (CallOutcome, u64),
    {
        self.mach_mut().begin_call();
        let dev = self.mach().hv.deviations;
        let before = (self.mach().hv.mode != HostMode::Honest).then(|| self.state_digest());
        let (outcome, rax) = handler(&mut self.m);
        if self.mach().hv.deviations != dev {
            let after = self.state_digest();
            self.hostile_calls.push(HostileCall {
                outcome,
                rax,
                before: before.unwrap_or([0; 48]),
                after,
            });
        }
        (outcome, rax)
    }

    /// An SVSM call from vCPU `apic_id`: the guest sets `call_pending` in its calling
    /// area and switches to VMPL0 (two run-VMPL exits: there and back).
    pub fn call_from(&mut self, apic_id: u32, regs: SvsmRegs) -> (CallOutcome, SvsmRegs) {
        self.call_pending(apic_id, regs, 1)
    }

    /// [`SimVm::call_from`] with `pending` written into `call_pending` (1 for a call; a
    /// malformed guest may write anything).
    pub fn call_pending(
        &mut self,
        apic_id: u32,
        regs: SvsmRegs,
        pending: u8,
    ) -> (CallOutcome, SvsmRegs) {
        let mut regs = regs;
        if self.mach().vigil_lost && self.m.terminated().is_none() {
            // Vigil would take a #VC on its own memory at its next access.
            let o = self.m.vigil_fault();
            return (o, regs);
        }
        if let Some(caa) = self.m.vcpus().by_apic(apic_id).map(|v| v.caa) {
            let gv = self.gv();
            let _ = self.mach_mut().guest_write(gv, caa, &[pending]);
        }
        // The guest's switch to VMPL0 is one run-VMPL exit; Vigil's switch back (in
        // `Monitor::serve`) is the other.
        self.mach_mut().exits.run_vmpl += 1;
        self.mach_mut().regs.insert(apic_id, regs);
        let before = self.m.calls_dispatched();
        let (o, _) = self.observe(|m| {
            let o = m.serve(apic_id);
            let rax = m.platform().regs.get(&apic_id).map_or(0, |r| r.rax);
            (o, rax)
        });
        self.dispatched += self.m.calls_dispatched() - before;
        if let Some(r) = self.mach().regs.get(&apic_id) {
            regs = *r;
        }
        (o, regs)
    }

    /// The guest's own AP creation for the VMSA at `vmsa` (after CREATE_VCPU), at its
    /// VMPL with the boot vCPU's SEV features, through the host.
    pub fn guest_ap_create(&mut self, apic_id: u32, vmsa: Gpa) -> Result<(), HostError> {
        let gv = self.m.guest_vmpl();
        let f = self.m.boot_sev_features();
        self.mach_mut()
            .guest_ap_create(ApOp::Create, apic_id, gv, vmsa, f)
    }

    /// vCPU `apic_id` of the guest touches `gpa` (a one-byte read, write of the byte
    /// already there, or fetch). When the RMP refuses, the machine reports the fault to
    /// the monitor as the `emulated` platform's nested page fault does (counted on the
    /// machine's side in `reported_faults`) and the monitor's decision is returned;
    /// `None` when the access went through (or the VM has ended).
    pub fn guest_access(
        &mut self,
        apic_id: u32,
        gpa: Gpa,
        access: Access,
    ) -> Option<RefusedAccess> {
        if self.m.terminated().is_some() {
            return None;
        }
        let gv = self.gv();
        let refused = if access.contains(Access::FETCH) {
            self.mach().guest_fetch(gv, gpa).is_err()
        } else if access.contains(Access::WRITE) {
            let mut b = [0u8; 1];
            self.mach().peek(gpa, &mut b);
            self.mach_mut().guest_write(gv, gpa, &b).is_err()
        } else {
            self.guest_read(gpa, &mut [0u8; 1]).is_err()
        };
        if !refused {
            return None;
        }
        self.mach_mut().reported_faults.push((apic_id, gpa));
        Some(self.m.record_refused_access(apic_id, gpa, access))
    }

    /// An SVSM call from the boot vCPU.
    pub fn call(&mut self, rax: u64, rcx: u64, rdx: u64, r8: u64) -> (CallOutcome, SvsmRegs) {
        self.call_from(
            BOOT_APIC,
            SvsmRegs {
                rax,
                rcx,
                rdx,
                r8,
                r9: 0,
            },
        )
    }

    /// The guest writes its memory (RMP permissions apply).
    pub fn guest_write(&mut self, gpa: Gpa, b: &[u8]) -> Result<(), MemError> {
        let gv = self.gv();
        self.mach_mut().guest_write(gv, gpa, b)
    }
    /// The guest reads its memory (RMP permissions apply).
    pub fn guest_read(&self, gpa: Gpa, b: &mut [u8]) -> Result<(), MemError> {
        self.mach().guest_read(self.gv(), gpa, b)
    }

    /// The guest asks the host for page-state changes (its own GHCB).
    pub fn guest_psc(&mut self, req: &[PscRequest]) -> Result<(), HostError> {
        self.mach_mut().psc(req)
    }

    /// The guest makes a range private (4 KiB or 2 MiB entries).
    pub fn make_private(&mut self, gpa: Gpa, size: PageSize, count: u64) -> Result<(), HostError> {
        let req: Vec<PscRequest> = (0..count)
            .map(|i| PscRequest {
                gpa: Gpa(gpa.0 + i * size.bytes()),
                size,
                op: PscOp::Private,
            })
            .collect();
        self.guest_psc(&req)
    }

    /// Writes a PVALIDATE-layout list at `at` and calls `call` of the core protocol
    /// on it; returns (RAX, `next` read back).
    pub fn list_call(
        &mut self,
        call: u32,
        at: Gpa,
        entries: &[PvalidateEntry],
        next: u16,
    ) -> (u64, u16) {
        let mut b = Vec::with_capacity(8 + entries.len() * 8);
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        b.extend_from_slice(&next.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for e in entries {
            b.extend_from_slice(&e.0.to_le_bytes());
        }
        let _ = self.guest_write(at, &b);
        let (_, r) = self.call(SvsmRegs::rax_for(0, call), at.0, 0, 0);
        let mut n = [0u8; 2];
        let _ = self.guest_read(Gpa(at.0 + 2), &mut n);
        (r.rax, u16::from_le_bytes(n))
    }

    /// PVALIDATE through the SVSM with a list at [`LIST_PAGE`].
    pub fn pvalidate(&mut self, entries: &[PvalidateEntry]) -> (u64, u16) {
        self.list_call(
            svsm_abi::core_protocol::call::PVALIDATE,
            LIST_PAGE,
            entries,
            0,
        )
    }

    /// Makes `count` pages of `size` at `gpa` private and validates them.
    pub fn accept(&mut self, gpa: Gpa, size: PageSize, count: u64) -> u64 {
        if self.make_private(gpa, size, count).is_err() {
            return u64::MAX;
        }
        let entries: Vec<PvalidateEntry> = (0..count)
            .map(|i| {
                PvalidateEntry::new(
                    (gpa.0 + i * size.bytes()) >> 12,
                    size == PageSize::Size2M,
                    true,
                    false,
                )
            })
            .collect();
        let mut last = 0;
        for chunk in entries.chunks(svsm_abi::pvalidate::MAX_ENTRIES) {
            last = self.pvalidate(chunk).0;
            if last != 0 {
                return last;
            }
        }
        last
    }

    /// Writes a VMSA image for a guest vCPU at `gpa`.
    pub fn write_vmsa(
        &mut self,
        gpa: Gpa,
        vmpl: u8,
        sev_features: u64,
        efer: u64,
    ) -> Result<(), MemError> {
        let mut v = Vmsa::new_zeroed();
        v.vmpl = vmpl;
        v.sev_features = sev_features;
        v.efer = efer;
        v.rip = 0xfff0;
        self.guest_write(gpa, v.as_bytes())
    }
}
