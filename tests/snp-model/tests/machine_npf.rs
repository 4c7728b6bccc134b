//! Nested page faults: the nested tables start empty and are filled from the RMP on
//! demand; what the RMP refuses becomes #VC 0x404, a host conversion, or a stop that
//! the record names.

mod machine_fixture;
use machine_fixture::*;
use snp_model::access::{npf, Kind};
use snp_model::host::VmsaRef;
use snp_model::machine::walk::C_BIT_MASK;
use snp_model::machine::Stop;
use snp_model::record::RmpFault;
use snp_model::rmp::Perms;

const NPF: u64 = 0x400;
/// What QEMU reports for a data access: U always, the final-GPA bit.
const READ: u64 = npf::USER | npf::FINAL;
const WRITE: u64 = npf::USER | npf::WRITE | npf::FINAL;

/// A machine whose vCPU 0 runs VMPL2 from `VMSA2`.
fn at_vmpl2() -> M {
    let mut m = machine();
    m.mem.write(VMSA2, &boot_vmsa().0).unwrap();
    m.host.vcpus[0].vmsa[2] = Some(VmsaRef::Gpa(VMSA2));
    assert!(m.set_running_vmpl(0, 2));
    m
}

fn vc_code(m: &M, vmpl: u8) -> u64 {
    let v = m.vmsa(0, vmpl).unwrap();
    assert_eq!(v.rip(), HANDLER);
    q(m, v.rsp())
}

#[test]
fn an_allowed_access_maps_the_page_with_what_the_rmp_gives_the_vmpl() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, CODE | C_BIT_MASK | 0x18, |_| {});
    cpu.push(NPF, WRITE, GHCB + 8, |_| {});
    m.step(&mut cpu, 0).unwrap();
    m.step(&mut cpu, 0).unwrap();
    let shared = Perms(Perms::READ | Perms::WRITE);
    assert_eq!(cpu.maps, [(0, CODE, Perms::ALL), (0, GHCB, shared)]);
    let mut m = at_vmpl2();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, READ, READ_ONLY2 | C_BIT_MASK, |_| {});
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(cpu.maps, [(2, READ_ONLY2, Perms(Perms::READ))]);
    assert_eq!(m.record.faults_total, 0);
}

#[test]
fn a_write_the_rmp_refuses_at_vmpl2_is_recorded_and_stops() {
    let mut m = at_vmpl2();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, READ_ONLY2 | C_BIT_MASK | 0x40, |_| {});
    let s = m.step(&mut cpu, 0).unwrap_err();
    let code = npf::PRESENT | npf::WRITE | npf::FINAL | npf::ENC | npf::RMP | npf::VMPL;
    assert_eq!(
        s,
        Stop::RmpFault {
            gpa: READ_ONLY2 + 0x40,
            error_code: code
        }
    );
    assert_eq!(
        m.record.faults,
        [RmpFault {
            gpa: READ_ONLY2 + 0x40,
            vmpl: 2,
            access: Kind::Write,
            error_code: code
        }]
    );
    assert!(cpu.maps.is_empty());
    assert!(m
        .record
        .render()
        .contains("stop vcpu=0 reason=rmp-fault count=1\n"));
}

#[test]
fn an_unvalidated_private_page_is_vc_404() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, READ, FRESH | C_BIT_MASK, |_| {});
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(vc_code(&m, 0), 0x404);
    assert!(cpu.maps.is_empty());
}

#[test]
fn a_private_access_to_a_host_page_is_converted_then_takes_vc_404() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, HOST_PAGE | C_BIT_MASK, |_| {});
    cpu.push(NPF, WRITE, HOST_PAGE | C_BIT_MASK, |_| {});
    m.step(&mut cpu, 0).unwrap();
    assert!(m.rmp.entry(HOST_PAGE).unwrap().assigned);
    assert_eq!(cpu.unmaps, [HOST_PAGE]);
    assert_eq!(m.record.faults_total, 1);
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(vc_code(&m, 0), 0x404);
}

#[test]
fn a_shared_access_outside_memory_is_mmio_vc_400() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, 0xfee0_0000, |_| {});
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(vc_code(&m, 0), 0x400);
    // A private one there is not the guest's memory: the host cannot fix it.
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, READ, 0xfee0_0000 | C_BIT_MASK, |_| {});
    assert!(matches!(
        m.step(&mut cpu, 0),
        Err(Stop::RmpFault {
            gpa: 0xfee0_0000,
            ..
        })
    ));
}

#[test]
fn a_ghcb_page_state_change_unmaps_the_pages_it_names() {
    use snp_model::exit_codes as ec;
    use snp_model::ghcb_page::{off as g, Ghcb};
    let mut m = machine();
    m.host.vcpus[0].ghcb[0] = Some(GHCB);
    let mut p = Ghcb::new();
    p.set(g::SW_EXIT_CODE, ec::PSC);
    p.set(g::SW_EXIT_INFO_1, 0);
    p.set(g::SW_EXIT_INFO_2, 0);
    p.set(g::SW_SCRATCH, GHCB + 0x800);
    p.set_version(2);
    // Header: entries 0..=1; entry 0 makes FRESH shared, entry 1 makes HOST_PAGE private.
    p.0[0x800..0x804].copy_from_slice(&[0, 0, 1, 0]);
    p.0[0x808..0x810].copy_from_slice(&(FRESH | 2 << 52).to_le_bytes());
    p.0[0x810..0x818].copy_from_slice(&(HOST_PAGE | 1 << 52).to_le_bytes());
    m.mem.write(GHCB, &p.0).unwrap();
    let mut cpu = FakeCpu::default();
    wrmsr(&mut cpu, 0xc001_0130, GHCB);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    m.step(&mut cpu, 0).unwrap();
    assert!(!m.rmp.entry(FRESH).unwrap().assigned);
    assert!(m.rmp.entry(HOST_PAGE).unwrap().assigned);
    assert_eq!(cpu.unmaps, [FRESH, HOST_PAGE]);
    assert_eq!(
        q(&m, GHCB + g::SW_EXIT_INFO_2 as u64),
        0,
        "answered without error"
    );
}

#[test]
fn an_msr_protocol_page_state_change_unmaps_its_page() {
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    // PSC request 0x014: GFN in 51:12, operation 2 (shared) in 55:52.
    wrmsr(&mut cpu, 0xc001_0130, FRESH | 2 << 52 | 0x014);
    vmgexit(&mut cpu);
    m.step(&mut cpu, 0).unwrap();
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(m.ghcb_msr(0, 0), 0x015);
    assert!(!m.rmp.entry(FRESH).unwrap().assigned);
    assert_eq!(cpu.unmaps, [FRESH]);
}

#[test]
fn with_paging_off_an_access_without_the_c_bit_is_private() {
    // No PTE carries a C-bit before paging is on: the access is private (APM vol. 2
    // §15.34.5), so a launched page is mapped, never converted to shared.
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, CODE + 0x18, |v| v.set_cr0(v.cr0() & !(1 << 31)));
    m.step(&mut cpu, 0).unwrap();
    assert_eq!(cpu.maps, [(0, CODE, Perms::ALL)]);
    assert_eq!(m.record.faults_total, 0);
    // With paging on, the same GPA without the C-bit is a shared access to a private
    // page: not mapped as the guest's.
    let mut m = machine();
    let mut cpu = FakeCpu::default();
    cpu.push(NPF, WRITE, CODE + 0x18, |_| {});
    let _ = m.step(&mut cpu, 0);
    assert!(!cpu.maps.contains(&(0, CODE, Perms::ALL)), "{:?}", cpu.maps);
}
