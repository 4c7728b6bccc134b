//! `monitor::Platform` for the emulated machine: RMP operations become nested-page-table
//! changes, the host's services become Vigil's own.
//!
//! | Platform call       | on `emulated`                                              |
//! |---------------------|------------------------------------------------------------|
//! | `pvalidate`         | flips Vigil's per-page validated state (4 KiB or 2 MiB); a |
//! |                     | rescinded page is unmapped from the nested tables          |
//! | `rmpadjust`         | maps the page into the nested tables with the rights asked |
//! |                     | (no READ = unmapped), or unmaps it; VMPLs above the guest's|
//! |                     | run nothing here (accepted, nothing mapped); the VMSA bit  |
//! |                     | is kept per page, and clearing it stops a vCPU running on  |
//! |                     | that VMSA (the CPU cannot VMRUN a page without it)         |
//! | `page_state_change` | nothing to ask: there is no host; accepted                 |
//! | `ap_create`         | queues the vCPU for the run loop (VMSA -> VMCB); the guest |
//! |                     | asks for it with its own GHCB AP creation                  |
//! |                     | ([`EmuPlatform::guest_ap_creation`]), as on SNP            |
//! | `guest_request`     | the emulated PSP ([`super::psp`])                          |
//! | `terminate`         | recorded; the run loop ends the VM                         |
//!
//! The RMP's answers are mirrored: PVALIDATE of a page already in the state asked for
//! is `Unchanged`, a 4 KiB operation inside a 2 MiB validation (or the reverse) is
//! `FailSizeMismatch`, anything outside guest RAM or in Vigil's memory is `FailInput`.

use alloc::vec::Vec;

use monitor::addr::{Gpa, PageSize, Vmpl};
use monitor::memory::{GuestMemory, MemError};
use monitor::platform::{
    ApOp, HostError, Perms, Platform, PscRequest, PvalidateOutcome, RmpError, TermReason,
};

use bare::svm::npt::{Npt, NptPerm};
use monitor::soft_psp::SoftPsp;

/// Byte access to the guest's RAM (in the kernel: identity-mapped pointers).
pub trait RawMem {
    /// Copies from host-physical `pa` (inside guest RAM, checked by the caller).
    fn read(&mut self, pa: u64, buf: &mut [u8]);
    /// Copies to host-physical `pa` (inside guest RAM, checked by the caller).
    fn write(&mut self, pa: u64, buf: &[u8]);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    No,
    Small,
    Large,
}

/// A vCPU the monitor asked the "host" to start or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApRequest {
    /// Create or destroy.
    pub op: ApOp,
    /// APIC ID.
    pub apic_id: u32,
    /// VMSA page.
    pub vmsa: Gpa,
}

/// The emulated platform.
pub struct EmuPlatform<M: RawMem> {
    mem: M,
    /// The nested page tables.
    pub npt: Npt,
    valid: Vec<V>,
    base: u64,
    end: u64,
    guest_vmpl: u8,
    /// Set when the nested tables changed (the next VMRUN flushes the TLB).
    pub npt_dirty: bool,
    /// vCPU requests for the run loop.
    pub ap_requests: Vec<ApRequest>,
    /// The PSP.
    pub psp: SoftPsp,
    /// Set by `terminate`.
    pub terminated: Option<TermReason>,
    /// Pages whose (modelled) RMP VMSA bit is set.
    vmsa_pages: Vec<u64>,
}

/// Why the guest's own AP creation request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApCreationError {
    /// SW_EXITINFO1 bits 15:0 name no request this host serves.
    Request(u64),
    /// SW_EXITINFO1 bits 19:16 are not the guest's VMPL.
    Vmpl(u8),
    /// SW_EXITINFO2 is not a page with the VMSA bit (CREATE_VCPU did not make it one).
    NotVmsa(u64),
}

impl<M: RawMem> EmuPlatform<M> {
    /// Guest RAM is `[base, end)`; every page starts not validated and unmapped.
    pub fn new(
        mem: M,
        base: u64,
        end: u64,
        vigil: (u64, u64),
        guest_vmpl: u8,
        psp: SoftPsp,
    ) -> Self {
        Self {
            mem,
            npt: Npt::new((base, end), vigil),
            valid: alloc::vec![V::No; ((end - base) / 4096) as usize],
            base,
            end,
            guest_vmpl,
            npt_dirty: true,
            ap_requests: Vec::new(),
            psp,
            terminated: None,
            vmsa_pages: Vec::new(),
        }
    }

