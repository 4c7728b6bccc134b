//! The SEV-SNP instructions QEMU's SVM lacks. They raise #UD there (RIP at the first
//! prefix byte); the machine intercepts #UD, decodes the bytes at RIP and does what the
//! instruction does (APM vol. 3: PVALIDATE, RMPADJUST, RMPQUERY, INVLPGB, TLBSYNC), with
//! the rules in `pvalidate` and `rmpadjust`. Any other #UD goes back to the guest.
//!
//! Operands: rAX is a linear address (RAX in 64-bit mode, EAX otherwise), translated
//! through the guest's page tables without accessing the page; ECX the page size, RDX
//! the attributes. Results: EAX (a 32-bit write: RAX's upper half is zeroed), rFLAGS.CF
//! for PVALIDATE, RCX and RDX for RMPQUERY; then RIP moves past the instruction.

use crate::access::{Access, Kind};
use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::decode::{decode, Decoded, Insn};
use crate::machine::guest::GuestFault;
use crate::machine::stop::Stop;
use crate::machine::vmsa::{Gpr, Vmsa};
use crate::machine::walk::{LinearAccess, WalkError};
use crate::machine::{Cpu, Machine};
use crate::pvalidate::{self, Request};
use crate::rmp::PageSize;
use crate::rmpadjust;

/// #UD.
pub const UD_VECTOR: u8 = 6;
/// #GP.
pub const GP_VECTOR: u8 = 13;
/// #PF.
pub const PF_VECTOR: u8 = 14;

/// What the instruction's outcome leaves the machine to do.
enum Done {
    /// Completed: results written, RIP to advance; `changed` names the RMP range whose
    /// rights may have shrunk.
    Completed { changed: Option<(u64, u64)> },
    /// #GP(0) to the guest.
    GeneralProtection,
    /// A nested page fault with the RMP bit, to the host.
    Npf { gpa: u64, error_code: u64 },
}

fn size_bytes(rcx: u64) -> u64 {
    PageSize::from_rcx(rcx & 0xffff_ffff).map_or(0, PageSize::bytes)
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    /// A #UD intercept (exit code 0x46).
    pub(super) fn invalid_opcode(
        &mut self,
        cpu: &mut impl Cpu,
        v: &mut Vmsa,
        vmpl: u8,
    ) -> Result<(), Stop> {
        let (bytes, n) = self.fetch(v, vmpl);
        let d = decode(&bytes[..n], v.in_64bit_mode());
        match d.insn {
            Insn::Pvalidate | Insn::Rmpadjust | Insn::Rmpquery => {
                self.rmp_instruction(cpu, v, vmpl, d)
            }
            // QEMU flushes the whole TLB on every #VMEXIT and VMRUN, and this #UD was
            // one: the broadcast invalidation has happened by the time the guest resumes.
            Insn::Invlpgb | Insn::Tlbsync => {
                v.set_rip(v.rip().wrapping_add(d.len as u64));
                Ok(())
            }
            _ => {
                v.inject_exception(UD_VECTOR, None);
                Ok(())
            }
        }
    }

    fn rmp_instruction(
        &mut self,
        cpu: &mut impl Cpu,
        v: &mut Vmsa,
        vmpl: u8,
        d: Decoded,
    ) -> Result<(), Stop> {
        // #GP(0) unless CPL 0, before the operand is touched (APM vol. 3, exceptions).
        if v.cpl() & 3 != 0 {
            v.inject_exception(GP_VECTOR, Some(0));
            return Ok(());
        }
        let la = if v.in_64bit_mode() {
            v.rax()
        } else {
            v.rax() & 0xffff_ffff
        };
        let t = match self.translate(v, vmpl, la, LinearAccess::default(), false) {
            Ok(t) => t,
            Err(GuestFault::Walk(WalkError::PageFault { error_code })) => {
                v.set_cr2(la);
                v.inject_exception(PF_VECTOR, Some(error_code));
                return Ok(());
            }
            Err(GuestFault::Walk(WalkError::NonCanonical)) => {
                v.inject_exception(GP_VECTOR, Some(0));
                return Ok(());
            }
            Err(GuestFault::Walk(error)) => return Err(Stop::Walk { la, error }),
            Err(GuestFault::Rmp { access, outcome }) => {
                return self.refused_access(cpu, v, &access, outcome)
            }
        };
        let r = Request {
            gpa: t.gpa,
            rcx: v.gpr(Gpr::Rcx),
            rdx: v.gpr(Gpr::Rdx),
            vmpl,
            cpl: v.cpl(),
        };
        match self.execute(v, d.insn, r) {
            Done::Completed { changed } => {
                if let Some((gpa, bytes)) = changed {
                    Self::unmap_range(cpu, gpa, bytes);
                }
                v.set_rip(v.rip().wrapping_add(d.len as u64));
                Ok(())
            }
            Done::GeneralProtection => {
                v.inject_exception(GP_VECTOR, Some(0));
                Ok(())
            }
            Done::Npf { gpa, error_code } => {
                let a = Access {
                    gpa,
                    private: true,
                    kind: Kind::Read,
                    user: false,
                    vmpl,
                    walk: false,
                };
                self.rmp_npf(cpu, &a, error_code)
            }
        }
    }

    /// Apply the rule and write the results into `v`.
    fn execute(&mut self, v: &mut Vmsa, insn: Insn, r: Request) -> Done {
        let bytes = size_bytes(r.rcx);
        let changed = Some((r.gpa & !(bytes.max(1) - 1), bytes));
        match insn {
            Insn::Pvalidate => match pvalidate::pvalidate(&mut self.rmp, r) {
                pvalidate::Outcome::Done { eax, cf } => {
                    v.set_eax(eax);
                    v.set_cf(cf);
                    let ok = eax == pvalidate::ret::SUCCESS && !cf;
                    Done::Completed {
                        changed: changed.filter(|_| ok),
                    }
                }
                pvalidate::Outcome::GeneralProtection => Done::GeneralProtection,
                pvalidate::Outcome::NestedPageFault { error_code, gpa } => {
                    Done::Npf { gpa, error_code }
                }
            },
            Insn::Rmpadjust => match rmpadjust::rmpadjust(&mut self.rmp, r) {
                rmpadjust::Outcome::Done { eax } => {
                    v.set_eax(eax);
                    Done::Completed {
                        changed: changed.filter(|_| eax == pvalidate::ret::SUCCESS),
                    }
                }
                rmpadjust::Outcome::GeneralProtection => Done::GeneralProtection,
                rmpadjust::Outcome::NestedPageFault { error_code, gpa } => {
                    Done::Npf { gpa, error_code }
                }
            },
            _ => match rmpadjust::rmpquery(&self.rmp, r.gpa, r.rdx, r.vmpl, r.cpl) {
                rmpadjust::QueryOutcome::Done { eax, rdx, rcx } => {
                    v.set_eax(eax);
                    v.set_gpr(Gpr::Rdx, rdx);
                    v.set_gpr(Gpr::Rcx, rcx);
                    Done::Completed { changed: None }
                }
                rmpadjust::QueryOutcome::GeneralProtection => Done::GeneralProtection,
                rmpadjust::QueryOutcome::NestedPageFault { error_code, gpa } => {
                    Done::Npf { gpa, error_code }
                }
            },
        }
    }
}
