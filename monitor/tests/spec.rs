//! Spec conformance (issue 11): one test per rule of AMD #58019 that Vigil once got
//! wrong or that a client (Linux 6.12, edk2's AmdSvsmLib, COCONUT-SVSM) relies on, each
//! named after the section it proves. Every test ends with the invariant checker.
//! docs/protocols.md's conformance matrix names these tests.
use monitor::addr::{Gpa, PageSize};
use monitor::pages::PageState;
use monitor::platform::RmpError;
use monitor::sim::invariants::check;
use monitor::sim::machine::MachOp;
use monitor::sim::vm::{SimConfig, BOOT_CAA, LIST_PAGE};
use monitor::sim::{HostMode, SimVm};
use monitor::CallOutcome;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, deposit, result::*};
use svsm_abi::event_log::{kind, replay};
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;

const FREE_2M: Gpa = Gpa(2 << 20);
const VIGIL: Gpa = Gpa(4 << 20);
const EFER_SVME: u64 = 1 << 12;
const SNP: u64 = SevFeatures::SNP_ACTIVE.bits();

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(3))
}

fn core(c: u32) -> u64 {
    SvsmRegs::rax_for(0, c)
}

fn e4k(gpa: u64, validate: bool) -> PvalidateEntry {
    PvalidateEntry::new(gpa >> 12, false, validate, false)
}

fn regs(rax: u64, rcx: u64) -> SvsmRegs {
    SvsmRegs {
        rax,
        rcx,
        ..Default::default()
    }
}

/// CREATE_VCPU of a good VMSA at `vmsa` for `apic` with calling area `caa`.
fn create(v: &mut SimVm, apic: u64, vmsa: u64, caa: u64) -> u64 {
    let gv = v.m.guest_vmpl().get();
    v.write_vmsa(Gpa(vmsa), gv, SNP, EFER_SVME).unwrap();
    v.call(core(call::CREATE_VCPU), vmsa, caa, apic).1.rax
}

fn read_u64(v: &SimVm, gpa: u64) -> u64 {
    let mut b = [0u8; 8];
    v.mach().peek(Gpa(gpa), &mut b);
    u64::from_le_bytes(b)
}

// ------------------------------------------------------------- section 5: calling area

#[test]
fn s5_results_are_written_before_call_pending_is_cleared() {
    let mut v = vm();
    let (o, r) = v.call(core(call::QUERY_PROTOCOL), 1 << 32 | 1, 0, 0);
    assert_eq!((o, r.rax), (CallOutcome::Handled, SUCCESS));
    let t = &v.mach().trace;
    let regs_at = t.iter().position(|op| *op == MachOp::SetRegs(0));
    let clear_at = t.iter().position(|op| *op == MachOp::Write(BOOT_CAA, 1));
    let run_at = t.iter().position(|op| *op == MachOp::RunGuest(0));
    assert!(regs_at.is_some() && clear_at.is_some(), "{t:?}");
    assert!(regs_at < clear_at && clear_at < run_at, "{t:?}");
    let mut p = [9u8];
    v.guest_read(BOOT_CAA, &mut p).unwrap();
    assert_eq!(p[0], 0);
    check(&v).unwrap();
}

