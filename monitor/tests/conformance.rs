//! Conformance suite: one test per call of the SVSM core and attestation protocols and
//! per error code each can return (SVSM spec #58019), run on the simulated machine.
//! After every test the invariant checker runs as well.
use monitor::addr::{Gpa, PageSize};
use monitor::pages::PageState;
use monitor::sim::invariants::check;
use monitor::sim::vm::{SimConfig, BOOT_CAA, LIST_PAGE};
use monitor::sim::SimVm;
use monitor::CallOutcome;
use svsm_abi::attest_protocol as ap;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result::*};
use svsm_abi::event_log::{kind, RecordHeader};
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::{FromBytes, IntoBytes};

const FREE_2M: Gpa = Gpa(2 << 20); // [2, 4) MiB: free, 2 MiB aligned
const VIGIL: Gpa = Gpa(4 << 20);
const EFER_SVME: u64 = 1 << 12;

fn vm() -> SimVm {
    SimVm::new(SimConfig::small(1))
}

fn core(c: u32) -> u64 {
    SvsmRegs::rax_for(0, c)
}

fn e4k(gpa: u64, validate: bool) -> PvalidateEntry {
    PvalidateEntry::new(gpa >> 12, false, validate, false)
}

/// A DEPOSIT_MEM entry (6.5): 4 KiB page, bits 11:2 zero.
fn dep(gpa: u64) -> PvalidateEntry {
    PvalidateEntry(svsm_abi::core_protocol::deposit::entry(gpa, false))
}

/// WITHDRAW_MEM with the list at `at`: (RAX, the GPAs returned).
fn withdraw(v: &mut SimVm, at: Gpa) -> (u64, Vec<u64>) {
    let rax = v.call(core(call::WITHDRAW_MEM), at.0, 0, 0).1.rax;
    let mut n = [0u8; 2];
    v.guest_read(at, &mut n).unwrap();
    let n = u16::from_le_bytes(n) as u64;
    let out = (0..n)
        .map(|i| {
            let mut b = [0u8; 8];
            v.guest_read(Gpa(at.0 + 8 + 8 * i), &mut b).unwrap();
            u64::from_le_bytes(b)
        })
        .collect();
    (rax, out)
}

fn last_record(v: &SimVm) -> RecordHeader {
    let mut last = None;
    svsm_abi::event_log::replay(v.m.event_log().bytes(), |h, _| last = Some(*h)).unwrap();
    last.unwrap()
}

fn done(v: &SimVm) {
    check(v).unwrap();
}

// ---------------------------------------------------------------- dispatch

#[test]
fn unknown_protocol_is_unsupported_protocol_and_logged() {
    let mut v = vm();
    let (o, r) = v.call(SvsmRegs::rax_for(9, 0), 0, 0, 0);
    assert_eq!(o, CallOutcome::Handled);
    assert_eq!(r.rax, ERR_UNSUPPORTED_PROTOCOL);
    assert_eq!(last_record(&v).kind, kind::CALL);
    done(&v);
}

#[test]
fn unknown_core_call_is_unsupported_call() {
    let mut v = vm();
    assert_eq!(v.call(core(8), 0, 0, 0).1.rax, ERR_UNSUPPORTED_CALL);
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 2), 0, 0, 0).1.rax,
        ERR_UNSUPPORTED_CALL
    );
    done(&v);
}

#[test]
fn no_call_pending_does_nothing() {
    let mut v = vm();
    let before = v.m.event_log().count();
    let mut regs = SvsmRegs {
        rax: core(call::QUERY_PROTOCOL),
        ..Default::default()
    };
    assert_eq!(v.m.handle_request(0, &mut regs), CallOutcome::NotPending);
    assert_eq!(v.m.event_log().count(), before);
    // A call clears call_pending.
    v.call(core(call::QUERY_PROTOCOL), 0, 0, 0);
    let mut b = [9u8];
    v.guest_read(BOOT_CAA, &mut b).unwrap();
    assert_eq!(b[0], 0);
    done(&v);
}

// ---------------------------------------------------------------- QUERY_PROTOCOL

#[test]
fn query_protocol_answers_exactly_what_is_implemented() {
    let mut v = vm();
    for (p, ver, want) in [
        (0u64, 1u64, (1u64 << 32) | 1),
        (1, 1, (1 << 32) | 1),
        (0, 2, 0),
        (0, 0, 0),
        (2, 1, 0),
        // Vigil's protection protocol (docs/protocols.md), version 1 only.
        (0x8000_0000, 1, (1 << 32) | 1),
        (0x8000_0000, 2, 0),
        (0x8000_0001, 1, 0),
    ] {
        let (_, r) = v.call(core(call::QUERY_PROTOCOL), (p << 32) | ver, 0, 0);
        assert_eq!(r.rax, SUCCESS);
        assert_eq!(r.rcx, want, "protocol {p} version {ver}");
    }
    assert_eq!(last_record(&v).kind, kind::QUERY_PROTOCOL);
    done(&v);
}

