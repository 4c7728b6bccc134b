//! The simulated machine: memory, RMP, hypervisor, PSP; implements [`Platform`].
use super::hypervisor::{ExitStats, Hypervisor};
use super::psp::{new_psp, SimPsp};
use super::rmp::Rmp;
use crate::access::Access;
use crate::addr::{Gpa, PageSize, PAGE_SIZE_4K};
use crate::ghcb::{
    ap_create_request, check_psc_answer, check_simple_answer, guest_request_request, psc_continue,
    psc_request, PscProgress,
};
use crate::memory::{GuestMemory, MemError};
use crate::platform::{
    ApOp, HostError, Perms, Platform, PscRequest, PvalidateOutcome, RmpError, TermReason, VcpuError,
};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::HashMap;
use std::vec::Vec;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::ghcb::PSC_MAX_ENTRIES;
use zerocopy::IntoBytes;

/// A racing writer: after every VMPL0 read that overlaps `[at, at + bytes.len())`, the
/// bytes are written there (another vCPU of the guest rewriting its request).
#[derive(Clone, Debug)]
pub struct Race {
    /// The racing vCPU's VMPL (its writes obey the RMP like any guest write).
    pub vmpl: u8,
    /// Where.
    pub at: Gpa,
    /// What.
    pub bytes: Vec<u8>,
}

/// What the machine did for Vigil in the current call, in order (tests check the
/// order of operations the spec prescribes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachOp {
    /// PVALIDATE (validate or rescind) at this address.
    Pvalidate(Gpa, bool),
    /// RMPADJUST of this page for this VMPL: rights, VMSA bit.
    Rmpadjust(Gpa, u8, u8, bool),
    /// A VMPL0 write to guest memory: address, length.
    Write(Gpa, u64),
    /// The call's result registers were written into the vCPU's state.
    SetRegs(u32),
    /// The vCPU was resumed.
    RunGuest(u32),
}

/// The machine.
pub struct SimMachine {
    /// The RMP.
    pub rmp: Rmp,
    mem: HashMap<u64, Box<[u8; 4096]>>,
    /// The hypervisor.
    pub hv: Hypervisor,
    /// The security processor.
    pub psp: SimPsp,
    /// Host exits counted.
    pub exits: ExitStats,
    /// Termination requested by Vigil.
    pub terminated: Option<TermReason>,
    /// An active racing writer.
    pub race: Option<Race>,
    /// VMPL0 reads done.
    pub reads: u64,
    /// Page-state changes Vigil itself asked for (invariant 1: never on its memory).
    pub vigil_psc: Vec<PscRequest>,
    /// The lower-VMPL call registers of each vCPU (the sim's stand-in for the VMSAs).
    pub regs: HashMap<u32, SvsmRegs>,
    /// Vigil's memory (base, size), so that the machine notices when the host takes it.
    pub vigil_range: (u64, u64),
    /// The host changed the state of a page of Vigil's memory.
    pub vigil_lost: bool,
    /// Reads Vigil made of guest memory in the current call: (GPA, length). Invariant
    /// 4's evidence, kept by the machine, not by the monitor.
    pub call_reads: Vec<(u64, u64)>,
    /// Reads of bytes Vigil had already read in the same call: (GPA, length).
    pub rereads: Vec<(u64, u64)>,
    /// Guest accesses the RMP refused: (VMPL, GPA, access bits). Counted by the
    /// machine, whoever (if anyone) is told.
    pub rmp_faults: RefCell<Vec<(u8, Gpa, u32)>>,
    /// Refused accesses the machine reported to the monitor (as the `emulated`
    /// platform's nested page faults do): (APIC ID, GPA).
    pub reported_faults: Vec<(u32, Gpa)>,
    /// Operations done for Vigil in the current call, in order.
    pub trace: Vec<MachOp>,
    /// A fault to inject: the next RMPADJUST fails with this code (a test stands in for
    /// a CPU answer the model never gives on its own).
    pub rmpadjust_fault: Option<RmpError>,
    /// Host attempts to change a guest page's rights, refused by the machine:
    /// (GPA, target VMPL, rights asked).
    pub host_refused: Vec<(Gpa, u8, u8)>,
    ghcb_gpa: Gpa,
}

