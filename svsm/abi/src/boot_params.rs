//! `BootParams`: the page through which `vigil-igvm build` tells the Vigil kernel how
//! the VM is laid out. Versioned; little-endian; one 4 KiB page; measured as a NORMAL
//! page, so every value in it is covered by the launch digest and can be trusted by the
//! kernel. (Host-supplied, unmeasured facts, such as the memory map QEMU writes into an
//! IGVM parameter area and the host's vCPU count, are *not* in this page: the page only
//! says where those areas are, and the kernel must treat their contents as hostile.)
//!
//! This module is the layout, the one definition shared by its writer (`vigil-igvm
//! build`, which fills it) and its reader (the kernel's SNP boot path). It is Vigil's
//! own contract, not an AMD structure: no spec section applies, and the layout below is
//! checked at compile time. Layout, version 1 (offsets in bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0x000 | 8 | magic "VIGILBP\0" |
//! | 0x008 | 4 | version (1) |
//! | 0x00C | 4 | size of the structure in use (0x1000) |
//! | 0x010 | 4 | vCPU count the image was built for |
//! | 0x014 | 4 | VMPL of the guest (1..=3) |
//! | 0x018 | 4 | flags: bit 0 = SNP platform, bit 1 = native platform |
//! | 0x01C | 4 | number of memory map entries (<= 32) |
//! | 0x020 | 8 | Vigil region start (GPA) |
//! | 0x028 | 8 | Vigil region end (exclusive) |
//! | 0x030 | 8 | kernel entry point |
//! | 0x038 | 8 | SNP secrets page GPA (0 if none) |
//! | 0x040 | 8 | SNP CPUID page GPA (0 if none) |
//! | 0x048 | 8 | memory-map parameter area GPA (host-written, untrusted) |
//! | 0x050 | 8 | memory-map parameter area size |
//! | 0x058 | 8 | vCPU-count parameter area GPA (host-written, untrusted) |
//! | 0x060 | 8 | firmware start GPA |
//! | 0x068 | 8 | firmware size |
//! | 0x070 | 8 | firmware entry (0xFFFFFFF0 for OVMF; ELF entry for the test guest) |
//! | 0x078 | 8 | firmware secrets page GPA (from OVMF metadata; 0 if none) |
//! | 0x080 | 8 | firmware CPUID page GPA (0 if none) |
//! | 0x088 | 8 | firmware SVSM calling area GPA (0 if none) |
//! | 0x090 | 4 | monitor policy length in bytes (<= 0xC00) |
//! | 0x094 | 4 | monitor policy offset in this page (0x400) |
//! | 0x098 | 48 | SHA-384 of the monitor policy bytes |
//! | 0x0C8 | 56 | reserved, zero |
//! | 0x100 | 32 x 24 | static memory map: {u64 base, u64 size, u32 kind, u32 reserved} |
//! | 0x400 | 0xC00 | monitor policy bytes |

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic at offset 0.
pub const MAGIC: [u8; 8] = *b"VIGILBP\0";
/// Current version.
pub const VERSION: u32 = 1;
/// Maximum number of static memory map entries.
pub const MAX_MAP: usize = 32;
/// Offset of the policy bytes in the page.
pub const POLICY_OFFSET: u32 = 0x400;
/// Maximum policy length.
pub const POLICY_MAX: usize = 0xC00;

/// Flag: the page was built for the SNP platform.
pub const FLAG_SNP: u32 = 1 << 0;
/// Flag: the page was built for the native platform.
pub const FLAG_NATIVE: u32 = 1 << 1;

/// Kinds of static memory map entries.
pub mod kind {
    /// Memory owned by Vigil (never given to the guest).
    pub const VIGIL: u32 = 1;
    /// Guest firmware image.
    pub const FIRMWARE: u32 = 2;
    /// Pages the guest firmware expects pre-validated (its SEV metadata SEC memory).
    pub const FIRMWARE_PREVALIDATED: u32 = 3;
    /// Guest RAM below the Vigil region.
    pub const GUEST_LOW: u32 = 4;
}

/// One static memory map entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MapEntry {
    /// Start GPA.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// One of [`kind`].
    pub kind: u32,
    /// Zero.
    pub reserved: u32,
}

