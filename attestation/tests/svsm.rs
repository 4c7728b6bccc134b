//! SVSM evidence: REPORT_DATA = SHA-512(nonce || manifest), VMPL 0, strict manifest,
//! event-log replay against the manifest's Vigil entry, reference values.

mod common;
use attestation::evidence::{parse_manifest_strict, Refs};
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Status, Verifier};
use common::*;
use svsm_abi::attest_protocol::{
    report_data, write_manifest, VigilServiceData, VIGIL_SERVICE_GUID,
};
use svsm_abi::event_log::{
    access, kind, refusal, replay, AccessRefusedPayload, LaunchPayload, RecordHeader,
};
use zerocopy::IntoBytes;

fn log() -> Vec<u8> {
    let mut out = Vec::new();
    let launch = LaunchPayload {
        svsm_base: 0x80_0000,
        svsm_size: 0x40_0000,
        guest_vmpl: 2,
        reserved: 0,
        required_sev_features: 1,
    };
    let h = RecordHeader {
        sequence: 0,
        kind: kind::LAUNCH,
        payload_len: 32,
        ..Default::default()
    };
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(launch.as_bytes());
    let h = RecordHeader {
        sequence: 1,
        kind: kind::QUERY_PROTOCOL,
        vmpl: 2,
        payload_len: 16,
        ..Default::default()
    };
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&[0; 16]);
    out
}

fn manifest_for(log: &[u8], guest_vmpl: u32) -> Vec<u8> {
    let (n, head) = replay(log, |_, _| {}).unwrap();
    let d = VigilServiceData {
        version: 1,
        guest_vmpl,
        record_count: n,
        log_head: head,
    };
    let mut buf = vec![0u8; 256];
    let size = write_manifest(
        &[(VIGIL_SERVICE_GUID, d.as_bytes()), ([7; 16], &[1, 2, 3])],
        &mut buf,
    )
    .unwrap();
    buf.truncate(size);
    buf
}

fn refs(measurement: [u8; 48], policy: u64) -> Refs {
    Refs::from_json(&format!(
        r#"{{"schema": "vigil-refs/1", "launch_digest": "{}", "policy": "0x{policy:x}", "sev_features": "0x1", "vcpus": 1, "guest_vmpl": 2, "monitor_policy_digest": "{}", "platform": "snp", "igvm_sha256": "{}", "extra": 1}}"#,
        hex::encode(measurement),
        "00".repeat(48),
        "00".repeat(32)
    ))
    .unwrap()
}

fn evidence(nonce: &[u8], manifest: &[u8], log: &[u8], vmpl: u32) -> Evidence {
    let mut r = test_report();
    r.vmpl = vmpl;
    r.measurement = [0x5a; 48];
    r.report_data = report_data(nonce, manifest);
    Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        nonce: Some(nonce.to_vec()),
        manifest: Some(manifest.to_vec()),
        event_log: Some(log.to_vec()),
        refs: Some(refs([0x5a; 48], 0x30000)),
        ..Default::default()
    }
}

#[test]
fn complete_svsm_evidence_verifies() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let l = log();
    let m = manifest_for(&l, 2);
    let o = v.verify(&evidence(b"nonce-123", &m, &l, 0), &opts(true));
    for c in &o.checks {
        assert_ne!(c.status, Status::Fail, "{}: {}", c.name, c.detail);
    }
    for n in [
        "svsm.report_data",
        "svsm.vmpl",
        "svsm.manifest",
        "svsm.event_log",
        "refs.measurement",
        "refs.policy",
        "refs.guest_vmpl",
    ] {
        assert_eq!(o.check(n).unwrap().status, Status::Pass, "{n}");
    }
}

#[test]
fn each_tampering_fails_its_named_check() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let l = log();
    let m = manifest_for(&l, 2);
    let fail = |ev: &Evidence, n: &str| {
        let o = v.verify(ev, &opts(true));
        assert_eq!(
            o.check(n).unwrap().status,
            Status::Fail,
            "{n}: {:?}",
            o.check(n)
        );
        assert!(!o.verified());
    };
    // Another nonce than the one the report binds.
    let mut ev = evidence(b"nonce-123", &m, &l, 0);
    ev.nonce = Some(b"nonce-124".to_vec());
    fail(&ev, "svsm.report_data");
    // A report from VMPL 1 is not the SVSM's.
    fail(&evidence(b"n", &m, &l, 1), "svsm.vmpl");
    // A changed log record (the manifest binds the old head).
    let mut l2 = l.clone();
    l2[24] ^= 1;
    fail(&evidence(b"n", &m, &l2, 0), "svsm.event_log");
    // A truncated log.
    fail(&evidence(b"n", &m, &l[..l.len() - 16], 0), "svsm.event_log");
    // Reference values that do not match.
    let mut ev = evidence(b"n", &m, &l, 0);
    ev.refs = Some(refs([0x5b; 48], 0x30000));
    fail(&ev, "refs.measurement");
    ev.refs = Some(refs([0x5a; 48], 0x30001));
    fail(&ev, "refs.policy");
    let m3 = manifest_for(&l, 3);
    fail(&evidence(b"n", &m3, &l, 0), "refs.guest_vmpl");
}

