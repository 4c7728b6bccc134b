//! The Vigil protection protocol on the sim (issue 12; docs/protocols.md, "Vigil
//! protection protocol"): one test per rule of DECLARE, LOCK, QUERY and UNLOCK, and
//! the core calls that must not undo a lock. Every test ends in the invariant checker,
//! which checks the protection's invariants against the simulated RMP.
use monitor::addr::{Gpa, PageSize};
use monitor::pages::PageState;
use monitor::sim::invariants::check;
use monitor::sim::machine::Race;
use monitor::sim::protect_calls::range;
use monitor::sim::vm::{SimConfig, BOOT_CAA, LIST_PAGE};
use monitor::sim::SimVm;
use sha2::{Digest, Sha384};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call as core_call, result::*};
use svsm_abi::event_log::{kind, ProtectLockPayload, ProtectRefusedPayload, RecordHeader};
use svsm_abi::protect_protocol::{
    call, query, range_kind, RangeEntry, PERMS_OTHER, PERMS_RODATA, PERMS_TEXT,
};
use svsm_abi::pvalidate::PvalidateEntry;
use zerocopy::FromBytes;

/// Kernel text in the launch image: 4 pages at 64 KiB; read-only data: 2 at 128 KiB.
const TEXT: u64 = 0x1_0000;
const RODATA: u64 = 0x2_0000;
const K_TEXT: u32 = range_kind::TEXT;
const K_RO: u32 = range_kind::RODATA;
const DATA: u64 = 0x3_0000;
const VIGIL: u64 = 4 << 20;
const FREE: u64 = 2 << 20;

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(1))
}

fn kernel() -> [RangeEntry; 2] {
    [range(TEXT, 4, K_TEXT), range(RODATA, 2, K_RO)]
}

/// A VM whose guest wrote its text (recognisable bytes), declared and locked.
fn locked() -> (SimVm, [u8; 48]) {
    let mut v = vm();
    let mut h = Sha384::new();
    for i in 0..4u64 {
        let page = [0x90 + i as u8; 4096];
        v.guest_write(Gpa(TEXT + i * 4096), &page).unwrap();
        h.update(page);
    }
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    assert_eq!(v.protect_lock(), SUCCESS);
    (v, h.finalize().into())
}

fn last(v: &SimVm) -> (RecordHeader, Vec<u8>) {
    let mut out = None;
    svsm_abi::event_log::replay(v.m.event_log().bytes(), |h, p| out = Some((*h, p.to_vec())))
        .unwrap();
    out.unwrap()
}

fn perms(v: &SimVm, gpa: u64, vmpl: usize) -> u8 {
    v.mach().rmp.get(gpa >> 12).unwrap().perms[vmpl]
}

fn core(c: u32) -> u64 {
    SvsmRegs::rax_for(0, c)
}

#[test]
fn declare_then_lock_applies_each_rule_to_every_guest_vmpl() {
    let mut v = vm();
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    let q = v.protect_query();
    assert_eq!((q.rax, q.rcx, q.rdx, q.r8), (SUCCESS, 2 << 8, 4, 2));
    // Before the lock nothing changed in the RMP.
    assert_eq!(perms(&v, TEXT, 2), 0x0f);
    assert_eq!(v.protect_lock(), SUCCESS);
    for vmpl in [1, 2] {
        assert_eq!(perms(&v, TEXT + 0x3000, vmpl), PERMS_TEXT);
        assert_eq!(perms(&v, RODATA + 0x1000, vmpl), PERMS_RODATA);
        assert_eq!(perms(&v, DATA, vmpl), PERMS_OTHER);
        assert_eq!(perms(&v, TEXT + 0x4000, vmpl), PERMS_OTHER);
    }
    assert_eq!(perms(&v, TEXT, 3), 0);
    assert_eq!(v.m.pages().get(Gpa(TEXT)), Some(PageState::Locked));
    let q = v.protect_query();
    assert_eq!(
        (q.rcx & query::LOCKED, q.rcx >> query::RANGES_SHIFT),
        (1, 2)
    );
    assert_eq!(last(&v).0.kind, kind::PROTECT_QUERY);
    check(&v).unwrap();
}