    fn frames(&self, gpa: Gpa, size: PageSize) -> Option<core::ops::Range<usize>> {
        if !gpa.is_aligned(size) || gpa.0 < self.base {
            return None;
        }
        let end = gpa.0.checked_add(size.bytes())?;
        if end > self.end {
            return None;
        }
        let first = ((gpa.0 - self.base) / 4096) as usize;
        Some(first..first + size.frames() as usize)
    }

    /// Launch: validates and maps `[start, end)` in 4 KiB pages for the guest, with
    /// full rights (the launch region, as the loader's SNP_LAUNCH_UPDATE would).
    pub fn launch_validate(&mut self, start: u64, end: u64) -> Result<(), RmpError> {
        let mut a = start;
        while a < end {
            let r = self
                .frames(Gpa(a), PageSize::Size4K)
                .ok_or(RmpError::FailInput)?;
            self.valid[r.start] = V::Small;
            self.npt
                .map(
                    a,
                    NptPerm {
                        write: true,
                        exec: true,
                    },
                )
                .map_err(|_| RmpError::FailInput)?;
            a += 4096;
        }
        self.npt_dirty = true;
        Ok(())
    }

    /// Whether the page holding `gpa` is validated (4 KiB or as part of 2 MiB).
    pub fn is_validated(&self, gpa: u64) -> bool {
        gpa >= self.base
            && gpa < self.end
            && self.valid[((gpa - self.base) / 4096) as usize] != V::No
    }

    /// Whether the page at `gpa` has the VMSA bit.
    pub fn is_vmsa(&self, gpa: u64) -> bool {
        self.vmsa_pages.contains(&(gpa & !0xfff))
    }

    /// The guest's own GHCB AP creation request (GHCB spec SNP AP Creation; Linux
    /// `vmgexit_ap_control` after CREATE_VCPU): SW_EXITINFO1 = APIC ID (63:32) | VMPL
    /// (19:16) | request (15:0), SW_EXITINFO2 = the VMSA. As the host it queues the vCPU;
    /// as the CPU it only runs a page that has the VMSA bit, at the guest's VMPL.
    pub fn guest_ap_creation(&mut self, info1: u64, vmsa: u64) -> Result<(), ApCreationError> {
        use svsm_abi::ghcb::ap_create;
        let (apic_id, vmpl, request) = ap_create::decode(info1);
        if vmpl != self.guest_vmpl {
            return Err(ApCreationError::Vmpl(vmpl));
        }
        let op = match request {
            ap_create::CREATE => ApOp::Create,
            ap_create::DESTROY => ApOp::Destroy,
            other => return Err(ApCreationError::Request(other)),
        };
        if op == ApOp::Create && !self.is_vmsa(vmsa) {
            return Err(ApCreationError::NotVmsa(vmsa));
        }
        self.ap_requests.push(ApRequest {
            op,
            apic_id,
            vmsa: Gpa(vmsa & !0xfff),
        });
        Ok(())
    }

    fn in_ram(&self, gpa: Gpa, len: usize) -> bool {
        gpa.0 >= self.base && gpa.0.checked_add(len as u64).is_some_and(|e| e <= self.end)
    }
}

impl<M: RawMem> EmuPlatform<M> {
    /// Sets or clears the VMSA bit of the 4 KiB page at `gpa`. Clearing it on a page a
    /// vCPU runs on stops that vCPU (queued for the run loop): the CPU cannot VMRUN a
    /// page that is no longer a VMSA. On this one-CPU hypervisor no vCPU is inside
    /// VMRUN while Vigil runs, so the bit is never in use (FAIL_INUSE never happens).
    fn set_vmsa_bit(&mut self, gpa: u64, vmsa: bool) {
        let page = gpa & !0xfff;
        let had = self.vmsa_pages.contains(&page);
        if vmsa && !had {
            self.vmsa_pages.push(page);
        } else if !vmsa && had {
            self.vmsa_pages.retain(|p| *p != page);
            self.ap_requests.push(ApRequest {
                op: ApOp::Destroy,
                apic_id: u32::MAX,
                vmsa: Gpa(page),
            });
        }
    }
}

