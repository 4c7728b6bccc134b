//! The evidence record that leaves an `emulated` run on the serial port, defined once
//! here and used by both ends (the kernel writes it, `cargo xtask` reads it).
//!
//! The record is a TLV container: an 8-byte header (`b"VEVD"`, version u16 = 1,
//! reserved u16 = 0) followed by items, each `type: u16, len: u32, bytes[len]`, all
//! little-endian, no padding. The item types are [`item`]. On the serial port the record
//! travels framed (see docs/emulated.md): a line `VIGIL-EVIDENCE v1 <len> <sha256 hex>`,
//! the record as base64 lines of 76 characters, and a line `VIGIL-EVIDENCE-END`.
//!
//! Trust: the reader treats the record as hostile input (it came through the guest's
//! serial port and the host): every length is bounds-checked, and an error names the
//! byte offset of the field that is wrong. The record's contents are then checked by the
//! verifier (the report's signature binds the nonce, manifest and, through the manifest,
//! the event log); the frame's SHA-256 only catches transport damage.

/// Magic at offset 0.
pub const MAGIC: [u8; 4] = *b"VEVD";
/// Container version at offset 4.
pub const VERSION: u16 = 1;
/// Size of the container header.
pub const HEADER_SIZE: usize = 8;
/// Size of an item header (type u16, len u32).
pub const ITEM_HEADER_SIZE: usize = 6;
/// The frame's first-line keyword.
pub const FRAME_BEGIN: &str = "VIGIL-EVIDENCE v1";
/// The frame's last line.
pub const FRAME_END: &str = "VIGIL-EVIDENCE-END";
/// Characters per base64 line in the frame.
pub const B64_LINE: usize = 76;

/// Item types.
pub mod item {
    /// The attestation report (1184 bytes).
    pub const REPORT: u16 = 1;
    /// The ARK certificate, PEM.
    pub const ARK_PEM: u16 = 2;
    /// The ASK certificate, PEM.
    pub const ASK_PEM: u16 = 3;
    /// The VCEK certificate, PEM.
    pub const VCEK_PEM: u16 = 4;
    /// The services manifest.
    pub const MANIFEST: u16 = 5;
    /// The event log (records up to the attestation, the ones the manifest binds).
    pub const EVENT_LOG: u16 = 6;
    /// The nonce the guest gave.
    pub const NONCE: u16 = 7;
}

/// Why a record was refused: what and at which byte offset of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceError {
    /// Shorter than the header.
    Truncated {
        /// Offset where more bytes were needed.
        offset: usize,
    },
    /// The magic (offset 0) is wrong.
    BadMagic,
    /// The version (offset 4) is not [`VERSION`].
    BadVersion(u16),
    /// An item's length runs past the end (offset of the item's `len` field).
    ItemOverruns {
        /// Offset of the `len` field.
        offset: usize,
    },
    /// The output buffer is too small (encoder).
    BufferTooSmall,
}

impl core::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { offset } => write!(f, "record truncated at byte offset {offset}"),
            Self::BadMagic => write!(f, "magic at byte offset 0 is not \"VEVD\""),
            Self::BadVersion(v) => write!(f, "version at byte offset 4 is {v}, expected 1"),
            Self::ItemOverruns { offset } => {
                write!(
                    f,
                    "item length at byte offset {offset} runs past the record's end"
                )
            }
            Self::BufferTooSmall => write!(f, "output buffer too small"),
        }
    }
}

/// Bytes needed to encode items of these lengths.
pub fn encoded_len(item_lens: impl Iterator<Item = usize>) -> usize {
    HEADER_SIZE + item_lens.map(|l| ITEM_HEADER_SIZE + l).sum::<usize>()
}

/// Encodes `items` into `out`; returns the bytes written.
pub fn encode(items: &[(u16, &[u8])], out: &mut [u8]) -> Result<usize, EvidenceError> {
    let need = encoded_len(items.iter().map(|(_, b)| b.len()));
    if out.len() < need || items.iter().any(|(_, b)| b.len() > u32::MAX as usize) {
        return Err(EvidenceError::BufferTooSmall);
    }
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_le_bytes());
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    let mut at = HEADER_SIZE;
    for (t, b) in items {
        out[at..at + 2].copy_from_slice(&t.to_le_bytes());
        out[at + 2..at + 6].copy_from_slice(&(b.len() as u32).to_le_bytes());
        out[at + 6..at + 6 + b.len()].copy_from_slice(b);
        at += ITEM_HEADER_SIZE + b.len();
    }
    Ok(at)
}