#[test]
fn s5_call_pending_other_than_0_or_1_is_invalid_format() {
    let mut v = vm();
    for pending in [2u8, 0x80, 0xff] {
        let (o, r) = v.call_pending(0, regs(core(call::QUERY_PROTOCOL), 1 << 32 | 1), pending);
        assert_eq!(
            (o, r.rax),
            (CallOutcome::Handled, ERR_INVALID_FORMAT),
            "{pending}"
        );
        let mut p = [9u8];
        v.guest_read(BOOT_CAA, &mut p).unwrap();
        assert_eq!(p[0], 0, "cleared after the refusal");
    }
    // Refused before any handler ran: logged as CALL records.
    let mut kinds = Vec::new();
    replay(v.m.event_log().bytes(), |h, _| {
        kinds.push((h.kind, h.result))
    })
    .unwrap();
    assert_eq!(kinds.len(), 4);
    assert!(kinds[1..]
        .iter()
        .all(|k| *k == (kind::CALL, ERR_INVALID_FORMAT as u32)));
    // Zero is "no call": nothing is done or logged.
    let n = v.m.event_log().count();
    let (o, _) = v.call_pending(0, regs(core(call::QUERY_PROTOCOL), 0), 0);
    assert_eq!(o, CallOutcome::NotPending);
    assert_eq!(v.m.event_log().count(), n);
    check(&v).unwrap();
}

#[test]
fn s5_remap_ca_clears_the_new_areas_call_pending() {
    let mut v = vm();
    v.guest_write(Gpa(0x5000), &[1]).unwrap();
    assert_eq!(v.call(core(call::REMAP_CA), 0x5000, 0, 0).1.rax, SUCCESS);
    let (mut new, mut old) = ([9u8], [9u8]);
    v.guest_read(Gpa(0x5000), &mut new).unwrap();
    v.guest_read(BOOT_CAA, &mut old).unwrap();
    assert_eq!(
        (new[0], old[0]),
        (0, 0),
        "new area clear, and the calling one too"
    );
    check(&v).unwrap();
}

#[test]
fn s5_alignment_failures_are_invalid_parameter() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size2M, 1).unwrap();
    let cases: [(&str, u64, u64, u64, u64); 6] = [
        ("REMAP_CA", core(call::REMAP_CA), 0x5800, 0, 0),
        (
            "PVALIDATE list",
            core(call::PVALIDATE),
            LIST_PAGE.0 + 4,
            0,
            0,
        ),
        (
            "CREATE_VCPU VMSA",
            core(call::CREATE_VCPU),
            0x10010,
            0x11000,
            1,
        ),
        (
            "CREATE_VCPU CA",
            core(call::CREATE_VCPU),
            0x10000,
            0x11010,
            1,
        ),
        (
            "WITHDRAW_MEM list",
            core(call::WITHDRAW_MEM),
            LIST_PAGE.0 + 2,
            0,
            0,
        ),
        ("ATTEST request", SvsmRegs::rax_for(1, 0), 0x20004, 0, 0),
    ];
    for (what, rax, rcx, rdx, r8) in cases {
        assert_eq!(
            v.call(rax, rcx, rdx, r8).1.rax,
            ERR_INVALID_PARAMETER,
            "{what}"
        );
    }
    // A 2 MiB entry not 2 MiB aligned, in PVALIDATE and DEPOSIT_MEM lists.
    let e = PvalidateEntry::new((FREE_2M.0 >> 12) + 1, true, true, false);
    assert_eq!(v.pvalidate(&[e]).0, ERR_INVALID_PARAMETER);
    let d = PvalidateEntry(deposit::entry(0x5000, true));
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[d], 0).0,
        ERR_INVALID_PARAMETER
    );
    check(&v).unwrap();
}

#[test]
fn s5_pvalidate_list_in_the_calling_area_at_offset_8() {
    // Linux (`svsm_pval_pages`) and OVMF (`SvsmPvalidate`) build the list in the
    // calling area's buffer at offset 8; the list may not cover the area's head.
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    let at = Gpa(BOOT_CAA.0 + 8);
    assert_eq!(
        v.list_call(call::PVALIDATE, at, &[e4k(FREE_2M.0, true)], 0),
        (SUCCESS, 1)
    );
    assert_eq!(
        v.list_call(
            call::PVALIDATE,
            BOOT_CAA,
            &[e4k(FREE_2M.0 + 0x1000, true)],
            0
        )
        .0,
        ERR_INVALID_ADDRESS
    );
    check(&v).unwrap();
}

// ------------------------------------------------------------- 6.2 PVALIDATE

