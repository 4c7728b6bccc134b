//! SNP guest-request messages: the message header and MSG_REPORT_REQ (SNP firmware ABI #56860).
//!
//! A guest request is one 4 KiB page: a 0x60-byte header followed by the payload,
//! encrypted with AES-256-GCM under a VMPCK. The IV is the 64-bit message sequence
//! number, little-endian, zero-extended to 12 bytes; the additional authenticated data
//! is header bytes 0x30..0x60; the 16-byte tag is stored in the first bytes of
//! `authtag`. The guest sends sequence number n (starting at 1), the security processor
//! answers with n + 1, and the next request uses n + 2.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the header.
pub const HEADER_SIZE: usize = 0x60;
/// Offset of the authenticated part of the header.
pub const AAD_OFFSET: usize = 0x30;
/// Largest payload in one page.
pub const MAX_PAYLOAD: usize = 4096 - HEADER_SIZE;
/// AEAD algorithm: AES-256-GCM.
pub const ALGO_AES_256_GCM: u8 = 1;
/// Header version.
pub const HDR_VERSION: u8 = 1;
/// MSG_REPORT_REQ.
pub const MSG_REPORT_REQ: u8 = 5;
/// MSG_REPORT_RSP.
pub const MSG_REPORT_RSP: u8 = 6;
/// Message version of MSG_REPORT_REQ Vigil sends.
pub const MSG_REPORT_VERSION: u8 = 1;

/// The message header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MsgHeader {
    /// 0x00: authentication tag (16 bytes used, the rest zero).
    pub authtag: [u8; 32],
    /// 0x20: message sequence number.
    pub msg_seqno: u64,
    /// 0x28: reserved.
    pub reserved_0x28: [u8; 8],
    /// 0x30: AEAD algorithm.
    pub algo: u8,
    /// 0x31: header version.
    pub hdr_version: u8,
    /// 0x32: header size (0x60).
    pub hdr_size: u16,
    /// 0x34: message type.
    pub msg_type: u8,
    /// 0x35: message version.
    pub msg_version: u8,
    /// 0x36: payload size.
    pub msg_size: u16,
    /// 0x38: reserved.
    pub reserved_0x38: u32,
    /// 0x3C: VMPCK index used.
    pub msg_vmpck: u8,
    /// 0x3D: reserved.
    pub reserved_0x3d: [u8; 3],
    /// 0x40: reserved.
    pub reserved_0x40: [u8; 0x20],
}
const _: () = assert!(core::mem::size_of::<MsgHeader>() == HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(MsgHeader, msg_seqno) == 0x20);
const _: () = assert!(core::mem::offset_of!(MsgHeader, algo) == 0x30);
const _: () = assert!(core::mem::offset_of!(MsgHeader, hdr_size) == 0x32);
const _: () = assert!(core::mem::offset_of!(MsgHeader, msg_type) == 0x34);
const _: () = assert!(core::mem::offset_of!(MsgHeader, msg_size) == 0x36);
const _: () = assert!(core::mem::offset_of!(MsgHeader, msg_vmpck) == 0x3c);

/// MSG_REPORT_REQ payload.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ReportReq {
    /// 0x00: data bound into the report.
    pub report_data: [u8; 64],
    /// 0x40: VMPL to put into the report (must be >= the requester's VMPL).
    pub vmpl: u32,
    /// 0x44: key selection (0 = VLEK if installed else VCEK, 1 = VCEK, 2 = VLEK).
    pub key_sel: u32,
    /// 0x48: reserved.
    pub reserved: [u8; 24],
}
const _: () = assert!(core::mem::size_of::<ReportReq>() == 0x60);
const _: () = assert!(core::mem::offset_of!(ReportReq, vmpl) == 0x40);

/// Size of a report (versions 2 to 5).
pub const REPORT_SIZE: usize = 0x4a0;

/// MSG_REPORT_RSP payload.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ReportRsp {
    /// 0x00: status (0 = success, 0x16 = invalid parameters, 0x27 = invalid key selection).
    pub status: u32,
    /// 0x04: report size.
    pub report_size: u32,
    /// 0x08: reserved.
    pub reserved: [u8; 24],
    /// 0x20: the report.
    pub report: [u8; REPORT_SIZE],
}
const _: () = assert!(core::mem::size_of::<ReportRsp>() == 0x20 + REPORT_SIZE);
const _: () = assert!(core::mem::offset_of!(ReportRsp, report) == 0x20);

/// MSG_REPORT_RSP status: success.
pub const REPORT_STATUS_SUCCESS: u32 = 0;
/// MSG_REPORT_RSP status: invalid parameters.
pub const REPORT_STATUS_INVALID_PARAMS: u32 = 0x16;
