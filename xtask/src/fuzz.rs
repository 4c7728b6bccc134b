//! Fuzzing: the targets in fuzz/ are compiled by every `cargo xtask test` (step
//! `fuzz-build`, on the pinned stable toolchain, so that an API change that breaks a
//! target fails the run), and `cargo xtask fuzz` runs a recorded campaign with cargo-fuzz
//! on nightly (both installed by it when missing) and prints, per target, the executions,
//! their rate, the corpus size, the coverage libFuzzer saw and the crashes it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::error::{Result, XtaskError};
use crate::steps::Ctx;

/// The `[[bin]]` names of fuzz/Cargo.toml: the fuzz targets.
pub fn targets(root: &Path) -> Result<Vec<String>> {
    let path = root.join("fuzz").join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| XtaskError::Io {
        path: path.clone(),
        source,
    })?;
    parse_targets(&text).map_err(|e| XtaskError::Check(format!("{}: {e}", path.display())))
}

fn parse_targets(text: &str) -> std::result::Result<Vec<String>, String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let bins = doc
        .get("bin")
        .and_then(|b| b.as_array())
        .ok_or("no [[bin]] entries")?;
    bins.iter()
        .map(|b| {
            b.get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| "a [[bin]] without a name".to_string())
        })
        .collect()
}

/// Step `fuzz-build`: every fuzz target type-checks against today's crates (their own
/// workspace and lock file; the stable toolchain; a target directory of their own).
/// Without the default feature `link-libfuzzer`: a check needs no libFuzzer, and its
/// C++ build was most of the step's time.
pub fn step_build(ctx: &mut Ctx) -> Result<String> {
    let names = targets(&ctx.ws.root)?;
    let dir = ctx.ws.target.join("fuzz-check");
    let dir_s = dir.to_string_lossy().into_owned();
    ctx.cargo(&[
        "check",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--bins",
        "--no-default-features",
        "--target-dir",
        &dir_s,
    ])?;
    Ok(format!("{} targets: {}", names.len(), names.join(", ")))
}

/// What one campaign run of a target produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Executions libFuzzer reported (`stat::number_of_executed_units`).
    pub execs: u64,
    /// Its average rate (`stat::average_exec_per_sec`).
    pub per_sec: u64,
    /// Coverage counters on the last status line (`cov:`).
    pub cov: u64,
    /// Features on the last status line (`ft:`).
    pub features: u64,
    /// Peak resident memory, MiB (`stat::peak_rss_mb`).
    pub peak_rss_mb: u64,
    /// Crash/timeout/leak artifacts libFuzzer wrote.
    pub artifacts: Vec<String>,
}

/// Reads libFuzzer's output (`-print_final_stats=1`).
pub fn parse_output(text: &str) -> Outcome {
    let mut o = Outcome::default();
    let stat = |line: &str, key: &str| -> Option<u64> {
        line.strip_prefix(key)
            .and_then(|r| r.trim_start_matches(':').trim().parse().ok())
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = stat(l, "stat::number_of_executed_units") {
            o.execs = v;
        } else if let Some(v) = stat(l, "stat::average_exec_per_sec") {
            o.per_sec = v;
        } else if let Some(v) = stat(l, "stat::peak_rss_mb") {
            o.peak_rss_mb = v;
        }
        // Status lines: "#1234 NEW    cov: 56 ft: 78 corp: ..." and the final "DONE".
        if l.starts_with('#') {
            let mut words = l.split_whitespace();
            while let Some(w) = words.next() {
                match w {
                    "cov:" => o.cov = words.next().and_then(|n| n.parse().ok()).unwrap_or(o.cov),
                    "ft:" => {
                        o.features = words
                            .next()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(o.features)
                    }
                    _ => {}
                }
            }
        }
        if let Some(i) = l.find("Test unit written to ") {
            o.artifacts
                .push(l[i + "Test unit written to ".len()..].trim().to_string());
        }
    }
    o
}

fn clean_command(program: &str) -> Command {
    let mut c = Command::new(program);
    // Inside `cargo xtask` cargo has set these to the pinned stable toolchain; nightly
    // must be chosen by name instead.
    c.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    c
}

fn run_ok(mut c: Command, what: &str) -> Result<()> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| XtaskError::Spawn {
            program: what.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(XtaskError::CommandFailed {
            command: what.to_string(),
            status: format!("{}\n{}", out.status, crate::cargo::tail(&text, 20)),
        })
    }
}

/// Nightly (for the sanitizer flags cargo-fuzz passes) and cargo-fuzz, installed when
/// missing. Returns the cargo-fuzz binary.
fn ensure_tools(root: &Path) -> Result<PathBuf> {
    let mut probe = clean_command("rustup");
    probe
        .args(["run", "nightly", "rustc", "--version"])
        .current_dir(root);
    if run_ok(probe, "rustup run nightly rustc --version").is_err() {
        println!("    nightly missing: rustup toolchain install nightly --profile minimal");
        let mut c = clean_command("rustup");
        c.args(["toolchain", "install", "nightly", "--profile", "minimal"])
            .current_dir(root);
        run_ok(c, "rustup toolchain install nightly --profile minimal")?;
    }
    let home_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin").join("cargo-fuzz"));
    let found = crate::toolchain::which("cargo-fuzz").or(home_bin.filter(|p| p.is_file()));
    if let Some(p) = found {
        return Ok(p);
    }
    println!("    cargo-fuzz missing: cargo install cargo-fuzz --locked (a few minutes)");
    let mut c = clean_command("cargo");
    c.args(["install", "cargo-fuzz", "--locked"])
        .current_dir(root);
    run_ok(c, "cargo install cargo-fuzz --locked")?;
    crate::toolchain::which("cargo-fuzz")
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cargo/bin/cargo-fuzz"))
                .filter(|p| p.is_file())
        })
        .ok_or_else(|| {
            XtaskError::Check(
                "cargo-fuzz installed but not found on PATH or in ~/.cargo/bin".into(),
            )
        })
}