// ---------------------------------------------------------------- CONFIGURE_VTOM

#[test]
fn s6_8_configure_vtom_query_bit0_set() {
    // RCX bit 0 set is the query; under the default policy vTOM cannot be configured
    // and the answer is 0 (COCONUT's `core_configure_vtom` answers the same).
    let mut v = vm();
    let (_, r) = v.call(core(call::CONFIGURE_VTOM), 1, 0, 0);
    assert_eq!((r.rax, r.rcx), (SUCCESS, 0));
    done(&v);
}

#[test]
fn s6_8_configure_vtom_query_bits_63_1_must_be_zero() {
    let mut v = vm();
    for rcx in [3, 1 | (1 << 12), 1 | (1 << 63)] {
        assert_eq!(
            v.call(core(call::CONFIGURE_VTOM), rcx, 0, 0).1.rax,
            ERR_INVALID_PARAMETER,
            "{rcx:#x}"
        );
    }
    done(&v);
}

#[test]
fn s6_8_configure_vtom_bit0_clear_configures_refused_by_policy() {
    // Bit 0 clear is the configure request: enable (bit 1) with a vTOM in 63:12.
    let mut v = vm();
    for rcx in [(2 << 20) | 2, 0] {
        assert_eq!(
            v.call(core(call::CONFIGURE_VTOM), rcx, 0, 0).1.rax,
            ERR_INVALID_REQUEST,
            "{rcx:#x}"
        );
    }
    done(&v);
}

#[test]
fn s6_8_configure_vtom_mbz_bits_11_5_are_invalid_parameter() {
    let mut v = vm();
    for bit in 5..12 {
        assert_eq!(
            v.call(core(call::CONFIGURE_VTOM), (2 << 20) | 2 | (1 << bit), 0, 0)
                .1
                .rax,
            ERR_INVALID_PARAMETER,
            "bit {bit}"
        );
    }
    done(&v);
}

#[test]
fn s6_8_configure_vtom_when_allowed() {
    let mut cfg = SimConfig::small(1);
    cfg.policy.allow_vtom = true;
    let mut v = SimVm::new(cfg);
    let cv = |v: &mut SimVm, rcx: u64| v.call(core(call::CONFIGURE_VTOM), rcx, 0, 0).1;
    // Query: RCX bit 1 = configurable, bits 19:12 = log2 of the alignment (2 MiB);
    // RDX = lowest, R8 = highest vTOM.
    let r = cv(&mut v, 1);
    assert_eq!(
        (r.rax, r.rcx, r.rdx, r.r8),
        (SUCCESS, 2 | (21 << 12), 2 << 20, 8 << 20)
    );
    // Not 2 MiB aligned (section 5); beyond RAM (a vTOM the environment cannot
    // support); a register load (Vigil does not support it); a value with bit 1 clear.
    for (rcx, want) in [
        (0x1000 | 2, ERR_INVALID_PARAMETER),
        ((16 << 20) | 2, ERR_INVALID_ADDRESS),
        ((2 << 20) | 2 | 4, ERR_INVALID_REQUEST),
        (2 << 20, ERR_INVALID_PARAMETER),
    ] {
        assert_eq!(cv(&mut v, rcx).rax, want, "{rcx:#x}");
    }
    assert_eq!(cv(&mut v, (2 << 20) | 2).rax, SUCCESS);
    // Bit 1 clear with bits 63:12 zero disables.
    assert_eq!(cv(&mut v, 0).rax, SUCCESS);
    done(&v);
}

// ---------------------------------------------------------------- REMAP_CA

#[test]
fn remap_ca_moves_the_calling_area() {
    let mut v = vm();
    assert_eq!(v.call(core(call::REMAP_CA), 0x5000, 0, 0).1.rax, SUCCESS);
    assert_eq!(v.m.vcpus().by_apic(0).unwrap().caa, Gpa(0x5000));
    // The next call is taken from the new calling area.
    assert_eq!(
        v.call(core(call::QUERY_PROTOCOL), 1 << 32 | 1, 0, 0).1.rax,
        SUCCESS
    );
    assert_eq!(last_record(&v).kind, kind::QUERY_PROTOCOL);
    done(&v);
}

