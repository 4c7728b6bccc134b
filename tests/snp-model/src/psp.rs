//! The model's security processor: VMPCK0..3, a message counter per VMPCK, and report
//! requests (SNP firmware ABI #56860 §8.26 SNP_GUEST_REQUEST and §7.3 "MSG_REPORT_REQ").
//!
//! Rules:
//! - a request opens only under the VMPCK it names (AES-256-GCM, header as AAD);
//! - its MSG_SEQNO must be the VMPCK's counter + 1; the response carries counter + 2 and
//!   the counter advances by 2 (a replayed or skipped request is refused, and nothing is
//!   counted for a refused request);
//! - a counter that would wrap is AEAD_OFLOW;
//! - MSG_REPORT_REQ (version 1, 0x60 bytes): REPORT_DATA (64), VMPL (u32) at 0x40, key
//!   selection at 0x44; the VMPL must be 0..3 and not more privileged than the VMPCK
//!   used (VMPCK n reports for VMPL >= n), else the response's STATUS is INVALID_PARAM;
//! - MSG_REPORT_RSP: STATUS (u32), REPORT_SIZE (u32), 24 reserved bytes, the report.
//!
//! Refused requests (bad header, authentication, sequence, unsupported type) are command
//! errors: no response, the firmware status goes to the host.

use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha384, Sha512};

use crate::ghcb_exits::SecurityProcessor;
use crate::guest_msg::{self, msg_type, Header, MsgError};
use crate::report::{self, Guest, Platform, REPORT_LEN};

/// Firmware status codes (SNP ABI table "Status codes"; Linux `SEV_RET_*`).
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0x00;
    /// Invalid parameter.
    pub const INVALID_PARAM: u32 = 0x16;
    /// The message counter would wrap.
    pub const AEAD_OFLOW: u32 = 0x1d;
}

/// TCB_VERSION the test VCEK certifies (bytes 04 01 00 00 00 00 16 D1: boot loader 4,
/// TEE 1, SNP 22, microcode 0xD1; attestation/testdata/test-root/README.md).
pub const TEST_TCB: u64 = 0xD116_0000_0000_0104;

/// CHIP_ID the test VCEK certifies: SHA-512("vigil-test-chip-id").
pub fn test_chip_id() -> [u8; 64] {
    Sha512::digest(b"vigil-test-chip-id").into()
}

/// The key could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKey;

/// The security processor of one guest.
pub struct Psp {
    vmpck: [[u8; 32]; 4],
    counter: [u64; 4],
    key: SigningKey,
    platform: Platform,
    guest: Guest,
}

impl Psp {
    /// A PSP for a launched guest: its VMPCKs, the VCEK key (PKCS#8 DER), the launch
    /// digest and policy.
    pub fn new(
        vmpck: [[u8; 32]; 4],
        vcek_pkcs8: &[u8],
        measurement: [u8; 48],
        policy: u64,
    ) -> Result<Psp, BadKey> {
        let sk = p384::SecretKey::from_pkcs8_der(vcek_pkcs8).map_err(|_| BadKey)?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&Sha384::digest(measurement)[..32]);
        Ok(Psp {
            vmpck,
            counter: [0; 4],
            key: SigningKey::from(sk),
            platform: Platform {
                tcb: TEST_TCB,
                chip_id: test_chip_id(),
                fw: (1, 55, 0),
                fms: (0x19, 0x01, 0x01),
            },
            guest: Guest {
                measurement,
                policy,
                report_id: id,
            },
        })
    }

    /// The message counter of VMPCK `n` (the last sequence number used).
    pub fn counter(&self, n: usize) -> Option<u64> {
        self.counter.get(n).copied()
    }

    fn report(&self, vmpck: u8, body: &[u8]) -> [u8; 0x20 + REPORT_LEN] {
        let mut rsp = [0u8; 0x20 + REPORT_LEN];
        let mut vmpl_b = [0u8; 4];
        let ok = body.len() == 0x60;
        if ok {
            vmpl_b.copy_from_slice(&body[0x40..0x44]);
        }
        let vmpl = u32::from_le_bytes(vmpl_b);
        // A VMPL above 3, or one more privileged than the VMPCK's: VMPCK n is given only
        // to VMPL n and above, so it must not vouch for a more privileged level.
        if !ok || vmpl > 3 || vmpl < u32::from(vmpck) {
            rsp[0..4].copy_from_slice(&status::INVALID_PARAM.to_le_bytes());
            return rsp;
        }
        let mut data = [0u8; 64];
        data.copy_from_slice(&body[..64]);
        let r = report::build(&self.key, &self.platform, &self.guest, vmpl, &data);
        rsp[4..8].copy_from_slice(&(REPORT_LEN as u32).to_le_bytes());
        rsp[0x20..].copy_from_slice(&r);
        rsp
    }
}

impl SecurityProcessor for Psp {
    fn guest_request(&mut self, req: &[u8; 4096]) -> Result<[u8; 4096], u32> {
        let (h, _) = guest_msg::header(req).map_err(|_| status::INVALID_PARAM)?;
        let n = usize::from(h.vmpck);
        let key = self.vmpck[n];
        let (h, body) = guest_msg::open(&key, req).map_err(|e| match e {
            MsgError::Auth | MsgError::Header | MsgError::Vmpck | MsgError::Size => {
                status::INVALID_PARAM
            }
        })?;
        let expected = self.counter[n].checked_add(1).ok_or(status::AEAD_OFLOW)?;
        let next = self.counter[n].checked_add(2).ok_or(status::AEAD_OFLOW)?;
        if h.seqno != expected {
            return Err(status::INVALID_PARAM);
        }
        if h.msg_type != msg_type::REPORT_REQ || h.msg_version != 1 {
            return Err(status::INVALID_PARAM);
        }
        let payload = self.report(h.vmpck, &body);
        let rh = Header {
            seqno: next,
            msg_type: msg_type::REPORT_RSP,
            msg_version: 1,
            vmpck: h.vmpck,
        };
        let out = guest_msg::seal(&key, rh, &payload).map_err(|_| status::INVALID_PARAM)?;
        self.counter[n] = next;
        Ok(out)
    }
}
