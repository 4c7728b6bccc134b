//! The model loads what `vigil-igvm build` writes (the qemu-kvm profile: kernel, boot
//! parameters, secrets and CPUID pages, parameter areas, required memory, the boot VMSA,
//! and an ELF test guest or an OVMF image) and its launch digest equals `vigil-igvm
//! measure` of the same file under the matching loader rules.

use snp_model::igvm_loader::{plan, HostConfig};
use snp_model::launch::{launch, measure};
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::rmp::Rmp;
use vigil_igvm::builder::{build, BuildConfig, Firmware, Profile};
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

/// A minimal x86-64 ELF64 executable, one PT_LOAD per (paddr, bytes, memsz).
fn elf(entry: u64, segs: &[(u64, Vec<u8>, u64)]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    out[0..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, (paddr, bytes, memsz)) in segs.iter().enumerate() {
        let off = out.len() as u64;
        let ph = 64 + 56 * i;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out[ph + 4..ph + 8].copy_from_slice(&7u32.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
        out[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&4096u64.to_le_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(4096), 0);
    }
    out
}

fn cfg(firmware: Firmware) -> BuildConfig {
    let text: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 256) as u8).collect();
    BuildConfig {
        profile: Profile::QemuKvm,
        kernel: elf(
            0x10_0000,
            &[
                (0x10_0000, text, 8192),
                (0x10_2000, vec![0x5a; 100], 5 * 4096),
            ],
        ),
        firmware,
        snp: true,
        native: true,
        vcpus: 2,
        guest_vmpl: 2,
        policy: b"{}".to_vec(),
        guest_policy: 0x30000,
        sev_features: 0x1,
    }
}

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