#[test]
fn s6_2_list_with_zero_entries_or_next_not_below_entries_is_invalid_parameter() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    for c in [call::PVALIDATE, call::DEPOSIT_MEM] {
        assert_eq!(v.list_call(c, LIST_PAGE, &[], 0).0, ERR_INVALID_PARAMETER);
        let one = if c == call::PVALIDATE {
            e4k(FREE_2M.0, true)
        } else {
            PvalidateEntry(deposit::entry(0x5000, false))
        };
        assert_eq!(
            v.list_call(c, LIST_PAGE, &[one], 1).0,
            ERR_INVALID_PARAMETER
        );
        assert_eq!(
            v.list_call(c, LIST_PAGE, &[one], 2).0,
            ERR_INVALID_PARAMETER
        );
    }
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    check(&v).unwrap();
}

#[test]
fn s6_2_validate_grants_the_requesting_vmpl_and_those_above() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, true)]).0, SUCCESS);
    let e = v.mach().rmp.get(FREE_2M.gfn()).unwrap();
    assert_eq!(e.perms, [0, 0x0f, 0x0f, 0], "VMPL1 and VMPL2, not VMPL3");
    // Zeroed before the first grant.
    let t = &v.mach().trace;
    let pv = t
        .iter()
        .position(|o| matches!(o, MachOp::Pvalidate(_, true)));
    let grant = t
        .iter()
        .position(|o| matches!(o, MachOp::Rmpadjust(_, _, 0x0f, false)));
    assert!(pv < grant, "{t:?}");
    check(&v).unwrap();
}

#[test]
fn s6_2_rescind_revokes_rights_with_rmpadjust_before_pvalidate() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 1), SUCCESS);
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, false)]).0, SUCCESS);
    let t = v.mach().trace.clone();
    let revokes: Vec<usize> = t
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, MachOp::Rmpadjust(g, _, 0, false) if *g == FREE_2M))
        .map(|(i, _)| i)
        .collect();
    let pv = t
        .iter()
        .position(|o| *o == MachOp::Pvalidate(FREE_2M, false))
        .expect("PVALIDATE ran");
    assert_eq!(revokes.len(), 3, "VMPL3, 2 and 1 lose the page: {t:?}");
    assert!(revokes.iter().all(|i| *i < pv), "{t:?}");
    check(&v).unwrap();
}

#[test]
fn s6_2_failing_rmpadjust_returns_0x8000_1000_plus_its_code() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    v.mach_mut().rmpadjust_fault = Some(RmpError::FailPermission);
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, true)]), (0x8000_1002, 0));
    // The page went back to unvalidated: the RMP and Vigil's table agree.
    assert!(!v.mach().rmp.get(FREE_2M.gfn()).unwrap().validated);
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    check(&v).unwrap();
    // Rescind: the page stays validated and the guest keeps it.
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, true)]).0, SUCCESS);
    v.mach_mut().rmpadjust_fault = Some(RmpError::FailSizeMismatch);
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, false)]).0, 0x8000_1006);
    v.guest_write(FREE_2M, &[1]).unwrap();
    check(&v).unwrap();
}

#[test]
fn s6_2_2m_entry_over_partly_validated_4k_pages_is_sizemismatch() {
    // Found by reading the rule against the code: a 2 MiB validate over a range where
    // only some 4 KiB pages are validated said SUCCESS under IGNORE_CF and left the rest
    // unvalidated. PVALIDATE itself would answer FAIL_SIZEMISMATCH there.
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 512).unwrap();
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0 + 0x3000, true)]).0, SUCCESS);
    for ignore_cf in [false, true] {
        let e = PvalidateEntry::new(FREE_2M.gfn(), true, true, ignore_cf);
        assert_eq!(
            v.pvalidate(&[e]).0,
            ERR_PVALIDATE_FAIL_SIZEMISMATCH,
            "ignore_cf {ignore_cf}"
        );
        let r = PvalidateEntry::new(FREE_2M.gfn(), true, false, ignore_cf);
        assert_eq!(v.pvalidate(&[r]).0, ERR_PVALIDATE_FAIL_SIZEMISMATCH);
    }
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    assert_eq!(
        v.m.pages().get(Gpa(FREE_2M.0 + 0x3000)),
        Some(PageState::Validated)
    );
    check(&v).unwrap();
}

