//! `monitor::Platform` on SEV-SNP: the real instructions at VMPL0 and the host's
//! services through the GHCB page (docs/kernel.md, "The SNP boot").
//!
//! | Platform call       | on `snp`                                                   |
//! |---------------------|------------------------------------------------------------|
//! | `pvalidate`         | PVALIDATE (APM vol. 3) through the window page mapped     |
//! |                     | private at the GPA; EAX and CF mapped to the result        |
//! | `rmpadjust`         | RMPADJUST, RDX = target VMPL 7:0, perms 15:8, VMSA 16     |
//! |                     | (`svsm_abi::rmp::rmpadjust_attrs`)                          |
//! | `page_state_change` | the GHCB PSC exit (#56421 4.1.6), partial answers retried  |
//! |                     | from the host's `cur_entry`, every answer checked          |
//! | `ap_create`         | the GHCB AP-creation exit 0x80000013, VMPL in SW_EXITINFO1 |
//! |                     | bits 19:16, SEV features in RAX                            |
//! | `guest_request`     | the GHCB guest-request exit with two shared frames         |
//! | `run_guest`         | checks that the vCPU's VMSA is known; the switch itself,   |
//! |                     | the GHCB run-VMPL exit 0x80000018 with SW_EXITINFO1 = VMPL |
//! |                     | (#56421 v2.03, [`run_vmpl`]), is made by the vCPU's loop   |
//! |                     | once the monitor's lock is released (`snp::serve`)         |
//! | `guest_regs`        | read from the lower VMPL's VMSA (only VMPL0 may)           |
//! | `terminate`         | the GHCB MSR termination request, reason set 1             |
//!
//! Guest memory is reached one page at a time through [`WINDOW_VA`], re-pointed with
//! a private leaf and INVLPG per access; GPAs in the Vigil region or beyond guest RAM
//! are refused (`MemError::OutOfRange`).

use alloc::vec::Vec;

use monitor::addr::{Gpa, PageSize, Vmpl};
use monitor::ghcb::{
    ap_create_request, check_psc_answer, check_simple_answer, guest_request_request, psc_continue,
    psc_request, PscProgress,
};
use monitor::memory::{GuestMemory, MemError};
use monitor::platform::{
    ApOp, HostError, Perms, Platform, PscRequest, PvalidateOutcome, RmpError, TermReason, VcpuError,
};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::ghcb::{exit, offset, Ghcb, PSC_MAX_ENTRIES};
use svsm_abi::rmp::rmpadjust_attrs;
use svsm_abi::vmsa::Vmsa;
use zerocopy::{FromZeros, IntoBytes};

use super::ghcb::page::call_raw;
use super::memory::WINDOW_VA;
use super::rmp::{guest_page, pvalidate_outcome, rmp_result};
use crate::cpu::instr::{invlpg, pvalidate, rmpadjust};
use crate::mm::address::{PhysAddr, VirtAddr};
use crate::mm::paging::Perm;
use crate::mm::with_page_tables;

/// The SNP platform.
pub struct SnpPlatform {
    vigil: (u64, u64),
    ram_end: u64,
    guest_vmpl: u8,
    /// Shared frames for guest requests (request, response).
    msg: (u64, u64),
    /// (APIC ID, VMSA GPA) of each lower-VMPL vCPU Vigil runs.
    vmsas: Vec<(u32, u64)>,
    /// Set by `terminate` (on hardware it does not return).
    pub terminated: Option<TermReason>,
}

fn answer_bytes(g: &Ghcb) -> Result<&[u8; 4096], HostError> {
    g.as_bytes()
        .try_into()
        .map_err(|_| HostError::Inconsistent("ghcb size"))
}

fn send(g: &Ghcb) -> Result<Ghcb, HostError> {
    call_raw(g).map_err(|_| HostError::Inconsistent("GHCB page busy or not ready"))
}

/// A page-state change through the GHCB page (#56421 4.1.6): at most 253 entries per
/// exit; a partial answer is re-issued from the host's `cur_entry`; every answer is
/// checked (`monitor::ghcb::check_psc_answer`). Used for Vigil's own pages at boot too.
pub fn psc(req: &[PscRequest]) -> Result<(), HostError> {
    for chunk in req.chunks(PSC_MAX_ENTRIES) {
        let ghcb = Gpa(super::ghcb::page::gpa());
        let mut g = psc_request(ghcb, chunk).ok_or(HostError::Inconsistent("psc size"))?;
        let mut done = false;
        // Each round must move cur_entry forward (checked), so n + 1 rounds suffice.
        for _ in 0..=chunk.len() {
            let a = send(&g)?;
            match check_psc_answer(&g, answer_bytes(&a)?)? {
                PscProgress::Done => {
                    done = true;
                    break;
                }
                PscProgress::Partial(from) => psc_continue(&mut g, from),
            }
        }
        if !done {
            return Err(HostError::Inconsistent("psc never completed"));
        }
    }
    Ok(())
}

