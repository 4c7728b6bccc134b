//! The SNP guest-request channel: messages sealed with AES-256-GCM under a VMPCK
//! (SNP firmware ABI #56860, layout in `svsm_abi::guest_request`).
//!
//! The monitor owns VMPCK0 (invariant 7: it never leaves VMPL0) and the sequence
//! number. Attack reasoning: the host relays every message and may replay, reorder,
//! drop or forge them. A forged or altered response fails the GCM tag; a replayed one
//! carries an old sequence number and is refused. Because an AES-GCM key must never
//! seal two messages with the same IV, any failure after a request was sent (the host
//! may have seen it) wipes VMPCK0 for good: the channel is dead and the monitor asks
//! for termination, as Linux does for its VMPCKs.
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use svsm_abi::guest_request::{
    MsgHeader, AAD_OFFSET, ALGO_AES_256_GCM, HDR_VERSION, HEADER_SIZE, MAX_PAYLOAD,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};
use zeroize::Zeroize;

/// A guest-request failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestRequestError {
    /// VMPCK0 was wiped after an earlier failure.
    KeyWiped,
    /// The payload does not fit in a page.
    PayloadTooLarge,
    /// The response header is malformed (field named).
    BadHeader(&'static str),
    /// The response's sequence number is not request + 1.
    BadSequence,
    /// The response failed authentication.
    AuthFailed,
    /// Sequence numbers are exhausted.
    SequenceExhausted,
}

/// Seals `payload` into a message page with `key`.
pub fn seal(
    key: &[u8; 32],
    seqno: u64,
    msg_type: u8,
    msg_version: u8,
    vmpck: u8,
    payload: &[u8],
) -> Result<[u8; 4096], GuestRequestError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(GuestRequestError::PayloadTooLarge);
    }
    let mut hdr = MsgHeader::new_zeroed();
    hdr.msg_seqno = seqno;
    hdr.algo = ALGO_AES_256_GCM;
    hdr.hdr_version = HDR_VERSION;
    hdr.hdr_size = HEADER_SIZE as u16;
    hdr.msg_type = msg_type;
    hdr.msg_version = msg_version;
    hdr.msg_size = payload.len() as u16;
    hdr.msg_vmpck = vmpck;
    let mut page = [0u8; 4096];
    page[HEADER_SIZE..HEADER_SIZE + payload.len()].copy_from_slice(payload);
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let iv = iv_for(seqno);
    let hb = hdr.as_bytes();
    let tag = cipher
        .encrypt_in_place_detached(
            &Nonce::from(iv),
            &hb[AAD_OFFSET..HEADER_SIZE],
            &mut page[HEADER_SIZE..HEADER_SIZE + payload.len()],
        )
        .map_err(|_| GuestRequestError::PayloadTooLarge)?;
    let tag: [u8; 16] = tag.into();
    hdr.authtag[..16].copy_from_slice(&tag);
    page[..HEADER_SIZE].copy_from_slice(hdr.as_bytes());
    Ok(page)
}

/// Opens a message page with `key`: checks the header's fixed fields, the payload size
/// and the tag, and returns the header and the decrypted page (payload at 0x60).
pub fn open(
    key: &[u8; 32],
    page: &[u8; 4096],
) -> Result<(MsgHeader, [u8; 4096]), GuestRequestError> {
    let (hdr, _) =
        MsgHeader::read_from_prefix(page).map_err(|_| GuestRequestError::BadHeader("header"))?;
    if hdr.algo != ALGO_AES_256_GCM {
        return Err(GuestRequestError::BadHeader("algo (offset 0x30)"));
    }
    if hdr.hdr_version != HDR_VERSION {
        return Err(GuestRequestError::BadHeader("hdr_version (offset 0x31)"));
    }
    if hdr.hdr_size as usize != HEADER_SIZE {
        return Err(GuestRequestError::BadHeader("hdr_size (offset 0x32)"));
    }
    let n = hdr.msg_size as usize;
    if n > MAX_PAYLOAD {
        return Err(GuestRequestError::BadHeader("msg_size (offset 0x36)"));
    }
    let mut out = *page;
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&hdr.authtag[..16]);
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let iv = iv_for(hdr.msg_seqno);
    cipher
        .decrypt_in_place_detached(
            &Nonce::from(iv),
            &page[AAD_OFFSET..HEADER_SIZE],
            &mut out[HEADER_SIZE..HEADER_SIZE + n],
            &Tag::from(tag),
        )
        .map_err(|_| GuestRequestError::AuthFailed)?;
    Ok((hdr, out))
}

fn iv_for(seqno: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv
}

/// VMPCK0 and the sequence number, owned by the monitor.
pub struct Channel {
    key: [u8; 32],
    seqno: u64,
    wiped: bool,
}

impl core::fmt::Debug for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("seqno", &self.seqno)
            .field("wiped", &self.wiped)
            .finish()
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Channel {
    /// A channel with VMPCK0 (the first request uses sequence number 1).
    pub fn new(vmpck0: [u8; 32]) -> Self {
        Self {
            key: vmpck0,
            seqno: 1,
            wiped: false,
        }
    }

    /// Whether the key was wiped.
    pub fn is_wiped(&self) -> bool {
        self.wiped
    }

    /// Whether the key bytes are all zero (tests check the wipe).
    pub fn key_is_zero(&self) -> bool {
        self.key.iter().all(|b| *b == 0)
    }

    /// Wipes VMPCK0 for good.
    pub fn wipe(&mut self) {
        self.key.zeroize();
        self.wiped = true;
    }

    /// Seals a request with the next sequence number.
    pub fn request(
        &mut self,
        msg_type: u8,
        version: u8,
        payload: &[u8],
    ) -> Result<[u8; 4096], GuestRequestError> {
        if self.wiped {
            return Err(GuestRequestError::KeyWiped);
        }
        if self.seqno > u64::MAX - 2 {
            return Err(GuestRequestError::SequenceExhausted);
        }
        seal(&self.key, self.seqno, msg_type, version, 0, payload)
    }

    /// Opens the response to the last request: it must carry sequence number + 1 and
    /// message type `want_type`. On success the sequence number advances by 2.
    pub fn response(
        &mut self,
        page: &[u8; 4096],
        want_type: u8,
    ) -> Result<(MsgHeader, [u8; 4096]), GuestRequestError> {
        if self.wiped {
            return Err(GuestRequestError::KeyWiped);
        }
        let (hdr, out) = open(&self.key, page)?;
        if hdr.msg_seqno != self.seqno + 1 {
            return Err(GuestRequestError::BadSequence);
        }
        if hdr.msg_type != want_type {
            return Err(GuestRequestError::BadHeader("msg_type (offset 0x34)"));
        }
        if hdr.msg_vmpck != 0 {
            return Err(GuestRequestError::BadHeader("msg_vmpck (offset 0x3c)"));
        }
        self.seqno += 2;
        Ok((hdr, out))
    }
}
