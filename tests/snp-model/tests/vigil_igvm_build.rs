//! The model loads what `vigil-igvm build` writes (the qemu-kvm profile: kernel, boot
//! parameters, secrets and CPUID pages, parameter areas, required memory, the boot VMSA,
//! and an ELF test guest or an OVMF image) and its launch digest equals `vigil-igvm
//! measure` of the same file under the matching loader rules.

use snp_model::igvm_loader::{plan, HostConfig};
use snp_model::launch::{launch, measure};
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::rmp::Rmp;
use vigil_igvm::builder::{build, Firmware};
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

mod common;
use common::{build_cfg as cfg, elf};

fn vigil(bytes: &[u8], vcpus: u32) -> [u8; 48] {
    let rules = LoaderRules {
        vcpus: Some(vcpus),
        vcpu_sig: 0x800f12,
        ..LoaderRules::default()
    };
    measure_file(bytes, Platform::Snp, &rules, false)
        .unwrap()
        .measurement
        .digest
}

#[test]
fn elf_guest_file_launches_and_digests_agree() {
    let guest = elf(0x100_0000, &[(0x100_0000, vec![0xf4; 4096], 4096)]);
    let built = build(&cfg(Firmware::Elf(guest))).unwrap();
    for vcpus in [1, 2] {
        let host = HostConfig {
            vcpus,
            memory: 32 << 20,
            reset_aps: Some(0x800f12),
        };
        let p = plan(&built.bytes, host).unwrap();
        // The secrets and CPUID pages of the profile are where the builder put them.
        let t = |gpa| p.pages.iter().find(|x| x.gpa == gpa).map(|x| x.page_type);
        assert_eq!(t(0x7f_d000), Some(PageType::Secrets));
        assert_eq!(t(0x7f_e000), Some(PageType::Cpuid));
        let mut mem = Memory::new(32 << 20);
        let mut rmp = Rmp::new((32 << 20) / 4096);
        let l = launch(&p, &mut mem, &mut rmp, &[[9; 32]; 4]).unwrap();
        assert_eq!(l.digest, vigil(&built.bytes, vcpus), "{vcpus} vCPUs");
        assert_eq!(l.policy, 0x30000);
        // The kernel's text is in memory, validated; its bss is zero.
        assert_eq!(mem.slice(0x10_0001, 1).unwrap(), &[31]);
        assert!(rmp.entry(0x10_0000).unwrap().validated);
        assert_eq!(mem.slice(0x10_3000, 8).unwrap(), &[0; 8]);
    }
}

#[test]
fn ovmf_file_digests_agree() {
    let ovmf = include_bytes!("../testdata/ovmf_AmdSev_suffix.bin").to_vec();
    let built = build(&cfg(Firmware::Ovmf(ovmf))).unwrap();
    let host = HostConfig {
        vcpus: 1,
        memory: 1 << 32,
        reset_aps: None,
    };
    // OVMF ends at 4 GiB: measured without allocating the guest's memory.
    let p = plan(&built.bytes, host).unwrap();
    assert_eq!(measure(&p, &[[0; 32]; 4]).unwrap(), vigil(&built.bytes, 1));
}
