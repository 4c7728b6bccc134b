//! Vigil's own client side of the GHCB and of the guest-request channel (the monitor's
//! `ghcb` and `guest_request` modules, written from the same specs by other hands)
//! against the model's host and security processor: each request the monitor builds is
//! answered by the model, and the monitor's checks accept the answer.

use monitor::addr::{Gpa, PageSize as MonSize, Vmpl};
use monitor::ghcb::{
    ap_create_request, check_psc_answer, check_simple_answer, guest_request_request, psc_request,
    PscProgress,
};
use monitor::guest_request::Channel;
use monitor::platform::{ApOp, PscOp, PscRequest};
use snp_model::ghcb_exits::{handle, Ctx, Exiting};
use snp_model::host::{Action, Devices, Host, Profile, VmsaRef};
use snp_model::launch::{launch, Page, Plan};
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::psp::Psp;
use snp_model::rmp::Rmp;
use zerocopy::IntoBytes;

const GHCB: u64 = 0x10_0000;
const REQ: u64 = 0x11_0000;
const RSP: u64 = 0x12_0000;
const KEYS: [[u8; 32]; 4] = [[0x20; 32], [0x21; 32], [0x22; 32], [0x23; 32]];
const VCEK_KEY: &[u8] = include_bytes!("../testdata/vcek-key.pk8.der");

struct NoDev;
impl Devices for NoDev {
    fn io_in(&mut self, _: u16, _: u8) -> u32 {
        0
    }
    fn io_out(&mut self, _: u16, _: u8, _: u32) {}
    fn mmio_read(&mut self, _: u64, _: &mut [u8]) {}
    fn mmio_write(&mut self, _: u64, _: &[u8]) {}
}

struct Machine {
    host: Host,
    mem: Memory,
    rmp: Rmp,
    psp: Psp,
    digest: [u8; 48],
}

fn machine() -> Machine {
    let mut mem = Memory::new(8 << 20);
    let mut rmp = Rmp::new(2048);
    let plan = Plan {
        pages: vec![Page {
            gpa: 0x20_0000,
            page_type: PageType::Normal,
            data: b"vigil".to_vec(),
        }],
        vmsas: vec![vec![1; 4096]],
        policy: 0x30000,
    };
    let l = launch(&plan, &mut mem, &mut rmp, &KEYS).unwrap();
    let mut host = Host::new(Profile::default(), 2, 1);
    host.vcpus[0].ghcb[0] = Some(GHCB);
    Machine {
        host,
        mem,
        rmp,
        psp: Psp::new(KEYS, VCEK_KEY, l.digest, l.policy).unwrap(),
        digest: l.digest,
    }
}

impl Machine {
    /// Put the monitor's GHCB in place, exit, and return the page the host left.
    fn exit(&mut self, ghcb: &[u8]) -> (Action, [u8; 4096]) {
        self.mem.write(GHCB, ghcb).unwrap();
        let mut cx = Ctx {
            host: &mut self.host,
            mem: &mut self.mem,
            rmp: &mut self.rmp,
            dev: &mut NoDev,
            psp: &mut self.psp,
        };
        let a = handle(
            &mut cx,
            Exiting {
                vcpu: 0,
                vmpl: 0,
                ghcb_gpa: GHCB,
            },
        );
        let mut back = [0u8; 4096];
        self.mem.read(GHCB, &mut back).unwrap();
        (a, back)
    }
}

#[test]
fn monitor_psc_request_is_done_by_the_model_and_accepted() {
    let mut m = machine();
    let req = [
        PscRequest {
            gpa: Gpa(0x30_0000),
            size: MonSize::Size4K,
            op: PscOp::Private,
        },
        PscRequest {
            gpa: Gpa(0x40_0000),
            size: MonSize::Size2M,
            op: PscOp::Private,
        },
    ];
    let sent = psc_request(Gpa(GHCB), &req).unwrap();
    let (a, back) = m.exit(sent.as_bytes());
    assert_eq!(a, Action::Resume);
    assert_eq!(check_psc_answer(&sent, &back), Ok(PscProgress::Done));
    assert!(m.rmp.entry(0x30_0000).unwrap().assigned);
    assert!(m.rmp.entry(0x5f_f000).unwrap().assigned);
    // Back to shared.
    let back_req = [PscRequest {
        gpa: Gpa(0x30_0000),
        size: MonSize::Size4K,
        op: PscOp::Shared,
    }];
    let sent = psc_request(Gpa(GHCB), &back_req).unwrap();
    let (_, back) = m.exit(sent.as_bytes());
    assert_eq!(check_psc_answer(&sent, &back), Ok(PscProgress::Done));
    assert!(!m.rmp.entry(0x30_0000).unwrap().assigned);
}

#[test]
fn monitor_ap_creation_reaches_the_right_vmpl() {
    let mut m = machine();
    let vmpl2 = Vmpl::new(2).unwrap();
    let sent = ap_create_request(ApOp::Create, 1, vmpl2, Gpa(0x40_1000), 1);
    let (a, back) = m.exit(sent.as_bytes());
    assert_eq!(a, Action::Resume);
    assert_eq!(check_simple_answer(&back), Ok(()));
    assert_eq!(m.host.vcpus[1].vmsa[2], Some(VmsaRef::Gpa(0x40_1000)));
    let sent = ap_create_request(ApOp::Destroy, 1, vmpl2, Gpa(0x40_1000), 1);
    let (_, back) = m.exit(sent.as_bytes());
    assert_eq!(check_simple_answer(&back), Ok(()));
    assert_eq!(m.host.vcpus[1].vmsa[2], None);
}

#[test]
fn monitor_vmpck0_channel_gets_reports_from_the_model_psp() {
    let mut m = machine();
    let mut ch = Channel::new(KEYS[0]);
    for nonce in [1u8, 2, 3] {
        let mut body = [0u8; 0x60];
        body[..64].fill(nonce);
        let page = ch.request(5, 1, &body).unwrap();
        m.mem.write(REQ, &page).unwrap();
        let sent = guest_request_request(Gpa(REQ), Gpa(RSP));
        let (a, back) = m.exit(sent.as_bytes());
        assert_eq!(a, Action::Resume);
        assert_eq!(check_simple_answer(&back), Ok(()), "request {nonce}");
        let mut rsp = [0u8; 4096];
        m.mem.read(RSP, &mut rsp).unwrap();
        let (_, out) = ch
            .response(&rsp, 6)
            .expect("the monitor opens the model's answer");
        let report = &out[0x60 + 0x20..0x60 + 0x20 + 0x4a0];
        assert_eq!(&out[0x60..0x64], &[0; 4], "STATUS success");
        assert_eq!(&report[0x50..0x90], &[nonce; 64]);
        assert_eq!(&report[0x90..0xc0], &m.digest);
    }
}