#[test]
fn manifest_is_parsed_strictly() {
    let l = log();
    let m = manifest_for(&l, 2);
    assert!(parse_manifest_strict(&m).unwrap().vigil.is_some());
    // Trailing byte (with the header size adjusted so the ABI parser accepts the size).
    let mut t = m.clone();
    t.push(0);
    let n = t.len() as u32;
    t[16..20].copy_from_slice(&n.to_le_bytes());
    assert!(parse_manifest_strict(&t)
        .unwrap_err()
        .to_string()
        .contains("trailing"));
    // Truncation.
    for cut in 0..m.len() {
        assert!(parse_manifest_strict(&m[..cut]).is_err(), "cut {cut}");
    }
    // Bad GUID.
    let mut g = m.clone();
    g[0] ^= 1;
    assert!(parse_manifest_strict(&g).is_err());
    // Overlapping entries: point the second entry at the first one's data.
    let mut o = m.clone();
    let first_off = u32::from_le_bytes(o[24 + 16..24 + 20].try_into().unwrap());
    o[48 + 16..48 + 20].copy_from_slice(&first_off.to_le_bytes());
    assert!(parse_manifest_strict(&o).is_err());
    // Vigil entry of the wrong version.
    let mut w = m.clone();
    let off = first_off as usize;
    w[off] = 2;
    assert!(parse_manifest_strict(&w)
        .unwrap_err()
        .to_string()
        .contains("version"));
}

#[test]
fn native_refs_have_no_launch_digest_and_snp_refs_must() {
    let native = r#"{"schema": "vigil-refs/1", "launch_digest": "", "policy": "0x30000", "platform": "native"}"#;
    let r = Refs::from_json(native).unwrap();
    let snp = native.replace("native", "snp");
    assert!(Refs::from_json(&snp)
        .unwrap_err()
        .to_string()
        .contains("launch_digest"));
    assert!(Refs::from_json(&native.replace("vigil-refs/1", "vigil-refs/2")).is_err());
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let l = log();
    let m = manifest_for(&l, 2);
    let mut ev = evidence(b"n", &m, &l, 0);
    ev.refs = Some(r);
    let o = v.verify(&ev, &opts(true));
    assert_eq!(o.check("refs.measurement").unwrap().status, Status::Skip);
    // The native platform's POLICY is the software security processor's constant: not
    // compared, and said so.
    let c = o.check("refs.policy").unwrap();
    assert_eq!(c.status, Status::Skip);
    assert!(c.detail.contains("compared on SNP only"), "{}", c.detail);
}

