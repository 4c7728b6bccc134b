//! `vigil-igvm`: build, measure, sign and inspect Vigil IGVM files.
//!
//! Exit codes: 0 success; 1 a check failed (lint findings, a signature or digest that
//! does not verify); 2 usage or input error (bad flag, unreadable or malformed file).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use vigil_igvm::builder::{self, BuildConfig, Firmware};
use vigil_igvm::igvm_measure::{self, LoaderRules, VmsaRule, ZeroRule};
use vigil_igvm::ovmf_measure::{self, KernelHashes, Mode, OvmfParams};
use vigil_igvm::reset_vmsa::{self, Fpu, VmmType};
use vigil_igvm::{error::read_file, Error};

const EXAMPLES: &str = "\
Examples:
  vigil-igvm measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 --ovmf OVMF.fd
  vigil-igvm measure --mode snp --vcpus 1 --vcpu-type EPYC-Milan --ovmf OVMF.fd \\
      --kernel vmlinuz --initrd initrd.img --append 'console=ttyS0' --guest-features 0x21
  vigil-igvm measure vigil.igvm --vcpus 2 --log json
  vigil-igvm build --kernel target/x86_64-unknown-none/release/svsm --firmware OVMF.fd -o vigil.igvm
  vigil-igvm inspect vigil.igvm --json
  vigil-igvm lint vigil.igvm
  vigil-igvm refs vigil.igvm --vcpus 2
  vigil-igvm qemu-args vigil.igvm --platform snp
  vigil-igvm sign vigil.igvm --id-key id.pem --author-key author.pem -o signed.igvm

Exit codes: 0 ok, 1 check failed, 2 usage or input error.";

#[derive(Parser)]
#[command(name = "vigil-igvm", version, about = "Build, measure, sign and inspect Vigil IGVM files", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// SNP launch digest of an IGVM file, or of an OVMF image with sev-snp-measure's flags.
    #[command(after_help = MEASURE_HELP)]
    Measure(MeasureArgs),
    /// Build an IGVM file: Vigil kernel (VMPL0) + guest firmware + CPUID/secrets pages +
    /// boot parameters + boot VMSA, for the SNP and native platforms.
    #[command(after_help = BUILD_HELP)]
    Build(BuildArgs),
    /// Show what an IGVM file contains (text, or --json).
    #[command(
        after_help = "Examples:\n  vigil-igvm inspect vigil.igvm\n  vigil-igvm inspect vigil.igvm --json"
    )]
    Inspect(InspectArgs),
    /// Report what QEMU or KVM would refuse or measure differently (exit 1 on errors).
    #[command(
        after_help = "Examples:\n  vigil-igvm lint vigil.igvm\n  vigil-igvm lint vigil.igvm --json"
    )]
    Lint(InspectArgs),
    /// Reference values for vigil-verify (JSON, schema vigil-refs/1).
    #[command(
        after_help = "Examples:\n  vigil-igvm refs vigil.igvm --vcpus 2 --vcpu-type EPYC-Milan > refs.json\n  vigil-igvm refs vigil.igvm --platform native"
    )]
    Refs(RefsArgs),
    /// The exact QEMU command line for a file.
    #[command(
        after_help = "Examples:\n  vigil-igvm qemu-args vigil.igvm --platform snp --vcpus 2 --cpu EPYC-Milan\n  vigil-igvm qemu-args vigil.igvm --platform native --json"
    )]
    QemuArgs(QemuArgs),
    /// Sign the SNP ID block (one step with keys, or two steps), or verify one.
    #[command(after_help = SIGN_HELP)]
    Sign(SignArgs),
}

const SIGN_HELP: &str = "\
Keys are P-384, PEM (PKCS#8 or SEC1) or PKCS#8 DER. Signatures are deterministic (RFC 6979).

One step:
  vigil-igvm sign vigil.igvm --id-key id.pem --author-key author.pem \\
      --family-id 00112233445566778899aabbccddeeff --guest-svn 3 -o signed.igvm
