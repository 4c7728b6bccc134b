//! The binary as its users meet it (issue 14): inputs that are not what they claim to
//! be, scripts that read `--json` and exit codes, pipes that close early, flags that must
//! not be ignored. Exit codes: 0 success, 1 bad input, 2 usage, 3 environment; a closed
//! stdout stops the output quietly.
#![warn(clippy::too_many_lines)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-igvm"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Pseudo-random bytes (xorshift), reproducible.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A 1 MiB OVMF image: noise, then the AmdSev build's last 4 KiB (footer table, SEV
/// metadata, reset vector).
fn ovmf_1m() -> Vec<u8> {
    let mut img = noise((1 << 20) - 4096, 7);
    img.extend_from_slice(&common::fixture("ovmf_AmdSev_suffix.bin"));
    img
}

/// Something that looks like OVMF_VARS.fd: a firmware volume header ("_FVH" at 0x28),
/// a variable store, then erased flash (0xFF).
fn ovmf_vars_like() -> Vec<u8> {
    let mut v = vec![0xFFu8; 128 << 10];
    v[..0x48].fill(0);
    v[0x28..0x2c].copy_from_slice(b"_FVH");
    v[0x48..0x60].fill(0x11);
    v
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        let d = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(d.path("kernel.elf"), common::test_kernel()).unwrap();
        std::fs::write(d.path("guest.elf"), common::test_guest()).unwrap();
        std::fs::write(d.path("ovmf.fd"), ovmf_1m()).unwrap();
        d
    }
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
    fn put(&self, f: &str, data: &[u8]) -> PathBuf {
        let path = self.path(f);
        std::fs::write(&path, data).unwrap();
        path
    }
    /// Build with the test kernel; returns (exit code, stdout, stderr).
    fn build(&self, firmware: &Path, out: &str, extra: &[&str]) -> (i32, String, String) {
        let k = self.path("kernel.elf");
        let o = self.path(out);
        let mut a = vec![
            "build",
            "--kernel",
            p(&k),
            "--firmware",
            p(firmware),
            "-o",
            p(&o),
        ];
        a.extend_from_slice(extra);
        run(&a)
    }
}

fn measure_snp(ovmf: &Path) -> (i32, String, String) {
    run(&[
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        p(ovmf),
    ])
}

#[test]
fn what_is_not_ovmf_gets_no_digest_and_no_build() {
    let d = Dir::new();
    let good = ovmf_1m();
    let mut corrupt = good.clone();
    let footer_guid = good.len() - 32 - 16;
    corrupt[footer_guid] ^= 0xff;
    let zeros = d.path("zeros.fd");
    // 16 MiB of zeros (under the size limit, so the contents are what gets refused), and
    // a sparse 200 MB file (above it: refused from its size without reading).
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let huge = d.path("huge.fd");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(200_000_000)
        .unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "OVMF_VARS",
            d.put("vars.fd", &ovmf_vars_like()),
            "reset vector",
        ),
        (
            "random",
            d.put("random.fd", &noise(1 << 20, 3)),
            "reset vector",
        ),
        (
            "first half",
            d.put("half.fd", &good[..good.len() / 2]),
            "reset vector",
        ),
        (
            "corrupt footer",
            d.put("corrupt.fd", &corrupt),
            "footer GUID at offset",
        ),
        ("16 MiB of zeros", zeros, "reset vector"),
        ("200 MB", huge, "larger than the 0x4000000-byte limit"),
    ];
    for (name, path, why) in &cases {
        let (rc, out, err) = measure_snp(path);
        assert_eq!(rc, 1, "measure {name}: {out} {err}");
        assert!(out.is_empty(), "measure {name} printed a digest: {out}");
        // Either check may come first for data without a footer.
        let named = err.contains(why) || err.contains("footer GUID at offset");
        assert!(named && err.contains("offset 0x"), "{name}: {err}");
        let (rc, _, err) = d.build(path, "out.igvm", &[]);
        assert_eq!(rc, 1, "build {name}: {err}");
        assert!(
            err.contains(why) || err.contains("footer GUID"),
            "build {name}: {err}"
        );
        assert!(!d.path("out.igvm").exists(), "build {name} wrote a file");
    }
    // The well-formed image measures and builds.
    let (rc, out, err) = measure_snp(&d.path("ovmf.fd"));
    assert_eq!((rc, out.trim().len()), (0, 96), "{err}");
    let (rc, _, err) = d.build(&d.path("ovmf.fd"), "ok.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
}

