//! Refused guest accesses are mediated events (issue 5, invariant 8): one test per
//! refusal reason, each checking that the access really is one the simulated RMP refuses
//! the guest, that `Monitor::record_refused_access` classifies it by Vigil's page state,
//! appends exactly one ACCESS_REFUSED record that replays with the ABI's `replay` and
//! moves the chain head, and that the invariant checker (which counts records per call
//! and per refused access) still holds.
use monitor::access::{rmp_fault_error_code, Access, Refusal};
use monitor::addr::{Gpa, PageSize};
use monitor::pages::PageState;
use monitor::sim::invariants::check;
use monitor::sim::vm::{SimConfig, LIST_PAGE};
use monitor::sim::SimVm;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result::SUCCESS};
use svsm_abi::event_log::{
    access, kind, refusal, replay, AccessRefusedPayload, RecordHeader, HEAD_SIZE,
};
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::FromBytes;

const FREE_2M: Gpa = Gpa(2 << 20); // [2, 4) MiB: free
const VIGIL: Gpa = Gpa(4 << 20); // [4, 6) MiB
const RAM_END: u64 = 8 << 20;

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(11))
}

/// Records one refused access and checks the record it appended; returns the payload.
fn refuse(v: &mut SimVm, apic: u32, gpa: Gpa, acc: Access, want: Refusal) -> AccessRefusedPayload {
    let before: [u8; HEAD_SIZE] = v.m.event_log().head();
    let n_before = v.m.event_log().count();
    // The guest's access goes through the simulated RMP, which refuses it and reports
    // it to the monitor (counted on the machine's side).
    let r = v
        .guest_access(apic, gpa, acc)
        .expect("the simulated RMP refuses this access");
    assert_eq!(r.reason, want, "GPA {:#x}", gpa.0);
    assert!(r.logged);
    assert_eq!(r.error_code, rmp_fault_error_code(acc));
    assert_eq!(v.m.event_log().count(), n_before + 1);
    assert_ne!(v.m.event_log().head(), before, "the head moves");
    // The whole log replays to the monitor's head; the last record is this one.
    let mut last: Option<(RecordHeader, Vec<u8>)> = None;
    let (n, head) = replay(v.m.event_log().bytes(), |h, p| {
        last = Some((*h, p.to_vec()))
    })
    .expect("the log replays");
    assert_eq!((n, head), (v.m.event_log().count(), v.m.event_log().head()));
    let (h, p) = last.unwrap();
    assert_eq!(h.kind, kind::ACCESS_REFUSED);
    assert_eq!(h.sequence, n - 1);
    assert_eq!(h.vmpl, v.m.guest_vmpl().get());
    assert_eq!(h.apic_id, apic);
    assert_eq!(h.result, r.error_code);
    assert_eq!(h.result >> 31, 1, "RMP bit");
    let p = AccessRefusedPayload::read_from_bytes(&p).unwrap();
    assert_eq!(p.gpa, gpa.0);
    assert_eq!(p.apic_id, apic);
    assert_eq!(p.access, acc.bits());
    assert_eq!(p.reason, want.code());
    assert_eq!(p.reserved, 0);
    check(v).unwrap();
    p
}

#[test]
fn vigil_memory_read_is_logged_as_vigil_memory() {
    let mut v = vm();
    assert!(v.guest_read(VIGIL, &mut [0]).is_err());
    let p = refuse(
        &mut v,
        0,
        Gpa(VIGIL.0 + 0x123),
        Access::READ,
        Refusal::VigilMemory,
    );
    assert_eq!((p.reason, p.access), (refusal::VIGIL_MEMORY, access::READ));
    // The last byte of Vigil's memory too.
    refuse(
        &mut v,
        0,
        Gpa(VIGIL.0 + (2 << 20) - 1),
        Access::WRITE,
        Refusal::VigilMemory,
    );
}

#[test]
fn unvalidated_page_is_logged_as_not_validated() {
    let mut v = vm();
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    assert!(v.guest_write(FREE_2M, &[1]).is_err());
    let p = refuse(&mut v, 0, FREE_2M, Access::WRITE, Refusal::NotValidated);
    assert_eq!(p.reason, refusal::NOT_VALIDATED);
    // A page validated and then rescinded is unvalidated again.
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 1), SUCCESS);
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE_2M.gfn(), false, false, false)])
            .0,
        SUCCESS
    );
    refuse(&mut v, 0, FREE_2M, Access::FETCH, Refusal::NotValidated);
}

#[test]
fn vmsa_page_is_logged_as_vmsa() {
    let mut v = vm();
    let gv = v.m.guest_vmpl().get();
    // The boot vCPU's SEV features, which every new VMSA must carry (6.3).
    let features = SevFeatures::SNP_ACTIVE.bits();
    v.write_vmsa(Gpa(0x10000), gv, features, 1 << 12).unwrap();
    let (_, r) = v.call(SvsmRegs::rax_for(0, call::CREATE_VCPU), 0x10000, 0x11000, 1);
    assert_eq!(r.rax, SUCCESS);
    assert_eq!(v.m.pages().get(Gpa(0x10000)), Some(PageState::Vmsa));
    assert!(v.guest_write(Gpa(0x10178), &[0]).is_err());
    // From the new vCPU, during its page walk: the bits are kept as given.
    let p = refuse(
        &mut v,
        1,
        Gpa(0x10178),
        Access::WRITE | Access::TABLE_WALK,
        Refusal::Vmsa,
    );
    assert_eq!(p.access, access::WRITE | access::TABLE_WALK);
    assert_eq!(p.apic_id, 1);
}