// ------------------------------------------------------------- 6.3 CREATE_VCPU

#[test]
fn s6_3_create_vcpu_makes_the_vmsa_and_does_not_start_it() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    assert!(v.mach().rmp.get(0x10).unwrap().vmsa);
    assert!(v.mach().hv.aps.is_empty());
    assert_eq!(
        v.mach().exits.ap_create,
        0,
        "Vigil asked the host for nothing"
    );
    // The guest starts it, as Linux does after CREATE_VCPU.
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(v.mach().hv.aps, vec![(1, Gpa(0x10000))]);
    check(&v).unwrap();
}

#[test]
fn s6_3_new_vmsa_for_an_apic_id_before_deleting_the_old_one() {
    // Linux's CPU online (`wakeup_cpu_via_vmgexit`): a new VMSA for the APIC ID, with
    // the CPU's same calling area, then AP creation, then DELETE_VCPU of the old VMSA.
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(create(&mut v, 1, 0x12000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x12000)).unwrap();
    assert_eq!(
        v.call(core(call::DELETE_VCPU), 0x10000, 0, 0).1.rax,
        SUCCESS
    );
    assert_eq!(v.m.vcpus().by_apic(1).unwrap().vmsa, Some(Gpa(0x12000)));
    assert_eq!(v.m.pages().get(Gpa(0x10000)), Some(PageState::Validated));
    // vCPU 1 still calls through its calling area.
    let (o, r) = v.call_from(1, regs(core(call::QUERY_PROTOCOL), 1 << 32 | 1));
    assert_eq!((o, r.rax), (CallOutcome::Handled, SUCCESS));
    check(&v).unwrap();
}

#[test]
fn s6_3_sev_features_must_equal_the_boot_vcpus() {
    let mut v = vm();
    let gv = v.m.guest_vmpl().get();
    // Allowed by the policy, but not the boot vCPU's: refused.
    let more = SNP | SevFeatures::ALTERNATE_INJECTION.bits();
    v.write_vmsa(Gpa(0x10000), gv, more, EFER_SVME).unwrap();
    assert_eq!(
        v.call(core(call::CREATE_VCPU), 0x10000, 0x11000, 1).1.rax,
        ERR_INVALID_PARAMETER
    );
    v.guest_write(Gpa(0x10000), &[0]).unwrap();
    // A guest whose boot vCPU runs with alternate injection must use it everywhere.
    let mut cfg = SimConfig::small(3);
    cfg.boot_sev_features = more;
    let mut w = SimVm::new(cfg);
    w.write_vmsa(Gpa(0x10000), gv, more, EFER_SVME).unwrap();
    assert_eq!(
        w.call(core(call::CREATE_VCPU), 0x10000, 0x11000, 1).1.rax,
        SUCCESS
    );
    assert_eq!(create(&mut w, 2, 0x12000, 0x13000), ERR_INVALID_PARAMETER);
    check(&v).unwrap();
    check(&w).unwrap();
}

