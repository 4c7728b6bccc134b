//! Two vCPUs: vCPU 1 waits until vCPU 0 creates it through the host (GHCB AP creation,
//! KVM `sev_snp_ap_creation`), then runs at VMPL0 from the VMSA page it was given; AP
//! reset hold halts it until the next creation. Host injections into a VMSA with
//! RestrictedInjection are refused and recorded; the VMPL round trip is counted.

mod machine_fixture;
use machine_fixture::*;
use snp_model::exit_codes as ec;
use snp_model::ghcb_page::{off as g, Ghcb};
use snp_model::host::VmsaRef;
use snp_model::injection::{Event, RESTRICTED_INJECTION};
use snp_model::machine::vmsa::Gpr;
use snp_model::machine::Stop;

const GHCB_MSR: u32 = 0xc001_0130;

/// A GHCB asking to create (1) or destroy (2) the VMPL0 VMSA of APIC ID 1 at VMSA2.
fn ap_ghcb(request: u64) -> Ghcb {
    let mut p = Ghcb::new();
    p.set(g::SW_EXIT_CODE, ec::AP_CREATION);
    p.set(g::SW_EXIT_INFO_1, (1 << 32) | request);
    p.set(g::SW_EXIT_INFO_2, VMSA2);
    p.set(g::RAX, 1);
    p.set_version(2);
    p
}

#[test]
fn ap_creation_makes_vcpu1_run_its_vmsa_and_reset_hold_halts_it() {
    let mut m = machine_with(2);
    assert!(m.runnable(0));
    assert!(!m.runnable(1), "no launch VMSA: waits for AP creation");
    let mut ap = boot_vmsa();
    ap.set_rip(HLT_AT);
    ap.set_gpr(Gpr::Rbx, 0x1111);
    m.mem.write(VMSA2, &ap.0).unwrap();
    m.mem.write(GHCB, &ap_ghcb(1).0).unwrap();
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, GHCB_MSR, GHCB | 0x012);
    vmgexit(&mut cpu);
    wrmsr(&mut cpu, GHCB_MSR, GHCB);
    vmgexit(&mut cpu);
    for _ in 0..4 {
        m.step(&mut cpu, 0).unwrap();
    }
    assert_eq!(m.host.vcpu(1).unwrap().vmsa[0], Some(VmsaRef::Gpa(VMSA2)));
    assert!(m.runnable(1));
    assert_eq!(m.running_vmpl(1), Some(0));
    assert_eq!(m.running_vmpl(0), Some(0), "the creator keeps running");

    // vCPU 1 runs from its page, then asks for AP reset hold.
    wrmsr(&mut cpu, GHCB_MSR, 0x006);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 1).unwrap();
    let (vcpu, vmpl, entry) = cpu.entries.last().unwrap();
    assert_eq!((*vcpu, *vmpl, entry.rip()), (1, 0, HLT_AT));
    assert_eq!(entry.gpr(Gpr::Rbx), 0x1111);
    assert_eq!(m.step(&mut cpu, 1), Err(Stop::ResetHold));
    assert!(!m.runnable(1));
    assert_eq!(m.ghcb_msr(1, 0), 0x007);
    assert!(m.runnable(0), "vCPU 0 is not affected");
    // Any other stop halts the vCPU too: a second entry would stop the same way.
    let mut m2 = machine_with(2);
    assert_eq!(m2.step(&mut cpu, 0).unwrap_err(), Stop::Halted);
    assert!(!m2.runnable(0));

    // A second creation wakes it; a destruction of its running VMSA halts it.
    m.mem.write(GHCB, &ap_ghcb(1).0).unwrap();
    wrmsr(&mut cpu, GHCB_MSR, GHCB);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    m.step(&mut cpu, 0).unwrap();
    assert!(m.runnable(1));
    m.mem.write(GHCB, &ap_ghcb(2).0).unwrap();
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    assert!(!m.runnable(1));
    assert_eq!(m.host.vcpu(1).unwrap().vmsa[0], None);
}

#[test]
fn restricted_injection_refuses_all_but_hv_and_records_it() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    assert_eq!(m.host_inject(0, 0, Event::Interrupt(0x20)), Ok(true));
    m.step(&mut cpu, 0).unwrap_err();
    assert_eq!(
        cpu.entries[0].2.event_inj(),
        0x20 | 1 << 31,
        "unrestricted: INTR"
    );
    assert!(m.record.injections_refused.is_empty());

    // The same VMSA with RestrictedInjection.
    let mut v = m.vmsa(0, 0).unwrap();
    let feats = v.sev_features() | RESTRICTED_INJECTION;
    v.set_sev_features(feats);
    let mut m = machine_with_launch_vmsa(*v);
    assert_eq!(m.host_inject(0, 0, Event::Interrupt(0x20)), Ok(false));
    assert_eq!(m.host_inject(0, 0, Event::Exception(13)), Ok(false));
    assert_eq!(m.vmsa(0, 0).unwrap().event_inj(), 0, "nothing queued");
    assert_eq!(m.record.injections_refused.len(), 2);
    assert_eq!(
        m.record.injections_refused[1].event_inj,
        13 | 3 << 8 | 1 << 31
    );
    assert!(m
        .record
        .render()
        .contains("injection-refused vcpu=0 vmpl=0 eventinj=0x8000030d\n"));
    assert_eq!(m.host_inject(0, 0, Event::Exception(28)), Ok(true));
    let mut cpu = FakeCpu::default();
    m.step(&mut cpu, 0).unwrap_err();
    assert_eq!(
        cpu.entries[0].2.event_inj(),
        28 | 3 << 8 | 1 << 31,
        "#HV goes in"
    );
    assert_eq!(
        m.host_inject(0, 2, Event::Exception(28)),
        Err(Stop::NoVmsa { vmpl: 2 })
    );
}
