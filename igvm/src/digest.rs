//! The SNP launch digest: a SHA-384 chain over PAGE_INFO records (SNP firmware ABI
//! #56860, SNP_LAUNCH_UPDATE), with a per-page log.
//!
//! A measurement is described first as an ordered list of [`PageOp`]s (GPA, page type,
//! contents), then computed by [`measure`]. The contents digests of the pages do not
//! depend on each other, so they are computed in parallel (rayon); only the chaining of
//! the 112-byte PAGE_INFO records is sequential. For a 4 MiB firmware image that is
//! 1024 independent 4 KiB hashes and 1024 short chained hashes.

use std::borrow::Cow;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha384};
use svsm_abi::page_info::{PageType, DIGEST_SIZE};

/// A SHA-384 digest.
pub type Digest384 = [u8; DIGEST_SIZE];

/// The size of a small page.
pub const PAGE_SIZE: usize = 4096;

/// The GPA at which KVM measures every VMSA: the RMP records VMSA pages at GPA -1,
/// page-aligned with the bits above 51 cleared.
pub const KVM_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// One SNP_LAUNCH_UPDATE of a 4 KiB page.
#[derive(Clone, Debug)]
pub struct PageOp<'a> {
    /// Guest-physical address recorded in PAGE_INFO.
    pub gpa: u64,
    /// Page type.
    pub page_type: PageType,
    /// Page contents for NORMAL and VMSA pages (shorter data is zero-padded to 4 KiB);
    /// ignored for the other types.
    pub data: Cow<'a, [u8]>,
}

impl<'a> PageOp<'a> {
    /// A page whose contents are not hashed (ZERO, UNMEASURED, SECRETS, CPUID).
    pub fn unhashed(gpa: u64, page_type: PageType) -> Self {
        Self {
            gpa,
            page_type,
            data: Cow::Borrowed(&[]),
        }
    }
    /// A NORMAL page.
    pub fn normal(gpa: u64, data: impl Into<Cow<'a, [u8]>>) -> Self {
        Self {
            gpa,
            page_type: PageType::Normal,
            data: data.into(),
        }
    }
}

/// One line of the per-page log.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the chain, from 0.
    pub index: usize,
    /// Guest-physical address, as hex.
    pub gpa: String,
    /// Page type name (NORMAL, VMSA, ZERO, UNMEASURED, SECRETS, CPUID).
    pub page_type: &'static str,
    /// PAGE_INFO.CONTENTS as hex (zero for unhashed types).
    pub contents: String,
    /// Launch digest after this page, as hex.
    pub digest: String,
}

/// The SHA-384 of one page, zero-padded to 4 KiB if shorter.
pub fn page_digest(data: &[u8]) -> Digest384 {
    let mut h = Sha384::new();
    h.update(data);
    if data.len() < PAGE_SIZE {
        h.update(&[0u8; PAGE_SIZE][..PAGE_SIZE - data.len()]);
    }
    h.finalize().into()
}

/// Extend `digest` by one PAGE_INFO record.
pub fn extend(
    digest: &Digest384,
    contents: &Digest384,
    page_type: PageType,
    gpa: u64,
) -> Digest384 {
    svsm_abi::page_info::extend(digest, contents, page_type, gpa)
}

/// The result of a measurement.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The final launch digest.
    pub digest: Digest384,
    /// One entry per page if a log was requested, else empty.
    pub log: Vec<LogEntry>,
    /// Number of pages measured.
    pub pages: usize,
}