Two steps (keys kept elsewhere, e.g. in an HSM):
  vigil-igvm sign vigil.igvm --emit-tbs tbs/ --id-pubkey id.pub.pem
      (writes tbs/id_block.bin to sign with the ID key, tbs/id_key.bin to sign with
       the author key; ECDSA P-384 with SHA-384)
  vigil-igvm sign vigil.igvm --id-pubkey id.pub.pem --id-sig id.sig \\
      --author-pubkey author.pub.pem --author-sig author.sig -o signed.igvm
      (signatures DER or raw r||s; the same ID fields and loader flags as in step 1)
Verify:
  vigil-igvm sign signed.igvm --verify";

#[derive(Args)]
struct InspectArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// Loader rules for IGVM measurements (see `measure --help`).
#[derive(Args, Clone)]
struct LoaderArgs {
    /// vCPU count (default: the count in the file's boot parameters).
    #[arg(long)]
    vcpus: Option<u32>,
    /// vCPU type (for the RDX of reset-state AP VMSAs).
    #[arg(long)]
    vcpu_type: Option<String>,
    /// vCPU signature.
    #[arg(long, value_parser = parse_u64)]
    vcpu_sig: Option<u64>,
    /// SEV_FEATURES of reset-state AP VMSAs (default: the boot VMSA's).
    #[arg(long, value_parser = parse_u64)]
    guest_features: Option<u64>,
    /// VMSA rule.
    #[arg(long, default_value = "kvm")]
    vmsa_rule: VmsaRule,
    /// Zero-page rule.
    #[arg(long, default_value = "qemu")]
    zero_pages: ZeroRule,
    /// Reset-state VMSAs for vCPUs without one in the file.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ap_vmsas: bool,
    /// Leave the x87 FCW of measured VMSAs at 0.
    #[arg(long)]
    x87_fcw_zero: bool,
}

impl LoaderArgs {
    fn rules(&self, default_vcpus: Option<u32>) -> Result<LoaderRules, Fail> {
        let sig = match (&self.vcpu_type, self.vcpu_sig) {
            (_, Some(s)) => u32::try_from(s)
                .map_err(|_| Fail::Usage(format!("--vcpu-sig {s:#x} is too large")))?,
            (Some(t), None) => reset_vmsa::vcpu_type_sig(t)
                .ok_or_else(|| Fail::Usage(format!("--vcpu-type {t}: unknown")))?,
            (None, None) => reset_vmsa::vcpu_type_sig("EPYC-v4").unwrap_or(0),
        };
        Ok(LoaderRules {
            vmsa: self.vmsa_rule,
            zero_pages: self.zero_pages,
            ap_vmsas: self.ap_vmsas,
            vcpus: self.vcpus.or(default_vcpus),
            vcpu_sig: sig,
            guest_features: self.guest_features,
            fpu: if self.x87_fcw_zero {
                Fpu::FcwZero
            } else {
                Fpu::VmmDefault
            },
        })
    }
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

#[derive(Args)]
struct QemuArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// Platform to launch.
    #[arg(long, default_value = "snp")]
    platform: igvm_measure::Platform,
    /// Guest memory.
    #[arg(long, default_value = "512M")]
    memory: String,
    /// vCPUs (default: the file's boot parameters, else 1).
    #[arg(long)]
    vcpus: Option<u32>,
    /// QEMU CPU model (default EPYC-v4 for SNP, max for native).
    #[arg(long)]
    cpu: Option<String>,
    /// Accelerator for the native platform.
    #[arg(long, default_value = "tcg")]
    accel: String,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
    /// Print a JSON array instead of a shell line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// Output file.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// ID private key (P-384).
    #[arg(long)]
    id_key: Option<PathBuf>,
    /// Author private key (P-384), optional.
    #[arg(long)]
    author_key: Option<PathBuf>,
    /// Two-step flow, step 1: write the bytes to sign into this directory.
    #[arg(long)]
    emit_tbs: Option<PathBuf>,
    /// Two-step flow: ID public key (PEM/DER SPKI).
    #[arg(long)]
    id_pubkey: Option<PathBuf>,
    /// Two-step flow, step 2: signature of id_block.bin by the ID key (DER or r||s).
    #[arg(long)]
    id_sig: Option<PathBuf>,
    /// Two-step flow: author public key.
    #[arg(long)]
    author_pubkey: Option<PathBuf>,
    /// Two-step flow, step 2: signature of id_key.bin by the author key.
    #[arg(long)]
    author_sig: Option<PathBuf>,
    /// Family ID (up to 32 hex digits).
    #[arg(long, default_value = "")]
    family_id: String,
    /// Image ID (up to 32 hex digits).
    #[arg(long, default_value = "")]
    image_id: String,
    /// Guest SVN.
    #[arg(long, default_value_t = 0)]
    guest_svn: u32,
    /// ID block version field.
    #[arg(long, default_value_t = 1)]
    id_version: u32,
    /// Replace the file's SNP guest policy.
    #[arg(long, value_parser = parse_u64)]
    policy: Option<u64>,
    /// Verify the file's existing ID block instead of signing (exit 1 if it fails).
    #[arg(long)]
    verify: bool,
    /// Also print QEMU's id-block=...,id-auth=... options (base64).
    #[arg(long)]
    qemu_options: bool,
    #[command(flatten)]
    loader: LoaderArgs,
}

