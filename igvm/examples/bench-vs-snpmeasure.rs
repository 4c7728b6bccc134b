//! Whole-process time of `vigil-igvm measure` against sev-snp-measure on the same
//! 4 MiB OVMF image, in the same run.
//!
//! Run: `cargo build --release -p vigil-igvm && cargo run --release -p vigil-igvm --example bench-vs-snpmeasure [RUNS]`
//!
//! The image is synthetic (4 MiB - 4 KiB of pseudo-random bytes + the AmdSev fixture's
//! last 4 KiB, so it has a footer table and SEV metadata), written to a temporary file
//! that both tools read. Each tool runs RUNS times (default 10) alternately; the mean
//! and minimum wall-clock times and the ratio are printed, and both digests must agree.
#![warn(clippy::too_many_lines)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn ours() -> PathBuf {
    // target/release/examples/bench-vs-snpmeasure -> target/release/vigil-igvm
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("vigil-igvm")
}

fn time(cmd: &mut Command) -> (Duration, String) {
    let t = Instant::now();
    let o = cmd.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (d, String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let bin = ours();
    if !bin.exists() {
        eprintln!(
            "build the binary first: cargo build --release -p vigil-igvm ({} missing)",
            bin.display()
        );
        std::process::exit(2);
    }
    let has_py = Command::new("sev-snp-measure")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_py {
        println!("SKIPPED: sev-snp-measure not installed (pip install sev-snp-measure)");
        return;
    }
    let suffix = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/measure/ovmf_AmdSev_suffix.bin"
    ))
    .unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut img: Vec<u8> = (0..(4 << 20) - 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    img.extend_from_slice(&suffix);
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ovmf = dir.join("OVMF-4MiB.fd");
    std::fs::write(&ovmf, &img).unwrap();
    let args = [
        "--mode",
        "snp",
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
        "--guest-features",
        "0x21",
        "--ovmf",
    ];
    let mut inputs = vec![(
        "synthetic 4 MiB OVMF (random pages)".to_string(),
        ovmf.clone(),
    )];
    let debian = PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd");
    if debian.exists() {
        inputs.push(("Debian OVMF_CODE_4M.fd (3.5 MiB)".to_string(), debian));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("--mode snp, 4 vCPUs; {runs} runs per tool per input, alternating; {cores} CPU(s) available");
    for (name, path) in inputs {
        let (mut tu, mut tp) = (Vec::new(), Vec::new());
        let (mut du, mut dp) = (String::new(), String::new());
        for _ in 0..runs {
            let (d, o) = time(Command::new(&bin).arg("measure").args(args).arg(&path));
            tu.push(d);
            du = o;
            let (d, o) = time(Command::new("sev-snp-measure").args(args).arg(&path));
            tp.push(d);
            dp = o;
        }
        assert_eq!(du, dp, "the two tools disagree on {name}");
        let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
        let min = |v: &[Duration]| *v.iter().min().unwrap();
        println!("input: {name}; digest (both): {du}");
        println!(
            "  vigil-igvm      mean {:8.1} ms  min {:8.1} ms",
            mean(&tu).as_secs_f64() * 1e3,
            min(&tu).as_secs_f64() * 1e3
        );
        println!(
            "  sev-snp-measure mean {:8.1} ms  min {:8.1} ms",
            mean(&tp).as_secs_f64() * 1e3,
            min(&tp).as_secs_f64() * 1e3
        );
        println!(
            "  ratio (sev-snp-measure / vigil-igvm): mean {:.1}x  min {:.1}x",
            mean(&tp).as_secs_f64() / mean(&tu).as_secs_f64(),
            min(&tp).as_secs_f64() / min(&tu).as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