#[test]
fn lint_refuses_a_file_whose_firmware_is_not_ovmf() {
    // A file built before the check existed: take a good build and break the footer GUID
    // inside its firmware pages.
    use igvm::IgvmDirectiveHeader;
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("ovmf.fd"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, _) = run(&["lint", p(&d.path("v.igvm"))]);
    assert_eq!(rc, 0, "{out}");
    let (f, _) = vigil_igvm::reader::parse(&std::fs::read(d.path("v.igvm")).unwrap()).unwrap();
    let mut dirs = f.directives().to_vec();
    for h in dirs.iter_mut() {
        if let IgvmDirectiveHeader::PageData { gpa, data, .. } = h {
            if *gpa == 0xFFFF_F000 {
                data[4096 - 48] ^= 0xff;
            }
        }
    }
    let nf = igvm::IgvmFile::new(
        igvm::IgvmRevision::V1,
        f.platforms().to_vec(),
        f.initializations().to_vec(),
        dirs,
    )
    .unwrap();
    let mut bytes = Vec::new();
    nf.serialize(&mut bytes).unwrap();
    let bad = d.put("bad.igvm", &bytes);
    let (rc, out, _) = run(&["lint", p(&bad)]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("[firmware]") && out.contains("footer GUID"),
        "{out}"
    );
}

fn digest_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("SNP launch digest"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn one_vcpu_rule_the_files_own_count() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &["--vcpus", "3"]);
    assert_eq!(rc, 0, "{err}");
    let line = digest_line(&err);
    assert!(line.contains("for 3 vCPU(s)"), "{err}");
    let built = line
        .split_whitespace()
        .find(|w| w.len() == 96)
        .unwrap()
        .to_string();
    let v = d.path("v.igvm");
    let (rc, out, err) = run(&["measure", p(&v)]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        out.trim(),
        built,
        "measure's default is not the file's count"
    );
    assert!(err.contains("for 3 vCPU(s)"), "{err}");
    let (_, out, _) = run(&["refs", p(&v)]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["launch_digest"], built.as_str());
    assert_eq!(r["vcpus"], 3);
    let (_, out, _) = run(&["measure", p(&v), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["digest"].as_str(), j["vcpus"].as_u64()),
        (Some(built.as_str()), Some(3))
    );
    let (_, out, _) = run(&["qemu-args", p(&v), "--json"]);
    assert!(out.contains("\"-smp\",\n  \"3\""), "{out}");
    // build --json carries the same digest and count.
    let (rc, out, err) = d.build(&d.path("guest.elf"), "w.igvm", &["--vcpus", "3", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["launch_digest"].as_str(), j["vcpus"].as_u64()),
        (Some(built.as_str()), Some(3))
    );
    // An OVMF measurement names its count too.
    let (_, _, err) = run(&[
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        p(&d.path("ovmf.fd")),
    ]);
    assert!(err.contains("for 2 vCPU(s)"), "{err}");
}

