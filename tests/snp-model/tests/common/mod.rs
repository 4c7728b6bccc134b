//! IGVM files the tests build: the qemu-kvm profile written directive by directive with
//! the igvm crate (`profile_file`), and `vigil-igvm build` inputs (`elf`, `build_cfg`).
//! Shared by launch_digest.rs, vigil_igvm_build.rs and igvm_readers.rs.
#![allow(dead_code)]

use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType, IGVM_VHS_PARAMETER,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
};
use vigil_igvm::builder::{BuildConfig, Firmware, Profile};
use zerocopy::{FromZeros, IntoBytes};

pub const MASK: u32 = 1;
pub const MEM: u64 = 16 << 20;

fn page(
    gpa: u64,
    data: Vec<u8>,
    t: IgvmPageDataType,
    flags: IgvmPageDataFlags,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: MASK,
        flags,
        data_type: t,
        data,
    }
}

fn normal(gpa: u64, data: Vec<u8>) -> IgvmDirectiveHeader {
    page(
        gpa,
        data,
        IgvmPageDataType::NORMAL,
        IgvmPageDataFlags::new(),
    )
}

fn vmsa(vp: u16, rip: u64) -> IgvmDirectiveHeader {
    let mut v = igvm::snp_defs::SevVmsa::new_zeroed();
    // Any bytes will do: both sides measure the VMSA page as given.
    let b = v.as_mut_bytes();
    b[0x178..0x180].copy_from_slice(&rip.to_le_bytes());
    b[0x3b0..0x3b8].copy_from_slice(&1u64.to_le_bytes());
    IgvmDirectiveHeader::SnpVpContext {
        gpa: 0xFFFF_FFFF_F000,
        compatibility_mask: MASK,
        vp_index: vp,
        vmsa: Box::new(v),
    }
}

/// Every directive kind of the qemu-kvm profile: data pages (one short), a data-less run
/// (ZERO), a run mixing data and data-less pages (NORMAL zeros), an unmeasured page,
/// secrets, CPUID, two parameter areas, required memory, one VMSA per vCPU.
pub fn profile_file(vcpus: u16) -> Vec<u8> {
    let mut d = vec![
        normal(0x10_0000, vec![0x90; 4096]),
        normal(0x10_1000, b"short page".to_vec()),
        normal(0x10_2000, vec![]),
    ];
    for i in 0..3 {
        d.push(normal(0x20_0000 + i * 0x1000, vec![]));
    }
    let mut unmeasured = IgvmPageDataFlags::new();
    unmeasured.set_unmeasured(true);
    d.push(page(
        0x30_0000,
        vec![],
        IgvmPageDataType::NORMAL,
        unmeasured,
    ));
    d.push(page(
        0x7f_d000,
        vec![],
        IgvmPageDataType::SECRETS,
        IgvmPageDataFlags::new(),
    ));
    d.push(page(
        0x7f_e000,
        vec![],
        IgvmPageDataType::CPUID_DATA,
        IgvmPageDataFlags::new(),
    ));
    for (index, gpa) in [(0u32, 0x7f_b000u64), (1, 0x7f_c000)] {
        d.push(IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 4096,
            parameter_area_index: index,
            initial_data: vec![],
        });
        let p = IGVM_VHS_PARAMETER {
            parameter_area_index: index,
            byte_offset: 0,
        };
        d.push(if index == 0 {
            IgvmDirectiveHeader::MemoryMap(p)
        } else {
            IgvmDirectiveHeader::VpCount(p)
        });
        d.push(IgvmDirectiveHeader::ParameterInsert(
            IGVM_VHS_PARAMETER_INSERT {
                gpa,
                compatibility_mask: MASK,
                parameter_area_index: index,
            },
        ));
    }
    d.push(IgvmDirectiveHeader::RequiredMemory {
        gpa: 0x10_0000,
        compatibility_mask: MASK,
        number_of_bytes: 0x70_0000,
        vtl2_protectable: false,
    });
    for vp in 0..vcpus {
        d.push(vmsa(vp, 0x10_0000 + u64::from(vp)));
    }
    let platforms = vec![IgvmPlatformHeader::SupportedPlatform(
        IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: MASK,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::SEV_SNP,
            platform_version: 1,
            shared_gpa_boundary: 0,
        },
    )];
    let inits = vec![IgvmInitializationHeader::GuestPolicy {
        policy: 0x30000,
        compatibility_mask: MASK,
    }];
    let f = IgvmFile::new(IgvmRevision::V1, platforms, inits, d).expect("valid IGVM");
    let mut out = Vec::new();
    f.serialize(&mut out).expect("serialize");
    out
}

/// A minimal x86-64 ELF64 executable, one PT_LOAD per (paddr, bytes, memsz).
pub fn elf(entry: u64, segs: &[(u64, Vec<u8>, u64)]) -> Vec<u8> {
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

pub fn build_cfg(firmware: Firmware) -> BuildConfig {
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
