//! The monitor's event log: every mediated call as one record of the format in
//! `svsm_abi::event_log`, chained with SHA-384 (invariant 8). The manifest entry under
//! the Vigil service GUID carries (record count, head), so attestation binds the log.
use alloc::vec::Vec;
use svsm_abi::event_log::{extend, RecordHeader, H0, HEAD_SIZE};
use zerocopy::{Immutable, IntoBytes};

/// Who made the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's VMPL.
    pub vmpl: u8,
    /// The calling vCPU's APIC ID.
    pub apic_id: u32,
}

/// The log.
#[derive(Clone, Debug)]
pub struct EventLog {
    bytes: Vec<u8>,
    head: [u8; HEAD_SIZE],
    count: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// An empty log (head H_0).
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            head: H0,
            count: 0,
        }
    }

    /// Appends a record.
    pub fn append<T: IntoBytes + Immutable>(
        &mut self,
        kind: u16,
        caller: Caller,
        result: u64,
        payload: &T,
    ) {
        let p = payload.as_bytes();
        let hdr = RecordHeader {
            sequence: self.count,
            kind,
            vmpl: caller.vmpl,
            reserved: 0,
            apic_id: caller.apic_id,
            payload_len: p.len() as u32,
            result: result as u32,
        };
        let start = self.bytes.len();
        self.bytes.extend_from_slice(hdr.as_bytes());
        self.bytes.extend_from_slice(p);
        self.head = extend(&self.head, &self.bytes[start..]);
        self.count += 1;
    }

    /// The serialized records.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The first `n` records (what a manifest with `record_count = n` binds).
    pub fn prefix(&self, n: u64) -> &[u8] {
        let mut off = 0usize;
        for _ in 0..n {
            let Some(len) = self.bytes.get(off + 16..off + 20) else {
                break;
            };
            let mut b = [0u8; 4];
            b.copy_from_slice(len);
            off += svsm_abi::event_log::RECORD_HEADER_SIZE + u32::from_le_bytes(b) as usize;
        }
        &self.bytes[..off.min(self.bytes.len())]
    }

    /// The chain head.
    pub fn head(&self) -> [u8; HEAD_SIZE] {
        self.head
    }
    /// Number of records.
    pub fn count(&self) -> u64 {
        self.count
    }
}
