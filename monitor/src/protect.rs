//! The guest's protection (Vigil protection protocol, docs/protocols.md): the ranges
//! it declared, whether they are locked, and the text digest taken at the lock.
//!
//! This is Vigil's bookkeeping; the enforcement is the RMP's per-VMPL permissions
//! (APM vol. 2, 15.36 SEV-SNP, RMPADJUST), which only VMPL0 can change. After the lock the
//! page table holds every declared page as `PageState::Locked`, which no call accepts
//! as a guest structure or target, and every grant to the guest passes through
//! [`Protection::grant`], which never lets supervisor-execute through.
use crate::addr::{Gpa, PAGE_SIZE_4K};
use crate::platform::Perms;
use alloc::vec::Vec;
use svsm_abi::protect_protocol::{range_kind, RangeEntry, PERMS_OTHER};

/// The protection state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    pub(crate) ranges: Vec<RangeEntry>,
    pub(crate) locked: bool,
    pub(crate) text_digest: [u8; 48],
}

impl Default for Protection {
    fn default() -> Self {
        Self {
            ranges: Vec::new(),
            locked: false,
            text_digest: [0; 48],
        }
    }
}

impl Protection {
    /// The declared ranges (sorted by GPA once locked).
    pub fn ranges(&self) -> &[RangeEntry] {
        &self.ranges
    }
    /// Whether the protection is locked (until the VM resets).
    pub fn is_locked(&self) -> bool {
        self.locked
    }
    /// SHA-384 of the text pages' contents taken at the lock (zero before).
    pub fn text_digest(&self) -> [u8; 48] {
        self.text_digest
    }

    /// The kind of the declared range holding the page `gfn`, if any.
    pub fn kind_of(&self, gfn: u64) -> Option<u32> {
        let a = gfn.saturating_mul(PAGE_SIZE_4K);
        self.ranges
            .iter()
            .find(|r| a >= r.gpa && a < range_end(r))
            .map(|r| r.kind)
    }

    /// Whether [gpa, gpa+len) overlaps a declared range.
    pub fn overlaps(&self, gpa: Gpa, len: u64) -> bool {
        let end = gpa.0.saturating_add(len);
        self.ranges
            .iter()
            .any(|r| gpa.0 < range_end(r) && r.gpa < end)
    }

    /// Pages of the given kind declared.
    pub fn pages_of(&self, kind: u32) -> u64 {
        self.ranges
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.pages as u64)
            .sum()
    }

    /// Whether a text range is declared.
    pub fn has_text(&self) -> bool {
        self.pages_of(range_kind::TEXT) > 0
    }

    /// What a grant of `perms` to the guest becomes: itself before the lock; after it,
    /// at most the "everything else" rule (read, write, user-execute). Attack: a guest
    /// that validates a fresh page after the lock, writes code into it and jumps there
    /// in kernel mode; the page never gets supervisor-execute.
    pub fn grant(&self, perms: Perms) -> Perms {
        if self.locked {
            perms & Perms::from_bits_truncate(PERMS_OTHER)
        } else {
            perms
        }
    }
}

/// End (exclusive) of a range; ranges are checked not to overflow when declared.
pub fn range_end(r: &RangeEntry) -> u64 {
    r.gpa
        .saturating_add((r.pages as u64).saturating_mul(PAGE_SIZE_4K))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn grants_after_the_lock_never_carry_supervisor_execute() {
        let mut p = Protection::default();
        assert_eq!(p.grant(Perms::all()), Perms::all());
        p.locked = true;
        assert_eq!(
            p.grant(Perms::all()),
            Perms::READ | Perms::WRITE | Perms::EXEC_USER
        );
        assert_eq!(p.grant(Perms::empty()), Perms::empty());
    }
    #[test]
    fn kind_of_finds_the_range_of_a_page() {
        let p = Protection {
            ranges: alloc::vec![RangeEntry {
                gpa: 0x3000,
                pages: 2,
                kind: range_kind::TEXT
            }],
            ..Default::default()
        };
        assert_eq!(p.kind_of(2), None);
        assert_eq!(p.kind_of(3), Some(range_kind::TEXT));
        assert_eq!(p.kind_of(4), Some(range_kind::TEXT));
        assert_eq!(p.kind_of(5), None);
        assert!(p.overlaps(Gpa(0x4fff), 1));
        assert!(!p.overlaps(Gpa(0x5000), 0x1000));
    }
}