#[test]
fn remap_ca_invalid_address_cases() {
    let mut v = vm();
    for gpa in [VIGIL.0, FREE_2M.0, 1 << 40] {
        assert_eq!(
            v.call(core(call::REMAP_CA), gpa, 0, 0).1.rax,
            ERR_INVALID_ADDRESS,
            "{gpa:#x}"
        );
    }
    // Section 5: misaligned is INVALID_PARAMETER.
    assert_eq!(
        v.call(core(call::REMAP_CA), 0x5008, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    assert_eq!(v.m.vcpus().by_apic(0).unwrap().caa, BOOT_CAA);
    done(&v);
}

#[test]
fn remap_ca_onto_another_vcpus_calling_area_is_invalid_address() {
    let mut v = vm();
    create_ap(&mut v, 1, 0x10000, 0x11000);
    assert_eq!(
        v.call(core(call::REMAP_CA), 0x11000, 0, 0).1.rax,
        ERR_INVALID_ADDRESS
    );
    done(&v);
}

// ---------------------------------------------------------------- PVALIDATE

#[test]
fn pvalidate_4k_validates_zeroes_and_grants() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 2).unwrap();
    let (rax, next) = v.pvalidate(&[e4k(FREE_2M.0, true), e4k(FREE_2M.0 + 0x1000, true)]);
    assert_eq!((rax, next), (SUCCESS, 2));
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Validated));
    v.guest_write(FREE_2M, b"hello").unwrap();
    let rec = last_record(&v);
    assert_eq!((rec.kind, rec.result), (kind::PVALIDATE, 0));
    done(&v);
}

#[test]
fn pvalidate_zeroes_what_the_host_left_in_the_page() {
    let mut v = vm();
    // The host writes into the page while it is shared, then assigns it.
    assert!(v.mach_mut().host_write(FREE_2M, &[0xee; 4096]));
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, true)]).0, SUCCESS);
    let mut b = [0xffu8; 4096];
    v.guest_read(FREE_2M, &mut b).unwrap();
    assert!(b.iter().all(|x| *x == 0));
    done(&v);
}

#[test]
fn pvalidate_2m() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size2M, 1), SUCCESS);
    assert_eq!(
        v.m.pages().get(Gpa(FREE_2M.0 + 0x1f_f000)),
        Some(PageState::Validated)
    );
    // Rescinding as 4 KiB pages is a size mismatch; as 2 MiB it works.
    assert_eq!(
        v.pvalidate(&[e4k(FREE_2M.0, false)]).0,
        ERR_PVALIDATE_FAIL_SIZEMISMATCH
    );
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE_2M.0 >> 12, true, false, false)])
            .0,
        SUCCESS
    );
    done(&v);
}

#[test]
fn pvalidate_2m_on_4k_rmp_entries_is_size_mismatch() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 512).unwrap();
    let (rax, next) = v.pvalidate(&[PvalidateEntry::new(FREE_2M.0 >> 12, true, true, false)]);
    assert_eq!((rax, next), (ERR_PVALIDATE_FAIL_SIZEMISMATCH, 0));
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    done(&v);
}

#[test]
fn pvalidate_of_a_shared_page_is_fail_input() {
    let mut v = vm();
    assert_eq!(
        v.pvalidate(&[e4k(FREE_2M.0, true)]).0,
        ERR_PVALIDATE_FAIL_INPUT
    );
    done(&v);
}

#[test]
fn pvalidate_twice_is_fail_unchanged_unless_ignore_cf() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 1), SUCCESS);
    v.guest_write(FREE_2M, b"data").unwrap();
    assert_eq!(
        v.pvalidate(&[e4k(FREE_2M.0, true)]).0,
        ERR_PVALIDATE_FAIL_UNCHANGED
    );
    let ign = PvalidateEntry::new(FREE_2M.0 >> 12, false, true, true);
    assert_eq!(v.pvalidate(&[ign]).0, SUCCESS);
    // Neither call validated (or zeroed) the page again.
    let mut b = [0u8; 4];
    v.guest_read(FREE_2M, &mut b).unwrap();
    assert_eq!(&b, b"data");
    assert_eq!(v.mach().rmp.get(FREE_2M.gfn()).unwrap().validations, 1);
    done(&v);
}

#[test]
fn rescind_of_unvalidated_page_is_fail_unchanged() {
    let mut v = vm();
    assert_eq!(
        v.pvalidate(&[e4k(FREE_2M.0, false)]).0,
        ERR_PVALIDATE_FAIL_UNCHANGED
    );
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(FREE_2M.0 >> 12, false, false, true)])
            .0,
        SUCCESS
    );
    done(&v);
}

