//! The host's answer to each GHCB page exit, good and malformed, as KVM gives it.

use snp_model::exit_codes::{self as ec, err};
use snp_model::ghcb_exits::{handle, validate, Ctx, Exiting, SecurityProcessor, GP_EVENT};
use snp_model::ghcb_page::{off, Ghcb};
use snp_model::host::{Action, Devices, Fault, Host, Profile, VmsaRef};
use snp_model::memory::Memory;
use snp_model::psc::{PSC_ERROR_INVALID_HDR, PSC_MAX_ENTRIES};
use snp_model::rmp::{PageSize, Rmp};

const GHCB: u64 = 0x10_0000;
const MEM: u64 = 8 << 20;

#[derive(Default)]
struct Dev {
    out: Vec<(u16, u8, u32)>,
    mmio_w: Vec<(u64, Vec<u8>)>,
}

impl Devices for Dev {
    fn io_in(&mut self, port: u16, _size: u8) -> u32 {
        0xa5a5_0000 | u32::from(port)
    }
    fn io_out(&mut self, port: u16, size: u8, value: u32) {
        self.out.push((port, size, value));
    }
    fn mmio_read(&mut self, gpa: u64, out: &mut [u8]) {
        out.fill(gpa as u8);
    }
    fn mmio_write(&mut self, gpa: u64, data: &[u8]) {
        self.mmio_w.push((gpa, data.to_vec()));
    }
}

struct Psp {
    seen: usize,
    fail: Option<u32>,
}

impl SecurityProcessor for Psp {
    fn guest_request(&mut self, req: &[u8; 4096]) -> Result<[u8; 4096], u32> {
        self.seen += 1;
        match self.fail {
            Some(e) => Err(e),
            None => Ok([req[0].wrapping_add(1); 4096]),
        }
    }
}

struct World {
    host: Host,
    mem: Memory,
    rmp: Rmp,
    dev: Dev,
    psp: Psp,
}

impl World {
    fn new() -> World {
        let mut host = Host::new(Profile::default(), 2, 1);
        host.vcpus[0].ghcb[0] = Some(GHCB);
        World {
            host,
            mem: Memory::new(MEM),
            rmp: Rmp::new(MEM / 4096),
            dev: Dev::default(),
            psp: Psp {
                seen: 0,
                fail: None,
            },
        }
    }

    /// Write `g` as the GHCB, exit from vCPU 0 at `vmpl`, read the GHCB back.
    fn exit_at(&mut self, g: &Ghcb, vmpl: u8) -> (Action, Ghcb) {
        self.mem.write(GHCB, &g.0).unwrap();
        let mut cx = Ctx {
            host: &mut self.host,
            mem: &mut self.mem,
            rmp: &mut self.rmp,
            dev: &mut self.dev,
            psp: &mut self.psp,
        };
        let a = handle(
            &mut cx,
            Exiting {
                vcpu: 0,
                vmpl,
                ghcb_gpa: GHCB,
            },
        );
        let mut back = Ghcb::new();
        self.mem.read(GHCB, &mut back.0).unwrap();
        (a, back)
    }

    fn exit(&mut self, g: &Ghcb) -> (Action, Ghcb) {
        self.exit_at(g, 0)
    }
}

fn ghcb(code: u64, info1: u64, info2: u64) -> Ghcb {
    let mut g = Ghcb::new();
    g.set_version(2);
    g.set(off::SW_EXIT_CODE, code);
    g.set(off::SW_EXIT_INFO_1, info1);
    g.set(off::SW_EXIT_INFO_2, info2);
    g
}

fn error_of(g: &Ghcb) -> Option<u64> {
    (g.get(off::SW_EXIT_INFO_1) == Some(2)).then(|| g.get_or_zero(off::SW_EXIT_INFO_2))
}