#[test]
fn every_input_is_bounded_and_dev_zero_refused() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let v = d.path("v.igvm");
    let (kp, gp, op) = (d.path("kernel.elf"), d.path("guest.elf"), d.path("ovmf.fd"));
    let (v, k, g, o) = (p(&v), p(&kp), p(&gp), p(&op));
    let out = d.path("o.igvm");
    let out = p(&out);
    let z = "/dev/zero";
    let pubkey = {
        use p384::pkcs8::{EncodePublicKey, LineEnding};
        let k = p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap();
        let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        d.put("id.pub.pem", pem.as_bytes())
    };
    let pubkey = p(&pubkey);
    let snp = [
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut a: Vec<&str> = snp.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let cases: Vec<Vec<&str>> = vec![
        vec!["measure", z],
        with(&["--ovmf", z]),
        {
            let mut a = with(&["--kernel", z, "--ovmf"]);
            a.push(o);
            a
        },
        {
            let mut a = with(&["--kernel", "/dev/null", "--initrd", z, "--ovmf"]);
            a.push(o);
            a
        },
        vec![
            "measure",
            "--mode",
            "snp:svsm",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            o,
            "--svsm",
            z,
            "--vars-size",
            "0",
        ],
        vec![
            "measure",
            "--mode",
            "snp:svsm",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            o,
            "--svsm",
            o,
            "--vars-file",
            z,
        ],
        vec!["build", "--kernel", z, "--firmware", g, "-o", out],
        vec!["build", "--kernel", k, "--firmware", z, "-o", out],
        vec![
            "build",
            "--kernel",
            k,
            "--firmware",
            g,
            "--policy",
            z,
            "-o",
            out,
        ],
        vec!["inspect", z],
        vec!["lint", z],
        vec!["refs", z],
        vec!["qemu-args", z],
        vec!["sign", z, "--verify"],
        vec!["sign", v, "--id-key", z, "-o", out],
        vec!["sign", v, "--emit-tbs", out, "--id-pubkey", z],
        vec!["sign", v, "--id-pubkey", pubkey, "--id-sig", z, "-o", out],
    ];
    for a in &cases {
        let t = std::time::Instant::now();
        let (rc, _, err) = run(a);
        assert_eq!(rc, 1, "{a:?}: {err}");
        assert!(
            err.contains("larger than") || err.contains("magic"),
            "{a:?}: {err}"
        );
        assert!(t.elapsed().as_secs() < 60, "{a:?} took {:?}", t.elapsed());
    }
}

#[test]
fn counts_are_bounded_before_anything_is_read() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let v = d.path("v.igvm");
    let (kp, gp, op) = (d.path("kernel.elf"), d.path("guest.elf"), d.path("ovmf.fd"));
    let (v, k, g, o) = (p(&v), p(&kp), p(&gp), p(&op));
    let out = d.path("o.igvm");
    let out = p(&out);
    // Counts are bounded by the parser (usage, exit 2) before anything is read.
    for a in [
        vec!["measure", v, "--vcpus", "4294967295"],
        vec![
            "measure",
            "--mode",
            "snp",
            "--vcpus",
            "4097",
            "--vcpu-type",
            "EPYC-v4",
            "--ovmf",
            o,
        ],
        vec![
            "build",
            "--kernel",
            k,
            "--firmware",
            g,
            "-o",
            out,
            "--vcpus",
            "100000",
        ],
        vec!["refs", v, "--vcpus", "0"],
        vec!["qemu-args", v, "--vcpus", "5000"],
        vec!["sign", v, "--verify", "--vcpus", "4294967295"],
    ] {
        let (rc, _, err) = run(&a);
        assert_eq!(rc, 2, "{a:?}: {err}");
        assert!(err.contains("1..=4096"), "{a:?}: {err}");
    }
}

