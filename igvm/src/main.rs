//! `vigil-igvm`: build, measure, sign and inspect Vigil IGVM files.
//!
//! Exit codes (shared with vigil-verify): 0 success; 1 the input was examined and is bad
//! (not well-formed, lint errors, a signature or digest that does not verify); 2 usage
//! (bad or conflicting flags); 3 environment (a file cannot be opened, read or written).
//! Output to a closed stdout stops quietly. See `cli::output`.
#![forbid(unsafe_code)]
// No function over 150 lines (igvm/clippy.toml); `-D warnings` makes it an error.
#![warn(clippy::too_many_lines)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cli::build::{cmd_build, BuildArgs, BUILD_HELP};
use cli::measure::{cmd_measure, MeasureArgs, MEASURE_HELP};
use cli::output::{self, Fail};
use cli::sign::{cmd_sign, SignArgs, SIGN_HELP};
use cli::{batch, batch_coded, parse_vcpus, LoaderArgs};
use vigil_igvm::igvm_measure;
use vigil_igvm::limits;
use vigil_igvm::lint::{Finding, Severity};

const EXAMPLES: &str = "\
Examples:
  vigil-igvm measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd
  vigil-igvm measure --mode snp --vcpus 1 --vcpu-type EPYC-Milan --ovmf OVMF.fd \\
      --kernel vmlinuz --initrd initrd.img --append 'console=ttyS0' --guest-features 0x21
  vigil-igvm measure vigil.igvm --log json
  vigil-igvm build --kernel target/vigil-kernel/x86_64-unknown-none/release/svsm \\
      --firmware OVMF.fd --vcpus 2 -o vigil.igvm   (kernel from `cargo xtask build`)
  vigil-igvm inspect vigil.igvm --json
  vigil-igvm lint vigil.igvm other.igvm
  vigil-igvm refs vigil.igvm
  vigil-igvm qemu-args vigil.igvm --platform snp
  vigil-igvm sign vigil.igvm --id-key id.pem --author-key author.pem -o signed.igvm

--json (any command) prints one JSON document on every exit, {\"error\": {...}} on
failure; several input files give {\"results\": [...]}, one result each.

Exit codes: 0 success, 1 an input is bad (malformed file, lint errors, a signature
that does not verify), 2 usage (bad or conflicting flags), 3 environment (a file cannot
be read or written). A batch exits with the most severe: 2, then 3, then 1, then 0.
Output to a closed pipe (e.g. `| head`) stops quietly; the exit code is unchanged.";

#[derive(Parser)]
#[command(name = "vigil-igvm", version, about = "Build, measure, sign and inspect Vigil IGVM files", after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON document on stdout, also on failure ({"error": ...}).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// SNP launch digest of IGVM files, or of an OVMF image with sev-snp-measure's flags.
    #[command(after_help = MEASURE_HELP)]
    Measure(MeasureArgs),
    /// Build an IGVM file: Vigil kernel (VMPL0) + guest firmware + CPUID/secrets pages +
    /// boot parameters + boot VMSA, for the SNP and native platforms.
    #[command(after_help = BUILD_HELP)]
    Build(BuildArgs),
    /// Show what IGVM files contain (text, or --json).
    #[command(after_help = INSPECT_HELP)]
    Inspect(FilesArgs),
    /// Report what QEMU or KVM would refuse or measure differently (exit 1 on errors).
    #[command(after_help = LINT_HELP)]
    Lint(FilesArgs),
    /// Reference values for vigil-verify (JSON, schema vigil-refs/1).
    #[command(after_help = REFS_HELP)]
    Refs(RefsArgs),
    /// The exact QEMU command line for a file.
    #[command(after_help = QEMU_HELP)]
    QemuArgs(QemuArgs),
    /// Sign the SNP ID block (one step with keys, or two steps), or verify one.
    #[command(after_help = SIGN_HELP)]
    Sign(SignArgs),
}

const INSPECT_HELP: &str = "\
Examples:
  vigil-igvm inspect vigil.igvm
  vigil-igvm inspect vigil.igvm --json

Exit codes: 0 shown, 1 a file is not well-formed, 2 usage, 3 a file cannot be read.";

const LINT_HELP: &str = "\
Rules about QEMU assume its IGVM loader as of QEMU 10.1 (backends/igvm.c, the first
release with it); a platform Vigil does not run on (e.g. TDX) in a file not built by
vigil-igvm is a note, not an error.