#[test]
fn ghcb_must_be_set_registered_shared_and_version_2() {
    let mut w = World::new();
    let g = ghcb(ec::CPUID, 0, 0);
    let mut cx = Ctx {
        host: &mut w.host,
        mem: &mut w.mem,
        rmp: &mut w.rmp,
        dev: &mut w.dev,
        psp: &mut w.psp,
    };
    let x = |ghcb_gpa, vmpl| Exiting {
        vcpu: 0,
        vmpl,
        ghcb_gpa,
    };
    assert_eq!(handle(&mut cx, x(0, 0)), Action::Fatal(Fault::GhcbNotSet));
    assert_eq!(
        handle(&mut cx, x(0x20_0000, 0)),
        Action::Fatal(Fault::GhcbNotRegistered { gpa: 0x20_0000 })
    );
    // Registered for VMPL0 only.
    assert_eq!(
        handle(&mut cx, x(GHCB, 2)),
        Action::Fatal(Fault::GhcbNotRegistered { gpa: GHCB })
    );
    let mut w = World::new();
    w.rmp.make_private(GHCB, PageSize::Size4K).unwrap();
    assert_eq!(
        w.exit(&g).0,
        Action::Fatal(Fault::GuestMemory { gpa: GHCB })
    );
    let mut w = World::new();
    let mut v1 = g.clone();
    v1.set_version(1);
    assert_eq!(
        w.exit(&v1).0,
        Action::Fatal(Fault::GhcbVersion { version: 1 })
    );
}

#[test]
fn malformed_ghcbs_get_kvm_error_reasons() {
    let mut w = World::new();
    let mut g = ghcb(ec::CPUID, 0, 0);
    g.set(off::RAX, 1);
    let mut used = g.clone();
    used.set_usage(1);
    assert_eq!(error_of(&w.exit(&used).1), Some(err::INVALID_USAGE));
    // CPUID without RAX; CPUID 0xD without XCR0; no SW_EXITINFO2.
    assert_eq!(
        error_of(&w.exit(&ghcb(ec::CPUID, 0, 0)).1),
        Some(err::MISSING_INPUT)
    );
    let mut d = ghcb(ec::CPUID, 0, 0);
    d.set(off::RAX, 0xd);
    assert_eq!(error_of(&w.exit(&d).1), Some(err::MISSING_INPUT));
    let mut no_info2 = Ghcb::new();
    no_info2.set_version(2);
    no_info2.set(off::SW_EXIT_CODE, ec::CPUID);
    no_info2.set(off::SW_EXIT_INFO_1, 0);
    assert_eq!(validate(&no_info2), Err(err::MISSING_INPUT));
    assert_eq!(
        error_of(&w.exit(&ghcb(0x1234, 0, 0)).1),
        Some(err::INVALID_EVENT)
    );
    // MSR write without RDX; OUT without RAX; VMMCALL without CPL.
    assert_eq!(
        validate(&{
            let mut m = ghcb(ec::MSR, 1, 0);
            m.set(off::RCX, 0x10);
            m.set(off::RAX, 0);
            m
        }),
        Err(err::MISSING_INPUT)
    );
    assert_eq!(
        validate(&ghcb(ec::IOIO, 0x3f8 << 16 | 0x10, 0)),
        Err(err::MISSING_INPUT)
    );
    assert_eq!(
        validate(&{
            let mut m = ghcb(ec::VMMCALL, 0, 0);
            m.set(off::RAX, 0);
            m
        }),
        Err(err::MISSING_INPUT)
    );
}

#[test]
fn cpuid_answers_from_the_model_cpu_and_marks_registers_valid() {
    let mut w = World::new();
    let mut g = ghcb(ec::CPUID, 0, 0);
    g.set(off::RAX, 0x8000_001f);
    let (a, back) = w.exit(&g);
    assert_eq!(a, Action::Resume);
    let want = snp_model::cpuid::cpuid(0x8000_001f, 0);
    assert_eq!(back.get(off::RAX), Some(u64::from(want[0])));
    assert_eq!(back.get(off::RBX), Some(u64::from(want[1])));
    assert_eq!(back.get(off::SW_EXIT_INFO_1), Some(0));
    assert_eq!(back.get(off::SW_EXIT_CODE), None, "valid bitmap cleared");
}

