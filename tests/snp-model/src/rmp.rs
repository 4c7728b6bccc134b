//! The reverse map table: one entry per 4 KiB page of the guest's memory.
//!
//! Fields follow APM vol. 2 §15.36.3 ("Reverse Map Table"): Assigned, Page_Size,
//! Immutable, the guest physical address, ASID, VMSA, Validated, and (§15.36.7, "Virtual
//! Machine Privilege Levels") one permission mask per VMPL 1..3; VMPL0 always has every
//! permission. The entry format in memory is not architectural (Linux's `struct
//! rmpentry` says so), so the model keeps its own fields.
//!
//! The model has one guest, and guest-physical equals system-physical: entry `i` covers
//! GPA `i * 4096`. A 2 MiB RMP entry is modelled as 512 entries that all carry
//! `PageSize::Size2M`; only RMPUPDATE (the host) makes or breaks such a run.

use alloc::vec::Vec;

/// 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// 4 KiB pages in a 2 MiB page.
pub const PAGES_PER_2M: u64 = 512;
/// 2 MiB.
pub const PAGE_SIZE_2M: u64 = PAGE_SIZE * PAGES_PER_2M;
/// The ASID the model gives its one SNP guest (any non-zero value: ASID 0 is the host,
/// APM §15.36.3).
pub const GUEST_ASID: u32 = 1;
/// Number of VMPLs (APM §15.36.7: VMPL0..VMPL3).
pub const VMPLS: u8 = 4;

/// RMP page size (APM §15.36.3, Page_Size: 0 = 4 KiB, 1 = 2 MiB; the same encoding as
/// RCX of PVALIDATE and RMPADJUST, APM vol. 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB.
    Size2M,
}

impl PageSize {
    /// From the RCX operand of PVALIDATE/RMPADJUST (APM vol. 3): 0 or 1, else `None`.
    pub fn from_rcx(rcx: u64) -> Option<PageSize> {
        match rcx {
            0 => Some(PageSize::Size4K),
            1 => Some(PageSize::Size2M),
            _ => None,
        }
    }

    /// Bytes covered.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => PAGE_SIZE,
            PageSize::Size2M => PAGE_SIZE_2M,
        }
    }
}

/// A VMPL permission mask (APM §15.36.7, table "VMPL permission mask"): bit 0 read,
/// bit 1 write, bit 2 user execute, bit 3 supervisor execute; bits 7:4 reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Perms(pub u8);

impl Perms {
    /// Read.
    pub const READ: u8 = 1 << 0;
    /// Write.
    pub const WRITE: u8 = 1 << 1;
    /// Execute at CPL3.
    pub const USER_EXEC: u8 = 1 << 2;
    /// Execute at CPL0-2.
    pub const SUPER_EXEC: u8 = 1 << 3;
    /// All four.
    pub const ALL: Perms = Perms(0x0f);
    /// None.
    pub const NONE: Perms = Perms(0);

    /// Whether every bit of `other` is in `self`.
    pub fn covers(self, other: Perms) -> bool {
        other.0 & !self.0 == 0
    }

    /// Whether bits 7:4, reserved, are set.
    pub fn reserved_bits(self) -> bool {
        self.0 & 0xf0 != 0
    }
}

/// One RMP entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpEntry {
    /// Assigned to a guest (else the page belongs to the host: "shared").
    pub assigned: bool,
    /// The owning guest's ASID (0 when not assigned).
    pub asid: u32,
    /// Set by the guest's PVALIDATE (or by SNP_LAUNCH_UPDATE).
    pub validated: bool,
    /// The page is a VMSA (set by RMPADJUST at VMPL0 or by SNP_LAUNCH_UPDATE).
    pub vmsa: bool,
    /// The page size of the RMP entry.
    pub size: PageSize,
    /// Firmware-owned (the host's RMPUPDATE may not change it).
    pub immutable: bool,
    /// A vCPU runs on this VMSA (the CPU tracks it while the VMSA is in a VMRUN; the
    /// model's host sets it when it runs the VMSA and clears it when it stops).
    pub in_use: bool,
    /// Permission masks; index 0 (VMPL0) is always `Perms::ALL` (APM §15.36.7).
    pub perms: [Perms; 4],
}

impl RmpEntry {
    /// A host-owned ("shared", hypervisor) page: APM §15.36.3, Assigned = 0.
    pub const HOST: RmpEntry = RmpEntry {
        assigned: false,
        asid: 0,
        validated: false,
        vmsa: false,
        size: PageSize::Size4K,
        immutable: false,
        in_use: false,
        perms: [Perms::NONE; 4],
    };

