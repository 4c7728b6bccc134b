//! VMPL switching: VMPL0 makes a VMSA with RMPADJUST (#UD), hands it to the host with
//! AP creation (GHCB page), runs VMPL2 with a run-VMPL request (MSR protocol), and VMPL2
//! asks for VMPL0 back. Each VMSA keeps its own registers and GHCB MSR.

mod machine_fixture;
use machine_fixture::*;
use snp_model::exit_codes as ec;
use snp_model::ghcb_page::{off as g, Ghcb};
use snp_model::host::VmsaRef;
use snp_model::machine::vmsa::Gpr;
use snp_model::rmp::Perms;
use snp_model::rmpadjust::rdx;

const GHCB_MSR: u32 = 0xc001_0130;

fn ap_creation_ghcb() -> Ghcb {
    let mut p = Ghcb::new();
    p.set(g::SW_EXIT_CODE, ec::AP_CREATION);
    // Create (1) for VMPL2 (bits 19:16) of APIC ID 0 (bits 63:32).
    p.set(g::SW_EXIT_INFO_1, (2 << 16) | 1);
    p.set(g::SW_EXIT_INFO_2, VMSA2);
    p.set(g::RAX, 1);
    p.set_version(2);
    p
}

#[test]
fn rmpadjust_makes_a_vmsa_then_run_vmpl_switches_to_vmpl2_and_back() {
    let mut m = machine();
    // VMPL2's VMSA as VMPL0 wrote it (64-bit, same tables, its own RIP).
    let mut v2 = boot_vmsa();
    v2.set_rip(HLT_AT);
    v2.set_gpr(Gpr::Rbx, 0x2222);
    m.mem.write(VMSA2, &v2.0).unwrap();
    m.mem.write(GHCB, &ap_creation_ghcb().0).unwrap();
    let mut cpu = FakeCpu::default();
    // 1. RMPADJUST VMSA=1 (target VMPL1, no permissions) at VMPL0.
    cpu.push(0x46, 0, 0, |v| {
        v.set_rip(RMPADJUST_AT);
        v.set_rax(VMSA2);
        v.set_gpr(Gpr::Rcx, 0);
        v.set_gpr(Gpr::Rdx, rdx(1, Perms::NONE, true));
    });
    // 2. Register the GHCB (MSR protocol), 3. point the MSR at it and create the VMSA.
    wrmsr(&mut cpu, GHCB_MSR, GHCB | 0x012);
    vmgexit(&mut cpu);
    wrmsr(&mut cpu, GHCB_MSR, GHCB);
    vmgexit(&mut cpu);
    // 4. Run VMPL2 (MSR protocol VMPL request, VMPL in bits 39:32).
    wrmsr(&mut cpu, GHCB_MSR, (2 << 32) | 0x016);
    vmgexit(&mut cpu);
    for _ in 0..7 {
        m.step(&mut cpu, 0).unwrap();
    }
    assert!(m.rmp.entry(VMSA2).unwrap().vmsa);
    assert_eq!(m.host.vcpu(0).unwrap().vmsa[2], Some(VmsaRef::Gpa(VMSA2)));
    assert_eq!(m.running_vmpl(0), Some(2));
    assert_eq!(
        m.ghcb_msr(0, 0),
        0x017,
        "VMPL0's answer: switched, no error"
    );

    // 5. VMPL2 runs from its VMSA page, sets its own GHCB MSR and asks for VMPL0.
    wrmsr(&mut cpu, GHCB_MSR, 0x016);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    let (vcpu, vmpl, entry) = cpu.entries.last().unwrap();
    assert_eq!((*vcpu, *vmpl, entry.rip()), (0, 2, HLT_AT));
    assert_eq!(entry.gpr(Gpr::Rbx), 0x2222);
    assert!(m.rmp.entry(VMSA2).unwrap().in_use, "VMPL2's VMSA runs");
    assert_eq!(m.ghcb_msr(0, 2), 0x016);
    assert_eq!(m.ghcb_msr(0, 0), 0x017, "per VMSA: VMPL0's value is kept");
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.running_vmpl(0), Some(0));
    assert_eq!(m.ghcb_msr(0, 2), 0x017);
    assert!(!m.rmp.entry(VMSA2).unwrap().in_use);
    // VMPL2's state went back to its page, RIP past its VMGEXIT.
    assert_eq!(m.vmsa(0, 2).unwrap().rip(), VMGEXIT_AT + 4);

    // 6. VMPL0 resumes after its own VMGEXIT.
    m.step(&mut cpu, 0).unwrap_err();
    let (_, vmpl, entry) = cpu.entries.last().unwrap();
    assert_eq!((*vmpl, entry.rip()), (0, VMGEXIT_AT + 4));
    assert_eq!(m.record.exits.get(&(0x81, 0)), Some(&3));
    assert_eq!(m.record.exits.get(&(0x81, 2)), Some(&1));
    // The round trip: VMPL0's request, VMPL2's WRMSR and its VMGEXIT back (3 exits);
    // the first entry of each VMPL is marked.
    let t = m.record.round_trips.as_slice();
    assert_eq!((t.len(), t[0].vcpu, t[0].vmpl, t[0].exits), (1, 0, 2, 3));
    let marks: Vec<u8> = m.record.marks.iter().map(|k| k.vmpl).collect();
    assert_eq!(marks, [0, 2]);
}

#[test]
fn a_vmpl_request_for_a_vmpl_without_a_vmsa_is_refused_and_stays() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, GHCB_MSR, (2 << 32) | 0x016);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.running_vmpl(0), Some(0));
    assert_eq!(m.ghcb_msr(0, 0), (1 << 32) | 0x017);
}

#[test]
fn a_vcpu_without_a_vmsa_at_its_vmpl_stops() {
    let mut m = machine_with(2);
    let mut cpu = FakeCpu::default();
    assert_eq!(
        m.step(&mut cpu, 1),
        Err(snp_model::machine::Stop::NoVmsa { vmpl: 0 })
    );
    assert_eq!(m.step(&mut cpu, 5), Err(snp_model::machine::Stop::NoVcpu));
    assert!(cpu.entries.is_empty());
}
