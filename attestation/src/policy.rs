//! The relying party's policy: a TOML file in which every field is optional. Absent
//! fields are not checked, except for four safe defaults that must be relaxed
//! explicitly: debug not allowed, migration agent not allowed, provisional firmware not
//! allowed, masked CHIP_ID not allowed. The effective policy is echoed in the output.
//!
//! Attack reasoning: the policy file is input too (it may be hostile or malformed). It is
//! parsed with unknown fields refused (a typo such as `min_guest_sv = 3` must not silently
//! disable a check), hex values must have exactly the length of the report field, and
//! every error names the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Minimum SPLs; each absent SPL is not checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// FMC SPL (Turin).
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bl: Option<u8>,
    /// TEE SPL.
    pub tee: Option<u8>,
    /// SNP SPL.
    pub snp: Option<u8>,
    /// Microcode SPL.
    pub ucode: Option<u8>,
}

/// The policy file. See docs/verifier.md for every field.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed launch measurements (96 hex digits each).
    pub measurements: Option<Vec<String>>,
    /// Required HOST_DATA (64 hex).
    pub host_data: Option<String>,
    /// Required REPORT_DATA (128 hex).
    pub report_data: Option<String>,
    /// Required FAMILY_ID (32 hex).
    pub family_id: Option<String>,
    /// Required IMAGE_ID (32 hex).
    pub image_id: Option<String>,
    /// Required REPORT_ID (64 hex).
    pub report_id: Option<String>,
    /// Required REPORT_ID_MA (64 hex).
    pub report_id_ma: Option<String>,
    /// Required CHIP_ID (128 hex).
    pub chip_id: Option<String>,
    /// Minimum GUEST_SVN.
    pub min_guest_svn: Option<u32>,
    /// Allowed VMPLs of the request.
    pub vmpl: Option<Vec<u32>>,
    /// Allow the DEBUG policy bit (default false).
    pub allow_debug: Option<bool>,
    /// Allow the MIGRATE_MA policy bit (default false).
    pub allow_migration_agent: Option<bool>,
    /// Allow the SMT policy bit (not checked if absent).
    pub allow_smt: Option<bool>,
    /// Require the SINGLE_SOCKET policy bit.
    pub require_single_socket: Option<bool>,
    /// Allow the CXL_ALLOW policy bit.
    pub allow_cxl: Option<bool>,
    /// Require MEM_AES_256_XTS.
    pub require_aes_256_xts: Option<bool>,
    /// Require RAPL_DIS.
    pub require_rapl_disabled: Option<bool>,
    /// Require CIPHERTEXT_HIDING.
    pub require_ciphertext_hiding: Option<bool>,
    /// Require PAGE_SWAP_DISABLE.
    pub require_page_swap_disabled: Option<bool>,
    /// Minimum ABI version the guest policy demands, "major.minor".
    pub min_policy_abi: Option<String>,
    /// Exact guest POLICY value ("0x30000").
    pub policy_exact: Option<String>,
    /// Minimum TCB per product name ("Milan", "Genoa", "Turin", "Vigil-Test"); applied to
    /// REPORTED, COMMITTED, LAUNCH and CURRENT TCB.
    pub min_tcb: Option<BTreeMap<String, MinTcb>>,
    /// Allow CURRENT firmware to differ from COMMITTED (default false).
    pub allow_provisional_firmware: Option<bool>,
    /// Minimum CURRENT_BUILD.
    pub min_build: Option<u8>,
    /// Minimum current firmware version "major.minor".
    pub min_version: Option<String>,
    /// PLATFORM_INFO bits that must be set (names: SMT_EN, TSME_EN, ECC_EN, RAPL_DIS,
    /// CIPHERTEXT_HIDING_EN, ALIAS_CHECK_COMPLETE, IOMMU_WRITE_SAFE).
    pub platform_required: Option<Vec<String>>,
    /// PLATFORM_INFO bits that must be clear.
    pub platform_forbidden: Option<Vec<String>>,
    /// Bits that must be set in LAUNCH_MIT_VECTOR (v5 reports), "0x..".
    pub launch_mit_vector_required: Option<String>,
    /// Bits that must be set in CURRENT_MIT_VECTOR (v5 reports), "0x..".
    pub current_mit_vector_required: Option<String>,
    /// Require an ID block (ID_KEY_DIGEST non-zero).
    pub require_id_block: Option<bool>,
    /// Allowed ID key digests (96 hex).
    pub id_key_digests: Option<Vec<String>>,
    /// Allowed author key digests (96 hex); requires AUTHOR_KEY_EN.
    pub author_key_digests: Option<Vec<String>>,
    /// Allow a masked (zero) CHIP_ID (default false).
    pub allow_masked_chip_id: Option<bool>,
    /// Allowed signing keys: "vcek", "vlek".
    pub signing_keys: Option<Vec<String>>,
    /// Allowed VLEK cspId values.
    pub vlek_csp_ids: Option<Vec<String>>,
    /// Allowed products.
    pub products: Option<Vec<String>>,
    /// Require a guest that locked its text with Vigil's protection protocol (a
    /// successful PROTECT_LOCK record the event log's head binds).
    pub require_locked_text: Option<bool>,
    /// Allowed SHA-384 digests of the locked text (96 hex each); a guest that never
    /// locked fails.
    pub text_digests: Option<Vec<String>>,
}

