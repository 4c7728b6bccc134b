//! The model's CPU: QEMU's software SVM running the guest, one VMCB per (vCPU, VMPL) and
//! one nested page table per VMPL (the `Cpu` of `snp_model::machine`).
//!
//! - Nested tables: 4 KiB leaves, GPA `g` maps to host address `guest base + g`
//!   (`bare::svm::npt::Npt::translated`). A page the machine maps without READ is left
//!   unmapped: nested page tables cannot express write-only or execute-only, and a page
//!   the guest may not read must fault. Either execute right (user or supervisor) maps
//!   the page executable.
//! - VMCB: loaded from the VMSA page before each VMRUN and written back after
//!   (`vmsa_state`), ASID 1, nested paging on, TLB flushed on an entry after any map
//!   change or a change of context (QEMU flushes on every VMRUN anyway; hardware with
//!   one ASID for every VMPL's tables would not).
//! - Intercepts (APM vol. 2 15.9-15.13): CPUID, every MSR and every I/O port (permission
//!   maps all ones), VMMCALL (also `rep vmmcall`, the VMGEXIT), HLT, SHUTDOWN, #UD (QEMU
//!   raises it for PVALIDATE, RMPADJUST and RMPQUERY, which the machine emulates), VMRUN
//!   and the other SVM instructions, INVD, WBINVD, RDTSC, RDTSCP, RDPMC, MONITOR, MWAIT,
//!   XSETBV; nested page faults.
//! - x87/SSE registers: one FXSAVE area per (vCPU, VMPL), restored before VMRUN and saved
//!   after, so no VMPL sees another's registers (SNP keeps them in each VMSA).
//! - An event the exit interrupted (EXITINTINFO valid) is injected again on the next entry
//!   of that (vCPU, VMPL), as KVM's `svm_complete_interrupts` does.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;

use bare::svm::fpu::{self, FxArea};
use bare::svm::npt::{Npt, NptPerm};
use bare::svm::vmcb::{intercept3, intercept4, Vmcb, NP_ENABLE, TLB_FLUSH_ALL, V_INTR_MASKING};
use snp_model::machine::{Cpu, Exit};
use snp_model::rmp::Perms;
use zerocopy::FromZeros;

use crate::vmsa_state::{self, VmsaPage};

/// The guest's ASID (0 is the host's).
pub const GUEST_ASID: u32 = 1;
/// The #UD exception-intercept bit (vector 6).
const INTERCEPT_UD: u32 = 1 << 6;
/// EXITINTINFO valid bit.
const EXITINTINFO_VALID: u64 = 1 << 31;

/// The I/O permission map: 12 KiB, every bit set (APM vol. 2 15.10.1).
#[repr(C, align(4096))]
struct Iopm([u8; 3 * 4096]);
/// The MSR permission map: 8 KiB, every bit set (APM vol. 2 15.11).
#[repr(C, align(4096))]
struct Msrpm([u8; 2 * 4096]);
/// A page for the host's VMSAVE/VMLOAD state.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The VMCB of one (vCPU, VMPL), its x87/SSE registers (which VMRUN does not switch, and
/// which SNP keeps per VMSA), and the event its last exit interrupted.
struct Context {
    vmcb: Box<Vmcb>,
    fx: Box<FxArea>,
    pending: u64,
}

/// The SVM CPU. Build it only after `bare::svm::enable`.
pub struct SvmCpu {
    npt: [Npt; 4],
    contexts: BTreeMap<(u32, u8), Context>,
    iopm: Box<Iopm>,
    msrpm: Box<Msrpm>,
    host_save: Box<Page>,
    /// A nested table changed since the last entry.
    dirty: bool,
    /// The (vCPU, VMPL) of the last entry.
    last: Option<(u32, u8)>,
}

fn pa<T>(b: &T) -> u64 {
    b as *const T as u64
}

impl SvmCpu {
    /// A CPU for guest memory of `size` bytes at host address `host_base` (page aligned).
    /// Turns on FXSAVE of the SSE registers (`bare::svm::fpu::enable`).
    pub fn new(host_base: u64, size: u64) -> Self {
        fpu::enable();
        SvmCpu {
            npt: core::array::from_fn(|_| Npt::translated(size, host_base)),
            contexts: BTreeMap::new(),
            iopm: Box::new(Iopm([0xff; 3 * 4096])),
            msrpm: Box::new(Msrpm([0xff; 2 * 4096])),
            host_save: Box::new(Page([0; 4096])),
            dirty: true,
            last: None,
        }
    }
}

