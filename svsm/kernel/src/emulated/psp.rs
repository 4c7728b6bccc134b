//! The emulated security processor: answers the monitor's guest requests with reports
//! signed by the TEST VCEK (attestation/testdata/test-root), which no verifier accepts
//! unless told `--allow-test-root`.
//!
//! It is the simulator's code path: the message is opened and sealed with
//! `monitor::guest_request::{open, seal}` and the report is built and signed by
//! `monitor::report_sign::sign_report`, exactly as `monitor::soft_psp::SoftPsp` does.
//! It is an adapter rather than `SoftPsp` itself because `SoftPsp` hard-codes a TCB
//! and CHIP_ID that differ from what the test VCEK certificate certifies (README of
//! test-root); the wish for `SoftPsp` to take those as configuration is in the report.
//!
//! MEASUREMENT is the launch digest the kernel computed from what it loaded (see
//! `emulated::mod`), POLICY is 0x30000 (SMT allowed, the reserved bit 16 set).

use monitor::guest_request::{open, seal};
use monitor::report_sign::{sign_report, ReportFields};
use p384::ecdsa::SigningKey;
use svsm_abi::guest_request::{
    ReportReq, ReportRsp, HEADER_SIZE, MSG_REPORT_REQ, MSG_REPORT_RSP, REPORT_SIZE,
    REPORT_STATUS_INVALID_PARAMS, REPORT_STATUS_SUCCESS,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// The TEST VCEK's private key (PKCS#8 DER), public on purpose.
pub const TEST_VCEK_KEY: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/vcek-key.pk8.der");
/// The TEST ARK certificate.
pub const TEST_ARK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/ark.pem");
/// The TEST ASK certificate.
pub const TEST_ASK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/ask.pem");
/// The TEST VCEK certificate.
pub const TEST_VCEK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/vcek.pem");

/// The TCB the test VCEK certifies (test-root README): BL 4, TEE 1, SNP 22, uCode 0xD1.
pub const TEST_TCB: u64 = 0xd116_0000_0000_0104;
/// The guest policy reported.
pub const POLICY: u64 = 0x3_0000;

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PspError {
    /// VMPCK index out of range.
    BadVmpck,
    /// The message did not open.
    Open,
    /// Wrong sequence number.
    Sequence,
    /// Not a report request.
    Unsupported,
    /// The signing key did not load.
    Key,
}

/// The emulated PSP.
pub struct EmuPsp {
    vmpck: [[u8; 32]; 4],
    next_seqno: [u64; 4],
    key: SigningKey,
    measurement: [u8; 48],
    chip_id: [u8; 64],
    /// Reports signed.
    pub reports_signed: u64,
}

impl EmuPsp {
    /// A PSP with these VMPCKs, reporting `measurement`.
    pub fn new(vmpck: [[u8; 32]; 4], measurement: [u8; 48]) -> Result<Self, PspError> {
        use p384::pkcs8::DecodePrivateKey;
        let key = SigningKey::from_pkcs8_der(TEST_VCEK_KEY).map_err(|_| PspError::Key)?;
        // CHIP_ID = SHA-512("vigil-test-chip-id"), what the test VCEK's hwID carries;
        // `report_data(x, [])` is SHA-512(x).
        let chip_id = svsm_abi::attest_protocol::report_data(b"vigil-test-chip-id", &[]);
        Ok(Self {
            vmpck,
            next_seqno: [1; 4],
            key,
            measurement,
            chip_id,
            reports_signed: 0,
        })
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
        if req.vmpl < idx as u32 || req.vmpl > 3 {
            rsp.status = REPORT_STATUS_INVALID_PARAMS;
        } else {
            rsp.status = REPORT_STATUS_SUCCESS;
            rsp.report_size = REPORT_SIZE as u32;
            let mut report_id = [0u8; 32];
            report_id[..8].copy_from_slice(&(self.reports_signed + 1).to_le_bytes());
            let f = ReportFields {
                policy: POLICY,
                vmpl: req.vmpl,
                report_data: req.report_data,
                measurement: self.measurement,
                host_data: [0; 32],
                report_id,
                chip_id: self.chip_id,
                tcb: TEST_TCB,
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
