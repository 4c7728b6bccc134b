//! One test per hostile-host mode of the simulated hypervisor, plus the remap, racing
//! and Vigil-memory attacks. Each checks that the attack is refused or ends in a clean
//! termination with VMPCK0 wiped, and that every invariant still holds.
use monitor::addr::{Gpa, PageSize};
use monitor::platform::{HostError, PscOp, PscRequest, TermReason};
use monitor::sim::invariants::check;
use monitor::sim::machine::Race;
use monitor::sim::vm::SimConfig;
use monitor::sim::{HostMode, SimVm};
use monitor::CallOutcome;
use svsm_abi::attest_protocol as ap;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result::*};
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::IntoBytes;

const FREE: Gpa = Gpa(2 << 20);
const VIGIL: Gpa = Gpa(4 << 20);

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(7))
}

fn private(gpa: Gpa, n: usize) -> Vec<PscRequest> {
    (0..n as u64)
        .map(|i| PscRequest {
            gpa: Gpa(gpa.0 + i * 4096),
            size: PageSize::Size4K,
            op: PscOp::Private,
        })
        .collect()
}

fn attest(v: &mut SimVm) -> (CallOutcome, u64) {
    v.guest_write(Gpa(0x21000), b"nonce").unwrap();
    let r = ap::AttestServicesRequest {
        report_gpa: 0x23000,
        report_size: 4096,
        nonce_gpa: 0x21000,
        nonce_size: 5,
        manifest_gpa: 0x22000,
        manifest_size: 4096,
        ..Default::default()
    };
    v.guest_write(Gpa(0x20000), r.as_bytes()).unwrap();
    let (o, r) = v.call(SvsmRegs::rax_for(1, 0), 0x20000, 0, 0);
    (o, r.rax)
}

fn create_vcpu(v: &mut SimVm) -> (CallOutcome, u64) {
    let f = SevFeatures::SNP_ACTIVE.bits();
    v.write_vmsa(Gpa(0x10000), 2, f, 1 << 12).unwrap();
    let (o, r) = v.call(SvsmRegs::rax_for(0, call::CREATE_VCPU), 0x10000, 0x11000, 1);
    (o, r.rax)
}

fn assert_terminated(v: &SimVm, reason: TermReason) {
    assert_eq!(v.m.terminated(), Some(reason));
    assert_eq!(v.mach().terminated, Some(reason));
    assert!(v.m.vmpck0_wiped(), "VMPCK0 must be wiped");
}

#[test]
fn honest_host_baseline() {
    let mut v = vm();
    v.guest_psc(&private(FREE, 4)).unwrap();
    assert_eq!(v.mach().exits.psc, 1);
    assert_eq!(attest(&mut v).1, SUCCESS);
    assert_eq!(create_vcpu(&mut v).1, SUCCESS);
    check(&v).unwrap();
}

#[test]
fn refuse_all_psc_is_reported_as_refused() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::RefuseAll;
    assert!(matches!(
        v.guest_psc(&private(FREE, 1)),
        Err(HostError::Refused(_))
    ));
    check(&v).unwrap();
}

#[test]
fn refuse_all_during_attest_terminates_cleanly() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::RefuseAll;
    assert_eq!(
        attest(&mut v).0,
        CallOutcome::Terminated(TermReason::HostRefused)
    );
    assert_terminated(&v, TermReason::HostRefused);
    // No report reached the guest.
    let mut b = [0u8; 4];
    v.guest_read(Gpa(0x23000), &mut b).unwrap();
    assert_eq!(b, [0; 4]);
    let (o, _) = v.call(SvsmRegs::rax_for(0, call::QUERY_PROTOCOL), 0, 0, 0);
    assert_eq!(o, CallOutcome::Terminated(TermReason::HostRefused));
    check(&v).unwrap();
}

#[test]
fn partial_psc_is_resumed_with_more_exits() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::PscPartial(10);
    v.guest_psc(&private(FREE, 100)).unwrap();
    assert_eq!(v.mach().exits.psc, 10);
    assert!(v.mach().rmp.get(FREE.gfn() + 99).unwrap().assigned);
    check(&v).unwrap();
}

#[test]
fn psc_cur_entry_moving_backwards_is_inconsistent() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::PscBackwards;
    assert!(matches!(
        v.guest_psc(&private(FREE, 3)),
        Err(HostError::Inconsistent(_))
    ));
    check(&v).unwrap();
}

#[test]
fn psc_entry_rewritten_is_inconsistent() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::PscAlterEntry;
    assert!(matches!(
        v.guest_psc(&private(FREE, 3)),
        Err(HostError::Inconsistent(_))
    ));
    check(&v).unwrap();
}

#[test]
fn psc_without_progress_is_refused_not_looped() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::PscStall;
    assert!(matches!(
        v.guest_psc(&private(FREE, 3)),
        Err(HostError::Refused(_))
    ));
    assert_eq!(v.mach().exits.psc, 1);
    check(&v).unwrap();
}

