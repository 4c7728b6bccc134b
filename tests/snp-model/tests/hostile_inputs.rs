//! Random hostile inputs to every entry point that takes guest- or file-controlled
//! bytes: the model answers (or refuses by name) and never panics, and what it may not
//! touch stays untouched.

use proptest::prelude::*;
use snp_model::ghcb_exits::{handle, Ctx, Exiting, SecurityProcessor};
use snp_model::ghcb_page::{off, Ghcb};
use snp_model::host::{Action, Devices, Host, Profile};
use snp_model::igvm_loader::{plan, HostConfig};
use snp_model::memory::{poison_word, Memory};
use snp_model::psp::Psp;
use snp_model::rmp::{PageSize, Rmp};

const GHCB: u64 = 0x10_0000;
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

fn psp() -> Psp {
    Psp::new([[1; 32], [2; 32], [3; 32], [4; 32]], VCEK_KEY, [0; 48], 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any GHCB page, with any exit code among the known ones and random fields: the
    /// host answers, and a private page of the guest is never written.
    #[test]
    fn any_ghcb_page_is_answered_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 4096),
        code_pick in 0usize..24,
        info1 in any::<u64>(),
        info2 in any::<u64>(),
        scratch_off in 0u64..0x1000,
    ) {
        let codes = [0x27, 0x37, 0x6e, 0x6f, 0x72, 0x76, 0x7b, 0x7c, 0x81, 0x87, 0x89, 0x8a,
            0x8b, 0x8000_0001, 0x8000_0002, 0x8000_0010, 0x8000_0011, 0x8000_0012,
            0x8000_0013, 0x8000_0018, 0x8000_fffd, 0x8000_fffe, 0x8000_ffff, 0x1234];
        let mut g = Ghcb::new();
        g.0.copy_from_slice(&bytes);
        g.set_version(2);
        g.set_usage(0);
        g.set(off::SW_EXIT_CODE, codes[code_pick]);
        g.set(off::SW_EXIT_INFO_1, info1);
        g.set(off::SW_EXIT_INFO_2, info2);
        g.set(off::SW_SCRATCH, GHCB + scratch_off);
        let mut host = Host::new(Profile::default(), 2, 1);
        host.vcpus[0].ghcb[0] = Some(GHCB);
        let mut mem = Memory::new(0x21_0000);
        let mut rmp = Rmp::new(0x210);
        rmp.make_private(0x20_0000, PageSize::Size4K).unwrap();
        mem.write(GHCB, &g.0).unwrap();
        let mut p = psp();
        let mut cx = Ctx { host: &mut host, mem: &mut mem, rmp: &mut rmp, dev: &mut NoDev, psp: &mut p };
        let a = handle(&mut cx, Exiting { vcpu: 0, vmpl: 0, ghcb_gpa: GHCB });
        prop_assert!(!matches!(a, Action::RunVmpl(v) if v > 3));
        // The private page kept its content (poison), whatever the exit named.
        prop_assert_eq!(mem.slice(0x20_0000, 8).unwrap(), &poison_word(0x20_0000).to_le_bytes());
    }

    /// Any message page to the security processor: refused or answered, and the
    /// counter moves only on an answer.
    #[test]
    fn any_guest_message_is_refused_or_answered(bytes in proptest::collection::vec(any::<u8>(), 4096)) {
        let mut p = psp();
        let mut page = [0u8; 4096];
        page.copy_from_slice(&bytes);
        let r = p.guest_request(&page);
        let moved = (0..4).any(|i| p.counter(i) != Some(0));
        prop_assert_eq!(r.is_ok(), moved);
    }

    /// Any bytes as an IGVM file: a plan or a named error, never a panic.
    #[test]
    fn any_igvm_bytes_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = plan(&bytes, HostConfig { vcpus: 1, memory: 16 << 20, reset_aps: None });
    }

    /// Any OVMF-like image: a plan or a named error.
    #[test]
    fn any_ovmf_bytes_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 4096)) {
        let _ = snp_model::ovmf::plan(&bytes, 2, 1, 0x800f12);
    }
}
