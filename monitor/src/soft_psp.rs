//! A software security processor's guest-request endpoint: opens a sealed
//! MSG_REPORT_REQ with the VMPCK the header names, checks its sequence number, and
//! answers with a sealed MSG_REPORT_RSP holding a signed version-5 report. no_std, so
//! that the sim and the emulated kernel share it.
use crate::guest_request::{open, seal};
use crate::report_sign::{sign_report, ReportFields};
use p384::ecdsa::SigningKey;
use svsm_abi::guest_request::{
    ReportReq, ReportRsp, HEADER_SIZE, MSG_REPORT_REQ, MSG_REPORT_RSP, REPORT_SIZE,
    REPORT_STATUS_INVALID_PARAMS, REPORT_STATUS_SUCCESS,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Why the software PSP dropped a request (no response is produced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PspError {
    /// The VMPCK index is out of range.
    BadVmpck,
    /// The message failed to open.
    Open,
    /// The sequence number is not the expected one.
    Sequence,
    /// Not a MSG_REPORT_REQ of the right size.
    Unsupported,
}

/// The software PSP.
pub struct SoftPsp {
    vmpck: [[u8; 32]; 4],
    next_seqno: [u64; 4],
    key: SigningKey,
    /// Launch measurement reported.
    pub measurement: [u8; 48],
    /// Guest policy reported.
    pub policy: u64,
    /// TCB_VERSION put into every TCB field.
    pub tcb: u64,
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// Reports signed so far.
    pub reports_signed: u64,
}

/// The TCB the test VCEK certifies (attestation/testdata/test-root/README.md):
/// BL 4, TEE 1, SNP 22, microcode 0xD1.
pub const TEST_TCB: u64 = 0xD116_0000_0000_0104;

/// The CHIP_ID the test VCEK certifies: SHA-512("vigil-test-chip-id").
pub fn test_chip_id() -> [u8; 64] {
    use sha2::Digest;
    sha2::Sha512::digest(b"vigil-test-chip-id").into()
}

impl SoftPsp {
    /// A PSP with these VMPCKs and signing key.
    pub fn new(vmpck: [[u8; 32]; 4], key: SigningKey) -> Self {
        Self {
            vmpck,
            next_seqno: [1; 4],
            key,
            measurement: [0; 48],
            policy: 0x3_0000,
            tcb: TEST_TCB,
            chip_id: test_chip_id(),
            reports_signed: 0,
        }
    }

    /// The signing key's public half.
    pub fn verifying_key(&self) -> p384::ecdsa::VerifyingKey {
        *self.key.verifying_key()
    }

    /// Handles one request page.
    pub fn handle(&mut self, page: &[u8; 4096]) -> Result<[u8; 4096], PspError> {
        let idx = page[0x3c] as usize;
        let key = *self.vmpck.get(idx).ok_or(PspError::BadVmpck)?;
        let (hdr, plain) = open(&key, page).map_err(|_| PspError::Open)?;
        if hdr.msg_seqno != self.next_seqno[idx] {
            return Err(PspError::Sequence);
        }
        if hdr.msg_type != MSG_REPORT_REQ
            || hdr.msg_size as usize != core::mem::size_of::<ReportReq>()
        {
            return Err(PspError::Unsupported);
        }
        let (req, _) = ReportReq::read_from_prefix(&plain[HEADER_SIZE..])
            .map_err(|_| PspError::Unsupported)?;
        let mut rsp = ReportRsp::new_zeroed();
        // A VMPL may ask for reports at its own level or a less privileged one only.
        if req.vmpl < idx as u32 || req.vmpl > 3 {
            rsp.status = REPORT_STATUS_INVALID_PARAMS;
        } else {
            rsp.status = REPORT_STATUS_SUCCESS;
            rsp.report_size = REPORT_SIZE as u32;
            let f = ReportFields {
                policy: self.policy,
                vmpl: req.vmpl,
                report_data: req.report_data,
                measurement: self.measurement,
                host_data: [0; 32],
                report_id: [0x11; 32],
                chip_id: self.chip_id,
                tcb: self.tcb,
            };
            rsp.report = sign_report(&self.key, &f);
            self.reports_signed += 1;
        }
        self.next_seqno[idx] = hdr.msg_seqno + 2;
        seal(
            &key,
            hdr.msg_seqno + 1,
            MSG_REPORT_RSP,
            1,
            idx as u8,
            rsp.as_bytes(),
        )
        .map_err(|_| PspError::Unsupported)
    }
}
