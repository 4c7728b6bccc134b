//! Real AMD-signed reports (testdata/snp, see its README for sources and licences).

use attestation::certs::{parse_blob, Cert};
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Status, Verifier};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/snp");

fn load(case: &str) -> Evidence {
    let dir = format!("{DIR}/{case}");
    let mut certs: Vec<Cert> = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "report.bin" {
            continue;
        }
        certs.extend(parse_blob(&std::fs::read(&p).unwrap(), &p.display().to_string()).unwrap());
    }
    Evidence {
        report: std::fs::read(format!("{dir}/report.bin")).unwrap(),
        certs,
        ..Default::default()
    }
}

fn opts(at: i64) -> Options {
    Options {
        product: None,
        at,
        allow_test_root: false,
        policy: Policy::default(),
    }
}

// 2026-03-01, inside every VCEK's validity; the VLEK expired on 2025-12-10.
const NOW: i64 = 1_772_323_200;
const BEFORE_VLEK_EXPIRY: i64 = 1_746_057_600; // 2025-05-01

const CASES: [&str; 4] = ["milan-v3", "genoa-v3", "turin-v5", "genoa-v5"];

#[test]
fn every_real_report_verifies_with_its_chain() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    for case in CASES {
        let out = v.verify(&load(case), &opts(NOW));
        for c in &out.checks {
            assert_ne!(
                c.status,
                Status::Fail,
                "{case}: {} failed: {}",
                c.name,
                c.detail
            );
        }
        assert!(out.verified(), "{case}");
        for name in [
            "report.signature",
            "chain.root",
            "chain.leaf.signature",
            "cert.tcb",
            "cert.hwid",
            "product",
        ] {
            assert_eq!(
                out.check(name).unwrap().status,
                Status::Pass,
                "{case} {name}"
            );
        }
    }
}

#[test]
fn expired_vlek_verifies_only_before_its_expiry() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let ev = load("milan-vlek-v3");
    let out = v.verify(&ev, &opts(BEFORE_VLEK_EXPIRY));
    for c in &out.checks {
        assert_ne!(c.status, Status::Fail, "{}: {}", c.name, c.detail);
    }
    assert!(out.verified());
    assert_eq!(
        out.check("chain.intermediate").unwrap().status,
        Status::Pass
    );
    let late = v.verify(&ev, &opts(NOW));
    assert!(!late.verified());
    assert_eq!(late.check("chain.validity").unwrap().status, Status::Fail);
    // Only validity fails.
    assert_eq!(
        late.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count(),
        1
    );
}
