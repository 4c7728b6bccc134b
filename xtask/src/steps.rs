//! Steps: each command is a list of named steps, one progress line each.
//!
//! Later issues extend `cargo xtask run` and `cargo xtask test` by adding steps to the
//! lists in main.rs; a step is a function from the shared [`Ctx`] to a one-line detail.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cargo::{capture_env, cargo, tail};
use crate::elf::{baseline_image, check_image, ImageFacts, MAX_IMAGE_SIZE};
use crate::error::{Result, XtaskError};
use crate::paths::{Flavour, Workspace, KERNEL_TARGET};
use crate::qemu::{choose_auto, find_or_install, Accel, Qemu};

/// How the accelerator is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when /dev/kvm works and a probe boot succeeds, else TCG.
    Auto,
    /// Always TCG.
    Tcg,
    /// Always KVM.
    Kvm,
}

/// State shared by the steps of one command.
pub struct Ctx {
    /// Paths.
    pub ws: Workspace,
    /// The accelerator policy.
    pub accel_choice: AccelChoice,
    qemu: Option<Qemu>,
    auto: Option<(Accel, String)>,
    /// Crates compiled by all cargo invocations so far.
    pub compiled: Vec<String>,
    /// Checks that did not run, each with its reason (printed in the summary).
    pub skipped: Vec<String>,
}

