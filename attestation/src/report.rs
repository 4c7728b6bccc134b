//! Reading a report: input decoding (raw, hex, base64), structural checks and the ECDSA
//! P-384 signature over bytes 0x000..0x2A0 exactly as received.
//!
//! Attack reasoning: the report arrives through the host and the guest, both untrusted
//! until the signature checks. The signature is verified over the received bytes, never
//! over a re-serialised struct, so no field can be "normalised" into validity. Every
//! structural field a verifier interprets (version, SIG_ALGO, SIGNING_KEY, reserved
//! bytes) is checked on its own, so that a future layout change cannot be misread.

use p384::ecdsa::signature::Verifier;
use svsm_abi::report::{AttestationReport, REPORT_SIZE, SIGNED_LEN};
use zerocopy::FromBytes;

/// An input-level problem with a report file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportInputError {
    /// Text that is neither hex nor base64.
    #[error("report: {len} bytes of text that are neither hex nor base64")]
    NotHexOrBase64 {
        /// Bytes in the file.
        len: usize,
    },
}

/// Decodes a report given as raw bytes, hex text or base64 text. Raw is recognised by
/// its length (0x4A0 bytes); text is tried as hex, then base64, with surrounding
/// whitespace removed. Any other length is still returned (raw), so that the length
/// check names the problem.
pub fn decode_report_input(bytes: &[u8]) -> Result<Vec<u8>, ReportInputError> {
    if bytes.len() == REPORT_SIZE {
        return Ok(bytes.to_vec());
    }
    let is_text = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if is_text {
        let compact: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if compact.len().is_multiple_of(2) && compact.iter().all(u8::is_ascii_hexdigit) {
            return hex::decode(&compact)
                .map_err(|_| ReportInputError::NotHexOrBase64 { len: bytes.len() });
        }
        use base64::Engine;
        if let Ok(v) = base64::engine::general_purpose::STANDARD.decode(&compact) {
            return Ok(v);
        }
        return Err(ReportInputError::NotHexOrBase64 { len: bytes.len() });
    }
    Ok(bytes.to_vec())
}

/// A problem with the report itself (its length or its signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Fewer than 0x4A0 bytes.
    #[error("report is {len} bytes, expected {REPORT_SIZE} (0x{REPORT_SIZE:X}); truncated at byte offset 0x{len:X}")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// More than 0x4A0 bytes.
    #[error("report is {len} bytes, expected {REPORT_SIZE} (0x{REPORT_SIZE:X}); {} trailing bytes from offset 0x{REPORT_SIZE:X}", len - REPORT_SIZE)]
    Trailing {
        /// Bytes present.
        len: usize,
    },
    /// R or S is not a scalar of the curve.
    #[error("signature R or S is zero or not below the group order (offset 0x2A0)")]
    SignatureScalars,
    /// The signature does not verify with the leaf key.
    #[error(
        "ECDSA P-384/SHA-384 signature over bytes 0x000-0x29F does not verify with the leaf key"
    )]
    BadSignature,
}

/// A report of the right length, as received, with its decoded fields.
#[derive(Clone, Debug)]
pub struct Report {
    /// The bytes as received (exactly [`REPORT_SIZE`]).
    pub bytes: Vec<u8>,
    /// Decoded view.
    pub r: AttestationReport,
}

impl Report {
    /// Takes the bytes of a report; fails only on a wrong length (the other structural
    /// checks are named checks of the verifier).
    pub fn from_bytes(bytes: &[u8]) -> Result<Report, ReportError> {
        let len = bytes.len();
        let r = AttestationReport::read_from_bytes(bytes).map_err(|_| {
            if len < REPORT_SIZE {
                ReportError::Truncated { len }
            } else {
                ReportError::Trailing { len }
            }
        })?;
        Ok(Report {
            bytes: bytes.to_vec(),
            r,
        })
    }

    /// The signed bytes (0x000..0x2A0) as received.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes[..SIGNED_LEN]
    }

    /// The signature as a P-384 ECDSA signature (R and S converted from little-endian).
    pub fn signature(&self) -> Result<p384::ecdsa::Signature, ReportError> {
        let mut r = [0u8; 48];
        let mut s = [0u8; 48];
        r.copy_from_slice(&self.r.signature_r[..48]);
        s.copy_from_slice(&self.r.signature_s[..48]);
        r.reverse();
        s.reverse();
        p384::ecdsa::Signature::from_scalars(r, s).map_err(|_| ReportError::SignatureScalars)
    }

    /// Verifies the ECDSA P-384/SHA-384 signature with the leaf's key (SEC1 point).
    ///
    /// `ring` does the arithmetic: its P-384 is several times faster than the pure-Rust
    /// `p384` crate (measured by `cargo bench -p attestation`), which decides whether a
    /// verifier with a cached chain reaches 1,000 verifications per second per core.
    /// R and S are range-checked first with `p384` so that the error names them.
    pub fn verify_signature_ring(&self, sec1_point: &[u8]) -> Result<(), ReportError> {
        let sig = self.signature()?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            sec1_point,
        )
        .verify(self.signed_bytes(), &sig.to_bytes())
        .map_err(|_| ReportError::BadSignature)
    }

    /// Verifies the ECDSA P-384/SHA-384 signature with the leaf's key (pure Rust).
    pub fn verify_signature(&self, key: &p384::ecdsa::VerifyingKey) -> Result<(), ReportError> {
        let sig = self.signature()?;
        key.verify(self.signed_bytes(), &sig)
            .map_err(|_| ReportError::BadSignature)
    }
}
