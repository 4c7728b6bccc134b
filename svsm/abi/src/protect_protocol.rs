//! The Vigil protection protocol: the guest kernel declares its text and read-only data
//! once, locks them, and from then on per-VMPL RMP permissions (APM vol. 2, 15.36 SEV-SNP,
//! RMPADJUST; only a more privileged VMPL can change them) keep them: text is read +
//! supervisor-execute, read-only data is read, every other guest page read + write +
//! user-execute and never supervisor-execute.
//!
//! Calls use the SVSM calling convention (#58019 section 5: RAX = protocol << 32 | call,
//! arguments in RCX..R9, result code in RAX) under Vigil's own protocol number
//! [`VIGIL_PROTECT_PROTOCOL`] (docs/protocols.md says why this number). Result codes
//! are the spec's (`crate::core_protocol::result`).
//!
//! DECLARE takes a range list in guest memory, laid out like the PVALIDATE list (#58019
//! 6.2): an 8-byte [`RangeListHeader`] then `count` 16-byte [`RangeEntry`]s, all in
//! one 4 KiB page.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Vigil's protocol number: the first of the upper half of the 32-bit protocol space,
/// far from the numbers the SVSM spec and other SVSMs assign from 0 upwards.
pub const VIGIL_PROTECT_PROTOCOL: u32 = 0x8000_0000;

/// The protocol's version (QUERY_PROTOCOL answers 1..1).
pub const VERSION: u32 = 1;

/// Call numbers (RAX bits 31:0).
pub mod call {
    /// Declare ranges: RCX = GPA of a range list (8-byte aligned). Only before LOCK;
    /// a declared range cannot be withdrawn (fail closed: a guest that declared wrongly
    /// cannot lock something else instead).
    pub const DECLARE: u32 = 0;
    /// Lock the declared ranges until the VM resets: RCX, RDX, R8, R9 ignored.
    pub const LOCK: u32 = 1;
    /// Read the state: answers in RCX ([`super::query`]), RDX = text pages, R8 =
    /// read-only pages.
    pub const QUERY: u32 = 2;
    /// Lift the protection. Always refused (INVALID_REQUEST): it exists so that the
    /// request has a number, is refused by name and logged.
    pub const UNLOCK: u32 = 3;
}

/// QUERY's RCX answer.
pub mod query {
    /// Bit 0: the protection is locked.
    pub const LOCKED: u64 = 1 << 0;
    /// Bits 15:8: the number of ranges declared.
    pub const RANGES_SHIFT: u32 = 8;
    /// Mask of the range count after the shift.
    pub const RANGES_MASK: u64 = 0xff;
}

/// Most ranges the guest may declare in all (so that the LOCK record, which lists
/// them, has a fixed size).
pub const MAX_RANGES: usize = 16;

/// What a range holds.
pub mod range_kind {
    /// Kernel text: read + supervisor-execute.
    pub const TEXT: u32 = 1;
    /// Read-only data: read.
    pub const RODATA: u32 = 2;
}

/// The RMP permissions (`crate::rmp::PERM_*`) the guest VMPL gets, after the lock, on
/// a text page.
pub const PERMS_TEXT: u8 = crate::rmp::PERM_READ | crate::rmp::PERM_EXEC_SUPERVISOR;
/// ... on a read-only data page.
pub const PERMS_RODATA: u8 = crate::rmp::PERM_READ;
/// ... on every other guest page, including pages validated after the lock: never
/// supervisor-execute.
pub const PERMS_OTHER: u8 =
    crate::rmp::PERM_READ | crate::rmp::PERM_WRITE | crate::rmp::PERM_EXEC_USER;

/// The permissions of a range kind (None for an unknown kind).
pub const fn perms_of(kind: u32) -> Option<u8> {
    match kind {
        range_kind::TEXT => Some(PERMS_TEXT),
        range_kind::RODATA => Some(PERMS_RODATA),
        _ => None,
    }
}

/// The range list header.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RangeListHeader {
    /// 0x0: number of entries.
    pub count: u16,
    /// 0x2: reserved, zero.
    pub reserved0: u16,
    /// 0x4: reserved, zero.
    pub reserved1: u32,
}
const _: () = assert!(core::mem::size_of::<RangeListHeader>() == 8);
const _: () = assert!(core::mem::offset_of!(RangeListHeader, reserved1) == 4);

/// One range.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RangeEntry {
    /// 0x0: first GPA, 4 KiB aligned.
    pub gpa: u64,
    /// 0x8: number of 4 KiB pages, at least 1.
    pub pages: u32,
    /// 0xC: [`range_kind`].
    pub kind: u32,
}
const _: () = assert!(core::mem::size_of::<RangeEntry>() == 16);
const _: () = assert!(core::mem::offset_of!(RangeEntry, pages) == 8);
const _: () = assert!(core::mem::offset_of!(RangeEntry, kind) == 0xC);

/// Size of the header.
pub const HEADER_SIZE: usize = 8;
/// Size of an entry.
pub const ENTRY_SIZE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_rules_never_give_supervisor_execute_outside_text_nor_write_to_text() {
        use crate::rmp::{PERM_EXEC_SUPERVISOR, PERM_WRITE};
        assert_eq!(PERMS_TEXT & PERM_WRITE, 0);
        assert_ne!(PERMS_TEXT & PERM_EXEC_SUPERVISOR, 0);
        assert_eq!(PERMS_RODATA & (PERM_WRITE | PERM_EXEC_SUPERVISOR), 0);
        assert_eq!(PERMS_OTHER & PERM_EXEC_SUPERVISOR, 0);
        assert_eq!(PERMS_OTHER, 0b0111);
        assert_eq!(perms_of(0), None);
        assert_eq!(perms_of(3), None);
    }
    #[test]
    fn entries_lay_out_as_documented() {
        let e = RangeEntry {
            gpa: 0x10_0000,
            pages: 3,
            kind: range_kind::TEXT,
        };
        let b = e.as_bytes();
        assert_eq!(&b[0..8], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[8..12], &3u32.to_le_bytes());
        assert_eq!(&b[12..16], &1u32.to_le_bytes());
        assert_eq!((4096 - HEADER_SIZE) / ENTRY_SIZE, 255);
    }
}
