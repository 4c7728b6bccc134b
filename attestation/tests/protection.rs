//! The protection record in the attested event log (Vigil protection protocol): the
//! verifier replays PROTECT_* records among those the head binds, names the locked
//! ranges and the text digest, refuses lock records Vigil could not have written, and
//! the policy options `require_locked_text` and `text_digests` fail a report whose
//! guest never locked or locked other text.
mod common;
use attestation::policy::{Policy, PolicyError};
use attestation::protection::{replay, ProtectionError};
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Status, Verifier};
use common::*;
use svsm_abi::attest_protocol::{
    report_data, write_manifest, VigilServiceData, VIGIL_SERVICE_GUID,
};
use svsm_abi::event_log::{kind, ProtectLockPayload, ProtectRefusedPayload, RecordHeader};
use svsm_abi::protect_protocol::{range_kind, RangeEntry};
use zerocopy::{FromZeros, IntoBytes};

const DIGEST: [u8; 48] = [0xab; 48];

struct Log(Vec<u8>, u64);

impl Log {
    fn new() -> Self {
        let mut l = Log(Vec::new(), 0);
        l.push(kind::LAUNCH, 0, &[0u8; 32]);
        l
    }
    fn push(&mut self, k: u16, result: u32, payload: &[u8]) {
        let h = RecordHeader {
            sequence: self.1,
            kind: k,
            vmpl: 2,
            payload_len: payload.len() as u32,
            result,
            ..Default::default()
        };
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(payload);
        self.1 += 1;
    }
    fn lock(&mut self, p: &ProtectLockPayload, result: u32) {
        self.push(kind::PROTECT_LOCK, result, p.as_bytes());
    }
}

fn lock_payload() -> ProtectLockPayload {
    let mut p = ProtectLockPayload::new_zeroed();
    p.text_digest = DIGEST;
    p.range_count = 2;
    p.text_pages = 4;
    p.rodata_pages = 2;
    p.ranges[0] = RangeEntry {
        gpa: 0x10_0000,
        pages: 4,
        kind: range_kind::TEXT,
    };
    p.ranges[1] = RangeEntry {
        gpa: 0x20_0000,
        pages: 2,
        kind: range_kind::RODATA,
    };
    p
}

