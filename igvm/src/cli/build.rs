//! `vigil-igvm build`: read the inputs (bounded), build, refuse what `lint` would
//! refuse, write the file, and print the launch digest for the vCPU count written.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use vigil_igvm::builder::{self, BuildConfig, Firmware};
use vigil_igvm::igvm_measure::{self, LoaderRules};
use vigil_igvm::lint::{self, Severity};
use vigil_igvm::{limits, reset_vmsa, Error};

use super::output::{self, Fail};
use super::{parse_u64, parse_vcpus};

/// Where `cargo xtask build` puts the stripped kernel (xtask/src/paths.rs,
/// `Workspace::kernel_image` of the Release flavour).
pub const BUILD_HELP: &str = "\
The guest-physical layout is chosen by --profile (qemu-kvm; see docs/igvm.md). The output
is byte-reproducible. The firmware must be a well-formed OVMF image (footer table, reset
vector, SEV metadata for SNP) or an ELF guest. What `lint` would refuse is refused before
anything is written, and -o must not name an input. Prints the SNP launch digest for the
vCPU count written (--vcpus, default 1) and vCPU type EPYC-v4 (QEMU+KVM loader rules) on
stderr, or in the JSON document with --json.

Examples:
  cargo xtask build
  vigil-igvm build --kernel target/vigil-kernel/x86_64-unknown-none/release/svsm \\
      --firmware /usr/share/OVMF/OVMF_CODE_4M.fd --vcpus 2 -o vigil.igvm
  vigil-igvm build --kernel svsm.elf --firmware test-guest.elf --policy policy.json \\
      --platforms snp -o vigil-snp.igvm

Exit codes: 0 built, 1 an input is not well-formed or the result would not pass lint,
2 usage, 3 a file cannot be read or written.";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirmwareFormat {
    /// ELF magic means an ELF guest, anything else an OVMF image.
    Auto,
    /// OVMF image, loaded to end at 4 GiB.
    Ovmf,
    /// ELF image, loaded at its PT_LOAD physical addresses.
    Elf,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The Vigil kernel ELF (its PT_LOAD segments are loaded at their physical addresses).
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Guest firmware for the lower VMPL: an OVMF image or Vigil's test guest ELF.
    #[arg(long, value_name = "PATH")]
    firmware: PathBuf,
    /// How to read --firmware.
    #[arg(long, default_value = "auto")]
    firmware_format: FirmwareFormat,
    /// Output IGVM file (must not be one of the inputs).
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Guest-physical layout profile.
    #[arg(long, default_value = "qemu-kvm")]
    profile: builder::Profile,
    /// Platforms to include (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "snp,native")]
    platforms: Vec<igvm_measure::Platform>,
    /// vCPU count recorded in the boot parameters, 1..=4096 (the default of measure,
    /// refs and qemu-args for this file).
    #[arg(long, default_value = "1", value_parser = parse_vcpus)]
    vcpus: u32,
    /// VMPL the guest runs at (1..=3).
    #[arg(long, default_value_t = 2)]
    guest_vmpl: u32,
    /// Monitor policy file: one JSON object, at most 3072 bytes (stored in the boot
    /// parameters page; SHA-384 in refs).
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// SNP guest policy (default 0x30000; bit 17 must be set, bits 63:26 clear).
    #[arg(long, value_parser = parse_u64)]
    guest_policy: Option<u64>,
    /// SEV_FEATURES of the boot VMSA (default 0x1; QEMU requires it to match its
    /// sev-snp-guest object).
    #[arg(long, value_parser = parse_u64)]
    sev_features: Option<u64>,
}

