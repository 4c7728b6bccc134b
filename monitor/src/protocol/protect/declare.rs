//! DECLARE: the guest names its text and read-only data ranges (before the lock only).
//!
//! The list is checked like every guest input (DESIGN.md invariant 4; #58019 section 5
//! for the error classes): copied in with one read of the rest of its page, then only
//! the copy is used. The call is all or nothing: one bad entry and no range of the list
//! is added.
use super::super::core::{code_of, holds_caa, overlaps_caa_head};
use super::super::{range_to_code, Ret};
use crate::addr::{Gpa, PAGE_SIZE_4K};
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::Platform;
use crate::protect::range_end;
use crate::Monitor;
use alloc::vec::Vec;
use sha2::{Digest, Sha384};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, ProtectDeclarePayload};
use svsm_abi::protect_protocol::{
    perms_of, RangeEntry, RangeListHeader, ENTRY_SIZE, HEADER_SIZE, MAX_RANGES,
};
use zerocopy::FromBytes;

pub(super) fn declare<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &SvsmRegs) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = ProtectDeclarePayload {
        list_gpa: list_gpa.0,
        count: 0,
        total: 0,
        reserved: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_ranges(m, list_gpa) {
        Err(code) => Ret::Code(code),
        Ok((hdr, raw)) => {
            payload.count = hdr.count;
            payload.entries_digest = Sha384::digest(&raw).into();
            match check_list(m, &hdr, &raw) {
                Err(code) => Ret::Code(code),
                Ok(entries) => {
                    m.protection.ranges.extend(entries);
                    Ret::Code(result::SUCCESS)
                }
            }
        }
    };
    payload.total = m.protection.ranges.len() as u16;
    m.log
        .append(kind::PROTECT_DECLARE, caller, code_of(ret), &payload);
    ret
}

/// Copies the list in: 8-byte aligned (INVALID_PARAMETER), on memory the guest owns and
/// not over a calling area's head (INVALID_ADDRESS), the rest of its page read once.
/// Returns the header and the raw entries (as many as `count` says, if they fit).
fn read_ranges<P: Platform>(
    m: &mut Monitor<P>,
    gpa: Gpa,
) -> Result<(RangeListHeader, Vec<u8>), u64> {
    if !gpa.0.is_multiple_of(8) {
        return Err(result::ERR_INVALID_PARAMETER);
    }
    let avail = PAGE_SIZE_4K - gpa.page_offset();
    m.pages
        .check_range(gpa, avail, PageState::Validated)
        .map_err(range_to_code)?;
    if overlaps_caa_head(m, gpa, avail) {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    let mut raw = alloc::vec![0u8; avail as usize];
    m.p.read(gpa, &mut raw)
        .map_err(|_| result::ERR_INVALID_ADDRESS)?;
    let (hdr, rest) =
        RangeListHeader::read_from_prefix(&raw).map_err(|_| result::ERR_INVALID_PARAMETER)?;
    let n = (hdr.count as usize).min(rest.len() / ENTRY_SIZE);
    Ok((hdr, rest[..n * ENTRY_SIZE].to_vec()))
}

/// The header and every entry: count 1..=16 in all with the ranges already declared,
/// inside the page, reserved bytes zero (INVALID_PARAMETER); then [`check_entry`]
/// for each, and no two ranges overlapping (INVALID_PARAMETER).
fn check_list<P: Platform>(
    m: &Monitor<P>,
    hdr: &RangeListHeader,
    raw: &[u8],
) -> Result<Vec<RangeEntry>, u64> {
    let capacity = (PAGE_SIZE_4K as usize - HEADER_SIZE) / ENTRY_SIZE;
    let count = hdr.count as usize;
    if count == 0
        || raw.len() != count * ENTRY_SIZE
        || count > capacity
        || m.protection.ranges.len() + count > MAX_RANGES
        || hdr.reserved0 != 0
        || hdr.reserved1 != 0
    {
        return Err(result::ERR_INVALID_PARAMETER);
    }
    let mut out: Vec<RangeEntry> = Vec::with_capacity(count);
    for chunk in raw.chunks_exact(ENTRY_SIZE) {
        let e = RangeEntry::read_from_bytes(chunk).map_err(|_| result::ERR_INVALID_PARAMETER)?;
        check_entry(m, &e)?;
        // Attack: overlapping ranges of two kinds (a page both text and data) would
        // leave which rule wins to the order of the RMPADJUSTs; refused instead.
        let len = e.pages as u64 * PAGE_SIZE_4K;
        if m.protection.overlaps(Gpa(e.gpa), len)
            || out
                .iter()
                .any(|o| e.gpa < range_end(o) && o.gpa < e.gpa + len)
        {
            return Err(result::ERR_INVALID_PARAMETER);
        }
        out.push(e);
    }
    Ok(out)
}

/// One range: a known kind, at least one page, 4 KiB aligned (INVALID_PARAMETER); in
/// guest RAM, not Vigil's memory, every page validated by the guest, no calling area
/// in use (INVALID_ADDRESS). Attack: a guest that declares Vigil's memory, a VMSA or a
/// deposited page as its text would have Vigil grant it rights there at the lock; one
/// that declares its calling area would have Vigil write into locked text.
fn check_entry<P: Platform>(m: &Monitor<P>, e: &RangeEntry) -> Result<(), u64> {
    if perms_of(e.kind).is_none() || e.pages == 0 || !e.gpa.is_multiple_of(PAGE_SIZE_4K) {
        return Err(result::ERR_INVALID_PARAMETER);
    }
    let len = e.pages as u64 * PAGE_SIZE_4K;
    m.pages
        .check_range(Gpa(e.gpa), len, PageState::Validated)
        .map_err(range_to_code)?;
    if holds_caa(m, Gpa(e.gpa), len) {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    Ok(())
}