#[test]
fn s6_3_conflicts_with_calling_areas_or_vmsas_are_invalid_address() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    let gv = v.m.guest_vmpl().get();
    v.write_vmsa(Gpa(0x12000), gv, SNP, EFER_SVME).unwrap();
    for (vmsa, caa, what) in [
        (0x12000, 0x11000, "CA of APIC 1 for APIC 2"),
        (0x12000, BOOT_CAA.0, "CA of the boot vCPU"),
        (0x11000, 0x13000, "VMSA on a calling area"),
        (0x10000, 0x13000, "VMSA on a VMSA"),
        (0x12000, 0x10000, "CA on a VMSA"),
        (0x12000, 0x12000, "VMSA and CA the same page"),
    ] {
        assert_eq!(
            v.call(core(call::CREATE_VCPU), vmsa, caa, 2).1.rax,
            ERR_INVALID_ADDRESS,
            "{what}"
        );
    }
    check(&v).unwrap();
}

#[test]
fn s6_3_r8_is_a_32_bit_apic_id() {
    let mut v = vm();
    assert_eq!(
        create(&mut v, (0xdead_u64 << 32) | 7, 0x10000, 0x11000),
        SUCCESS
    );
    assert!(v.m.vcpus().by_apic(7).is_some());
    check(&v).unwrap();
}

// ------------------------------------------------------------- 6.4 DELETE_VCPU

#[test]
fn s6_4_delete_clears_efer_svme_and_the_vmsa_bit() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(
        v.call(core(call::DELETE_VCPU), 0x10000, 0, 0).1.rax,
        SUCCESS
    );
    let efer = read_u64(&v, 0x10000 + svsm_abi::vmsa::offsets::EFER as u64);
    assert_eq!(efer & EFER_SVME, 0, "EFER.SVME cleared");
    assert!(!v.mach().rmp.get(0x10).unwrap().vmsa);
    v.guest_write(Gpa(0x10000), &[0]).unwrap();
    check(&v).unwrap();
}

#[test]
fn s6_4_delete_of_a_running_vcpu_is_fail_inuse() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    // The host keeps the vCPU inside VMRUN: its VMSA is in use.
    v.mach_mut().hv.mode = HostMode::VcpuPinned;
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    v.mach_mut().hv.mode = HostMode::Honest;
    assert_eq!(
        v.call(core(call::DELETE_VCPU), 0x10000, 0, 0).1.rax,
        ERR_FAIL_INUSE
    );
    assert_eq!(ERR_FAIL_INUSE, 0x8000_1003);
    // Nothing was given back: still a VMSA, still a vCPU.
    assert_eq!(v.m.pages().get(Gpa(0x10000)), Some(PageState::Vmsa));
    assert!(v.m.vcpus().by_vmsa(Gpa(0x10000)).is_some());
    check(&v).unwrap();
}

#[test]
fn s6_4_deleting_ones_own_vcpu_does_not_return() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    let exits = v.mach().exits.run_vmpl;
    let (o, _) = v.call_from(1, regs(core(call::DELETE_VCPU), 0x10000));
    assert_eq!(o, CallOutcome::VcpuDeleted);
    // One exit into Vigil, none back: the vCPU is not resumed (Linux would retry BUSY
    // for ever, so Vigil never answers it).
    assert_eq!(v.mach().exits.run_vmpl, exits + 1);
    assert!(!v.mach().trace.contains(&MachOp::RunGuest(1)));
    assert!(v.m.vcpus().by_apic(1).is_none());
    assert_eq!(v.m.pages().get(Gpa(0x10000)), Some(PageState::Validated));
    check(&v).unwrap();
}

// ------------------------------------------------------------- 6.5 / 6.6 memory

#[test]
fn s6_5_deposit_entry_bits_11_2_are_reserved() {
    let mut v = vm();
    for bit in 2..12 {
        let e = PvalidateEntry(deposit::entry(0x5000, false) | (1 << bit));
        assert_eq!(
            v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[e], 0).0,
            ERR_INVALID_PARAMETER,
            "bit {bit}"
        );
    }
    assert_eq!(v.m.pages().get(Gpa(0x5000)), Some(PageState::Validated));
    check(&v).unwrap();
}

