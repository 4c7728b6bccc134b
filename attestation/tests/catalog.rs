//! The catalog has no dead entries: across real reports, the monitor's sim evidence
//! with reference values, and a policy that sets every field, every check of
//! `attestation::catalog::CHECKS` is emitted at least once (pass, fail or skip), so the
//! table in docs/verifier.md lists only checks that run.

mod common;
use std::collections::BTreeSet;

use attestation::catalog::CHECKS;
use attestation::certs::parse_blob;
use attestation::evidence::Refs;
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use common::*;

const EVERY_FIELD: &str = r#"
measurements = ["__48"]
host_data = "__32"
report_data = "__64"
family_id = "__16"
image_id = "__16"
report_id = "__32"
report_id_ma = "__32"
chip_id = "__64"
min_guest_svn = 1
vmpl = [0]
products = ["Genoa"]
signing_keys = ["vcek"]
vlek_csp_ids = ["x"]
allow_smt = false
allow_cxl = false
require_single_socket = true
require_aes_256_xts = true
require_rapl_disabled = true
require_ciphertext_hiding = true
require_page_swap_disabled = true
min_policy_abi = "1.51"
policy_exact = "0x30000"
min_build = 21
min_version = "1.55"
platform_required = ["SMT_EN"]
platform_forbidden = ["TSME_EN"]
launch_mit_vector_required = "0x1"
current_mit_vector_required = "0x1"
require_id_block = true
id_key_digests = ["__48"]
author_key_digests = ["__48"]
require_locked_text = true
text_digests = ["__48"]
[min_tcb.Genoa]
bl = 1
"#;

fn every_field_policy() -> Policy {
    let mut t = EVERY_FIELD.to_string();
    for n in [64, 48, 32, 16] {
        t = t.replace(&format!("__{n}"), &"00".repeat(n));
    }
    Policy::from_toml(&t).unwrap()
}

fn real(case: &str) -> Evidence {
    let dir = format!("{SNP}/{case}");
    let mut certs = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "report.bin" {
            certs.extend(parse_blob(&std::fs::read(&p).unwrap(), "c").unwrap());
        }
    }
    Evidence {
        report: read(&format!("{dir}/report.bin")),
        certs,
        ..Default::default()
    }
}

#[test]
fn every_catalog_check_is_emitted_somewhere() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let mut seen = BTreeSet::new();
    let mut run = |ev: &Evidence, policy: Policy, test_root: bool| {
        let opt = Options {
            policy,
            ..opts(test_root)
        };
        for c in v.verify(ev, &opt).checks {
            seen.insert(c.name);
        }
    };
    for case in [
        "milan-v3",
        "genoa-v3",
        "turin-v5",
        "genoa-v5",
        "milan-vlek-v3",
    ] {
        run(&real(case), Policy::default(), false);
        run(&real(case), every_field_policy(), false);
    }
    // The sim evidence with nonce, manifest, event log and reference values.
    let d = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sim-evidence");
    let f = |n: &str| read(&format!("{d}/{n}"));
    let nonce = hex::decode(String::from_utf8(f("nonce.hex")).unwrap().trim()).unwrap();
    let rep = f("report.bin");
    let refs = Refs::from_json(&format!(
        r#"{{"schema": "vigil-refs/1", "launch_digest": "{}", "policy": "0x30000", "guest_vmpl": 2}}"#,
        hex::encode(&rep[0x90..0xC0])
    ))
    .unwrap();
    let ev = Evidence {
        report: rep,
        certs: test_chain(),
        nonce: Some(nonce),
        manifest: Some(f("manifest.bin")),
        event_log: Some(f("log-full.bin")),
        refs: Some(refs),
        ..Default::default()
    };
    run(&ev, Policy::default(), true);
    let missing: Vec<&str> = CHECKS
        .iter()
        .map(|c| c.name)
        .filter(|n| !seen.contains(n))
        .collect();
    assert!(missing.is_empty(), "never emitted: {missing:?}");
}