    /// A page the host has just assigned to the guest with RMPUPDATE: not validated,
    /// VMPL0 full permissions, lower VMPLs none (APM §15.36.7: "when the hypervisor
    /// assigns a page to a guest using RMPUPDATE, full permissions are enabled for VMPL0
    /// and disabled for all other VMPLs").
    pub fn assigned(size: PageSize) -> RmpEntry {
        RmpEntry {
            assigned: true,
            asid: GUEST_ASID,
            validated: false,
            vmsa: false,
            size,
            immutable: false,
            in_use: false,
            perms: [Perms::ALL, Perms::NONE, Perms::NONE, Perms::NONE],
        }
    }

    /// Whether the page belongs to the model's guest.
    pub fn is_guest(&self) -> bool {
        self.assigned && self.asid == GUEST_ASID
    }
}

/// Errors of the host's RMP operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpError {
    /// The GPA is outside the guest's memory.
    OutOfRange {
        /// The GPA.
        gpa: u64,
    },
    /// A 2 MiB operation on a GPA that is not 2 MiB aligned.
    Misaligned {
        /// The GPA.
        gpa: u64,
    },
    /// RMPUPDATE of an immutable entry (APM vol. 3 RMPUPDATE: FAIL_PERMISSION).
    Immutable {
        /// The GPA.
        gpa: u64,
    },
}

impl core::fmt::Display for RmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RmpError::OutOfRange { gpa } => write!(f, "gpa {gpa:#x} is outside the RMP"),
            RmpError::Misaligned { gpa } => write!(f, "gpa {gpa:#x} is not 2 MiB aligned"),
            RmpError::Immutable { gpa } => write!(f, "RMP entry of gpa {gpa:#x} is immutable"),
        }
    }
}

/// The RMP of the model's guest memory.
#[derive(Clone, Debug)]
pub struct Rmp {
    entries: Vec<RmpEntry>,
}

impl Rmp {
    /// An RMP for `pages` pages, all host-owned.
    pub fn new(pages: u64) -> Rmp {
        let n = usize::try_from(pages).unwrap_or(usize::MAX);
        Rmp {
            entries: alloc::vec![RmpEntry::HOST; n],
        }
    }

    /// Number of 4 KiB entries.
    pub fn pages(&self) -> u64 {
        self.entries.len() as u64
    }

    fn index(&self, gpa: u64) -> Result<usize, RmpError> {
        let i = usize::try_from(gpa / PAGE_SIZE).map_err(|_| RmpError::OutOfRange { gpa })?;
        if i < self.entries.len() {
            Ok(i)
        } else {
            Err(RmpError::OutOfRange { gpa })
        }
    }

    /// The entry of the page holding `gpa`.
    pub fn entry(&self, gpa: u64) -> Result<&RmpEntry, RmpError> {
        let i = self.index(gpa)?;
        Ok(&self.entries[i])
    }

    /// The entry of the page holding `gpa`, for the instructions that change it.
    pub(crate) fn entry_mut(&mut self, gpa: u64) -> Result<&mut RmpEntry, RmpError> {
        let i = self.index(gpa)?;
        Ok(&mut self.entries[i])
    }

    /// The entries of the page of `size` starting at `gpa` (aligned by the caller).
    pub(crate) fn range_mut(
        &mut self,
        gpa: u64,
        size: PageSize,
    ) -> Result<&mut [RmpEntry], RmpError> {
        let first = self.index(gpa)?;
        let last = self.index(gpa + size.bytes() - 1)?;
        Ok(&mut self.entries[first..=last])
    }

    /// The host's RMPUPDATE (APM vol. 3 RMPUPDATE, as KVM's `rmp_make_private` and
    /// `rmp_make_shared` use it): set the entries of one page of `size` at `gpa` to
    /// `entry` (with `size` as their page size). Refused on an immutable entry.
    pub fn rmpupdate(&mut self, gpa: u64, size: PageSize, entry: RmpEntry) -> Result<(), RmpError> {
        if size == PageSize::Size2M && !gpa.is_multiple_of(PAGE_SIZE_2M) {
            return Err(RmpError::Misaligned { gpa });
        }
        let gpa = gpa & !(PAGE_SIZE - 1);
        let range = self.range_mut(gpa, size)?;
        if range.iter().any(|e| e.immutable) {
            return Err(RmpError::Immutable { gpa });
        }
        for e in range.iter_mut() {
            *e = RmpEntry { size, ..entry };
        }
        Ok(())
    }