Examples:
  vigil-igvm lint vigil.igvm
  vigil-igvm lint a.igvm b.igvm --json

Exit codes: 0 no errors, 1 lint errors or a file is not well-formed, 2 usage, 3 a file
cannot be read.";

const REFS_HELP: &str = "\
The vCPU count defaults to the file's own (the count `build --vcpus` wrote).

Examples:
  vigil-igvm refs vigil.igvm --vcpu-type EPYC-Milan > refs.json
  vigil-igvm refs vigil.igvm --platform native

Exit codes: 0 written, 1 the file is not well-formed, 2 usage, 3 a file cannot be read.";

const QEMU_HELP: &str = "\
QEMU >= 10.1 syntax (igvm-cfg object). -smp defaults to the file's own vCPU count.

Examples:
  vigil-igvm qemu-args vigil.igvm --platform snp --vcpus 2 --cpu EPYC-Milan
  vigil-igvm qemu-args vigil.igvm --platform native --accel kvm --json

Exit codes: 0 printed, 1 the file is not well-formed, 2 usage, 3 a file cannot be read.";

#[derive(Args)]
struct FilesArgs {
    /// IGVM file(s); several give one result each.
    #[arg(required = true)]
    igvm: Vec<PathBuf>,
}

#[derive(Args)]
struct RefsArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// Platform the reference values are for.
    #[arg(long, default_value = "snp")]
    platform: igvm_measure::Platform,
    #[command(flatten)]
    loader: LoaderArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Accel {
    Tcg,
    Kvm,
}

#[derive(Args)]
struct QemuArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// Platform to launch.
    #[arg(long, default_value = "snp")]
    platform: igvm_measure::Platform,
    /// Guest memory in QEMU's syntax: a number with an optional K, M, G or T suffix
    /// (no suffix: MiB), at least 16 MiB.
    #[arg(long, default_value = "512M", value_parser = parse_memory)]
    memory: String,
    /// vCPUs, 1..=4096 (default: the file's own count).
    #[arg(long, value_parser = parse_vcpus)]
    vcpus: Option<u32>,
    /// QEMU CPU model (default EPYC-v4 for SNP, max for native).
    #[arg(long)]
    cpu: Option<String>,
    /// Accelerator for the native platform (default tcg; SNP always uses KVM).
    #[arg(long)]
    accel: Option<Accel>,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
}

/// QEMU's `-m` size: digits and an optional K/M/G/T suffix (QEMU's default unit for
/// -m is MiB). Anything else would be copied into the command line and refused only by
/// QEMU, or worse, read differently. Bounded to 16 MiB..=16 TiB: the Vigil region alone
/// ends at 8 MiB and QEMU's x86 machines stop well below 16 TiB.
fn parse_memory(s: &str) -> Result<String, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'M'),
    };
    let shift = match unit {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return Err(format!("{s}: unit must be K, M, G or T")),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s}: not a size (e.g. 512M, 2G)"));
    }
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{s}: too large"))?;
    if !(16 << 20..=16 << 40).contains(&bytes) {
        return Err(format!("{s}: outside 16M..=16T"));
    }
    Ok(format!("{digits}{unit}"))
}

fn main() -> ExitCode {
    let json_flag = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e, json_flag),
    };
    let json = cli.json;
    let r = match cli.cmd {
        Cmd::Measure(a) => cmd_measure(a, json),
        Cmd::Build(a) => cmd_build(a, json),
        Cmd::Inspect(a) => cmd_inspect(a, json),
        Cmd::Lint(a) => cmd_lint(a, json),
        Cmd::Refs(a) => cmd_refs(a),
        Cmd::QemuArgs(a) => cmd_qemu_args(a, json),
        Cmd::Sign(a) => cmd_sign(a, json),
    };
    output::finish(r, json)
}

/// clap's errors: help and version print as clap does (exit 0); usage errors keep clap's
/// message and exit 2, and under --json also give the JSON error document.
fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || e.exit_code() == 0
    {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let msg = e.render().to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        return output::finish(Err(Fail::Usage(first.to_string())), true);
    }
    let _ = e.print();
    ExitCode::from(2)
}

