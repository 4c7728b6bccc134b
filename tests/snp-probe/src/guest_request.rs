//! The SNP guest request for an attestation report, as the guest builds and opens it
//! (SNP firmware ABI #56860, SNP_GUEST_REQUEST and "Message header"): a 0x60-byte header
//! (AUTHTAG, MSG_SEQNO, ALGO = AES-256-GCM, HDR_VERSION 1, HDR_SIZE, MSG_TYPE,
//! MSG_VERSION, MSG_SIZE, MSG_VMPCK) and the payload encrypted with the VMPCK, the IV
//! being MSG_SEQNO little-endian followed by four zero bytes and the AAD the header bytes
//! 0x30..0x60. The response carries MSG_SEQNO = request + 1. Layouts: `svsm_abi::
//! guest_request`.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use svsm_abi::guest_request::{
    MsgHeader, ReportReq, ReportRsp, AAD_OFFSET, ALGO_AES_256_GCM, HDR_VERSION, HEADER_SIZE,
    MSG_REPORT_REQ, MSG_REPORT_RSP, MSG_REPORT_VERSION, REPORT_SIZE,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Why a response is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The header is not a version-1 AES-256-GCM MSG_REPORT_RSP of the right size.
    Header,
    /// MSG_SEQNO is not the expected one.
    Seqno {
        /// What the response says.
        got: u64,
    },
    /// MSG_VMPCK is not 0.
    Vmpck,
    /// The tag does not verify (or encryption failed).
    Auth,
}

fn nonce(seqno: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seqno.to_le_bytes());
    n
}

/// Seal MSG_REPORT_REQ (report data, VMPL) with VMPCK0 and `seqno` into `page`.
pub fn seal_report_request(
    vmpck0: &[u8; 32],
    seqno: u64,
    report_data: &[u8; 64],
    vmpl: u32,
    page: &mut [u8; 4096],
) -> Result<(), Error> {
    page.fill(0);
    let mut req = ReportReq::new_zeroed();
    req.report_data = *report_data;
    req.vmpl = vmpl;
    let len = core::mem::size_of::<ReportReq>();
    let mut h = MsgHeader::new_zeroed();
    h.msg_seqno = seqno;
    h.algo = ALGO_AES_256_GCM;
    h.hdr_version = HDR_VERSION;
    h.hdr_size = HEADER_SIZE as u16;
    h.msg_type = MSG_REPORT_REQ;
    h.msg_version = MSG_REPORT_VERSION;
    h.msg_size = len as u16;
    h.msg_vmpck = 0;
    page[..HEADER_SIZE].copy_from_slice(h.as_bytes());
    let (head, body) = page.split_at_mut(HEADER_SIZE);
    let payload = &mut body[..len];
    payload.copy_from_slice(req.as_bytes());
    let cipher = Aes256Gcm::new(vmpck0.into());
    let tag = cipher
        .encrypt_in_place_detached(&Nonce::from(nonce(seqno)), &head[AAD_OFFSET..], payload)
        .map_err(|_| Error::Auth)?;
    page[..16].copy_from_slice(&tag);
    Ok(())
}

/// Open MSG_REPORT_RSP from a private copy of the response page: returns the status and
/// fills `report`.
pub fn open_report_response(
    vmpck0: &[u8; 32],
    seqno: u64,
    page: &[u8; 4096],
    report: &mut [u8; REPORT_SIZE],
) -> Result<u32, Error> {
    let h = MsgHeader::read_from_bytes(&page[..HEADER_SIZE]).map_err(|_| Error::Header)?;
    let len = core::mem::size_of::<ReportRsp>();
    if h.algo != ALGO_AES_256_GCM
        || h.hdr_version != HDR_VERSION
        || usize::from(h.hdr_size) != HEADER_SIZE
        || h.msg_type != MSG_REPORT_RSP
        || usize::from(h.msg_size) != len
    {
        return Err(Error::Header);
    }
    if h.msg_seqno != seqno {
        return Err(Error::Seqno { got: h.msg_seqno });
    }
    if h.msg_vmpck != 0 {
        return Err(Error::Vmpck);
    }
    let mut rsp = ReportRsp::new_zeroed();
    let buf = rsp.as_mut_bytes();
    buf.copy_from_slice(&page[HEADER_SIZE..HEADER_SIZE + len]);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&h.authtag[..16]);
    let cipher = Aes256Gcm::new(vmpck0.into());
    cipher
        .decrypt_in_place_detached(
            &Nonce::from(nonce(seqno)),
            &page[AAD_OFFSET..HEADER_SIZE],
            buf,
            &Tag::from(tag),
        )
        .map_err(|_| Error::Auth)?;
    *report = rsp.report;
    Ok(rsp.status)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use snp_model::guest_msg;

    const KEY: [u8; 32] = [0x42; 32];

    /// The model's security-processor rules read the probe's request as meant.
    #[test]
    fn the_models_psp_opens_the_request() {
        let mut page = [0u8; 4096];
        seal_report_request(&KEY, 1, &[7; 64], 0, &mut page).unwrap();
        let (h, payload) = guest_msg::open(&KEY, &page).unwrap();
        assert_eq!(h.seqno, 1);
        assert_eq!(h.msg_type, guest_msg::msg_type::REPORT_REQ);
        assert_eq!(h.vmpck, 0);
        assert_eq!(&payload[..64], &[7; 64]);
        assert_eq!(&payload[64..68], &0u32.to_le_bytes());
        // Another key does not open it.
        assert!(guest_msg::open(&[0x43; 32], &page).is_err());
    }

    fn model_response(seqno: u64, status: u32) -> [u8; 4096] {
        let mut body = std::vec![0u8; 0x20 + REPORT_SIZE];
        body[..4].copy_from_slice(&status.to_le_bytes());
        body[4..8].copy_from_slice(&(REPORT_SIZE as u32).to_le_bytes());
        body[0x20] = 5; // report version
        body[0x20 + REPORT_SIZE - 1] = 0xee;
        let h = guest_msg::Header {
            seqno,
            msg_type: guest_msg::msg_type::REPORT_RSP,
            msg_version: 1,
            vmpck: 0,
        };
        guest_msg::seal(&KEY, h, &body).unwrap()
    }

    /// A response sealed by the model's rules opens; a wrong sequence number, key or
    /// a flipped byte does not.
    #[test]
    fn the_probe_opens_the_models_response() {
        let page = model_response(2, 0);
        let mut report = [0u8; REPORT_SIZE];
        assert_eq!(open_report_response(&KEY, 2, &page, &mut report), Ok(0));
        assert_eq!((report[0], report[REPORT_SIZE - 1]), (5, 0xee));
        assert_eq!(
            open_report_response(&KEY, 3, &page, &mut report),
            Err(Error::Seqno { got: 2 })
        );
        assert_eq!(
            open_report_response(&[1; 32], 2, &page, &mut report),
            Err(Error::Auth)
        );
        let mut bad = page;
        bad[0x70] ^= 1;
        assert_eq!(
            open_report_response(&KEY, 2, &bad, &mut report),
            Err(Error::Auth)
        );
    }
}
