//! The simulated RMP: one entry per 4 KiB page, with PVALIDATE and RMPADJUST semantics
//! after the APM (vol. 2, SEV-SNP): FAIL_INPUT for pages not assigned to the guest or
//! misaligned 2 MiB requests, FAIL_SIZEMISMATCH when the request's size differs from
//! the entry's, FAIL_PERMISSION when a VMPL grants what it does not have or targets a
//! VMPL not below itself, and rFLAGS.CF (`Unchanged`) when PVALIDATE changes nothing.
use crate::addr::{Gpa, PageSize};
use crate::platform::{Perms, PvalidateOutcome, RmpError};
use std::vec;
use std::vec::Vec;

/// The kind of a guest access, as the RMP's permission bits tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch at CPL 3.
    ExecUser,
    /// An instruction fetch at CPL 0-2.
    ExecSupervisor,
}

impl AccessKind {
    /// Every kind.
    pub const ALL: [AccessKind; 4] = [
        AccessKind::Read,
        AccessKind::Write,
        AccessKind::ExecUser,
        AccessKind::ExecSupervisor,
    ];
    /// The permission bit the access needs.
    pub const fn perm(self) -> Perms {
        match self {
            Self::Read => Perms::READ,
            Self::Write => Perms::WRITE,
            Self::ExecUser => Perms::EXEC_USER,
            Self::ExecSupervisor => Perms::EXEC_SUPERVISOR,
        }
    }
}

/// One RMP entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmpEntry {
    /// Assigned to the guest (private); false = shared / hypervisor-owned.
    pub assigned: bool,
    /// Validated by PVALIDATE.
    pub validated: bool,
    /// The page is a VMSA.
    pub vmsa: bool,
    /// The entry is part of a 2 MiB RMP page.
    pub size_2m: bool,
    /// Permissions of VMPL1..3 (index 1..3); VMPL0 has all rights on assigned pages.
    pub perms: [u8; 4],
    /// Model bookkeeping: validated but not yet zeroed by VMPL0 (invariant 3).
    pub needs_zero: bool,
    /// A vCPU is running on this VMSA (the host keeps it inside VMRUN): RMPADJUST
    /// cannot clear the VMSA bit (FAIL_INUSE).
    pub in_use: bool,
    /// Model bookkeeping: PVALIDATE(validate) calls since VMPL0 last rescinded the
    /// page. Host page-state changes do not reset it: validating again after the host
    /// remapped a page is exactly the double validation invariant 2 forbids.
    pub validations: u8,
}

/// The RMP.
#[derive(Clone, Debug)]
pub struct Rmp {
    e: Vec<RmpEntry>,
    /// Times a lower VMPL was granted access to a page that was validated and not
    /// zeroed since (invariant 3 violations, must stay 0).
    pub unzeroed_grants: u64,
    /// Frames the host changed with RMPUPDATE (page-state changes, remaps). Only the
    /// host can take a validated page away without VMPL0; the protection invariants
    /// tell that apart from a page Vigil lost.
    pub host_updated: std::collections::BTreeSet<u64>,
}

