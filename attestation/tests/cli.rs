//! The vigil-verify binary: exit codes, JSON schema, input forms, batch, and KDS fetching
//! against a local HTTP server on 127.0.0.1 (never the real KDS).

mod common;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use attestation::certs::parse_blob;
use attestation::kds::Kds;
use attestation::product::Product;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vigil-verify");

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .env_remove("VIGIL_KDS_URL")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-verify-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const AT: &str = "2026-03-01T00:00:00Z";

#[test]
fn exit_codes_and_json_schema() {
    let g = format!("{SNP}/genoa-v3");
    let (c, out, _) = run(&[
        &format!("{g}/report.bin"),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
    ]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("verdict: VERIFIED"));
    let (c, out, _) = run(&[
        &format!("{g}/report.bin"),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(c, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["schema"], "vigil-verify/1");
    assert_eq!(j["verdict"], "verified");
    assert_eq!(j["results"][0]["product"], "Genoa");
    assert_eq!(j["results"][0]["claims"]["version"], 3);
    assert!(j["results"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "report.signature" && c["status"] == "pass"));
    // Rejected: one flipped bit.
    let d = tmp("flip");
    let mut rep = read(&format!("{g}/report.bin"));
    rep[0x90] ^= 1;
    std::fs::write(d.join("r.bin"), &rep).unwrap();
    let (c, out, _) = run(&[
        d.join("r.bin").to_str().unwrap(),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
    ]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("FAIL  report.signature"));
    // A missing file is the environment's failure (3); a bad policy, a garbage
    // certificate and a bad --at are usage errors (2).
    assert_eq!(run(&["/nonexistent/report.bin", "--offline"]).0, 3);
    std::fs::write(d.join("p.toml"), "min_guest_svn = \"x\"").unwrap();
    let (c, _, err) = run(&[
        &format!("{g}/report.bin"),
        "--certs",
        &g,
        "--offline",
        "--policy",
        d.join("p.toml").to_str().unwrap(),
    ]);
    assert_eq!(c, 2);
    assert!(err.contains("min_guest_svn"), "{err}");
    let gd = tmp("garbage");
    std::fs::write(
        gd.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (c, _, err) = run(&[
        &format!("{g}/report.bin"),
        "--certs",
        gd.to_str().unwrap(),
        "--offline",
    ]);
    assert_eq!(c, 2);
    assert!(err.contains("junk.pem"), "{err}");
    assert_eq!(
        run(&[&format!("{g}/report.bin"), "--at", "yesterday", "--offline"]).0,
        2
    );
    assert_eq!(run(&["--bogus-flag"]).0, 2);
}

#[test]
fn hex_base64_batch_and_test_root() {
    let g = format!("{SNP}/genoa-v3");
    let d = tmp("forms");
    let rep = read(&format!("{g}/report.bin"));
    std::fs::write(d.join("r.hex"), hex::encode(&rep)).unwrap();
    use base64::Engine;
    std::fs::write(
        d.join("r.b64"),
        base64::engine::general_purpose::STANDARD.encode(&rep),
    )
    .unwrap();
    let mut bad = rep.clone();
    bad[0x50] ^= 0x80;
    std::fs::write(d.join("bad.bin"), &bad).unwrap();
    let (c, out, _) = run(&[
        d.join("r.hex").to_str().unwrap(),
        d.join("r.b64").to_str().unwrap(),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
    ]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("batch: 2 of 2 verified"));
    let (c, out, _) = run(&[
        d.join("r.hex").to_str().unwrap(),
        d.join("bad.bin").to_str().unwrap(),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(c, 1);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["results"].as_array().unwrap().len(), 2);
    assert_eq!(j["results"][1]["verdict"], "rejected");
    // Vigil's test chain: refused without the flag, accepted loudly with it.
    let mut r = test_report();
    std::fs::write(d.join("t.bin"), sign(&mut r, &vcek_key())).unwrap();
    let t = d.join("t.bin");
    let (c, out, _) = run(&[
        t.to_str().unwrap(),
        "--vcek",
        &format!("{ROOT}/vcek.pem"),
        "--offline",
    ]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("--allow-test-root"));
    let (c, out, err) = run(&[
        t.to_str().unwrap(),
        "--vcek",
        &format!("{ROOT}/vcek.pem"),
        "--offline",
        "--allow-test-root",
    ]);
    assert_eq!(c, 0, "{out}");
    assert!(
        err.contains("WARNING")
            && out.contains("WARNING")
            && out.contains("NOT come from AMD hardware")
    );
    // The test-root folder itself: README and private keys are named and skipped.
    let (c, out, err) = run(&[
        t.to_str().unwrap(),
        "--certs",
        ROOT,
        "--offline",
        "--allow-test-root",
    ]);
    assert_eq!(c, 0, "{out}");
    assert!(
        err.contains("skipped")
            && err.contains("vcek-key.pk8.der: private key")
            && err.contains("README.md"),
        "{err}"
    );
}

#[test]
fn configfs_tsm_folder_with_certificate_table() {
    let g = format!("{SNP}/genoa-v3");
    let d = tmp("tsm");
    std::fs::copy(format!("{g}/report.bin"), d.join("outblob")).unwrap();
    let vcek = parse_blob(&read(&format!("{g}/vcek.pem")), "v")
        .unwrap()
        .remove(0)
        .der;
    // Table: VCEK entry, terminator, then the certificate.
    let mut t = Vec::new();
    t.extend_from_slice(&attestation::inputs::TABLE_GUIDS[0].1);
    t.extend_from_slice(&48u32.to_le_bytes());
    t.extend_from_slice(&(vcek.len() as u32).to_le_bytes());
    t.extend_from_slice(&[0; 24]);
    t.extend_from_slice(&vcek);
    std::fs::write(d.join("auxblob"), &t).unwrap();
    let (c, out, _) = run(&[d.to_str().unwrap(), "--offline", "--at", AT]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("auxblob:VCEK"));
}

/// A tiny KDS on 127.0.0.1: serves the given paths; answers the first request with 429.
fn kds_server(routes: Vec<(String, Vec<u8>)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for (i, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut line = String::new();
            let mut rd = BufReader::new(conn.try_clone().unwrap());
            if rd.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            s2.lock().unwrap().push(path.clone());
            let resp = if i == 0 {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            } else if let Some((_, body)) = routes.iter().find(|(p, _)| *p == path) {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = conn.write_all(&resp);
        }
    });
    (url, seen)
}

#[test]
fn fetches_from_a_local_kds_with_429_retry_and_cache() {
    let g = format!("{SNP}/genoa-v3");
    let rep = read(&format!("{g}/report.bin"));
    let vcek = parse_blob(&read(&format!("{g}/vcek.pem")), "v")
        .unwrap()
        .remove(0)
        .der;
    let chip = hex::encode(&rep[0x1A0..0x1E0]);
    let vpath = format!("/vcek/v1/Genoa/{chip}?blSPL=10&teeSPL=0&snpSPL=23&ucodeSPL=84");
    let mut chain = read(&format!("{g}/ask.pem"));
    chain.extend_from_slice(&read(&format!("{SNP}/roots/genoa_ark.pem")));
    let (url, seen) = kds_server(vec![
        (vpath.clone(), vcek),
        ("/vcek/v1/Genoa/cert_chain".into(), chain),
    ]);
    let cache = tmp("cache");
    let args = [
        &format!("{g}/report.bin") as &str,
        "--kds-url",
        &url,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--at",
        AT,
    ];
    let (c, out, err) = run(&args);
    assert_eq!(c, 0, "{out}\n{err}");
    assert!(out.contains("KDS/vcek/v1/Genoa/"), "{out}");
    let first: Vec<String> = seen.lock().unwrap().clone();
    assert_eq!(first[0], vpath, "first request (answered 429)");
    assert_eq!(first[1], vpath, "retried after 429");
    assert!(first.iter().any(|p| p == "/vcek/v1/Genoa/cert_chain"));
    // Second run: everything from the cache, no request.
    let (c, _, _) = run(&args);
    assert_eq!(c, 0);
    assert_eq!(seen.lock().unwrap().len(), first.len());
    // --offline with no certificates: a named chain failure, no request.
    let (c, out, _) = run(&[
        &format!("{g}/report.bin"),
        "--offline",
        "--kds-url",
        &url,
        "--at",
        AT,
    ]);
    assert_eq!(c, 1);
    assert!(out.contains("FAIL  chain.leaf"));
    assert_eq!(seen.lock().unwrap().len(), first.len());
}

#[test]
fn turin_kds_url_uses_fmc_spl_and_eight_byte_hwid() {
    let rep = read(&format!("{SNP}/turin-v5/report.bin"));
    let r = attestation::report::Report::from_bytes(&rep).unwrap();
    let tcb = Product::Turin.tcb_layout().decode(r.r.reported_tcb);
    assert_eq!(
        Kds::vcek_path(Product::Turin, &r.r.chip_id, &tcb),
        "/vcek/v1/Turin/59790fb1c39f35c1?fmcSPL=1&blSPL=1&teeSPL=1&snpSPL=4&ucodeSPL=81"
    );
}
