//! PVALIDATE, RMPADJUST and RMPQUERY reach the machine as #UD (QEMU's SVM does not have
//! them); the machine decodes the bytes at RIP, translates RAX through the guest's page
//! tables and applies the RMP rules (APM vol. 3).

mod machine_fixture;
use machine_fixture::*;
use snp_model::machine::vmsa::Gpr;
use snp_model::machine::Stop;
use snp_model::rmp::{Perms, PAGE_SIZE};
use snp_model::rmpadjust::rdx;

const UD: u64 = 0x46;

fn pvalidate(cpu: &mut FakeCpu, la: u64, validate: bool) {
    cpu.push(UD, 0, 0, move |v| {
        v.set_rip(PVALIDATE_AT);
        v.set_rax(la);
        v.set_gpr(Gpr::Rcx, 0);
        v.set_gpr(Gpr::Rdx, u64::from(validate));
    });
}

#[test]
fn pvalidate_translates_rax_and_answers_in_rax_cf_and_rip() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    pvalidate(&mut cpu, FRESH + 0x123, true);
    pvalidate(&mut cpu, FRESH, true);
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((v.rax(), v.rflags() & 1, v.rip()), (0, 0, PVALIDATE_AT + 4));
    assert!(m.rmp.entry(FRESH).unwrap().validated);
    assert_eq!(cpu.unmaps, [FRESH], "the page's nested mapping is dropped");
    // Again: no change, CF = 1, EAX = 0.
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((v.rax(), v.rflags() & 1, v.rip()), (0, 1, PVALIDATE_AT + 4));
    assert_eq!(cpu.unmaps.len(), 1);
    assert_eq!(m.record.exits.get(&(UD, 0)), Some(&2));
}

#[test]
fn pvalidate_of_an_unmapped_address_is_a_page_fault_with_cr2() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    pvalidate(&mut cpu, 0x38_0000, true);
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!(v.cr2(), 0x38_0000);
    // #PF, not present, supervisor read: error code 0; the instruction did not complete.
    let pf = 14 | 3 << 8 | 1 << 11 | 1 << 31;
    assert_eq!(v.event_inj(), pf, "pending for the next entry");
    m.step(&mut cpu, 0).unwrap_err();
    assert_eq!(cpu.entries[1].2.event_inj(), pf);
    assert_eq!(cpu.entries[1].2.rip(), PVALIDATE_AT);
    assert_eq!(
        m.vmsa(0, 0).unwrap().event_inj(),
        0,
        "cleared after that entry"
    );
}

#[test]
fn pvalidate_at_cpl3_is_gp_and_changes_nothing() {
    let mut m = machine();
    // User-accessible code, so that CPL3 can fetch the instruction.
    let mut next = 0x9000;
    let c = snp_model::machine::walk::C_BIT_MASK;
    snp_model::machine::walk::map_4k(&mut m.mem, PML4, &mut next, CODE, CODE | c, 6);
    assert_eq!(next, 0x9000, "only the leaf changed");
    let mut cpu = FakeCpu::default();
    cpu.push(UD, 0, 0, |v| {
        v.set_rip(PVALIDATE_AT);
        v.set_rax(FRESH);
        v.set_gpr(Gpr::Rdx, 1);
        v.set_cpl(3);
    });
    m.step(&mut cpu, 0).unwrap();
    assert!(!m.rmp.entry(FRESH).unwrap().validated);
    m.step(&mut cpu, 0).unwrap_err();
    assert_eq!(
        cpu.entries[1].2.event_inj(),
        13 | 3 << 8 | 1 << 11 | 1 << 31
    );
}

#[test]
fn rmpadjust_grants_and_rmpquery_reads_back() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    let grant = Perms(Perms::READ | Perms::WRITE);
    cpu.push(UD, 0, 0, move |v| {
        v.set_rip(RMPADJUST_AT);
        v.set_rax(CODE + 0x40);
        v.set_gpr(Gpr::Rcx, 0);
        v.set_gpr(Gpr::Rdx, rdx(2, grant, false));
    });
    cpu.push(UD, 0, 0, |v| {
        v.set_rip(RMPQUERY_AT);
        v.set_rax(CODE);
        v.set_gpr(Gpr::Rdx, 2);
    });
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!((v.rax(), v.rip()), (0, RMPADJUST_AT + 4));
    assert_eq!(m.rmp.entry(CODE).unwrap().perms[2], grant);
    assert_eq!(cpu.unmaps, [CODE]);
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 0).unwrap();
    assert_eq!(
        (v.rax(), v.gpr(Gpr::Rdx), v.gpr(Gpr::Rcx), v.rip()),
        (0, u64::from(grant.0), 0, RMPQUERY_AT + 4)
    );
}