#[test]
fn psc_lie_is_caught_by_pvalidate() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::PscLie;
    v.guest_psc(&private(FREE, 1)).unwrap();
    // The page is still shared: PVALIDATE fails with FAIL_INPUT, nothing is granted.
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE.gfn(), false, true, false)])
            .0,
        ERR_PVALIDATE_FAIL_INPUT
    );
    assert!(v.guest_read(FREE, &mut [0]).is_err());
    check(&v).unwrap();
}

#[test]
fn garbage_ghcb_answers_are_refused() {
    for seed in 0..32 {
        let mut v = SimVm::new(SimConfig::small(seed));
        v.mach_mut().hv.mode = HostMode::Garbage;
        assert!(v.guest_psc(&private(FREE, 2)).is_err(), "seed {seed}");
        let (o, _) = attest(&mut v);
        assert!(
            matches!(o, CallOutcome::Terminated(_)),
            "seed {seed}: {o:?}"
        );
        assert!(v.m.vmpck0_wiped(), "seed {seed}");
        check(&v).unwrap();
    }
}

#[test]
fn ap_creation_refused_leaves_vigil_untouched() {
    // CREATE_VCPU never asks the host (6.3); the guest's own AP creation does, and a
    // host that refuses it only keeps the guest's vCPU from starting.
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::ApRefuse;
    assert_eq!(create_vcpu(&mut v), (CallOutcome::Handled, SUCCESS));
    assert!(matches!(
        v.guest_ap_create(1, Gpa(0x10000)),
        Err(HostError::Refused(_))
    ));
    assert!(v.mach().hv.aps.is_empty());
    assert_eq!(v.m.terminated(), None);
    check(&v).unwrap();
}

#[test]
fn corrupted_guest_request_response_terminates_and_wipes_vmpck0() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::GuestRequestCorrupt;
    assert_eq!(
        attest(&mut v).0,
        CallOutcome::Terminated(TermReason::GuestRequestFailed)
    );
    assert_terminated(&v, TermReason::GuestRequestFailed);
    check(&v).unwrap();
}

#[test]
fn replayed_guest_request_response_terminates() {
    let mut v = vm();
    assert_eq!(attest(&mut v).1, SUCCESS);
    v.mach_mut().hv.mode = HostMode::GuestRequestReplay;
    assert_eq!(
        attest(&mut v).0,
        CallOutcome::Terminated(TermReason::GuestRequestFailed)
    );
    assert_terminated(&v, TermReason::GuestRequestFailed);
    check(&v).unwrap();
}

#[test]
fn forged_guest_request_response_terminates() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::GuestRequestForge;
    assert_eq!(
        attest(&mut v).0,
        CallOutcome::Terminated(TermReason::GuestRequestFailed)
    );
    assert_terminated(&v, TermReason::GuestRequestFailed);
    check(&v).unwrap();
}

#[test]
fn remap_between_calls_cannot_get_a_page_validated_twice() {
    let mut v = vm();
    assert_eq!(v.accept(FREE, PageSize::Size4K, 1), SUCCESS);
    v.guest_write(FREE, b"secret").unwrap();
    // The host swaps the page behind the guest's back.
    v.mach_mut().host_remap(FREE, 0x66);
    assert!(
        v.guest_read(FREE, &mut [0]).is_err(),
        "a remapped page is not validated"
    );
    // The guest (or the host's accomplice) asks for validation again: refused.
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE.gfn(), false, true, false)])
            .0,
        ERR_PVALIDATE_FAIL_UNCHANGED
    );
    assert!(v.guest_read(FREE, &mut [0]).is_err());
    check(&v).unwrap();
    // Rescinding and validating again gives a zeroed page, never the host's bytes.
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE.gfn(), false, false, false)])
            .0,
        SUCCESS
    );
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE.gfn(), false, true, false)])
            .0,
        SUCCESS
    );
    let mut b = [0xffu8; 8];
    v.guest_read(FREE, &mut b).unwrap();
    assert_eq!(b, [0; 8]);
    check(&v).unwrap();
}

#[test]
fn host_taking_vigil_memory_terminates() {
    let mut v = vm();
    v.mach_mut().host_remap(Gpa(VIGIL.0 + 0x3000), 0);
    let (o, _) = v.call(SvsmRegs::rax_for(0, call::QUERY_PROTOCOL), 0, 0, 0);
    assert_eq!(o, CallOutcome::Terminated(TermReason::VigilMemoryLost));
    assert_terminated(&v, TermReason::VigilMemoryLost);
    check(&v).unwrap();
}

