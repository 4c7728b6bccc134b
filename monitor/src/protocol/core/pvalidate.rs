//! PVALIDATE (#58019 6.2): validate or rescind the pages of a list, restartable at
//! `next`.
use super::lists::{read_list, write_next};
use super::{code_of, holds_caa, rmp_code, set_guest_rights};
use crate::addr::{Gpa, PageSize};
use crate::event_log::Caller;
use crate::pages::{PageState, RangeError};
use crate::platform::{Perms, Platform, PvalidateOutcome, RmpError, TermReason};
use crate::protocol::{range_to_code, Ret};
use crate::Monitor;
use sha2::{Digest, Sha384};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, PvalidatePayload};
use svsm_abi::pvalidate::PvalidateEntry;

pub(super) fn pvalidate<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> Ret {
    let list_gpa = Gpa(regs.rcx);
    let mut payload = PvalidatePayload {
        list_gpa: list_gpa.0,
        entries: 0,
        first: 0,
        done: 0,
        reserved: 0,
        entries_digest: [0; 48],
    };
    let ret = match read_list(m, list_gpa) {
        Err(code) => Ret::Code(code),
        Ok(list) => {
            payload.entries = list.hdr.entries;
            payload.first = list.hdr.next;
            payload.done = list.hdr.next;
            match list.check_header() {
                Err(code) => Ret::Code(code),
                Ok(()) => {
                    let (ret, done) = run_list(m, &list);
                    payload.done = done;
                    payload.entries_digest =
                        Sha384::digest(list.entries_bytes(list.hdr.next, done)).into();
                    // `next` tells the guest where to resume (6.2), success or not.
                    if !write_next(m, list.gpa, done) && ret == Ret::Code(result::SUCCESS) {
                        Ret::Code(result::ERR_INVALID_ADDRESS)
                    } else {
                        ret
                    }
                }
            }
        }
    };
    m.log
        .append(kind::PVALIDATE, caller, code_of(ret), &payload);
    ret
}

/// Runs the entries from `next`; returns the result and the new `next`.
fn run_list<P: Platform>(m: &mut Monitor<P>, list: &super::lists::List) -> (Ret, u16) {
    let stop = if m.policy.pvalidate_batch == 0 {
        list.hdr.entries
    } else {
        list.hdr
            .entries
            .min(list.hdr.next.saturating_add(m.policy.pvalidate_batch))
    };
    let mut i = list.hdr.next;
    while i < stop {
        match pvalidate_entry(m, PvalidateEntry(list.entry(i)), list.gpa) {
            Ret::Code(result::SUCCESS) => i += 1,
            other => return (other, i),
        }
    }
    if i < list.hdr.entries {
        // *Vigil*: the policy's batch limit stopped the call; the guest calls again.
        return (Ret::Code(result::ERR_INCOMPLETE), i);
    }
    (Ret::Code(result::SUCCESS), i)
}

