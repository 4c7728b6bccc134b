//! The evidence frame the test guest prints itself on SNP, after its `attest` step.
//!
//! On `emulated` Vigil prints the frame (it sees the guest's debug-exit write); on SNP
//! that write goes to the host, so the guest prints the same frame on its console: the
//! record of [`svsm_abi::evidence`] (one format, one definition: its [`encode`],
//! [`base64_encode`] and [`record_sha256`]) with the items REPORT, MANIFEST and NONCE.
//! No certificates (the verifier is given the chain: the model signs with the project's
//! TEST chain) and no event log (the attestation protocol hands the guest the manifest,
//! whose Vigil entry carries the log's head and record count, not the log itself).
//!
//! [`encode`]: svsm_abi::evidence::encode
//! [`base64_encode`]: svsm_abi::evidence::base64_encode
//! [`record_sha256`]: svsm_abi::evidence::record_sha256

use svsm_abi::evidence::{self, item, EvidenceError, B64_LINE, FRAME_BEGIN, FRAME_END};

/// Room for a record of a 1184-byte report, a manifest of up to 512 bytes and a 64-byte
/// nonce.
pub const RECORD_MAX: usize = 2048;

/// Builds the record of the guest's evidence into `out`; returns its length.
pub fn record(
    report: &[u8],
    manifest: &[u8],
    nonce: &[u8],
    out: &mut [u8],
) -> Result<usize, EvidenceError> {
    evidence::encode(
        &[
            (item::REPORT, report),
            (item::MANIFEST, manifest),
            (item::NONCE, nonce),
        ],
        out,
    )
}

/// Hands the frame of `rec` to `line`, one line at a time (without the newline): the
/// header `VIGIL-EVIDENCE v1 <len> <sha256 hex>`, the base64 lines of 76 characters
/// and `VIGIL-EVIDENCE-END`.
pub fn frame(rec: &[u8], mut line: impl FnMut(core::fmt::Arguments<'_>)) {
    let sha = evidence::record_sha256(rec);
    let mut hex = [0u8; 64];
    for (i, b) in sha.iter().enumerate() {
        hex[2 * i] = HEX[usize::from(b >> 4)];
        hex[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    line(format_args!(
        "{} {} {}",
        FRAME_BEGIN,
        rec.len(),
        core::str::from_utf8(&hex).unwrap_or("")
    ));
    let mut buf = [0u8; B64_LINE];
    let mut fill = 0usize;
    evidence::base64_encode(rec, |q| {
        for &c in q {
            buf[fill] = c;
            fill += 1;
            if fill == B64_LINE {
                line(format_args!("{}", core::str::from_utf8(&buf).unwrap_or("")));
                fill = 0;
            }
        }
    });
    if fill > 0 {
        line(format_args!(
            "{}",
            core::str::from_utf8(&buf[..fill]).unwrap_or("")
        ));
    }
    line(format_args!("{FRAME_END}"));
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::Digest;

    /// The frame as lines, read back the way xtask's `e2e::extract_record` and
    /// `split_record` read it: header fields, base64 (the `base64` crate), SHA-256
    /// (the `sha2` crate), then the items through svsm_abi's reader.
    #[test]
    fn frame_reads_back_with_xtasks_reader() {
        let report: Vec<u8> = (0..0x4a0u32).map(|i| i as u8).collect();
        let manifest = [0x5au8; 200];
        let nonce = [0xa5u8; 64];
        let mut out = [0u8; RECORD_MAX];
        let n = record(&report, &manifest, &nonce, &mut out).unwrap();
        assert_eq!(n, 8 + 3 * 6 + 0x4a0 + 200 + 64);
        let rec = &out[..n];

        let mut lines = Vec::new();
        frame(rec, |a| lines.push(a.to_string()));
        let head: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            lines[0].strip_suffix(head[3]).unwrap().trim_end(),
            format!("{FRAME_BEGIN} {n}")
        );
        assert_eq!(head[2].parse::<usize>().unwrap(), n);
        assert_eq!(lines.last().unwrap(), FRAME_END);
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == B64_LINE));
        assert!(!body.last().unwrap().is_empty() && body.last().unwrap().len() <= B64_LINE);
        let b64: String = body.concat();
        let got = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap();
        assert_eq!(got, rec);
        let sha: String = sha2::Sha256::digest(&got)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(head[3], sha);

        let items: Vec<_> = evidence::items(&got).unwrap().map(|r| r.unwrap()).collect();
        let kinds: Vec<u16> = items.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(kinds, [item::REPORT, item::MANIFEST, item::NONCE]);
        assert_eq!(items[0].2, &report[..]);
        assert_eq!(items[1].2, &manifest[..]);
        assert_eq!(items[2].2, &nonce[..]);
    }

    #[test]
    fn a_record_too_big_is_refused() {
        let mut out = [0u8; 100];
        assert_eq!(
            record(&[0; 0x4a0], &[], &[0; 64], &mut out),
            Err(EvidenceError::BufferTooSmall)
        );
        // The guest's largest record fits its buffer.
        let mut out = [0u8; RECORD_MAX];
        assert!(record(&[0; 0x4a0], &[0; 512], &[0; 64], &mut out).is_ok());
    }
}