#[test]
fn racing_pvalidate_list_rewrite_is_not_seen() {
    let mut v = vm();
    v.make_private(FREE, PageSize::Size4K, 1).unwrap();
    // After Vigil's first read of the list, another vCPU points entry 0 at Vigil.
    let evil = PvalidateEntry::new(VIGIL.gfn(), false, true, false);
    v.mach_mut().race = Some(Race {
        vmpl: 2,
        at: Gpa(0x2008),
        bytes: evil.0.to_le_bytes().to_vec(),
    });
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE.gfn(), false, true, false)])
            .0,
        SUCCESS
    );
    v.mach_mut().race = None;
    // The race did happen (the list now names Vigil), but what Vigil used was its copy.
    let mut b = [0u8; 8];
    v.guest_read(Gpa(0x2008), &mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), evil.0);
    assert!(v.guest_read(FREE, &mut [0]).is_ok());
    check(&v).unwrap();
}

#[test]
fn racing_vmsa_rewrite_cannot_reach_the_checked_vmsa() {
    let mut v = vm();
    // After Vigil reads the VMSA, another vCPU tries to make it a VMPL0 VMSA.
    let f = SevFeatures::SNP_ACTIVE.bits();
    v.write_vmsa(Gpa(0x10000), 2, f, 1 << 12).unwrap();
    v.mach_mut().race = Some(Race {
        vmpl: 2,
        at: Gpa(0x10000 + 0xca),
        bytes: vec![0],
    });
    let (_, r) = v.call(SvsmRegs::rax_for(0, call::CREATE_VCPU), 0x10000, 0x11000, 1);
    v.mach_mut().race = None;
    assert_eq!(r.rax, SUCCESS);
    let mut vmpl = [9u8];
    v.mach().peek(Gpa(0x10000 + 0xca), &mut vmpl);
    assert_eq!(
        vmpl[0], 2,
        "the racing write must have been refused by the RMP"
    );
    check(&v).unwrap();
}

#[test]
fn a_guest_cannot_write_its_calling_area_into_vigil() {
    let mut v = vm();
    // REMAP_CA onto Vigil is refused, so call_pending can never be aimed at Vigil.
    assert_eq!(
        v.call(SvsmRegs::rax_for(0, call::REMAP_CA), VIGIL.0, 0, 0)
            .1
            .rax,
        ERR_INVALID_ADDRESS
    );
    assert!(v.guest_write(VIGIL, &[1]).is_err());
    check(&v).unwrap();
}

#[test]
fn host_refusing_to_resume_the_guest_terminates() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::RefuseAll;
    // The call itself is handled; switching back to the guest is refused.
    let (o, _) = v.call(
        SvsmRegs::rax_for(0, call::QUERY_PROTOCOL),
        1 << 32 | 1,
        0,
        0,
    );
    assert_eq!(o, CallOutcome::Terminated(TermReason::HostRefused));
    assert_terminated(&v, TermReason::HostRefused);
    check(&v).unwrap();
}

#[test]
fn results_are_written_back_into_the_guest_registers() {
    let mut v = vm();
    let (o, r) = v.call(
        SvsmRegs::rax_for(0, call::QUERY_PROTOCOL),
        1 << 32 | 1,
        0,
        0,
    );
    assert_eq!(o, CallOutcome::Handled);
    let saved = v.mach().regs[&0];
    assert_eq!((saved.rax, saved.rcx), (SUCCESS, 1 << 32 | 1));
    assert_eq!(r, saved);
    check(&v).unwrap();
}

#[test]
fn boot_report_shares_the_channel_with_the_guests_requests() {
    let mut v = vm();
    let rd = [0x42u8; 64];
    let r = v.m.boot_report(&rd).expect("honest host: boot report");
    assert_eq!(&r[0x50..0x90], &rd[..], "REPORT_DATA echoed");
    assert_eq!(&r[0x30..0x34], &[0u8; 4], "VMPL 0");
    // The guest's request after it continues the sequence (a fresh channel would start
    // at 1 again and the security processor would refuse it).
    assert_eq!(attest(&mut v).1, SUCCESS);
    assert_eq!(v.m.terminated(), None);
    check(&v).unwrap();
}

#[test]
fn corrupted_boot_report_answer_terminates_and_wipes_vmpck0() {
    let mut v = vm();
    v.mach_mut().hv.mode = HostMode::GuestRequestCorrupt;
    assert_eq!(
        v.m.boot_report(&[1; 64]).map(|_| ()),
        Err(TermReason::GuestRequestFailed)
    );
    assert_terminated(&v, TermReason::GuestRequestFailed);
    assert_eq!(
        v.m.boot_report(&[1; 64]).map(|_| ()),
        Err(TermReason::GuestRequestFailed),
        "refused after termination"
    );
    check(&v).unwrap();
}

#[test]
fn the_boot_reports_answer_replayed_to_the_guest_terminates() {
    let mut v = vm();
    v.m.boot_report(&[3; 64]).expect("honest host: boot report");
    v.mach_mut().hv.mode = HostMode::GuestRequestReplay;
    assert_eq!(
        attest(&mut v).0,
        CallOutcome::Terminated(TermReason::GuestRequestFailed)
    );
    assert_terminated(&v, TermReason::GuestRequestFailed);
    check(&v).unwrap();
}
