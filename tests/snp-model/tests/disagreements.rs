//! Where the model's rules and Vigil's (`svsm-abi`, the monitor's `sim` RMP) read the
//! specs differently: each test names the disagreement and the side the spec supports.
//!
//! Two were found in svsm-abi and fixed there (commit d00a3e2): those tests now hold
//! both sides to the spec's reading. Two remain in the monitor's simulated RMP: those
//! tests assert the disagreement as it stands, so that fixing the sim makes them fail
//! and be turned into agreements.

use monitor::addr::{Gpa, PageSize as SimSize};
use monitor::platform::{Perms as SimPerms, PvalidateOutcome, RmpError};
use monitor::sim::rmp::Rmp as SimRmp;
use snp_model::ghcb_exits::{handle, Ctx, Exiting, SecurityProcessor};
use snp_model::ghcb_page::{off, Ghcb};
use snp_model::host::{Action, Devices, Host, Profile, VmsaRef};
use snp_model::memory::Memory;
use snp_model::pvalidate::{self, pvalidate};
use snp_model::rmp::{PageSize, Perms, Rmp};
use snp_model::rmpadjust::{rdx, rmpadjust, Outcome, Request};

/// Linux `snp_set_vmsa` (arch/x86/coco/sev): `attrs = 1` ("use VMPL1") with
/// RMPADJUST_VMSA_PAGE_BIT (bit 16); edk2 `SevSnpRmpAdjust` passes the same value.
const LINUX_SET_VMSA_ATTRS: u64 = 1 | (1 << 16);

fn validated_rmp() -> Rmp {
    let mut r = Rmp::new(16);
    r.launch_page(0x1000, false).unwrap();
    r
}

fn adjust(r: &mut Rmp, rdx_value: u64, vmpl: u8) -> Outcome {
    rmpadjust(
        r,
        Request {
            gpa: 0x1000,
            rcx: 0,
            rdx: rdx_value,
            vmpl,
            cpl: 0,
        },
    )
}

/// svsm-abi before d00a3e2 put the permission mask in RDX bits 7:0 and the target VMPL
/// in bits 15:8. The APM, Linux and edk2 put the target VMPL in bits 7:0 and the mask in
/// 15:8: the spec supports the model. With the old layout, Vigil's "grant VMPL2 read +
/// supervisor-execute" (mask 0x9, VMPL 2) would have reached hardware as "grant VMPL 9"
/// (FAIL_INPUT) or, for small masks, granted the wrong VMPL the wrong rights.
#[test]
fn rmpadjust_rdx_target_vmpl_is_bits_7_0_spec_supports_the_model() {
    assert_eq!(rdx(1, Perms::NONE, true), LINUX_SET_VMSA_ATTRS);
    assert_eq!(
        svsm_abi::rmp::rmpadjust_attrs(1, 0, true),
        LINUX_SET_VMSA_ATTRS
    );
    // What Vigil encodes is what the model's RMP does.
    let rx = svsm_abi::rmp::PERM_READ | svsm_abi::rmp::PERM_EXEC_SUPERVISOR;
    let mut r = validated_rmp();
    let a = svsm_abi::rmp::rmpadjust_attrs(2, rx, false);
    assert_eq!(adjust(&mut r, a, 0), Outcome::Done { eax: 0 });
    let e = r.entry(0x1000).unwrap();
    assert_eq!(e.perms[2], Perms(rx));
    assert_eq!((e.perms[1], e.perms[3]), (Perms::NONE, Perms::NONE));
}

struct NoDev;
impl Devices for NoDev {
    fn io_in(&mut self, _: u16, _: u8) -> u32 {
        0
    }
    fn io_out(&mut self, _: u16, _: u8, _: u32) {}
    fn mmio_read(&mut self, _: u64, _: &mut [u8]) {}
    fn mmio_write(&mut self, _: u64, _: &[u8]) {}
}

struct NoPsp;
impl SecurityProcessor for NoPsp {
    fn guest_request(&mut self, _: &[u8; 4096]) -> Result<[u8; 4096], u32> {
        Err(0x16)
    }
}