fn cmd_inspect(a: FilesArgs, json: bool) -> Result<(), Fail> {
    if let [path] = a.igvm.as_slice() {
        let i = vigil_igvm::inspect::inspect(&limits::read(path, limits::IGVM)?)?;
        return match json {
            true => output::json(&i),
            false => output::out(vigil_igvm::inspect::to_text(&i).trim_end()),
        };
    }
    batch(&a.igvm, json, |path| {
        let i = vigil_igvm::inspect::inspect(&limits::read(path, limits::IGVM)?)?;
        let v = serde_json::to_value(&i).map_err(|e| Fail::Env(e.to_string()))?;
        Ok((
            format!(
                "== {}\n{}",
                path.display(),
                vigil_igvm::inspect::to_text(&i).trim_end()
            ),
            v,
        ))
    })
}

fn finding_text(f: &Finding) -> String {
    format!(
        "{}: [{}]{}{} {}",
        match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        },
        f.code,
        f.header.map(|h| format!(" header {h}")).unwrap_or_default(),
        f.offset
            .as_ref()
            .map(|o| format!(" at offset {o}"))
            .unwrap_or_default(),
        f.message
    )
}

fn lint_one(path: &std::path::Path) -> Result<(Vec<Finding>, usize), Fail> {
    let findings = vigil_igvm::lint::lint(&limits::read(path, limits::IGVM)?)?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Ok((findings, errors))
}

fn cmd_lint(a: FilesArgs, json: bool) -> Result<(), Fail> {
    if let [path] = a.igvm.as_slice() {
        let (findings, errors) = lint_one(path)?;
        if json {
            output::json(&findings)?;
        } else {
            for f in &findings {
                output::out(&finding_text(f))?;
            }
        }
        if errors > 0 {
            // Under --json the findings are the document; the count goes to stderr.
            output::note(&format!("vigil-igvm: check failed: {errors} error(s)"));
            return Err(Fail::Reported(1));
        }
        if !json {
            output::out(&format!("ok: no errors ({} finding(s))", findings.len()))?;
        }
        return Ok(());
    }
    batch_coded(&a.igvm, json, |path| {
        let (findings, errors) = lint_one(path)?;
        let mut text: Vec<String> = findings.iter().map(finding_text).collect();
        text.push(match errors {
            0 => format!(
                "{}: ok: no errors ({} finding(s))",
                path.display(),
                findings.len()
            ),
            n => format!("{}: {n} error(s)", path.display()),
        });
        let v = serde_json::json!({ "findings": findings, "errors": errors });
        Ok((text.join("\n"), v, u8::from(errors > 0)))
    })
}

fn cmd_refs(a: RefsArgs) -> Result<(), Fail> {
    if a.platform == igvm_measure::Platform::Native {
        let given = a.loader.given();
        if !given.is_empty() {
            return Err(Fail::Usage(format!(
                "{} only apply to the snp platform (native has no launch digest)",
                given.join(", ")
            )));
        }
    }
    let rules = a.loader.rules()?;
    let r = vigil_igvm::refs::refs(&limits::read(&a.igvm, limits::IGVM)?, a.platform, &rules)?;
    output::json(&r)
}

fn cmd_qemu_args(a: QemuArgs, json: bool) -> Result<(), Fail> {
    if a.platform == igvm_measure::Platform::Snp && a.accel.is_some() {
        return Err(Fail::Usage(
            "--accel applies to the native platform; SNP always runs under KVM".into(),
        ));
    }
    let data = limits::read(&a.igvm, limits::IGVM)?;
    let vcpus = match a.vcpus {
        Some(v) => v,
        None => {
            let (f, _) = vigil_igvm::reader::parse(&data)?;
            igvm_measure::default_vcpus(&f)?
        }
    };
    let o = vigil_igvm::qemu::QemuOptions {
        platform: a.platform,
        igvm_path: a.igvm.display().to_string(),
        memory: a.memory,
        vcpus,
        cpu: a.cpu,
        accel: match a.accel {
            Some(Accel::Kvm) => "kvm".into(),
            _ => "tcg".into(),
        },
        qemu: a.qemu,
    };
    let args = vigil_igvm::qemu::qemu_args(&data, &o)?;
    if json {
        output::json(&args)
    } else {
        let q: Vec<String> = args
            .iter()
            .map(|s| vigil_igvm::qemu::shell_quote(s))
            .collect();
        output::out(&q.join(" "))
    }
}
