//! `cargo xtask`: build, run, test and bench Vigil.
//!
//! Exit codes: 0 success; 1 a step or check failed (the failing steps are named);
//! 2 bad command line (clap).
#![forbid(unsafe_code)]

mod bench;
mod bench_model;
mod cargo;
mod cpio;
mod doc_commands;
mod e2e;
mod elf;
mod error;
mod fuzz;
mod ktest;
mod linux;
mod model;
mod paths;
mod qemu;
mod steps;
mod toolchain;

use std::time::Duration;

use clap::{Parser, Subcommand};

use error::XtaskError;
use paths::{Flavour, Workspace};
use qemu::{boot, describe_status, Accel, BootSpec, STATUS_SUCCESS};
use steps::{build_kernel, run_steps, summarize, toolchain, AccelChoice, Ctx, Step};

const EXAMPLES: &str = "Examples:
  cargo xtask build                      # toolchain, kernel image (stripped, size printed), host tools
  cargo xtask run                        # boot the kernel in QEMU (KVM if usable, else TCG)
  cargo xtask run --accel tcg --append log=debug
  cargo xtask test                       # fmt, clippy, host tests, QEMU kernel tests
  cargo xtask test --only ktest --only ktest-solo
  cargo xtask test --list                # the step names
  cargo xtask bench boot -n 20           # boot time under TCG, median/min/max, with a baseline
  cargo xtask bench exits -n 1000        # SVSM call round trip (TSC cycles) and exit counts
  cargo xtask fuzz --runs 1000000        # fuzz campaign, every target (nightly + cargo-fuzz installed)
  cargo xtask fuzz svsm_call --max-time 60
  cargo xtask model                      # the SNP machine model runs the tests' SNP probe
  cargo xtask linux                      # Debian trixie's kernel + the project's initramfs, booted as a plain VM";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and bench Vigil", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the pinned toolchain, build the kernel image (checked, stripped, size
    /// printed) and the host tools.
    Build,
    /// Build and boot the kernel in QEMU, showing its serial output; run the test guest
    /// below Vigil on the emulated platform (evidence verified); then the SNP path: the
    /// tests' SNP probe and Vigil's own IGVM file in the SNP machine model.
    Run {
        /// Accelerator: auto = KVM if /dev/kvm works and a probe boot succeeds, else TCG.
        #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
        accel: AccelChoice,
        /// Kernel command line (e.g. `log=debug`).
        #[arg(long, default_value = "")]
        append: String,
        /// Seconds before a hung kernel is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run every check: fmt, clippy (host and kernel), host tests, QEMU kernel tests.
    Test {
        /// Run only these steps (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Skip these steps (repeatable).
        #[arg(long)]
        skip: Vec<String>,
        /// Accelerator for the QEMU steps: auto = TCG, plus KVM when usable.
        #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
        accel: AccelChoice,
        /// List the steps and exit.
        #[arg(long)]
        list: bool,
    },
    /// A fuzz campaign with cargo-fuzz (nightly and cargo-fuzz are installed when missing):
    /// each target runs until `--runs` executions or `--max-time` seconds, then a table of
    /// executions, rate, corpus, coverage and crashes is printed. Exits 1 on a crash.
    Fuzz {
        /// Targets to run (default: every [[bin]] of fuzz/Cargo.toml).
        targets: Vec<String>,
        /// Executions per target.
        #[arg(long, default_value_t = 1_000_000)]
        runs: u64,
        /// Seconds per target at most.
        #[arg(long, default_value_t = 900)]
        max_time: u64,
    },
    /// The SNP machine model (issue 9): build the model's bare-metal program and the
    /// tests' SNP probe, package the probe as an IGVM file with vigil-igvm, run it in the
    /// model under QEMU (TCG, software SVM), and check the model's record (launch digest
    /// = vigil-igvm measure, the probe's steps, its termination) and the probe's report
    /// (vigil-verify against vigil-igvm refs, TEST root).
    Model,
    /// The Linux guest (issue 15): fetch Debian trixie's kernel with apt (cached under
    /// target/vigil-linux), build the initramfs with the project's init, and boot it as a
    /// plain VM under TCG (no SNP, no Vigil yet): the init must load configfs and tsm and
    /// be refused sev-guest.
    Linux,
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Random guest calls and hostile host behaviours on the simulated SNP machine, every
    /// invariant of DESIGN.md checked after every step (the monitor's `soak` example,
    /// built with optimisations).
    Soak {
        /// Number of random steps.
        #[arg(long, default_value_t = 1_000_000)]
        steps: u64,
        /// Seed of the random sequence (the same seed replays the same steps).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The SNP machine model (issue 9): host exits and TSC cycles per VMPL round trip
    /// and the time to VMPL0's and the lower VMPL's first instruction, from the model's
    /// record, with the model's hand-made guest as the baseline (xtask/src/bench_model.rs).
    Model,
    /// Boot the kernel N times and report the time to its banner and to its exit, with a
    /// baseline (a trivial PVH image, and `qemu -version`) measured in the same run.
    Boot {
        /// Boots per measurement.
        #[arg(short = 'n', long, default_value_t = 10)]
        runs: usize,
        /// Accelerator (the target is software emulation).
        #[arg(long, value_enum, default_value_t = Accel::Tcg)]
        accel: Accel,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Run the test guest below Vigil with its benchmark on: the guest-to-Vigil round
    /// trip of a trivial SVSM call in guest-visible TSC cycles, and Vigil's exit counts.
    Exits {
        /// SVSM calls timed.
        #[arg(short = 'n', long, default_value_t = 1000)]
        calls: u64,
    },
}

// ----------------------------------------------------------------------------------------
// Steps of `build`.

fn step_kernel(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let (image, facts, _) = build_kernel(ctx, Flavour::Release)?;
    Ok(format!(
        "{} ({} bytes = {:.1} KiB stripped, limit {} KiB; PVH entry {:#x})",
        image.display(),
        facts.size,
        facts.size as f64 / 1024.0,
        elf::MAX_IMAGE_SIZE / 1024,
        facts.pvh_entry
    ))
}

fn step_host_tools(ctx: &mut Ctx) -> Result<String, XtaskError> {
    ctx.cargo(&["build", "--workspace", "--bins"])?;
    Ok(format!(
        "binaries in {}",
        ctx.ws.target.join("debug").display()
    ))
}

static TOOLCHAIN: Step = Step {
    name: "toolchain",
    what: "pinned toolchain and x86_64-unknown-none target (installed, then checked)",
    run: toolchain,
};
static KERNEL: Step = Step {
    name: "kernel",
    what: "build the kernel image",
    run: step_kernel,
};
static HOST_TOOLS: Step = Step {
    name: "host-tools",
    what: "cargo build --workspace --bins",
    run: step_host_tools,
};

// ----------------------------------------------------------------------------------------
// Steps of `run`.

fn step_qemu(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let q = ctx.qemu()?;
    let (a, why) = ctx.accel()?;
    Ok(format!(
        "{} ({}); accelerator {}: {}",
        q.binary.display(),
        q.version,
        a.name(),
        why
    ))
}

static RUN_APPEND: std::sync::OnceLock<(String, u64)> = std::sync::OnceLock::new();

fn step_boot(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let q = ctx.qemu()?;
    let (accel, _) = ctx.accel()?;
    let image = ctx.ws.kernel_image(Flavour::Release);
    let (append, timeout) = RUN_APPEND.get().cloned().unwrap_or_default();
    println!();
    let o = boot(
        &q,
        &BootSpec {
            image: &image,
            append: &append,
            accel,
            timeout: Duration::from_secs(timeout),
            echo: true,
        },
    )?;
    if o.timed_out {
        return Err(XtaskError::Check(format!(
            "kernel hung: killed after {timeout} s; last output:\n{}",
            o.last_lines(10)
        )));
    }
    if !o.has_line(qemu::BANNER_MARKER) {
        return Err(XtaskError::Check("the kernel banner never appeared".into()));
    }
    if o.status != Some(STATUS_SUCCESS) {
        return Err(XtaskError::Check(format!(
            "kernel exited with {}{}",
            describe_status(o.status),
            if o.stderr.is_empty() {
                String::new()
            } else {
                format!("; QEMU: {}", o.stderr.trim())
            }
        )));
    }
    Ok(format!(
        "kernel exited with {} after {:.2} s ({})",
        describe_status(o.status),
        o.elapsed.as_secs_f64(),
        accel.name()
    ))
}

static QEMU: Step = Step {
    name: "qemu",
    what: "find QEMU, choose the accelerator",
    run: step_qemu,
};
static E2E: Step = Step {
    name: "e2e",
    what: "Vigil with the test guest below it (emulated), evidence verified",
    run: e2e::step_e2e,
};
static BOOT: Step = Step {
    name: "boot",
    what: "boot the kernel (banner, platform, memory map)",
    run: step_boot,
};

// ----------------------------------------------------------------------------------------
// Steps of `test`.

fn step_fmt(ctx: &mut Ctx) -> Result<String, XtaskError> {
    ctx.cargo(&["fmt", "--all", "--", "--check"])?;
    Ok(String::new())
}

fn step_clippy_host(ctx: &mut Ctx) -> Result<String, XtaskError> {
    ctx.cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    Ok(String::new())
}

fn step_clippy_kernel(ctx: &mut Ctx) -> Result<String, XtaskError> {
    for features in [None, Some("ktest"), Some("ktest-selftest-fail")] {
        let mut args = vec!["clippy", "-p", "svsm", "--target", paths::KERNEL_TARGET];
        if let Some(f) = features {
            args.extend(["--features", f]);
        }
        args.extend(["--", "-D", "warnings"]);
        ctx.cargo(&args)?;
    }
    // The other bare-metal crates: the shared scaffolding, the model's program, the probe.
    // One at a time: checked together, cargo would unify their dependencies' features
    // (the model's `alloc` users would make the probe need a global allocator it has no
    // use for), which is not how each of them is built.
    for p in ["vigil-bare", "snp-machine", "snp-probe"] {
        ctx.cargo(&[
            "clippy",
            "-p",
            p,
            "--target",
            paths::KERNEL_TARGET,
            "--",
            "-D",
            "warnings",
        ])?;
    }
    Ok(
        "kernel (no features, ktest, ktest-selftest-fail), vigil-bare, snp-machine, snp-probe"
            .into(),
    )
}

fn step_test_host(ctx: &mut Ctx) -> Result<String, XtaskError> {
    // Tests whose independent oracle is missing append one line each to this file
    // (igvm/tests/common/oracle.rs); the summary repeats them as skipped.
    let dir = ctx.ws.scratch();
    std::fs::create_dir_all(&dir).map_err(|source| XtaskError::Io {
        path: dir.clone(),
        source,
    })?;
    let log = dir.join("skipped-tests.txt");
    let _ = std::fs::remove_file(&log);
    let log_s = log.to_string_lossy().into_owned();
    let r = ctx.cargo_output_env(&["test", "--workspace"], &[("VIGIL_SKIP_LOG", &log_s)]);
    let skips: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| format!("test-host: {l}"))
        .collect();
    let n_skips = skips.len();
    ctx.skipped.extend(skips);
    let (_, out) = r?;
    let (mut passed, mut failed, mut ignored, mut suites) = (0u64, 0u64, 0u64, 0u64);
    for l in out.lines().filter(|l| l.starts_with("test result:")) {
        suites += 1;
        let num = |key: &str| -> u64 {
            l.split(';')
                .find(|p| p.trim_end().ends_with(key))
                .and_then(|p| p.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        passed += num("passed");
        failed += num("failed");
        ignored += num("ignored");
    }
    // cargo test's own per-binary summary lines pass through (CI reads them), one per
    // line after the step's progress line.
    let mut detail = format!(
        "{suites} test binaries: {passed} passed, {failed} failed, {ignored} ignored, {n_skips} skipped for a missing oracle"
    );
    for l in out.lines().filter(|l| l.starts_with("test result:")) {
        detail.push('\n');
        detail.push_str(l);
    }
    Ok(detail)
}

fn step_kernel_image(ctx: &mut Ctx) -> Result<String, XtaskError> {
    step_kernel(ctx)
}

const SUITE_TIMEOUT: Duration = Duration::from_secs(60);

fn step_ktest(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let (image, _, _) = build_kernel(ctx, Flavour::Ktest)?;
    let q = ctx.qemu()?;
    let mut parts = Vec::new();
    for accel in ctx.test_accels()? {
        let o = boot(
            &q,
            &BootSpec {
                image: &image,
                append: "ktest=all",
                accel,
                timeout: SUITE_TIMEOUT,
                echo: false,
            },
        )?;
        let r = ktest::judge_suite(&o)
            .map_err(|e| XtaskError::Check(format!("[{}] {e}", accel.name())))?;
        parts.push(format!(
            "{} passed on {} in {:.2} s",
            r.passed(),
            accel.name(),
            o.elapsed.as_secs_f64()
        ));
    }
    Ok(parts.join("; "))
}

fn step_ktest_solo(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let (image, _, _) = build_kernel(ctx, Flavour::Ktest)?;
    let q = ctx.qemu()?;
    let mut errors = Vec::new();
    let mut names = Vec::new();
    for e in ktest::SOLO {
        let append = format!("ktest={}", e.name);
        let o = boot(
            &q,
            &BootSpec {
                image: &image,
                append: &append,
                accel: Accel::Tcg,
                timeout: e.timeout,
                echo: false,
            },
        )?;
        match ktest::judge_solo(e, &o) {
            Ok(()) => names.push(match e.status {
                Some(s) => format!("{} (exit {s})", e.name),
                None => format!(
                    "{} (killed after {} s, output kept)",
                    e.name,
                    e.timeout.as_secs()
                ),
            }),
            Err(msg) => errors.push(msg),
        }
    }
    if errors.is_empty() {
        Ok(format!("TCG: {}", names.join(", ")))
    } else {
        Err(XtaskError::Check(errors.join("\n")))
    }
}

fn step_ktest_selftest(ctx: &mut Ctx) -> Result<String, XtaskError> {
    let (image, _, _) = build_kernel(ctx, Flavour::SelftestFail)?;
    let q = ctx.qemu()?;
    let o = boot(
        &q,
        &BootSpec {
            image: &image,
            append: "ktest=all",
            accel: Accel::Tcg,
            timeout: SUITE_TIMEOUT,
            echo: false,
        },
    )?;
    let report = ktest::judge_selftest(&o).map_err(XtaskError::Check)?;
    Ok(format!(
        "a failing in-kernel test fails the suite and is named: \"{report}\""
    ))
}

static FMT: Step = Step {
    name: "fmt",
    what: "cargo fmt --all -- --check",
    run: step_fmt,
};
static CLIPPY_HOST: Step = Step {
    name: "clippy-host",
    what: "cargo clippy --workspace --all-targets -- -D warnings",
    run: step_clippy_host,
};
static CLIPPY_KERNEL: Step = Step {
    name: "clippy-kernel",
    what: "cargo clippy of the bare-metal crates (kernel with each feature set, vigil-bare, snp-machine, snp-probe) for x86_64-unknown-none -- -D warnings",
    run: step_clippy_kernel,
};
static TEST_HOST: Step = Step {
    name: "test-host",
    what: "cargo test --workspace",
    run: step_test_host,
};
static KERNEL_IMAGE: Step = Step {
    name: "kernel-image",
    what: "build and check the kernel image",
    run: step_kernel_image,
};
static KTEST: Step = Step {
    name: "ktest",
    what: "in-kernel tests in QEMU (ktest=all)",
    run: step_ktest,
};
static KTEST_SOLO: Step = Step {
    name: "ktest-solo",
    what: "boot-ending tests, one QEMU boot each",
    run: step_ktest_solo,
};
static FUZZ_BUILD: Step = Step {
    name: "fuzz-build",
    what: "cargo check of every fuzz target (fuzz/, its own lock file)",
    run: fuzz::step_build,
};
static MODEL: Step = Step {
    name: "model",
    what: "the SNP machine model in QEMU runs the tests' SNP probe from its IGVM file",
    run: model::step_model,
};
static MODEL_VIGIL: Step = Step {
    name: "model-vigil",
    what: "Vigil's own IGVM file (kernel + test guest) in the SNP machine model",
    run: model::step_model_vigil,
};
static LINUX_SMOKE: Step = Step {
    name: "linux-smoke",
    what: "Debian trixie's kernel (apt) with the project's initramfs, booted as a plain VM",
    run: linux::step_smoke,
};
static KTEST_SELFTEST: Step = Step {
    name: "ktest-selftest",
    what: "a deliberately failing in-kernel test must fail the run",
    run: step_ktest_selftest,
};

/// The steps of `cargo xtask test`, in order. The first installs and checks the
/// pinned toolchain's bare-metal target (a fresh machine has none; CI removes it).
static TEST_STEPS: [&Step; 14] = [
    &TOOLCHAIN,
    &FMT,
    &CLIPPY_HOST,
    &CLIPPY_KERNEL,
    &TEST_HOST,
    &FUZZ_BUILD,
    &KERNEL_IMAGE,
    &KTEST,
    &KTEST_SOLO,
    &KTEST_SELFTEST,
    &E2E,
    &MODEL,
    &MODEL_VIGIL,
    &LINUX_SMOKE,
];

fn main() {
    let cli = Cli::parse();
    let ws = Workspace::locate();
    let code = match cli.cmd {
        Cmd::Build => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            let r = run_steps(&mut ctx, &[&TOOLCHAIN, &KERNEL, &HOST_TOOLS]);
            summarize(&r, &ctx.compiled, &ctx.skipped)
        }
        Cmd::Run {
            accel,
            append,
            timeout,
        } => {
            let _ = RUN_APPEND.set((append, timeout));
            let mut ctx = Ctx::new(ws, accel);
            let r = run_steps(
                &mut ctx,
                &[
                    &TOOLCHAIN,
                    &KERNEL,
                    &QEMU,
                    &BOOT,
                    &E2E,
                    &MODEL,
                    &MODEL_VIGIL,
                ],
            );
            summarize(&r, &ctx.compiled, &ctx.skipped)
        }
        Cmd::Test {
            only,
            skip,
            accel,
            list,
        } => {
            if list {
                for s in TEST_STEPS {
                    println!("{:<15} {}", s.name, s.what);
                }
                std::process::exit(0);
            }
            let unknown: Vec<&String> = only
                .iter()
                .chain(&skip)
                .filter(|n| !TEST_STEPS.iter().any(|s| s.name == n.as_str()))
                .collect();
            if !unknown.is_empty() {
                eprintln!("unknown step(s) {unknown:?}; `cargo xtask test --list` lists them");
                std::process::exit(2);
            }
            let steps: Vec<&Step> = TEST_STEPS
                .iter()
                .copied()
                .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
                .filter(|s| !skip.iter().any(|o| o == s.name))
                .collect();
            let mut ctx = Ctx::new(ws, accel);
            let r = run_steps(&mut ctx, &steps);
            summarize(&r, &ctx.compiled, &ctx.skipped)
        }
        Cmd::Fuzz {
            targets,
            runs,
            max_time,
        } => match fuzz::campaign(&ws.root, &targets, runs, max_time) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("fuzz: {e}");
                1
            }
        },
        Cmd::Model => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            let r = run_steps(&mut ctx, &[&TOOLCHAIN, &QEMU, &MODEL, &MODEL_VIGIL]);
            summarize(&r, &ctx.compiled, &ctx.skipped)
        }
        Cmd::Linux => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            let r = run_steps(&mut ctx, &[&TOOLCHAIN, &QEMU, &LINUX_SMOKE]);
            summarize(&r, &ctx.compiled, &ctx.skipped)
        }
        Cmd::Soak { steps, seed } => {
            let status = std::process::Command::new(env!("CARGO"))
                .current_dir(&ws.root)
                .args([
                    "run",
                    "--release",
                    "-p",
                    "monitor",
                    "--example",
                    "soak",
                    "--",
                ])
                .args(["--steps", &steps.to_string(), "--seed", &seed.to_string()])
                .status();
            match status {
                Ok(s) if s.success() => 0,
                Ok(s) => {
                    eprintln!("soak failed: {s}");
                    1
                }
                Err(e) => {
                    eprintln!("soak: could not run cargo: {e}");
                    1
                }
            }
        }
        Cmd::Bench {
            what: BenchWhat::Exits { calls },
        } => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            match e2e::bench_exits(&mut ctx, calls) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("bench exits failed: {e}");
                    1
                }
            }
        }
        Cmd::Bench {
            what: BenchWhat::Model,
        } => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            match bench_model::run(&mut ctx) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("bench model failed: {e}");
                    1
                }
            }
        }
        Cmd::Bench {
            what: BenchWhat::Boot { runs, accel, json },
        } => {
            let mut ctx = Ctx::new(ws, AccelChoice::Tcg);
            match bench::run(&mut ctx, runs, accel, json) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("bench boot failed: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