#[test]
fn cpuid_signature_fields_are_not_truncated() {
    let d = Dir::new();
    let op = d.path("ovmf.fd");
    let o = p(&op);
    // CPUID signature fields that would be truncated silently.
    for (flag, value) in [
        ("--vcpu-family", "271"),
        ("--vcpu-model", "256"),
        ("--vcpu-stepping", "16"),
    ] {
        let mut a = vec![
            "measure",
            "--mode",
            "snp",
            "--vcpus",
            "1",
            "--ovmf",
            o,
            "--vcpu-family",
            "25",
        ];
        if flag == "--vcpu-family" {
            a.truncate(a.len() - 2);
        }
        a.extend([flag, value]);
        let (rc, _, err) = run(&a);
        assert_eq!(rc, 2, "{a:?}: {err}");
        assert!(err.contains(value), "{a:?}: {err}");
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    for args in [
        vec!["measure", p(&d.path("v.igvm")), "--log", "json"],
        vec!["inspect", p(&d.path("v.igvm")), "--json"],
    ] {
        let mut c = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(c.stdout.take()); // the reader (`head`) is gone before the first write
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // Quiet (no panic, no message) and the exit code of the work, as vigil-verify.
        assert!(err.is_empty(), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn flags_take_effect_or_are_refused() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let v = d.path("v.igvm");
    let (kp, gp, op) = (d.path("kernel.elf"), d.path("guest.elf"), d.path("ovmf.fd"));
    let (v, k, g, o) = (p(&v), p(&kp), p(&gp), p(&op));
    let out = d.path("o.igvm");
    let out = p(&out);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["measure", v, "--kernel", k], "--kernel"),
        (vec!["measure", v, "--vmm-type", "ec2"], "--vmm-type"),
        (
            vec!["measure", "--mode", "sev", "--vcpus", "2", "--ovmf", o],
            "--vcpus",
        ),
        (
            vec![
                "measure",
                "--mode",
                "snp:ovmf-hash",
                "--guest-features",
                "0x21",
                "--ovmf",
                o,
            ],
            "--guest-features",
        ),
        (
            vec![
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--vmsa-rule",
                "file",
                "--ovmf",
                o,
            ],
            "--vmsa-rule",
        ),
        (
            vec![
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--vcpu-sig",
                "1",
                "--ovmf",
                o,
            ],
            "--vcpu-sig",
        ),
        (
            vec![
                "measure",
                "--mode",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--svsm",
                o,
                "--ovmf",
                o,
            ],
            "--svsm",
        ),
        (vec!["measure", v, "--log", "json", "-v"], "-v"),
        (
            vec!["sign", v, "--id-key", k, "--id-pubkey", k, "-o", out],
            "--id-pubkey",
        ),
        (
            vec!["sign", v, "--verify", "--family-id", "01"],
            "--family-id",
        ),
        (vec!["qemu-args", v, "--memory", "lots"], "lots"),
        (vec!["qemu-args", v, "--memory", "1k"], "16M"),
        (
            vec!["qemu-args", v, "--platform", "snp", "--accel", "kvm"],
            "--accel",
        ),
        (
            vec!["refs", v, "--platform", "native", "--vmsa-rule", "file"],
            "--vmsa-rule",
        ),
        (
            vec![
                "build",
                "--kernel",
                k,
                "--firmware",
                g,
                "-o",
                out,
                "--platforms",
                "native",
                "--guest-policy",
                "0x30000",
            ],
            "--guest-policy",
        ),
    ];
    for (a, flag) in &cases {
        let (rc, out, err) = run(a);
        assert_eq!(rc, 2, "{a:?}: {out} {err}");
        assert!(err.contains(flag), "{a:?} does not name {flag}: {err}");
    }
    // The ones that take effect: --memory in QEMU syntax reaches the command line.
    let (rc, out, _) = run(&["qemu-args", v, "--memory", "2G"]);
    assert_eq!(rc, 0);
    assert!(out.contains("-m 2G"), "{out}");
}

#[test]
fn build_refuses_what_lint_refuses_and_never_overwrites_an_input() {
    let d = Dir::new();
    let g = d.path("guest.elf");
    // Guest policy with reserved bit 17 clear, or a reserved high bit set.
    for pol in ["0x10000", "0x4030000"] {
        let (rc, _, err) = d.build(&g, "o.igvm", &["--guest-policy", pol]);
        assert_eq!(rc, 2, "{pol}: {err}");
        assert!(
            err.contains("guest policy") && err.contains("reserved"),
            "{err}"
        );
        assert!(!d.path("o.igvm").exists());
    }
    // -o naming the firmware, directly or through another path or a hard link.
    let before = std::fs::read(d.path("ovmf.fd")).unwrap();
    std::fs::create_dir(d.path("sub")).unwrap();
    std::fs::hard_link(d.path("ovmf.fd"), d.path("link.fd")).unwrap();
    let k = d.path("kernel.elf");
    for o in ["ovmf.fd", "sub/../ovmf.fd", "link.fd"] {
        let (rc, _, err) = run(&[
            "build",
            "--kernel",
            p(&k),
            "--firmware",
            p(&d.path("ovmf.fd")),
            "-o",
            p(&d.path(o)),
        ]);
        assert_eq!(rc, 2, "{o}: {err}");
        assert!(err.contains("same file as --firmware"), "{err}");
    }
    let (rc, _, err) = run(&["build", "--kernel", p(&k), "--firmware", p(&g), "-o", p(&k)]);
    assert_eq!(rc, 2, "{err}");
    assert_eq!(std::fs::read(d.path("ovmf.fd")).unwrap(), before);
    // The monitor policy is one JSON object; errors name the offset.
    let bad = d.put("bad.json", b"{\"a\": 1,\n \"b\": }");
    let (rc, _, err) = d.build(&g, "o.igvm", &["--policy", p(&bad)]);
    assert_eq!(rc, 1, "{err}");
    // Line 2, column 7 is the '}' at byte 0xf.
    assert!(err.contains("monitor policy: JSON at offset 0xf"), "{err}");
    let arr = d.put("arr.json", b"[1]");
    let (rc, _, err) = d.build(&g, "o.igvm", &["--policy", p(&arr)]);
    assert_eq!(rc, 1, "{err}");
    let big = d.put("big.json", &vec![b' '; 4000]);
    let (rc, _, err) = d.build(&g, "o.igvm", &["--policy", p(&big)]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("larger than"), "{err}");
    assert!(!d.path("o.igvm").exists());
}

#[test]
fn json_document_on_every_exit_and_one_result_per_input() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let v = d.path("v.igvm");
    let missing = d.path("missing.igvm");
    let junk = d.put("junk.igvm", b"IGVM but not really");
    let doc = |a: &[&str]| -> (i32, serde_json::Value) {
        let (rc, out, err) = run(a);
        let j = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a:?}: {e}: {out} {err}"));
        (rc, j)
    };
    // Early failures: a missing file (environment), a clap usage error, a bad file.
    let (rc, j) = doc(&["measure", p(&missing), "--json"]);
    assert_eq!((rc, j["error"]["exit_code"].as_u64()), (3, Some(3)));
    assert_eq!(j["error"]["class"], "environment");
    let (rc, j) = doc(&["measure", "--json", "--no-such-flag"]);
    assert_eq!((rc, j["error"]["class"].as_str()), (2, Some("usage")));
    let (rc, j) = doc(&[
        "build",
        "--json",
        "--kernel",
        p(&junk),
        "--firmware",
        p(&junk),
        "-o",
        p(&d.path("x")),
    ]);
    assert_eq!((rc, j["error"]["class"].as_str()), (1, Some("rejected")));
    // A batch: one result per input, the others survive a bad one; exit = worst code.
    for cmd in ["measure", "lint", "inspect"] {
        let (rc, j) = doc(&[cmd, p(&v), p(&missing), p(&junk), p(&v), "--json"]);
        let r = j["results"].as_array().unwrap();
        assert_eq!(r.len(), 4, "{cmd}: {j}");
        assert_eq!(rc, 3, "{cmd}");
        assert_eq!(r[0]["exit_code"], 0, "{cmd}: {j}");
        assert_eq!(r[1]["error"]["exit_code"], 3);
        assert_eq!(r[2]["error"]["exit_code"], 1);
        assert!(r[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("offset 0x"));
        assert_eq!(r[3]["path"], p(&v));
    }
    let (rc, out, _) = run(&["measure", p(&v), p(&v)]);
    assert_eq!(rc, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn igvm_crate_errors_keep_the_offset_and_addresses_are_hex() {
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let mut b = std::fs::read(d.path("v.igvm")).unwrap();
    // The third PAGE_DATA variable header: give it a data type the
    // igvm crate refuses (body + 20, IGVM_VHS_PAGE_DATA.data_type).
    let locs = vigil_igvm::reader::scan(&b).unwrap();
    let page_data = igvm_defs::IgvmVariableHeaderType::IGVM_VHT_PAGE_DATA.0;
    let h = locs
        .iter()
        .filter(|l| l.typ == page_data)
        .nth(2)
        .unwrap()
        .clone();
    b[h.offset + 8 + 20] = 0x77;
    vigil_igvm::reader::recompute_checksum(&mut b);
    let bad = d.put("bad.igvm", &b);
    for cmd in ["measure", "lint", "inspect"] {
        let (rc, _, err) = run(&[cmd, p(&bad)]);
        assert_eq!(rc, 1, "{cmd}: {err}");
        let want = format!("IGVM variable header {} (type {page_data:#x})", h.index);
        assert!(err.contains(&want), "{cmd}: {err}");
        assert!(
            err.contains(&format!("at offset {:#x}", h.offset)),
            "{cmd}: {err}"
        );
    }
    // Addresses in hex: the per-page log, lint and inspect.
    let v = d.path("v.igvm");
    let (_, _, log) = run(&["measure", p(&v), "--log", "text"]);
    for l in log.lines().filter(|l| !l.contains("SNP launch digest")) {
        let gpa = l.split_whitespace().nth(1).unwrap_or("");
        assert!(gpa.starts_with("0x"), "decimal address in the log: {l}");
    }
    let (_, out, _) = run(&["inspect", p(&v)]);
    assert!(
        !out.contains("1048576") && !out.contains("4294963200"),
        "{out}"
    );
    // JSON: bit fields of the resolved loader rules are hex strings too.
    for args in [vec!["measure", p(&v), "--log", "json"], vec!["refs", p(&v)]] {
        let (_, out, _) = run(&args);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["loader"]["policy"], "0x30000", "{args:?}: {out}");
        assert_eq!(j["loader"]["sev_features"], "0x1");
        assert_eq!(j["loader"]["compatibility_mask"], "0x1");
    }
}

#[test]
fn lint_numbers_headers_like_the_reader_and_notes_foreign_platforms() {
    use igvm::{IgvmPlatformHeader, IgvmRevision};
    use igvm_defs::{IgvmPlatformType, IGVM_VHS_SUPPORTED_PLATFORM};
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &["--platforms", "snp"]);
    assert_eq!(rc, 0, "{err}");
    let (f, locs) = vigil_igvm::reader::parse(&std::fs::read(d.path("v.igvm")).unwrap()).unwrap();
    // A third-party file: no Vigil BootParams, and a TDX platform beside SNP.
    let dirs: Vec<_> = f
        .directives()
        .iter()
        .filter(|h| {
            !matches!(
                h,
                igvm::IgvmDirectiveHeader::PageData { gpa: 0x7F_A000, .. }
            )
        })
        .cloned()
        .collect();
    let mut plats = f.platforms().to_vec();
    plats.push(IgvmPlatformHeader::SupportedPlatform(
        IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: 0x4,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::TDX,
            platform_version: 1,
            shared_gpa_boundary: 0,
        },
    ));
    let nf =
        igvm::IgvmFile::new(IgvmRevision::V1, plats, f.initializations().to_vec(), dirs).unwrap();
    let mut bytes = Vec::new();
    nf.serialize(&mut bytes).unwrap();
    let tp = d.put("third-party.igvm", &bytes);
    let (rc, out, _) = run(&["lint", p(&tp)]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("note: [platform]") && out.contains("TDX"),
        "{out}"
    );
    // Lint names "header N" with N counted over all variable headers, as the reader does.
    let (rc, out, _) = run(&["lint", p(&tp), "--json"]);
    assert_eq!(rc, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let _ = locs;
    for f in j.as_array().unwrap() {
        if let (Some(h), Some(dir)) = (f["header"].as_u64(), f["directive"].as_u64()) {
            assert_eq!(
                h,
                dir + (nf.platforms().len() + nf.initializations().len()) as u64
            );
        }
    }
    // QEMU rules name the QEMU version they assume.
    let (_, help, _) = run(&["lint", "-h"]);
    assert!(help.contains("QEMU 10.1"), "{help}");
}

