//! Fuzzes the policy parser (TOML) and the reference-values and manifest parsers:
//! errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = attestation::policy::Policy::from_toml(s);
        let _ = attestation::evidence::Refs::from_json(s);
    }
    let _ = attestation::evidence::parse_manifest_strict(data);
});