/// One entry: format (reserved bits 11:4 zero, size 0 or 1: else INVALID_PARAMETER),
/// alignment to its size (INVALID_PARAMETER, section 5), then validate or rescind.
pub(super) fn pvalidate_entry<P: Platform>(
    m: &mut Monitor<P>,
    e: PvalidateEntry,
    list: Gpa,
) -> Ret {
    if e.reserved() != 0 {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let Some(size) = PageSize::from_field(e.size_field()) else {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    };
    let gpa = Gpa(e.gpa());
    if !gpa.is_aligned(size) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    if e.validate() {
        validate(m, gpa, size, e.ignore_cf())
    } else {
        rescind(m, gpa, size, e.ignore_cf(), list)
    }
}

fn validate<P: Platform>(m: &mut Monitor<P>, gpa: Gpa, size: PageSize, ignore_cf: bool) -> Ret {
    // Invariant 2: at most one validation per page, never Vigil's memory.
    match m.pages.check_page(gpa, size, PageState::Unvalidated) {
        Ok(()) => {}
        Err(RangeError::WrongState(PageState::Validated)) => {
            return already(m, gpa, size, PageState::Validated, ignore_cf)
        }
        Err(err) => return Ret::Code(range_to_code(err)),
    }
    match m.p.pvalidate(gpa, size, true) {
        Ok(PvalidateOutcome::Changed) => {}
        // Only VMPL0 can validate, and Vigil's table says it did not: the RMP and the
        // table disagree, which nothing but corrupted state explains.
        Ok(PvalidateOutcome::Unchanged) => return Ret::Fatal(TermReason::HostInconsistent),
        Err(err) => return Ret::Code(rmp_code(err)),
    }
    // Invariant 3: zero before the guest can see the page. Attack: the host remapped
    // the page between its page-state change and this PVALIDATE, so the page holds data
    // the host chose (or another guest's stale data).
    if m.p.zero(gpa, size.bytes()).is_err() {
        return Ret::Fatal(TermReason::HostInconsistent);
    }
    // 6.2: the requesting VMPL and those above it get the page. A failing RMPADJUST is
    // reported as 0x8000_1000 plus its code; the page is rescinded again first so that
    // the RMP and Vigil's table agree (a validated page nobody was granted would
    // otherwise be validated without Vigil's knowledge).
    if let Err(err) = set_guest_rights(m, gpa, size, Perms::all()) {
        return undo_validate(m, gpa, size, err);
    }
    m.pages.set(gpa, size, PageState::Validated);
    Ret::Code(result::SUCCESS)
}

/// The entry asks for the state some of its pages already have. All of them: what
/// PVALIDATE answers with rFLAGS.CF set, FAIL_UNCHANGED, or SUCCESS under IGNORE_CF
/// (6.2), and nothing is done. Only some (a 2 MiB entry over 4 KiB pages in both
/// states): what PVALIDATE answers for a 2 MiB request over 4 KiB RMP entries,
/// FAIL_SIZEMISMATCH, so that the guest retries as 4 KiB pages (Linux, OVMF); never
/// SUCCESS for pages left as they were.
fn already<P: Platform>(
    m: &Monitor<P>,
    gpa: Gpa,
    size: PageSize,
    state: PageState,
    ignore_cf: bool,
) -> Ret {
    if m.pages.check_page(gpa, size, state).is_err() {
        return Ret::Code(result::ERR_PVALIDATE_FAIL_SIZEMISMATCH);
    }
    if ignore_cf {
        Ret::Code(result::SUCCESS)
    } else {
        Ret::Code(result::ERR_PVALIDATE_FAIL_UNCHANGED)
    }
}

fn undo_validate<P: Platform>(m: &mut Monitor<P>, gpa: Gpa, size: PageSize, err: RmpError) -> Ret {
    let _ = super::set_guest_rights(m, gpa, size, Perms::empty());
    match m.p.pvalidate(gpa, size, false) {
        // FAIL_INPUT: the host already took the page; it is not validated either way.
        Ok(_) | Err(RmpError::FailInput) => Ret::Code(rmp_code(err)),
        Err(_) => Ret::Fatal(TermReason::HostInconsistent),
    }
}

fn rescind<P: Platform>(
    m: &mut Monitor<P>,
    gpa: Gpa,
    size: PageSize,
    ignore_cf: bool,
    list: Gpa,
) -> Ret {
    match m.pages.check_page(gpa, size, PageState::Validated) {
        Ok(()) => {}
        Err(RangeError::WrongState(PageState::Unvalidated)) => {
            return already(m, gpa, size, PageState::Unvalidated, ignore_cf)
        }
        Err(err) => return Ret::Code(range_to_code(err)),
    }
    // A calling area in use cannot go: Vigil would write results into a page the guest
    // no longer owns. A conflict with a calling area is INVALID_ADDRESS (6.3's rule).
    if holds_caa(m, gpa, size.bytes()) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    // *Vigil*: nor can the page that holds the list: 6.2 has Vigil write `next` back
    // into it afterwards, and the guest read it.
    if list.0 >= gpa.0 && list.0 < gpa.0.saturating_add(size.bytes()) {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    // 6.2: the lower VMPLs lose the page (RMPADJUST) before PVALIDATE rescinds it, so
    // that no VMPL keeps access to a page that is about to be unvalidated. FAIL_INPUT
    // means the page is no longer validated (the host remapped it): no VMPL has rights
    // on it, and PVALIDATE below finds it unchanged; the guest may still rescind it, so
    // that it can validate the page again (zeroed).
    match set_guest_rights(m, gpa, size, Perms::empty()) {
        Ok(()) | Err(RmpError::FailInput) => {}
        Err(err) => {
            let _ = set_guest_rights(m, gpa, size, Perms::all());
            return Ret::Code(rmp_code(err));
        }
    }
    match m.p.pvalidate(gpa, size, false) {
        // Unchanged: the host already took the page away (a page-state change clears
        // the validated bit); the page is not validated either way.
        Ok(_) => {}
        Err(err) => {
            let _ = set_guest_rights(m, gpa, size, Perms::all());
            return Ret::Code(rmp_code(err));
        }
    }
    m.pages.set(gpa, size, PageState::Unvalidated);
    Ret::Code(result::SUCCESS)
}