#[test]
fn deposited_page_is_logged_as_deposited() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 1), SUCCESS);
    let e = PvalidateEntry(svsm_abi::core_protocol::deposit::entry(FREE_2M.0, false));
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[e], 0),
        (SUCCESS, 1)
    );
    assert!(v.guest_read(FREE_2M, &mut [0]).is_err());
    let p = refuse(&mut v, 0, FREE_2M, Access::READ, Refusal::Deposited);
    assert_eq!(p.reason, refusal::DEPOSITED);
}

#[test]
fn address_beyond_ram_is_logged_as_outside_ram() {
    let mut v = vm();
    for gpa in [RAM_END, RAM_END + 0x1234, u64::MAX] {
        refuse(&mut v, 0, Gpa(gpa), Access::READ, Refusal::OutsideRam);
    }
}

#[test]
fn validated_page_is_classified_as_no_permission() {
    // The sim's guest has full rights on its validated pages, so the RMP refuses no
    // access there (on `emulated` a nested table without the right would); the monitor
    // still classifies such a page by its own state.
    let mut v = vm();
    assert_eq!(v.m.pages().get(Gpa(0x5000)), Some(PageState::Validated));
    assert_eq!(v.guest_access(0, Gpa(0x5000), Access::FETCH), None);
    assert_eq!(v.m.classify_refused(Gpa(0x5000)), Refusal::NoPermission);
    check(&v).unwrap();
}

#[test]
fn a_record_for_an_access_the_machine_never_refused_is_caught() {
    // Issue 13 item 4: refused accesses are counted on the machine's side. A monitor
    // that logged a refusal the RMP never made (here: recorded directly, with no
    // faulting access behind it) breaks invariant 8 in the checker.
    let mut v = vm();
    let r = v.m.record_refused_access(0, Gpa(0x5000), Access::FETCH);
    assert_eq!(r.reason, Refusal::NoPermission);
    let e = check(&v).unwrap_err();
    assert!(e.starts_with("inv8"), "{e}");
}

#[test]
fn error_code_is_the_one_snp_gives_and_access_bits_are_normalised() {
    assert_eq!(rmp_fault_error_code(Access::READ), 0x8000_0001);
    assert_eq!(rmp_fault_error_code(Access::WRITE), 0x8000_0003);
    assert_eq!(rmp_fault_error_code(Access::FETCH), 0x8000_0011);
    let mut v = vm();
    // No access bit: a read; bits outside `Access` are dropped.
    let r = v
        .guest_access(0, VIGIL, Access::from_bits_retain(0x100))
        .expect("refused");
    assert_eq!(r.error_code, 0x8000_0001);
    let mut acc = None;
    replay(v.m.event_log().bytes(), |h, p| {
        if h.kind == kind::ACCESS_REFUSED {
            acc = Some(AccessRefusedPayload::read_from_bytes(p).unwrap().access);
        }
    })
    .unwrap();
    assert_eq!(acc, Some(access::READ));
    check(&v).unwrap();
}

#[test]
fn every_refused_access_is_one_record_between_calls() {
    let mut v = vm();
    let q = SvsmRegs::rax_for(0, call::QUERY_PROTOCOL);
    v.call(q, 1 << 32 | 1, 0, 0);
    for i in 0..5u64 {
        v.guest_access(0, Gpa(VIGIL.0 + i * 4096), Access::READ)
            .expect("refused");
    }
    v.call(q, 1 << 32 | 1, 0, 0);
    assert_eq!(v.m.accesses_refused(), 5);
    let mut kinds = Vec::new();
    let (n, _) = replay(v.m.event_log().bytes(), |h, _| kinds.push(h.kind)).unwrap();
    assert_eq!(n, 1 + 2 + 5);
    assert_eq!(
        kinds,
        [
            kind::LAUNCH,
            kind::QUERY_PROTOCOL,
            kind::ACCESS_REFUSED,
            kind::ACCESS_REFUSED,
            kind::ACCESS_REFUSED,
            kind::ACCESS_REFUSED,
            kind::ACCESS_REFUSED,
            kind::QUERY_PROTOCOL,
        ]
    );
    check(&v).unwrap();
}

#[test]
fn nothing_is_logged_after_termination() {
    let mut v = vm();
    v.m.vigil_fault();
    let n = v.m.event_log().count();
    let r = v.m.record_refused_access(0, VIGIL, Access::WRITE);
    assert!(!r.logged);
    assert_eq!(r.reason, Refusal::VigilMemory);
    assert_eq!(v.m.event_log().count(), n);
    assert_eq!(v.m.accesses_refused(), 0);
    check(&v).unwrap();
}