fn manifest(log: &[u8], count: u64) -> Vec<u8> {
    let mut head = svsm_abi::event_log::H0;
    let mut i = 0;
    svsm_abi::event_log::replay(log, |h, p| {
        if i < count {
            let mut rec = h.as_bytes().to_vec();
            rec.extend_from_slice(p);
            head = svsm_abi::event_log::extend(&head, &rec);
        }
        i += 1;
    })
    .unwrap();
    let d = VigilServiceData {
        version: 1,
        guest_vmpl: 2,
        record_count: count,
        log_head: head,
    };
    let mut buf = vec![0u8; 256];
    let n = write_manifest(&[(VIGIL_SERVICE_GUID, d.as_bytes())], &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn verify(log: Option<&Log>, policy: &str) -> attestation::verify::Outcome {
    verify_bound(log, log.map_or(1, |l| l.1), policy)
}

/// Verifies with a manifest whose head binds the first `bound` records.
fn verify_bound(log: Option<&Log>, bound: u64, policy: &str) -> attestation::verify::Outcome {
    let mut r = test_report();
    r.vmpl = 0;
    let (m, l) = match log {
        Some(l) => (manifest(&l.0, bound), Some(l.0.clone())),
        None => (manifest(&Log::new().0, bound), None),
    };
    r.report_data = report_data(b"n", &m);
    let ev = Evidence {
        report: sign(&mut r, &vcek_key()),
        certs: test_chain(),
        nonce: Some(b"n".to_vec()),
        manifest: Some(m),
        event_log: l,
        ..Default::default()
    };
    let opt = Options {
        policy: Policy::from_toml(policy).unwrap(),
        ..opts(true)
    };
    Verifier::new(TrustStore::builtin().unwrap()).verify(&ev, &opt)
}

fn status(o: &attestation::verify::Outcome, n: &str) -> (Status, String) {
    let c = o.check(n).unwrap();
    (c.status, c.detail.clone())
}

#[test]
fn a_locked_guest_shows_its_ranges_and_text_digest() {
    let mut l = Log::new();
    l.push(kind::PROTECT_DECLARE, 0, &[0u8; 64]);
    l.lock(&lock_payload(), 0);
    let refused = ProtectRefusedPayload {
        call: 3,
        locked: 1,
        ..Default::default()
    };
    l.push(kind::PROTECT_REFUSED, 0x8000_0006, refused.as_bytes());
    let o = verify(Some(&l), "");
    let (s, d) = status(&o, "svsm.protection");
    assert_eq!(s, Status::Pass, "{d}");
    assert!(d.contains("locked at record 2"), "{d}");
    assert!(d.contains("text 0x100000-0x104000, 4 page(s)"), "{d}");
    assert!(d.contains("rodata 0x200000-0x202000, 2 page(s)"), "{d}");
    assert!(d.contains(&hex::encode(DIGEST)), "{d}");
    assert!(d.contains("1 refused protection request(s)"), "{d}");
    // The same detail goes into --json's "checks" (schema vigil-verify/1).
    let j = serde_json::to_string(&o.checks).unwrap();
    assert!(j.contains(&hex::encode(DIGEST)));
}

#[test]
fn require_locked_text_fails_a_guest_that_never_locked() {
    let mut l = Log::new();
    l.push(kind::PROTECT_DECLARE, 0, &[0u8; 64]);
    let mut failed = ProtectLockPayload::new_zeroed();
    failed.range_count = 0;
    l.lock(&failed, 0x8000_0006);
    let o = verify(Some(&l), "require_locked_text = true");
    assert!(status(&o, "svsm.protection").1.contains("never locked"));
    let (s, d) = status(&o, "policy.locked_text");
    assert_eq!(s, Status::Fail, "{d}");
    assert!(!o.verified());
    // Locked: passes.
    let mut l = Log::new();
    l.lock(&lock_payload(), 0);
    let o = verify(Some(&l), "require_locked_text = true");
    assert_eq!(status(&o, "policy.locked_text").0, Status::Pass);
    assert!(o.verified());
    // Not asked for: no such check.
    assert!(verify(Some(&l), "").check("policy.locked_text").is_none());
}

#[test]
fn a_lock_after_the_bound_head_does_not_count() {
    let mut l = Log::new();
    let bound = l.1;
    l.lock(&lock_payload(), 0);
    assert!(replay(&l.0, bound).unwrap().lock.is_none());
    assert!(replay(&l.0, bound + 1).unwrap().lock.is_some());
    // Through the verifier: the head binds record 0 only and record 1 is no ATTEST
    // record, so the log fails, the protection is not read, the requirement fails.
    let o = verify_bound(Some(&l), bound, "require_locked_text = true");
    assert_eq!(status(&o, "svsm.event_log").0, Status::Fail);
    assert_eq!(status(&o, "svsm.protection").0, Status::Skip);
    assert_eq!(status(&o, "policy.locked_text").0, Status::Fail);
    // No event log at all: the same.
    let o = verify(None, "require_locked_text = true");
    assert_eq!(status(&o, "policy.locked_text").0, Status::Fail);
}

#[test]
fn text_digests_fail_other_text_and_an_unlocked_guest() {
    let mut l = Log::new();
    l.lock(&lock_payload(), 0);
    let other = format!("text_digests = [\"{}\"]", "cd".repeat(48));
    let o = verify(Some(&l), &other);
    let (s, d) = status(&o, "policy.text_digest");
    assert_eq!(s, Status::Fail);
    assert!(d.contains(&hex::encode(DIGEST)), "{d}");
    let same = format!(
        "text_digests = [\"{}\", \"{}\"]",
        "cd".repeat(48),
        "AB".repeat(48)
    );
    assert_eq!(
        status(&verify(Some(&l), &same), "policy.text_digest").0,
        Status::Pass
    );
    let o = verify(Some(&Log::new()), &same);
    assert_eq!(status(&o, "policy.text_digest").0, Status::Fail);
}

/// A change to a valid lock payload.
type Mutation = Box<dyn Fn(&mut ProtectLockPayload)>;

#[test]
fn lock_records_vigil_never_writes_are_refused_with_record_and_field() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("range_count", Box::new(|p| p.range_count = 17)),
        ("range_count", Box::new(|p| p.range_count = 0)),
        ("ranges", Box::new(|p| p.ranges[5].pages = 1)),
        ("ranges", Box::new(|p| p.ranges.swap(0, 1))),
        ("ranges", Box::new(|p| p.ranges[1].gpa = 0x10_2000)),
        ("ranges", Box::new(|p| p.ranges[0].kind = 3)),
        ("ranges", Box::new(|p| p.ranges[0].gpa = 0x10_0008)),
        ("text_pages", Box::new(|p| p.text_pages = 5)),
        ("rodata_pages", Box::new(|p| p.rodata_pages = 0)),
        (
            "text_pages",
            Box::new(|p| {
                p.ranges[0].kind = range_kind::RODATA;
                p.text_pages = 0;
                p.rodata_pages = 6;
            }),
        ),
    ];
    for (field, f) in cases {
        let mut p = lock_payload();
        f(&mut p);
        let mut l = Log::new();
        l.lock(&p, 0);
        match replay(&l.0, l.1) {
            Err(ProtectionError::BadLock {
                record: 1,
                offset: 56,
                field: got,
                ..
            }) => {
                assert_eq!(got, field)
            }
            other => panic!("{field}: {other:?}"),
        }
        let o = verify(Some(&l), "require_locked_text = true");
        assert_eq!(status(&o, "svsm.protection").0, Status::Fail, "{field}");
        assert_eq!(status(&o, "policy.locked_text").0, Status::Fail, "{field}");
    }
    // Two successful locks.
    let mut l = Log::new();
    l.lock(&lock_payload(), 0);
    l.lock(&lock_payload(), 0);
    let e = replay(&l.0, l.1).unwrap_err();
    assert_eq!(
        e,
        ProtectionError::SecondLock {
            record: 2,
            offset: 56 + 24 + 320,
            first: 1
        }
    );
    assert!(e.to_string().contains("record 2 at log offset 400"));
}