#[test]
fn snp_refs_without_a_policy_are_refused_and_soft_platform_refs_may_omit_it() {
    let d = "ab".repeat(48);
    for platform in [r#", "platform": "snp""#, ""] {
        let j = format!(r#"{{"schema": "vigil-refs/1", "launch_digest": "{d}"{platform}}}"#);
        let e = Refs::from_json(&j).unwrap_err().to_string();
        assert!(e.contains("\"policy\" is missing"), "{platform:?}: {e}");
    }
    for platform in ["native", "emulated"] {
        let j = format!(
            r#"{{"schema": "vigil-refs/1", "launch_digest": "{d}", "platform": "{platform}"}}"#
        );
        let r = Refs::from_json(&j).unwrap();
        assert!(r.policy.is_none() && r.is_soft_platform(), "{platform}");
    }
    // A policy given is still validated, on every platform.
    let j = format!(
        r#"{{"schema": "vigil-refs/1", "launch_digest": "{d}", "policy": "0xzz", "platform": "emulated"}}"#
    );
    assert!(Refs::from_json(&j)
        .unwrap_err()
        .to_string()
        .contains("policy"));
}

/// Evidence written by the monitor's simulated machine (testdata/sim-evidence/README.md).
#[test]
fn evidence_from_the_monitor_sim_verifies_with_both_logs() {
    let d = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sim-evidence");
    let f = |n: &str| read(&format!("{d}/{n}"));
    let nonce = hex::decode(String::from_utf8(f("nonce.hex")).unwrap().trim()).unwrap();
    let v = Verifier::new(TrustStore::builtin().unwrap());
    for log in ["log.bin", "log-full.bin"] {
        let ev = Evidence {
            report: f("report.bin"),
            certs: test_chain(),
            nonce: Some(nonce.clone()),
            manifest: Some(f("manifest.bin")),
            event_log: Some(f(log)),
            ..Default::default()
        };
        let o = v.verify(&ev, &opts(true));
        for c in &o.checks {
            assert_ne!(c.status, Status::Fail, "{log}: {}: {}", c.name, c.detail);
        }
        assert!(o.verified() && o.test_root);
        assert_eq!(o.check("svsm.event_log").unwrap().status, Status::Pass);
    }
    // The ATTEST record after the bound head must carry this report's REPORT_DATA.
    let mut full = f("log-full.bin");
    let n = full.len();
    full[n - 1] ^= 1;
    let ev = Evidence {
        report: f("report.bin"),
        certs: test_chain(),
        nonce: Some(nonce),
        manifest: Some(f("manifest.bin")),
        event_log: Some(full),
        ..Default::default()
    };
    assert_eq!(
        v.verify(&ev, &opts(true))
            .check("svsm.event_log")
            .unwrap()
            .status,
        Status::Fail
    );
}

/// `log()` plus one ACCESS_REFUSED record (a write by vCPU 1 to a VMSA page, refused
/// with #PF(RMP) error code 0x8000_0003).
fn log_with_refused_access() -> Vec<u8> {
    let mut out = log();
    let p = AccessRefusedPayload {
        gpa: 0x10_0178,
        apic_id: 1,
        access: access::WRITE,
        reason: refusal::VMSA,
        reserved: 0,
    };
    let h = RecordHeader {
        sequence: 2,
        kind: kind::ACCESS_REFUSED,
        vmpl: 2,
        apic_id: 1,
        payload_len: 24,
        result: 0x8000_0003,
        ..Default::default()
    };
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(p.as_bytes());
    out
}

#[test]
fn log_with_a_refused_access_replays_to_the_manifest_head() {
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let l = log_with_refused_access();
    let (n, head) = replay(&l, |_, _| {}).unwrap();
    assert_eq!(n, 3);
    assert_ne!(head, replay(&log(), |_, _| {}).unwrap().1);
    let m = manifest_for(&l, 2);
    let o = v.verify(&evidence(b"nonce-9", &m, &l, 0), &opts(true));
    let c = o.check("svsm.event_log").unwrap();
    assert_eq!(c.status, Status::Pass, "{}", c.detail);
    assert!(
        c.detail.contains("replayed 3 records")
            && c.detail.contains("1 refused guest access(es) bound"),
        "{}",
        c.detail
    );
    assert!(o.verified());
    // A log without refused accesses says so.
    let l0 = log();
    let o = v.verify(
        &evidence(b"nonce-9", &manifest_for(&l0, 2), &l0, 0),
        &opts(true),
    );
    assert!(o
        .check("svsm.event_log")
        .unwrap()
        .detail
        .contains("0 refused guest access(es) bound"));
    // The record is bound: changing its reason (payload offset 0x10) breaks the head.
    let mut t = l.clone();
    let reason_at = l.len() - 24 + 0x10;
    t[reason_at] = refusal::VIGIL_MEMORY as u8;
    let o = v.verify(&evidence(b"nonce-9", &m, &t, 0), &opts(true));
    assert_eq!(o.check("svsm.event_log").unwrap().status, Status::Fail);
    assert!(!o.verified());
    // Dropping it is a log the manifest does not bind either.
    let o = v.verify(&evidence(b"nonce-9", &m, &log(), 0), &opts(true));
    assert_eq!(o.check("svsm.event_log").unwrap().status, Status::Fail);
}

/// Every refs field that is read is validated at load (issue: parsed fields are
/// checked), and the three the evidence cannot carry are reported as skips naming the
/// refs' value, never as passes.
#[test]
fn refs_fields_are_validated_and_uncarried_ones_are_named_skips() {
    let good = |d: &str, i: &str, v: &str, g: &str, p: &str| {
        format!(
            r#"{{"schema": "vigil-refs/1", "launch_digest": "{}", "policy": "0x30000", "vcpus": {v}, "guest_vmpl": {g}, "monitor_policy_digest": "{d}", "platform": "{p}", "igvm_sha256": "{i}"}}"#,
            "ab".repeat(48)
        )
    };
    let (d48, d32) = ("cd".repeat(48), "ef".repeat(32));
    assert!(Refs::from_json(&good(&d48, &d32, "2", "2", "snp")).is_ok());
    for (json, field) in [
        (good(&d48, &d32, "0", "2", "snp"), "vcpus"),
        (good(&d48, &d32, "4097", "2", "snp"), "vcpus"),
        (good(&d48, &d32, "2", "0", "snp"), "guest_vmpl"),
        (good(&d48, &d32, "2", "4", "snp"), "guest_vmpl"),
        (
            good(&"cd".repeat(32), &d32, "2", "2", "snp"),
            "monitor_policy_digest",
        ),
        (good(&d48, "zz", "2", "2", "snp"), "igvm_sha256"),
        (good(&d48, &d32, "2", "2", "tdx"), "platform"),
    ] {
        let e = Refs::from_json(&json).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
    let v = Verifier::new(TrustStore::builtin().unwrap());
    let l = log();
    let m = manifest_for(&l, 2);
    let ev = evidence(b"n", &m, &l, 0);
    let o = v.verify(&ev, &opts(true));
    for (name, shows) in [
        ("refs.vcpus", "1 vCPU(s)"),
        ("refs.monitor_policy", &"00".repeat(48)[..]),
        ("refs.igvm_file", &"00".repeat(32)[..]),
    ] {
        let c = o.check(name).unwrap();
        assert_eq!(c.status, Status::Skip, "{name}");
        assert!(c.detail.contains(shows), "{name}: {}", c.detail);
    }
}