const BUILD_HELP: &str = "\
The guest-physical layout is chosen by --profile (qemu-kvm; see docs/igvm.md). The output
is byte-reproducible. Prints the 1-vCPU SNP launch digest (QEMU+KVM loader rules) on stderr.

Examples:
  vigil-igvm build --kernel target/x86_64-unknown-none/release/svsm \\
      --firmware /usr/share/OVMF/OVMF_CODE_4M.fd --vcpus 2 -o vigil.igvm
  vigil-igvm build --kernel svsm.elf --firmware test-guest.elf --policy policy.json \\
      --platforms snp -o vigil-snp.igvm";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FirmwareFormat {
    /// ELF magic means an ELF guest, anything else an OVMF image.
    Auto,
    /// OVMF image, loaded to end at 4 GiB.
    Ovmf,
    /// ELF image, loaded at its PT_LOAD physical addresses.
    Elf,
}

#[derive(Args)]
struct BuildArgs {
    /// The Vigil kernel ELF (its PT_LOAD segments are loaded at their physical addresses).
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Guest firmware for the lower VMPL: an OVMF image or Vigil's test guest ELF.
    #[arg(long, value_name = "PATH")]
    firmware: PathBuf,
    /// How to read --firmware.
    #[arg(long, default_value = "auto")]
    firmware_format: FirmwareFormat,
    /// Output IGVM file.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Guest-physical layout profile.
    #[arg(long, default_value = "qemu-kvm")]
    profile: builder::Profile,
    /// Platforms to include (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "snp,native")]
    platforms: Vec<igvm_measure::Platform>,
    /// vCPU count recorded in the boot parameters.
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
    /// VMPL the guest runs at (1..=3).
    #[arg(long, default_value_t = 2)]
    guest_vmpl: u32,
    /// Monitor policy file (bytes stored in the boot parameters page; SHA-384 in refs).
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// SNP guest policy.
    #[arg(long, value_parser = parse_u64, default_value = "0x30000")]
    guest_policy: u64,
    /// SEV_FEATURES of the boot VMSA (QEMU requires it to match its sev-snp-guest object).
    #[arg(long, value_parser = parse_u64, default_value = "0x1")]
    sev_features: u64,
}

const MEASURE_HELP: &str = "\
With --mode, measures an OVMF image exactly like sev-snp-measure (same flag names and
meanings; the digest is printed as hex on one line). Without --mode, measures the IGVM
file given as argument under explicit loader rules (--vmsa-rule, --zero-pages,
--ap-vmsas, --vcpus, --guest-features, --x87-fcw-zero); the defaults are what QEMU's IGVM
loader and KVM do. For an IGVM file the vCPU type defaults to EPYC-v4 (as in refs, sign
and qemu-args); it only matters for reset-state AP VMSAs.

Examples:
  vigil-igvm measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf /usr/share/OVMF/OVMF_CODE_4M.fd
  vigil-igvm measure --mode snp:svsm --vcpus 2 --vcpu-type EPYC-v4 --ovmf svsm_ovmf.fd \\
      --svsm svsm.bin --vars-size 540672 --x87-fcw-zero
  vigil-igvm measure vigil.igvm --vcpus 2 --log json";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Hex,
    Base64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One JSON document on stdout: the digest and one entry per page.
    Json,
    /// One line per page on stderr, the digest on stdout.
    Text,
}