/// The boot parameters page.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BootParams {
    /// "VIGILBP\0".
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// 0x1000.
    pub size: u32,
    /// vCPU count.
    pub vcpus: u32,
    /// Guest VMPL.
    pub guest_vmpl: u32,
    /// [`FLAG_SNP`] / [`FLAG_NATIVE`].
    pub flags: u32,
    /// Used entries of `memory_map`.
    pub map_entries: u32,
    /// Vigil region start.
    pub vigil_start: u64,
    /// Vigil region end.
    pub vigil_end: u64,
    /// Kernel entry.
    pub kernel_entry: u64,
    /// SNP secrets page.
    pub secrets_gpa: u64,
    /// SNP CPUID page.
    pub cpuid_gpa: u64,
    /// Memory-map parameter area.
    pub memmap_gpa: u64,
    /// Its size.
    pub memmap_size: u64,
    /// vCPU-count parameter area.
    pub vpcount_gpa: u64,
    /// Firmware start.
    pub fw_start: u64,
    /// Firmware size.
    pub fw_size: u64,
    /// Firmware entry.
    pub fw_entry: u64,
    /// Firmware secrets page.
    pub fw_secrets_gpa: u64,
    /// Firmware CPUID page.
    pub fw_cpuid_gpa: u64,
    /// Firmware calling area.
    pub fw_caa_gpa: u64,
    /// Policy length.
    pub policy_len: u32,
    /// Policy offset ([`POLICY_OFFSET`]).
    pub policy_offset: u32,
    /// SHA-384 of the policy.
    pub policy_digest: [u8; 48],
    /// Zero.
    pub reserved: [u8; 56],
    /// Static memory map.
    pub memory_map: [MapEntry; MAX_MAP],
    /// Policy bytes.
    pub policy: [u8; POLICY_MAX],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<MapEntry>() == 24);
    assert!(offset_of!(MapEntry, size) == 0x08);
    assert!(offset_of!(MapEntry, kind) == 0x10);
    assert!(offset_of!(BootParams, version) == 0x08);
    assert!(offset_of!(BootParams, size) == 0x0C);
    assert!(offset_of!(BootParams, guest_vmpl) == 0x14);
    assert!(offset_of!(BootParams, flags) == 0x18);
    assert!(offset_of!(BootParams, map_entries) == 0x1C);
    assert!(offset_of!(BootParams, vigil_end) == 0x28);
    assert!(offset_of!(BootParams, secrets_gpa) == 0x38);
    assert!(offset_of!(BootParams, cpuid_gpa) == 0x40);
    assert!(offset_of!(BootParams, memmap_size) == 0x50);
    assert!(offset_of!(BootParams, vpcount_gpa) == 0x58);
    assert!(offset_of!(BootParams, fw_size) == 0x68);
    assert!(offset_of!(BootParams, fw_entry) == 0x70);
    assert!(offset_of!(BootParams, fw_secrets_gpa) == 0x78);
    assert!(offset_of!(BootParams, fw_cpuid_gpa) == 0x80);
    assert!(offset_of!(BootParams, policy_offset) == 0x94);
    assert!(offset_of!(BootParams, reserved) == 0xC8);
    assert!(POLICY_OFFSET as usize + POLICY_MAX == size_of::<BootParams>());
    assert!(size_of::<BootParams>() == 4096);
    assert!(offset_of!(BootParams, vcpus) == 0x10);
    assert!(offset_of!(BootParams, vigil_start) == 0x20);
    assert!(offset_of!(BootParams, kernel_entry) == 0x30);
    assert!(offset_of!(BootParams, memmap_gpa) == 0x48);
    assert!(offset_of!(BootParams, fw_start) == 0x60);
    assert!(offset_of!(BootParams, fw_caa_gpa) == 0x88);
    assert!(offset_of!(BootParams, policy_len) == 0x90);
    assert!(offset_of!(BootParams, policy_digest) == 0x98);
    assert!(offset_of!(BootParams, memory_map) == 0x100);
    assert!(offset_of!(BootParams, policy) == 0x400);
};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn fields_land_at_their_documented_offsets() {
        let mut bp = BootParams::new_zeroed();
        bp.magic = MAGIC;
        bp.version = VERSION;
        bp.guest_vmpl = 2;
        bp.kernel_entry = 0x1122_3344_5566_7788;
        bp.memory_map[1].kind = kind::GUEST_LOW;
        bp.policy[0] = 0xAB;
        let b = bp.as_bytes();
        assert_eq!(&b[0..8], b"VIGILBP\0");
        assert_eq!(&b[0x08..0x0C], &1u32.to_le_bytes());
        assert_eq!(&b[0x14..0x18], &2u32.to_le_bytes());
        assert_eq!(&b[0x30..0x38], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(
            &b[0x100 + 24 + 0x10..0x100 + 24 + 0x14],
            &4u32.to_le_bytes()
        );
        assert_eq!(b[0x400], 0xAB);
    }

    #[test]
    fn a_page_reads_back_field_for_field() {
        let mut page = [0u8; 4096];
        page[0x10..0x14].copy_from_slice(&2u32.to_le_bytes());
        page[0x90..0x94].copy_from_slice(&7u32.to_le_bytes());
        let bp = BootParams::read_from_bytes(&page[..]).expect("one page is one BootParams");
        assert_eq!(bp.vcpus, 2);
        assert_eq!(bp.policy_len, 7);
        assert!(BootParams::read_from_bytes(&page[..4095]).is_err());
    }
}
