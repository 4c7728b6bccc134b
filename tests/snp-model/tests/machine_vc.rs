//! The machine delivers #VC for the non-automatic exits, in software, through the
//! guest's IDT and on its stack (APM vol. 2 §15.35.5), and answers SEV_STATUS and the
//! GHCB MSR itself.

mod machine_fixture;
use machine_fixture::*;
use snp_model::machine::vmsa::{off, Gpr};
use snp_model::machine::{Stop, VcFailure};
use snp_model::vc::DeliveryError;

#[test]
fn cpuid_becomes_a_vc_frame_on_the_guest_stack_via_the_idt() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| v.set_rip(CPUID_AT));
    assert_eq!(m.step(&mut cpu, 0), Ok(()));
    let v = m.vmsa(0, 0).unwrap();
    let old_rsp = STACK_TOP - 0x108;
    // Same privilege, no IST: the current stack, aligned down to 16, six quadwords.
    let frame = (old_rsp & !0xf) - 48;
    assert_eq!(v.rsp(), frame);
    assert_eq!(v.rip(), HANDLER);
    let pushed: Vec<u64> = (0..6).map(|i| q(&m, frame + 8 * i)).collect();
    assert_eq!(pushed, [0x72, CPUID_AT, 0x08, 0x202, old_rsp, 0x10]);
    // Interrupt gate: IF cleared.
    assert_eq!(v.rflags() & (1 << 9), 0);
    assert_eq!(v.segment(off::CS).selector, 0x08);
    assert_eq!(m.record.exits.get(&(0x72, 0)), Some(&1));
}

#[test]
fn plain_vmmcall_and_an_unknown_msr_are_vc_with_their_exit_codes() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x81, 0, 0, |v| v.set_rip(VMMCALL_AT));
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((q(&m, v.rsp()), q(&m, v.rsp() + 8)), (0x81, VMMCALL_AT));
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x7c, 0, 0, |v| {
        v.set_rip(RDMSR_AT);
        v.set_gpr(Gpr::Rcx, 0x1b);
    });
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((q(&m, v.rsp()), q(&m, v.rsp() + 8)), (0x7c, RDMSR_AT));
}

#[test]
fn sev_status_and_the_ghcb_msr_are_answered_without_a_vc() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x7c, 0, 0, |v| {
        v.set_rip(RDMSR_AT);
        v.set_gpr(Gpr::Rcx, 0xc001_0131);
        v.set_sev_features(1 | 1 << 3);
    });
    wrmsr(&mut cpu, 0xc001_0130, 0x1234_5678_9abc_d012);
    cpu.push(0x7c, 0, 0, |v| {
        v.set_rip(RDMSR_AT);
        v.set_gpr(Gpr::Rcx, 0xc001_0130);
    });
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    // SNP, SEV-ES, SEV and RestrictedInjection (feature bit 3 -> status bit 5).
    assert_eq!((v.rax(), v.gpr(Gpr::Rdx)), (0b10_0111, 0));
    assert_eq!(v.rip(), RDMSR_AT + 2);
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.ghcb_msr(0, 0), 0x1234_5678_9abc_d012);
    assert_eq!(m.ghcb_msr(0, 2), 0, "the GHCB MSR is per VMSA");
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((v.rax(), v.gpr(Gpr::Rdx)), (0x9abc_d012, 0x1234_5678));
    assert_eq!(v.rip(), RDMSR_AT + 2);
}

#[test]
fn writing_sev_status_is_a_general_protection_fault() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, 0xc001_0131, 0);
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.step(&mut cpu, 0), Err(Stop::Halted));
    // The next entry injects #GP(0): vector 13, type exception, error code valid.
    let (_, _, at_entry) = &cpu.entries[1];
    assert_eq!(at_entry.event_inj(), 13 | 3 << 8 | 1 << 11 | 1 << 31);
    assert_eq!(
        m.vmsa(0, 0).unwrap().event_inj(),
        0,
        "cleared after the entry"
    );
}

#[test]
fn a_missing_gate_stops_the_vcpu_by_name() {
    let mut m = machine();
    m.mem.write(IDT + 29 * 16, &[0; 16]).unwrap();
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| v.set_rip(CPUID_AT));
    let s = m.step(&mut cpu, 0).unwrap_err();
    assert_eq!(
        s,
        Stop::VcDelivery(VcFailure::Delivery(DeliveryError::NotPresent))
    );
    assert_eq!(
        m.record.stops.get(&(0, "vc-delivery-failed".into())),
        Some(&1)
    );
}

