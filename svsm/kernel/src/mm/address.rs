//! Address newtypes and page arithmetic.
//!
//! The kernel runs identity-mapped (virtual = physical for everything it maps, see
//! docs/kernel.md), yet keeping the two kinds of address apart in the types stops a
//! later change (a higher-half kernel, a guest-physical address arriving from the
//! emulated platform) from silently mixing them.

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

/// A virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(pub u64);

impl PhysAddr {
    /// The address rounded down to its page.
    pub const fn page_floor(self) -> Self {
        Self(self.0 & !(PAGE_SIZE - 1))
    }
    /// True when the address is 4 KiB aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }
}

impl VirtAddr {
    /// The address rounded down to its page.
    pub const fn page_floor(self) -> Self {
        Self(self.0 & !(PAGE_SIZE - 1))
    }
    /// True when the address is 4 KiB aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }
    /// True for addresses the CPU accepts in 4-level paging (bits 63..47 all equal).
    pub const fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1_ffff
    }
    /// The page-table index of this address at `level` (4 = PML4 .. 1 = PT).
    pub const fn table_index(self, level: u8) -> usize {
        ((self.0 >> (12 + 9 * (level as u64 - 1))) & 0x1ff) as usize
    }
}

/// Rounds `x` up to a multiple of the page size, or `None` on overflow.
pub const fn page_align_up(x: u64) -> Option<u64> {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// A range from a start and a length, `None` when it would wrap.
    pub const fn from_len(start: u64, len: u64) -> Option<Self> {
        match start.checked_add(len) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }
    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// True for an empty range.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// True when the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }
    /// True when `addr` lies inside.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_indices_split_the_address() {
        let va = VirtAddr((3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123);
        assert_eq!(va.table_index(4), 3);
        assert_eq!(va.table_index(3), 5);
        assert_eq!(va.table_index(2), 7);
        assert_eq!(va.table_index(1), 9);
    }

    #[test]
    fn canonical_addresses() {
        assert!(VirtAddr(0x0000_7fff_ffff_f000).is_canonical());
        assert!(VirtAddr(0xffff_8000_0000_0000).is_canonical());
        assert!(!VirtAddr(0x0000_8000_0000_0000).is_canonical());
    }

    #[test]
    fn ranges_overlap_and_align() {
        let a = PhysRange {
            start: 0x1000,
            end: 0x3000,
        };
        assert!(a.overlaps(&PhysRange {
            start: 0x2fff,
            end: 0x4000
        }));
        assert!(!a.overlaps(&PhysRange {
            start: 0x3000,
            end: 0x4000
        }));
        assert_eq!(page_align_up(0x1001), Some(0x2000));
        assert_eq!(page_align_up(u64::MAX), None);
        assert_eq!(PhysRange::from_len(u64::MAX, 2), None);
    }
}