/// Before d00a3e2 the monitor sent AP creation with SW_EXITINFO1 = APIC ID << 32 |
/// request and no VMPL: a host following the GHCB spec (SW_EXITINFO1 bits 19:16 = the
/// VMPL of the VMSA; Linux `vmgexit_ap_control` sends `snp_vmpl << 16`) would have run a
/// guest's VMPL2 VMSA as VMPL0. The spec supports the model; svsm-abi now encodes it.
#[test]
fn ap_creation_vmpl_is_exitinfo1_bits_19_16_spec_supports_the_model() {
    use svsm_abi::ghcb::ap_create;
    let info1 = ap_create::info1(1, 2, ap_create::CREATE);
    assert_eq!(info1, (1 << 32) | (2 << 16) | 1, "Linux's encoding");
    let mut host = Host::new(Profile::default(), 2, 1);
    host.vcpus[0].ghcb[0] = Some(0x10_0000);
    let mut mem = Memory::new(8 << 20);
    let mut rmp = Rmp::new(2048);
    let mut g = Ghcb::new();
    g.set_version(2);
    g.set(off::SW_EXIT_CODE, snp_model::exit_codes::AP_CREATION);
    g.set(off::SW_EXIT_INFO_1, info1);
    g.set(off::SW_EXIT_INFO_2, 0x40_1000);
    g.set(off::RAX, 1);
    mem.write(0x10_0000, &g.0).unwrap();
    let mut cx = Ctx {
        host: &mut host,
        mem: &mut mem,
        rmp: &mut rmp,
        dev: &mut NoDev,
        psp: &mut NoPsp,
    };
    let x = Exiting {
        vcpu: 0,
        vmpl: 0,
        ghcb_gpa: 0x10_0000,
    };
    assert_eq!(handle(&mut cx, x), Action::Resume);
    assert_eq!(host.vcpus[1].vmsa[2], Some(VmsaRef::Gpa(0x40_1000)));
    assert_eq!(host.vcpus[1].vmsa[0], None, "not a VMPL0 VMSA");
}

fn sim_rmp() -> SimRmp {
    let mut s = SimRmp::new(16);
    assert!(s.rmpupdate(Gpa(0x1000), SimSize::Size4K, true));
    assert_eq!(
        s.pvalidate(Gpa(0x1000), SimSize::Size4K, true),
        Ok(PvalidateOutcome::Changed)
    );
    s
}

/// RMPADJUST with VMSA = 1 from VMPL1: the monitor's sim sets the page's VMSA bit; the
/// model leaves it, because the VMSA bit changes only at VMPL0 and is ignored otherwise
/// (APM vol. 3 RMPADJUST, as edk2's `SevSnpRmpAdjust` comment and Microsoft's
/// `__rmpadjust` documentation restate it). The spec supports the model: in the sim, a
/// lower VMPL could make its own VMSA pages, which hardware does not allow.
#[test]
fn vmsa_bit_from_vmpl1_sim_sets_it_spec_supports_the_model_ignoring_it() {
    let all = SimPerms::from_bits_truncate(0x0f);
    let mut s = sim_rmp();
    s.rmpadjust(0, Gpa(0x1000), SimSize::Size4K, 1, all, false)
        .unwrap();
    s.rmpadjust(1, Gpa(0x1000), SimSize::Size4K, 2, SimPerms::empty(), true)
        .unwrap();
    let sim_vmsa = s.get(1).unwrap().vmsa;

    let mut m = validated_rmp();
    adjust(&mut m, rdx(1, Perms::ALL, false), 0);
    assert_eq!(
        adjust(&mut m, rdx(2, Perms::NONE, true), 1),
        Outcome::Done { eax: 0 }
    );
    let model_vmsa = m.entry(0x1000).unwrap().vmsa;

    assert!(!model_vmsa, "model: VMSA bit ignored at VMPL1 (the spec)");
    assert!(
        sim_vmsa,
        "disagreement gone: the sim now ignores it too; make this an agreement"
    );
}

