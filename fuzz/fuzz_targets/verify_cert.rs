//! Fuzzes certificate parsing (PEM/DER blobs, AMD extensions), the certificate table and
//! the CRL parser: errors, never panics.
#![no_main]
use attestation::certs::{decode_ia5, decode_spl, parse_blob};
use attestation::oids;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = parse_blob(data, "fuzz") {
        for c in &certs {
            let _ = c.role();
            let _ = c.subject_cn();
            for o in [oids::BL_SPL, oids::TEE_SPL, oids::SNP_SPL, oids::UCODE_SPL, oids::FMC_SPL] {
                let _ = decode_spl(c, &o);
            }
            let _ = decode_ia5(c, &oids::PRODUCT_NAME);
            let _ = decode_ia5(c, &oids::CSP_ID);
            let _ = c.verify_signed_by(c);
        }
    }
    let _ = attestation::inputs::parse_cert_table(data, "fuzz");
    let _ = attestation::crl::to_der(data);
});