#[test]
fn port_io_plain_and_string() {
    let mut w = World::new();
    let mut out = ghcb(ec::IOIO, (0x3f8 << 16) | 0x10, 0);
    out.set(off::RAX, 0x1234_5641);
    w.exit(&out);
    assert_eq!(w.dev.out, vec![(0x3f8, 1, 0x41)]);
    // IN of 2 bytes keeps RAX's upper bits; IN of 4 zero-extends.
    let mut in2 = ghcb(ec::IOIO, (0x60 << 16) | 0x20 | 1, 0);
    in2.set(off::RAX, 0xffff_ffff_ffff_ffff);
    assert_eq!(w.exit(&in2).1.get(off::RAX), Some(0xffff_ffff_ffff_0060));
    let mut in4 = ghcb(ec::IOIO, (0x60 << 16) | 0x40 | 1, 0);
    in4.set(off::RAX, u64::MAX);
    assert_eq!(w.exit(&in4).1.get(off::RAX), Some(0xa5a5_0060));
    // String OUT of 3 bytes from the shared buffer.
    let mut s = ghcb(ec::IOIO, (0x3f8 << 16) | 0x10 | 4 | 8, 3);
    s.set(off::SW_SCRATCH, GHCB + 0x800);
    s.0[0x800..0x803].copy_from_slice(b"abc");
    w.dev.out.clear();
    w.exit(&s);
    assert_eq!(
        w.dev.out,
        vec![(0x3f8, 1, 0x61), (0x3f8, 1, 0x62), (0x3f8, 1, 0x63)]
    );
    // Scratch inside the GHCB but outside the shared buffer; size field 3.
    s.set(off::SW_SCRATCH, GHCB + 0x100);
    assert_eq!(error_of(&w.exit(&s).1), Some(err::INVALID_SCRATCH_AREA));
    s.set(off::SW_SCRATCH, GHCB + 0xfe0);
    s.set(off::SW_EXIT_INFO_2, 0x20);
    assert_eq!(error_of(&w.exit(&s).1), Some(err::INVALID_SCRATCH_AREA));
    let mut bad = ghcb(ec::IOIO, (0x3f8 << 16) | 0x30, 0);
    bad.set(off::RAX, 0);
    assert_eq!(error_of(&w.exit(&bad).1), Some(err::INVALID_INPUT));
}

#[test]
fn msr_access_is_refused_with_a_gp_event() {
    let mut w = World::new();
    let mut g = ghcb(ec::MSR, 0, 0);
    g.set(off::RCX, 0xc001_0131);
    let (_, back) = w.exit(&g);
    assert_eq!(back.get(off::SW_EXIT_INFO_1), Some(1));
    assert_eq!(back.get(off::SW_EXIT_INFO_2), Some(GP_EVENT));
    assert_eq!(GP_EVENT, 0x8000_030d);
}

#[test]
fn mmio_read_and_write_through_the_scratch_buffer() {
    let mut w = World::new();
    let mut r = ghcb(ec::MMIO_READ, 0xfed0_0042, 4);
    r.set(off::SW_SCRATCH, GHCB + 0x800);
    let (_, back) = w.exit(&r);
    assert_eq!(&back.0[0x800..0x804], &[0x42; 4]);
    let mut wr = ghcb(ec::MMIO_WRITE, 0xfed0_0000, 2);
    wr.set(off::SW_SCRATCH, GHCB + 0x800);
    wr.0[0x800..0x802].copy_from_slice(&[1, 2]);
    w.exit(&wr);
    assert_eq!(w.dev.mmio_w, vec![(0xfed0_0000, vec![1, 2])]);
}