#[test]
fn rescind_removes_access() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 1), SUCCESS);
    assert_eq!(v.pvalidate(&[e4k(FREE_2M.0, false)]).0, SUCCESS);
    assert!(v.guest_read(FREE_2M, &mut [0u8; 1]).is_err());
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Unvalidated));
    done(&v);
}

#[test]
fn pvalidate_of_vigil_memory_is_invalid_address() {
    let mut v = vm();
    // Even if the host is asked to assign it, and whether 4 KiB or a 2 MiB page.
    assert_eq!(v.pvalidate(&[e4k(VIGIL.0, true)]).0, ERR_INVALID_ADDRESS);
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(VIGIL.0 >> 12, true, true, false)])
            .0,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(v.pvalidate(&[e4k(VIGIL.0, false)]).0, ERR_INVALID_ADDRESS);
    done(&v);
}

#[test]
fn pvalidate_outside_ram_is_invalid_address_misaligned_is_invalid_parameter() {
    let mut v = vm();
    assert_eq!(v.pvalidate(&[e4k(8 << 20, true)]).0, ERR_INVALID_ADDRESS);
    assert_eq!(
        v.pvalidate(&[PvalidateEntry::new(
            (FREE_2M.0 >> 12) + 1,
            true,
            true,
            false
        )])
        .0,
        ERR_INVALID_PARAMETER
    );
    done(&v);
}

#[test]
fn pvalidate_reserved_bits_or_bad_size_is_invalid_parameter() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    assert_eq!(
        v.pvalidate(&[PvalidateEntry(FREE_2M.0 | 4 | 0x10)]).0,
        ERR_INVALID_PARAMETER
    );
    assert_eq!(
        v.pvalidate(&[PvalidateEntry(FREE_2M.0 | 4 | 2)]).0,
        ERR_INVALID_PARAMETER
    );
    done(&v);
}

#[test]
fn pvalidate_list_header_checks() {
    let mut v = vm();
    // next beyond entries.
    assert_eq!(
        v.list_call(call::PVALIDATE, LIST_PAGE, &[e4k(FREE_2M.0, true)], 2)
            .0,
        ERR_INVALID_PARAMETER
    );
    // A list that would run past its page.
    let at = Gpa(LIST_PAGE.0 + 4096 - 16);
    assert_eq!(
        v.list_call(call::PVALIDATE, at, &[e4k(FREE_2M.0, true); 2], 0)
            .0,
        ERR_INVALID_PARAMETER
    );
    // In Vigil's memory, in unvalidated memory; misaligned (section 5: parameter).
    for gpa in [VIGIL.0, FREE_2M.0] {
        let (_, r) = v.call(core(call::PVALIDATE), gpa, 0, 0);
        assert_eq!(r.rax, ERR_INVALID_ADDRESS, "{gpa:#x}");
    }
    let (_, r) = v.call(core(call::PVALIDATE), LIST_PAGE.0 + 4, 0, 0);
    assert_eq!(r.rax, ERR_INVALID_PARAMETER);
    done(&v);
}

#[test]
fn pvalidate_restarts_from_next_after_a_failure() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 3).unwrap();
    let list = [
        e4k(FREE_2M.0, true),
        e4k(VIGIL.0, true),
        e4k(FREE_2M.0 + 0x2000, true),
    ];
    let (rax, next) = v.pvalidate(&list);
    assert_eq!((rax, next), (ERR_INVALID_ADDRESS, 1));
    // The guest fixes entry 1 and calls again from next = 1.
    let fixed = [list[0], e4k(FREE_2M.0 + 0x1000, true), list[2]];
    let (rax, next) = v.list_call(call::PVALIDATE, LIST_PAGE, &fixed, 1);
    assert_eq!((rax, next), (SUCCESS, 3));
    assert_eq!(v.mach().rmp.get(FREE_2M.gfn()).unwrap().validations, 1);
    done(&v);
}

#[test]
fn pvalidate_batch_limit_returns_incomplete_and_resumes() {
    let mut cfg = SimConfig::small(1);
    cfg.policy.pvalidate_batch = 2;
    let mut v = SimVm::new(cfg);
    v.make_private(FREE_2M, PageSize::Size4K, 3).unwrap();
    let list: Vec<_> = (0..3).map(|i| e4k(FREE_2M.0 + i * 0x1000, true)).collect();
    let (rax, next) = v.pvalidate(&list);
    assert_eq!((rax, next), (ERR_INCOMPLETE, 2));
    let (rax, next) = v.list_call(call::PVALIDATE, LIST_PAGE, &list, 2);
    assert_eq!((rax, next), (SUCCESS, 3));
    done(&v);
}