fn corpus_files(root: &Path, target: &str) -> usize {
    std::fs::read_dir(root.join("fuzz").join("corpus").join(target))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// `cargo xtask fuzz`: runs each target (all by default) for at most `runs` executions
/// and `max_secs` seconds, and prints a table of what it found. Returns false when a
/// target crashed or could not run.
pub fn campaign(root: &Path, only: &[String], runs: u64, max_secs: u64) -> Result<bool> {
    let all = targets(root)?;
    let unknown: Vec<&String> = only.iter().filter(|t| !all.contains(t)).collect();
    if !unknown.is_empty() {
        return Err(XtaskError::Check(format!(
            "unknown fuzz target(s) {unknown:?}; the targets are: {}",
            all.join(", ")
        )));
    }
    let chosen: Vec<&String> = all
        .iter()
        .filter(|t| only.is_empty() || only.contains(t))
        .collect();
    let cargo_fuzz = ensure_tools(root)?;
    let mut rows = Vec::new();
    let mut clean = true;
    for t in chosen {
        let corpus_before = corpus_files(root, t);
        println!("    fuzzing {t} (at most {runs} runs, {max_secs} s) ...");
        let start = Instant::now();
        let mut c = clean_command("rustup");
        c.args(["run", "nightly"])
            .arg(&cargo_fuzz)
            .args(["fuzz", "run", t, "--", "-print_final_stats=1"])
            .arg(format!("-runs={runs}"))
            .arg(format!("-max_total_time={max_secs}"))
            .current_dir(root)
            .stdin(Stdio::null());
        let out = c.output().map_err(|source| XtaskError::Spawn {
            program: "cargo fuzz".into(),
            source,
        })?;
        let secs = start.elapsed().as_secs_f64();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let o = parse_output(&text);
        let ok = out.status.success() && o.artifacts.is_empty() && o.execs > 0;
        if !ok {
            clean = false;
            println!(
                "      {t}: FAILED ({})\n{}",
                out.status,
                crate::cargo::tail(&text, 30)
            );
        }
        rows.push((t.clone(), o, corpus_before, corpus_files(root, t), secs, ok));
    }
    println!();
    println!("| target | executions | execs/s | corpus (before -> after) | cov | ft | peak RSS MiB | crashes | wall s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (t, o, before, after, secs, ok) in &rows {
        println!(
            "| {t} | {} | {} | {before} -> {after} | {} | {} | {} | {} | {secs:.0} |",
            o.execs,
            o.per_sec,
            o.cov,
            o.features,
            o.peak_rss_mb,
            if *ok {
                "0".to_string()
            } else if o.artifacts.is_empty() {
                "run failed".to_string()
            } else {
                o.artifacts.join(" ")
            }
        );
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_file_is_a_bin_of_the_fuzz_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = targets(&root).expect("fuzz/Cargo.toml parses");
        let files: Vec<String> = std::fs::read_dir(root.join("fuzz/fuzz_targets"))
            .expect("fuzz_targets")
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".rs")
                    .map(str::to_string)
            })
            .collect();
        for f in &files {
            assert!(names.contains(f), "fuzz_targets/{f}.rs is not a [[bin]]");
        }
        assert_eq!(names.len(), files.len());
    }

    #[test]
    fn reads_libfuzzer_final_stats_and_artifacts() {
        let text = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
#4096\tpulse  cov: 120 ft: 300 corp: 20/400b lim: 43 exec/s: 2048 rss: 40Mb\n\
#1000000\tDONE   cov: 130 ft: 320 corp: 25/500b lim: 4096 exec/s: 5000 rss: 50Mb\n\
Done 1000000 runs in 200 second(s)\n\
stat::number_of_executed_units: 1000000\nstat::average_exec_per_sec:     5000\n\
stat::new_units_added:          24\nstat::slowest_unit_time_sec:    0\nstat::peak_rss_mb:              50\n";
        let o = parse_output(text);
        assert_eq!(o.execs, 1_000_000);
        assert_eq!(o.per_sec, 5000);
        assert_eq!((o.cov, o.features), (130, 320));
        assert_eq!(o.peak_rss_mb, 50);
        assert!(o.artifacts.is_empty());
        let crash = "==1== ERROR: libFuzzer: deadly signal\n\
artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-abc\n";
        assert_eq!(
            parse_output(crash).artifacts,
            vec!["fuzz/artifacts/x/crash-abc"]
        );
    }

    #[test]
    fn target_list_errors_are_named() {
        assert!(parse_targets("[package]\nname='x'\n")
            .unwrap_err()
            .contains("[[bin]]"));
        assert!(parse_targets("[[bin]]\npath='a.rs'\n")
            .unwrap_err()
            .contains("without a name"));
    }
}
