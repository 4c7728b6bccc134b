//! Vigil's event log record format: the hash chain that the attestation manifest binds.
//!
//! Every call the monitor mediates (accepted or refused) is appended as one record:
//! a 24-byte [`RecordHeader`] followed by `payload_len` bytes of a payload whose layout
//! the record's `kind` fixes (the structs below; all integers little-endian). The chain
//! is H_0 = 48 zero bytes, H_i = SHA-384(H_{i-1} || header_i || payload_i); see
//! [`extend`]. The manifest entry under [`crate::attest_protocol::VIGIL_SERVICE_GUID`]
//! carries the number of records and the head at the time of attestation, so a verifier
//! that replays the records recomputes the head and compares.
//!
//! A serialized log (what the monitor hands out and the verifier reads) is simply the
//! records concatenated, in sequence order.
use sha2::{Digest, Sha384};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a chain head.
pub const HEAD_SIZE: usize = 48;
/// The chain's initial value.
pub const H0: [u8; HEAD_SIZE] = [0; HEAD_SIZE];

/// H_i = SHA-384(H_{i-1} || record bytes).
pub fn extend(prev: &[u8; HEAD_SIZE], record: &[u8]) -> [u8; HEAD_SIZE] {
    let mut h = Sha384::new();
    h.update(prev);
    h.update(record);
    h.finalize().into()
}

/// Record header.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RecordHeader {
    /// 0x00: sequence number, 0 for the first record, +1 for each.
    pub sequence: u64,
    /// 0x08: record kind ([`kind`]).
    pub kind: u16,
    /// 0x0A: VMPL of the caller (0 for records of Vigil itself).
    pub vmpl: u8,
    /// 0x0B: reserved, zero.
    pub reserved: u8,
    /// 0x0C: APIC ID of the calling vCPU.
    pub apic_id: u32,
    /// 0x10: payload length in bytes.
    pub payload_len: u32,
    /// 0x14: the call's result code (SVSM RAX value; 0 = success).
    pub result: u32,
}
const _: () = assert!(core::mem::size_of::<RecordHeader>() == 24);
const _: () = assert!(core::mem::offset_of!(RecordHeader, payload_len) == 0x10);

/// Size of the record header.
pub const RECORD_HEADER_SIZE: usize = 24;

/// Record kinds and their payloads.
pub mod kind {
    /// Vigil started: [`super::LaunchPayload`].
    pub const LAUNCH: u16 = 1;
    /// A call that was refused before reaching a handler (unknown protocol or call,
    /// malformed arguments): [`super::CallPayload`].
    pub const CALL: u16 = 2;
    /// REMAP_CA: [`super::RemapCaPayload`].
    pub const REMAP_CA: u16 = 0x10;
    /// PVALIDATE: [`super::PvalidatePayload`].
    pub const PVALIDATE: u16 = 0x11;
    /// CREATE_VCPU: [`super::VcpuPayload`].
    pub const CREATE_VCPU: u16 = 0x12;
    /// DELETE_VCPU: [`super::VcpuPayload`].
    pub const DELETE_VCPU: u16 = 0x13;
    /// DEPOSIT_MEM: [`super::MemListPayload`].
    pub const DEPOSIT_MEM: u16 = 0x14;
    /// WITHDRAW_MEM: [`super::MemListPayload`].
    pub const WITHDRAW_MEM: u16 = 0x15;
    /// QUERY_PROTOCOL: [`super::QueryPayload`].
    pub const QUERY_PROTOCOL: u16 = 0x16;
    /// CONFIGURE_VTOM: [`super::QueryPayload`].
    pub const CONFIGURE_VTOM: u16 = 0x17;
    /// ATTEST_SERVICES / ATTEST_SINGLE_SERVICE: [`super::AttestPayload`].
    pub const ATTEST: u16 = 0x20;
    /// A guest memory access Vigil refused (a nested page fault on a page the guest may
    /// not touch): [`super::AccessRefusedPayload`]. Not an SVSM call: the header's
    /// `result` is the #PF error code the guest was given (bit 31, RMP, always set).
    pub const ACCESS_REFUSED: u16 = 0x30;
    /// Protection protocol DECLARE: [`super::ProtectDeclarePayload`].
    pub const PROTECT_DECLARE: u16 = 0x40;
    /// Protection protocol LOCK (accepted or not): [`super::ProtectLockPayload`].
    pub const PROTECT_LOCK: u16 = 0x41;
    /// A protection request refused because of the protection's state (a DECLARE or
    /// LOCK after the lock, any UNLOCK): [`super::ProtectRefusedPayload`].
    pub const PROTECT_REFUSED: u16 = 0x42;
    /// Protection protocol QUERY: [`super::QueryPayload`] (RCX in, RCX out).
    pub const PROTECT_QUERY: u16 = 0x43;
}