#[test]
fn s6_5_deposit_of_a_calling_area_is_invalid_address() {
    let mut v = vm();
    let e = PvalidateEntry(deposit::entry(BOOT_CAA.0, false));
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[e], 0).0,
        ERR_INVALID_ADDRESS
    );
    check(&v).unwrap();
}

fn withdrawn(v: &SimVm, at: u64) -> (u16, [u8; 6], Vec<u64>) {
    let mut h = [0u8; 8];
    v.mach().peek(Gpa(at), &mut h);
    let n = u16::from_le_bytes([h[0], h[1]]);
    let mut unused = [0u8; 6];
    unused.copy_from_slice(&h[2..]);
    let gpas = (0..n as u64).map(|i| read_u64(v, at + 8 + 8 * i)).collect();
    (n, unused, gpas)
}

#[test]
fn s6_6_withdraw_returns_a_count_and_plain_4k_gpas() {
    let mut v = vm();
    let pages: Vec<PvalidateEntry> = [0x5000, 0x6000]
        .iter()
        .map(|g| PvalidateEntry(deposit::entry(*g, false)))
        .collect();
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &pages, 0),
        (SUCCESS, 2)
    );
    // Whatever the guest left in the list is not read: it is output only.
    v.guest_write(LIST_PAGE, &[0xff; 32]).unwrap();
    assert_eq!(
        v.call(core(call::WITHDRAW_MEM), LIST_PAGE.0, 0, 0).1.rax,
        SUCCESS
    );
    // A 16-bit count, 6 unused bytes, plain GPAs (no size or action bits).
    assert_eq!(
        withdrawn(&v, LIST_PAGE.0),
        (2, [0; 6], vec![0x6000, 0x5000])
    );
    check(&v).unwrap();
}

#[test]
fn s6_5_deposit_of_a_2m_page_is_refused_vigil_choice() {
    // *Vigil*: WITHDRAW_MEM returns 4 KiB GPAs, at most 511 per list, so a 2 MiB page
    // could never come back; it is not taken.
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size2M, 1), SUCCESS);
    let e = PvalidateEntry(deposit::entry(FREE_2M.0, true));
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[e], 0),
        (ERR_INVALID_PARAMETER, 0)
    );
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Validated));
    check(&v).unwrap();
}

#[test]
fn s6_6_withdraw_with_no_room_for_one_gpa_is_invalid_parameter() {
    let mut v = vm();
    let at = LIST_PAGE.0 + 0xff8;
    assert_eq!(
        v.call(core(call::WITHDRAW_MEM), at, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    // With nothing deposited, a list with room answers a count of 0.
    assert_eq!(
        v.call(core(call::WITHDRAW_MEM), LIST_PAGE.0, 0, 0).1.rax,
        SUCCESS
    );
    assert_eq!(withdrawn(&v, LIST_PAGE.0).0, 0);
    check(&v).unwrap();
}

#[test]
fn s6_2_rescind_and_deposit_revoke_every_vmpl_but_0() {
    // 6.2 and 6.5: the page is taken from VMPL1, 2 and 3, not only the guest's.
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 2), SUCCESS);
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, false)]).0, SUCCESS);
    let revoked = |v: &SimVm, g: Gpa| -> Vec<u8> {
        let mut t: Vec<u8> = v
            .mach()
            .trace
            .iter()
            .filter_map(|o| match o {
                MachOp::Rmpadjust(x, vmpl, 0, false) if *x == g => Some(*vmpl),
                _ => None,
            })
            .collect();
        t.sort_unstable();
        t
    };
    assert_eq!(revoked(&v, FREE_2M), [1, 2, 3]);
    let d = PvalidateEntry(deposit::entry(FREE_2M.0 + 0x1000, false));
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[d], 0),
        (SUCCESS, 1)
    );
    assert_eq!(revoked(&v, Gpa(FREE_2M.0 + 0x1000)), [1, 2, 3]);
    check(&v).unwrap();
}

