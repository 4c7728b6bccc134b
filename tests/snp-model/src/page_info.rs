//! The launch digest: the security processor's SHA-384 chain over PAGE_INFO structures
//! (SNP firmware ABI #56860 §8.17, SNP_LAUNCH_UPDATE, table "PAGE_INFO").
//!
//! For each page the firmware adds, in launch order:
//! `DIGEST_NEW = SHA-384(PAGE_INFO)`, where PAGE_INFO (0x70 bytes) is
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | DIGEST_CUR (48 bytes): the digest so far (zeros at the start) |
//! | 0x30 | CONTENTS (48 bytes): SHA-384 of the page for NORMAL and VMSA pages, else zero |
//! | 0x60 | LENGTH (u16) = 0x70 |
//! | 0x62 | PAGE_TYPE (u8) |
//! | 0x63 | IMI_PAGE (bit 0) |
//! | 0x64 | VMPL3_PERMS, 0x65 VMPL2_PERMS, 0x66 VMPL1_PERMS (u8 each), 0x67 reserved |
//! | 0x68 | GPA (u64) |
//!
//! The model launches with IMI_PAGE = 0 and all three VMPL permission bytes 0, as KVM's
//! SNP_LAUNCH_UPDATE does (`sev_gmem_post_populate` leaves them zero).

use sha2::{Digest, Sha384};

/// Size of PAGE_INFO.
pub const PAGE_INFO_LEN: usize = 0x70;

/// SNP_LAUNCH_UPDATE page types (SNP ABI #56860, table "Page types").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// A page of data, measured by content.
    Normal = 1,
    /// A VMSA, measured by content.
    Vmsa = 2,
    /// A page the firmware zeroes.
    Zero = 3,
    /// A page whose content is not measured.
    Unmeasured = 4,
    /// The secrets page, filled by the firmware.
    Secrets = 5,
    /// The CPUID page, filled by the host and checked by the firmware.
    Cpuid = 6,
}

impl PageType {
    /// Whether CONTENTS is the SHA-384 of the page.
    pub fn hashed(self) -> bool {
        matches!(self, PageType::Normal | PageType::Vmsa)
    }
}

/// A 48-byte SHA-384 value.
pub type Digest384 = [u8; 48];

/// The PAGE_INFO of one page.
pub fn page_info(
    cur: &Digest384,
    contents: &Digest384,
    t: PageType,
    gpa: u64,
) -> [u8; PAGE_INFO_LEN] {
    let mut p = [0u8; PAGE_INFO_LEN];
    p[0x00..0x30].copy_from_slice(cur);
    p[0x30..0x60].copy_from_slice(contents);
    p[0x60..0x62].copy_from_slice(&(PAGE_INFO_LEN as u16).to_le_bytes());
    p[0x62] = t as u8;
    p[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
    p
}

/// The running launch digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchDigest {
    cur: Digest384,
    pages: u64,
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// A fresh digest (48 zero bytes, SNP_LAUNCH_START).
    pub fn new() -> LaunchDigest {
        LaunchDigest {
            cur: [0; 48],
            pages: 0,
        }
    }

    /// Add one page. `page` is the 4 KiB content for NORMAL and VMSA pages and is
    /// ignored for the others.
    pub fn add(&mut self, gpa: u64, t: PageType, page: &[u8; 4096]) {
        let contents: Digest384 = if t.hashed() {
            Sha384::digest(page).into()
        } else {
            [0; 48]
        };
        self.cur = Sha384::digest(page_info(&self.cur, &contents, t, gpa)).into();
        self.pages += 1;
    }

    /// The digest so far.
    pub fn value(&self) -> Digest384 {
        self.cur
    }

    /// Pages measured.
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_info_layout() {
        let p = page_info(&[1; 48], &[2; 48], PageType::Cpuid, 0x1122_3344_5566_7000);
        assert_eq!(&p[..48], &[1; 48]);
        assert_eq!(&p[48..96], &[2; 48]);
        assert_eq!(&p[0x60..0x62], &[0x70, 0]);
        assert_eq!(p[0x62], 6);
        assert_eq!(&p[0x63..0x68], &[0; 5]);
        assert_eq!(&p[0x68..], &0x1122_3344_5566_7000u64.to_le_bytes());
    }

    #[test]
    fn hashed_types_depend_on_content_and_others_do_not() {
        let a = [0u8; 4096];
        let mut b = [0u8; 4096];
        b[7] = 1;
        for (t, differs) in [
            (PageType::Normal, true),
            (PageType::Vmsa, true),
            (PageType::Zero, false),
            (PageType::Unmeasured, false),
            (PageType::Secrets, false),
            (PageType::Cpuid, false),
        ] {
            let mut x = LaunchDigest::new();
            let mut y = LaunchDigest::new();
            x.add(0x1000, t, &a);
            y.add(0x1000, t, &b);
            assert_eq!(x.value() != y.value(), differs, "{t:?}");
        }
    }

    #[test]
    fn order_and_gpa_matter() {
        let a = [3u8; 4096];
        let mut x = LaunchDigest::new();
        x.add(0x1000, PageType::Normal, &a);
        x.add(0x2000, PageType::Zero, &a);
        let mut y = LaunchDigest::new();
        y.add(0x2000, PageType::Zero, &a);
        y.add(0x1000, PageType::Normal, &a);
        assert_ne!(x.value(), y.value());
        let mut z = LaunchDigest::new();
        z.add(0x3000, PageType::Normal, &a);
        z.add(0x2000, PageType::Zero, &a);
        assert_ne!(x.value(), z.value());
        assert_eq!(x.pages(), 2);
    }
}
