//! Fuzzes vigil-verify's configfs-tsm folder input (`outblob` = report, `auxblob` =
//! certificate table, `manifestblob` = SVSM services manifest), then the whole verifier
//! on what it read, with the test chain and a nonce: no combination of the three files
//! may panic. The folder is one per process, rewritten for every input.
#![no_main]
use attestation::inputs::load_tsm;
use attestation::policy::Policy;
use attestation::report::decode_report_input;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

static STATE: OnceLock<(Verifier, PathBuf)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (v, dir) = STATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vigil-fuzz-tsm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        (Verifier::new(TrustStore::builtin().expect("built-in roots")), dir)
    });
    // Three files: two length bytes each for outblob and auxblob, the rest is the
    // manifest; a length byte with its top bit set leaves that file out.
    if data.len() < 2 {
        return;
    }
    let (a, b) = (usize::from(data[0]), usize::from(data[1]));
    let rest = &data[2..];
    let na = (a * 8).min(rest.len());
    let (out, rest) = rest.split_at(na);
    let nb = (b * 8).min(rest.len());
    let (aux, manifest) = rest.split_at(nb);
    for (name, bytes, keep) in [
        ("outblob", out, true),
        ("auxblob", aux, a & 0x80 == 0),
        ("manifestblob", manifest, b & 0x80 == 0),
    ] {
        let p = dir.join(name);
        if keep {
            std::fs::write(&p, bytes).expect("write");
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    let Ok(tsm) = load_tsm(dir) else { return };
    let Ok(report) = decode_report_input(&tsm.report) else { return };
    let ev = Evidence {
        report,
        certs: tsm.certs,
        manifest: tsm.manifest,
        nonce: Some(vec![0x11; 32]),
        ..Default::default()
    };
    let opt = Options { product: None, at: 1_772_323_200, allow_test_root: true, policy: Policy::default() };
    let _ = v.verify(&ev, &opt);
});
