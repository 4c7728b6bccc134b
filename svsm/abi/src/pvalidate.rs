//! The PVALIDATE list of the SVSM core protocol (SVSM spec #58019).
//!
//! The list lives in guest memory at the GPA given in RCX: an 8-byte header followed by
//! `entries` 8-byte entries. The SVSM processes entries from index `next` on and writes
//! `next` back as it goes, so that a call that returns early (or fails) can be resumed
//! by calling again with the same list. The whole list must lie within one 4 KiB page.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The list header.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PvalidateListHeader {
    /// 0x0: number of entries in the list.
    pub entries: u16,
    /// 0x2: index of the next entry to process (written back by the SVSM).
    pub next: u16,
    /// 0x4: reserved, must be zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<PvalidateListHeader>() == 8);
const _: () = assert!(core::mem::offset_of!(PvalidateListHeader, entries) == 0);
const _: () = assert!(core::mem::offset_of!(PvalidateListHeader, next) == 2);

/// Byte offset of `next` within the header (the only field the SVSM writes).
pub const NEXT_OFFSET: u64 = 2;
/// Size of the header.
pub const HEADER_SIZE: usize = 8;
/// Size of one entry.
pub const ENTRY_SIZE: usize = 8;
/// Most entries a list can hold when it starts at the beginning of a page.
pub const MAX_ENTRIES: usize = (4096 - HEADER_SIZE) / ENTRY_SIZE;

/// One list entry (a little-endian u64):
/// bits 1:0 page size (0 = 4 KiB, 1 = 2 MiB), bit 2 action (1 = validate, 0 = rescind),
/// bit 3 IGNORE_CF (do not fail when PVALIDATE leaves the state unchanged),
/// bits 11:4 reserved (must be zero), bits 63:12 guest frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalidateEntry(pub u64);

/// Entry bits 1:0.
pub const ENTRY_SIZE_MASK: u64 = 0b11;
/// Entry bit 2.
pub const ENTRY_VALIDATE: u64 = 1 << 2;
/// Entry bit 3.
pub const ENTRY_IGNORE_CF: u64 = 1 << 3;
/// Entry bits 11:4.
pub const ENTRY_RESERVED_MASK: u64 = 0xff0;

impl PvalidateEntry {
    /// Builds an entry.
    pub const fn new(gfn: u64, size_2m: bool, validate: bool, ignore_cf: bool) -> Self {
        let mut v = gfn << 12;
        if size_2m {
            v |= 1;
        }
        if validate {
            v |= ENTRY_VALIDATE;
        }
        if ignore_cf {
            v |= ENTRY_IGNORE_CF;
        }
        Self(v)
    }
    /// Raw page size field (0 = 4 KiB, 1 = 2 MiB, 2 and 3 invalid).
    pub const fn size_field(self) -> u64 {
        self.0 & ENTRY_SIZE_MASK
    }
    /// Whether the entry validates (true) or rescinds (false).
    pub const fn validate(self) -> bool {
        self.0 & ENTRY_VALIDATE != 0
    }
    /// Whether an unchanged state is tolerated.
    pub const fn ignore_cf(self) -> bool {
        self.0 & ENTRY_IGNORE_CF != 0
    }
    /// Reserved bits 11:4.
    pub const fn reserved(self) -> u64 {
        self.0 & ENTRY_RESERVED_MASK
    }
    /// Guest-physical address of the page (GFN << 12).
    pub const fn gpa(self) -> u64 {
        self.0 & !0xfff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn entry_fields_round_trip() {
        let e = PvalidateEntry::new(0x12345, true, true, false);
        assert_eq!(e.gpa(), 0x1234_5000);
        assert_eq!(e.size_field(), 1);
        assert!(e.validate());
        assert!(!e.ignore_cf());
        assert_eq!(e.reserved(), 0);
        assert_eq!(MAX_ENTRIES, 511);
    }
}