impl Rmp {
    /// An RMP for `pages` 4 KiB pages, all hypervisor-owned.
    pub fn new(pages: u64) -> Self {
        Self {
            e: vec![RmpEntry::default(); pages as usize],
            unzeroed_grants: 0,
            host_updated: std::collections::BTreeSet::new(),
        }
    }
    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.e.len() as u64
    }
    /// Whether the RMP is empty.
    pub fn is_empty(&self) -> bool {
        self.e.is_empty()
    }
    /// The entry of `gfn`.
    pub fn get(&self, gfn: u64) -> Option<&RmpEntry> {
        self.e.get(gfn as usize)
    }
    fn range(&self, gpa: Gpa, size: PageSize) -> Option<core::ops::Range<usize>> {
        let first = gpa.gfn() as usize;
        let last = first.checked_add(size.frames() as usize)?;
        (last <= self.e.len()).then_some(first..last)
    }

    /// RMPUPDATE by the host (page-state change): assign (private) or unassign
    /// (shared). Either way the page loses its validation, its VMSA bit and every
    /// lower-VMPL permission. A 2 MiB change marks all 512 entries as one 2 MiB page.
    pub fn rmpupdate(&mut self, gpa: Gpa, size: PageSize, assigned: bool) -> bool {
        if !gpa.is_aligned(size) {
            return false;
        }
        let Some(r) = self.range(gpa, size) else {
            return false;
        };
        self.host_updated.extend(r.start as u64..r.end as u64);
        for x in &mut self.e[r] {
            *x = RmpEntry {
                assigned,
                size_2m: size == PageSize::Size2M,
                ..Default::default()
            };
        }
        true
    }

    /// PSMASH: split a 2 MiB entry into 4 KiB entries (state kept).
    pub fn psmash(&mut self, gpa: Gpa) -> bool {
        let Some(r) = self.range(gpa, PageSize::Size2M) else {
            return false;
        };
        for x in &mut self.e[r] {
            x.size_2m = false;
        }
        true
    }

    fn check_size(&self, r: &core::ops::Range<usize>, size: PageSize) -> Result<(), RmpError> {
        for x in &self.e[r.clone()] {
            if !x.assigned {
                return Err(RmpError::FailInput);
            }
            if x.size_2m != (size == PageSize::Size2M) {
                return Err(RmpError::FailSizeMismatch);
            }
        }
        Ok(())
    }

    /// PVALIDATE (only VMPL0 may execute it).
    pub fn pvalidate(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, RmpError> {
        if !gpa.is_aligned(size) {
            return Err(RmpError::FailInput);
        }
        let r = self.range(gpa, size).ok_or(RmpError::FailInput)?;
        self.check_size(&r, size)?;
        if !validate {
            for x in &mut self.e[r.clone()] {
                x.validations = 0;
            }
        }
        if self.e[r.start].validated == validate {
            return Ok(PvalidateOutcome::Unchanged);
        }
        for x in &mut self.e[r] {
            x.validated = validate;
            if validate {
                x.needs_zero = true;
                x.validations = x.validations.saturating_add(1);
            }
        }
        Ok(PvalidateOutcome::Changed)
    }

    /// RMPADJUST executed at `caller` VMPL.
    pub fn rmpadjust(
        &mut self,
        caller: u8,
        gpa: Gpa,
        size: PageSize,
        target: u8,
        perms: Perms,
        vmsa: bool,
    ) -> Result<(), RmpError> {
        if target <= caller || target > 3 {
            return Err(RmpError::FailPermission);
        }
        if !gpa.is_aligned(size) || (vmsa && size == PageSize::Size2M) {
            return Err(RmpError::FailInput);
        }
        let r = self.range(gpa, size).ok_or(RmpError::FailInput)?;
        self.check_size(&r, size)?;
        for x in &self.e[r.clone()] {
            if !x.validated {
                return Err(RmpError::FailInput);
            }
            let have = if caller == 0 {
                0x0f
            } else {
                x.perms[caller as usize]
            };
            if perms.bits() & !have != 0 {
                return Err(RmpError::FailPermission);
            }
        }
        if self.e[r.clone()]
            .iter()
            .any(|x| x.vmsa && x.in_use && !vmsa)
        {
            return Err(RmpError::FailInUse);
        }
        for x in &mut self.e[r] {
            if !perms.is_empty() && x.needs_zero {
                self.unzeroed_grants += 1;
            }
            x.perms[target as usize] = perms.bits();
            x.vmsa = vmsa;
        }
        Ok(())
    }

    /// The host runs (or stops running) a vCPU on the VMSA page `gfn`; only a page
    /// with the VMSA bit can run.
    pub fn set_in_use(&mut self, gfn: u64, running: bool) -> bool {
        match self.e.get_mut(gfn as usize) {
            Some(x) if x.vmsa && x.validated => {
                x.in_use = running;
                true
            }
            _ => false,
        }
    }

    /// Model bookkeeping: VMPL0 zeroed the whole page `gfn`.
    pub fn mark_zeroed(&mut self, gfn: u64) {
        if let Some(x) = self.e.get_mut(gfn as usize) {
            x.needs_zero = false;
        }
    }

    /// Whether `vmpl` may fetch instructions from `gfn` in supervisor mode.
    pub fn may_fetch(&self, vmpl: u8, gfn: u64) -> bool {
        self.allows(vmpl, gfn, AccessKind::ExecSupervisor)
    }

    /// Whether `vmpl` may access `gfn` (read, or write if `write`).
    pub fn may_access(&self, vmpl: u8, gfn: u64, write: bool) -> bool {
        let k = if write {
            AccessKind::Write
        } else {
            AccessKind::Read
        };
        self.allows(vmpl, gfn, k)
    }

    /// The RMP's check of one access (APM vol. 2, 15.36 SEV-SNP: RMP checks and the
    /// VMPL permission mask): the page must be assigned and validated; VMPL0 may do
    /// anything; a lower VMPL never touches a VMSA page and needs the permission bit of
    /// the access kind, execute in user mode and in supervisor mode being separate bits.
    pub fn allows(&self, vmpl: u8, gfn: u64, kind: AccessKind) -> bool {
        let Some(x) = self.get(gfn) else { return false };
        if !x.assigned || !x.validated {
            return false;
        }
        if vmpl == 0 {
            return true;
        }
        if x.vmsa {
            return false;
        }
        x.perms[vmpl as usize & 3] & kind.perm().bits() != 0
    }
}