impl<M: RawMem> GuestMemory for EmuPlatform<M> {
    fn read(&mut self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        if !self.in_ram(gpa, buf.len()) {
            return Err(MemError::OutOfRange(gpa));
        }
        self.mem.read(gpa.0, buf);
        Ok(())
    }
    fn write(&mut self, gpa: Gpa, buf: &[u8]) -> Result<(), MemError> {
        if !self.in_ram(gpa, buf.len()) {
            return Err(MemError::OutOfRange(gpa));
        }
        self.mem.write(gpa.0, buf);
        Ok(())
    }
}

impl<M: RawMem> Platform for EmuPlatform<M> {
    fn pvalidate(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, RmpError> {
        let r = self.frames(gpa, size).ok_or(RmpError::FailInput)?;
        let want = match size {
            PageSize::Size4K => V::Small,
            PageSize::Size2M => V::Large,
        };
        let states = &self.valid[r.clone()];
        let all_no = states.iter().all(|s| *s == V::No);
        let all_want = states.iter().all(|s| *s == want);
        if validate {
            if all_want {
                return Ok(PvalidateOutcome::Unchanged);
            }
            if !all_no {
                return Err(RmpError::FailSizeMismatch);
            }
            self.valid[r].fill(want);
        } else {
            if all_no {
                return Ok(PvalidateOutcome::Unchanged);
            }
            if !all_want {
                return Err(RmpError::FailSizeMismatch);
            }
            self.valid[r.clone()].fill(V::No);
            for f in r {
                self.npt.unmap(self.base + f as u64 * 4096);
            }
            self.npt_dirty = true;
        }
        Ok(PvalidateOutcome::Changed)
    }

    fn rmpadjust(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        target: Vmpl,
        perms: Perms,
        vmsa: bool,
    ) -> Result<(), RmpError> {
        // Only the guest's VMPL has a mapping here. The other lower VMPLs (1 and 3
        // around a VMPL2 guest) run nothing: their rights are accepted and map nothing.
        // VMPL0 is refused as a CPU refuses it to VMPL0 itself.
        if target.get() == 0 {
            return Err(RmpError::FailPermission);
        }
        let r = self.frames(gpa, size).ok_or(RmpError::FailInput)?;
        let want = match size {
            PageSize::Size4K => V::Small,
            PageSize::Size2M => V::Large,
        };
        if self.valid[r.clone()].contains(&V::No) {
            return Err(RmpError::FailInput);
        }
        if self.valid[r.clone()].iter().any(|s| *s != want) {
            return Err(RmpError::FailSizeMismatch);
        }
        if vmsa && size == PageSize::Size2M {
            return Err(RmpError::FailInput);
        }
        self.set_vmsa_bit(gpa.0, vmsa);
        if target.get() != self.guest_vmpl {
            return Ok(());
        }
        for f in r {
            let a = self.base + f as u64 * 4096;
            if perms.contains(Perms::READ) {
                let p = NptPerm {
                    write: perms.contains(Perms::WRITE),
                    exec: perms.intersects(Perms::EXEC_USER | Perms::EXEC_SUPERVISOR),
                };
                self.npt.map(a, p).map_err(|_| RmpError::FailInput)?;
            } else {
                self.npt.unmap(a);
            }
        }
        self.npt_dirty = true;
        Ok(())
    }

    fn page_state_change(&mut self, _req: &[PscRequest]) -> Result<(), HostError> {
        Ok(())
    }

    fn ap_create(
        &mut self,
        op: ApOp,
        apic_id: u32,
        _vmpl: Vmpl,
        vmsa: Gpa,
        _sev_features: u64,
    ) -> Result<(), HostError> {
        self.ap_requests.push(ApRequest { op, apic_id, vmsa });
        Ok(())
    }

    fn guest_request(&mut self, request: &[u8; 4096]) -> Result<[u8; 4096], HostError> {
        self.psp.handle(request).map_err(|_| HostError::Refused(0))
    }

    fn terminate(&mut self, reason: TermReason) {
        self.terminated = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const MIB: u64 = 1 << 20;

    struct Ram(Vec<u8>);
    impl RawMem for Ram {
        fn read(&mut self, pa: u64, buf: &mut [u8]) {
            let o = (pa - 16 * MIB) as usize;
            buf.copy_from_slice(&self.0[o..o + buf.len()]);
        }
        fn write(&mut self, pa: u64, buf: &[u8]) {
            let o = (pa - 16 * MIB) as usize;
            self.0[o..o + buf.len()].copy_from_slice(buf);
        }
    }

    fn plat() -> EmuPlatform<Ram> {
        let psp = super::super::psp::new_psp([[1; 32]; 4], [0; 48]).unwrap();
        EmuPlatform::new(
            Ram(vec![0; 32 << 20]),
            16 * MIB,
            48 * MIB,
            (0, 16 * MIB),
            2,
            psp,
        )
    }

    const VMPL2: Vmpl = match Vmpl::new(2) {
        Some(v) => v,
        None => Vmpl::VMPL0,
    };

    #[test]
    fn validate_then_adjust_maps_and_rescind_unmaps() {
        let mut p = plat();
        let g = Gpa(20 * MIB);
        assert_eq!(
            p.pvalidate(g, PageSize::Size4K, true),
            Ok(PvalidateOutcome::Changed)
        );
        // Validated, but no rights yet: not mapped.
        assert_eq!(p.npt.lookup(g.0), None);
        assert_eq!(
            p.pvalidate(g, PageSize::Size4K, true),
            Ok(PvalidateOutcome::Unchanged)
        );
        p.rmpadjust(g, PageSize::Size4K, VMPL2, Perms::all(), false)
            .unwrap();
        assert_eq!(
            p.npt.lookup(g.0),
            Some(NptPerm {
                write: true,
                exec: true
            })
        );
        p.rmpadjust(g, PageSize::Size4K, VMPL2, Perms::READ, false)
            .unwrap();
        assert_eq!(
            p.npt.lookup(g.0),
            Some(NptPerm {
                write: false,
                exec: false
            })
        );
        p.rmpadjust(g, PageSize::Size4K, VMPL2, Perms::empty(), false)
            .unwrap();
        assert_eq!(p.npt.lookup(g.0), None);
        p.rmpadjust(g, PageSize::Size4K, VMPL2, Perms::all(), false)
            .unwrap();
        assert_eq!(
            p.pvalidate(g, PageSize::Size4K, false),
            Ok(PvalidateOutcome::Changed)
        );
        assert_eq!(p.npt.lookup(g.0), None);
    }

    #[test]
    fn mirrors_rmp_errors() {
        let mut p = plat();
        // Vigil's memory and beyond RAM: FAIL_INPUT.
        assert_eq!(
            p.pvalidate(Gpa(MIB), PageSize::Size4K, true),
            Err(RmpError::FailInput)
        );
        assert_eq!(
            p.pvalidate(Gpa(48 * MIB), PageSize::Size4K, true),
            Err(RmpError::FailInput)
        );
        // 2 MiB validation, then a 4 KiB operation inside it: size mismatch.
        assert_eq!(
            p.pvalidate(Gpa(20 * MIB), PageSize::Size2M, true),
            Ok(PvalidateOutcome::Changed)
        );
        assert_eq!(
            p.rmpadjust(
                Gpa(20 * MIB + 0x1000),
                PageSize::Size4K,
                VMPL2,
                Perms::empty(),
                true
            ),
            Err(RmpError::FailSizeMismatch)
        );
        assert_eq!(
            p.pvalidate(Gpa(20 * MIB + 0x1000), PageSize::Size4K, true),
            Err(RmpError::FailSizeMismatch)
        );
        // RMPADJUST of a page not validated, and for another VMPL.
        assert_eq!(
            p.rmpadjust(Gpa(30 * MIB), PageSize::Size4K, VMPL2, Perms::all(), false),
            Err(RmpError::FailInput)
        );
        assert_eq!(
            p.rmpadjust(
                Gpa(20 * MIB),
                PageSize::Size2M,
                Vmpl::VMPL0,
                Perms::all(),
                false
            ),
            Err(RmpError::FailPermission)
        );
        // Guest memory accessors refuse Vigil's memory.
        let mut b = [0u8; 4];
        assert!(GuestMemory::read(&mut p, Gpa(MIB), &mut b).is_err());
        assert!(GuestMemory::write(&mut p, Gpa(48 * MIB - 2), &b).is_err());
    }

    /// The calling area and the PVALIDATE list of [`monitor_calls_drive_the_nested_tables`].
    const CAA: u64 = 17 * MIB + 0x4000;
    const LIST: u64 = 17 * MIB + 0x2_0000;

    type Mon = monitor::Monitor<EmuPlatform<Ram>>;

    /// The monitor over [`plat`] with `[16 MiB, 18 MiB)` launch-validated and the boot
    /// calling area at [`CAA`].
    fn monitor_on_plat() -> Mon {
        use monitor::{Monitor, MonitorConfig};
        let mut p = plat();
        p.launch_validate(16 * MIB, 18 * MIB).unwrap();
        Monitor::new(
            p,
            MonitorConfig {
                ram_size: 48 * MIB,
                vigil_base: Gpa(0),
                vigil_size: 16 * MIB,
                boot_apic_id: 0,
                boot_caa: Gpa(CAA),
                prevalidated: (16 * MIB..18 * MIB)
                    .step_by(4096)
                    .map(|a| (Gpa(a), PageSize::Size4K))
                    .collect(),
                boot_sev_features: svsm_abi::vmsa::SevFeatures::SNP_ACTIVE.bits(),
                vmpck0: [7; 32],
                policy: monitor::policy::Policy::default(),
            },
        )
        .unwrap()
    }

    /// One core-protocol call `c` as the guest makes it (call pending set in the CAA);
    /// returns RAX.
    fn call_with(m: &mut Mon, c: u32, rcx: u64, rdx: u64, r8: u64) -> u64 {
        use monitor::CallOutcome;
        use svsm_abi::calling_area::SvsmRegs;
        use svsm_abi::core_protocol::SVSM_CORE_PROTOCOL;
        m.platform_mut().write(Gpa(CAA), &[1]).unwrap();
        let mut r = SvsmRegs {
            rax: SvsmRegs::rax_for(SVSM_CORE_PROTOCOL, c),
            rcx,
            rdx,
            r8,
            r9: 0,
        };
        assert_eq!(m.handle_request(0, &mut r), CallOutcome::Handled);
        r.rax
    }

    /// Write a PVALIDATE list of `e` at [`LIST`].
    fn write_list(m: &mut Mon, e: &[svsm_abi::pvalidate::PvalidateEntry]) {
        let mut b = vec![0u8; 8 + 8 * e.len()];
        b[0..2].copy_from_slice(&(e.len() as u16).to_le_bytes());
        for (i, x) in e.iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&x.0.to_le_bytes());
        }
        m.platform_mut().write(Gpa(LIST), &b).unwrap();
    }