#[test]
fn text_digests_in_the_policy_are_96_hex_digits() {
    let e = Policy::from_toml("text_digests = [\"abcd\"]").unwrap_err();
    assert!(
        matches!(e, PolicyError::Length { ref field, got: 2, want: 48 } if field == "text_digests"),
        "{e:?}"
    );
    let e = Policy::from_toml(&format!("text_digests = [\"{}\"]", "zz".repeat(48))).unwrap_err();
    assert!(e.to_string().contains("text_digests"), "{e}");
    assert!(Policy::from_toml("require_locked_text = 1").is_err());
}

/// Evidence of a protected guest written by the monitor's simulated machine
/// (testdata/sim-evidence-protect/README.md): the verifier reads the lock Vigil wrote,
/// and the text digest equals the one computed apart from Vigil (Python hashlib over the
/// pages the README describes).
#[test]
fn evidence_of_a_protected_sim_guest_names_its_lock() {
    const WANT: &str = "1a107639256a0de851c68bf1bb215196c81408d103ac8ee01b70a407db7d2364d13137d0c34c9fb8e2b8d15085d41f03";
    let d = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sim-evidence-protect");
    let f = |n: &str| read(&format!("{d}/{n}"));
    let nonce = hex::decode(String::from_utf8(f("nonce.hex")).unwrap().trim()).unwrap();
    for log in ["log.bin", "log-full.bin"] {
        let ev = Evidence {
            report: f("report.bin"),
            certs: test_chain(),
            nonce: Some(nonce.clone()),
            manifest: Some(f("manifest.bin")),
            event_log: Some(f(log)),
            ..Default::default()
        };
        let policy = format!("require_locked_text = true\ntext_digests = [\"{WANT}\"]");
        let opt = Options {
            policy: Policy::from_toml(&policy).unwrap(),
            ..opts(true)
        };
        let o = Verifier::new(TrustStore::builtin().unwrap()).verify(&ev, &opt);
        for c in &o.checks {
            assert_ne!(c.status, Status::Fail, "{log}: {}: {}", c.name, c.detail);
        }
        let (s, d) = status(&o, "svsm.protection");
        assert_eq!(s, Status::Pass);
        assert!(
            d.contains("text 0x30000-0x34000, 4 page(s); rodata 0x40000-0x42000, 2 page(s)"),
            "{d}"
        );
        assert!(d.contains(WANT), "{d}");
        assert_eq!(status(&o, "policy.text_digest").0, Status::Pass);
    }
}