/// Measure `ops` in order, starting from `seed` (48 zero bytes for a fresh launch).
/// Contents digests are computed in parallel; the chain in order. With `want_log`,
/// every page's record is returned too.
///
/// Errors: a NORMAL or VMSA page with more than 4 KiB of data.
pub fn measure(seed: Digest384, ops: &[PageOp<'_>], want_log: bool) -> crate::Result<Measurement> {
    if let Some((i, op)) = ops
        .iter()
        .enumerate()
        .find(|(_, op)| op.page_type.contents_measured() && op.data.len() > PAGE_SIZE)
    {
        return Err(crate::Error::Invalid(format!(
            "page {i} at GPA {:#x}: {} bytes of data for a 4 KiB page",
            op.gpa,
            op.data.len()
        )));
    }
    // Pages filled with one byte value (0x00 and 0xFF padding make up more than half of
    // a typical OVMF image) are hashed once per value; all others in parallel.
    let uniform = |d: &[u8]| -> Option<u8> {
        let b = *d.first().unwrap_or(&0);
        (d.iter().all(|x| *x == b) && (d.len() == PAGE_SIZE || b == 0)).then_some(b)
    };
    let hashed: Vec<Result<Digest384, u8>> = ops
        .par_iter()
        .with_min_len(16)
        .map(|op| {
            if !op.page_type.contents_measured() {
                Ok([0u8; DIGEST_SIZE])
            } else if let Some(b) = uniform(&op.data) {
                Err(b)
            } else {
                Ok(page_digest(&op.data))
            }
        })
        .collect();
    let mut cache: [Option<Digest384>; 256] = [None; 256];
    let contents: Vec<Digest384> = hashed
        .into_iter()
        .map(|h| match h {
            Ok(d) => d,
            Err(b) => *cache[b as usize].get_or_insert_with(|| page_digest(&[b; PAGE_SIZE])),
        })
        .collect();
    let mut digest = seed;
    let mut log = Vec::with_capacity(if want_log { ops.len() } else { 0 });
    for (index, (op, c)) in ops.iter().zip(contents.iter()).enumerate() {
        digest = extend(&digest, c, op.page_type, op.gpa);
        if want_log {
            log.push(LogEntry {
                index,
                gpa: format!("{:#x}", op.gpa),
                page_type: op.page_type.name(),
                contents: hex::encode(c),
                digest: hex::encode(digest),
            });
        }
    }
    Ok(Measurement {
        digest,
        log,
        pages: ops.len(),
    })
}

/// Split `data` (a multiple of 4 KiB) into NORMAL page operations starting at `gpa`.
pub fn normal_pages(gpa: u64, data: &[u8]) -> impl Iterator<Item = PageOp<'_>> {
    data.chunks(PAGE_SIZE).enumerate().map(move |(i, c)| {
        PageOp::normal(gpa.wrapping_add((i * PAGE_SIZE) as u64), Cow::Borrowed(c))
    })
}

/// `count` unhashed pages of `page_type` from `gpa`.
pub fn unhashed_pages<'a>(
    gpa: u64,
    size: u64,
    page_type: PageType,
) -> impl Iterator<Item = PageOp<'a>> {
    (0..size.div_ceil(PAGE_SIZE as u64))
        .map(move |i| PageOp::unhashed(gpa.wrapping_add(i * PAGE_SIZE as u64), page_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_equals_sequential_and_log_chains() {
        let data: Vec<u8> = (0..64 * PAGE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        let mut ops: Vec<PageOp> = normal_pages(0x1000, &data).collect();
        ops.push(PageOp::unhashed(0x9000_0000, PageType::Cpuid));
        let m = measure([0; 48], &ops, true).unwrap();
        let mut d = [0u8; 48];
        for op in &ops {
            let c = if op.page_type.contents_measured() {
                Sha384::digest(&op.data[..]).into()
            } else {
                [0; 48]
            };
            d = extend(&d, &c, op.page_type, op.gpa);
        }
        assert_eq!(m.digest, d);
        assert_eq!(m.log.len(), 65);
        assert_eq!(m.log[64].digest, hex::encode(d));
        assert_eq!(m.log[64].page_type, "CPUID");
        assert_eq!(m.log[1].gpa, "0x2000");
    }

    #[test]
    fn uniform_page_cache_gives_true_digests() {
        let pages: Vec<Vec<u8>> = vec![
            vec![0xff; PAGE_SIZE],
            vec![0; 10],
            vec![7; 10],
            vec![0xff; PAGE_SIZE],
            vec![],
        ];
        let ops: Vec<PageOp> = pages
            .iter()
            .enumerate()
            .map(|(i, p)| PageOp::normal(i as u64 * 4096, &p[..]))
            .collect();
        let m = measure([0; 48], &ops, true).unwrap();
        for (e, p) in m.log.iter().zip(&pages) {
            assert_eq!(e.contents, hex::encode(page_digest(p)));
        }
        let mut padded = vec![7u8; 10];
        padded.resize(PAGE_SIZE, 0);
        assert_eq!(m.log[2].contents, hex::encode(Sha384::digest(&padded)));
        assert_ne!(m.log[2].contents, hex::encode(page_digest(&[7; PAGE_SIZE])));
    }

    #[test]
    fn short_data_is_zero_padded_and_long_data_refused() {
        assert_eq!(
            page_digest(&[1, 2, 3]),
            page_digest(&{
                let mut p = vec![0u8; PAGE_SIZE];
                p[..3].copy_from_slice(&[1, 2, 3]);
                p
            })
        );
        let big = vec![0u8; PAGE_SIZE + 1];
        let err = measure([0; 48], &[PageOp::normal(0, &big[..])], false).unwrap_err();
        assert!(err.to_string().contains("4097 bytes"), "{err}");
    }
}