#[test]
fn pvalidate_record_digests_the_applied_entries() {
    let mut v = vm();
    v.make_private(FREE_2M, PageSize::Size4K, 1).unwrap();
    let e = e4k(FREE_2M.0, true);
    v.pvalidate(&[e]);
    let mut payload = None;
    svsm_abi::event_log::replay(v.m.event_log().bytes(), |h, p| {
        if h.kind == kind::PVALIDATE {
            payload = Some(svsm_abi::event_log::PvalidatePayload::read_from_bytes(p).unwrap());
        }
    })
    .unwrap();
    let p = payload.unwrap();
    use sha2::Digest;
    assert_eq!(
        p.entries_digest,
        <[u8; 48]>::from(sha2::Sha384::digest(e.0.to_le_bytes()))
    );
    assert_eq!((p.entries, p.first, p.done), (1, 0, 1));
    done(&v);
}

// ---------------------------------------------------------------- CREATE_VCPU / DELETE_VCPU

/// The boot vCPU's SEV_FEATURES in `SimConfig::small`.
fn good_features() -> u64 {
    SevFeatures::SNP_ACTIVE.bits()
}

fn create_ap(v: &mut SimVm, apic: u32, vmsa: u64, caa: u64) -> u64 {
    let gv = v.m.guest_vmpl().get();
    v.write_vmsa(Gpa(vmsa), gv, good_features(), EFER_SVME)
        .unwrap();
    v.call(core(call::CREATE_VCPU), vmsa, caa, apic as u64)
        .1
        .rax
}

#[test]
fn create_vcpu_makes_a_vmsa_the_guest_cannot_touch() {
    let mut v = vm();
    assert_eq!(create_ap(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    let e = *v.mach().rmp.get(0x10).unwrap();
    assert!(e.vmsa);
    assert!(v.guest_write(Gpa(0x10000), &[0]).is_err());
    assert!(v.guest_read(Gpa(0x10000), &mut [0]).is_err());
    // CREATE_VCPU does not start the vCPU; the guest's own AP creation does.
    assert!(v.mach().hv.aps.is_empty());
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(v.mach().hv.aps, vec![(1, Gpa(0x10000))]);
    assert_eq!(v.m.pages().get(Gpa(0x10000)), Some(PageState::Vmsa));
    // The new vCPU can call through its own calling area.
    let (o, r) = v.call_from(
        1,
        SvsmRegs {
            rax: core(call::QUERY_PROTOCOL),
            rcx: 1 << 32 | 1,
            ..Default::default()
        },
    );
    assert_eq!((o, r.rax), (CallOutcome::Handled, SUCCESS));
    assert_eq!(last_record(&v).apic_id, 1);
    done(&v);
}

#[test]
fn create_vcpu_checks_the_vmsa_contents() {
    let mut v = vm();
    let gv = v.m.guest_vmpl().get();
    for (vmpl, feat, efer) in [
        (0, good_features(), EFER_SVME), // VMPL0: Vigil's own level
        (1, good_features(), EFER_SVME), // not the guest's VMPL
        (gv, SevFeatures::ALTERNATE_INJECTION.bits(), EFER_SVME), // SNP_ACTIVE missing
        (gv, good_features() | SevFeatures::VTOM.bits(), EFER_SVME), // not allowed by policy
        (
            gv,
            good_features() | SevFeatures::ALTERNATE_INJECTION.bits(),
            EFER_SVME,
        ), // allowed by policy, but not the boot vCPU's
        (gv, good_features() | (1 << 40), EFER_SVME), // unknown bit
        (gv, good_features(), 0),        // EFER.SVME clear
    ] {
        v.write_vmsa(Gpa(0x10000), vmpl, feat, efer).unwrap();
        let r = v.call(core(call::CREATE_VCPU), 0x10000, 0x11000, 1).1.rax;
        assert_eq!(
            r, ERR_INVALID_PARAMETER,
            "vmpl {vmpl} features {feat:#x} efer {efer:#x}"
        );
        // The page is given back to the guest.
        v.guest_write(Gpa(0x10000), &[0]).unwrap();
        assert!(v.mach().hv.aps.is_empty());
    }
    done(&v);
}

#[test]
fn create_vcpu_address_checks() {
    let mut v = vm();
    let gv = v.m.guest_vmpl().get();
    v.write_vmsa(Gpa(0x10000), gv, good_features(), EFER_SVME)
        .unwrap();
    for (vmsa, caa) in [(VIGIL.0, 0x11000), (0x10000, VIGIL.0), (FREE_2M.0, 0x11000)] {
        assert_eq!(
            v.call(core(call::CREATE_VCPU), vmsa, caa, 1).1.rax,
            ERR_INVALID_ADDRESS,
            "{vmsa:#x} {caa:#x}"
        );
    }
    // Section 5: misaligned is INVALID_PARAMETER.
    for (vmsa, caa) in [(0x10008, 0x11000), (0x10000, 0x11008)] {
        assert_eq!(
            v.call(core(call::CREATE_VCPU), vmsa, caa, 1).1.rax,
            ERR_INVALID_PARAMETER,
            "{vmsa:#x} {caa:#x}"
        );
    }
    // 6.3: the same page for VMSA and calling area, a VMSA on a calling area in use, a
    // calling area another APIC ID uses: conflicts of addresses, INVALID_ADDRESS.
    for (vmsa, caa) in [
        (0x10000, 0x10000),
        (BOOT_CAA.0, 0x11000),
        (0x10000, BOOT_CAA.0),
    ] {
        assert_eq!(
            v.call(core(call::CREATE_VCPU), vmsa, caa, 1).1.rax,
            ERR_INVALID_ADDRESS,
            "{vmsa:#x} {caa:#x}"
        );
    }
    done(&v);
}

#[test]
fn create_vcpu_in_a_2m_page_is_invalid_parameter() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size2M, 1), SUCCESS);
    let gv = v.m.guest_vmpl().get();
    v.write_vmsa(FREE_2M, gv, good_features(), EFER_SVME)
        .unwrap();
    assert_eq!(
        v.call(core(call::CREATE_VCPU), FREE_2M.0, 0x11000, 1).1.rax,
        ERR_INVALID_PARAMETER
    );
    done(&v);
}

