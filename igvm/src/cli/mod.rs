//! The `vigil-igvm` binary's commands and output; the library does the work.

pub mod build;
pub mod measure;
pub mod output;
pub mod sign;

use std::path::{Path, PathBuf};

use vigil_igvm::limits::MAX_VCPUS;

use output::Fail;

/// A number in decimal or 0x-hex.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    u64::from_str_radix(digits, radix).map_err(|e| format!("{s}: {e}"))
}

/// A vCPU count: 1 to [`MAX_VCPUS`] (each vCPU is a measured VMSA page; an unbounded
/// count would let one flag allocate gigabytes).
pub fn parse_vcpus(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    if v == 0 || v > u64::from(MAX_VCPUS) {
        return Err(format!("{s} is outside 1..={MAX_VCPUS}"));
    }
    Ok(v as u32)
}

/// One result per input of a batch: the text line (stdout), the JSON fields, and the
/// exit code of that input (lint findings give 1 with a result). Failures of one input
/// never lose the others' results; the process exits with the most severe code, ranked
/// as vigil-verify ranks them (2, then 3, then 1, then 0).
pub fn batch<F>(paths: &[PathBuf], json: bool, mut f: F) -> Result<(), Fail>
where
    F: FnMut(&Path) -> Result<(String, serde_json::Value), Fail>,
{
    batch_coded(paths, json, |p| f(p).map(|(t, v)| (t, v, 0)))
}

fn worse(a: u8, b: u8) -> u8 {
    if Fail::severity(b) > Fail::severity(a) {
        b
    } else {
        a
    }
}

/// [`batch`] where an input may succeed with a nonzero code (lint findings).
pub fn batch_coded<F>(paths: &[PathBuf], json: bool, mut f: F) -> Result<(), Fail>
where
    F: FnMut(&Path) -> Result<(String, serde_json::Value, u8), Fail>,
{
    let mut worst = 0u8;
    let mut results = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        match f(p) {
            Ok((text, mut v, code)) => {
                worst = worse(worst, code);
                if json {
                    if let Some(o) = v.as_object_mut() {
                        o.insert("path".into(), name.into());
                        o.insert("exit_code".into(), code.into());
                    }
                    results.push(v);
                } else {
                    output::out(&text)?;
                }
            }
            Err(e) => {
                worst = worse(worst, e.code());
                output::note(&format!("vigil-igvm: {name}: {}", e.message()));
                results.push(serde_json::json!({
                    "path": name,
                    "exit_code": e.code(),
                    "error": e.to_json(),
                }));
            }
        }
    }
    if json {
        output::json(&serde_json::json!({ "results": results }))?;
    }
    match worst {
        0 => Ok(()),
        c => Err(Fail::Reported(c)),
    }
}

use clap::Args;
use vigil_igvm::igvm_measure::{LoaderRules, VmsaRule, ZeroRule};
use vigil_igvm::reset_vmsa::{self, Fpu};

/// Loader rules for IGVM measurements (see `measure --help`).
#[derive(Args, Clone)]
pub struct LoaderArgs {
    /// vCPU count, 1..=4096 (default: the file's own count: its BootParams count, else
    /// its VMSAs).
    #[arg(long, value_parser = parse_vcpus)]
    pub vcpus: Option<u32>,
    /// vCPU type (for the RDX of reset-state AP VMSAs; default EPYC-v4).
    #[arg(long, conflicts_with = "vcpu_sig")]
    pub vcpu_type: Option<String>,
    /// vCPU signature.
    #[arg(long, value_parser = parse_u64)]
    pub vcpu_sig: Option<u64>,
    /// SEV_FEATURES of reset-state AP VMSAs (default: the boot VMSA's).
    #[arg(long, value_parser = parse_u64)]
    pub guest_features: Option<u64>,
    /// VMSA rule (default kvm).
    #[arg(long)]
    pub vmsa_rule: Option<VmsaRule>,
    /// Zero-page rule (default qemu).
    #[arg(long)]
    pub zero_pages: Option<ZeroRule>,
    /// Reset-state VMSAs for vCPUs without one in the file (default true).
    #[arg(long, action = clap::ArgAction::Set)]
    pub ap_vmsas: Option<bool>,
    /// Leave the x87 FCW of measured VMSAs at 0.
    #[arg(long)]
    pub x87_fcw_zero: bool,
}

impl LoaderArgs {
    /// The loader flags given explicitly (refused where no SNP digest is computed).
    pub fn given(&self) -> Vec<&'static str> {
        [
            (self.vcpu_type.is_some(), "--vcpu-type"),
            (self.vcpu_sig.is_some(), "--vcpu-sig"),
            (self.guest_features.is_some(), "--guest-features"),
            (self.vmsa_rule.is_some(), "--vmsa-rule"),
            (self.zero_pages.is_some(), "--zero-pages"),
            (self.ap_vmsas.is_some(), "--ap-vmsas"),
            (self.x87_fcw_zero, "--x87-fcw-zero"),
        ]
        .into_iter()
        .filter_map(|(g, n)| g.then_some(n))
        .collect()
    }

    /// The rules; `vcpus` None means the file's own count.
    pub fn rules(&self) -> Result<LoaderRules, Fail> {
        let sig = match (&self.vcpu_type, self.vcpu_sig) {
            (_, Some(s)) => u32::try_from(s)
                .map_err(|_| Fail::Usage(format!("--vcpu-sig {s:#x} is too large")))?,
            (Some(t), None) => reset_vmsa::vcpu_type_sig(t)
                .ok_or_else(|| Fail::Usage(format!("--vcpu-type {t}: unknown")))?,
            (None, None) => reset_vmsa::vcpu_type_sig("EPYC-v4").unwrap_or(0),
        };
        Ok(LoaderRules {
            vmsa: self.vmsa_rule.unwrap_or(VmsaRule::Kvm),
            zero_pages: self.zero_pages.unwrap_or(ZeroRule::Qemu),
            ap_vmsas: self.ap_vmsas.unwrap_or(true),
            vcpus: self.vcpus,
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

#[cfg(test)]
mod tests {
    use super::worse;

    #[test]
    fn batch_exit_code_is_the_most_severe_as_in_vigil_verify() {
        assert_eq!(worse(0, 1), 1);
        assert_eq!(worse(1, 3), 3);
        assert_eq!(worse(3, 1), 3);
        assert_eq!(worse(3, 2), 2);
        assert_eq!(worse(2, 3), 2);
        assert_eq!(worse(2, 0), 2);
    }
}