/// The kind of access in [`AccessRefusedPayload::access`] (bits; a fault during the
/// guest's own page-table walk has [`access::TABLE_WALK`] besides the access bit).
pub mod access {
    /// A data read.
    pub const READ: u32 = 1;
    /// A data write.
    pub const WRITE: u32 = 2;
    /// An instruction fetch.
    pub const FETCH: u32 = 4;
    /// The fault hit a page of the guest's page tables while the CPU walked them.
    pub const TABLE_WALK: u32 = 8;
    /// Every defined bit.
    pub const ALL: u32 = READ | WRITE | FETCH | TABLE_WALK;
}

/// Why an access was refused, from Vigil's page state of the 4 KiB page holding the GPA
/// ([`AccessRefusedPayload::reason`]).
pub mod refusal {
    /// The page is Vigil's own memory (invariant 1).
    pub const VIGIL_MEMORY: u32 = 1;
    /// The page is guest RAM the guest has not validated (or has rescinded).
    pub const NOT_VALIDATED: u32 = 2;
    /// The page is a guest vCPU's VMSA (taken from the guest by CREATE_VCPU).
    pub const VMSA: u32 = 3;
    /// The page was given to Vigil by DEPOSIT_MEM.
    pub const DEPOSITED: u32 = 4;
    /// The GPA is beyond the guest RAM Vigil manages.
    pub const OUTSIDE_RAM: u32 = 5;
    /// The page is validated for the guest, but the guest's permissions on it exclude
    /// this access (for example a write to a range the guest made read-only).
    pub const NO_PERMISSION: u32 = 6;
}

/// Payload of [`kind::LAUNCH`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct LaunchPayload {
    /// First GPA of Vigil's memory.
    pub svsm_base: u64,
    /// Size of Vigil's memory in bytes.
    pub svsm_size: u64,
    /// VMPL the guest runs at.
    pub guest_vmpl: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// SEV features required for guest VMSAs.
    pub required_sev_features: u64,
}
const _: () = assert!(core::mem::size_of::<LaunchPayload>() == 32);

/// Payload of [`kind::CALL`]: the raw registers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CallPayload {
    /// RAX on entry.
    pub rax: u64,
    /// RCX on entry.
    pub rcx: u64,
    /// RDX on entry.
    pub rdx: u64,
    /// R8 on entry.
    pub r8: u64,
    /// R9 on entry.
    pub r9: u64,
}
const _: () = assert!(core::mem::size_of::<CallPayload>() == 40);

/// Payload of [`kind::REMAP_CA`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct RemapCaPayload {
    /// Old calling area GPA.
    pub old_caa: u64,
    /// Requested calling area GPA.
    pub new_caa: u64,
}
const _: () = assert!(core::mem::size_of::<RemapCaPayload>() == 16);

/// Payload of [`kind::PVALIDATE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PvalidatePayload {
    /// GPA of the list.
    pub list_gpa: u64,
    /// Number of entries in the list.
    pub entries: u16,
    /// `next` when the call started.
    pub first: u16,
    /// `next` when the call ended (entries first..done were applied).
    pub done: u16,
    /// Reserved, zero.
    pub reserved: u16,
    /// SHA-384 of the applied entries' raw bytes (entries first..done).
    pub entries_digest: [u8; 48],
}
const _: () = assert!(core::mem::size_of::<PvalidatePayload>() == 64);