/// The nested-table rights for the machine's `perms`: None (not mapped) without READ;
/// writable with WRITE; executable with either execute right.
pub fn npt_perm(perms: Perms) -> Option<NptPerm> {
    (perms.0 & Perms::READ != 0).then_some(NptPerm {
        write: perms.0 & Perms::WRITE != 0,
        exec: perms.0 & (Perms::USER_EXEC | Perms::SUPER_EXEC) != 0,
    })
}

/// A VMCB with the model's intercepts, permission maps, ASID and nested paging.
fn new_vmcb(iopm_pa: u64, msrpm_pa: u64) -> Box<Vmcb> {
    let mut v = Box::new(Vmcb::new_zeroed());
    let c = &mut v.control;
    c.intercept_exceptions = INTERCEPT_UD;
    c.intercept_misc1 = intercept3::CPUID
        | intercept3::HLT
        | intercept3::IOIO_PROT
        | intercept3::MSR_PROT
        | intercept3::SHUTDOWN
        | intercept3::INVD
        | intercept3::RDTSC
        | intercept3::RDPMC;
    c.intercept_misc2 = intercept4::VMRUN
        | intercept4::VMMCALL
        | intercept4::VMLOAD
        | intercept4::VMSAVE
        | intercept4::STGI
        | intercept4::CLGI
        | intercept4::SKINIT
        | intercept4::RDTSCP
        | intercept4::WBINVD
        | intercept4::MONITOR
        | intercept4::MWAIT
        | intercept4::XSETBV;
    c.iopm_base_pa = iopm_pa;
    c.msrpm_base_pa = msrpm_pa;
    c.guest_asid = GUEST_ASID;
    // The guest's IF masks only virtual interrupts; physical ones stay masked by the
    // model's own IF (always clear).
    c.vintr = V_INTR_MASKING;
    c.np_enable = NP_ENABLE;
    v
}

impl SvmCpu {
    /// Runs `vcpu` at `vmpl` from `vmsa` until the next #VMEXIT and writes the state
    /// back.
    pub fn run(&mut self, vcpu: u32, vmpl: u8, vmsa: &mut VmsaPage) -> Exit {
        let Some(npt) = self.npt.get(usize::from(vmpl)) else {
            return Exit {
                code: bare::svm::vmcb::exit::INVALID,
                info1: 0,
                info2: 0,
            };
        };
        let n_cr3 = npt.root();
        let (iopm_pa, msrpm_pa) = (pa(&*self.iopm), pa(&*self.msrpm));
        let host_save_pa = pa(&*self.host_save);
        // One ASID for every context: a change of nested table (another VMPL or vCPU)
        // must flush too, or a real CPU could use one VMPL's translations in another.
        let flush = core::mem::take(&mut self.dirty) || self.last != Some((vcpu, vmpl));
        self.last = Some((vcpu, vmpl));
        let ctx = self
            .contexts
            .entry((vcpu, vmpl))
            .or_insert_with(|| Context {
                vmcb: new_vmcb(iopm_pa, msrpm_pa),
                fx: Box::new(FxArea::reset()),
                pending: 0,
            });
        let pending = core::mem::take(&mut ctx.pending);
        let mut gprs = vmsa_state::load(&mut ctx.vmcb, vmsa, pending);
        ctx.vmcb.control.n_cr3 = n_cr3;
        ctx.vmcb.control.tlb_control = if flush { TLB_FLUSH_ALL } else { 0 };
        let vmcb_pa = pa(&*ctx.vmcb);
        fpu::restore(&ctx.fx);
        // SAFETY: SVM is enabled (the caller built this CPU after `bare::svm::enable`);
        // the VMCB is a page-aligned heap page owned by `ctx`, identity mapped, with
        // VMRUN intercepted, ASID 1 and nested paging on tables that map only guest
        // memory (`Npt::translated` refuses anything outside it); `host_save` is another
        // page owned by this CPU, used only for the host's VMSAVE/VMLOAD state.
        unsafe { bare::svm::vmrun(vmcb_pa, &mut gprs, host_save_pa) };
        fpu::save(&mut ctx.fx);
        vmsa_state::store(&ctx.vmcb, &gprs, vmsa);
        let c = &mut ctx.vmcb.control;
        if c.exit_int_info & EXITINTINFO_VALID != 0 {
            ctx.pending = c.exit_int_info;
        }
        c.event_inj = 0;
        Exit {
            code: c.exit_code,
            info1: c.exit_info1,
            info2: c.exit_info2,
        }
    }