impl SimMachine {
    /// A machine with `ram_size` bytes of RAM, all hypervisor-owned.
    pub fn new(ram_size: u64, seed: u64) -> Self {
        Self {
            rmp: Rmp::new(ram_size / PAGE_SIZE_4K),
            mem: HashMap::new(),
            hv: Hypervisor::new(seed),
            psp: new_psp(),
            exits: ExitStats::default(),
            terminated: None,
            race: None,
            reads: 0,
            vigil_psc: Vec::new(),
            regs: HashMap::new(),
            vigil_range: (0, 0),
            vigil_lost: false,
            call_reads: Vec::new(),
            rereads: Vec::new(),
            rmp_faults: RefCell::new(Vec::new()),
            reported_faults: Vec::new(),
            trace: Vec::new(),
            rmpadjust_fault: None,
            host_refused: Vec::new(),
            ghcb_gpa: Gpa(ram_size),
        }
    }

    fn raw_read(&self, gpa: u64, buf: &mut [u8]) {
        let mut off = 0usize;
        while off < buf.len() {
            let a = gpa + off as u64;
            let po = (a % PAGE_SIZE_4K) as usize;
            let n = (4096 - po).min(buf.len() - off);
            match self.mem.get(&(a / PAGE_SIZE_4K)) {
                Some(p) => buf[off..off + n].copy_from_slice(&p[po..po + n]),
                None => buf[off..off + n].fill(0),
            }
            off += n;
        }
    }

    fn raw_write(&mut self, gpa: u64, buf: &[u8]) {
        let mut off = 0usize;
        while off < buf.len() {
            let a = gpa + off as u64;
            let po = (a % PAGE_SIZE_4K) as usize;
            let n = (4096 - po).min(buf.len() - off);
            let p = self
                .mem
                .entry(a / PAGE_SIZE_4K)
                .or_insert_with(|| Box::new([0u8; 4096]));
            p[po..po + n].copy_from_slice(&buf[off..off + n]);
            off += n;
        }
    }