    /// Mark the VMSA at `gpa` as running (or not): what the CPU knows while a vCPU is in
    /// VMRUN on it. Only a VMSA page can be in use.
    pub fn set_in_use(&mut self, gpa: u64, in_use: bool) -> Result<bool, RmpError> {
        let e = self.entry_mut(gpa)?;
        if in_use && !e.vmsa {
            return Ok(false);
        }
        e.in_use = in_use;
        Ok(true)
    }

    /// KVM's `rmp_make_private` (assign to the guest, not validated) for one page.
    pub fn make_private(&mut self, gpa: u64, size: PageSize) -> Result<(), RmpError> {
        self.rmpupdate(gpa, size, RmpEntry::assigned(size))
    }

    /// KVM's `rmp_make_shared` (back to the host) for one page.
    pub fn make_shared(&mut self, gpa: u64, size: PageSize) -> Result<(), RmpError> {
        self.rmpupdate(gpa, size, RmpEntry::HOST)
    }

    /// What SNP_LAUNCH_UPDATE does to a page it measures (SNP ABI #56860 §8.17,
    /// SNP_LAUNCH_UPDATE: the page becomes guest-owned, validated, immutable while the
    /// firmware owns it; VMSA pages get the VMSA bit). After launch the model clears
    /// `immutable` (SNP_LAUNCH_FINISH hands the pages to the guest).
    pub fn launch_page(&mut self, gpa: u64, vmsa: bool) -> Result<(), RmpError> {
        let e = self.entry_mut(gpa)?;
        *e = RmpEntry {
            validated: true,
            vmsa,
            ..RmpEntry::assigned(PageSize::Size4K)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rmp_is_host_owned_and_bounded() {
        let r = Rmp::new(4);
        assert_eq!(r.pages(), 4);
        assert_eq!(*r.entry(0x3fff).unwrap(), RmpEntry::HOST);
        assert_eq!(r.entry(0x4000), Err(RmpError::OutOfRange { gpa: 0x4000 }));
        assert_eq!(
            r.entry(u64::MAX),
            Err(RmpError::OutOfRange { gpa: u64::MAX })
        );
    }

    #[test]
    fn make_private_gives_vmpl0_all_and_others_none() {
        let mut r = Rmp::new(1024);
        r.make_private(0x1000, PageSize::Size4K).unwrap();
        let e = r.entry(0x1000).unwrap();
        assert!(e.is_guest() && !e.validated && !e.vmsa);
        assert_eq!(e.perms, [Perms::ALL, Perms::NONE, Perms::NONE, Perms::NONE]);
        r.make_shared(0x1000, PageSize::Size4K).unwrap();
        assert_eq!(*r.entry(0x1000).unwrap(), RmpEntry::HOST);
    }

    #[test]
    fn two_mib_update_sets_512_entries_and_needs_alignment() {
        let mut r = Rmp::new(1024);
        assert_eq!(
            r.make_private(0x1000, PageSize::Size2M),
            Err(RmpError::Misaligned { gpa: 0x1000 })
        );
        r.make_private(PAGE_SIZE_2M, PageSize::Size2M).unwrap();
        assert_eq!(r.entry(PAGE_SIZE_2M).unwrap().size, PageSize::Size2M);
        assert_eq!(
            r.entry(2 * PAGE_SIZE_2M - 1).unwrap().size,
            PageSize::Size2M
        );
        assert_eq!(*r.entry(PAGE_SIZE_2M - 1).unwrap(), RmpEntry::HOST);
        // A 2 MiB page past the end is refused, not truncated.
        let mut small = Rmp::new(600);
        assert!(matches!(
            small.make_private(PAGE_SIZE_2M, PageSize::Size2M),
            Err(RmpError::OutOfRange { .. })
        ));
        assert_eq!(*small.entry(PAGE_SIZE_2M).unwrap(), RmpEntry::HOST);
    }

    #[test]
    fn immutable_entry_refuses_rmpupdate() {
        let mut r = Rmp::new(4);
        r.entry_mut(0x2000).unwrap().immutable = true;
        assert_eq!(
            r.make_shared(0x2000, PageSize::Size4K),
            Err(RmpError::Immutable { gpa: 0x2000 })
        );
    }

    #[test]
    fn launch_page_is_validated_and_marks_vmsa() {
        let mut r = Rmp::new(4);
        r.launch_page(0x1000, true).unwrap();
        let e = r.entry(0x1000).unwrap();
        assert!(e.is_guest() && e.validated && e.vmsa);
    }

    #[test]
    fn perms_cover_and_reserved() {
        assert!(Perms::ALL.covers(Perms(Perms::READ | Perms::WRITE)));
        assert!(!Perms(Perms::READ).covers(Perms(Perms::WRITE)));
        assert!(Perms(0x10).reserved_bits());
        assert_eq!(PageSize::from_rcx(2), None);
    }
}