#[test]
fn s6_4_misaligned_or_unknown_vmsa_is_invalid_parameter() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    for g in [0x10008u64, 0x12000, BOOT_CAA.0] {
        assert_eq!(
            v.call(core(call::DELETE_VCPU), g, 0, 0).1.rax,
            ERR_INVALID_PARAMETER,
            "{g:#x}"
        );
    }
    check(&v).unwrap();
}

#[test]
fn s6_6_mem_available_is_kept_in_the_startup_vcpus_calling_area() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    // vCPU 1 deposits a page: the flag goes up in the boot vCPU's calling area.
    let d = PvalidateEntry(deposit::entry(0x5000, false));
    let mut list = vec![1u8, 0, 0, 0, 0, 0, 0, 0];
    list.extend_from_slice(&d.0.to_le_bytes());
    v.guest_write(Gpa(0x6000), &list).unwrap();
    let (_, r) = v.call_from(1, regs(core(call::DEPOSIT_MEM), 0x6000));
    assert_eq!(r.rax, SUCCESS);
    let flag = |v: &SimVm, caa: Gpa| {
        let mut b = [9u8];
        v.mach().peek(Gpa(caa.0 + 1), &mut b);
        b[0]
    };
    assert_eq!((flag(&v, BOOT_CAA), flag(&v, Gpa(0x11000))), (1, 0));
    // Withdrawn from vCPU 1 again: the flag goes down there too.
    let (_, r) = v.call_from(1, regs(core(call::WITHDRAW_MEM), 0x6000));
    assert_eq!(r.rax, SUCCESS);
    assert_eq!(flag(&v, BOOT_CAA), 0);
    check(&v).unwrap();
}

#[test]
fn s6_6_withdraw_capacity_is_the_room_left_in_the_page() {
    let mut v = vm();
    let pages: Vec<PvalidateEntry> = [0x5000, 0x6000, 0x7000]
        .iter()
        .map(|g| PvalidateEntry(deposit::entry(*g, false)))
        .collect();
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &pages, 0),
        (SUCCESS, 3)
    );
    // A list 24 bytes before the end of its page: an 8-byte head and room for 2 GPAs.
    let at = LIST_PAGE.0 + 4096 - 24;
    assert_eq!(v.call(core(call::WITHDRAW_MEM), at, 0, 0).1.rax, SUCCESS);
    assert_eq!(withdrawn(&v, at), (2, [0; 6], vec![0x7000, 0x6000]));
    // The rest, with the list at the start of a page.
    assert_eq!(
        v.call(core(call::WITHDRAW_MEM), LIST_PAGE.0, 0, 0).1.rax,
        SUCCESS
    );
    assert_eq!(withdrawn(&v, LIST_PAGE.0), (1, [0; 6], vec![0x5000]));
    for g in [0x5000u64, 0x6000, 0x7000] {
        v.guest_write(Gpa(g), &[1]).unwrap();
    }
    check(&v).unwrap();
}

// ------------------------------------------------------------- 6.8 (more in conformance.rs)

#[test]
fn s6_8_configure_vtom_query_changes_nothing() {
    let mut v = vm();
    let before = v.state_digest();
    let (_, r) = v.call(core(call::CONFIGURE_VTOM), 1, 0, 0);
    assert_eq!((r.rax, r.rcx), (SUCCESS, 0));
    assert_eq!(v.state_digest(), before);
    check(&v).unwrap();
}

// ------------------------------------------------------------- GHCB

#[test]
fn ghcb_ap_creation_carries_the_vmsa_vmpl_in_exitinfo1_19_16() {
    let mut v = vm();
    assert_eq!(create(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(v.mach().hv.ap_vmpls, vec![v.m.guest_vmpl().get()]);
    // The host's "hardware" runs only a VMSA page.
    assert!(v.guest_ap_create(2, Gpa(0x11000)).is_err());
    let _ = VIGIL;
    check(&v).unwrap();
}
