//! Flipping any single bit of the 672 signed bytes of each real report is rejected by
//! the report signature check (5,376 flips per report, five reports).

mod common;
use attestation::certs::parse_blob;
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Status, Verifier};

#[test]
fn every_single_bit_flip_of_the_signed_bytes_is_rejected() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let cases = [
        ("milan-v3", common::NOW),
        ("genoa-v3", common::NOW),
        ("turin-v5", common::NOW),
        ("genoa-v5", common::NOW),
        ("milan-vlek-v3", 1_746_057_600),
    ];
    let start = std::time::Instant::now();
    // One thread per report (the verifier and its chain cache are shared); on CI's
    // cores this divides the wall time, the checks are the same.
    let total: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = cases
            .iter()
            .map(|&(case, at)| {
                let v = &v;
                sc.spawn(move || flips(v, case, at))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, 5 * 5376);
    eprintln!("{total} flipped reports verified in {:?}", start.elapsed());
}

fn flips(v: &Verifier, case: &str, at: i64) -> usize {
    let mut total = 0;
    let dir = format!("{}/{case}", common::SNP);
    let mut certs = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap() != "report.bin" {
            certs.extend(parse_blob(&std::fs::read(&p).unwrap(), "c").unwrap());
        }
    }
    let report = std::fs::read(format!("{dir}/report.bin")).unwrap();
    let opt = Options {
        product: None,
        at,
        allow_test_root: false,
        policy: Policy::default(),
    };
    let mut ev = Evidence {
        report: report.clone(),
        certs,
        ..Default::default()
    };
    assert!(
        v.verify(&ev, &opt).verified(),
        "{case} must verify unmodified"
    );
    for bit in 0..0x2A0 * 8 {
        ev.report.copy_from_slice(&report);
        ev.report[bit / 8] ^= 1 << (bit % 8);
        let out = v.verify(&ev, &opt);
        assert!(!out.verified(), "{case}: flip of bit {bit} accepted");
        let sig = out.check("report.signature").map(|c| c.status);
        if (0x48 * 8 + 2..0x48 * 8 + 5).contains(&bit) {
            // SIGNING_KEY changed (VCEK<->VLEK or a reserved value): the matching leaf
            // is absent, so the signature cannot be checked and the chain fails.
            assert_ne!(sig, Some(Status::Pass), "{case}: bit {bit}");
            let leaf = out.check("chain.leaf").map(|c| c.status);
            let sk = out.check("report.signing_key").map(|c| c.status);
            assert!(
                leaf == Some(Status::Fail) || sk == Some(Status::Fail),
                "{case}: bit {bit}"
            );
        } else {
            assert_eq!(
                sig,
                Some(Status::Fail),
                "{case}: flip of bit {bit} did not fail the signature"
            );
        }
        total += 1;
    }
    total
}