    fn check(&self, vmpl: u8, gpa: Gpa, len: usize, write: bool) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let end = gpa
            .0
            .checked_add(len as u64)
            .ok_or(MemError::OutOfRange(gpa))?;
        if end > self.rmp.len() * PAGE_SIZE_4K {
            return Err(MemError::OutOfRange(gpa));
        }
        for gfn in gpa.gfn()..end.div_ceil(PAGE_SIZE_4K) {
            if !self.rmp.may_access(vmpl, gfn, write) {
                return Err(MemError::NotValidated(Gpa::from_gfn(gfn)));
            }
        }
        Ok(())
    }

    fn fault(&self, vmpl: u8, e: MemError, access: Access) -> MemError {
        let at = match e {
            MemError::OutOfRange(g) | MemError::NotValidated(g) => g,
        };
        if vmpl != 0 {
            self.rmp_faults.borrow_mut().push((vmpl, at, access.bits()));
        }
        e
    }

    /// A read by the guest at `vmpl` (RMP permissions apply; a refusal is counted).
    pub fn guest_read(&self, vmpl: u8, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(vmpl, gpa, buf.len(), false)
            .map_err(|e| self.fault(vmpl, e, Access::READ))?;
        self.raw_read(gpa.0, buf);
        Ok(())
    }

    /// A write by the guest at `vmpl` (RMP permissions apply; a refusal is counted).
    pub fn guest_write(&mut self, vmpl: u8, gpa: Gpa, buf: &[u8]) -> Result<(), MemError> {
        self.check(vmpl, gpa, buf.len(), true)
            .map_err(|e| self.fault(vmpl, e, Access::WRITE))?;
        self.raw_write(gpa.0, buf);
        Ok(())
    }

    /// An instruction fetch by the guest at `vmpl` from `gpa` (needs supervisor
    /// execute; a refusal is counted).
    pub fn guest_fetch(&self, vmpl: u8, gpa: Gpa) -> Result<(), MemError> {
        let e = if gpa.gfn() >= self.rmp.len() {
            Some(MemError::OutOfRange(gpa))
        } else if !self.rmp.may_fetch(vmpl, gpa.gfn()) {
            Some(MemError::NotValidated(gpa))
        } else {
            None
        };
        match e {
            Some(e) => Err(self.fault(vmpl, e, Access::FETCH)),
            None => Ok(()),
        }
    }

    /// An instruction fetch by the guest at `vmpl` from `gpa` in user mode
    /// (`supervisor` false) or supervisor mode: the RMP's execute bit of that mode
    /// decides. A refusal is counted in `rmp_faults` (access FETCH) and, as on SNP
    /// hardware, reported to no one else.
    pub fn guest_exec(&self, vmpl: u8, gpa: Gpa, supervisor: bool) -> Result<(), MemError> {
        let kind = if supervisor {
            super::rmp::AccessKind::ExecSupervisor
        } else {
            super::rmp::AccessKind::ExecUser
        };
        if gpa.gfn() < self.rmp.len() && self.rmp.allows(vmpl, gpa.gfn(), kind) {
            return Ok(());
        }
        let e = if gpa.gfn() >= self.rmp.len() {
            MemError::OutOfRange(gpa)
        } else {
            MemError::NotValidated(gpa)
        };
        Err(self.fault(vmpl, e, Access::FETCH))
    }

    /// The host tries RMPADJUST on a guest page. RMPADJUST is a guest instruction that
    /// only changes the rights of a VMPL numerically above the one executing it (APM
    /// vol. 2, 15.36 SEV-SNP, RMPADJUST): the hypervisor has no VMPL and no such
    /// instruction, so the attempt always fails and changes nothing. Counted in
    /// `host_refused`.
    pub fn host_rmpadjust(&mut self, gpa: Gpa, target: u8, perms: Perms) -> Result<(), RmpError> {
        self.host_refused.push((gpa, target, perms.bits()));
        Err(RmpError::FailPermission)
    }

    /// Starts a call's window of Vigil's reads (invariant 4).
    pub fn begin_call(&mut self) {
        self.call_reads.clear();
        self.trace.clear();
    }

    /// The guest's own GHCB AP creation request for a VMSA at `vmpl` (what Linux's
    /// `vmgexit_ap_control` sends after CREATE_VCPU); the host's answer is checked.
    pub fn guest_ap_create(
        &mut self,
        op: ApOp,
        apic_id: u32,
        vmpl: crate::addr::Vmpl,
        vmsa: Gpa,
        sev_features: u64,
    ) -> Result<(), HostError> {
        self.exits.ap_create += 1;
        let g = ap_create_request(op, apic_id, vmpl, vmsa, sev_features);
        let mut page = [0u8; 4096];
        page.copy_from_slice(g.as_bytes());
        self.hv.answer_ap(&mut page, &mut self.rmp);
        check_simple_answer(&page)
    }

    /// A write by the host: only shared (unassigned) pages.
    pub fn host_write(&mut self, gpa: Gpa, buf: &[u8]) -> bool {
        let end = gpa.0 + buf.len() as u64;
        for gfn in gpa.gfn()..end.div_ceil(PAGE_SIZE_4K) {
            if self.rmp.get(gfn).is_none_or(|e| e.assigned) {
                return false;
            }
        }
        self.raw_write(gpa.0, buf);
        true
    }

    fn note_vigil(&mut self, gpa: Gpa, len: u64) {
        let (b, s) = self.vigil_range;
        if gpa.0 < b + s && gpa.0.saturating_add(len) > b {
            self.vigil_lost = true;
        }
    }

    /// Raw memory contents, whatever the RMP says (for invariant checks).
    pub fn peek(&self, gpa: Gpa, buf: &mut [u8]) {
        self.raw_read(gpa.0, buf);
    }

    /// The launch: assign and validate pages as the security processor does for the
    /// launch image, giving `guest_vmpl` and every VMPL above it but VMPL0 the rights
    /// `perms` (as validation through the SVSM does, #58019 6.2).
    pub fn launch_page(&mut self, gpa: Gpa, guest_vmpl: u8, perms: Perms) {
        self.rmp.rmpupdate(gpa, PageSize::Size4K, true);
        let _ = self.rmp.pvalidate(gpa, PageSize::Size4K, true);
        self.rmp.mark_zeroed(gpa.gfn());
        if !perms.is_empty() {
            for t in 1..=guest_vmpl {
                let _ = self
                    .rmp
                    .rmpadjust(0, gpa, PageSize::Size4K, t, perms, false);
            }
        }
    }

    /// The host remaps a page: makes it shared, writes its own bytes, makes it private
    /// again (the validated bit is gone, the contents are the host's).
    pub fn host_remap(&mut self, gpa: Gpa, fill: u8) {
        let gpa = Gpa(gpa.0 & !(PAGE_SIZE_4K - 1));
        self.note_vigil(gpa, PAGE_SIZE_4K);
        if let Some(e) = self.rmp.get(gpa.gfn()) {
            if e.size_2m {
                let base = Gpa(gpa.0 & !(crate::addr::PAGE_SIZE_2M - 1));
                self.rmp.psmash(base);
            }
        }
        self.rmp.rmpupdate(gpa, PageSize::Size4K, false);
        self.host_write(gpa, &[fill; 4096]);
        self.rmp.rmpupdate(gpa, PageSize::Size4K, true);
    }

    /// The guest's (or Vigil's) page-state change through the GHCB: batches of at most
    /// 253 entries, re-issued while the host reports partial progress; every answer is
    /// checked by [`crate::ghcb`].
    pub fn psc(&mut self, req: &[PscRequest]) -> Result<(), HostError> {
        for r in req {
            self.note_vigil(r.gpa, r.size.bytes());
        }
        for chunk in req.chunks(PSC_MAX_ENTRIES) {
            let Some(mut g) = psc_request(self.ghcb_gpa, chunk) else {
                return Err(HostError::Inconsistent("empty request"));
            };
            loop {
                self.exits.psc += 1;
                let mut page = [0u8; 4096];
                page.copy_from_slice(g.as_bytes());
                self.hv.answer_psc(&mut page, &mut self.rmp);
                match check_psc_answer(&g, &page)? {
                    PscProgress::Done => break,
                    PscProgress::Partial(n) => psc_continue(&mut g, n),
                }
            }
        }
        Ok(())
    }
}

