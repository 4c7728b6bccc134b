//! Reference values for the verifier (`vigil-igvm refs`): what a relying party compares
//! an attestation report and Vigil's evidence against. Schema "vigil-refs/1", agreed
//! with `vigil-verify`:
//!
//! ```json
//! {"schema": "vigil-refs/1", "launch_digest": "<96 hex>", "policy": "0x30000",
//!  "sev_features": "0x1", "vcpus": 1, "guest_vmpl": 2,
//!  "monitor_policy_digest": "<96 hex>", "platform": "snp", "igvm_sha256": "<64 hex>"}
//! ```
//!
//! Additional fields (a verifier must ignore what it does not know): `loader` (the rules
//! the digest was computed under), `vcpu_sig`, `id_block` (family/image ID, SVN and the
//! ID/author key digests the report carries, if the file has a signed ID block).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::builder::find_boot_params;
use crate::igvm_measure::{self, LoaderRules, Platform, ResolvedRules};
use crate::sign::{IdBlockSummary, SignedIdBlock};
use crate::{reader, Error, Result};

/// The reference values.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Refs {
    /// "vigil-refs/1".
    pub schema: &'static str,
    /// SNP launch digest (hex; empty for the native platform, which has none).
    pub launch_digest: String,
    /// SNP guest policy (hex string); none for the native platform, whose software
    /// security processor reports a fixed POLICY of its own (vigil-verify does not
    /// compare it there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// SEV_FEATURES of the boot VMSA (hex string).
    pub sev_features: String,
    /// vCPU count.
    pub vcpus: u32,
    /// VMPL of the guest.
    pub guest_vmpl: u32,
    /// SHA-384 of the monitor policy bytes (hex).
    pub monitor_policy_digest: String,
    /// "snp" or "native".
    pub platform: Platform,
    /// SHA-256 of the IGVM file (hex).
    pub igvm_sha256: String,
    /// Loader rules of `launch_digest`.
    pub loader: Option<ResolvedRules>,
    /// CPUID signature of the reset-state AP VMSAs.
    pub vcpu_sig: String,
    /// The file's signed ID block, if any.
    pub id_block: Option<IdBlockSummary>,
}

/// Compute the reference values of the IGVM file `data`.
pub fn refs(data: &[u8], platform: Platform, rules: &LoaderRules) -> Result<Refs> {
    let (file, _) = reader::parse(data)?;
    let bp = find_boot_params(&file).ok_or_else(|| {
        Error::Invalid(
            "the file has no Vigil BootParams page (was it built by vigil-igvm build?)".into(),
        )
    })?;
    let policy_len = (bp.policy_len as usize).min(bp.policy.len());
    let policy_digest = hex::encode(crate::builder::policy_digest(&bp.policy[..policy_len]));
    if crate::builder::policy_digest(&bp.policy[..policy_len]) != bp.policy_digest {
        return Err(Error::Invalid(
            "BootParams: policy_digest does not match the policy bytes".into(),
        ));
    }
    let igvm_sha256 = hex::encode(Sha256::digest(data));
    match platform {
        Platform::Snp => {
            let m = igvm_measure::measure_parsed(&file, rules, false)?;
            let mask = m.rules.compatibility_mask;
            let id_block = file
                .directives()
                .iter()
                .filter(|h| igvm_measure::applies(h, mask))
                .find_map(|h| SignedIdBlock::from_directive(h, m.rules.policy).transpose())
                .transpose()?
                .map(|s| s.summary());
            Ok(Refs {
                schema: "vigil-refs/1",
                launch_digest: hex::encode(m.measurement.digest),
                policy: Some(format!("{:#x}", m.rules.policy)),
                sev_features: format!("{:#x}", m.rules.sev_features),
                vcpus: m.rules.vcpus,
                guest_vmpl: bp.guest_vmpl,
                monitor_policy_digest: policy_digest,
                platform,
                igvm_sha256,
                vcpu_sig: format!("{:#x}", rules.vcpu_sig),
                loader: Some(m.rules),
                id_block,
            })
        }
        Platform::Native => {
            igvm_measure::platform_mask(&file, Platform::Native)?;
            Ok(Refs {
                schema: "vigil-refs/1",
                launch_digest: String::new(),
                policy: None,
                sev_features: "0x0".into(),
                vcpus: match rules.vcpus {
                    Some(v) => v,
                    None => igvm_measure::default_vcpus(&file)?,
                },
                guest_vmpl: bp.guest_vmpl,
                monitor_policy_digest: policy_digest,
                platform,
                igvm_sha256,
                loader: None,
                vcpu_sig: format!("{:#x}", rules.vcpu_sig),
                id_block: None,
            })
        }
    }
}