#[derive(Args)]
struct MeasureArgs {
    /// IGVM file to measure (without --mode).
    igvm: Option<PathBuf>,
    /// Guest mode of sev-snp-measure (measures --ovmf instead of an IGVM file).
    #[arg(long)]
    mode: Option<Mode>,
    /// Number of guest vCPUs.
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// Type of guest vCPU (QEMU model name), e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa.
    #[arg(long, value_name = "CPUTYPE")]
    vcpu_type: Option<String>,
    /// Guest vCPU signature value (CPUID Fn1 EAX), e.g. 0x800f12.
    #[arg(long, value_name = "VALUE", value_parser = parse_u64)]
    vcpu_sig: Option<u64>,
    /// Guest vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "FAMILY")]
    vcpu_family: Option<u32>,
    /// Guest vCPU model.
    #[arg(long, value_name = "MODEL", default_value_t = 0)]
    vcpu_model: u32,
    /// Guest vCPU stepping.
    #[arg(long, value_name = "STEPPING", default_value_t = 0)]
    vcpu_stepping: u32,
    /// Type of guest VMM.
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: VmmType,
    /// OVMF file to calculate the digest from.
    #[arg(long, value_name = "PATH")]
    ovmf: Option<PathBuf>,
    /// Kernel file for measured direct boot.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initrd file (with --kernel).
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line (with --kernel).
    #[arg(long, value_name = "CMDLINE")]
    append: Option<String>,
    /// SEV_FEATURES of the VMSAs (hex), default 0x1.
    #[arg(long, value_name = "VALUE", value_parser = parse_u64)]
    guest_features: Option<u64>,
    /// Measurement output format.
    #[arg(long, default_value = "hex")]
    output_format: OutputFormat,
    /// Precalculated digest of the OVMF pages (hex), from --mode snp:ovmf-hash.
    #[arg(long, value_name = "HASH")]
    snp_ovmf_hash: Option<String>,
    /// Write the measured VMSAs to vmsa<N>.bin.
    #[arg(long)]
    dump_vmsa: bool,
    /// SVSM binary (snp:svsm mode).
    #[arg(long, value_name = "PATH")]
    svsm: Option<PathBuf>,
    /// Size of the OVMF_VARS file in bytes (snp:svsm mode).
    #[arg(long, value_name = "SIZE", conflicts_with = "vars_file")]
    vars_size: Option<u64>,
    /// OVMF_VARS file (snp:svsm mode; its size is used).
    #[arg(long, value_name = "PATH")]
    vars_file: Option<PathBuf>,
    /// Print "Calculated <MODE> guest measurement: " before the digest.
    #[arg(short, long)]
    verbose: bool,
    /// Loader rule: leave the x87 FCW of every measured VMSA at 0, as KVM hosts before
    /// Linux 6.x did (the hardware digests of the test vectors need it).
    #[arg(long)]
    x87_fcw_zero: bool,
    /// Per-page log.
    #[arg(long, value_name = "FORMAT")]
    log: Option<LogFormat>,
    /// IGVM loader rule: where VMSAs are measured ("kvm": at 0xFFFFFFFFF000 after all
    /// pages, as QEMU+KVM do; "file": in directive order at the file's GPA, as the igvm
    /// crate does).
    #[arg(long, default_value = "kvm")]
    vmsa_rule: VmsaRule,
    /// IGVM loader rule for pages without data: "qemu" (ZERO unless QEMU merges them into
    /// a region that has data), "zero" (always ZERO pages), "normal" (NORMAL pages of zeros).
    #[arg(long, default_value = "qemu")]
    zero_pages: ZeroRule,
    /// IGVM loader rule: measure a reset-state VMSA for every vCPU the file has no VMSA
    /// for (what KVM does; `--ap-vmsas false` to count only the file's VMSAs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ap_vmsas: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    u64::from_str_radix(digits, radix).map_err(|e| format!("{s}: {e}"))
}