#[test]
fn page_state_change_descriptor_in_the_shared_buffer() {
    let mut w = World::new();
    let mut g = ghcb(ec::PSC, 0, 0);
    g.set(off::SW_SCRATCH, GHCB + 0x800);
    // One entry: GFN 0x300 to private.
    g.0[0x802..0x804].copy_from_slice(&0u16.to_le_bytes());
    g.0[0x808..0x810].copy_from_slice(&((1u64 << 52) | (0x300 << 12)).to_le_bytes());
    let (_, back) = w.exit(&g);
    assert_eq!(back.get(off::SW_EXIT_INFO_2), Some(0));
    assert!(w.rmp.entry(0x30_0000).unwrap().assigned);
    assert_eq!(u16::from_le_bytes([back.0[0x800], back.0[0x801]]), 1);
    g.0[0x802..0x804].copy_from_slice(&(PSC_MAX_ENTRIES as u16).to_le_bytes());
    assert_eq!(
        w.exit(&g).1.get(off::SW_EXIT_INFO_2),
        Some(PSC_ERROR_INVALID_HDR)
    );
    // The descriptor does not fit behind this scratch address.
    g.set(off::SW_SCRATCH, GHCB + 0x900);
    assert_eq!(error_of(&w.exit(&g).1), Some(err::INVALID_SCRATCH_AREA));
}

#[test]
fn guest_requests_reach_the_psp_and_firmware_errors_reach_the_guest() {
    let mut w = World::new();
    w.mem.write(0x20_0000, &[7; 4096]).unwrap();
    let g = ghcb(ec::GUEST_REQUEST, 0x20_0000, 0x20_1000);
    let (a, back) = w.exit(&g);
    assert_eq!(a, Action::Resume);
    assert_eq!(back.get(off::SW_EXIT_INFO_2), Some(0));
    assert_eq!(w.mem.slice(0x20_1000, 4).unwrap(), &[8; 4]);
    w.psp.fail = Some(0x16);
    assert_eq!(w.exit(&g).1.get(off::SW_EXIT_INFO_2), Some(0x16));
    // A request page beyond memory: KVM_RUN fails (-EIO).
    let far = ghcb(ec::GUEST_REQUEST, MEM, 0x20_1000);
    assert_eq!(
        w.exit(&far).0,
        Action::Fatal(Fault::GuestMemory { gpa: MEM })
    );
}

#[test]
fn extended_report_request_needs_rax_rbx_and_gets_an_empty_cert_table() {
    let mut w = World::new();
    let mut req = [0u8; 4096];
    req[0x34] = 5; // MSG_REPORT_REQ
    w.mem.write(0x20_0000, &req).unwrap();
    w.mem.write(0x30_0000, &[0xee; 64]).unwrap();
    let g = ghcb(ec::EXT_GUEST_REQUEST, 0x20_0000, 0x20_1000);
    assert_eq!(error_of(&w.exit(&g).1), Some(err::INVALID_INPUT));
    assert_eq!(w.psp.seen, 0);
    let mut ok = g.clone();
    ok.set(off::RAX, 0x30_0000);
    ok.set(off::RBX, 1);
    assert_eq!(w.exit(&ok).1.get(off::SW_EXIT_INFO_2), Some(0));
    assert_eq!(w.mem.slice(0x30_0000, 25).unwrap()[..24], [0; 24]);
    assert_eq!(w.mem.slice(0x30_0000, 25).unwrap()[24], 0xee);
    let mut unaligned = ok.clone();
    unaligned.set(off::RAX, 0x30_0010);
    assert_eq!(error_of(&w.exit(&unaligned).1), Some(err::INVALID_INPUT));
}

fn ap(request: u64, vmpl: u64, apic: u64, vmsa: u64, rax: u64) -> Ghcb {
    let mut g = ghcb(ec::AP_CREATION, (apic << 32) | (vmpl << 16) | request, vmsa);
    g.set(off::RAX, rax);
    g
}