#[test]
fn delete_vcpu() {
    let mut v = vm();
    assert_eq!(create_ap(&mut v, 1, 0x10000, 0x11000), SUCCESS);
    v.guest_ap_create(1, Gpa(0x10000)).unwrap();
    assert_eq!(
        v.call(core(call::DELETE_VCPU), 0x12000, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    assert_eq!(
        v.call(core(call::DELETE_VCPU), 0x10000, 0, 0).1.rax,
        SUCCESS
    );
    assert!(!v.mach().rmp.get(0x10).unwrap().vmsa);
    v.guest_write(Gpa(0x10000), &[0]).unwrap();
    assert_eq!(last_record(&v).kind, kind::DELETE_VCPU);
    done(&v);
}

// ---------------------------------------------------------------- DEPOSIT_MEM / WITHDRAW_MEM

#[test]
fn deposit_and_withdraw() {
    let mut v = vm();
    assert_eq!(v.accept(FREE_2M, PageSize::Size4K, 2), SUCCESS);
    v.guest_write(FREE_2M, b"guest data").unwrap();
    let list = [dep(FREE_2M.0), dep(FREE_2M.0 + 0x1000)];
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &list, 0),
        (SUCCESS, 2)
    );
    assert!(v.guest_read(FREE_2M, &mut [0]).is_err());
    assert_eq!(v.m.pages().get(FREE_2M), Some(PageState::Deposited));
    let mut flag = [0u8];
    v.guest_read(Gpa(BOOT_CAA.0 + 1), &mut flag).unwrap();
    assert_eq!(flag[0], 1, "mem_available");
    // Withdraw: both come back (as plain GPAs), zeroed.
    let (rax, got) = withdraw(&mut v, LIST_PAGE);
    assert_eq!(rax, SUCCESS);
    assert_eq!(got, [FREE_2M.0 + 0x1000, FREE_2M.0]);
    let mut b = [0xffu8; 16];
    v.guest_read(FREE_2M, &mut b).unwrap();
    assert_eq!(b, [0; 16]);
    v.guest_read(Gpa(BOOT_CAA.0 + 1), &mut flag).unwrap();
    assert_eq!(flag[0], 0);
    // Nothing left.
    assert_eq!(withdraw(&mut v, LIST_PAGE), (SUCCESS, vec![]));
    done(&v);
}

#[test]
fn deposit_refusals() {
    let mut v = vm();
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[dep(VIGIL.0)], 0)
            .0,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[dep(FREE_2M.0)], 0)
            .0,
        ERR_INVALID_ADDRESS
    );
    // 6.5: a calling area is an address conflict.
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[dep(BOOT_CAA.0)], 0)
            .0,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(
        v.list_call(
            call::DEPOSIT_MEM,
            LIST_PAGE,
            &[PvalidateEntry(0x5000 | 3)],
            0
        )
        .0,
        ERR_INVALID_PARAMETER
    );
    assert_eq!(
        v.list_call(call::DEPOSIT_MEM, LIST_PAGE, &[dep(0x5000)], 3)
            .0,
        ERR_INVALID_PARAMETER
    );
    done(&v);
}

