//! An OVMF image as a host loads it for SNP without IGVM (QEMU + KVM, the layout the
//! published launch-digest vectors use): the image ends at 4 GiB and is measured as
//! NORMAL pages; then OVMF's SEV metadata sections (found through the GUIDed footer
//! table at the end of the image) are measured in table order; then one VMSA per vCPU.
//!
//! Footer table (edk2 OvmfPkg/ResetVector, "OVMF GUIDed structure table"): the 32 bytes
//! before the end of the image are the reset vector; before them the footer entry (u16
//! length of the whole table, then the footer GUID); entries run backwards, each = data,
//! u16 length (data + 18), GUID. The SEV-ES reset block entry holds the APs' reset EIP
//! (u32); the SEV metadata entry holds the metadata's offset from the end of the image
//! (u32). Metadata: "ASEV", length, version, count (u32 each), then (base, size, type)
//! u32 triples; types 1 SEC memory (ZERO), 2 secrets, 3 CPUID, 4 SVSM calling area
//! (ZERO), 0x10 kernel hashes (ZERO when no kernel is given).

use alloc::vec::Vec;

use crate::launch::{Page, Plan};
use crate::page_info::PageType;
use crate::reset_vmsa::reset_vmsa;

const FOOTER_GUID: [u8; 16] = guid(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
const RESET_BLOCK_GUID: [u8; 16] = guid(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
const METADATA_GUID: [u8; 16] = guid(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// 4 GiB: where the image ends.
pub const FOUR_GB: u64 = 1 << 32;
/// Boot CPU reset EIP.
pub const BSP_EIP: u32 = 0xffff_fff0;

/// Why an image is refused (offsets are from the start of the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvmfError {
    /// Not a whole number of pages, empty, or larger than 4 GiB.
    Size,
    /// No footer table GUID at `offset`.
    NoFooter {
        /// Where it was looked for.
        offset: usize,
    },
    /// A table entry length that does not fit.
    BadEntry {
        /// Offset of the entry's length field.
        offset: usize,
    },
    /// A needed entry is missing (SEV-ES reset block or SEV metadata).
    Missing,
    /// The metadata is outside the image, has no "ASEV" signature, or an item is bad.
    BadMetadata {
        /// Offset of what is wrong.
        offset: usize,
    },
}

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?))
}

/// The (GUID, data offset, data length) entries of the footer table.
fn table(img: &[u8]) -> Result<Vec<([u8; 16], usize, usize)>, OvmfError> {
    let footer = img.len().checked_sub(32 + 18).ok_or(OvmfError::Size)?;
    if img[footer + 2..footer + 18] != FOOTER_GUID {
        return Err(OvmfError::NoFooter { offset: footer });
    }
    let total = usize::from(u16_at(img, footer).ok_or(OvmfError::BadEntry { offset: footer })?);
    let start = total
        .checked_sub(18)
        .and_then(|t| footer.checked_sub(t))
        .ok_or(OvmfError::BadEntry { offset: footer })?;
    let mut end = footer;
    let mut out = Vec::new();
    while end >= start + 18 {
        let len_at = end - 18;
        let len = usize::from(u16_at(img, len_at).ok_or(OvmfError::BadEntry { offset: len_at })?);
        if len < 18 || end - start < len {
            return Err(OvmfError::BadEntry { offset: len_at });
        }
        let mut g = [0u8; 16];
        g.copy_from_slice(&img[len_at + 2..end]);
        out.push((g, end - len, len - 18));
        end -= len;
    }
    Ok(out)
}

fn entry_u32(t: &[([u8; 16], usize, usize)], img: &[u8], g: [u8; 16]) -> Result<u32, OvmfError> {
    let (_, o, l) = t.iter().find(|e| e.0 == g).ok_or(OvmfError::Missing)?;
    if *l < 4 {
        return Err(OvmfError::BadEntry { offset: *o });
    }
    u32_at(img, *o).ok_or(OvmfError::BadEntry { offset: *o })
}

/// The launch plan of `img` for `vcpus` vCPUs with `sev_features` and CPUID signature
/// `vcpu_sig` (what QEMU+KVM measure; no kernel hashes).
pub fn plan(img: &[u8], vcpus: u32, sev_features: u64, vcpu_sig: u32) -> Result<Plan, OvmfError> {
    let size = img.len() as u64;
    if img.is_empty() || !size.is_multiple_of(4096) || size > FOUR_GB {
        return Err(OvmfError::Size);
    }
    let t = table(img)?;
    let ap_eip = entry_u32(&t, img, RESET_BLOCK_GUID)?;
    let meta_off = entry_u32(&t, img, METADATA_GUID)? as usize;
    let base = FOUR_GB - size;
    let mut pages: Vec<Page> = img
        .chunks(4096)
        .enumerate()
        .map(|(i, c)| Page {
            gpa: base + 4096 * i as u64,
            page_type: PageType::Normal,
            data: c.to_vec(),
        })
        .collect();
    let m = img
        .len()
        .checked_sub(meta_off)
        .ok_or(OvmfError::BadMetadata { offset: 0 })?;
    if img.get(m..m + 4) != Some(b"ASEV") {
        return Err(OvmfError::BadMetadata { offset: m });
    }
    let count = u32_at(img, m + 12).ok_or(OvmfError::BadMetadata { offset: m + 12 })?;
    for i in 0..count as usize {
        let o = m + 16 + 12 * i;
        let bad = OvmfError::BadMetadata { offset: o };
        let (gpa, len, kind) = (
            u32_at(img, o).ok_or(bad)?,
            u32_at(img, o + 4).ok_or(bad)?,
            u32_at(img, o + 8).ok_or(bad)?,
        );
        let t = match kind {
            1 | 4 | 0x10 => PageType::Zero,
            2 => PageType::Secrets,
            3 => PageType::Cpuid,
            _ => return Err(bad),
        };
        if !gpa.is_multiple_of(4096) || !len.is_multiple_of(4096) || len == 0 {
            return Err(bad);
        }
        for p in 0..u64::from(len / 4096) {
            pages.push(Page {
                gpa: u64::from(gpa) + 4096 * p,
                page_type: t,
                data: Vec::new(),
            });
        }
    }
    let vmsas = (0..vcpus)
        .map(|i| {
            let eip = if i == 0 { BSP_EIP } else { ap_eip };
            reset_vmsa(eip, sev_features, vcpu_sig).to_vec()
        })
        .collect();
    Ok(Plan {
        pages,
        vmsas,
        policy: 0,
    })
}