/// A usage error (exit 2) or a failed check (exit 1).
enum Fail {
    Usage(String),
    Check(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Usage(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Measure(a) => cmd_measure(a),
        Cmd::Build(a) => cmd_build(a),
        Cmd::Inspect(a) => cmd_inspect(a),
        Cmd::Lint(a) => cmd_lint(a),
        Cmd::Refs(a) => cmd_refs(a),
        Cmd::QemuArgs(a) => cmd_qemu_args(a),
        Cmd::Sign(a) => cmd_sign(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Check(m)) => {
            eprintln!("vigil-igvm: check failed: {m}");
            ExitCode::from(1)
        }
        Err(Fail::Usage(m)) => {
            eprintln!("vigil-igvm: error: {m}");
            ExitCode::from(2)
        }
    }
}

fn vcpu_sig(a: &MeasureArgs) -> Result<Option<u32>, Fail> {
    if let Some(f) = a.vcpu_family {
        return Ok(Some(reset_vmsa::cpu_sig(f, a.vcpu_model, a.vcpu_stepping)));
    }
    if let Some(s) = a.vcpu_sig {
        return u32::try_from(s)
            .map(Some)
            .map_err(|_| Fail::Usage(format!("--vcpu-sig {s:#x} does not fit in 32 bits")));
    }
    if let Some(t) = &a.vcpu_type {
        let names: Vec<&str> = reset_vmsa::vcpu_types().iter().map(|(n, _)| *n).collect();
        return reset_vmsa::vcpu_type_sig(t).map(Some).ok_or_else(|| {
            Fail::Usage(format!(
                "--vcpu-type {t}: unknown (known: {})",
                names.join(", ")
            ))
        });
    }
    Ok(None)
}

fn print_digest(d: &[u8], fmt: OutputFormat, verbose: Option<&str>) {
    let s = match fmt {
        OutputFormat::Hex => hex::encode(d),
        OutputFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(d),
    };
    match verbose {
        Some(m) => println!("Calculated {m} guest measurement: {s}"),
        None => println!("{s}"),
    }
}

fn print_log(
    log: LogFormat,
    digest: &[u8],
    m: &vigil_igvm::digest::Measurement,
    extra: serde_json::Value,
) -> Result<(), Fail> {
    match log {
        LogFormat::Json => {
            let doc = serde_json::json!({
                "digest": hex::encode(digest),
                "pages": m.pages,
                "loader": extra,
                "log": m.log,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| Fail::Usage(e.to_string()))?
            );
        }
        LogFormat::Text => {
            for e in &m.log {
                eprintln!(
                    "{:6} {:>18} {:10} {} {}",
                    e.index, e.gpa, e.page_type, e.contents, e.digest
                );
            }
        }
    }
    Ok(())
}

fn cmd_measure(a: MeasureArgs) -> Result<(), Fail> {
    let fpu = if a.x87_fcw_zero {
        Fpu::FcwZero
    } else {
        Fpu::VmmDefault
    };
    let sig = vcpu_sig(&a)?;
    let Some(mode) = a.mode else {
        let path = a
            .igvm
            .as_ref()
            .ok_or_else(|| Fail::Usage("give an IGVM file, or --mode with --ovmf".into()))?;
        let rules = LoaderRules {
            vmsa: a.vmsa_rule,
            zero_pages: a.zero_pages,
            ap_vmsas: a.ap_vmsas,
            vcpus: a.vcpus,
            // Same default as refs, sign and qemu-args (QEMU model EPYC-v4).
            vcpu_sig: sig.or(reset_vmsa::vcpu_type_sig("EPYC-v4")).unwrap_or(0),
            guest_features: a.guest_features,
            fpu,
        };
        let data = read_file(path)?;
        let r = igvm_measure::measure_file(
            &data,
            igvm_measure::Platform::Snp,
            &rules,
            a.log.is_some(),
        )?;
        if let Some(l) = a.log {
            print_log(
                l,
                &r.measurement.digest,
                &r.measurement,
                serde_json::to_value(&r.rules).unwrap_or_default(),
            )?;
            if l == LogFormat::Json {
                return Ok(());
            }
        }
        print_digest(
            &r.measurement.digest,
            a.output_format,
            a.verbose.then_some("SEV_SNP"),
        );
        return Ok(());
    };
    if a.igvm.is_some() {
        return Err(Fail::Usage(
            "--mode measures --ovmf; do not also give an IGVM file".into(),
        ));
    }
    let ovmf_path = a
        .ovmf
        .as_ref()
        .ok_or_else(|| Fail::Usage("--mode needs --ovmf PATH".into()))?;
    if (a.initrd.is_some() || a.append.is_some()) && a.kernel.is_none() {
        return Err(Fail::Usage(
            "--kernel required when using --initrd or --append".into(),
        ));
    }
    if a.snp_ovmf_hash.is_some() && mode != Mode::Snp {
        return Err(Fail::Usage(
            "--snp-ovmf-hash works with --mode snp only".into(),
        ));
    }
    let needs_vcpus = !matches!(mode, Mode::Sev | Mode::SnpOvmfHash);
    let vcpus = match (needs_vcpus, a.vcpus) {
        (true, None) => {
            return Err(Fail::Usage(format!(
                "missing --vcpus N in guest mode '{}'",
                mode_name(mode)
            )))
        }
        (true, Some(0)) => return Err(Fail::Usage("--vcpus must be at least 1".into())),
        (_, v) => v.unwrap_or(0),
    };
    let vcpu_sig = match sig {
        Some(s) => s,
        None if !needs_vcpus || a.vmm_type != VmmType::QEMU => 0,
        None => {
            return Err(Fail::Usage(format!(
                "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
                mode_name(mode)
            )))
        }
    };
    let kernel = match &a.kernel {
        Some(k) => {
            let kd = read_file(k)?;
            let id = a.initrd.as_deref().map(read_file).transpose()?;
            Some(KernelHashes::new(&kd, id.as_deref(), a.append.as_deref()))
        }
        None => None,
    };
    let vars_size = match (&a.vars_file, a.vars_size) {
        (Some(f), _) => std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len(),
        (None, Some(s)) => s,
        (None, None) if mode == Mode::SnpSvsm => {
            return Err(Fail::Usage(
                "snp:svsm mode requires --vars-size or --vars-file".into(),
            ))
        }
        (None, None) => 0,
    };
    let ovmf_hash = match &a.snp_ovmf_hash {
        Some(h) => {
            let mut b = [0u8; 48];
            hex::decode_to_slice(h, &mut b)
                .map_err(|e| Fail::Usage(format!("--snp-ovmf-hash: {e} (need 96 hex digits)")))?;
            Some(b)
        }
        None => None,
    };
    let p = OvmfParams {
        mode,
        vcpus,
        vcpu_sig,
        vmm: a.vmm_type,
        guest_features: a.guest_features.unwrap_or(1),
        ovmf: read_file(ovmf_path)?,
        kernel,
        svsm: a.svsm.as_deref().map(read_file).transpose()?,
        vars_size,
        ovmf_hash,
        fpu,
    };
    let r = ovmf_measure::measure(&p, a.log.is_some())?;
    if a.dump_vmsa {
        dump_vmsas(&p, Path::new("."))?;
    }
    if let (Some(l), Some(m)) = (a.log, &r.snp) {
        print_log(
            l,
            &r.digest,
            m,
            serde_json::json!({ "mode": mode_name(mode) }),
        )?;
        if l == LogFormat::Json {
            return Ok(());
        }
    }
    let label = match mode {
        Mode::Sev => "SEV",
        Mode::SevEs => "SEV_ES",
        Mode::Snp | Mode::SnpOvmfHash => "SEV_SNP",
        Mode::SnpSvsm => "SEV_SNP_SVSM",
    };
    print_digest(&r.digest, a.output_format, a.verbose.then_some(label));
    Ok(())
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Sev => "sev",
        Mode::SevEs => "seves",
        Mode::Snp => "snp",
        Mode::SnpOvmfHash => "snp:ovmf-hash",
        Mode::SnpSvsm => "snp:svsm",
    }
}

