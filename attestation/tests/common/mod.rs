//! Shared helpers: reports signed with Vigil's TEST VCEK key, and the test chain.
#![allow(dead_code)]

use attestation::certs::{parse_blob, Cert};
use attestation::policy::Policy;
use attestation::test_chain::{test_chip_id, TEST_TCB};
use attestation::verify::Options;
use p384::ecdsa::signature::Signer;
use pkcs8::DecodePrivateKey;
use svsm_abi::report::{AttestationReport, SIGNED_LEN};
use zerocopy::{FromZeros, IntoBytes};

pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/test-root");
pub const SNP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/snp");
/// 2026-03-01.
pub const NOW: i64 = 1_772_323_200;

pub fn read(p: &str) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub fn test_chain() -> Vec<Cert> {
    let mut v = Vec::new();
    for f in ["vcek.pem", "ask.pem", "ark.pem"] {
        v.extend(parse_blob(&read(&format!("{ROOT}/{f}")), f).unwrap());
    }
    v
}

pub fn vcek_key() -> p384::ecdsa::SigningKey {
    let sk = p384::SecretKey::from_pkcs8_der(&read(&format!("{ROOT}/vcek-key.pk8.der"))).unwrap();
    p384::ecdsa::SigningKey::from(sk)
}

pub fn ark_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_der(&read(&format!("{ROOT}/ark-key.pk8.der"))).unwrap()
}

pub fn ask_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_der(&read(&format!("{ROOT}/ask-key.pk8.der"))).unwrap()
}

/// A v3 report as the simulated PSP would make it (test TCB and CHIP_ID), before signing.
pub fn test_report() -> AttestationReport {
    let mut r = AttestationReport::new_zeroed();
    r.version = 3;
    r.policy = 0x30000;
    r.signature_algo = 1;
    let t = TEST_TCB.to_u64();
    r.current_tcb = t;
    r.reported_tcb = t;
    r.committed_tcb = t;
    r.launch_tcb = t;
    r.chip_id = test_chip_id();
    r.cpuid_fam_id = 0x19;
    r.cpuid_mod_id = 0x11;
    r.current_major = 1;
    r.current_minor = 55;
    r.committed_major = 1;
    r.committed_minor = 55;
    r
}

/// Signs bytes 0x000..0x2A0 and stores R and S little-endian.
pub fn sign(r: &mut AttestationReport, key: &p384::ecdsa::SigningKey) -> Vec<u8> {
    r.signature_r = [0; 72];
    r.signature_s = [0; 72];
    let sig: p384::ecdsa::Signature = key.sign(&r.as_bytes()[..SIGNED_LEN]);
    let (rr, ss) = sig.split_bytes();
    let mut rb = rr.to_vec();
    let mut sb = ss.to_vec();
    rb.reverse();
    sb.reverse();
    r.signature_r[..48].copy_from_slice(&rb);
    r.signature_s[..48].copy_from_slice(&sb);
    r.as_bytes().to_vec()
}

pub fn opts(allow_test_root: bool) -> Options {
    Options {
        product: None,
        at: NOW,
        allow_test_root,
        policy: Policy::default(),
    }
}
