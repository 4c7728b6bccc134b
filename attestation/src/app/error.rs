//! vigil-verify's errors and the exit-code scheme they map to (docs/verifier.md, "Exit
//! codes"): 0 verified, 1 rejected, 2 usage, 3 environment.

use std::path::Path;

use serde::Serialize;

use crate::certs::Role;
use crate::crl::CrlError;
use crate::evidence::RefsError;
use crate::inputs::InputError;
use crate::kds::KdsError;
use crate::policy::PolicyError;
use crate::report::ReportInputError;
use crate::roots::BuiltinError;

/// What kind of failure ended a run or one input of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Every check passed or was skipped (exit 0).
    Verified,
    /// The evidence was examined and rejected (exit 1).
    Rejected,
    /// The environment failed: unreadable file, network, KDS (exit 3).
    Environment,
    /// The call was wrong: flags, or a file that is not what its option says (exit 2).
    Usage,
}

impl Class {
    /// Lower-case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Class::Verified => "verified",
            Class::Rejected => "rejected",
            Class::Usage => "usage",
            Class::Environment => "environment",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Verified => 0,
            Class::Rejected => 1,
            Class::Usage => 2,
            Class::Environment => 3,
        }
    }
}

/// Why a run, or one input of a batch, could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The parser refused the flags (its message).
    #[error("{0}")]
    Flags(String),
    /// `--nonce` without a manifest to go with it.
    #[error(
        "--nonce needs --manifest (or configfs-tsm folders, whose manifestblob is the manifest)"
    )]
    NonceWithoutManifest,
    /// An option's file could not be read, or its content is not of its kind.
    #[error("--{option} {err}")]
    Input {
        /// The option (without dashes).
        option: &'static str,
        /// What went wrong.
        err: InputError,
    },
    /// A certificate of the wrong role for its option (an ASK as `--vcek`).
    #[error("--{option} {path}: holds {found} certificate ({cn}), not {want}; {hint}")]
    WrongRole {
        /// The option.
        option: &'static str,
        /// The file.
        path: String,
        /// The role found, with its article ("an ASK").
        found: &'static str,
        /// Its subject CN.
        cn: String,
        /// What the option takes.
        want: &'static str,
        /// Where that certificate goes instead.
        hint: &'static str,
    },
    /// `--crl` is not a CRL.
    #[error("--crl {path}: {err}")]
    NotACrl {
        /// The file.
        path: String,
        /// The parser's refusal.
        err: CrlError,
    },
    /// The policy file is not valid.
    #[error("--policy {path}: {err}")]
    Policy {
        /// The file.
        path: String,
        /// Which field and why.
        err: PolicyError,
    },
    /// The refs file is not valid.
    #[error("--refs {path}: {err}")]
    Refs {
        /// The file.
        path: String,
        /// Which field and why.
        err: RefsError,
    },
    /// A text file that is not UTF-8.
    #[error("--{option} {path}: not UTF-8 at byte offset {offset}")]
    NotUtf8 {
        /// The option.
        option: &'static str,
        /// The file.
        path: String,
        /// First invalid byte.
        offset: usize,
    },
    /// `--product` names no product.
    #[error("--product: unknown product {0:?} (Milan, Genoa, Turin)")]
    Product(String),
    /// `--at` is not RFC 3339.
    #[error("--at {value:?}: not RFC 3339: {reason}")]
    At {
        /// The value.
        value: String,
        /// The parser's message.
        reason: String,
    },
    /// `--trust-root` is not a self-signed ARK of a known product.
    #[error("--trust-root {path}: {reason}")]
    TrustRoot {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The built-in roots do not load (the binary was tampered with).
    #[error(transparent)]
    Builtin(#[from] BuiltinError),
    /// A report input that cannot be read.
    #[error("{err}")]
    ReportRead {
        /// What went wrong.
        err: InputError,
    },
    /// A report file's text is neither hex nor base64.
    #[error("{path}: {err}")]
    ReportEncoding {
        /// The file.
        path: String,
        /// The decoder's refusal.
        err: ReportInputError,
    },
    /// KDS could not be reached or failed.
    #[error("{0}")]
    Kds(KdsError),
}

impl AppError {
    /// The class, and so the exit code.
    pub fn class(&self) -> Class {
        match self {
            AppError::Input { err, .. } | AppError::ReportRead { err } if err.is_environment() => {
                Class::Environment
            }
            AppError::Builtin(_) | AppError::Kds(_) => Class::Environment,
            // A report input is the evidence itself: content that does not decode is a
            // rejection of the evidence, not of the call.
            AppError::ReportRead { .. } | AppError::ReportEncoding { .. } => Class::Rejected,
            _ => Class::Usage,
        }
    }

    /// Wraps an option's input error.
    pub fn input(option: &'static str) -> impl Fn(InputError) -> AppError {
        move |err| AppError::Input { option, err }
    }

    /// `WrongRole` for a certificate `c` found in `path`.
    pub fn wrong_role(
        option: &'static str,
        path: &Path,
        role: Role,
        cn: String,
        want: &'static str,
    ) -> AppError {
        let (found, hint) = match role {
            Role::Ark => (
                "an ARK (root)",
                "give it with --chain, --certs or --trust-root",
            ),
            Role::Ask => (
                "an ASK (VCEK intermediate)",
                "give it with --chain or --certs",
            ),
            Role::Asvk => (
                "an ASVK (VLEK intermediate)",
                "give it with --chain or --certs",
            ),
            Role::Vcek => ("a VCEK (leaf)", "give it with --vcek or --certs"),
            Role::Vlek => ("a VLEK (leaf)", "give it with --vcek or --certs"),
            Role::Other => ("a non-AMD", "it has no place in an SEV-SNP chain"),
        };
        AppError::WrongRole {
            option,
            path: path.display().to_string(),
            found,
            cn,
            want,
            hint,
        }
    }
}
