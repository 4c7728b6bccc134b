//! Fuzzes report parsing and the whole verifier on an arbitrary report (raw, hex or
//! base64) with the test chain: no input may panic.
#![no_main]
use attestation::certs::parse_blob;
use attestation::policy::Policy;
use attestation::report::decode_report_input;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static V: OnceLock<(Verifier, Vec<attestation::certs::Cert>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (v, certs) = V.get_or_init(|| {
        let vcek = include_bytes!("../../attestation/testdata/test-root/vcek.pem");
        (Verifier::new(TrustStore::builtin().unwrap()), parse_blob(vcek, "vcek").unwrap())
    });
    let Ok(report) = decode_report_input(data) else { return };
    let ev = Evidence { report, certs: certs.clone(), ..Default::default() };
    let opt = Options { product: None, at: 1_772_323_200, allow_test_root: true, policy: Policy::default() };
    let _ = v.verify(&ev, &opt);
});