/// Payload of [`kind::CREATE_VCPU`] and [`kind::DELETE_VCPU`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuPayload {
    /// GPA of the VMSA.
    pub vmsa_gpa: u64,
    /// GPA of the calling area (0 for DELETE_VCPU).
    pub caa_gpa: u64,
    /// APIC ID asked for (0 for DELETE_VCPU).
    pub apic_id: u32,
    /// VMPL in the VMSA.
    pub vmpl: u32,
    /// SEV_FEATURES in the VMSA.
    pub sev_features: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuPayload>() == 32);

/// Payload of [`kind::DEPOSIT_MEM`] and [`kind::WITHDRAW_MEM`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MemListPayload {
    /// GPA of the list.
    pub list_gpa: u64,
    /// Number of 4 KiB pages moved.
    pub pages: u64,
    /// SHA-384 of the list entries moved.
    pub entries_digest: [u8; 48],
}
const _: () = assert!(core::mem::size_of::<MemListPayload>() == 64);

/// Payload of [`kind::QUERY_PROTOCOL`] and [`kind::CONFIGURE_VTOM`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct QueryPayload {
    /// RCX on entry.
    pub rcx_in: u64,
    /// RCX on return.
    pub rcx_out: u64,
}
const _: () = assert!(core::mem::size_of::<QueryPayload>() == 16);

/// Payload of [`kind::ATTEST`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AttestPayload {
    /// 0 = ATTEST_SERVICES, 1 = ATTEST_SINGLE_SERVICE.
    pub call: u32,
    /// Nonce length.
    pub nonce_size: u32,
    /// Service GUID (zero for ATTEST_SERVICES).
    pub service_guid: [u8; 16],
    /// REPORT_DATA asked for (zero when the call failed before).
    pub report_data: [u8; 64],
}
const _: () = assert!(core::mem::size_of::<AttestPayload>() == 88);

/// Payload of [`kind::ACCESS_REFUSED`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct AccessRefusedPayload {
    /// 0x00: the guest-physical address the guest touched.
    pub gpa: u64,
    /// 0x08: APIC ID of the vCPU that touched it.
    pub apic_id: u32,
    /// 0x0C: what the access was ([`access`] bits).
    pub access: u32,
    /// 0x10: why it was refused ([`refusal`]).
    pub reason: u32,
    /// 0x14: reserved, zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<AccessRefusedPayload>() == 24);
const _: () = assert!(core::mem::offset_of!(AccessRefusedPayload, apic_id) == 0x08);
const _: () = assert!(core::mem::offset_of!(AccessRefusedPayload, access) == 0x0C);
const _: () = assert!(core::mem::offset_of!(AccessRefusedPayload, reason) == 0x10);
const _: () = assert!(core::mem::offset_of!(AccessRefusedPayload, reserved) == 0x14);

/// Payload of [`kind::PROTECT_DECLARE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProtectDeclarePayload {
    /// 0x00: GPA of the range list.
    pub list_gpa: u64,
    /// 0x08: entries in the list (as the guest wrote it; 0 if it was not read).
    pub count: u16,
    /// 0x0A: ranges declared in all after the call.
    pub total: u16,
    /// 0x0C: reserved, zero.
    pub reserved: u32,
    /// 0x10: SHA-384 of the list's raw entries (zero if it was not read).
    pub entries_digest: [u8; 48],
}
const _: () = assert!(core::mem::size_of::<ProtectDeclarePayload>() == 64);
const _: () = assert!(core::mem::offset_of!(ProtectDeclarePayload, entries_digest) == 0x10);

/// Payload of [`kind::PROTECT_LOCK`]: the locked ranges, sorted by GPA, and the text's
/// digest. Only a record with result 0 means the protection is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProtectLockPayload {
    /// 0x00: SHA-384 of the contents of every text page, ranges in the order below,
    /// pages in address order, read by Vigil after the guest lost write access (zero
    /// when the lock failed).
    pub text_digest: [u8; 48],
    /// 0x30: ranges used in `ranges`.
    pub range_count: u32,
    /// 0x34: text pages.
    pub text_pages: u32,
    /// 0x38: read-only data pages.
    pub rodata_pages: u32,
    /// 0x3C: reserved, zero.
    pub reserved: u32,
    /// 0x40: the ranges; entries from `range_count` on are zero.
    pub ranges: [crate::protect_protocol::RangeEntry; crate::protect_protocol::MAX_RANGES],
}
const _: () = assert!(core::mem::size_of::<ProtectLockPayload>() == 0x40 + 16 * 16);
const _: () = assert!(core::mem::offset_of!(ProtectLockPayload, range_count) == 0x30);
const _: () = assert!(core::mem::offset_of!(ProtectLockPayload, ranges) == 0x40);