#[test]
fn short_help_keeps_examples_exit_codes_and_the_xtask_kernel_path() {
    for args in [
        vec!["-h"],
        vec!["--help"],
        vec!["build", "-h"],
        vec!["measure", "-h"],
        vec!["sign", "-h"],
    ] {
        let (rc, out, _) = run(&args);
        assert_eq!(rc, 0);
        assert!(
            out.contains("Examples:") || out.contains("One step:"),
            "{args:?}: {out}"
        );
        assert!(out.contains("Exit codes:"), "{args:?}: {out}");
    }
    let (_, out, _) = run(&["build", "-h"]);
    assert!(
        out.contains("target/vigil-kernel/x86_64-unknown-none/release/svsm"),
        "{out}"
    );
}

/// Length of `d` without its trailing zero padding: a cut below it loses content.
fn content_len(d: &[u8]) -> usize {
    d.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

mod no_digest_for_garbage {
    //! Property: random bytes and random truncations of each input kind of `measure` and
    //! `build` never exit 0. (Direct-boot kernels and initrds are opaque data that is
    //! only hashed, so any bytes are valid there; an empty monitor policy is valid by
    //! design, so policy cuts keep at least one byte.)
    use super::*;
    use proptest::prelude::*;

    struct Fixture {
        d: Dir,
        igvm: Vec<u8>,
    }

    fn fixture() -> &'static Fixture {
        static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            let d = Dir::new();
            let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
            assert_eq!(rc, 0, "{err}");
            let igvm = std::fs::read(d.path("v.igvm")).unwrap();
            Fixture { d, igvm }
        })
    }

    /// Which input of which command receives the bytes.
    #[derive(Clone, Copy, Debug)]
    enum Slot {
        MeasureIgvm,
        MeasureOvmf,
        MeasureSvsm,
        BuildKernel,
        BuildFirmwareOvmf,
        BuildFirmwareElf,
        BuildPolicy,
    }

    const SLOTS: [Slot; 7] = [
        Slot::MeasureIgvm,
        Slot::MeasureOvmf,
        Slot::MeasureSvsm,
        Slot::BuildKernel,
        Slot::BuildFirmwareOvmf,
        Slot::BuildFirmwareElf,
        Slot::BuildPolicy,
    ];

    /// The well-formed input of a slot (what truncations cut).
    fn valid(slot: Slot) -> Vec<u8> {
        match slot {
            Slot::MeasureIgvm => fixture().igvm.clone(),
            Slot::MeasureOvmf | Slot::BuildFirmwareOvmf => ovmf_1m(),
            Slot::MeasureSvsm => common::fixture("svsm.bin"),
            Slot::BuildKernel => common::test_kernel(),
            Slot::BuildFirmwareElf => common::test_guest(),
            Slot::BuildPolicy => b"{\"protect\": \"kernel-text\"}".to_vec(),
        }
    }

    fn exit_code(slot: Slot, data: &[u8], tag: u64) -> (i32, String) {
        let f = fixture();
        let input = f.d.put(&format!("in-{tag}"), data);
        let out = f.d.path(&format!("out-{tag}.igvm"));
        let (i, o) = (p(&input), p(&out));
        let ovmf = f.d.path("ovmf.fd");
        let kernel = f.d.path("kernel.elf");
        let guest = f.d.path("guest.elf");
        let svsm_ovmf = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/measure/svsm_ovmf.fd"
        ));
        let snp = ["--vcpus", "2", "--vcpu-type", "EPYC-v4"];
        let args: Vec<&str> = match slot {
            Slot::MeasureIgvm => vec!["measure", i],
            Slot::MeasureOvmf => [&["measure", "--mode", "snp", "--ovmf", i][..], &snp].concat(),
            Slot::MeasureSvsm => [
                &[
                    "measure",
                    "--mode",
                    "snp:svsm",
                    "--ovmf",
                    p(&svsm_ovmf),
                    "--svsm",
                    i,
                ][..],
                &["--vars-size", "540672"],
                &snp,
            ]
            .concat(),
            Slot::BuildKernel => vec!["build", "--kernel", i, "--firmware", p(&guest), "-o", o],
            Slot::BuildFirmwareOvmf | Slot::BuildFirmwareElf => {
                vec!["build", "--kernel", p(&kernel), "--firmware", i, "-o", o]
            }
            Slot::BuildPolicy => vec![
                "build",
                "--kernel",
                p(&kernel),
                "--firmware",
                p(&ovmf),
                "--policy",
                i,
                "-o",
                o,
            ],
        };
        let (rc, out, err) = run(&args);
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&out);
        (rc, format!("{args:?}: {out} {err}"))
    }

    #[test]
    fn every_valid_input_passes() {
        // The property below is not vacuous: each slot accepts its well-formed input.
        for (k, slot) in SLOTS.iter().enumerate() {
            let (rc, what) = exit_code(*slot, &valid(*slot), 1000 + k as u64);
            assert_eq!(rc, 0, "{slot:?}: {what}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_exit_0(
            slot in 0..SLOTS.len(),
            pages in 0usize..4,
            seed in any::<u64>(),
            extra in 0usize..64,
        ) {
            // Page-sized and odd sizes: both reach different checks.
            // At least one byte: an empty policy is valid by design.
            let data = noise((pages * 4096 + extra * (seed as usize % 2)).max(1), seed);
            let (rc, what) = exit_code(SLOTS[slot], &data, seed);
            prop_assert_ne!(rc, 0, "{}", what);
        }

        #[test]
        fn truncations_never_exit_0(slot in 0..SLOTS.len(), cut in any::<prop::sample::Index>(), tag in any::<u64>()) {
            let full = valid(SLOTS[slot]);
            // Cut inside the content (trailing zero padding carries nothing); a policy
            // keeps one byte (an empty policy is valid).
            let min = usize::from(matches!(SLOTS[slot], Slot::BuildPolicy));
            let end = content_len(&full);
            let n = min + cut.index(end - min);
            let (rc, what) = exit_code(SLOTS[slot], &full[..n], tag);
            prop_assert_ne!(rc, 0, "cut to {} of {}: {}", n, full.len(), what);
        }
    }
}