/// PVALIDATE of a page the host has not assigned to the guest: the sim answers
/// FAIL_INPUT; the model raises a nested page fault with the RMP bit to the host, as an
/// RMP check failure does (APM vol. 2 §15.36.10; KVM's SNP NPF path treats the guest's
/// private access to a shared page as an implicit conversion request). The model's
/// reading is not confirmed on silicon (docs/snp-model.md); Linux terminates on either.
#[test]
fn pvalidate_of_a_host_page_sim_fail_input_model_npf() {
    let mut s = SimRmp::new(16);
    let sim = s.pvalidate(Gpa(0x2000), SimSize::Size4K, true);
    let mut m = Rmp::new(16);
    let model = pvalidate(
        &mut m,
        pvalidate::Request {
            gpa: 0x2000,
            rcx: 0,
            rdx: 1,
            vmpl: 0,
            cpl: 0,
        },
    );
    assert!(matches!(
        model,
        pvalidate::Outcome::NestedPageFault { gpa: 0x2000, .. }
    ));
    assert_eq!(
        sim,
        Err(RmpError::FailInput),
        "disagreement gone: make this an agreement"
    );
}

/// Where the two agree, checked on the same operations: size mismatch both ways, CF on
/// no change, the target-VMPL rule and the own-rights rule.
#[test]
fn agreements_with_the_sim_rmp() {
    let mut s = sim_rmp();
    let mut m = validated_rmp();
    // Validate again: unchanged (CF).
    assert_eq!(
        s.pvalidate(Gpa(0x1000), SimSize::Size4K, true),
        Ok(PvalidateOutcome::Unchanged)
    );
    let pv = pvalidate::Request {
        gpa: 0x1000,
        rcx: 0,
        rdx: 1,
        vmpl: 0,
        cpl: 0,
    };
    assert_eq!(
        pvalidate(&mut m, pv),
        pvalidate::Outcome::Done { eax: 0, cf: true }
    );
    // Target VMPL not below the caller: FAIL_PERMISSION on both.
    let rw = SimPerms::from_bits_truncate(0x3);
    assert_eq!(
        s.rmpadjust(1, Gpa(0x1000), SimSize::Size4K, 1, rw, false),
        Err(RmpError::FailPermission)
    );
    assert_eq!(
        adjust(&mut m, rdx(1, Perms(3), false), 1),
        Outcome::Done { eax: 2 }
    );
    // Granting more than the caller has: FAIL_PERMISSION on both.
    s.rmpadjust(
        0,
        Gpa(0x1000),
        SimSize::Size4K,
        1,
        SimPerms::from_bits_truncate(1),
        false,
    )
    .unwrap();
    adjust(&mut m, rdx(1, Perms(1), false), 0);
    assert_eq!(
        s.rmpadjust(1, Gpa(0x1000), SimSize::Size4K, 2, rw, false),
        Err(RmpError::FailPermission)
    );
    assert_eq!(
        adjust(&mut m, rdx(2, Perms(3), false), 1),
        Outcome::Done { eax: 2 }
    );
    // 2 MiB request on a 4 KiB entry: FAIL_SIZEMISMATCH on both.
    let mut s2 = SimRmp::new(1024);
    assert!(s2.rmpupdate(Gpa(0), SimSize::Size4K, true));
    assert_eq!(
        s2.pvalidate(Gpa(0), SimSize::Size2M, true),
        Err(RmpError::FailSizeMismatch)
    );
    let mut m2 = Rmp::new(1024);
    m2.make_private(0, PageSize::Size4K).unwrap();
    let big = pvalidate::Request {
        rcx: 1,
        gpa: 0,
        ..pv
    };
    assert_eq!(
        pvalidate(&mut m2, big),
        pvalidate::Outcome::Done {
            eax: pvalidate::ret::FAIL_SIZEMISMATCH,
            cf: false
        }
    );
}