    /// Maps the page at `gpa` in `vmpl`'s nested table with what `perms` allows (see the
    /// module docs); a page without READ is unmapped.
    pub fn map(&mut self, vmpl: u8, gpa: u64, perms: Perms) {
        let Some(npt) = self.npt.get_mut(usize::from(vmpl)) else {
            log::warn!("map {gpa:#x}: no VMPL {vmpl}");
            return;
        };
        self.dirty = true;
        let Some(perm) = npt_perm(perms) else {
            npt.unmap(gpa & !0xfff);
            return;
        };
        if let Err(e) = npt.map(gpa & !0xfff, perm) {
            log::warn!("map {gpa:#x} at VMPL{vmpl} refused: {e:?}");
        }
    }

    /// Removes the page at `gpa` from every VMPL's nested table.
    pub fn unmap(&mut self, gpa: u64) {
        for npt in &mut self.npt {
            npt.unmap(gpa & !0xfff);
        }
        self.dirty = true;
    }

    /// Pages mapped at `vmpl`.
    pub fn mapped(&self, vmpl: u8) -> usize {
        self.npt.get(usize::from(vmpl)).map_or(0, Npt::mapped)
    }
}

impl Cpu for SvmCpu {
    fn run(&mut self, vcpu: u32, vmpl: u8, vmsa: &mut [u8; 4096]) -> Exit {
        SvmCpu::run(self, vcpu, vmpl, vmsa)
    }

    fn map(&mut self, vmpl: u8, gpa: u64, perms: Perms) {
        SvmCpu::map(self, vmpl, gpa, perms);
    }

    fn unmap(&mut self, gpa: u64) {
        SvmCpu::unmap(self, gpa);
    }

    fn tsc(&self) -> u64 {
        bare::svm::rdtsc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_follow_the_rmp_perms() {
        assert_eq!(npt_perm(Perms::NONE), None);
        assert_eq!(npt_perm(Perms(Perms::WRITE | Perms::SUPER_EXEC)), None);
        assert_eq!(
            npt_perm(Perms(Perms::READ)),
            Some(NptPerm {
                write: false,
                exec: false
            })
        );
        assert_eq!(
            npt_perm(Perms(Perms::READ | Perms::USER_EXEC)),
            Some(NptPerm {
                write: false,
                exec: true
            })
        );
        assert_eq!(
            npt_perm(Perms::ALL),
            Some(NptPerm {
                write: true,
                exec: true
            })
        );
    }

    #[test]
    fn the_vmcb_meets_vmrun_and_the_briefs_intercepts() {
        let v = new_vmcb(0x1000, 0x4000);
        let c = &v.control;
        assert_ne!(c.intercept_misc2 & intercept4::VMRUN, 0);
        assert_eq!(c.guest_asid, GUEST_ASID);
        assert_eq!(c.np_enable & NP_ENABLE, NP_ENABLE);
        assert_eq!(c.intercept_exceptions, 1 << 6, "#UD only");
        for bit in [
            intercept3::CPUID,
            intercept3::HLT,
            intercept3::IOIO_PROT,
            intercept3::MSR_PROT,
            intercept3::SHUTDOWN,
            intercept3::INVD,
            intercept3::RDTSC,
            intercept3::RDPMC,
        ] {
            assert_ne!(c.intercept_misc1 & bit, 0, "{bit:#x}");
        }
        for bit in [
            intercept4::VMMCALL,
            intercept4::WBINVD,
            intercept4::MONITOR,
            intercept4::MWAIT,
            intercept4::XSETBV,
        ] {
            assert_ne!(c.intercept_misc2 & bit, 0, "{bit:#x}");
        }
        assert_eq!((c.iopm_base_pa, c.msrpm_base_pa), (0x1000, 0x4000));
    }
}
