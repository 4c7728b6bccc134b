//! Fuzzes the certificate table reader of vigil-verify (the GUID table of the SNP
//! extended guest request, as found in a configfs-tsm `auxblob` or given with
//! `--cert-table`): arbitrary bytes never panic, and every certificate it returns was
//! parsed from bytes inside the table.
#![no_main]
use attestation::inputs::parse_cert_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = parse_cert_table(data, "fuzz") {
        // A table that yields certificates must be long enough to hold their DER.
        let total: usize = certs.iter().map(|c| c.der.len()).sum();
        assert!(total <= data.len(), "more certificate bytes than table bytes");
    }
});