fn dump_vmsas(p: &OvmfParams, dir: &Path) -> Result<(), Fail> {
    let pages = ovmf_measure::vmsa_pages(p)?;
    for (i, page) in pages.iter().enumerate() {
        let f = dir.join(format!("vmsa{i}.bin"));
        std::fs::write(&f, page).map_err(|e| Error::io(&f, e))?;
    }
    Ok(())
}

fn cmd_build(a: BuildArgs) -> Result<(), Fail> {
    let fw = read_file(&a.firmware)?;
    let firmware = match a.firmware_format {
        FirmwareFormat::Auto => Firmware::detect(fw),
        FirmwareFormat::Ovmf => Firmware::Ovmf(fw),
        FirmwareFormat::Elf => Firmware::Elf(fw),
    };
    let cfg = BuildConfig {
        profile: a.profile,
        kernel: read_file(&a.kernel)?,
        firmware,
        snp: a.platforms.contains(&igvm_measure::Platform::Snp),
        native: a.platforms.contains(&igvm_measure::Platform::Native),
        vcpus: a.vcpus,
        guest_vmpl: a.guest_vmpl,
        policy: a
            .policy
            .as_deref()
            .map(read_file)
            .transpose()?
            .unwrap_or_default(),
        guest_policy: a.guest_policy,
        sev_features: a.sev_features,
    };
    let built = builder::build(&cfg)?;
    std::fs::write(&a.output, &built.bytes).map_err(|e| Error::io(&a.output, e))?;
    eprintln!("wrote {} ({} bytes)", a.output.display(), built.bytes.len());
    if cfg.snp {
        // One vCPU needs no AP reset VMSA (whose RDX depends on the vCPU type); for more,
        // `measure`/`refs` take --vcpus and --vcpu-type.
        let rules = LoaderRules {
            vcpus: Some(1),
            ..LoaderRules::default()
        };
        let m = igvm_measure::measure_parsed(&built.file, &rules, false)?;
        eprintln!(
            "SNP launch digest for 1 vCPU under QEMU+KVM loader rules: {} \
             (for more vCPUs: vigil-igvm measure FILE --vcpus N --vcpu-type T)",
            hex::encode(m.measurement.digest)
        );
    }
    Ok(())
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<(), Fail> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| Fail::Usage(e.to_string()))?
    );
    Ok(())
}

