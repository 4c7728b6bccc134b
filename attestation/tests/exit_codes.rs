//! vigil-verify as its users meet it (issue 14): every row of docs/verifier.md's
//! exit-code table, the messages that name what is wrong, bounded reads on every input
//! option, a JSON document on every exit, one result per input of a batch, a closed
//! pipe, the measured values in text output, and the help texts.

mod common;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The binary under test; `VIGIL_VERIFY_BIN` points these tests at another build
/// (for example one from before a fix, to see them fail).
fn bin() -> String {
    std::env::var("VIGIL_VERIFY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vigil-verify").into())
}
const AT: &str = "2026-03-01T00:00:00Z";

struct Out {
    code: i32,
    out: String,
    err: String,
}

fn run(args: &[&str]) -> Out {
    let o = Command::new(bin())
        .args(args)
        .env_remove("VIGIL_KDS_URL")
        .env("VIGIL_KDS_CACHE", tmp("no-cache"))
        .output()
        .unwrap();
    let r = Out {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into(),
        err: String::from_utf8_lossy(&o.stderr).into(),
    };
    assert!(!r.err.contains("panicked"), "{args:?}: {}", r.err);
    r
}

/// Runs with `--json` added and checks the document is there with the same exit code.
fn run_json(args: &[&str]) -> (Out, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let o = run(&a);
    let j: serde_json::Value = serde_json::from_str(&o.out)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON on exit {}: {e}\n{}", o.code, o.out));
    assert_eq!(j["schema"], "vigil-verify/1", "{args:?}");
    assert_eq!(j["exit_code"], o.code, "{args:?}");
    (o, j)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-exit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn genoa() -> (String, String) {
    let g = format!("{SNP}/genoa-v3");
    (format!("{g}/report.bin"), g)
}

/// A usage error: exit 2, a message containing `want`, and the JSON says so.
fn usage(args: &[&str], want: &str) {
    let o = run(args);
    assert_eq!(o.code, 2, "{args:?}\n{}\n{}", o.out, o.err);
    assert!(o.err.contains(want), "{args:?}: {want:?} not in {}", o.err);
    let (_, j) = run_json(args);
    assert_eq!(j["verdict"], "error", "{args:?}");
    assert_eq!(j["error"]["class"], "usage", "{args:?}");
    assert!(
        j["error"]["message"].as_str().unwrap().contains(want),
        "{args:?}: {}",
        j["error"]["message"]
    );
}

#[test]
fn usage_errors_exit_2_with_a_message_naming_the_problem() {
    let (rep, g) = genoa();
    let d = tmp("usage");
    std::fs::write(d.join("m.bin"), [0u8; 8]).unwrap();
    let m = d.join("m.bin");
    let m = m.to_str().unwrap();
    // Flags without their partner, and conflicting flags.
    usage(
        &[&rep, "--offline", "--nonce", "00"],
        "--nonce needs --manifest",
    );
    usage(&[&rep, "--offline", "--manifest", m], "--nonce");
    usage(&[&rep, "--offline", "--event-log", m], "--nonce");
    usage(&[&rep, "--offline", "--fetch-crl"], "--offline");
    usage(&[&rep, "--crl", m, "--fetch-crl"], "--crl");
    // Malformed values.
    usage(&[&rep, "--kds-url", "kdsintf.amd.com"], "http");
    usage(&[&rep, "--kds-url", "http://host/a b"], "whitespace");
    usage(&[&rep, "--offline", "--at", "yesterday"], "RFC 3339");
    usage(&[&rep, "--offline", "--product", "Naples"], "Naples");
    usage(
        &[&rep, "--offline", "--nonce", "xyz", "--manifest", m],
        "not hex",
    );
    usage(&["--bogus-flag"], "--bogus-flag");
    // A file that is not what its option says.
    usage(
        &[&rep, "--offline", "--vcek", &format!("{g}/ask.pem")],
        "holds an ASK",
    );
    usage(
        &[&rep, "--offline", "--chain", &format!("{g}/vcek.pem")],
        "holds a VCEK",
    );
    usage(
        &[&rep, "--offline", "--crl", &format!("{g}/vcek.pem")],
        "not a CRL",
    );
    std::fs::write(d.join("p.toml"), "min_guest_sv = 3").unwrap();
    usage(
        &[
            &rep,
            "--offline",
            "--policy",
            d.join("p.toml").to_str().unwrap(),
        ],
        "min_guest_sv",
    );
}

#[test]
fn a_configfs_tsm_folder_carries_the_manifest_for_nonce() {
    let (rep, g) = genoa();
    let d = tmp("tsm-nonce");
    std::fs::copy(&rep, d.join("outblob")).unwrap();
    std::fs::write(d.join("manifestblob"), [0u8; 8]).unwrap();
    // Not a usage error: the folder's manifestblob is the manifest; the evidence is
    // then examined (and this manifest does not bind REPORT_DATA: rejected).
    let o = run(&[
        d.to_str().unwrap(),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
        "--nonce",
        "00",
    ]);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    assert!(o.out.contains("FAIL  svsm.report_data"), "{}", o.out);
}

#[test]
fn environment_failures_exit_3() {
    let (rep, g) = genoa();
    // Unreadable files and folders.
    for args in [
        vec!["/nonexistent/report.bin", "--offline"],
        vec![&rep, "--offline", "--certs", "/nonexistent/certs"],
        vec![&rep, "--offline", "--vcek", "/nonexistent/vcek.pem"],
        vec![
            &rep,
            "--offline",
            "--certs",
            &g,
            "--policy",
            "/nonexistent.toml",
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.code, 3, "{args:?}\n{}", o.err);
        assert!(o.err.contains("/nonexistent"), "{}", o.err);
        let (_, j) = run_json(&args);
        assert_eq!(j["verdict"], "error");
        assert_eq!(j["exit_code"], 3);
    }
    // KDS unreachable: a port on which nothing listens.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let args = [rep.as_str(), "--kds-url", &url, "--at", AT];
    let o = run(&args);
    assert_eq!(o.code, 3, "{}\n{}", o.out, o.err);
    assert!(o.err.contains("KDS") && o.err.contains(&url), "{}", o.err);
    let (_, j) = run_json(&args);
    assert_eq!(j["results"][0]["verdict"], "error");
    assert_eq!(j["results"][0]["error"]["class"], "environment");
}

#[test]
fn rejected_evidence_exits_1() {
    let (rep, g) = genoa();
    let d = tmp("rejected");
    let mut b = read(&rep);
    b[0x90] ^= 1;
    std::fs::write(d.join("flip.bin"), &b).unwrap();
    std::fs::write(d.join("text.txt"), "not a report!\n").unwrap();
    std::fs::write(d.join("short.bin"), &b[..100]).unwrap();
    for (f, want) in [
        ("flip.bin", "FAIL  report.signature"),
        ("text.txt", "neither hex nor base64"),
        ("short.bin", "FAIL  report.length"),
    ] {
        let p = d.join(f);
        let args = [p.to_str().unwrap(), "--certs", &g, "--offline", "--at", AT];
        let o = run(&args);
        assert_eq!(o.code, 1, "{f}: {}\n{}", o.out, o.err);
        assert!(o.out.contains(want), "{f}: {}", o.out);
        let (_, j) = run_json(&args);
        assert_eq!(j["verdict"], "rejected", "{f}");
    }
}

#[test]
fn a_batch_keeps_one_result_per_input() {
    let (rep, g) = genoa();
    let d = tmp("batch");
    let mut b = read(&rep);
    b[0x90] ^= 1;
    std::fs::write(d.join("flip.bin"), &b).unwrap();
    let flip = d.join("flip.bin");
    let args = [
        rep.as_str(),
        "/nonexistent/r.bin",
        flip.to_str().unwrap(),
        "--certs",
        &g,
        "--offline",
        "--at",
        AT,
    ];
    let (o, j) = run_json(&args);
    // Environment outranks rejected.
    assert_eq!(o.code, 3);
    let r = j["results"].as_array().unwrap();
    let verdicts: Vec<&str> = r.iter().map(|x| x["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["verified", "error", "rejected"]);
    assert_eq!(r[1]["input"], "/nonexistent/r.bin");
    assert!(r[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/r.bin"));
    assert!(r[0]["error"].is_null());
    // Text: every input printed, then the batch line.
    let o = run(&args);
    assert_eq!(o.code, 3);
    assert_eq!(
        o.out.matches("\n== ").count() + usize::from(o.out.starts_with("== ")),
        3,
        "{}",
        o.out
    );
    assert!(o.out.contains("batch: 1 of 3 verified"), "{}", o.out);
    assert!(
        o.out.contains("error (environment): /nonexistent/r.bin:"),
        "{}",
        o.out
    );
}

/// Runs with stdout a pipe whose reader is gone before anything is written.
fn closed_pipe(args: &[&str]) -> (i32, String) {
    let mut c = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let s = c.wait().unwrap();
    (s.code().unwrap_or(-1), err)
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let (rep, g) = genoa();
    let many: Vec<&str> = std::iter::repeat_n(rep.as_str(), 20).collect();
    for json in [true, false] {
        let mut args = many.clone();
        args.extend(["--certs", &g, "--offline", "--at", AT]);
        if json {
            args.push("--json");
        }
        let (code, err) = closed_pipe(&args);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(code, 0, "json {json}: {err}");
    }
    let (code, err) = closed_pipe(&["--help"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = closed_pipe(&["--list-checks", "--json"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn dev_zero_on_every_input_option_is_refused_quickly() {
    let (rep, g) = genoa();
    let z = "/dev/zero";
    let d = tmp("zero");
    std::fs::write(d.join("m.bin"), [0u8; 8]).unwrap();
    let m = d.join("m.bin");
    let m = m.to_str().unwrap();
    let base = [rep.as_str(), "--offline", "--at", AT];
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![z, "--offline", "--certs", &g],
            1,
            "larger than any report",
        ),
        (vec!["--certs", z], 3, "cannot list the folder"),
        (vec!["--vcek", z], 2, "larger than any certificate file"),
        (vec!["--chain", z], 2, "larger than any certificate file"),
        (
            vec!["--trust-root", z],
            2,
            "larger than any certificate file",
        ),
        (
            vec!["--cert-table", z],
            2,
            "larger than any certificate table",
        ),
        (vec!["--crl", z], 2, "larger than any CRL"),
        (vec!["--policy", z], 2, "larger than any policy"),
        (vec!["--refs", z], 2, "larger than any reference values"),
        (
            vec!["--nonce", "00", "--manifest", z],
            2,
            "larger than any services manifest",
        ),
        (
            vec!["--nonce", "00", "--manifest", m, "--event-log", z],
            2,
            "larger than any event log",
        ),
    ];
    for (extra, code, want) in cases {
        let mut args: Vec<&str> = if extra[0] == z {
            Vec::new()
        } else {
            base.to_vec()
        };
        args.extend(extra.iter().copied());
        let t = Instant::now();
        let o = run(&args);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            t.elapsed()
        );
        assert_eq!(o.code, code, "{args:?}\n{}\n{}", o.out, o.err);
        assert!(
            o.err.contains(want) || o.out.contains(want),
            "{args:?}: {want:?} in {}{}",
            o.out,
            o.err
        );
    }
}

#[test]
fn text_output_shows_the_measured_values() {
    let (rep, g) = genoa();
    let o = run(&[&rep, "--certs", &g, "--offline", "--at", AT]);
    assert_eq!(o.code, 0);
    let b = read(&rep);
    for (label, hexval) in [
        ("MEASUREMENT", hex::encode(&b[0x90..0xC0])),
        ("REPORT_DATA", hex::encode(&b[0x50..0x90])),
        ("HOST_DATA", hex::encode(&b[0xC0..0xE0])),
    ] {
        assert!(
            o.out.contains(&format!("  {label:13} {hexval}")),
            "{label} not shown:\n{}",
            o.out
        );
    }
    let policy = u64::from_le_bytes(b[8..16].try_into().unwrap());
    assert!(
        o.out.contains(&format!("POLICY        0x{policy:x} (")),
        "{}",
        o.out
    );
    assert!(o.out.contains("REPORTED_TCB  0x"), "{}", o.out);
    assert!(o.out.contains("bl=10 tee=0 snp=23 ucode=84"), "{}", o.out);
}

#[test]
fn short_help_keeps_the_examples_exit_codes_and_the_network_note() {
    for flag in ["-h", "--help"] {
        let o = run(&[flag]);
        assert_eq!(o.code, 0);
        for want in [
            "Examples:",
            "Exit codes",
            "3  environment",
            "Key Distribution Service",
            "unless --offline",
        ] {
            assert!(o.out.contains(want), "{flag}: {want:?} missing");
        }
    }
}

/// A KDS on 127.0.0.1 that answers every request with `status` and no body.
fn kds_answering(status: u16) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut rd = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut h = String::new();
                if rd.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    url
}

#[test]
fn kds_404_is_a_missing_leaf_and_kds_500_an_environment_failure() {
    let (rep, _) = genoa();
    let url = kds_answering(404);
    let o = run(&[&rep, "--kds-url", &url, "--at", AT]);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    assert!(o.out.contains("FAIL  chain.leaf"), "{}", o.out);
    assert!(o.err.contains("HTTP 404"), "{}", o.err);
    // The network use is said as it happens.
    assert!(
        o.err.contains(&format!("fetching {url}/vcek/v1/Genoa/")),
        "{}",
        o.err
    );
    let url = kds_answering(500);
    let o = run(&[&rep, "--kds-url", &url, "--at", AT]);
    assert_eq!(o.code, 3, "{}\n{}", o.out, o.err);
    assert!(o.err.contains("HTTP 500"), "{}", o.err);
}