#[test]
fn pvalidate_of_a_host_page_is_converted_by_the_host_and_retried() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    pvalidate(&mut cpu, HOST_PAGE, true);
    pvalidate(&mut cpu, HOST_PAGE, true);
    m.step(&mut cpu, 0).unwrap();
    // The RMP nested page fault went to the host, which made the page private; RIP
    // stays, so the guest executes PVALIDATE again.
    assert_eq!(m.record.faults_total, 1);
    assert!(m.rmp.entry(HOST_PAGE).unwrap().assigned);
    assert_eq!(m.vmsa(0, 0).unwrap().rip(), PVALIDATE_AT);
    m.step(&mut cpu, 0).unwrap();
    assert!(m.rmp.entry(HOST_PAGE).unwrap().validated);
    assert_eq!(cpu.unmaps, [HOST_PAGE, HOST_PAGE]);
}

#[test]
fn a_2m_rescind_unmaps_all_512_pages() {
    let mut m = machine();
    let base = 0x20_0000;
    m.rmp
        .make_private(base, snp_model::rmp::PageSize::Size2M)
        .unwrap();
    // Identity-map the first page of the 2 MiB range so RAX translates.
    let mut next = 0x9000;
    snp_model::machine::walk::map_4k(
        &mut m.mem,
        PML4,
        &mut next,
        base,
        base | snp_model::machine::walk::C_BIT_MASK,
        2,
    );
    for p in (0x9000..next).step_by(PAGE_SIZE as usize) {
        m.rmp.launch_page(p, false).unwrap();
    }
    let mut cpu = FakeCpu::default();
    cpu.push(UD, 0, 0, move |v| {
        v.set_rip(PVALIDATE_AT);
        v.set_rax(base);
        v.set_gpr(Gpr::Rcx, 1);
        v.set_gpr(Gpr::Rdx, 1);
    });
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.vmsa(0, 0).unwrap().rax(), 0);
    assert!(m.rmp.entry(base + 0x1f_f000).unwrap().validated);
    assert_eq!(cpu.unmaps.len(), 512);
    assert_eq!(cpu.unmaps[511], base + 0x1f_f000);
}

#[test]
fn invlpgb_and_tlbsync_complete_and_other_ud_goes_back_to_the_guest() {
    let mut m = machine();
    m.mem.write(CODE + 0xa0, &[0x0f, 0x01, 0xfe]).unwrap();
    let mut cpu = FakeCpu::default();
    cpu.push(UD, 0, 0, |v| v.set_rip(CODE + 0xa0));
    cpu.push(UD, 0, 0, |v| v.set_rip(UD2_AT));
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.vmsa(0, 0).unwrap().rip(), CODE + 0xa3);
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.step(&mut cpu, 0), Err(Stop::Halted));
    assert_eq!(cpu.entries[2].2.event_inj(), 6 | 3 << 8 | 1 << 31);
    assert_eq!(cpu.entries[2].2.rip(), UD2_AT);
}

#[test]
fn pvalidate_at_vmpl2_answers_fail_permission() {
    let mut m = machine();
    m.mem.write(VMSA2, &boot_vmsa().0).unwrap();
    m.host.vcpus[0].vmsa[2] = Some(snp_model::host::VmsaRef::Gpa(VMSA2));
    assert!(m.set_running_vmpl(0, 2));
    let mut cpu = FakeCpu::default();
    pvalidate(&mut cpu, FRESH, true);
    m.step(&mut cpu, 0).unwrap();
    let v = m.vmsa(0, 2).unwrap();
    assert_eq!((v.rax(), v.rip()), (2, PVALIDATE_AT + 4));
    assert!(!m.rmp.entry(FRESH).unwrap().validated);
    assert!(cpu.unmaps.is_empty());
}
