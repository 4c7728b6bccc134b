//! LOCK: the declared ranges become the guest's protection until the VM resets.
//!
//! Order, and why:
//! 1. every declared page is checked again (the guest may have rescinded or deposited
//!    one since DECLARE, or made it a calling area): INVALID_ADDRESS;
//! 2. RMPADJUST (APM vol. 2, 15.36 SEV-SNP) gives every guest VMPL the rule of each validated
//!    guest page: text read + supervisor-execute, read-only data read, everything else
//!    read + write + user-execute. From here the guest cannot write its text;
//! 3. only then does Vigil read the text pages, once, and hash them: a racing vCPU
//!    cannot change them between the hash and the lock (TOCTOU);
//! 4. the pages become `Locked` in the page table, and the PROTECT_LOCK record lists
//!    the ranges (sorted by GPA) and the digest.
//!
//! A failure in 2 or 3 puts every page back to full rights and locks nothing.
use super::super::core::{code_of, guest_vmpls, holds_caa, rmp_code};
use super::super::{range_to_code, Ret};
use crate::addr::{Gpa, PageSize, Vmpl, PAGE_SIZE_2M, PAGE_SIZE_4K};
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::{Perms, Platform, RmpError};
use crate::Monitor;
use alloc::vec::Vec;
use sha2::{Digest, Sha384};
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, ProtectLockPayload};
use svsm_abi::protect_protocol::{perms_of, range_kind, PERMS_OTHER};
use zerocopy::FromZeros;

pub(super) fn lock<P: Platform>(m: &mut Monitor<P>, caller: Caller) -> Ret {
    m.protection.ranges.sort_by_key(|r| r.gpa);
    let mut payload = ProtectLockPayload::new_zeroed();
    let ret = lock_inner(m, &mut payload);
    if ret == Ret::Code(result::SUCCESS) {
        fill_ranges(m, &mut payload);
    }
    m.log
        .append(kind::PROTECT_LOCK, caller, code_of(ret), &payload);
    ret
}

fn fill_ranges<P: Platform>(m: &Monitor<P>, payload: &mut ProtectLockPayload) {
    let p = &m.protection;
    payload.range_count = p.ranges.len() as u32;
    payload.text_pages = p.pages_of(range_kind::TEXT) as u32;
    payload.rodata_pages = p.pages_of(range_kind::RODATA) as u32;
    for (slot, r) in payload.ranges.iter_mut().zip(p.ranges.iter()) {
        *slot = *r;
    }
    payload.text_digest = p.text_digest;
}

fn lock_inner<P: Platform>(m: &mut Monitor<P>, payload: &mut ProtectLockPayload) -> Ret {
    // A lock without text would leave the guest kernel no page to run from.
    if !m.protection.has_text() {
        return Ret::Code(result::ERR_INVALID_REQUEST);
    }
    if let Err(code) = recheck(m) {
        return Ret::Code(code);
    }
    let mut done: Vec<(Gpa, PageSize)> = Vec::new();
    if let Err(e) = apply_rules(m, &mut done) {
        rollback(m, &done);
        return Ret::Code(rmp_code(e));
    }
    let Some(digest) = hash_text(m) else {
        rollback(m, &done);
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    };
    let ranges = m.protection.ranges.clone();
    for r in &ranges {
        for i in 0..r.pages as u64 {
            m.pages.set(
                Gpa(r.gpa + i * PAGE_SIZE_4K),
                PageSize::Size4K,
                PageState::Locked,
            );
        }
    }
    m.protection.text_digest = digest;
    m.protection.locked = true;
    payload.text_digest = digest;
    Ret::Code(result::SUCCESS)
}

/// Step 1: each declared range is still validated guest memory with no calling area.
fn recheck<P: Platform>(m: &Monitor<P>) -> Result<(), u64> {
    for r in &m.protection.ranges {
        let len = r.pages as u64 * PAGE_SIZE_4K;
        m.pages
            .check_range(Gpa(r.gpa), len, PageState::Validated)
            .map_err(range_to_code)?;
        if holds_caa(m, Gpa(r.gpa), len) {
            return Err(result::ERR_INVALID_ADDRESS);
        }
    }
    Ok(())
}

/// Step 2: the rule of every validated guest page, for every guest VMPL. A page the
/// guest validated as 2 MiB gets the rule at 2 MiB when no range touches it; a range
/// inside a 2 MiB page is FAIL_SIZEMISMATCH (the guest validates its text as 4 KiB
/// pages). An "everything else" page the host took away (FAIL_INPUT: not validated any
/// more) is skipped: no VMPL can reach it, and it comes back only through PVALIDATE,
/// which grants the after-lock rule.
fn apply_rules<P: Platform>(
    m: &mut Monitor<P>,
    done: &mut Vec<(Gpa, PageSize)>,
) -> Result<(), RmpError> {
    let targets: Vec<Vmpl> = guest_vmpls(m).collect();
    let frames: Vec<u64> = m
        .pages
        .iter()
        .filter(|(_, s)| *s == PageState::Validated)
        .map(|(g, _)| g)
        .collect();
    let mut skip_below = 0u64;
    for gfn in frames {
        if gfn < skip_below {
            continue;
        }
        let kind = m.protection.kind_of(gfn);
        let perms = Perms::from_bits_truncate(kind.and_then(perms_of).unwrap_or(PERMS_OTHER));
        let gpa = Gpa::from_gfn(gfn);
        match adjust(m, gpa, PageSize::Size4K, &targets, perms) {
            Ok(()) => done.push((gpa, PageSize::Size4K)),
            Err(RmpError::FailInput) if kind.is_none() => {}
            Err(RmpError::FailSizeMismatch) if kind.is_none() => {
                let base = Gpa(gpa.0 & !(PAGE_SIZE_2M - 1));
                if m.protection.overlaps(base, PAGE_SIZE_2M) {
                    return Err(RmpError::FailSizeMismatch);
                }
                adjust(m, base, PageSize::Size2M, &targets, perms)?;
                done.push((base, PageSize::Size2M));
                skip_below = base.gfn() + PageSize::Size2M.frames();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn adjust<P: Platform>(
    m: &mut Monitor<P>,
    gpa: Gpa,
    size: PageSize,
    targets: &[Vmpl],
    perms: Perms,
) -> Result<(), RmpError> {
    for t in targets {
        m.p.rmpadjust(gpa, size, *t, perms, false)?;
    }
    Ok(())
}

/// Puts the pages adjusted so far back to full rights (the lock did not happen).
fn rollback<P: Platform>(m: &mut Monitor<P>, done: &[(Gpa, PageSize)]) {
    let targets: Vec<Vmpl> = guest_vmpls(m).collect();
    for (gpa, size) in done {
        let _ = adjust(m, *gpa, *size, &targets, Perms::all());
    }
}

/// Step 3: SHA-384 of every text page, ranges in GPA order, each page read once by
/// VMPL0 after the guest lost write access to it. None if a page cannot be read (the
/// host took it).
fn hash_text<P: Platform>(m: &mut Monitor<P>) -> Option<[u8; 48]> {
    let mut h = Sha384::new();
    let text: Vec<(u64, u32)> = m
        .protection
        .ranges
        .iter()
        .filter(|r| r.kind == range_kind::TEXT)
        .map(|r| (r.gpa, r.pages))
        .collect();
    let mut page = alloc::vec![0u8; PAGE_SIZE_4K as usize];
    for (gpa, pages) in text {
        for i in 0..pages as u64 {
            m.p.read(Gpa(gpa + i * PAGE_SIZE_4K), &mut page).ok()?;
            h.update(&page);
        }
    }
    Some(h.finalize().into())
}
