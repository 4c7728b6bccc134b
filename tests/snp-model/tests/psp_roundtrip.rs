//! A guest request round trip through the model: the guest seals MSG_REPORT_REQ under a
//! VMPCK, the host passes it on (GHCB guest-request exit), the model's security
//! processor answers with a signed report v5, and Vigil's verifier (the attestation
//! crate behind `vigil-verify --allow-test-root`) accepts it, with MEASUREMENT equal to
//! the model's launch digest.

use attestation::certs::parse_blob;
use attestation::policy::Policy;
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Status, Verifier};
use snp_model::exit_codes as ec;
use snp_model::ghcb_exits::{handle, Ctx, Exiting};
use snp_model::ghcb_page::{off, Ghcb};
use snp_model::guest_msg::{msg_type, open, seal, Header};
use snp_model::host::{Action, Devices, Host, Profile};
use snp_model::launch::{launch, Page, Plan};
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::psp::{status, Psp};
use snp_model::rmp::Rmp;

const VCEK_KEY: &[u8] = include_bytes!("../testdata/vcek-key.pk8.der");
const ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../attestation/testdata/test-root"
);
const KEYS: [[u8; 32]; 4] = [[0x10; 32], [0x11; 32], [0x12; 32], [0x13; 32]];
const GHCB: u64 = 0x10_0000;
const REQ: u64 = 0x11_0000;
const RSP: u64 = 0x12_0000;
/// 2026-03-01, inside the test chain's validity.
const NOW: i64 = 1_772_323_200;

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
    let mut mem = Memory::new(4 << 20);
    let mut rmp = Rmp::new(1024);
    let plan = Plan {
        pages: vec![
            Page {
                gpa: 0x20_0000,
                page_type: PageType::Normal,
                data: b"the guest's code".to_vec(),
            },
            Page {
                gpa: 0x20_1000,
                page_type: PageType::Secrets,
                data: vec![],
            },
        ],
        vmsas: vec![vec![0x5a; 4096]],
        policy: 0x30000,
    };
    let l = launch(&plan, &mut mem, &mut rmp, &KEYS).unwrap();
    let psp = Psp::new(KEYS, VCEK_KEY, l.digest, l.policy).unwrap();
    let mut host = Host::new(Profile::default(), 1, 1);
    host.vcpus[0].ghcb[0] = Some(GHCB);
    Machine {
        host,
        mem,
        rmp,
        psp,
        digest: l.digest,
    }
}

fn report_req(data: [u8; 64], vmpl: u32) -> Vec<u8> {
    let mut p = vec![0u8; 0x60];
    p[..64].copy_from_slice(&data);
    p[0x40..0x44].copy_from_slice(&vmpl.to_le_bytes());
    p
}

impl Machine {
    /// The guest's side: write the sealed request, VMGEXIT, return SW_EXITINFO2.
    fn request(&mut self, key: &[u8; 32], vmpck: u8, seqno: u64, body: &[u8]) -> u64 {
        let h = Header {
            seqno,
            msg_type: msg_type::REPORT_REQ,
            msg_version: 1,
            vmpck,
        };
        self.mem.write(REQ, &seal(key, h, body).unwrap()).unwrap();
        let mut g = Ghcb::new();
        g.set_version(2);
        g.set(off::SW_EXIT_CODE, ec::GUEST_REQUEST);
        g.set(off::SW_EXIT_INFO_1, REQ);
        g.set(off::SW_EXIT_INFO_2, RSP);
        self.mem.write(GHCB, &g.0).unwrap();
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
        assert_eq!(a, Action::Resume);
        self.mem.read(GHCB, &mut g.0).unwrap();
        g.get_or_zero(off::SW_EXIT_INFO_2)
    }

    /// The guest opens the response: (seqno, STATUS, report bytes).
    fn response(&self, key: &[u8; 32]) -> (u64, u32, Vec<u8>) {
        let mut p = [0u8; 4096];
        self.mem.read(RSP, &mut p).unwrap();
        let (h, body) = open(key, &p).expect("response opens under the same VMPCK");
        assert_eq!(h.msg_type, msg_type::REPORT_RSP);
        let st = u32::from_le_bytes(body[0..4].try_into().unwrap());
        let size = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
        (h.seqno, st, body[0x20..0x20 + size].to_vec())
    }
}