#[test]
fn the_lock_record_lists_the_ranges_sorted_and_the_text_digest() {
    let mut v = vm();
    let page = [0xC3u8; 4096];
    v.guest_write(Gpa(TEXT), &page).unwrap();
    // Declared in two calls, rodata first: the record sorts by GPA.
    assert_eq!(v.protect_declare(&[range(RODATA, 2, K_RO)]), SUCCESS);
    assert_eq!(v.protect_declare(&[range(TEXT, 1, K_TEXT)]), SUCCESS);
    assert_eq!(v.protect_lock(), SUCCESS);
    let (h, p) = last(&v);
    assert_eq!((h.kind, h.result), (kind::PROTECT_LOCK, 0));
    let p = ProtectLockPayload::read_from_bytes(&p).unwrap();
    assert_eq!((p.range_count, p.text_pages, p.rodata_pages), (2, 1, 2));
    assert_eq!(p.ranges[0], range(TEXT, 1, K_TEXT));
    assert_eq!(p.ranges[1], range(RODATA, 2, K_RO));
    assert_eq!(p.ranges[2], RangeEntry::default());
    let want: [u8; 48] = Sha384::digest(page).into();
    assert_eq!(p.text_digest, want);
    assert_eq!(v.m.protection().text_digest(), want);
    check(&v).unwrap();
}

#[test]
fn the_text_is_hashed_after_the_guest_lost_write_access() {
    // Attack: another vCPU rewrites the text while Vigil hashes it, so that the digest
    // names code other than what runs. The racer writes whenever Vigil reads the text;
    // by then the RMP refuses its write.
    let mut v = vm();
    v.guest_write(Gpa(TEXT), &[0x11; 4096]).unwrap();
    assert_eq!(v.protect_declare(&[range(TEXT, 1, K_TEXT)]), SUCCESS);
    v.mach_mut().race = Some(Race {
        vmpl: 2,
        at: Gpa(TEXT + 8),
        bytes: vec![0xCC; 8],
    });
    assert_eq!(v.protect_lock(), SUCCESS);
    v.mach_mut().race = None;
    let mut b = [0u8; 16];
    v.mach().peek(Gpa(TEXT), &mut b);
    assert_eq!(b, [0x11; 16]);
    let want: [u8; 48] = Sha384::digest([0x11u8; 4096]).into();
    assert_eq!(v.m.protection().text_digest(), want);
    assert!(v
        .mach()
        .rmp_faults
        .borrow()
        .iter()
        .any(|f| f.1 == Gpa(TEXT) && f.2 == monitor::access::Access::WRITE.bits()));
    check(&v).unwrap();
}

