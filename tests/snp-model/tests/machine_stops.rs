//! Why a vCPU stops, each named in the record: a termination request, HLT, a triple
//! fault, a VMRUN that refused the state, and an exit the machine has no rule for.

mod machine_fixture;
use machine_fixture::*;
use snp_model::machine::Stop;
use snp_model::record::{Record, Termination};

#[test]
fn msr_protocol_termination_stops_and_is_recorded() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    // Reason set 1, code 0x13 (GHCB spec "Termination Request": set 15:12, code 23:16).
    wrmsr(&mut cpu, 0xc001_0130, (0x13 << 16) | (1 << 12) | 0x100);
    vmgexit(&mut cpu);
    let s = m.run(&mut cpu, 0);
    assert_eq!(s, Stop::Terminated { set: 1, code: 0x13 });
    assert_eq!(
        m.record.terminations,
        [Termination {
            vcpu: 0,
            vmpl: 0,
            set: 1,
            code: 0x13
        }]
    );
    let text = m.record.render();
    assert!(text.contains("terminate vcpu=0 vmpl=0 set=1 code=19\n"));
    assert!(text.contains("stop vcpu=0 reason=terminated count=1\n"));
    assert_eq!(Record::parse(&text), Ok(m.record.clone()));
}

#[test]
fn unknown_exits_stop_with_their_code_and_name() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x99, 1, 2, |_| {});
    let s = m.run(&mut cpu, 0);
    assert_eq!(
        s,
        Stop::UnknownExit {
            code: 0x99,
            info1: 1,
            info2: 2
        }
    );
    assert_eq!(s.reason(), "unknown-exit");
    assert_eq!(m.record.exits.get(&(0x99, 0)), Some(&1));
    assert_eq!(m.record.stops.get(&(0, "unknown-exit".into())), Some(&1));
}

#[test]
fn hlt_shutdown_and_invalid_state_each_have_a_name() {
    let cases = [
        (0x78, Stop::Halted, "halted"),
        (0x7f, Stop::TripleFault, "triple-fault"),
        (u64::MAX, Stop::InvalidState, "vmrun-invalid-state"),
    ];
    for (code, stop, name) in cases {
        let mut m = machine();
        let mut cpu = FakeCpu::default();
        cpu.push(code, 0, 0, |v| v.set_rip(HLT_AT));
        assert_eq!(m.run(&mut cpu, 0), stop);
        assert_eq!(stop.reason(), name);
        assert!(m
            .record
            .render()
            .contains(&format!("stop vcpu=0 reason={name} count=1\n")));
    }
    // HLT is an automatic exit: the vCPU resumes after it.
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x78, 0, 0, |v| v.set_rip(HLT_AT));
    m.run(&mut cpu, 0);
    assert_eq!(m.vmsa(0, 0).unwrap().rip(), HLT_AT + 1);
}

#[test]
fn a_physical_interrupt_resumes_the_guest_unchanged() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(0x60, 0, 0, |v| v.set_rip(CODE + 0x100));
    assert_eq!(m.step(&mut cpu, 0), Ok(()));
    assert_eq!(m.vmsa(0, 0).unwrap().rip(), CODE + 0x100);
    assert!(m.record.stops.is_empty());
}

#[test]
fn ap_reset_hold_stops_as_a_hold() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, 0xc001_0130, 0x006);
    vmgexit(&mut cpu);
    assert_eq!(m.run(&mut cpu, 0), Stop::ResetHold);
    assert_eq!(m.ghcb_msr(0, 0), 0x007);
}
