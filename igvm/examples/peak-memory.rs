//! Peak memory (maximum resident set size, from `/usr/bin/time -v`) of `vigil-igvm` when
//! each input option names `/dev/zero`, and when a regular file is just above its limit.
//! Every run must be refused (exit 1); the table goes into docs/igvm.md.
//!
//! Run: `cargo build --release -p vigil-igvm && cargo run --release -p vigil-igvm --example peak-memory`
//!
//! The other inputs of each command are small valid files written to a temporary
//! directory (a test kernel and guest ELF, a 1 MiB OVMF image from the AmdSev fixture,
//! a built IGVM file, a P-384 public key).
#![warn(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn ours() -> PathBuf {
    // target/release/examples/peak-memory -> target/release/vigil-igvm
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("vigil-igvm")
}

/// A minimal x86-64 ELF with one PT_LOAD of `data` at `paddr`, entry `paddr`.
fn elf(paddr: u64, data: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 4096];
    e[0..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&62u16.to_le_bytes());
    e[24..32].copy_from_slice(&paddr.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[54..56].copy_from_slice(&56u16.to_le_bytes());
    e[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    e[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    e[ph + 8..ph + 16].copy_from_slice(&4096u64.to_le_bytes());
    e[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
    e[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
    e[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    e[ph + 40..ph + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
    e.extend_from_slice(data);
    e
}

/// (exit code, max RSS in KiB) of one run under /usr/bin/time -v.
fn peak(args: &[&str]) -> (i32, u64) {
    let o = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(ours())
        .args(args)
        .output()
        .expect("/usr/bin/time");
    let err = String::from_utf8_lossy(&o.stderr);
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let code = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Exit status: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1);
    (code, rss)
}

fn put(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p.to_str().expect("utf-8 path").to_string()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("vigil-peak-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let kernel = put(&dir, "kernel.elf", &elf(0x10_0000, &[0x90; 8192]));
    let guest = put(&dir, "guest.elf", &elf(0x100_0000, &[0xf4; 4096]));
    let mut ovmf = vec![0x5au8; (1 << 20) - 4096];
    ovmf.extend_from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/measure/ovmf_AmdSev_suffix.bin"
        ))
        .expect("fixture"),
    );
    let ovmf = put(&dir, "ovmf.fd", &ovmf);
    let igvm = dir.join("v.igvm");
    let igvm_s = igvm.to_str().expect("utf-8").to_string();
    let (code, _) = peak(&[
        "build",
        "--kernel",
        &kernel,
        "--firmware",
        &guest,
        "-o",
        &igvm_s,
    ]);
    assert_eq!(code, 0, "building the IGVM file failed");
    let out = dir.join("o.igvm").to_str().expect("utf-8").to_string();
    let z = "/dev/zero";
    let snp = [
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        snp.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("measure FILE", v(&["measure", z])),
        ("measure --ovmf", with(&["--ovmf", z])),
        (
            "measure --kernel (hashed while read)",
            with(&["--ovmf", &ovmf, "--kernel", z]),
        ),
        (
            "measure --initrd (hashed while read)",
            with(&["--ovmf", &ovmf, "--kernel", &kernel, "--initrd", z]),
        ),
        (
            "measure --svsm",
            v(&[
                "measure",
                "--mode",
                "snp:svsm",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--ovmf",
                &ovmf,
                "--svsm",
                z,
                "--vars-size",
                "0",
            ]),
        ),
        (
            "measure --vars-file (counted)",
            v(&[
                "measure",
                "--mode",
                "snp:svsm",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC-v4",
                "--ovmf",
                &ovmf,
                "--svsm",
                &ovmf,
                "--vars-file",
                z,
            ]),
        ),
        (
            "build --kernel",
            v(&["build", "--kernel", z, "--firmware", &guest, "-o", &out]),
        ),
        (
            "build --firmware",
            v(&["build", "--kernel", &kernel, "--firmware", z, "-o", &out]),
        ),
        (
            "build --policy",
            v(&[
                "build",
                "--kernel",
                &kernel,
                "--firmware",
                &guest,
                "--policy",
                z,
                "-o",
                &out,
            ]),
        ),
        ("inspect FILE", v(&["inspect", z])),
        ("lint FILE", v(&["lint", z])),
        ("refs FILE", v(&["refs", z])),
        ("qemu-args FILE", v(&["qemu-args", z])),
        ("sign FILE", v(&["sign", z, "--verify"])),
        (
            "sign --id-key",
            v(&["sign", &igvm_s, "--id-key", z, "-o", &out]),
        ),
        (
            "sign --id-pubkey",
            v(&["sign", &igvm_s, "--emit-tbs", &out, "--id-pubkey", z]),
        ),
        (
            "measure --vcpus 4294967295",
            v(&["measure", &igvm_s, "--vcpus", "4294967295"]),
        ),
    ];
    println!("| input option (`/dev/zero`) | exit | peak RSS |");
    println!("|---|---|---|");
    for (name, args) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, kib) = peak(&a);
        assert!(code == 1 || code == 2, "{name}: exit {code}, not refused");
        println!("| {name} | {code} | {:.1} MiB |", kib as f64 / 1024.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
