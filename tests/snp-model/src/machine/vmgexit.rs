//! The exits that reach the host on SNP hardware as well, or that the CPU answers
//! itself: VMGEXIT (MSR protocol or GHCB page, told from VMMCALL by its bytes), and the
//! two MSRs an SNP guest reaches without a #VC (SEV_STATUS, APM vol. 2 §15.34.10; the
//! GHCB MSR, per VMSA, GHCB spec #56421 §2.3.1; KVM passes the latter through,
//! `svm.c` direct_access_msrs).

use alloc::vec::Vec;

use crate::exit_codes as ec;
use crate::ghcb_exits::{self, Ctx, Exiting, SecurityProcessor};
use crate::ghcb_page::off as ghcb_off;
use crate::host::{Action, Devices};
use crate::machine::decode::{decode, Insn};
use crate::machine::stop::Stop;
use crate::machine::vmsa::{efer, Gpr, Vmsa};
use crate::machine::{Cpu, Exit, Machine};
use crate::msr_protocol::{self, code, INFO_MASK};
use crate::psc::{PSC_BUFFER_LEN, PSC_MAX_ENTRIES};
use crate::record::Termination;
use crate::rmp::{PAGE_SIZE, PAGE_SIZE_2M};
use crate::sev_status::sev_status;

/// The GHCB MSR.
pub const MSR_GHCB: u32 = 0xc001_0130;
/// SEV_STATUS.
pub const MSR_SEV_STATUS: u32 = 0xc001_0131;
/// EFER (APM vol. 2 §3.1.7).
pub const MSR_EFER: u32 = 0xc000_0080;
/// PAT (APM vol. 2 §7.8.1); its value is G_PAT in the VMSA.
pub const MSR_PAT: u32 = 0x277;
/// RDMSR/WRMSR without prefixes.
const MSR_INSN_LEN: usize = 2;
/// GFN bits of a PSC request (MSR bits 51:12, PSC entry bits 51:12).
const GFN_MASK: u64 = (1 << 40) - 1;

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// An MSR exit (0x7C; EXITINFO1 0 = RDMSR, 1 = WRMSR, APM vol. 2 §15.11).
    pub(super) fn msr_exit(
        &mut self,
        v: &mut Vmsa,
        vcpu: u32,
        vmpl: u8,
        exit: Exit,
    ) -> Result<(), Stop> {
        let ecx = v.gpr(Gpr::Rcx) as u32;
        let write = exit.info1 & 1 != 0;
        let value = (v.gpr(Gpr::Rdx) << 32) | (v.rax() & 0xffff_ffff);
        let read = match (ecx, write) {
            (MSR_SEV_STATUS, false) => sev_status(v.sev_features()),
            (MSR_GHCB, false) => self.ghcb_msr(vcpu, vmpl),
            (MSR_GHCB, true) => {
                self.set_ghcb_msr(vcpu, vmpl, value);
                0
            }
            // EFER and PAT are not intercepted for an SEV-ES/SNP guest: KVM clears their
            // intercepts (sev.c `sev_es_init_vmcb`: MSR_EFER and MSR_IA32_CR_PAT made
            // pass-through) and learns EFER writes through the EFER write trap after
            // they complete (APM vol. 2 §15.35.8, exit 0x8F), so no #VC is raised. The
            // value lives in the running VMSA. EFER.SVME stays set, as hardware keeps it
            // for a guest running under SVM.
            (MSR_EFER, false) => v.efer(),
            (MSR_EFER, true) => {
                // LMA is read-only (the CPU sets it when paging is enabled with LME).
                let lma = v.efer() & efer::LMA;
                v.set_efer((value & !efer::LMA) | lma | efer::SVME);
                0
            }
            (MSR_PAT, false) => v.g_pat(),
            (MSR_PAT, true) => {
                v.set_g_pat(value);
                0
            }
            // SEV_STATUS is read-only: WRMSR is #GP (APM vol. 2 §15.34.10).
            (MSR_SEV_STATUS, true) => {
                v.inject_exception(super::instructions::GP_VECTOR, Some(0));
                return Ok(());
            }
            _ => return self.deliver_vc(v, vmpl, ec::MSR),
        };
        if !write {
            v.set_eax(read as u32);
            v.set_gpr(Gpr::Rdx, read >> 32);
        }
        let (b, n) = self.fetch(v, vmpl);
        let d = decode(&b[..n], v.in_64bit_mode());
        let len = match d.insn {
            Insn::Rdmsr | Insn::Wrmsr => d.len,
            _ => MSR_INSN_LEN,
        };
        v.set_rip(v.rip().wrapping_add(len as u64));
        Ok(())
    }

    /// A VMMCALL exit (0x81): VMGEXIT (F2/F3 0F 01 D9) is the automatic exit to the host,
    /// and the guest resumes after it; a plain VMMCALL is #VC 0x81 (APM vol. 2 §15.35.5;
    /// Linux `vc_handle_exitcode`, SVM_EXIT_VMMCALL).
    pub(super) fn vmmcall_exit(
        &mut self,
        cpu: &mut impl Cpu,
        v: &mut Vmsa,
        vcpu: u32,
        vmpl: u8,
    ) -> Result<(), Stop> {
        let (b, n) = self.fetch(v, vmpl);
        let d = decode(&b[..n], v.in_64bit_mode());
        if d.insn != Insn::Vmgexit {
            return self.deliver_vc(v, vmpl, ec::VMMCALL);
        }
        v.set_rip(v.rip().wrapping_add(d.len as u64));
        let msr = self.ghcb_msr(vcpu, vmpl);
        let action = if msr & INFO_MASK != 0 {
            let (new, action) = msr_protocol::handle(
                &mut self.host,
                &mut self.mem,
                &mut self.rmp,
                vcpu,
                vmpl,
                msr,
            );
            self.set_ghcb_msr(vcpu, vmpl, new);
            if msr & INFO_MASK == code::PSC_REQ {
                cpu.unmap(((msr >> 12) & GFN_MASK) * PAGE_SIZE);
            }
            action
        } else {
            // The pages a PSC descriptor names are read before the host answers (it
            // rewrites the descriptor), and unmapped after.
            let psc = self.psc_pages(msr);
            let action = ghcb_exits::handle(
                &mut Ctx {
                    host: &mut self.host,
                    mem: &mut self.mem,
                    rmp: &mut self.rmp,
                    dev: &mut self.devices,
                    psp: &mut self.psp,
                },
                Exiting {
                    vcpu,
                    vmpl,
                    ghcb_gpa: msr,
                },
            );
            for (gpa, bytes) in psc {
                Self::unmap_range(cpu, gpa, bytes);
            }
            action
        };
        self.host_action(vcpu, vmpl, action)
    }

    /// The pages of the PSC descriptor in the buffer SW_SCRATCH names, if the GHCB at
    /// `ghcb` holds a PSC exit (GHCB spec #56421 §4.1.6: header cur/end entry, then
    /// entries with GFN 51:12, operation 55:52, size 56).
    fn psc_pages(&self, ghcb: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let q = |o: usize| {
            let mut b = [0u8; 8];
            self.mem.read(ghcb.wrapping_add(o as u64), &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        };
        if q(ghcb_off::SW_EXIT_CODE) != Some(ec::PSC) {
            return out;
        }
        let Some(scratch) = q(ghcb_off::SW_SCRATCH) else {
            return out;
        };
        let mut buf = alloc::vec![0u8; PSC_BUFFER_LEN];
        if self.mem.read(scratch, &mut buf).is_err() {
            return out;
        }
        let end = usize::from(u16::from_le_bytes([buf[2], buf[3]])).min(PSC_MAX_ENTRIES - 1);
        for i in 0..=end {
            let mut e = [0u8; 8];
            e.copy_from_slice(&buf[8 + 8 * i..16 + 8 * i]);
            let e = u64::from_le_bytes(e);
            let bytes = if e & (1 << 56) != 0 {
                PAGE_SIZE_2M
            } else {
                PAGE_SIZE
            };
            out.push((((e >> 12) & GFN_MASK) * PAGE_SIZE, bytes));
        }
        out
    }

    /// What the host decided, applied to the vCPU.
    pub(super) fn host_action(&mut self, vcpu: u32, vmpl: u8, a: Action) -> Result<(), Stop> {
        match a {
            Action::Resume => Ok(()),
            Action::RunVmpl(target) => {
                self.mark_in_use(vcpu, vmpl, false);
                self.set_running_vmpl(vcpu, target);
                Ok(())
            }
            Action::Halt => Err(Stop::ResetHold),
            Action::Terminate { set, code } => {
                self.record.terminations.push(Termination {
                    vcpu,
                    vmpl,
                    set,
                    code,
                });
                Err(Stop::Terminated { set, code })
            }
            Action::Fatal(f) => Err(Stop::HostFault(f)),
        }
    }
}