impl SnpPlatform {
    /// Guest RAM ends at `ram_end`; `vigil` is never reached through the platform;
    /// `msg` are two 4 KiB frames already made shared and mapped shared at their GPA
    /// ((0, 0): none; `guest_request` then refuses).
    pub fn new(vigil: (u64, u64), ram_end: u64, guest_vmpl: u8, msg: (u64, u64)) -> Self {
        Self {
            vigil,
            ram_end,
            guest_vmpl,
            msg,
            vmsas: Vec::new(),
            terminated: None,
        }
    }

    /// Records the VMSA of vCPU `apic_id` at the guest's VMPL (for `guest_regs`).
    pub fn set_vmsa(&mut self, apic_id: u32, vmsa: u64) {
        self.vmsas.retain(|v| v.0 != apic_id);
        self.vmsas.push((apic_id, vmsa));
    }

    /// Forgets the VMSA of vCPU `apic_id` (the guest deleted it).
    pub fn clear_vmsa(&mut self, apic_id: u32) {
        self.vmsas.retain(|v| v.0 != apic_id);
    }

    /// The guest's VMPL.
    pub fn guest_vmpl(&self) -> u8 {
        self.guest_vmpl
    }

    fn guest_page(&self, gpa: u64) -> bool {
        guest_page(gpa, self.vigil, self.ram_end)
    }

    /// Points the window at the 4 KiB page `gpa` (private) and returns the VA.
    fn window(&self, gpa: u64) -> Option<u64> {
        let ok = with_page_tables(|pt| {
            pt.remap_page(VirtAddr(WINDOW_VA), PhysAddr(gpa), Perm::ReadWrite, true)
        });
        if ok != Some(Ok(true)) {
            return None;
        }
        invlpg(WINDOW_VA);
        Some(WINDOW_VA)
    }

    fn copy(
        &mut self,
        gpa: Gpa,
        len: usize,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), MemError> {
        let end = gpa
            .0
            .checked_add(len as u64)
            .ok_or(MemError::OutOfRange(gpa))?;
        let mut a = gpa.0;
        while a < end {
            let page = a & !0xfff;
            if !self.guest_page(page) {
                return Err(MemError::OutOfRange(Gpa(a)));
            }
            let n = ((page + 4096).min(end) - a) as usize;
            let va = self.window(page).ok_or(MemError::OutOfRange(Gpa(a)))?;
            f(va + (a - page), (a - gpa.0) as usize, n);
            a += n as u64;
        }
        Ok(())
    }

    fn read_vmsa(&mut self, apic_id: u32) -> Result<(u64, Vmsa), VcpuError> {
        let gpa = self
            .vmsas
            .iter()
            .find(|v| v.0 == apic_id)
            .map(|v| v.1)
            .ok_or(VcpuError::UnknownVcpu(apic_id))?;
        let mut v = Vmsa::new_zeroed();
        let va = self.window(gpa).ok_or(VcpuError::UnknownVcpu(apic_id))?;
        // SAFETY: the window maps the VMSA page private; VMPL0 may read any VMSA page
        // (APM vol. 2 15.36.6); the vCPU is not running at that VMPL while VMPL0 runs.
        unsafe {
            core::ptr::copy_nonoverlapping(
                va as *const u8,
                v.as_mut_bytes().as_mut_ptr(),
                core::mem::size_of::<Vmsa>(),
            )
        };
        Ok((va, v))
    }
}

impl GuestMemory for SnpPlatform {
    fn read(&mut self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        self.copy(gpa, buf.len(), |va, off, n| {
            // SAFETY: the window maps a guest page private, read+write, holding no Rust
            // object; `n` bytes from `va` stay inside it.
            unsafe { core::ptr::copy_nonoverlapping(va as *const u8, buf[off..].as_mut_ptr(), n) }
        })
    }
    fn write(&mut self, gpa: Gpa, buf: &[u8]) -> Result<(), MemError> {
        self.copy(gpa, buf.len(), |va, off, n| {
            // SAFETY: as for `read`.
            unsafe { core::ptr::copy_nonoverlapping(buf[off..].as_ptr(), va as *mut u8, n) }
        })
    }
}

