//! Fuzz the IGVM reader and everything that consumes a parsed file: the framing scan
//! with offset-naming errors, the `igvm` crate parser behind it, the SNP measurement
//! under the default loader rules, `inspect`, `lint`, and the OVMF image checks. Any panic is a bug: IGVM files
//! given to `vigil-igvm measure`/`lint` may be hostile.
//!
//! Half of the inputs get their header CRC32 recomputed first, so that mutations reach
//! the parser instead of stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

fuzz_target!(|data: &[u8]| {
    let mut d = data.to_vec();
    if d.first().is_some_and(|b| b & 1 == 1) {
        vigil_igvm::reader::recompute_checksum(&mut d);
    }
    let _ = vigil_igvm::reader::scan(&d);
    if vigil_igvm::reader::parse(&d).is_ok() {
        let _ = measure_file(&d, Platform::Snp, &LoaderRules::default(), true);
        let _ = vigil_igvm::inspect::inspect(&d);
        let _ = vigil_igvm::lint::lint(&d);
    }
    // The OVMF well-formedness checks that `measure --mode snp*`, `build --firmware` and
    // `lint` apply (reset vector, footer table, SEV metadata), then the raw parser.
    let _ = vigil_igvm::ovmf::Ovmf::parse_ovmf(d.as_slice(), true);
    let _ = vigil_igvm::ovmf::Ovmf::parse_ovmf(d.as_slice(), false);
    let _ = vigil_igvm::ovmf::Ovmf::parse("OVMF", d, 1 << 32);
});
