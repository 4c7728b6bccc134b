//! Hostile inputs: mutated and truncated IGVM files and OVMF images never panic the
//! reader, `measure`, `inspect` or `lint`; they give Ok or a typed error. (The
//! cargo-fuzz target fuzz/fuzz_targets/igvm_reader.rs explores further.)
#![warn(clippy::too_many_lines)]

mod common;

use proptest::prelude::*;
use vigil_igvm::builder::{self, BuildConfig, Firmware, Profile};
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};
use vigil_igvm::ovmf::Ovmf;

fn small_file() -> Vec<u8> {
    builder::build(&BuildConfig {
        profile: Profile::QemuKvm,
        kernel: common::test_kernel(),
        firmware: Firmware::Elf(common::test_guest()),
        snp: true,
        native: true,
        vcpus: 1,
        guest_vmpl: 2,
        policy: b"{\"p\":1}".to_vec(),
        guest_policy: 0x30000,
        sev_features: 1,
    })
    .unwrap()
    .bytes
}

/// The CRC is fixed up after mutation so that mutations reach past the checksum check.
fn fix_checksum(d: &mut [u8]) {
    vigil_igvm::reader::recompute_checksum(d);
}

fn exercise(d: &[u8]) {
    let _ = vigil_igvm::reader::scan(d);
    let _ = vigil_igvm::inspect::inspect(d);
    let _ = vigil_igvm::lint::lint(d);
    let _ = measure_file(d, Platform::Snp, &LoaderRules::default(), true);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mutated_igvm_headers_do_not_panic(edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        let mut d = small_file();
        // Mostly the header area, where the structure is.
        for (at, v) in edits {
            let i = at % d.len().min(4096);
            d[i] = v;
        }
        exercise(&d);
        fix_checksum(&mut d);
        exercise(&d);
    }

    #[test]
    fn checksum_fix_makes_the_unmutated_file_parse(_x in 0u8..1) {
        let mut d = small_file();
        d[20] ^= 0xff;
        prop_assert!(vigil_igvm::reader::parse(&d).is_err());
        fix_checksum(&mut d);
        prop_assert!(vigil_igvm::reader::parse(&d).is_ok());
    }

    #[test]
    fn truncated_igvm_does_not_panic(len in 0usize..200_000) {
        let d = small_file();
        exercise(&d[..len.min(d.len())]);
    }

    #[test]
    fn mutated_ovmf_footer_does_not_panic(edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..12)) {
        let mut o = common::fixture("ovmf_AmdSev_suffix.bin");
        for (at, v) in edits {
            // Bias toward the footer table and metadata at the end.
            let i = 4095 - (at % 1024);
            o[i] = v;
        }
        if let Ok(f) = Ovmf::parse("OVMF", o, 1 << 32) {
            let _ = f.sev_es_reset_eip("OVMF");
            let _ = f.sev_hashes_table_gpa("OVMF");
        }
    }
}

/// Regression: the igvm_reader fuzz target's first crash. A VP_CONTEXT header with
/// file_offset 0 made the `igvm` crate subtract past zero (panic in debug builds); the
/// reader now refuses it with the field and offset.
#[test]
fn fuzz_crash_vp_context_offset_zero() {
    let d = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/fuzz-crash-vp-context-offset-0.igvm"
    ))
    .unwrap();
    let mut fixed = d.clone();
    if d.first().is_some_and(|b| b & 1 == 1) {
        vigil_igvm::reader::recompute_checksum(&mut fixed);
    }
    for input in [&d, &fixed] {
        exercise(input);
    }
    let e = vigil_igvm::reader::parse(&fixed).unwrap_err().to_string();
    assert!(e.contains("file_offset"), "{e}");
}