    /// The monitor core on this platform, driven by SVSM calls as the guest makes them:
    /// the nested tables follow the monitor's page state (validate -> mapped, VMSA ->
    /// unmapped, refusals leave them alone) and never map Vigil's memory.
    #[test]
    fn monitor_calls_drive_the_nested_tables() {
        use svsm_abi::core_protocol::{call, result};
        use svsm_abi::pvalidate::PvalidateEntry;
        use zerocopy::IntoBytes;

        let mut m = monitor_on_plat();
        let list = LIST;
        // Validate two pages: mapped read/write/execute for the guest, zeroed.
        m.platform_mut().write(Gpa(20 * MIB), &[0xee; 8]).unwrap();
        write_list(
            &mut m,
            &[
                PvalidateEntry::new((20 * MIB) >> 12, false, true, false),
                PvalidateEntry::new((20 * MIB + 0x1000) >> 12, false, true, false),
            ],
        );
        assert_eq!(
            call_with(&mut m, call::PVALIDATE, list, 0, 0),
            result::SUCCESS
        );
        let full = Some(NptPerm {
            write: true,
            exec: true,
        });
        assert_eq!(m.platform_mut().npt.lookup(20 * MIB), full);
        let mut b = [0xffu8; 8];
        m.platform_mut().read(Gpa(20 * MIB), &mut b).unwrap();
        assert_eq!(b, [0; 8], "a validated page reaches the guest zeroed");
        // Validating Vigil's memory is refused and maps nothing.
        write_list(
            &mut m,
            &[PvalidateEntry::new(MIB >> 12, false, true, false)],
        );
        assert_eq!(
            call_with(&mut m, call::PVALIDATE, list, 0, 0),
            result::ERR_INVALID_ADDRESS
        );
        assert_eq!(m.platform_mut().npt.lookup(MIB), None);
        // CREATE_VCPU: the VMSA page leaves the guest's nested tables, the vCPU is queued.
        let vmsa = svsm_abi::vmsa::Vmsa {
            vmpl: 2,
            sev_features: svsm_abi::vmsa::SevFeatures::SNP_ACTIVE.bits(),
            efer: 1 << 12,
            ..zerocopy::FromZeros::new_zeroed()
        };
        m.platform_mut()
            .write(Gpa(20 * MIB), vmsa.as_bytes())
            .unwrap();
        assert_eq!(
            call_with(&mut m, call::CREATE_VCPU, 20 * MIB, 20 * MIB + 0x1000, 1),
            result::SUCCESS
        );
        assert_eq!(m.platform_mut().npt.lookup(20 * MIB), None);
        // CREATE_VCPU only makes the VMSA (#58019 6.3); the guest's own AP creation
        // starts it, at its VMPL, and only on a VMSA page.
        assert!(m.platform().ap_requests.is_empty());
        assert!(m.platform().is_vmsa(20 * MIB));
        use svsm_abi::ghcb::ap_create;
        assert_eq!(
            m.platform_mut()
                .guest_ap_creation(ap_create::info1(1, 0, ap_create::CREATE), 20 * MIB),
            Err(ApCreationError::Vmpl(0))
        );
        assert_eq!(
            m.platform_mut()
                .guest_ap_creation(ap_create::info1(1, 2, ap_create::CREATE), 21 * MIB),
            Err(ApCreationError::NotVmsa(21 * MIB))
        );
        m.platform_mut()
            .guest_ap_creation(ap_create::info1(1, 2, ap_create::CREATE), 20 * MIB)
            .unwrap();
        assert_eq!(m.platform().ap_requests.len(), 1);
        assert_eq!(m.platform().ap_requests[0].apic_id, 1);
        // Rescind: unmapped.
        write_list(
            &mut m,
            &[PvalidateEntry::new(
                (18 * MIB - 0x1000) >> 12,
                false,
                false,
                false,
            )],
        );
        assert_eq!(
            call_with(&mut m, call::PVALIDATE, list, 0, 0),
            result::SUCCESS
        );
        assert_eq!(m.platform_mut().npt.lookup(18 * MIB - 0x1000), None);
        // Nothing of Vigil's is mapped, at any point.
        for a in (0..16 * MIB).step_by(4096) {
            assert_eq!(
                m.platform_mut().npt.lookup(a),
                None,
                "Vigil page {a:#x} mapped"
            );
        }
        refused_accesses_are_named(&mut m);
    }

