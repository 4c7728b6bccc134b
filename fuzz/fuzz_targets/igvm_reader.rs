//! Fuzz the IGVM reader and everything that consumes a parsed file: the framing scan
//! with offset-naming errors, the `igvm` crate parser behind it, the SNP measurement
//! under the default loader rules, `inspect` and `lint`. Any panic is a bug: IGVM files
//! given to `vigil-igvm measure`/`lint` may be hostile.
//!
//! Half of the inputs get their header CRC32 recomputed first, so that mutations reach
//! the parser instead of stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

fn fix_checksum(d: &mut [u8]) {
    if d.len() < 24 {
        return;
    }
    let off = u32::from_le_bytes([d[8], d[9], d[10], d[11]]) as usize;
    let size = u32::from_le_bytes([d[12], d[13], d[14], d[15]]) as usize;
    let Some(end) = off.checked_add(size).filter(|e| *e <= d.len() && off >= 24) else {
        return;
    };
    d[20..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&d[..24]);
    h.update(&d[off..end]);
    let c = h.finalize();
    d[20..24].copy_from_slice(&c.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut d = data.to_vec();
    if d.first().is_some_and(|b| b & 1 == 1) {
        fix_checksum(&mut d);
    }
    let _ = vigil_igvm::reader::scan(&d);
    if vigil_igvm::reader::parse(&d).is_ok() {
        let _ = measure_file(&d, Platform::Snp, &LoaderRules::default(), true);
        let _ = vigil_igvm::inspect::inspect(&d);
        let _ = vigil_igvm::lint::lint(&d);
    }
    let _ = vigil_igvm::ovmf::Ovmf::parse("OVMF", d, 1 << 32);
});