impl GuestMemory for SimMachine {
    fn read(&mut self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(0, gpa, buf.len(), false)?;
        self.raw_read(gpa.0, buf);
        self.reads += 1;
        let (a, n) = (gpa.0, buf.len() as u64);
        if self
            .call_reads
            .iter()
            .any(|(b, m)| a < b.saturating_add(*m) && *b < a.saturating_add(n))
        {
            self.rereads.push((a, n));
        }
        self.call_reads.push((a, n));
        if let Some(r) = self.race.clone() {
            let end = gpa.0 + buf.len() as u64;
            if r.at.0 < end && r.at.0 + r.bytes.len() as u64 > gpa.0 {
                // Fails (and writes nothing) when the racer has no write access.
                let _ = self.guest_write(r.vmpl, r.at, &r.bytes);
            }
        }
        Ok(())
    }

    fn write(&mut self, gpa: Gpa, buf: &[u8]) -> Result<(), MemError> {
        self.check(0, gpa, buf.len(), true)?;
        self.trace.push(MachOp::Write(gpa, buf.len() as u64));
        self.raw_write(gpa.0, buf);
        Ok(())
    }

    fn zero(&mut self, gpa: Gpa, len: u64) -> Result<(), MemError> {
        self.check(0, gpa, len as usize, true)?;
        if gpa.0.is_multiple_of(PAGE_SIZE_4K) && len.is_multiple_of(PAGE_SIZE_4K) {
            for gfn in gpa.gfn()..gpa.gfn() + len / PAGE_SIZE_4K {
                self.mem.remove(&gfn);
                self.rmp.mark_zeroed(gfn);
            }
        } else {
            let z = std::vec![0u8; len as usize];
            self.raw_write(gpa.0, &z);
        }
        Ok(())
    }
}