// ---------------------------------------------------------------- attestation

const REQ: u64 = 0x20000;
const NONCE: u64 = 0x21000;
const MANIFEST: u64 = 0x22000;
const REPORT: u64 = 0x23000;

fn attest_request(v: &mut SimVm, nonce: &[u8], manifest_size: u32, report_size: u32) {
    v.guest_write(Gpa(NONCE), nonce).unwrap();
    let r = ap::AttestServicesRequest {
        report_gpa: REPORT,
        report_size,
        nonce_gpa: NONCE,
        nonce_size: nonce.len() as u16,
        manifest_gpa: MANIFEST,
        manifest_size,
        ..Default::default()
    };
    v.guest_write(Gpa(REQ), r.as_bytes()).unwrap();
}

fn verify_report(v: &SimVm, report: &[u8]) {
    use p384::ecdsa::signature::Verifier;
    let mut r = [0u8; 48];
    let mut s = [0u8; 48];
    r.copy_from_slice(&report[0x2a0..0x2a0 + 48]);
    s.copy_from_slice(&report[0x2a0 + 72..0x2a0 + 72 + 48]);
    r.reverse();
    s.reverse();
    let sig = p384::ecdsa::Signature::from_scalars(r, s).unwrap();
    v.mach()
        .psp
        .verifying_key()
        .verify(&report[..0x2a0], &sig)
        .unwrap();
}

#[test]
fn attest_services_binds_nonce_manifest_and_log() {
    let mut v = vm();
    v.call(core(call::QUERY_PROTOCOL), 1 << 32 | 1, 0, 0);
    attest_request(&mut v, b"relying party nonce", 4096, 4096);
    let (o, r) = v.call(SvsmRegs::rax_for(1, ap::ATTEST_SERVICES), REQ, 0, 0);
    assert_eq!((o, r.rax), (CallOutcome::Handled, SUCCESS));
    assert_eq!((r.rcx, r.rdx, r.r8), (24 + 24 + 64, 0, 0x4a0));
    let mut manifest = vec![0u8; r.rcx as usize];
    v.guest_read(Gpa(MANIFEST), &mut manifest).unwrap();
    let mut report = vec![0u8; 0x4a0];
    v.guest_read(Gpa(REPORT), &mut report).unwrap();
    assert_eq!(
        u32::from_le_bytes(report[0..4].try_into().unwrap()),
        5,
        "version 5"
    );
    assert_eq!(&report[0x30..0x34], &[0; 4], "VMPL0");
    assert_eq!(
        report[0x50..0x90],
        ap::report_data(b"relying party nonce", &manifest)
    );
    verify_report(&v, &report);
    // The values the TEST VCEK certifies (attestation/testdata/test-root/README.md).
    assert_eq!(
        report[0x180..0x188],
        monitor::soft_psp::TEST_TCB.to_le_bytes()
    );
    assert_eq!(report[0x1a0..0x1e0], monitor::soft_psp::test_chip_id());
    // The manifest's Vigil entry carries the log as it stood before the ATTEST record.
    let mut data = None;
    ap::parse_manifest(&manifest, |g, d| {
        assert_eq!(g, ap::VIGIL_SERVICE_GUID);
        data = Some(ap::VigilServiceData::read_from_bytes(d).unwrap());
    })
    .unwrap();
    let data = data.unwrap();
    assert_eq!(data.record_count, 2); // LAUNCH, QUERY_PROTOCOL
    let (cnt, head) = svsm_abi::event_log::replay(v.m.event_log().prefix(2), |_, _| {}).unwrap();
    assert_eq!((cnt, head), (2, data.log_head));
    assert_eq!(last_record(&v).kind, kind::ATTEST);
    done(&v);
}

#[test]
fn attest_services_size_negotiation() {
    let mut v = vm();
    attest_request(&mut v, b"n", 16, 0x4a0);
    let (_, r) = v.call(SvsmRegs::rax_for(1, ap::ATTEST_SERVICES), REQ, 0, 0);
    assert_eq!(
        (r.rax, r.rcx, r.rdx, r.r8),
        (ERR_INVALID_PARAMETER, 112, 0, 0x4a0)
    );
    attest_request(&mut v, b"n", 112, 0x49f);
    let (_, r) = v.call(SvsmRegs::rax_for(1, ap::ATTEST_SERVICES), REQ, 0, 0);
    assert_eq!((r.rax, r.r8), (ERR_INVALID_PARAMETER, 0x4a0));
    assert_eq!(v.mach().psp.reports_signed, 0);
    attest_request(&mut v, b"n", 112, 0x4a0);
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, ap::ATTEST_SERVICES), REQ, 0, 0)
            .1
            .rax,
        SUCCESS
    );
    done(&v);
}