/// A policy-file problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML of the policy's shape (an unknown field included); the parser's message
    /// names the line, column and field.
    #[error("policy: {0}")]
    Toml(String),
    /// A hex field that is not hex.
    #[error("policy: {field}: not hex: {reason}")]
    NotHex {
        /// The field.
        field: String,
        /// The decoder's message.
        reason: String,
    },
    /// A hex field of the wrong length.
    #[error("policy: {field}: {got} bytes, expected {want} ({} hex digits)", 2 * want)]
    Length {
        /// The field.
        field: String,
        /// Bytes given.
        got: usize,
        /// Bytes of the report field.
        want: usize,
    },
    /// A number field that is not a 64-bit number.
    #[error("policy: {field}: not a 64-bit number: {reason}")]
    Number {
        /// The field.
        field: String,
        /// The parser's message.
        reason: String,
    },
    /// A "major.minor" field that is not.
    #[error("policy: {field}: expected \"major.minor\" of two numbers 0..255")]
    Version {
        /// The field.
        field: String,
    },
    /// A value outside the field's set.
    #[error("policy: {field}: {value} is not {allowed}")]
    Value {
        /// The field.
        field: &'static str,
        /// The value, quoted.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// PLATFORM_INFO bit names.
pub const PLATFORM_BITS: [(&str, u64); 7] = [
    ("SMT_EN", 1 << 0),
    ("TSME_EN", 1 << 1),
    ("ECC_EN", 1 << 2),
    ("RAPL_DIS", 1 << 3),
    ("CIPHERTEXT_HIDING_EN", 1 << 4),
    ("ALIAS_CHECK_COMPLETE", 1 << 5),
    ("IOMMU_WRITE_SAFE", 1 << 6),
];

/// Decodes a hex field of exactly `len` bytes.
pub fn hex_field(name: &str, s: &str, len: usize) -> Result<Vec<u8>, PolicyError> {
    let s = s.trim().trim_start_matches("0x");
    let v = hex::decode(s).map_err(|e| PolicyError::NotHex {
        field: name.to_string(),
        reason: e.to_string(),
    })?;
    if v.len() != len {
        return Err(PolicyError::Length {
            field: name.to_string(),
            got: v.len(),
            want: len,
        });
    }
    Ok(v)
}

/// Parses "0x..." or decimal into u64.
pub fn u64_field(name: &str, s: &str) -> Result<u64, PolicyError> {
    let t = s.trim();
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse()
    };
    r.map_err(|e| PolicyError::Number {
        field: name.to_string(),
        reason: e.to_string(),
    })
}