/// True if `out` names the same file as `input` (also through another path or a hard
/// link): writing it would destroy an input before anyone noticed.
fn same_file(out: &Path, input: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(out), std::fs::metadata(input)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn check_output(a: &BuildArgs) -> Result<(), Fail> {
    let inputs = [
        Some((&a.firmware, "--firmware")),
        Some((&a.kernel, "--kernel")),
        a.policy.as_ref().map(|p| (p, "--policy")),
    ];
    for (p, flag) in inputs.into_iter().flatten() {
        if same_file(&a.output, p) {
            return Err(Fail::Usage(format!(
                "-o {} is the same file as {flag} {}: it would be overwritten",
                a.output.display(),
                p.display()
            )));
        }
    }
    Ok(())
}

fn config(a: &BuildArgs) -> Result<BuildConfig, Fail> {
    let snp = a.platforms.contains(&igvm_measure::Platform::Snp);
    if !snp {
        let given: Vec<&str> = [
            (a.guest_policy.is_some(), "--guest-policy"),
            (a.sev_features.is_some(), "--sev-features"),
        ]
        .into_iter()
        .filter_map(|(g, n)| g.then_some(n))
        .collect();
        if !given.is_empty() {
            return Err(Fail::Usage(format!(
                "{} only apply to the snp platform, which --platforms leaves out",
                given.join(", ")
            )));
        }
    }
    let fw = limits::read(&a.firmware, limits::FIRMWARE)?;
    let firmware = match a.firmware_format {
        FirmwareFormat::Auto => Firmware::detect(fw),
        FirmwareFormat::Ovmf => Firmware::Ovmf(fw),
        FirmwareFormat::Elf => Firmware::Elf(fw),
    };
    Ok(BuildConfig {
        profile: a.profile,
        kernel: limits::read(&a.kernel, limits::ELF)?,
        firmware,
        snp,
        native: a.platforms.contains(&igvm_measure::Platform::Native),
        vcpus: a.vcpus,
        guest_vmpl: a.guest_vmpl,
        policy: a
            .policy
            .as_deref()
            .map(|p| limits::read(p, limits::POLICY))
            .transpose()?
            .unwrap_or_default(),
        guest_policy: a.guest_policy.unwrap_or(0x30000),
        sev_features: a.sev_features.unwrap_or(1),
    })
}

pub fn cmd_build(a: BuildArgs, json: bool) -> Result<(), Fail> {
    check_output(&a)?;
    let cfg = config(&a)?;
    let built = builder::build(&cfg)?;
    // What lint refuses, build refuses first: nothing is written.
    let (_, locs) = vigil_igvm::reader::parse(&built.bytes)?;
    let errors: Vec<String> = lint::lint_parsed(&built.file, &locs)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("[{}] {}", f.code, f.message))
        .collect();
    if !errors.is_empty() {
        return Err(Fail::Check(format!(
            "the built file would not pass lint: {}",
            errors.join("; ")
        )));
    }
    std::fs::write(&a.output, &built.bytes).map_err(|e| Error::io(&a.output, e))?;
    output::note(&format!(
        "wrote {} ({} bytes)",
        a.output.display(),
        built.bytes.len()
    ));
    let mut doc = serde_json::json!({
        "output": a.output.display().to_string(),
        "bytes": built.bytes.len(),
        "vcpus": cfg.vcpus,
    });
    if cfg.snp {
        let sig = reset_vmsa::vcpu_type_sig("EPYC-v4").unwrap_or(0);
        let rules = LoaderRules {
            vcpus: Some(cfg.vcpus),
            vcpu_sig: sig,
            ..LoaderRules::default()
        };
        let m = igvm_measure::measure_parsed(&built.file, &rules, false)?;
        let d = hex::encode(m.measurement.digest);
        doc["launch_digest"] = d.clone().into();
        doc["vcpu_type"] = "EPYC-v4".into();
        if !json {
            output::note(&format!(
                "SNP launch digest for {} vCPU(s), vCPU type EPYC-v4, QEMU+KVM loader rules: {d} \
                 (other types: vigil-igvm measure FILE --vcpu-type T)",
                cfg.vcpus
            ));
        }
    }
    if json {
        output::json(&doc)?;
    }
    Ok(())
}