#[test]
fn lint_checks_an_id_block_with_the_same_defaults_as_sign() {
    use p384::pkcs8::{EncodePrivateKey, LineEnding};
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &["--vcpus", "2"]);
    assert_eq!(rc, 0, "{err}");
    let k = p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap();
    let pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = d.put("id.pem", pem.as_bytes());
    let (v, s) = (d.path("v.igvm"), d.path("s.igvm"));
    let (rc, _, err) = run(&["sign", p(&v), "--id-key", p(&key), "-o", p(&s)]);
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains("for 2 vCPU(s)"), "{err}");
    // Signed under the defaults (the file's 2 vCPUs, EPYC-v4): lint measures the same.
    let (rc, out, _) = run(&["lint", p(&s)]);
    assert_eq!(rc, 0, "{out}");
    assert!(!out.contains("id-block-digest"), "{out}");
    // Signed for another vCPU type: lint says so.
    let (rc, _, err) = run(&[
        "sign",
        p(&v),
        "--id-key",
        p(&key),
        "--vcpu-type",
        "EPYC-Milan",
        "-o",
        p(&s),
    ]);
    assert_eq!(rc, 0, "{err}");
    let (_, out, _) = run(&["lint", p(&s)]);
    assert!(out.contains("id-block-digest"), "{out}");
    assert!(out.contains("(2 vCPU(s), vCPU type EPYC-v4)"), "{out}");
}

