//! Nested page faults: the lazy filling of the per-VMPL nested tables, and the host's
//! side of an RMP fault.
//!
//! QEMU reports a nested page fault with EXITINFO1 = the x86 #PF bits (P, W, U always,
//! I/D) and bit 32 (final GPA) or 33 (guest page-table walk), EXITINFO2 = the GPA, and
//! no SNP bits (docs: DESIGN.md, "Facts about QEMU's software SVM"). The machine adds
//! what SNP hardware decides (APM vol. 2 §15.36.10): the RMP check of the access at the
//! running VMPL, with the C-bit of the GPA (bit 51; a 4-level nested walk ignores bits
//! 48-51) as the access's private bit. QEMU sets the I/D bit of a fetch only when the
//! model's own paging has EFER.NXE or CR4.SMEP (`mmu_translate` of the nested walk), so
//! the bare-metal model must run with NXE set, or fetches look like reads here.

use crate::access::{self, npf, Access, HostReaction, Kind, Outcome};
use crate::exit_codes as ec;
use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::stop::Stop;
use crate::machine::vmsa::Vmsa;
use crate::machine::walk::C_BIT_MASK;

/// CR0.PG (APM vol. 2 §3.1.1).
const CR0_PG: u64 = 1 << 31;
use crate::machine::{Cpu, Exit, Machine};
use crate::psc::{self, Op};
use crate::record::RmpFault;
use crate::rmp::{Perms, PAGE_SIZE};

/// GPA bits a 4-level nested walk uses (47:0).
const GPA_MASK: u64 = (1 << 48) - 1;

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// What the page at `gpa` may be mapped with at `vmpl`: a guest page gets the RMP's
    /// permissions (VMPL0 all, APM vol. 2 §15.36.7); a host (shared) page read and write
    /// (instruction fetches are private, APM vol. 2 §15.34.5, so never from it).
    fn nested_perms(&self, gpa: u64, vmpl: u8) -> Perms {
        match self.rmp.entry(gpa) {
            Ok(e) if e.assigned => match vmpl {
                0 => Perms::ALL,
                n => e.perms[usize::from(n & 3)],
            },
            _ => Perms(Perms::READ | Perms::WRITE),
        }
    }

    /// The host's side of an RMP nested page fault on `a` (KVM `svm_handle_npf` ->
    /// `kvm_mmu_page_fault`): recorded; a private/shared mismatch is converted by the
    /// VMM and the guest retries; anything else would refault for ever, so it stops.
    pub(super) fn rmp_npf(
        &mut self,
        cpu: &mut impl Cpu,
        a: &Access,
        error_code: u64,
    ) -> Result<(), Stop> {
        self.record.rmp_fault(RmpFault {
            gpa: a.gpa,
            vmpl: a.vmpl,
            access: a.kind,
            error_code,
        });
        let stuck = Stop::RmpFault {
            gpa: a.gpa,
            error_code,
        };
        match access::host_reaction(&self.rmp, a, error_code) {
            HostReaction::Convert { private } => {
                let op = if private { Op::Private } else { Op::Shared };
                let page = a.gpa & !(PAGE_SIZE - 1);
                psc::convert(&mut self.mem, &mut self.rmp, page, 1, op).map_err(|_| stuck)?;
                cpu.unmap(page);
                Ok(())
            }
            HostReaction::Stuck => Err(stuck),
        }
    }

    /// What the guest gets for an access the RMP did not allow: #VC 0x404 for an
    /// unvalidated page, else the host's reaction to the nested page fault.
    pub(super) fn refused_access(
        &mut self,
        cpu: &mut impl Cpu,
        v: &mut Vmsa,
        a: &Access,
        outcome: Outcome,
    ) -> Result<(), Stop> {
        match outcome {
            Outcome::Allowed => Ok(()),
            Outcome::NotValidated => self.deliver_vc(v, a.vmpl, ec::PAGE_NOT_VALIDATED),
            Outcome::NestedPageFault { error_code, .. } => self.rmp_npf(cpu, a, error_code),
        }
    }

    /// A nested page fault exit (0x400).
    pub(super) fn nested_page_fault(
        &mut self,
        cpu: &mut impl Cpu,
        v: &mut Vmsa,
        vmpl: u8,
        exit: Exit,
    ) -> Result<(), Stop> {
        let gpa = exit.info2 & GPA_MASK;
        // With paging off (real mode, or protected mode without paging) there is no PTE
        // to carry the C-bit, and every access is private (APM vol. 2 §15.34.5: an SEV
        // guest's accesses without paging are treated as C=1).
        let paging = v.cr0() & CR0_PG != 0;
        let private = exit.info2 & C_BIT_MASK != 0 || !paging;
        let fetch = exit.info1 & npf::FETCH != 0;
        let walk = exit.info1 & npf::WALK != 0;
        let user = v.cpl() & 3 == 3;
        let kind = match (fetch, exit.info1 & npf::WRITE != 0) {
            (true, _) if user => Kind::UserExec,
            (true, _) => Kind::SuperExec,
            (false, true) => Kind::Write,
            (false, false) => Kind::Read,
        };
        // MMIO: a shared data access outside guest memory. KVM maps MMIO for SEV-ES/SNP
        // guests with reserved bits set, so the CPU raises #VC with the NPF exit code
        // (APM vol. 2 §15.35.5; Linux `vc_handle_mmio` takes it).
        if !private && !fetch && !walk && gpa >= self.mem.size() {
            return self.deliver_vc(v, vmpl, ec::NPF);
        }
        let a = Access {
            gpa,
            private,
            kind,
            user,
            vmpl,
            walk,
        };
        match access::check(&self.rmp, &a) {
            Outcome::Allowed => {
                let page = gpa & !(PAGE_SIZE - 1);
                cpu.map(vmpl, page, self.nested_perms(page, vmpl));
                Ok(())
            }
            outcome => self.refused_access(cpu, v, &a, outcome),
        }
    }
}