impl Platform for SimMachine {
    fn pvalidate(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, RmpError> {
        self.trace.push(MachOp::Pvalidate(gpa, validate));
        self.rmp.pvalidate(gpa, size, validate)
    }

    fn rmpadjust(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        target: crate::addr::Vmpl,
        perms: Perms,
        vmsa: bool,
    ) -> Result<(), RmpError> {
        self.trace
            .push(MachOp::Rmpadjust(gpa, target.get(), perms.bits(), vmsa));
        if let Some(e) = self.rmpadjust_fault.take() {
            return Err(e);
        }
        self.rmp.rmpadjust(0, gpa, size, target.get(), perms, vmsa)
    }

    fn page_state_change(&mut self, req: &[PscRequest]) -> Result<(), HostError> {
        self.vigil_psc.extend_from_slice(req);
        self.psc(req)
    }

    fn ap_create(
        &mut self,
        op: ApOp,
        apic_id: u32,
        vmpl: crate::addr::Vmpl,
        vmsa: Gpa,
        sev_features: u64,
    ) -> Result<(), HostError> {
        self.guest_ap_create(op, apic_id, vmpl, vmsa, sev_features)
    }

    fn guest_request(&mut self, request: &[u8; 4096]) -> Result<[u8; 4096], HostError> {
        self.exits.guest_request += 1;
        let g = guest_request_request(Gpa(self.ghcb_gpa.0 + 0x1000), Gpa(self.ghcb_gpa.0 + 0x2000));
        let mut page = [0u8; 4096];
        page.copy_from_slice(g.as_bytes());
        let resp = self
            .hv
            .answer_guest_request(&mut page, request, &mut self.psp);
        check_simple_answer(&page)?;
        Ok(resp)
    }

    fn terminate(&mut self, reason: TermReason) {
        self.exits.terminate += 1;
        self.terminated = Some(reason);
    }

    fn guest_regs(&mut self, apic_id: u32) -> Result<SvsmRegs, VcpuError> {
        self.regs
            .get(&apic_id)
            .copied()
            .ok_or(VcpuError::UnknownVcpu(apic_id))
    }

    fn set_guest_regs(&mut self, apic_id: u32, regs: &SvsmRegs) -> Result<(), VcpuError> {
        self.trace.push(MachOp::SetRegs(apic_id));
        match self.regs.get_mut(&apic_id) {
            Some(r) => {
                *r = *regs;
                Ok(())
            }
            None => Err(VcpuError::UnknownVcpu(apic_id)),
        }
    }

    fn run_guest(&mut self, apic_id: u32) -> Result<(), VcpuError> {
        // Vigil's switch back to the guest is one run-VMPL exit.
        self.exits.run_vmpl += 1;
        self.trace.push(MachOp::RunGuest(apic_id));
        if self.hv.mode == super::hypervisor::HostMode::RefuseAll {
            return Err(VcpuError::Host(HostError::Refused(0)));
        }
        if self.regs.contains_key(&apic_id) {
            Ok(())
        } else {
            Err(VcpuError::UnknownVcpu(apic_id))
        }
    }
}
