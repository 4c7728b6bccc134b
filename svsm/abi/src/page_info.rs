//! PAGE_INFO, the 112-byte record chained into the SNP launch digest (SNP firmware ABI #56860, SNP_LAUNCH_UPDATE).
//!
//! Every SNP_LAUNCH_UPDATE of a 4 KiB page extends the guest's launch digest:
//!
//! ```text
//! digest_new = SHA-384(PAGE_INFO), PAGE_INFO.digest_cur = digest_old
//! ```
//!
//! where PAGE_INFO carries the previous digest, the SHA-384 of the page contents (for
//! NORMAL and VMSA pages; zero for the other types), the page type, the IMI flag, the
//! lower-VMPL permissions and the guest-physical address. The digest starts as 48 zero
//! bytes; its final value is the MEASUREMENT of the attestation report. This module
//! holds the byte layout and the one [`extend`] step; `vigil-igvm` and the kernel's
//! emulated loader chain digests with it.

use sha2::{Digest, Sha384};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of PAGE_INFO in bytes, and the value of its `length` field.
pub const PAGE_INFO_SIZE: usize = 0x70;

/// Length of a SHA-384 digest.
pub const DIGEST_SIZE: usize = 48;

/// PAGE_TYPE values of SNP_LAUNCH_UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PageType {
    /// A normal page: its contents are measured.
    Normal = 1,
    /// A VMSA page: its contents (the vCPU's initial register state) are measured.
    Vmsa = 2,
    /// A page of zeros; contents not hashed (the digest field is zero).
    Zero = 3,
    /// An unmeasured page; contents not hashed.
    Unmeasured = 4,
    /// The secrets page, filled by the firmware; contents not hashed.
    Secrets = 5,
    /// The CPUID page, checked by the firmware; contents not hashed.
    Cpuid = 6,
}

impl PageType {
    /// The page type for a PAGE_TYPE byte, or `None` for a reserved value.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Normal),
            2 => Some(Self::Vmsa),
            3 => Some(Self::Zero),
            4 => Some(Self::Unmeasured),
            5 => Some(Self::Secrets),
            6 => Some(Self::Cpuid),
            _ => None,
        }
    }
    /// True if the PAGE_INFO `contents` field holds the SHA-384 of the page for this type.
    pub const fn contents_measured(self) -> bool {
        matches!(self, Self::Normal | Self::Vmsa)
    }
    /// The spec's name of the type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Vmsa => "VMSA",
            Self::Zero => "ZERO",
            Self::Unmeasured => "UNMEASURED",
            Self::Secrets => "SECRETS",
            Self::Cpuid => "CPUID",
        }
    }
}

/// The PAGE_INFO structure.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PageInfo {
    /// 0x00 DIGEST_CUR: the launch digest before this page.
    pub digest_cur: [u8; DIGEST_SIZE],
    /// 0x30 CONTENTS: SHA-384 of the page for NORMAL and VMSA pages, zero otherwise.
    pub contents: [u8; DIGEST_SIZE],
    /// 0x60 LENGTH: the size of this structure, 0x70.
    pub length: u16,
    /// 0x62 PAGE_TYPE (see [`PageType`]).
    pub page_type: u8,
    /// 0x63 bit 0: IMI_PAGE (page added by a migration agent); bits 7:1 reserved.
    pub imi_page: u8,
    /// 0x64 VMPL3_PERMS.
    pub vmpl3_perms: u8,
    /// 0x65 VMPL2_PERMS.
    pub vmpl2_perms: u8,
    /// 0x66 VMPL1_PERMS.
    pub vmpl1_perms: u8,
    /// 0x67 reserved.
    pub reserved: u8,
    /// 0x68 GPA: the guest-physical address of the page.
    pub gpa: u64,
}

impl PageInfo {
    /// A PAGE_INFO for a launch update with no IMI flag and no lower-VMPL permissions,
    /// which is what every launch update of a non-migration guest uses.
    pub const fn new(
        digest_cur: [u8; DIGEST_SIZE],
        contents: [u8; DIGEST_SIZE],
        page_type: PageType,
        gpa: u64,
    ) -> Self {
        Self {
            digest_cur,
            contents,
            length: PAGE_INFO_SIZE as u16,
            page_type: page_type as u8,
            imi_page: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            reserved: 0,
            gpa,
        }
    }
}

/// One step of the launch-digest chain (SNP firmware ABI #56860, SNP_LAUNCH_UPDATE):
/// the SHA-384 of the PAGE_INFO that carries `digest` as DIGEST_CUR, `contents` (the
/// page's SHA-384 for NORMAL and VMSA pages, zeros otherwise), `page_type` and `gpa`.
pub fn extend(
    digest: &[u8; DIGEST_SIZE],
    contents: &[u8; DIGEST_SIZE],
    page_type: PageType,
    gpa: u64,
) -> [u8; DIGEST_SIZE] {
    let info = PageInfo::new(*digest, *contents, page_type, gpa);
    Sha384::digest(info.as_bytes()).into()
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PageInfo>() == PAGE_INFO_SIZE);
    assert!(offset_of!(PageInfo, digest_cur) == 0x00);
    assert!(offset_of!(PageInfo, contents) == 0x30);
    assert!(offset_of!(PageInfo, length) == 0x60);
    assert!(offset_of!(PageInfo, page_type) == 0x62);
    assert!(offset_of!(PageInfo, imi_page) == 0x63);
    assert!(offset_of!(PageInfo, vmpl3_perms) == 0x64);
    assert!(offset_of!(PageInfo, vmpl2_perms) == 0x65);
    assert!(offset_of!(PageInfo, vmpl1_perms) == 0x66);
    assert!(offset_of!(PageInfo, gpa) == 0x68);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_info_bytes() {
        let p = PageInfo::new([1; 48], [2; 48], PageType::Vmsa, 0xFFFF_FFFF_F000);
        let b = p.as_bytes();
        assert_eq!(b.len(), 112);
        assert_eq!(&b[0..48], &[1; 48]);
        assert_eq!(&b[48..96], &[2; 48]);
        assert_eq!(&b[0x60..0x68], &[0x70, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(&b[0x68..0x70], &0xFFFF_FFFF_F000u64.to_le_bytes());
    }

    #[test]
    fn extend_hashes_the_page_info_record() {
        let d0 = [0u8; 48];
        let c = [7u8; 48];
        let d1 = extend(&d0, &c, PageType::Normal, 0x1000);
        let want: [u8; 48] =
            Sha384::digest(PageInfo::new(d0, c, PageType::Normal, 0x1000).as_bytes()).into();
        assert_eq!(d1, want);
        // Every input reaches the digest: the previous digest, contents, type and GPA.
        assert_ne!(extend(&d1, &c, PageType::Normal, 0x1000), d1);
        assert_ne!(extend(&d0, &[8; 48], PageType::Normal, 0x1000), d1);
        assert_ne!(extend(&d0, &c, PageType::Vmsa, 0x1000), d1);
        assert_ne!(extend(&d0, &c, PageType::Normal, 0x2000), d1);
    }

    #[test]
    fn page_types_round_trip() {
        for v in 0u8..=255 {
            match PageType::from_u8(v) {
                Some(t) => assert_eq!(t as u8, v),
                None => assert!(v == 0 || v > 6),
            }
        }
        assert!(PageType::Normal.contents_measured());
        assert!(PageType::Vmsa.contents_measured());
        assert!(!PageType::Zero.contents_measured());
        assert!(!PageType::Cpuid.contents_measured());
    }
}