#[test]
fn sign_json_is_one_document_with_the_qemu_options() {
    use p384::pkcs8::{EncodePrivateKey, LineEnding};
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &[]);
    assert_eq!(rc, 0, "{err}");
    let k = p384::ecdsa::SigningKey::from_slice(&[5u8; 48]).unwrap();
    let key = d.put("id.pem", k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes());
    let (v, s) = (d.path("v.igvm"), d.path("s.igvm"));
    let (rc, out, err) = run(&[
        "sign",
        p(&v),
        "--id-key",
        p(&key),
        "-o",
        p(&s),
        "--qemu-options",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        j["qemu_options"].as_str().unwrap().starts_with("id-block="),
        "{j}"
    );
    let (rc, _, err) = run(&["measure", p(&v), p(&v), "-v"]);
    assert_eq!(rc, 2, "{err}");
}

#[test]
fn parameter_areas_together_are_bounded() {
    // Each area may be 64 MiB, but a file of many small headers must not expand into
    // hundreds of millions of measured pages: the sum is bounded too.
    use igvm::IgvmDirectiveHeader;
    use igvm_defs::IGVM_VHS_PARAMETER_INSERT;
    let d = Dir::new();
    let (rc, _, err) = d.build(&d.path("guest.elf"), "v.igvm", &["--platforms", "snp"]);
    assert_eq!(rc, 0, "{err}");
    let (f, _) = vigil_igvm::reader::parse(&std::fs::read(d.path("v.igvm")).unwrap()).unwrap();
    let mut dirs = f.directives().to_vec();
    let vp = dirs.pop().unwrap(); // keep the VMSA last
    for k in 0..3u32 {
        dirs.push(IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 32 << 20,
            parameter_area_index: 10 + k,
            initial_data: vec![],
        });
        dirs.push(IgvmDirectiveHeader::ParameterInsert(
            IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x1_0000_0000 + u64::from(k) * (32 << 20),
                compatibility_mask: 1,
                parameter_area_index: 10 + k,
            },
        ));
    }
    dirs.push(vp);
    let nf = igvm::IgvmFile::new(
        igvm::IgvmRevision::V1,
        f.platforms().to_vec(),
        f.initializations().to_vec(),
        dirs,
    )
    .unwrap();
    let mut bytes = Vec::new();
    nf.serialize(&mut bytes).unwrap();
    let big = d.put("areas.igvm", &bytes);
    let (rc, _, err) = run(&["measure", p(&big)]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("sum to more than 0x4000000 bytes"), "{err}");
    let (rc, out, _) = run(&["lint", p(&big)]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("[param-size]"), "{out}");
}