#[test]
fn declare_refuses_each_malformed_or_hostile_range_and_adds_nothing() {
    for (what, ranges, want) in [
        (
            "unknown kind",
            vec![range(TEXT, 1, 3)],
            ERR_INVALID_PARAMETER,
        ),
        ("kind 0", vec![range(TEXT, 1, 0)], ERR_INVALID_PARAMETER),
        (
            "no pages",
            vec![range(TEXT, 0, K_TEXT)],
            ERR_INVALID_PARAMETER,
        ),
        (
            "misaligned",
            vec![range(TEXT + 8, 1, K_TEXT)],
            ERR_INVALID_PARAMETER,
        ),
        (
            "Vigil's memory",
            vec![range(VIGIL, 1, K_TEXT)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "across Vigil's start",
            vec![range(VIGIL - 0x1000, 2, K_TEXT)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "not validated",
            vec![range(FREE, 1, K_TEXT)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "past RAM",
            vec![range(8 << 20, 1, K_TEXT)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "overflowing",
            vec![range(!0xfff, 2, K_TEXT)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "the calling area",
            vec![range(BOOT_CAA.0, 1, K_RO)],
            ERR_INVALID_ADDRESS,
        ),
        (
            "overlap in the list",
            vec![range(TEXT, 2, K_TEXT), range(TEXT + 0x1000, 1, K_RO)],
            ERR_INVALID_PARAMETER,
        ),
        (
            "one good, one bad",
            vec![range(TEXT, 1, K_TEXT), range(FREE, 1, K_RO)],
            ERR_INVALID_ADDRESS,
        ),
    ] {
        let mut v = vm();
        assert_eq!(v.protect_declare(&ranges), want, "{what}");
        assert!(v.m.protection().ranges().is_empty(), "{what}");
        let (h, _) = last(&v);
        assert_eq!(
            (h.kind, h.result as u64),
            (kind::PROTECT_DECLARE, want),
            "{what}"
        );
        check(&v).unwrap();
    }
}

#[test]
fn declare_refuses_a_bad_list() {
    let mut v = vm();
    // Misaligned list; list in Vigil's memory; list over the calling area's head.
    assert_eq!(
        v.protect_call(call::DECLARE, LIST_PAGE.0 + 4).rax,
        ERR_INVALID_PARAMETER
    );
    assert_eq!(
        v.protect_call(call::DECLARE, VIGIL).rax,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.protect_call(call::DECLARE, BOOT_CAA.0).rax,
        ERR_INVALID_ADDRESS
    );
    // Zero entries; reserved bytes set; more entries than fit after the header.
    assert_eq!(v.protect_declare(&[]), ERR_INVALID_PARAMETER);
    v.guest_write(LIST_PAGE, &[1, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    assert_eq!(
        v.protect_call(call::DECLARE, LIST_PAGE.0).rax,
        ERR_INVALID_PARAMETER
    );
    v.guest_write(Gpa(LIST_PAGE.0 + 0xff0), &[1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    assert_eq!(
        v.protect_call(call::DECLARE, LIST_PAGE.0 + 0xff0).rax,
        ERR_INVALID_PARAMETER
    );
    // More than 16 ranges in all.
    let many: Vec<RangeEntry> = (0..16).map(|i| range(DATA + i * 0x1000, 1, K_RO)).collect();
    assert_eq!(v.protect_declare(&many), SUCCESS);
    assert_eq!(
        v.protect_declare(&[range(TEXT, 1, K_TEXT)]),
        ERR_INVALID_PARAMETER
    );
    // Overlap with a range declared before.
    let mut v = vm();
    assert_eq!(v.protect_declare(&[range(TEXT, 2, K_TEXT)]), SUCCESS);
    assert_eq!(
        v.protect_declare(&[range(TEXT + 0x1000, 2, K_RO)]),
        ERR_INVALID_PARAMETER
    );
    assert_eq!(v.m.protection().ranges().len(), 1);
    check(&v).unwrap();
}

#[test]
fn after_the_lock_every_change_is_refused_logged_and_changes_nothing() {
    let (mut v, _) = locked();
    let before = v.state_digest();
    let ranges = v.m.protection().ranges().to_vec();
    // Widen, declare data as text, lock again differently, lock again the same, unlock.
    for (c, rcx) in [
        (call::DECLARE, None),
        (call::LOCK, Some(0)),
        (call::UNLOCK, Some(0)),
    ] {
        let rax = match rcx {
            None => v.protect_declare(&[range(DATA, 1, K_TEXT)]),
            Some(r) => v.protect_call(c, r).rax,
        };
        assert_eq!(rax, ERR_INVALID_REQUEST, "call {c}");
        let (h, p) = last(&v);
        assert_eq!(
            (h.kind, h.result as u64),
            (kind::PROTECT_REFUSED, ERR_INVALID_REQUEST)
        );
        let p = ProtectRefusedPayload::read_from_bytes(&p).unwrap();
        assert_eq!((p.call, p.locked), (c, 1));
    }
    assert_eq!(
        v.protect_declare(&[range(TEXT, 8, K_TEXT)]),
        ERR_INVALID_REQUEST
    );
    assert_eq!(v.state_digest(), before);
    assert_eq!(v.m.protection().ranges(), &ranges[..]);
    check(&v).unwrap();
}

#[test]
fn unlock_is_refused_before_the_lock_too() {
    let mut v = vm();
    assert_eq!(v.protect_call(call::UNLOCK, 0).rax, ERR_INVALID_REQUEST);
    let (h, p) = last(&v);
    assert_eq!(h.kind, kind::PROTECT_REFUSED);
    assert_eq!(
        ProtectRefusedPayload::read_from_bytes(&p).unwrap().locked,
        0
    );
    check(&v).unwrap();
}

#[test]
fn an_unknown_protection_call_is_unsupported_call() {
    let mut v = vm();
    assert_eq!(v.protect_call(4, 0).rax, ERR_UNSUPPORTED_CALL);
    assert_eq!(last(&v).0.kind, kind::CALL);
    check(&v).unwrap();
}

#[test]
fn lock_without_text_or_over_a_page_given_away_since_is_refused() {
    let mut v = vm();
    assert_eq!(v.protect_lock(), ERR_INVALID_REQUEST);
    assert_eq!(v.protect_declare(&[range(RODATA, 1, K_RO)]), SUCCESS);
    assert_eq!(v.protect_lock(), ERR_INVALID_REQUEST);
    // Declared, then rescinded before the lock: the lock checks again.
    assert_eq!(v.protect_declare(&[range(TEXT, 1, K_TEXT)]), SUCCESS);
    let e = PvalidateEntry::new(TEXT >> 12, false, false, false);
    assert_eq!(v.pvalidate(&[e]).0, SUCCESS);
    assert_eq!(v.protect_lock(), ERR_INVALID_ADDRESS);
    let (h, p) = last(&v);
    assert_eq!(
        (h.kind, h.result as u64),
        (kind::PROTECT_LOCK, ERR_INVALID_ADDRESS)
    );
    assert_eq!(
        ProtectLockPayload::read_from_bytes(&p).unwrap().range_count,
        0
    );
    assert!(!v.m.protection().is_locked());
    assert_eq!(perms(&v, DATA, 2), 0x0f);
    check(&v).unwrap();
}

#[test]
fn a_failing_rmpadjust_during_the_lock_leaves_everything_as_it_was() {
    let mut v = vm();
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    v.mach_mut().rmpadjust_fault = Some(monitor::platform::RmpError::FailPermission);
    assert_eq!(v.protect_lock(), ERR_PVALIDATE_BASE | 2);
    assert!(!v.m.protection().is_locked());
    assert_eq!(perms(&v, TEXT, 2), 0x0f);
    assert_eq!(v.protect_lock(), SUCCESS);
    check(&v).unwrap();
}

#[test]
fn pages_given_to_the_guest_after_the_lock_never_get_supervisor_execute() {
    let (mut v, _) = locked();
    // PVALIDATE of fresh memory.
    assert_eq!(v.accept(Gpa(FREE), PageSize::Size4K, 2), SUCCESS);
    assert_eq!(perms(&v, FREE, 2), PERMS_OTHER);
    assert_eq!(perms(&v, FREE, 1), PERMS_OTHER);
    // A 2 MiB page.
    assert_eq!(v.accept(Gpa(6 << 20), PageSize::Size2M, 1), SUCCESS);
    assert_eq!(perms(&v, (6 << 20) + 0x5000, 2), PERMS_OTHER);
    // DEPOSIT_MEM then WITHDRAW_MEM.
    let dep = PvalidateEntry(svsm_abi::core_protocol::deposit::entry(DATA, false));
    assert_eq!(
        v.list_call(core_call::DEPOSIT_MEM, LIST_PAGE, &[dep], 0).0,
        SUCCESS
    );
    assert_eq!(perms(&v, DATA, 2), 0);
    assert_eq!(
        v.call(core(core_call::WITHDRAW_MEM), LIST_PAGE.0, 0, 0)
            .1
            .rax,
        SUCCESS
    );
    assert_eq!(perms(&v, DATA, 2), PERMS_OTHER);
    check(&v).unwrap();
}

#[test]
fn core_calls_cannot_take_or_write_locked_pages() {
    let (mut v, _) = locked();
    let before = v.state_digest();
    // Rescind text; deposit read-only data; a PVALIDATE list in the text (Vigil would
    // write `next` into it); the text as calling area; the text as a VMSA.
    let rescind = PvalidateEntry::new(TEXT >> 12, false, false, false);
    assert_eq!(v.pvalidate(&[rescind]).0, ERR_INVALID_ADDRESS);
    let dep = PvalidateEntry(svsm_abi::core_protocol::deposit::entry(RODATA, false));
    assert_eq!(
        v.list_call(core_call::DEPOSIT_MEM, LIST_PAGE, &[dep], 0).0,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.call(core(core_call::PVALIDATE), TEXT + 8, 0, 0).1.rax,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.call(core(core_call::REMAP_CA), TEXT, 0, 0).1.rax,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.call(core(core_call::CREATE_VCPU), TEXT + 0x1000, 0x5000, 1)
            .1
            .rax,
        ERR_INVALID_ADDRESS
    );
    // Validating a locked page again.
    let again = PvalidateEntry::new(TEXT >> 12, false, true, true);
    assert_eq!(v.pvalidate(&[again]).0, ERR_INVALID_ADDRESS);
    assert_eq!(v.state_digest(), before);
    check(&v).unwrap();
}

/// The figure docs/trap-set.md gives for the protocol's cost: on the sim, each
/// protection call is the two run-VMPL exits of any SVSM call (there and back) and
/// nothing else; LOCK's RMPADJUSTs never exit to the host.
#[test]
fn the_protection_costs_two_run_vmpl_exits_per_call_and_no_other_exit() {
    let mut v = vm();
    let before = v.mach().exits;
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    assert_eq!(v.protect_lock(), SUCCESS);
    assert_eq!(v.protect_query().rax, SUCCESS);
    let after = v.mach().exits;
    assert_eq!(after.run_vmpl - before.run_vmpl, 6);
    assert_eq!(after.total() - before.total(), 6);
    // After the lock, the guest's own accesses cost nothing: the RMP checks them.
    let t = v.mach().exits.total();
    assert!(v.guest_exec(Gpa(TEXT), true).is_ok());
    assert!(v.guest_write(Gpa(DATA), &[1]).is_ok());
    assert_eq!(v.mach().exits.total(), t);
    check(&v).unwrap();
}

#[test]
fn a_2m_page_gets_the_rule_at_2m_and_a_range_inside_one_is_size_mismatch() {
    let two_m = 2 << 20;
    // No range inside: the 2 MiB page gets the "everything else" rule as a whole.
    let mut v = vm();
    assert_eq!(v.accept(Gpa(two_m), PageSize::Size2M, 1), SUCCESS);
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    assert_eq!(v.protect_lock(), SUCCESS);
    assert_eq!(perms(&v, two_m + 0x5000, 2), PERMS_OTHER);
    check(&v).unwrap();
    // Text inside a 2 MiB RMP page: FAIL_SIZEMISMATCH, nothing locked, rights back.
    let mut v = vm();
    assert_eq!(v.accept(Gpa(two_m), PageSize::Size2M, 1), SUCCESS);
    assert_eq!(v.protect_declare(&[range(two_m, 1, K_TEXT)]), SUCCESS);
    assert_eq!(v.protect_lock(), ERR_PVALIDATE_FAIL_SIZEMISMATCH);
    assert!(!v.m.protection().is_locked());
    assert_eq!(perms(&v, DATA, 2), 0x0f);
    assert_eq!(perms(&v, two_m, 2), 0x0f);
    check(&v).unwrap();
}

#[test]
fn a_data_page_the_host_took_is_skipped_and_comes_back_under_the_rule() {
    let mut v = vm();
    v.mach_mut().host_remap(Gpa(DATA), 0xee);
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    assert_eq!(v.protect_lock(), SUCCESS);
    check(&v).unwrap();
    // The guest rescinds it (unchanged: already not validated) and validates it again.
    let rescind = PvalidateEntry::new(DATA >> 12, false, false, true);
    assert_eq!(v.pvalidate(&[rescind]).0, SUCCESS);
    assert_eq!(v.accept(Gpa(DATA), PageSize::Size4K, 1), SUCCESS);
    assert_eq!(perms(&v, DATA, 2), PERMS_OTHER);
    let mut b = [1u8; 8];
    v.guest_read(Gpa(DATA), &mut b).unwrap();
    assert_eq!(b, [0; 8]);
    check(&v).unwrap();
}

#[test]
fn a_text_page_the_host_took_before_the_lock_fails_the_lock() {
    let mut v = vm();
    assert_eq!(v.protect_declare(&kernel()), SUCCESS);
    v.mach_mut().host_remap(Gpa(TEXT + 0x2000), 0xcc);
    assert_eq!(v.protect_lock(), ERR_PVALIDATE_FAIL_INPUT);
    assert!(!v.m.protection().is_locked());
    assert_eq!(perms(&v, TEXT, 2), 0x0f);
    check(&v).unwrap();
}
