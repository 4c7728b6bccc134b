//! Guest messages between a guest and the security processor (SNP firmware ABI #56860
//! §8.26 "SNP_GUEST_REQUEST", table "Message header"), sealed with AES-256-GCM under a
//! VMPCK.
//!
//! | offset | field |
//! |---|---|
//! | 0x00 | AUTHTAG (32 bytes; AES-GCM uses the first 16) |
//! | 0x20 | MSG_SEQNO (u64) |
//! | 0x28 | reserved (8) |
//! | 0x30 | ALGO (u8): 1 = AES-256-GCM |
//! | 0x31 | HDR_VERSION (u8): 1 |
//! | 0x32 | HDR_SIZE (u16): 0x60 |
//! | 0x34 | MSG_TYPE (u8) |
//! | 0x35 | MSG_VERSION (u8) |
//! | 0x36 | MSG_SIZE (u16): payload bytes |
//! | 0x38 | reserved (4) |
//! | 0x3C | MSG_VMPCK (u8): which VMPCK sealed it |
//! | 0x3D | reserved (35) |
//! | 0x60 | payload (ciphertext) |
//!
//! The additional authenticated data is bytes 0x30..0x60 of the header; the 96-bit IV is
//! MSG_SEQNO little-endian followed by four zero bytes.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

/// Header size.
pub const HDR_SIZE: usize = 0x60;
/// Largest payload in one page.
pub const MAX_PAYLOAD: usize = 4096 - HDR_SIZE;
/// ALGO value of AES-256-GCM.
pub const ALGO_AES_256_GCM: u8 = 1;
/// Header version.
pub const HDR_VERSION: u8 = 1;

/// Message types (SNP ABI table "Message type encodings").
pub mod msg_type {
    /// Key request.
    pub const KEY_REQ: u8 = 3;
    /// Key response.
    pub const KEY_RSP: u8 = 4;
    /// Report request.
    pub const REPORT_REQ: u8 = 5;
    /// Report response.
    pub const REPORT_RSP: u8 = 6;
}

/// The plaintext header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// MSG_SEQNO.
    pub seqno: u64,
    /// MSG_TYPE.
    pub msg_type: u8,
    /// MSG_VERSION.
    pub msg_version: u8,
    /// MSG_VMPCK.
    pub vmpck: u8,
}

/// Why a message does not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// ALGO, HDR_VERSION or HDR_SIZE is not the one supported.
    Header,
    /// MSG_VMPCK above 3.
    Vmpck,
    /// MSG_SIZE larger than a page allows.
    Size,
    /// The tag does not verify under this key, sequence number and header.
    Auth,
}

/// Seal `payload` into a message page.
pub fn seal(key: &[u8; 32], h: Header, payload: &[u8]) -> Result<[u8; 4096], MsgError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(MsgError::Size);
    }
    let mut p = [0u8; 4096];
    p[0x20..0x28].copy_from_slice(&h.seqno.to_le_bytes());
    p[0x30] = ALGO_AES_256_GCM;
    p[0x31] = HDR_VERSION;
    p[0x32..0x34].copy_from_slice(&(HDR_SIZE as u16).to_le_bytes());
    p[0x34] = h.msg_type;
    p[0x35] = h.msg_version;
    p[0x36..0x38].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    p[0x3c] = h.vmpck;
    let (head, body) = p.split_at_mut(HDR_SIZE);
    let buf = &mut body[..payload.len()];
    buf.copy_from_slice(payload);
    let tag = Aes256Gcm::new(key.into())
        .encrypt_in_place_detached(&nonce(h.seqno), &head[0x30..0x60], buf)
        .map_err(|_| MsgError::Size)?;
    head[..16].copy_from_slice(&tag);
    Ok(p)
}

fn nonce(seqno: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv.into()
}

/// The header of a message page, checked for the fields the firmware supports.
pub fn header(p: &[u8; 4096]) -> Result<(Header, usize), MsgError> {
    if p[0x30] != ALGO_AES_256_GCM
        || p[0x31] != HDR_VERSION
        || u16::from_le_bytes([p[0x32], p[0x33]]) as usize != HDR_SIZE
    {
        return Err(MsgError::Header);
    }
    if p[0x3c] > 3 {
        return Err(MsgError::Vmpck);
    }
    let size = usize::from(u16::from_le_bytes([p[0x36], p[0x37]]));
    if size > MAX_PAYLOAD {
        return Err(MsgError::Size);
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&p[0x20..0x28]);
    let h = Header {
        seqno: u64::from_le_bytes(s),
        msg_type: p[0x34],
        msg_version: p[0x35],
        vmpck: p[0x3c],
    };
    Ok((h, size))
}

/// Open a message page with `key`: the header and the plaintext payload.
pub fn open(key: &[u8; 32], p: &[u8; 4096]) -> Result<(Header, alloc::vec::Vec<u8>), MsgError> {
    let (h, size) = header(p)?;
    let mut buf = p[HDR_SIZE..HDR_SIZE + size].to_vec();
    let mut t = [0u8; 16];
    t.copy_from_slice(&p[..16]);
    let tag = Tag::from(t);
    Aes256Gcm::new(key.into())
        .decrypt_in_place_detached(&nonce(h.seqno), &p[0x30..0x60], &mut buf, &tag)
        .map_err(|_| MsgError::Auth)?;
    Ok((h, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Header = Header {
        seqno: 1,
        msg_type: msg_type::REPORT_REQ,
        msg_version: 1,
        vmpck: 2,
    };

    #[test]
    fn seal_then_open_round_trips_and_lays_out_the_header() {
        let p = seal(&[9; 32], H, b"hello").unwrap();
        assert_eq!(&p[0x30..0x38], &[1, 1, 0x60, 0, 5, 1, 5, 0]);
        assert_eq!(p[0x3c], 2);
        assert_ne!(&p[0x60..0x65], b"hello", "payload is encrypted");
        let (h, body) = open(&[9; 32], &p).unwrap();
        assert_eq!((h, body.as_slice()), (H, &b"hello"[..]));
    }

    #[test]
    fn any_change_to_key_header_seqno_or_body_fails_auth() {
        let p = seal(&[9; 32], H, b"hello").unwrap();
        assert_eq!(open(&[8; 32], &p), Err(MsgError::Auth));
        for o in [0x00, 0x20, 0x34, 0x35, 0x3c, 0x60] {
            let mut q = p;
            q[o] ^= 1;
            assert_eq!(open(&[9; 32], &q), Err(MsgError::Auth), "byte {o:#x}");
        }
    }

    #[test]
    fn bad_header_fields_are_named() {
        let p = seal(&[9; 32], H, b"x").unwrap();
        for (o, v, e) in [
            (0x30, 2, MsgError::Header),
            (0x31, 2, MsgError::Header),
            (0x32, 0x50, MsgError::Header),
            (0x3c, 4, MsgError::Vmpck),
            (0x37, 0x10, MsgError::Size),
        ] {
            let mut q = p;
            q[o] = v;
            assert_eq!(open(&[9; 32], &q), Err(e), "byte {o:#x}");
        }
        assert_eq!(
            seal(&[0; 32], H, &[0; MAX_PAYLOAD + 1]),
            Err(MsgError::Size)
        );
    }
}
