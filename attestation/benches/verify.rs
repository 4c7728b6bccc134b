//! Verifications per second: with a cached chain (the verifier has already checked the
//! certificate signatures once) and with a cold chain (a fresh verifier each time, so the
//! three RSA-4096 signature checks run too). Real Genoa report and chain.

use attestation::certs::parse_blob;
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use criterion::{criterion_group, criterion_main, Criterion};

fn evidence() -> Evidence {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/snp/genoa-v3");
    let mut certs = Vec::new();
    for f in ["vcek.pem", "ask.pem"] {
        certs.extend(parse_blob(&std::fs::read(format!("{dir}/{f}")).unwrap(), f).unwrap());
    }
    Evidence {
        report: std::fs::read(format!("{dir}/report.bin")).unwrap(),
        certs,
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let ev = evidence();
    let opt = Options {
        product: None,
        at: 1_772_323_200,
        allow_test_root: false,
        policy: Policy::default(),
    };
    let store = TrustStore::builtin().unwrap();
    let warm = Verifier::new(store.clone());
    assert!(warm.verify(&ev, &opt).verified());
    c.bench_function("verify_cached_chain", |b| b.iter(|| warm.verify(&ev, &opt)));
    c.bench_function("verify_cold_chain", |b| {
        b.iter(|| Verifier::new(store.clone()).verify(&ev, &opt))
    });
    let key = {
        let v = &ev.certs[0].parsed.tbs_certificate.subject_public_key_info;
        p384::ecdsa::VerifyingKey::from_sec1_bytes(v.subject_public_key.raw_bytes()).unwrap()
    };
    let rep = attestation::report::Report::from_bytes(&ev.report).unwrap();
    c.bench_function("ecdsa_p384_crate_only", |b| {
        b.iter(|| rep.verify_signature(&key).unwrap())
    });
    let point = ev.certs[0]
        .parsed
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    c.bench_function("ecdsa_ring_only", |b| {
        b.iter(|| rep.verify_signature_ring(&point).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