    /// What the NPF handler logs, after [`monitor_calls_drive_the_nested_tables`]' calls
    /// (a VMSA at 20 MiB, 18 MiB - 4 KiB rescinded).
    fn refused_accesses_are_named(m: &mut Mon) {
        // A page the nested tables refuse the guest is one the
        // monitor can name (never "validated"), and recording it appends ACCESS_REFUSED.
        use monitor::access::{Access, Refusal};
        use monitor::pages::PageState;
        for a in (0..48 * MIB).step_by(4096) {
            let mapped = m.platform_mut().npt.lookup(a).is_some();
            let validated = m.pages().get(Gpa(a)) == Some(PageState::Validated);
            assert_eq!(mapped, validated, "page {a:#x}: nested tables and monitor");
            if !mapped {
                assert_ne!(m.classify_refused(Gpa(a)), Refusal::NoPermission, "{a:#x}");
            }
        }
        let n = m.event_log().count();
        let r = m.record_refused_access(0, Gpa(20 * MIB + 0x178), Access::WRITE);
        assert_eq!((r.reason, r.error_code), (Refusal::Vmsa, 0x8000_0003));
        let r = m.record_refused_access(0, Gpa(18 * MIB - 0x1000), Access::READ);
        assert_eq!(r.reason, Refusal::NotValidated);
        let r = m.record_refused_access(0, Gpa(MIB), Access::FETCH);
        assert_eq!(
            (r.reason, r.error_code),
            (Refusal::VigilMemory, 0x8000_0011)
        );
        assert_eq!(
            m.record_refused_access(0, Gpa(48 * MIB), Access::READ)
                .reason,
            Refusal::OutsideRam
        );
        assert_eq!(m.event_log().count(), n + 4);
    }
}
