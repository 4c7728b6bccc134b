//! Verifications per second per core, measured in CPU time of this thread (from
//! /proc/thread-self/schedstat) as well as wall time, so that the figure is meaningful
//! on a shared machine. `cargo bench -p attestation --bench throughput`.
//! Real Genoa v3 report and chain; cached chain = one verifier reused (the three RSA
//! signatures were checked once); cold chain = a new verifier for every report.

use attestation::certs::parse_blob;
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use std::time::Instant;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn measure(name: &str, n: u32, mut f: impl FnMut()) {
    f();
    let (w, c) = (Instant::now(), cpu_ns());
    for _ in 0..n {
        f();
    }
    let cpu = (cpu_ns() - c) as f64 / 1e9;
    let wall = w.elapsed().as_secs_f64();
    println!(
        "{name:>22}: {:8.1} verifications/s per core (CPU time), {:8.1}/s wall; {:.3} ms CPU each; n={n}",
        n as f64 / cpu,
        n as f64 / wall,
        cpu * 1e3 / n as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/snp/genoa-v3");
    let mut certs = Vec::new();
    for f in ["vcek.pem", "ask.pem"] {
        certs.extend(parse_blob(&std::fs::read(format!("{dir}/{f}")).unwrap(), f).unwrap());
    }
    let ev = Evidence {
        report: std::fs::read(format!("{dir}/report.bin")).unwrap(),
        certs,
        ..Default::default()
    };
    let opt = Options {
        product: None,
        at: 1_772_323_200,
        allow_test_root: false,
        policy: Policy::default(),
    };
    let store = TrustStore::builtin().unwrap();
    let warm = Verifier::new(store.clone());
    assert!(warm.verify(&ev, &opt).verified());
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    measure("cached chain", n, || {
        assert!(warm.verify(&ev, &opt).verified())
    });
    measure("cold chain", n / 4, || {
        assert!(Verifier::new(store.clone()).verify(&ev, &opt).verified())
    });
    let point = ev.certs[0]
        .parsed
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let rep = attestation::report::Report::from_bytes(&ev.report).unwrap();
    measure("ECDSA P-384 only (ring)", n, || {
        rep.verify_signature_ring(&point).unwrap()
    });
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    measure("ECDSA P-384 only (p384)", n / 4, || {
        rep.verify_signature(&key).unwrap()
    });
}
