//! Property (issue 14, "Must show"): random bytes, random truncations and random
//! mutations of each input kind never give exit 0. The kinds: the report (a real
//! AMD-signed Genoa report), a certificate (its VCEK, DER and PEM), and the evidence
//! files (the services manifest and the event log of the monitor's sim evidence).
//!
//! Each case runs vigil-verify's whole program in-process (`app::run`, whose class is
//! the exit code `vigil-verify` returns), so that a few thousand cases fit in seconds;
//! cases are drawn from a seeded ChaCha stream, so a failure names a case that can be
//! replayed. Each kind first checks that its unchanged input verifies (exit 0), so the
//! property cannot hold vacuously.
//!
//! Not claimed, and why: a prefix of `log-full.bin` that ends where the head the
//! manifest binds ends is `log.bin`, which verifies (the ATTEST call's own record is
//! not bound, docs/protocols.md); so event-log prefixes are drawn from `log.bin`, the
//! bound records, of which every proper prefix must fail.

use std::path::{Path, PathBuf};

use attestation::app::{self, Cli};
use clap::Parser;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
const AT: &str = "2026-03-01T00:00:00Z";

fn exit_code(args: &[&str]) -> u8 {
    let mut argv = vec!["vigil-verify"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(&argv) {
        Ok(cli) => {
            app::check_partners(&cli).unwrap();
            app::run(&cli, |_, _| {}).class().exit_code()
        }
        Err(_) => 2,
    }
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-prop-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The variants of `orig` one draw gives: a random truncation, random bytes (of the
/// same length half the time), and 1 to 8 changed bytes.
fn variants(rng: &mut ChaCha8Rng, orig: &[u8]) -> [(String, Vec<u8>); 3] {
    let cut = (rng.next_u32() as usize) % orig.len();
    let len = if rng.next_u32().is_multiple_of(2) {
        orig.len()
    } else {
        (rng.next_u32() as usize) % (2 * orig.len() + 1)
    };
    let mut random = vec![0u8; len];
    rng.fill_bytes(&mut random);
    let mut mutated = orig.to_vec();
    let n = 1 + rng.next_u32() % 8;
    let mut changed = Vec::new();
    for _ in 0..n {
        let i = (rng.next_u32() as usize) % orig.len();
        let x = (rng.next_u32() as u8) | 1;
        mutated[i] ^= x;
        changed.push(i);
    }
    if mutated == orig {
        // Two changes of one byte can cancel; make sure something differs.
        mutated[changed[0]] ^= 0x80;
    }
    [
        (format!("truncated to {cut}"), orig[..cut].to_vec()),
        (format!("{len} random bytes"), random),
        (format!("bytes {changed:?} changed"), mutated),
    ]
}

/// Runs `cases` draws on the file that `args` names as `{}`, replacing it each time.
fn property(kind: &str, orig: &[u8], file: &Path, args: &[&str], cases: usize) {
    let f = file.to_str().unwrap();
    let argv: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{}" { f } else { a })
        .collect();
    std::fs::write(file, orig).unwrap();
    assert_eq!(
        exit_code(&argv),
        0,
        "{kind}: the unchanged input must verify"
    );
    let seed = kind
        .bytes()
        .fold(7u64, |a, c| a.wrapping_mul(131).wrapping_add(c.into()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..cases {
        for (what, bytes) in variants(&mut rng, orig) {
            std::fs::write(file, &bytes).unwrap();
            let code = exit_code(&argv);
            assert_ne!(code, 0, "{kind} case {i} (seed {seed}): {what} verified");
        }
    }
}

#[test]
fn random_reports_never_verify() {
    let d = tmp();
    let g = format!("{DATA}/snp/genoa-v3");
    let orig = std::fs::read(format!("{g}/report.bin")).unwrap();
    let f = d.join("report.bin");
    property(
        "report",
        &orig,
        &f,
        &["{}", "--certs", &g, "--offline", "--at", AT],
        150,
    );
    // The same as hex text.
    let f = d.join("report.hex");
    let hexed = hex::encode(&orig).into_bytes();
    property(
        "report hex",
        &hexed,
        &f,
        &["{}", "--certs", &g, "--offline", "--at", AT],
        40,
    );
}

#[test]
fn random_certificates_never_verify() {
    let d = tmp();
    let g = format!("{DATA}/snp/genoa-v3");
    let pem = std::fs::read(format!("{g}/vcek.pem")).unwrap();
    let der = attestation::certs::parse_blob(&pem, "vcek").unwrap()[0]
        .der
        .clone();
    let rep = format!("{g}/report.bin");
    let ask = format!("{g}/ask.pem");
    let args = |f: &'static str| {
        [
            rep.clone(),
            "--vcek".into(),
            f.into(),
            "--chain".into(),
            ask.clone(),
            "--offline".into(),
            "--at".into(),
            AT.into(),
        ]
    };
    let a = args("{}");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    property("vcek der", &der, &d.join("vcek.der"), &a, 150);
    property("vcek pem", &pem, &d.join("vcek.pem"), &a, 40);
}

#[test]
fn random_evidence_files_never_verify() {
    let d = tmp();
    let s = format!("{DATA}/sim-evidence");
    let nonce = std::fs::read_to_string(format!("{s}/nonce.hex")).unwrap();
    let nonce = nonce.trim().to_string();
    let rep = format!("{s}/report.bin");
    let vcek = format!("{DATA}/test-root/vcek.pem");
    let manifest = std::fs::read(format!("{s}/manifest.bin")).unwrap();
    let log = std::fs::read(format!("{s}/log.bin")).unwrap();
    let m_path = format!("{s}/manifest.bin");
    let l_path = format!("{s}/log.bin");
    let common = |m: &str, l: &str| -> Vec<String> {
        [
            &rep as &str,
            "--vcek",
            &vcek,
            "--allow-test-root",
            "--offline",
            "--nonce",
            &nonce,
            "--manifest",
            m,
            "--event-log",
            l,
        ]
        .map(String::from)
        .to_vec()
    };
    let a = common("{}", &l_path);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    property("manifest", &manifest, &d.join("manifest.bin"), &a, 120);
    let a = common(&m_path, "{}");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    property("event log", &log, &d.join("log.bin"), &a, 120);
}