#[test]
fn a_stack_the_walk_cannot_reach_stops_the_vcpu() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| {
        v.set_rip(CPUID_AT);
        v.set_rsp(0x20_0000);
    });
    match m.step(&mut cpu, 0) {
        Err(Stop::VcDelivery(VcFailure::Walk { la, .. })) => assert_eq!(la, 0x1f_ffd0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_frame_across_a_page_boundary_is_written_to_both_pages() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    // RSP 0x10_5010: the frame is 0x10_4fe0..0x10_5010, across the two stack pages.
    cpu.push(0x7b, 0, 0, |v| {
        v.set_rip(CODE + 0x200);
        v.set_rsp(0x10_5010);
    });
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!(v.rsp(), 0x10_4fe0);
    let pushed: Vec<u64> = (0..6).map(|i| q(&m, 0x10_4fe0 + 8 * i)).collect();
    assert_eq!(pushed, [0x7b, CODE + 0x200, 0x08, 0x202, 0x10_5010, 0x10]);
}

#[test]
fn a_vc_at_cpl3_switches_to_rsp0_with_a_null_ss() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| {
        v.set_rip(0x40_1000);
        v.set_rsp(0x7fff_f000);
        v.set_cpl(3);
        let mut cs = CS64;
        cs.selector = 0x2b;
        cs.attrib |= 3 << 5;
        v.set_segment(off::CS, cs);
        let mut ss = SS0;
        ss.selector = 0x23;
        ss.attrib |= 3 << 5;
        v.set_segment(off::SS, ss);
    });
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    let frame = (RSP0 & !0xf) - 48;
    assert_eq!(v.rsp(), frame);
    let pushed: Vec<u64> = (0..6).map(|i| q(&m, frame + 8 * i)).collect();
    assert_eq!(pushed, [0x72, 0x40_1000, 0x2b, 0x202, 0x7fff_f000, 0x23]);
    assert_eq!(v.cpl(), 0);
    assert_eq!(v.segment(off::CS).selector, 0x08);
    assert_eq!(v.segment(off::CS).dpl(), 0);
    let ss = v.segment(off::SS);
    assert_eq!((ss.selector, ss.dpl()), (0, 0));
}

#[test]
fn an_idt_the_vmpl_may_not_read_stops_delivery_with_the_rmp_named() {
    let mut m = machine();
    m.mem.write(VMSA2, &boot_vmsa().0).unwrap();
    m.host.vcpus[0].vmsa[2] = Some(snp_model::host::VmsaRef::Gpa(VMSA2));
    assert!(m.set_running_vmpl(0, 2));
    // VMPL0 takes VMPL2's rights on the IDT page away (RMPADJUST through the rules).
    let r = snp_model::pvalidate::Request {
        gpa: IDT,
        rcx: 0,
        rdx: snp_model::rmpadjust::rdx(2, snp_model::rmp::Perms::NONE, false),
        vmpl: 0,
        cpl: 0,
    };
    snp_model::rmpadjust::rmpadjust(&mut m.rmp, r);
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| v.set_rip(CPUID_AT));
    assert_eq!(
        m.step(&mut cpu, 0),
        Err(Stop::VcDelivery(VcFailure::Rmp { gpa: IDT + 29 * 16 }))
    );
}

#[test]
fn efer_and_pat_are_not_intercepted_so_they_raise_no_vc() {
    // KVM makes EFER and PAT pass-through for SEV-ES/SNP guests (sev.c
    // `sev_es_init_vmcb`); a guest switching to long mode writes EFER with no #VC handler.
    let mut m = machine();
    let lma = m.vmsa(0, 0).unwrap().efer() & (1 << 10);
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, 0xc000_0080, 1 << 8); // LME, without SVME or LMA
    cpu.push(0x7c, 0, 0, |v| {
        v.set_rip(RDMSR_AT);
        v.set_gpr(Gpr::Rcx, 0xc000_0080);
    });
    wrmsr(&mut cpu, 0x277, 0x0007_0406_0007_0406);
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    // SVME kept (the guest runs under SVM), LMA unchanged (read-only), LME taken.
    assert_eq!(v.efer(), (1 << 8) | (1 << 12) | lma);
    assert_eq!(v.rip(), WRMSR_AT + 2);
    let rsp = v.rsp();
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((v.rax(), v.gpr(Gpr::Rdx)), ((1 << 8) | (1 << 12) | lma, 0));
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!(v.g_pat(), 0x0007_0406_0007_0406);
    assert_eq!(v.rsp(), rsp, "no #VC frame");
    assert_eq!(m.record.exits.get(&(0x7c, 0)), Some(&3));
}

#[test]
fn a_guest_without_a_tss_gets_a_vc_that_needs_no_stack_switch() {
    // No IST and no privilege change: the TSS is never read, so a TR that points
    // nowhere (a guest that has not loaded one yet) does not stop delivery.
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x72, 0, 0, |v| {
        v.set_rip(CPUID_AT);
        let mut tr = v.segment(off::TR);
        tr.base = 0xdead_0000;
        v.set_segment(off::TR, tr);
    });
    assert_eq!(m.step(&mut cpu, 0), Ok(()));
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!(v.rip(), HANDLER);
    assert_eq!(q(&m, v.rsp()), 0x72);
}