impl Platform for SnpPlatform {
    fn pvalidate(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, RmpError> {
        if !gpa.is_aligned(size) || !self.guest_page(gpa.0) {
            return Err(RmpError::FailInput);
        }
        let va = self.window(gpa.0).ok_or(RmpError::FailInput)?;
        // SAFETY: a guest page (outside the Vigil region), reached only through the
        // window; no Rust reference points into it.
        let out = unsafe { pvalidate(va, size == PageSize::Size2M, validate) };
        pvalidate_outcome(out.ret, out.unchanged)
    }

    fn rmpadjust(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        target: Vmpl,
        perms: Perms,
        vmsa: bool,
    ) -> Result<(), RmpError> {
        // A VMSA page may be one of Vigil's frames (the boot vCPU's); anything else of
        // the Vigil region is refused.
        let vigil_frame = vmsa && gpa.0 >= self.vigil.0 && gpa.0 < self.vigil.1;
        if !gpa.is_aligned(size) || !(self.guest_page(gpa.0) || vigil_frame) {
            return Err(RmpError::FailInput);
        }
        let va = self.window(gpa.0).ok_or(RmpError::FailInput)?;
        let attrs = rmpadjust_attrs(target.get(), perms.bits(), vmsa);
        // SAFETY: VMPL0 sets a lower VMPL's rights on a guest page (or the VMSA bit of
        // a VMSA page) the monitor's records allow.
        rmp_result(unsafe { rmpadjust(va, size == PageSize::Size2M, attrs) }.ret)
    }

    fn page_state_change(&mut self, req: &[PscRequest]) -> Result<(), HostError> {
        psc(req)
    }

    fn ap_create(
        &mut self,
        op: ApOp,
        apic_id: u32,
        vmpl: Vmpl,
        vmsa: Gpa,
        sev_features: u64,
    ) -> Result<(), HostError> {
        let a = send(&ap_create_request(op, apic_id, vmpl, vmsa, sev_features))?;
        check_simple_answer(answer_bytes(&a)?)
    }

    fn guest_request(&mut self, request: &[u8; 4096]) -> Result<[u8; 4096], HostError> {
        if self.msg.0 == 0 || self.msg.1 == 0 {
            return Err(HostError::Inconsistent("no guest-request pages"));
        }
        // SAFETY: `msg.0` is Vigil's frame, shared and mapped shared at its GPA, used
        // for nothing else; the host may read it (it is the request).
        unsafe { core::ptr::copy_nonoverlapping(request.as_ptr(), self.msg.0 as *mut u8, 4096) };
        let a = send(&guest_request_request(Gpa(self.msg.0), Gpa(self.msg.1)))?;
        check_simple_answer(answer_bytes(&a)?)?;
        let mut out = [0u8; 4096];
        // SAFETY: `msg.1` as `msg.0`; copied once, the monitor authenticates the copy.
        unsafe { core::ptr::copy_nonoverlapping(self.msg.1 as *const u8, out.as_mut_ptr(), 4096) };
        Ok(out)
    }

    fn terminate(&mut self, reason: TermReason) {
        self.terminated = Some(reason);
        crate::platform::snp::terminate(reason.code())
    }

    fn guest_regs(&mut self, apic_id: u32) -> Result<SvsmRegs, VcpuError> {
        let (_, v) = self.read_vmsa(apic_id)?;
        Ok(SvsmRegs {
            rax: v.rax,
            rcx: v.rcx,
            rdx: v.rdx,
            r8: v.r8,
            r9: v.r9,
        })
    }

    fn set_guest_regs(&mut self, apic_id: u32, regs: &SvsmRegs) -> Result<(), VcpuError> {
        let (va, mut v) = self.read_vmsa(apic_id)?;
        v.rax = regs.rax;
        v.rcx = regs.rcx;
        v.rdx = regs.rdx;
        v.r8 = regs.r8;
        v.r9 = regs.r9;
        // SAFETY: as in `read_vmsa`: the window still maps that VMSA page private.
        unsafe {
            core::ptr::copy_nonoverlapping(
                v.as_bytes().as_ptr(),
                va as *mut u8,
                core::mem::size_of::<Vmsa>(),
            )
        };
        Ok(())
    }

    /// The monitor calls this last in `Monitor::serve`, with its lock held: the switch
    /// to the lower VMPL is not made here, because the guest then runs for as long as
    /// it likes and the other vCPUs' VMPL0 needs the monitor meanwhile; the vCPU's loop
    /// (`snp::serve::on_snp`) makes it with [`run_vmpl`] after releasing the lock.
    fn run_guest(&mut self, apic_id: u32) -> Result<(), VcpuError> {
        if !self.vmsas.iter().any(|v| v.0 == apic_id) {
            return Err(VcpuError::UnknownVcpu(apic_id));
        }
        Ok(())
    }
}

/// The GHCB run-VMPL exit (#56421 v2.03, exit 0x8000_0018, SW_EXITINFO1 = the VMPL)
/// through the running CPU's GHCB: the host runs this vCPU's VMSA at `vmpl` and comes
/// back here when that VMPL asks for VMPL0 again. A refusal (SW_EXITINFO1[31:0] != 0,
/// e.g. no VMSA at that VMPL on this vCPU yet) is returned.
pub fn run_vmpl(vmpl: u8) -> Result<(), VcpuError> {
    let mut g = Ghcb::new_zeroed_v2();
    g.sw_exit_code = exit::SNP_RUN_VMPL;
    g.sw_exit_info_1 = u64::from(vmpl);
    g.sw_exit_info_2 = 0;
    g.set_valid(offset::SW_EXIT_CODE);
    g.set_valid(offset::SW_EXIT_INFO_1);
    g.set_valid(offset::SW_EXIT_INFO_2);
    let a = send(&g).map_err(VcpuError::Host)?;
    if a.sw_exit_info_1 & 0xffff_ffff != 0 {
        return Err(VcpuError::Host(HostError::Refused(a.sw_exit_info_1)));
    }
    Ok(())
}
