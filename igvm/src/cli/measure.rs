//! `vigil-igvm measure`: an IGVM file under loader rules, or an OVMF image with
//! sev-snp-measure's flags. Every flag either takes effect in the chosen mode or is
//! refused (clap conflicts where the rule is static, [`check_mode_flags`] where it
//! depends on `--mode`'s value).

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, ValueEnum};
use vigil_igvm::igvm_measure::{self, LoaderRules, VmsaRule, ZeroRule};
use vigil_igvm::limits;
use vigil_igvm::ovmf_measure::{self, KernelHashes, Mode, OvmfParams};
use vigil_igvm::reset_vmsa::{self, Fpu, VmmType};
use vigil_igvm::Error;

use super::output::{self, Fail};
use super::{batch, parse_u64, parse_vcpus};

pub const MEASURE_HELP: &str = "\
With --mode, measures an OVMF image exactly like sev-snp-measure (same flag names and
meanings; the digest is printed as hex on one line). The image must be a well-formed
OVMF image (footer table, reset vector, and SEV metadata in the SNP modes). Without
--mode, measures the IGVM file(s) given as arguments under explicit loader rules
(--vmsa-rule, --zero-pages, --ap-vmsas, --vcpus, --guest-features, --x87-fcw-zero); the
defaults are what QEMU's IGVM loader and KVM do. The vCPU count defaults to the file's
own (its BootParams count, else its VMSAs); the vCPU type to EPYC-v4 (as in refs, sign
and qemu-args; it only matters for reset-state AP VMSAs). The count is printed with the
digest (on stderr, or in the JSON document).

Examples:
  vigil-igvm measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --ovmf /usr/share/OVMF/OVMF_CODE_4M.fd
  vigil-igvm measure --mode snp:svsm --vcpus 2 --vcpu-type EPYC-v4 --ovmf svsm_ovmf.fd \\
      --svsm svsm.bin --vars-size 540672 --x87-fcw-zero
  vigil-igvm measure vigil.igvm --vcpus 2 --log json
  vigil-igvm measure a.igvm b.igvm --json

Exit codes: 0 measured, 1 an input is not well-formed, 2 usage, 3 a file cannot be read.";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Hex,
    Base64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON document on stdout: the digest and one entry per page.
    Json,
    /// One line per page on stderr, the digest on stdout.
    Text,
}

/// Flags that only an OVMF measurement (`--mode`) uses.
const OVMF_ONLY: [&str; 11] = [
    "mode",
    "ovmf",
    "kernel",
    "initrd",
    "append",
    "svsm",
    "vars_size",
    "vars_file",
    "snp_ovmf_hash",
    "dump_vmsa",
    "vmm_type",
];

#[derive(Args)]
pub struct MeasureArgs {
    /// IGVM file(s) to measure (without --mode); several give one result each.
    #[arg(conflicts_with_all = OVMF_ONLY)]
    igvm: Vec<PathBuf>,
    /// Guest mode of sev-snp-measure (measures --ovmf instead of an IGVM file).
    #[arg(long, conflicts_with_all = ["vmsa_rule", "zero_pages", "ap_vmsas"])]
    mode: Option<Mode>,
    /// Number of guest vCPUs (1..=4096).
    #[arg(long, value_name = "N", value_parser = parse_vcpus)]
    vcpus: Option<u32>,
    /// Type of guest vCPU (QEMU model name), e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa.
    #[arg(long, value_name = "CPUTYPE", conflicts_with_all = ["vcpu_sig", "vcpu_family"])]
    vcpu_type: Option<String>,
    /// Guest vCPU signature value (CPUID Fn1 EAX), e.g. 0x800f12.
    #[arg(long, value_name = "VALUE", value_parser = parse_u64, conflicts_with = "vcpu_family")]
    vcpu_sig: Option<u64>,
    /// Guest vCPU family, 0..=270 (with --vcpu-model and --vcpu-stepping). CPUID
    /// Fn0000_0001_EAX holds family 0xF plus an 8-bit extended family, so larger values
    /// would be truncated silently.
    #[arg(long, value_name = "FAMILY", value_parser = clap::value_parser!(u32).range(0..=0x10e))]
    vcpu_family: Option<u32>,
    /// Guest vCPU model, 0..=255 (with --vcpu-family; 4-bit model + extended model).
    #[arg(long, value_name = "MODEL", requires = "vcpu_family", value_parser = clap::value_parser!(u32).range(0..=0xff))]
    vcpu_model: Option<u32>,
    /// Guest vCPU stepping, 0..=15 (with --vcpu-family).
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family", value_parser = clap::value_parser!(u32).range(0..=0xf))]
    vcpu_stepping: Option<u32>,
    /// Type of guest VMM (--mode only).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: VmmType,
    /// OVMF file to calculate the digest from.
    #[arg(long, value_name = "PATH")]
    ovmf: Option<PathBuf>,
    /// Kernel file for measured direct boot.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initrd file (with --kernel).
    #[arg(long, value_name = "PATH", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line (with --kernel).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    append: Option<String>,
    /// SEV_FEATURES of the VMSAs (hex), default 0x1.
    #[arg(long, value_name = "VALUE", value_parser = parse_u64)]
    guest_features: Option<u64>,
    /// Measurement output format (default hex).
    #[arg(long)]
    output_format: Option<OutputFormat>,
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

impl MeasureArgs {
    fn fpu(&self) -> Fpu {
        if self.x87_fcw_zero {
            Fpu::FcwZero
        } else {
            Fpu::VmmDefault
        }
    }

