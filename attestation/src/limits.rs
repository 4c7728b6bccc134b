//! Size limits of every input, fitted to its format, and the bounded reads that apply
//! them. A path that names `/dev/zero`, a FIFO or a 200 MB file is refused after at most
//! limit + 1 bytes, so peak memory is bounded whatever the user passes (measured in
//! docs/verifier.md).
//!
//! Attack reasoning: every input file may come from the untrusted host or guest (report,
//! certificate table, manifest, event log) or simply be the wrong file; reading it whole
//! before looking at it would let its size decide the verifier's memory.

use std::io::Read;
use std::path::Path;

/// The kinds of input, each with its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A report file: 0x4A0 bytes raw, 2,368 as hex, 1,580 as base64, plus whitespace.
    Report,
    /// One certificate file (PEM or DER; a KDS `cert_chain` holds two RSA-4096
    /// certificates, about 4.5 KiB).
    Cert,
    /// An extended-report certificate table (Linux caps the guest's buffer at 16 KiB).
    CertTable,
    /// A CRL (AMD's are a few KiB).
    Crl,
    /// The relying party's policy TOML.
    Policy,
    /// Reference values JSON from `vigil-igvm refs`.
    Refs,
    /// An SVSM services manifest (Vigil's is 112 bytes).
    Manifest,
    /// Vigil's event log (records of 24 bytes plus a payload of at most a few dozen).
    EventLog,
    /// One answer of AMD's KDS.
    KdsResponse,
}

impl Input {
    /// The most bytes an input of this kind may have.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Input::Report => 16 << 10,
            Input::Cert => 64 << 10,
            Input::CertTable => 64 << 10,
            Input::Crl => 1 << 20,
            Input::Policy => 64 << 10,
            Input::Refs => 64 << 10,
            Input::Manifest => 64 << 10,
            Input::EventLog => 16 << 20,
            Input::KdsResponse => 1 << 20,
        }
    }

    /// Name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Input::Report => "report",
            Input::Cert => "certificate file",
            Input::CertTable => "certificate table",
            Input::Crl => "CRL",
            Input::Policy => "policy",
            Input::Refs => "reference values",
            Input::Manifest => "services manifest",
            Input::EventLog => "event log",
            Input::KdsResponse => "KDS response",
        }
    }
}

/// Most files `--certs` may hold.
pub const MAX_CERT_DIR_FILES: usize = 64;
/// Longest nonce (bytes) `--nonce` takes: Vigil's monitor accepts at most 4,096.
pub const MAX_NONCE: usize = 4096;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// More bytes than the format allows.
    #[error("more than {limit} bytes, larger than any {what}")]
    TooLarge {
        /// The kind.
        what: &'static str,
        /// Its limit.
        limit: u64,
    },
}

/// Reads at most `kind`'s limit from `r`; one byte more is an error.
pub fn read_from(r: impl Read, kind: Input) -> Result<Vec<u8>, ReadError> {
    let limit = kind.max_bytes();
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            what: kind.name(),
            limit,
        });
    }
    Ok(buf)
}

/// Reads the file at `p` with `kind`'s limit.
pub fn read(p: &Path, kind: Input) -> Result<Vec<u8>, ReadError> {
    read_from(std::fs::File::open(p)?, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_over_the_limit_is_refused_and_the_limit_itself_is_not() {
        let n = Input::Report.max_bytes() as usize;
        assert_eq!(
            read_from(&vec![7u8; n][..], Input::Report).unwrap().len(),
            n
        );
        let e = read_from(&vec![7u8; n + 1][..], Input::Report).unwrap_err();
        assert!(e.to_string().contains("larger than any report"), "{e}");
        // An endless source stops at the limit.
        let e = read_from(std::io::repeat(0), Input::EventLog).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }));
    }
}