fn verify(report: &[u8]) -> attestation::verify::Outcome {
    let mut certs = Vec::new();
    for f in ["vcek.pem", "ask.pem", "ark.pem"] {
        let b = std::fs::read(format!("{ROOT}/{f}")).unwrap();
        certs.extend(parse_blob(&b, f).unwrap());
    }
    let ev = Evidence {
        report: report.to_vec(),
        certs,
        ..Default::default()
    };
    let opt = Options {
        product: None,
        at: NOW,
        allow_test_root: true,
        policy: Policy::default(),
    };
    Verifier::new(TrustStore::builtin().unwrap()).verify(&ev, &opt)
}

#[test]
fn report_round_trip_verifies_and_binds_the_launch_digest() {
    let mut m = machine();
    assert_eq!(m.request(&KEYS[0], 0, 1, &report_req([0xab; 64], 0)), 0);
    let (seq, st, report) = m.response(&KEYS[0]);
    assert_eq!((seq, st, report.len()), (2, status::SUCCESS, 0x4a0));
    assert_eq!(
        &report[0x90..0xc0],
        &m.digest,
        "MEASUREMENT = launch digest"
    );
    assert_eq!(&report[0x50..0x90], &[0xab; 64]);
    assert_eq!(&report[0..4], &5u32.to_le_bytes());
    let o = verify(&report);
    for c in &o.checks {
        assert_ne!(c.status, Status::Fail, "{}: {}", c.name, c.detail);
    }
    assert!(o.verified(), "{:?}", o.checks);
    assert!(o.test_root);
    assert_eq!(
        o.check("report.signature").map(|c| c.status),
        Some(Status::Pass)
    );
    // A flipped measurement byte breaks the signature.
    let mut bad = report.clone();
    bad[0x90] ^= 1;
    assert!(!verify(&bad).verified());
}

#[test]
fn vmpck2_reports_vmpl2_and_may_not_claim_vmpl0() {
    let mut m = machine();
    assert_eq!(m.request(&KEYS[2], 2, 1, &report_req([1; 64], 2)), 0);
    let (_, st, report) = m.response(&KEYS[2]);
    assert_eq!(st, status::SUCCESS);
    assert_eq!(&report[0x30..0x34], &2u32.to_le_bytes());
    assert!(verify(&report).verified());
    // VMPCK2 asking for a VMPL0 report: the command succeeds, STATUS says no.
    assert_eq!(m.request(&KEYS[2], 2, 3, &report_req([1; 64], 0)), 0);
    let (seq, st, report) = m.response(&KEYS[2]);
    assert_eq!((seq, st, report.len()), (4, status::INVALID_PARAM, 0));
    // VMPL 4 does not exist.
    assert_eq!(m.request(&KEYS[2], 2, 5, &report_req([1; 64], 4)), 0);
    assert_eq!(m.response(&KEYS[2]).1, status::INVALID_PARAM);
}

#[test]
fn replayed_skipped_or_forged_requests_are_refused_and_not_counted() {
    let mut m = machine();
    assert_eq!(m.request(&KEYS[0], 0, 1, &report_req([0; 64], 0)), 0);
    let inv = u64::from(status::INVALID_PARAM);
    // Replay of sequence number 1, a skip to 5, the wrong key, a wrong VMPCK index.
    assert_eq!(m.request(&KEYS[0], 0, 1, &report_req([0; 64], 0)), inv);
    assert_eq!(m.request(&KEYS[0], 0, 5, &report_req([0; 64], 0)), inv);
    assert_eq!(m.request(&KEYS[1], 0, 3, &report_req([0; 64], 0)), inv);
    assert_eq!(m.request(&KEYS[0], 1, 1, &report_req([0; 64], 0)), inv);
    assert_eq!(m.psp.counter(0), Some(2));
    assert_eq!(m.psp.counter(1), Some(0));
    // The next in-order request still works.
    assert_eq!(m.request(&KEYS[0], 0, 3, &report_req([0; 64], 0)), 0);
    assert_eq!(m.response(&KEYS[0]).0, 4);
    // A short report request body gets STATUS INVALID_PARAM.
    assert_eq!(m.request(&KEYS[0], 0, 5, &[0; 0x40]), 0);
    assert_eq!(m.response(&KEYS[0]).1, status::INVALID_PARAM);
}

#[test]
fn the_test_key_copy_equals_the_attestation_crates() {
    let theirs = std::fs::read(format!("{ROOT}/vcek-key.pk8.der")).unwrap();
    assert_eq!(VCEK_KEY, theirs.as_slice());
    assert!(Psp::new(KEYS, b"not a key", [0; 48], 0).is_err());
}