/// Payload of [`kind::PROTECT_REFUSED`]: the call and its arguments.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ProtectRefusedPayload {
    /// 0x00: the call number.
    pub call: u32,
    /// 0x04: 1 if the protection was locked at the time, else 0.
    pub locked: u32,
    /// 0x08: RCX on entry.
    pub rcx: u64,
    /// 0x10: RDX on entry.
    pub rdx: u64,
    /// 0x18: R8 on entry.
    pub r8: u64,
}
const _: () = assert!(core::mem::size_of::<ProtectRefusedPayload>() == 32);

/// The payload length each kind must have (None for an unknown kind).
pub const fn payload_len(k: u16) -> Option<usize> {
    match k {
        kind::LAUNCH => Some(core::mem::size_of::<LaunchPayload>()),
        kind::CALL => Some(core::mem::size_of::<CallPayload>()),
        kind::REMAP_CA => Some(core::mem::size_of::<RemapCaPayload>()),
        kind::PVALIDATE => Some(core::mem::size_of::<PvalidatePayload>()),
        kind::CREATE_VCPU | kind::DELETE_VCPU => Some(core::mem::size_of::<VcpuPayload>()),
        kind::DEPOSIT_MEM | kind::WITHDRAW_MEM => Some(core::mem::size_of::<MemListPayload>()),
        kind::QUERY_PROTOCOL | kind::CONFIGURE_VTOM => Some(core::mem::size_of::<QueryPayload>()),
        kind::ATTEST => Some(core::mem::size_of::<AttestPayload>()),
        kind::ACCESS_REFUSED => Some(core::mem::size_of::<AccessRefusedPayload>()),
        kind::PROTECT_DECLARE => Some(core::mem::size_of::<ProtectDeclarePayload>()),
        kind::PROTECT_LOCK => Some(core::mem::size_of::<ProtectLockPayload>()),
        kind::PROTECT_REFUSED => Some(core::mem::size_of::<ProtectRefusedPayload>()),
        kind::PROTECT_QUERY => Some(core::mem::size_of::<QueryPayload>()),
        _ => None,
    }
}

/// Why a serialized log could not be replayed. Offsets are byte offsets in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogError {
    /// The log ends inside a record starting at `offset`.
    Truncated {
        /// Offset of the record.
        offset: usize,
    },
    /// The record at `offset` has sequence number `found` instead of `expected`.
    BadSequence {
        /// Offset of the record.
        offset: usize,
        /// Expected sequence number.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// The record at `offset` has an unknown kind or a payload length its kind forbids.
    BadKind {
        /// Offset of the record.
        offset: usize,
        /// Kind found.
        kind: u16,
    },
}