#[test]
fn ap_creation_with_its_vmpl_field_and_kvm_checks() {
    let mut w = World::new();
    assert_eq!(w.exit(&ap(1, 2, 1, 0x40_1000, 1)).0, Action::Resume);
    assert_eq!(w.host.vcpus[1].vmsa[2], Some(VmsaRef::Gpa(0x40_1000)));
    assert!(w.host.vcpus[1].waiting_for_reset);
    assert_eq!(w.exit(&ap(2, 2, 1, 0, 0)).0, Action::Resume);
    assert_eq!(w.host.vcpus[1].vmsa[2], None);
    // Every refusal is an error answer and the requester runs on (KVM
    // `sev_handle_vmgexit`: SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_INVALID_INPUT),
    // and the target vCPU is left as it was.
    let refused = |w: &mut World, g: Ghcb, at: u8| {
        let before = w.host.vcpus[1].vmsa;
        let (a, back) = w.exit_at(&g, at);
        assert_eq!(a, Action::Resume);
        assert_eq!(error_of(&back), Some(err::INVALID_INPUT));
        assert_eq!(w.host.vcpus[1].vmsa, before);
    };
    // An APIC ID the VM does not have (the model's host has 2 vCPUs).
    refused(&mut w, ap(1, 0, 7, 0x40_1000, 1), 0);
    refused(&mut w, ap(1, 0, 2, 0x40_1000, 1), 0);
    // SEV features other than the VMPL's.
    refused(&mut w, ap(1, 0, 1, 0x40_1000, 0x21), 0);
    // VMSA GPAs: 2 MiB aligned, not page aligned, above MAXPHYADDR.
    refused(&mut w, ap(1, 0, 1, 0x40_0000, 1), 0);
    refused(&mut w, ap(1, 0, 1, 0x40_1008, 1), 0);
    refused(&mut w, ap(1, 0, 1, 1 << 52 | 0x1000, 1), 0);
    // An unknown request type.
    refused(&mut w, ap(3, 0, 1, 0x40_1000, 1), 0);
    // VMPL2 asking for a VMPL0 VMSA.
    w.host.vcpus[0].ghcb[2] = Some(GHCB);
    refused(&mut w, ap(1, 0, 1, 0x40_1000, 1), 2);
    // Destroy needs no RAX.
    assert_eq!(validate(&ghcb(ec::AP_CREATION, 2, 0)), Ok(ec::AP_CREATION));
}

#[test]
fn run_vmpl_switches_to_a_vmpl_with_a_vmsa_and_refuses_others() {
    let mut w = World::new();
    w.host.vcpus[0].vmsa[2] = Some(VmsaRef::Gpa(0x40_1000));
    let (a, back) = w.exit(&ghcb(ec::SNP_RUN_VMPL, 2, 0));
    assert_eq!(a, Action::RunVmpl(2));
    assert_eq!(back.get(off::SW_EXIT_INFO_1), Some(0));
    // Only bits 31:0 name the VMPL.
    assert_eq!(
        w.exit(&ghcb(ec::SNP_RUN_VMPL, (1 << 32) | 2, 0)).0,
        Action::RunVmpl(2)
    );
    for bad in [1, 0, 4, u64::MAX] {
        let (a, back) = w.exit(&ghcb(ec::SNP_RUN_VMPL, bad, 0));
        assert_eq!(a, Action::Resume, "VMPL {bad}");
        assert_eq!(error_of(&back), Some(err::INVALID_INPUT));
    }
}

#[test]
fn hv_features_termination_and_unsupported_event() {
    let mut w = World::new();
    let (_, back) = w.exit(&ghcb(ec::HV_FEATURES, 0, 0));
    assert_eq!(back.get(off::SW_EXIT_INFO_2), Some(0b10_0011));
    assert_eq!(
        w.exit(&ghcb(ec::TERM_REQUEST, (0x12 << 4) | 1, 0)).0,
        Action::Terminate { set: 1, code: 0x12 }
    );
    assert_eq!(
        w.exit(&ghcb(ec::UNSUPPORTED, 0, 0)).0,
        Action::Fatal(Fault::UnsupportedEvent)
    );
    let mut v = ghcb(ec::VMMCALL, 0, 0);
    v.set(off::RAX, 0);
    v.set_cpl(0);
    assert_eq!(w.exit(&v).1.get(off::RAX), Some((-1000i64) as u64));
}