impl Ctx {
    /// A fresh context.
    pub fn new(ws: Workspace, accel_choice: AccelChoice) -> Self {
        Ctx {
            ws,
            accel_choice,
            qemu: None,
            auto: None,
            compiled: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// QEMU, found (or installed) on first use.
    pub fn qemu(&mut self) -> Result<Qemu> {
        if let Some(q) = &self.qemu {
            return Ok(q.clone());
        }
        let q = find_or_install(&mut |m| println!("    {m}"))?;
        self.qemu = Some(q.clone());
        Ok(q)
    }

    /// Writes the baseline image (the KVM probe and the benchmark use it).
    pub fn baseline_image(&self) -> Result<PathBuf> {
        let dir = self.ws.scratch();
        std::fs::create_dir_all(&dir).map_err(|source| XtaskError::Io {
            path: dir.clone(),
            source,
        })?;
        let p = dir.join("baseline-pvh.elf");
        std::fs::write(&p, baseline_image()).map_err(|source| XtaskError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(p)
    }

    /// The result of the `auto` policy (probed once): the accelerator and why.
    pub fn auto_accel(&mut self) -> Result<(Accel, String)> {
        if let Some(a) = &self.auto {
            return Ok(a.clone());
        }
        let q = self.qemu()?;
        let probe = self.baseline_image()?;
        let a = choose_auto(&q, &probe);
        self.auto = Some(a.clone());
        Ok(a)
    }

    /// The accelerator for a single run.
    pub fn accel(&mut self) -> Result<(Accel, String)> {
        match self.accel_choice {
            AccelChoice::Tcg => Ok((Accel::Tcg, "asked for (--accel tcg)".into())),
            AccelChoice::Kvm => Ok((Accel::Kvm, "asked for (--accel kvm)".into())),
            AccelChoice::Auto => self.auto_accel(),
        }
    }

    /// The accelerators the QEMU tests run on: TCG always (it is what CI has), plus KVM
    /// when `auto` finds it usable.
    pub fn test_accels(&mut self) -> Result<Vec<Accel>> {
        match self.accel_choice {
            AccelChoice::Tcg => Ok(vec![Accel::Tcg]),
            AccelChoice::Kvm => Ok(vec![Accel::Kvm]),
            AccelChoice::Auto => {
                let (a, _) = self.auto_accel()?;
                Ok(if a == Accel::Kvm {
                    vec![Accel::Tcg, Accel::Kvm]
                } else {
                    vec![Accel::Tcg]
                })
            }
        }
    }

    /// Runs cargo, failing with its output; records what it compiled.
    pub fn cargo(&mut self, args: &[&str]) -> Result<usize> {
        let c = cargo(args, &self.ws.root)?;
        let n = c.compiled.len();
        self.compiled.extend(c.compiled);
        if c.success {
            Ok(n)
        } else {
            Err(XtaskError::CommandFailed {
                command: format!("cargo {}", args.join(" ")),
                status: format!("{}\n{}", c.status, tail(&c.output, 80)),
            })
        }
    }

    /// Runs cargo with extra environment variables and returns its captured output on
    /// success (for `cargo test`).
    pub fn cargo_output_env(
        &mut self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(usize, String)> {
        let c = capture_env("cargo", args, &self.ws.root, env)?;
        let n = c.compiled.len();
        self.compiled.extend(c.compiled);
        if c.success {
            Ok((n, c.output))
        } else {
            Err(XtaskError::CommandFailed {
                command: format!("cargo {}", args.join(" ")),
                status: format!("{}\n{}", c.status, tail(&c.output, 80)),
            })
        }
    }
}

/// The pinned toolchain with its targets and components, installed and checked
/// (xtask/src/toolchain.rs says why `rustup toolchain install` alone is not enough).
pub fn toolchain(ctx: &mut Ctx) -> Result<String> {
    crate::toolchain::ensure(&ctx.ws.root)
}

/// Builds one kernel flavour (release, stripped, own target directory), checks the
/// image, and returns its path and facts.
pub fn build_kernel(ctx: &mut Ctx, flavour: Flavour) -> Result<(PathBuf, ImageFacts, usize)> {
    let dir = ctx.ws.kernel_target_dir(flavour);
    let dir_s = dir.to_string_lossy().into_owned();
    let mut args = vec![
        "build",
        "-p",
        "svsm",
        "--bin",
        "svsm",
        "--target",
        KERNEL_TARGET,
        "--release",
        "--target-dir",
        &dir_s,
        // Strip at link time (rustc -C strip=symbols): no objcopy needed. Always passed for
        // this target directory, so it never invalidates the cache.
        "--config",
        "profile.release.strip=\"symbols\"",
        // Size: the monitor and its cryptography are linked in for the emulated platform;
        // optimise for size with whole-program LTO (328 KiB at opt-level 3 without LTO).
        "--config",
        "profile.release.opt-level=\"s\"",
        "--config",
        "profile.release.lto=\"fat\"",
        "--config",
        "profile.release.codegen-units=1",
    ];
    if let Some(f) = flavour.features() {
        args.push("--features");
        args.push(f);
    }
    let n = ctx.cargo(&args)?;
    let image = ctx.ws.kernel_image(flavour);
    let data = std::fs::read(&image).map_err(|source| XtaskError::Io {
        path: image.clone(),
        source,
    })?;
    let facts = check_image(&data).map_err(|what| XtaskError::BadImage {
        path: image.clone(),
        what,
    })?;
    if facts.has_symbols {
        return Err(XtaskError::BadImage {
            path: image,
            what: "has a symbol table: not stripped".into(),
        });
    }
    if facts.size > MAX_IMAGE_SIZE {
        return Err(XtaskError::BadImage {
            path: image,
            what: format!(
                "{} bytes, over the {} byte limit",
                facts.size, MAX_IMAGE_SIZE
            ),
        });
    }
    Ok((image, facts, n))
}

/// One step.
pub struct Step {
    /// Short name (for `--only`/`--skip` and the summary).
    pub name: &'static str,
    /// What it runs.
    pub what: &'static str,
    /// The step.
    pub run: fn(&mut Ctx) -> Result<String>,
}

/// The outcome of one step.
pub struct StepResult {
    /// Step name.
    pub name: &'static str,
    /// Error text, if it failed.
    pub error: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Crates it compiled.
    pub compiled: usize,
}

/// Runs the steps in order (all of them, even after a failure, so that one run shows
/// every problem), printing one progress line each.
pub fn run_steps(ctx: &mut Ctx, steps: &[&Step]) -> Vec<StepResult> {
    let mut out = Vec::new();
    let n = steps.len();
    for (i, s) in steps.iter().enumerate() {
        print!("[{}/{}] {:<15} {} ... ", i + 1, n, s.name, s.what);
        let _ = std::io::stdout().flush();
        let before = ctx.compiled.len();
        let t = Instant::now();
        let r = (s.run)(ctx);
        let elapsed = t.elapsed();
        let compiled = ctx.compiled.len() - before;
        let rebuilt = if compiled == 0 {
            String::new()
        } else {
            format!("; {compiled} crate(s) compiled")
        };
        match r {
            Ok(detail) => {
                println!("ok ({:.1} s{rebuilt}) {detail}", elapsed.as_secs_f64());
                out.push(StepResult {
                    name: s.name,
                    error: None,
                    elapsed,
                    compiled,
                });
            }
            Err(e) => {
                println!("FAILED ({:.1} s{rebuilt})", elapsed.as_secs_f64());
                for l in e.to_string().lines() {
                    println!("      {l}");
                }
                out.push(StepResult {
                    name: s.name,
                    error: Some(e.to_string()),
                    elapsed,
                    compiled,
                });
            }
        }
    }
    out
}

/// Prints the summary and returns the process exit code (0 = all passed).
pub fn summarize(results: &[StepResult], compiled: &[String], skipped: &[String]) -> i32 {
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.name)
        .collect();
    let total: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    println!();
    println!("summary:");
    for r in results {
        println!(
            "  {:<15} {:<7} {:>6.1} s  {} crate(s) compiled",
            r.name,
            if r.error.is_none() { "ok" } else { "FAILED" },
            r.elapsed.as_secs_f64(),
            r.compiled
        );
    }
    let mut uniq: Vec<&String> = compiled.iter().collect();
    uniq.sort();
    uniq.dedup();
    println!(
        "  {} step(s), {} passed, {} failed; {:.1} s; crates compiled in this run: {}{}",
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        total,
        compiled.len(),
        if uniq.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = uniq.iter().take(12).map(|s| s.as_str()).collect();
            let more = uniq.len().saturating_sub(names.len());
            format!(
                " ({}{})",
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        }
    );
    // Checks that did not run are said, with their reason, right above the closing line
    // (under CI a missing oracle fails its test instead: igvm/tests/common/oracle.rs).
    if !skipped.is_empty() {
        println!("skipped: {} check(s) did not run:", skipped.len());
        for s in skipped {
            println!("  skipped: {s}");
        }
    }
    // The closing line in the plain `N passed, N failed` form that CI reads.
    println!(
        "steps: {} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        0
    } else {
        println!("FAILED: {}", failed.join(", "));
        1
    }
}