/// Replays a serialized log: checks every record's framing and sequence and returns
/// (number of records, chain head). `f` sees each record's header and payload.
pub fn replay<'a>(
    log: &'a [u8],
    mut f: impl FnMut(&RecordHeader, &'a [u8]),
) -> Result<(u64, [u8; HEAD_SIZE]), LogError> {
    let mut head = H0;
    let mut off = 0usize;
    let mut seq = 0u64;
    while off < log.len() {
        let rest = &log[off..];
        let (hdr, _) = RecordHeader::read_from_prefix(rest)
            .map_err(|_| LogError::Truncated { offset: off })?;
        if hdr.sequence != seq {
            return Err(LogError::BadSequence {
                offset: off,
                expected: seq,
                found: hdr.sequence,
            });
        }
        match payload_len(hdr.kind) {
            Some(n) if n == hdr.payload_len as usize => {}
            _ => {
                return Err(LogError::BadKind {
                    offset: off,
                    kind: hdr.kind,
                })
            }
        }
        let total = RECORD_HEADER_SIZE + hdr.payload_len as usize;
        if rest.len() < total {
            return Err(LogError::Truncated { offset: off });
        }
        f(&hdr, &rest[RECORD_HEADER_SIZE..total]);
        head = extend(&head, &rest[..total]);
        off += total;
        seq += 1;
    }
    Ok((seq, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;
    #[test]
    fn chain_and_replay() {
        let hdr = RecordHeader {
            sequence: 0,
            kind: kind::QUERY_PROTOCOL,
            payload_len: 16,
            ..Default::default()
        };
        let mut rec = [0u8; 40];
        rec[..24].copy_from_slice(hdr.as_bytes());
        let (n, head) = replay(&rec, |_, _| {}).unwrap();
        assert_eq!(n, 1);
        assert_eq!(head, extend(&H0, &rec));
        assert_ne!(head, H0);
        assert_eq!(
            replay(&rec[..30], |_, _| {}),
            Err(LogError::Truncated { offset: 0 })
        );
        // A wrong payload length is refused and the offset named.
        rec[16] = 17;
        assert_eq!(
            replay(&rec, |_, _| {}),
            Err(LogError::BadKind {
                offset: 0,
                kind: kind::QUERY_PROTOCOL
            })
        );
    }

    #[test]
    fn protect_records_have_fixed_lengths_and_replay() {
        assert_eq!(payload_len(kind::PROTECT_DECLARE), Some(64));
        assert_eq!(payload_len(kind::PROTECT_LOCK), Some(320));
        assert_eq!(payload_len(kind::PROTECT_REFUSED), Some(32));
        assert_eq!(payload_len(kind::PROTECT_QUERY), Some(16));
        let mut p = ProtectLockPayload::new_zeroed();
        p.range_count = 1;
        p.text_pages = 2;
        p.ranges[0].gpa = 0x20_0000;
        p.ranges[0].pages = 2;
        p.ranges[0].kind = crate::protect_protocol::range_kind::TEXT;
        let hdr = RecordHeader {
            kind: kind::PROTECT_LOCK,
            payload_len: 320,
            ..Default::default()
        };
        let mut rec = hdr.as_bytes().to_vec();
        rec.extend_from_slice(p.as_bytes());
        assert_eq!(&rec[24 + 0x40..24 + 0x48], &0x20_0000u64.to_le_bytes());
        let mut seen = None;
        replay(&rec, |_, b| {
            seen = ProtectLockPayload::read_from_bytes(b).ok()
        })
        .unwrap();
        assert_eq!(seen, Some(p));
        // A LOCK record one byte short is refused, its offset named.
        let mut short = rec.clone();
        short[16..20].copy_from_slice(&319u32.to_le_bytes());
        short.pop();
        assert_eq!(
            replay(&short, |_, _| {}),
            Err(LogError::BadKind {
                offset: 0,
                kind: kind::PROTECT_LOCK
            })
        );
    }

    #[test]
    fn access_refused_record_replays_and_its_length_is_fixed() {
        let p = AccessRefusedPayload {
            gpa: 0x12_3000,
            apic_id: 1,
            access: access::WRITE,
            reason: refusal::VMSA,
            reserved: 0,
        };
        let hdr = RecordHeader {
            sequence: 0,
            kind: kind::ACCESS_REFUSED,
            vmpl: 2,
            apic_id: 1,
            payload_len: 24,
            result: 0x8000_0003,
            ..Default::default()
        };
        let mut rec = hdr.as_bytes().to_vec();
        rec.extend_from_slice(p.as_bytes());
        // The payload's fields sit at the documented offsets.
        assert_eq!(&rec[24..32], &0x12_3000u64.to_le_bytes());
        assert_eq!(&rec[24 + 0x10..24 + 0x14], &3u32.to_le_bytes());
        let mut seen = None;
        let (n, head) = replay(&rec, |h, b| {
            seen = Some((h.kind, AccessRefusedPayload::read_from_bytes(b).unwrap()))
        })
        .unwrap();
        assert_eq!((n, head), (1, extend(&H0, &rec)));
        assert_eq!(seen, Some((kind::ACCESS_REFUSED, p)));
        // Any other payload length is refused.
        rec[16] = 16;
        rec.truncate(40);
        assert_eq!(
            replay(&rec, |_, _| {}),
            Err(LogError::BadKind {
                offset: 0,
                kind: kind::ACCESS_REFUSED
            })
        );
    }
}
