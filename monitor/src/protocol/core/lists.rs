//! Page lists in guest memory with the PVALIDATE list's header (PVALIDATE, #58019 6.2;
//! DEPOSIT_MEM, 6.5): copied in with one read of the rest of their page.
//!
//! Attack: the guest rewrites the list from another vCPU while Vigil works on it; Vigil
//! never reads it twice, so what it checks is what it uses (invariant 4).
use super::super::range_to_code;
use crate::addr::{Gpa, PAGE_SIZE_4K};
use crate::pages::PageState;
use crate::platform::Platform;
use crate::Monitor;
use alloc::vec::Vec;
use svsm_abi::core_protocol::result;
use svsm_abi::pvalidate::{PvalidateListHeader, ENTRY_SIZE, HEADER_SIZE, NEXT_OFFSET};
use zerocopy::FromBytes;

/// A copied-in list.
pub(super) struct List {
    pub gpa: Gpa,
    pub hdr: PvalidateListHeader,
    raw: Vec<u8>,
    capacity: u16,
}

impl List {
    /// Entry `i` (`i` < `hdr.entries`, checked by [`List::check_header`]).
    pub fn entry(&self, i: u16) -> u64 {
        let off = HEADER_SIZE + i as usize * ENTRY_SIZE;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.raw[off..off + 8]);
        u64::from_le_bytes(b)
    }
    /// The raw bytes of entries `from..to`.
    pub fn entries_bytes(&self, from: u16, to: u16) -> &[u8] {
        &self.raw[HEADER_SIZE + from as usize * ENTRY_SIZE..HEADER_SIZE + to as usize * ENTRY_SIZE]
    }
    /// The header rules (6.2, 6.5): at least one entry, all of them inside the list's
    /// page, `next` below `entries` (an empty or already finished list is not a
    /// request), reserved bytes zero. Any failure is INVALID_PARAMETER.
    pub fn check_header(&self) -> Result<(), u64> {
        let h = &self.hdr;
        if h.entries == 0 || h.entries > self.capacity || h.next >= h.entries || h.reserved != 0 {
            return Err(result::ERR_INVALID_PARAMETER);
        }
        Ok(())
    }
}

/// Copies in the list at `gpa`: 8-byte aligned (else INVALID_PARAMETER, section 5) and
/// on memory the guest owns (else INVALID_ADDRESS). The list may sit in the calling
/// area (Linux and OVMF put it at offset 8 of theirs).
pub(super) fn read_list<P: Platform>(m: &mut Monitor<P>, gpa: Gpa) -> Result<List, u64> {
    if !gpa.0.is_multiple_of(8) {
        return Err(result::ERR_INVALID_PARAMETER);
    }
    let avail = PAGE_SIZE_4K - gpa.page_offset();
    m.pages
        .check_range(gpa, avail, PageState::Validated)
        .map_err(range_to_code)?;
    if super::overlaps_caa_head(m, gpa, avail) {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    let mut raw = alloc::vec![0u8; avail as usize];
    m.p.read(gpa, &mut raw)
        .map_err(|_| result::ERR_INVALID_ADDRESS)?;
    let (hdr, _) =
        PvalidateListHeader::read_from_prefix(&raw).map_err(|_| result::ERR_INVALID_PARAMETER)?;
    let capacity = ((avail as usize).saturating_sub(HEADER_SIZE) / ENTRY_SIZE) as u16;
    Ok(List {
        gpa,
        hdr,
        raw,
        capacity,
    })
}

/// Writes `next` back into the guest's list.
pub(super) fn write_next<P: Platform>(m: &mut Monitor<P>, list: Gpa, next: u16) -> bool {
    match list.checked_add(NEXT_OFFSET) {
        Some(at) => m.p.write(at, &next.to_le_bytes()).is_ok(),
        None => false,
    }
}