/// Iterates over the items of a record after checking its header. Each item is
/// `(type, offset of its bytes, bytes)`; a malformed item ends the iteration with an
/// error.
pub fn items(rec: &[u8]) -> Result<Items<'_>, EvidenceError> {
    if rec.len() < HEADER_SIZE {
        return Err(EvidenceError::Truncated { offset: rec.len() });
    }
    if rec[0..4] != MAGIC {
        return Err(EvidenceError::BadMagic);
    }
    let v = u16::from_le_bytes([rec[4], rec[5]]);
    if v != VERSION {
        return Err(EvidenceError::BadVersion(v));
    }
    Ok(Items {
        rec,
        at: HEADER_SIZE,
    })
}

/// Iterator of [`items`].
pub struct Items<'a> {
    rec: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<(u16, usize, &'a [u8]), EvidenceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.at == self.rec.len() {
            return None;
        }
        let at = self.at;
        let Some(h) = self.rec.get(at..at + ITEM_HEADER_SIZE) else {
            self.at = self.rec.len();
            return Some(Err(EvidenceError::Truncated { offset: at }));
        };
        let t = u16::from_le_bytes([h[0], h[1]]);
        let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
        let start = at + ITEM_HEADER_SIZE;
        let Some(b) = start
            .checked_add(len)
            .and_then(|end| self.rec.get(start..end))
        else {
            self.at = self.rec.len();
            return Some(Err(EvidenceError::ItemOverruns { offset: at + 2 }));
        };
        self.at = start + len;
        Some(Ok((t, start, b)))
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with padding) of `data`, handed out in pieces to `emit`.
/// Hand-written (a dozen lines) because this crate is `no_std` without `alloc` and the
/// kernel must stream the encoding to the serial port without a buffer; the reader
/// (xtask) decodes with the `base64` crate, and the tests check RFC 4648's vectors.
pub fn base64_encode(data: &[u8], mut emit: impl FnMut(&[u8])) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let mut o = [
            B64[(n >> 18) as usize & 63],
            B64[(n >> 12) as usize & 63],
            B64[(n >> 6) as usize & 63],
            B64[n as usize & 63],
        ];
        if chunk.len() < 3 {
            o[3] = b'=';
        }
        if chunk.len() < 2 {
            o[2] = b'=';
        }
        emit(&o);
    }
}

/// SHA-256 of a record, for the frame's first line.
pub fn record_sha256(rec: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(rec).into()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn b64(data: &[u8]) -> std::string::String {
        let mut s = Vec::new();
        base64_encode(data, |p| s.extend_from_slice(p));
        std::string::String::from_utf8(s).unwrap()
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(i.as_bytes()), o, "{i:?}");
        }
        assert_eq!(b64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn round_trip_and_offsets() {
        let items_in: [(u16, &[u8]); 2] = [(item::NONCE, b"abc"), (item::REPORT, &[7u8; 10])];
        let mut out = vec![0u8; encoded_len(items_in.iter().map(|(_, b)| b.len()))];
        let n = encode(&items_in, &mut out).unwrap();
        assert_eq!(n, 8 + 6 + 3 + 6 + 10);
        let got: Vec<_> = items(&out).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(got[0], (item::NONCE, 14, &b"abc"[..]));
        assert_eq!(got[1], (item::REPORT, 23, &[7u8; 10][..]));
    }

    #[test]
    fn hostile_records_name_the_offset() {
        assert_eq!(
            items(b"VEV").err(),
            Some(EvidenceError::Truncated { offset: 3 })
        );
        assert_eq!(
            items(b"XXXX\x01\0\0\0").err(),
            Some(EvidenceError::BadMagic)
        );
        assert_eq!(
            items(b"VEVD\x02\0\0\0").err(),
            Some(EvidenceError::BadVersion(2))
        );
        // An item claiming 100 bytes with 2 present.
        let mut r = b"VEVD\x01\0\0\0".to_vec();
        r.extend_from_slice(&[1, 0, 100, 0, 0, 0, 1, 2]);
        let e: Vec<_> = items(&r).unwrap().collect();
        assert_eq!(e, vec![Err(EvidenceError::ItemOverruns { offset: 10 })]);
        // A dangling partial item header.
        let mut r = b"VEVD\x01\0\0\0".to_vec();
        r.extend_from_slice(&[1, 0, 0]);
        let e: Vec<_> = items(&r).unwrap().collect();
        assert_eq!(e, vec![Err(EvidenceError::Truncated { offset: 8 })]);
        // An encoder given too little room refuses.
        assert_eq!(
            encode(&[(1, b"x")], &mut [0u8; 8]),
            Err(EvidenceError::BufferTooSmall)
        );
    }
}