#[test]
fn attest_services_refusals() {
    let mut v = vm();
    // Request in Vigil's memory, misaligned, in unvalidated memory.
    for gpa in [VIGIL.0, FREE_2M.0] {
        assert_eq!(
            v.call(SvsmRegs::rax_for(1, 0), gpa, 0, 0).1.rax,
            ERR_INVALID_ADDRESS
        );
    }
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 0), REQ + 4, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    // Nonce too large for the policy.
    attest_request(&mut v, &[1; 64], 4096, 4096);
    v.guest_write(Gpa(REQ + 0x18), &5000u16.to_le_bytes())
        .unwrap();
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 0), REQ, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    // Report buffer in Vigil's memory.
    attest_request(&mut v, &[1; 64], 4096, 4096);
    v.guest_write(Gpa(REQ), &VIGIL.0.to_le_bytes()).unwrap();
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 0), REQ, 0, 0).1.rax,
        ERR_INVALID_ADDRESS
    );
    assert_eq!(v.mach().psp.reports_signed, 0);
    done(&v);
}

#[test]
fn attest_single_service() {
    let mut v = vm();
    attest_request(&mut v, b"nonce", 4096, 4096);
    let mut tail = [0u8; 24];
    tail[..16].copy_from_slice(&ap::VIGIL_SERVICE_GUID);
    v.guest_write(Gpa(REQ + 0x40), &tail).unwrap();
    let (_, r) = v.call(SvsmRegs::rax_for(1, ap::ATTEST_SINGLE_SERVICE), REQ, 0, 0);
    assert_eq!((r.rax, r.rcx), (SUCCESS, 64));
    let mut m = [0u8; 64];
    v.guest_read(Gpa(MANIFEST), &mut m).unwrap();
    let mut report = vec![0u8; 0x4a0];
    v.guest_read(Gpa(REPORT), &mut report).unwrap();
    assert_eq!(report[0x50..0x90], ap::report_data(b"nonce", &m));
    // Unknown service, unknown manifest version.
    tail[0] ^= 1;
    v.guest_write(Gpa(REQ + 0x40), &tail).unwrap();
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 1), REQ, 0, 0).1.rax,
        ERR_UNSUPPORTED_PROTOCOL
    );
    tail[0] ^= 1;
    tail[16] = 7;
    v.guest_write(Gpa(REQ + 0x40), &tail).unwrap();
    assert_eq!(
        v.call(SvsmRegs::rax_for(1, 1), REQ, 0, 0).1.rax,
        ERR_INVALID_PARAMETER
    );
    done(&v);
}

#[test]
fn launch_configuration_is_checked() {
    use monitor::sim::SimMachine;
    use monitor::{ConfigError, Monitor, MonitorConfig};
    let cfg = |vmpl: u8, base: u64, caa: u64| MonitorConfig {
        ram_size: 8 << 20,
        vigil_base: Gpa(base),
        vigil_size: 2 << 20,
        boot_apic_id: 0,
        boot_caa: Gpa(caa),
        prevalidated: vec![(Gpa(0x1000), PageSize::Size4K)],
        boot_sev_features: SevFeatures::SNP_ACTIVE.bits(),
        vmpck0: [1; 32],
        policy: monitor::policy::Policy {
            guest_vmpl: vmpl,
            ..Default::default()
        },
    };
    let m = |c| Monitor::new(SimMachine::new(8 << 20, 0), c).err();
    assert_eq!(m(cfg(0, 4 << 20, 0x1000)), Some(ConfigError::GuestVmpl(0)));
    assert_eq!(m(cfg(4, 4 << 20, 0x1000)), Some(ConfigError::GuestVmpl(4)));
    assert_eq!(m(cfg(2, 7 << 20, 0x1000)), Some(ConfigError::VigilRange));
    assert_eq!(
        m(cfg(2, (4 << 20) + 1, 0x1000)),
        Some(ConfigError::VigilRange)
    );
    assert_eq!(
        m(cfg(2, 4 << 20, 0x2000)),
        Some(ConfigError::BootCallingArea)
    );
    assert_eq!(m(cfg(2, 4 << 20, 0x1000)), None);
    // Section 4: the startup vCPU's SEV features must be ones the SVSM supports.
    let mut c = cfg(2, 4 << 20, 0x1000);
    c.boot_sev_features |= SevFeatures::VTOM.bits();
    assert_eq!(
        m(c),
        Some(ConfigError::BootSevFeatures(
            SevFeatures::SNP_ACTIVE.bits() | SevFeatures::VTOM.bits()
        ))
    );
}