fn cmd_inspect(a: InspectArgs) -> Result<(), Fail> {
    let i = vigil_igvm::inspect::inspect(&read_file(&a.igvm)?)?;
    if a.json {
        json_out(&i)
    } else {
        print!("{}", vigil_igvm::inspect::to_text(&i));
        Ok(())
    }
}

fn cmd_lint(a: InspectArgs) -> Result<(), Fail> {
    let findings = vigil_igvm::lint::lint(&read_file(&a.igvm)?)?;
    if a.json {
        json_out(&findings)?;
    } else {
        for f in &findings {
            println!(
                "{}: [{}]{}{} {}",
                match f.severity {
                    vigil_igvm::lint::Severity::Error => "error",
                    vigil_igvm::lint::Severity::Warning => "warning",
                },
                f.code,
                f.directive
                    .map(|d| format!(" directive {d}"))
                    .unwrap_or_default(),
                f.offset
                    .as_ref()
                    .map(|o| format!(" at offset {o}"))
                    .unwrap_or_default(),
                f.message
            );
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == vigil_igvm::lint::Severity::Error)
        .count();
    if errors > 0 {
        return Err(Fail::Check(format!("{errors} error(s)")));
    }
    if !a.json {
        println!("ok: no errors ({} warning(s))", findings.len());
    }
    Ok(())
}

fn cmd_refs(a: RefsArgs) -> Result<(), Fail> {
    let rules = a.loader.rules(None)?;
    let r = vigil_igvm::refs::refs(&read_file(&a.igvm)?, a.platform, &rules)?;
    json_out(&r)
}

fn cmd_qemu_args(a: QemuArgs) -> Result<(), Fail> {
    let data = read_file(&a.igvm)?;
    let vcpus = match a.vcpus {
        Some(v) => v,
        None => {
            let (f, _) = vigil_igvm::reader::parse(&data)?;
            builder::find_boot_params(&f).map(|b| b.vcpus).unwrap_or(1)
        }
    };
    let o = vigil_igvm::qemu::QemuOptions {
        platform: a.platform,
        igvm_path: a.igvm.display().to_string(),
        memory: a.memory,
        vcpus,
        cpu: a.cpu,
        accel: a.accel,
        qemu: a.qemu,
    };
    let args = vigil_igvm::qemu::qemu_args(&data, &o)?;
    if a.json {
        json_out(&args)
    } else {
        let q: Vec<String> = args
            .iter()
            .map(|s| vigil_igvm::qemu::shell_quote(s))
            .collect();
        println!("{}", q.join(" "));
        Ok(())
    }
}

fn cmd_sign(a: SignArgs) -> Result<(), Fail> {
    use vigil_igvm::sign::{self, IdFields, SignedIdBlock};
    let data = read_file(&a.igvm)?;
    let (parsed, _) = vigil_igvm::reader::parse(&data)?;
    let default_vcpus = builder::find_boot_params(&parsed).map(|b| b.vcpus);
    let rules = a.loader.rules(default_vcpus)?;
    if a.verify {
        let (blk, bad) = sign::verify_file(&data, &rules)?;
        json_out(&blk.summary())?;
        if !bad.is_empty() {
            return Err(Fail::Check(bad.join("; ")));
        }
        eprintln!("ok: ID block signatures verify and its launch digest matches");
        return Ok(());
    }
    let fields = IdFields {
        family_id: sign::parse_id(&a.family_id, "--family-id")?,
        image_id: sign::parse_id(&a.image_id, "--image-id")?,
        guest_svn: a.guest_svn,
        version: a.id_version,
        policy: a.policy,
    };
    let unsigned = sign::prepare(&data, &rules, &fields)?;
    if let Some(dir) = &a.emit_tbs {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let p = dir.join("id_block.bin");
        std::fs::write(&p, zerocopy::IntoBytes::as_bytes(&unsigned.block))
            .map_err(|e| Error::io(&p, e))?;
        eprintln!(
            "wrote {} (sign with the ID key: ECDSA P-384, SHA-384)",
            p.display()
        );
        if let Some(pk) = &a.id_pubkey {
            let k = sign::load_verifying_key(&read_file(pk)?, "--id-pubkey")?;
            let p = dir.join("id_key.bin");
            std::fs::write(
                &p,
                zerocopy::IntoBytes::as_bytes(&sign::PubKey::from_key(&k)),
            )
            .map_err(|e| Error::io(&p, e))?;
            eprintln!("wrote {} (sign with the author key)", p.display());
        }
        println!("{}", hex::encode(unsigned.block.ld));
        return Ok(());
    }
    let block = unsigned.block.clone();
    let signed = match (&a.id_key, &a.id_sig) {
        (Some(k), None) => {
            let id = sign::load_signing_key(&read_file(k)?, "--id-key")?;
            let author = a
                .author_key
                .as_deref()
                .map(|p| read_file(p).and_then(|d| sign::load_signing_key(&d, "--author-key")))
                .transpose()?;
            SignedIdBlock::sign(block, &id, author.as_ref())
        }
        (None, Some(sig)) => {
            let pk = a
                .id_pubkey
                .as_ref()
                .ok_or_else(|| Fail::Usage("--id-sig needs --id-pubkey".into()))?;
            let id_key =
                sign::PubKey::from_key(&sign::load_verifying_key(&read_file(pk)?, "--id-pubkey")?);
            let id_sig = sign::load_signature(&read_file(sig)?, "--id-sig")?;
            let author = match (&a.author_pubkey, &a.author_sig) {
                (Some(p), Some(s)) => Some((
                    sign::PubKey::from_key(&sign::load_verifying_key(
                        &read_file(p)?,
                        "--author-pubkey",
                    )?),
                    sign::load_signature(&read_file(s)?, "--author-sig")?,
                )),
                (None, None) => None,
                _ => {
                    return Err(Fail::Usage(
                        "--author-pubkey and --author-sig go together".into(),
                    ))
                }
            };
            SignedIdBlock {
                block,
                id_key,
                id_sig,
                author,
            }
        }
        _ => {
            return Err(Fail::Usage(
                "give --id-key, or --id-pubkey with --id-sig, or --emit-tbs, or --verify".into(),
            ))
        }
    };
    let out = a
        .output
        .as_ref()
        .ok_or_else(|| Fail::Usage("sign needs -o OUTPUT".into()))?;
    let bytes = unsigned.finish(&signed)?;
    std::fs::write(out, &bytes).map_err(|e| Error::io(out, e))?;
    eprintln!("wrote {}", out.display());
    json_out(&signed.summary())?;
    if a.qemu_options {
        let b64 = base64::engine::general_purpose::STANDARD;
        println!(
            "id-block={},id-auth={}",
            b64.encode(zerocopy::IntoBytes::as_bytes(&signed.block)),
            b64.encode(sign::id_auth_bytes(&signed))
        );
    }
    Ok(())
}