    fn vcpu_sig(&self) -> Result<Option<u32>, Fail> {
        if let Some(f) = self.vcpu_family {
            return Ok(Some(reset_vmsa::cpu_sig(
                f,
                self.vcpu_model.unwrap_or(0),
                self.vcpu_stepping.unwrap_or(0),
            )));
        }
        if let Some(s) = self.vcpu_sig {
            return u32::try_from(s)
                .map(Some)
                .map_err(|_| Fail::Usage(format!("--vcpu-sig {s:#x} does not fit in 32 bits")));
        }
        if let Some(t) = &self.vcpu_type {
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
}

fn digest_text(d: &[u8], fmt: Option<OutputFormat>) -> String {
    match fmt.unwrap_or(OutputFormat::Hex) {
        OutputFormat::Hex => hex::encode(d),
        OutputFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(d),
    }
}

fn print_log(
    log: LogFormat,
    digest: &[u8],
    m: &vigil_igvm::digest::Measurement,
    extra: serde_json::Value,
) -> Result<(), Fail> {
    match log {
        LogFormat::Json => output::json(&serde_json::json!({
            "digest": hex::encode(digest),
            "pages": m.pages,
            "loader": extra,
            "log": m.log,
        })),
        LogFormat::Text => {
            for e in &m.log {
                output::note(&format!(
                    "{:6} {:>18} {:10} {} {}",
                    e.index, e.gpa, e.page_type, e.contents, e.digest
                ));
            }
            Ok(())
        }
    }
}

pub fn cmd_measure(a: MeasureArgs, json: bool) -> Result<(), Fail> {
    // A JSON document (--json or --log json) carries the hex digest and no label.
    if (json || a.log == Some(LogFormat::Json)) && (a.verbose || a.output_format.is_some()) {
        return Err(Fail::Usage(
            "-v and --output-format shape the text output; --json and --log json print hex".into(),
        ));
    }
    match a.mode {
        None => measure_igvm(&a, json),
        Some(mode) => measure_ovmf(&a, mode, json),
    }
}

fn measure_igvm(a: &MeasureArgs, json: bool) -> Result<(), Fail> {
    if a.igvm.is_empty() {
        return Err(Fail::Usage(
            "give an IGVM file, or --mode with --ovmf".into(),
        ));
    }
    if a.igvm.len() > 1 && (a.log.is_some() || a.verbose) {
        return Err(Fail::Usage("--log and -v take one IGVM file".into()));
    }
    let sig = a.vcpu_sig()?;
    let rules = LoaderRules {
        vmsa: a.vmsa_rule,
        zero_pages: a.zero_pages,
        ap_vmsas: a.ap_vmsas,
        vcpus: a.vcpus,
        // Same default as refs, sign and qemu-args (QEMU model EPYC-v4).
        vcpu_sig: sig.or(reset_vmsa::vcpu_type_sig("EPYC-v4")).unwrap_or(0),
        guest_features: a.guest_features,
        fpu: a.fpu(),
    };
    if let [path] = a.igvm.as_slice() {
        let data = limits::read(path, limits::IGVM)?;
        let r = igvm_measure::measure_file(
            &data,
            igvm_measure::Platform::Snp,
            &rules,
            a.log.is_some(),
        )?;
        return single_igvm_result(a, path, &r, json);
    }
    batch(&a.igvm, json, |path| {
        let data = limits::read(path, limits::IGVM)?;
        let r = igvm_measure::measure_file(&data, igvm_measure::Platform::Snp, &rules, false)?;
        let d = digest_text(&r.measurement.digest, a.output_format);
        Ok((
            format!("{d}  {} ({} vCPUs)", path.display(), r.rules.vcpus),
            serde_json::json!({
                "digest": d,
                "vcpus": r.rules.vcpus,
                "vcpu_sig": format!("{:#x}", rules.vcpu_sig),
                "loader": r.rules,
            }),
        ))
    })
}

fn single_igvm_result(
    a: &MeasureArgs,
    path: &Path,
    r: &igvm_measure::IgvmMeasurement,
    json: bool,
) -> Result<(), Fail> {
    let vcpus = r.rules.vcpus;
    let sig = a
        .vcpu_sig()?
        .or(reset_vmsa::vcpu_type_sig("EPYC-v4"))
        .unwrap_or(0);
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
    let d = digest_text(&r.measurement.digest, a.output_format);
    if json {
        return output::json(&serde_json::json!({
            "path": path.display().to_string(),
            "digest": d,
            "vcpus": vcpus,
            "vcpu_sig": format!("{sig:#x}"),
            "loader": r.rules,
        }));
    }
    output::note(&format!(
        "SNP launch digest of {} for {vcpus} vCPU(s), vCPU signature {sig:#x}:",
        path.display()
    ));
    match a.verbose {
        true => output::out(&format!("Calculated SEV_SNP guest measurement: {d}")),
        false => output::out(&d),
    }
}

/// Flags whose effect depends on `--mode`: refuse those the mode would ignore.
fn check_mode_flags(a: &MeasureArgs, mode: Mode) -> Result<(), Fail> {
    let name = mode_name(mode);
    let has_vmsas = !matches!(mode, Mode::Sev | Mode::SnpOvmfHash);
    let mut refused: Vec<&str> = Vec::new();
    if !has_vmsas {
        for (given, flag) in [
            (a.vcpus.is_some(), "--vcpus"),
            (a.vcpu_type.is_some(), "--vcpu-type"),
            (a.vcpu_sig.is_some(), "--vcpu-sig"),
            (a.vcpu_family.is_some(), "--vcpu-family"),
            (a.x87_fcw_zero, "--x87-fcw-zero"),
            (a.dump_vmsa, "--dump-vmsa"),
        ] {
            if given {
                refused.push(flag);
            }
        }
    }
    // Only snp (and snp:svsm's VMSAs, which take none) read SEV features: seves and sev
    // measure VMSAs without them, ovmf-hash has no VMSA.
    if a.guest_features.is_some() && mode != Mode::Snp {
        refused.push("--guest-features");
    }
    if mode != Mode::SnpSvsm {
        for (given, flag) in [
            (a.svsm.is_some(), "--svsm"),
            (a.vars_size.is_some(), "--vars-size"),
            (a.vars_file.is_some(), "--vars-file"),
        ] {
            if given {
                refused.push(flag);
            }
        }
    }
    if a.kernel.is_some() && matches!(mode, Mode::SnpOvmfHash | Mode::SnpSvsm) {
        refused.push("--kernel");
    }
    if a.snp_ovmf_hash.is_some() && mode != Mode::Snp {
        refused.push("--snp-ovmf-hash");
    }
    if a.log.is_some() && matches!(mode, Mode::Sev | Mode::SevEs) {
        refused.push("--log (no page log in SEV/SEV-ES modes)");
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Fail::Usage(format!(
            "{} has no effect in guest mode '{name}'",
            refused.join(", ")
        )))
    }
}

fn measure_ovmf(a: &MeasureArgs, mode: Mode, json: bool) -> Result<(), Fail> {
    check_mode_flags(a, mode)?;
    let ovmf_path = a
        .ovmf
        .as_ref()
        .ok_or_else(|| Fail::Usage("--mode needs --ovmf PATH".into()))?;
    let needs_vcpus = !matches!(mode, Mode::Sev | Mode::SnpOvmfHash);
    let vcpus = match (needs_vcpus, a.vcpus) {
        (true, None) => {
            return Err(Fail::Usage(format!(
                "missing --vcpus N in guest mode '{}'",
                mode_name(mode)
            )))
        }
        (_, v) => v.unwrap_or(0),
    };
    let vcpu_sig = match a.vcpu_sig()? {
        Some(s) => s,
        None if !needs_vcpus || a.vmm_type != VmmType::QEMU => 0,
        None => {
            return Err(Fail::Usage(format!(
                "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
                mode_name(mode)
            )))
        }
    };
    let p = ovmf_params(a, mode, ovmf_path, vcpus, vcpu_sig)?;
    let r = ovmf_measure::measure(&p, a.log.is_some())?;
    if ovmf_measure::is_snp(mode) {
        // Measured like sev-snp-measure does, but QEMU will not launch it as SNP.
        if let Err(e) = vigil_igvm::ovmf::Ovmf::parse_ovmf(p.ovmf.as_slice(), true) {
            output::note(&format!("vigil-igvm: warning: {e}"));
        }
    }
    if a.dump_vmsa {
        dump_vmsas(&p, Path::new("."))?;
    }
    if let (Some(l), Some(m)) = (a.log, &r.snp) {
        print_log(
            l,
            &r.digest,
            m,
            serde_json::json!({ "mode": mode_name(mode), "vcpus": vcpus }),
        )?;
        if l == LogFormat::Json {
            return Ok(());
        }
    }
    let d = digest_text(&r.digest, a.output_format);
    if json {
        return output::json(&serde_json::json!({
            "path": ovmf_path.display().to_string(),
            "mode": mode_name(mode),
            "digest": d,
            "vcpus": vcpus,
            "vcpu_sig": format!("{vcpu_sig:#x}"),
        }));
    }
    if needs_vcpus {
        output::note(&format!(
            "launch digest for {vcpus} vCPU(s), vCPU signature {vcpu_sig:#x}:"
        ));
    }
    let label = match mode {
        Mode::Sev => "SEV",
        Mode::SevEs => "SEV_ES",
        Mode::Snp | Mode::SnpOvmfHash => "SEV_SNP",
        Mode::SnpSvsm => "SEV_SNP_SVSM",
    };
    match a.verbose {
        true => output::out(&format!("Calculated {label} guest measurement: {d}")),
        false => output::out(&d),
    }
}

fn ovmf_params(
    a: &MeasureArgs,
    mode: Mode,
    ovmf_path: &Path,
    vcpus: u32,
    vcpu_sig: u32,
) -> Result<OvmfParams, Fail> {
    let kernel = match &a.kernel {
        Some(k) => {
            let kd = limits::sha256(k, limits::DIRECT_KERNEL)?;
            let id = a
                .initrd
                .as_deref()
                .map(|i| limits::sha256(i, limits::INITRD))
                .transpose()?;
            Some(KernelHashes::from_digests(kd, id, a.append.as_deref()))
        }
        None => None,
    };
    let vars_size = match (&a.vars_file, a.vars_size) {
        (Some(f), _) => limits::size(f, limits::VARS)?,
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
    Ok(OvmfParams {
        mode,
        vcpus,
        vcpu_sig,
        vmm: a.vmm_type,
        guest_features: a.guest_features.unwrap_or(1),
        ovmf: limits::read(ovmf_path, limits::OVMF)?,
        kernel,
        svsm: a
            .svsm
            .as_deref()
            .map(|s| limits::read(s, limits::SVSM))
            .transpose()?,
        vars_size,
        ovmf_hash,
        fpu: a.fpu(),
    })
}

pub fn mode_name(m: Mode) -> &'static str {
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