/// Parses "major.minor".
pub fn version_field(name: &str, s: &str) -> Result<(u8, u8), PolicyError> {
    let err = || PolicyError::Version {
        field: name.to_string(),
    };
    let (a, b) = s.split_once('.').ok_or_else(err)?;
    let p = |x: &str| x.trim().parse::<u8>().map_err(|_| err());
    Ok((p(a)?, p(b)?))
}

impl Policy {
    /// Parses and validates a TOML policy.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let p: Policy = toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks every field's shape, so that a bad policy is an input error up front and
    /// never a silently skipped check.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for m in self.measurements.iter().flatten() {
            hex_field("measurements", m, 48)?;
        }
        if let Some(h) = &self.host_data {
            hex_field("host_data", h, 32)?;
        }
        if let Some(h) = &self.report_data {
            hex_field("report_data", h, 64)?;
        }
        if let Some(h) = &self.family_id {
            hex_field("family_id", h, 16)?;
        }
        if let Some(h) = &self.image_id {
            hex_field("image_id", h, 16)?;
        }
        if let Some(h) = &self.report_id {
            hex_field("report_id", h, 32)?;
        }
        if let Some(h) = &self.report_id_ma {
            hex_field("report_id_ma", h, 32)?;
        }
        if let Some(h) = &self.chip_id {
            hex_field("chip_id", h, 64)?;
        }
        for d in self.id_key_digests.iter().flatten() {
            hex_field("id_key_digests", d, 48)?;
        }
        for d in self.author_key_digests.iter().flatten() {
            hex_field("author_key_digests", d, 48)?;
        }
        for d in self.text_digests.iter().flatten() {
            hex_field("text_digests", d, 48)?;
        }
        for v in self.vmpl.iter().flatten() {
            if *v > 3 {
                return Err(PolicyError::Value {
                    field: "vmpl",
                    value: v.to_string(),
                    allowed: "0..3",
                });
            }
        }
        if let Some(v) = &self.min_policy_abi {
            version_field("min_policy_abi", v)?;
        }
        if let Some(v) = &self.min_version {
            version_field("min_version", v)?;
        }
        if let Some(v) = &self.policy_exact {
            u64_field("policy_exact", v)?;
        }
        for (n, v) in [
            (
                "launch_mit_vector_required",
                &self.launch_mit_vector_required,
            ),
            (
                "current_mit_vector_required",
                &self.current_mit_vector_required,
            ),
        ] {
            if let Some(v) = v {
                u64_field(n, v)?;
            }
        }
        for (n, list) in [
            ("platform_required", &self.platform_required),
            ("platform_forbidden", &self.platform_forbidden),
        ] {
            for b in list.iter().flatten() {
                if !PLATFORM_BITS.iter().any(|(x, _)| x == b) {
                    return Err(PolicyError::Value {
                        field: n,
                        value: format!("{b:?}"),
                        allowed: "a PLATFORM_INFO bit name",
                    });
                }
            }
        }
        for k in self.signing_keys.iter().flatten() {
            if k != "vcek" && k != "vlek" {
                return Err(PolicyError::Value {
                    field: "signing_keys",
                    value: format!("{k:?}"),
                    allowed: "\"vcek\" or \"vlek\"",
                });
            }
        }
        for p in self.products.iter().flatten() {
            if crate::product::Product::parse(p).is_none() {
                return Err(PolicyError::Value {
                    field: "products",
                    value: format!("{p:?}"),
                    allowed: "a known product",
                });
            }
        }
        for p in self.min_tcb.iter().flat_map(|m| m.keys()) {
            if crate::product::Product::parse(p).is_none() {
                return Err(PolicyError::Value {
                    field: "min_tcb",
                    value: format!("{p:?}"),
                    allowed: "a known product",
                });
            }
        }
        Ok(())
    }
}
