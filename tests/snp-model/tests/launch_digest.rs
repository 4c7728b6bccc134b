//! Two implementations of the SNP launch digest, written apart, on the same IGVM file:
//! the model's loader and security processor (`snp_model::igvm_loader` + `launch`) and
//! `vigil-igvm measure` (`vigil_igvm::igvm_measure`) under the matching loader rules
//! (QEMU+KVM: VMSAs last at 0xFFFFFFFFF000, QEMU's zero-page regions, no reset-state AP
//! VMSAs because every vCPU has one in the file).

use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType, IGVM_VHS_PARAMETER,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
};
use snp_model::igvm_loader::{plan, HostConfig, LoadError};
use snp_model::launch::launch;
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::rmp::Rmp;
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};
use zerocopy::{FromZeros, IntoBytes};

const MASK: u32 = 1;
const MEM: u64 = 16 << 20;

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
fn file(vcpus: u16) -> Vec<u8> {
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

fn model_digest(bytes: &[u8], vcpus: u32) -> [u8; 48] {
    let p = plan(
        bytes,
        HostConfig {
            vcpus,
            memory: MEM,
            reset_aps: None,
        },
    )
    .expect("plan");
    let mut mem = Memory::new(MEM);
    let mut rmp = Rmp::new(MEM / 4096);
    launch(&p, &mut mem, &mut rmp, &[[0; 32]; 4])
        .expect("launch")
        .digest
}

fn vigil_digest(bytes: &[u8], vcpus: u32) -> [u8; 48] {
    let rules = LoaderRules {
        vcpus: Some(vcpus),
        ap_vmsas: false,
        ..LoaderRules::default()
    };
    measure_file(bytes, Platform::Snp, &rules, false)
        .expect("measure")
        .measurement
        .digest
}

#[test]
fn model_digest_equals_vigil_igvm_measure_one_vcpu() {
    let f = file(1);
    assert_eq!(hex(&model_digest(&f, 1)), hex(&vigil_digest(&f, 1)));
}

#[test]
fn model_digest_equals_vigil_igvm_measure_two_vcpus() {
    let f = file(2);
    let m = model_digest(&f, 2);
    assert_eq!(hex(&m), hex(&vigil_digest(&f, 2)));
    assert_ne!(m, model_digest(&file(1), 1));
}

#[test]
fn loader_page_types_follow_qemu_regions() {
    let p = plan(
        &file(1),
        HostConfig {
            vcpus: 1,
            memory: MEM,
            reset_aps: None,
        },
    )
    .unwrap();
    let t = |gpa| p.pages.iter().find(|x| x.gpa == gpa).map(|x| x.page_type);
    assert_eq!(
        t(0x10_2000),
        Some(PageType::Normal),
        "data-less page in a region with data"
    );
    assert_eq!(t(0x20_1000), Some(PageType::Zero));
    assert_eq!(t(0x30_0000), Some(PageType::Unmeasured));
    assert_eq!(t(0x7f_d000), Some(PageType::Secrets));
    assert_eq!(t(0x7f_e000), Some(PageType::Cpuid));
    assert_eq!(t(0x7f_c000), Some(PageType::Unmeasured));
    let vp = p.pages.iter().find(|x| x.gpa == 0x7f_c000).unwrap();
    assert_eq!(
        &vp.data[..4],
        &1u32.to_le_bytes(),
        "VP count written by the host"
    );
    assert_eq!(p.policy, 0x30000);
}

#[test]
fn hostile_files_are_refused_by_name() {
    let f = file(1);
    // A vCPU without a VMSA in the file.
    assert_eq!(
        plan(
            &f,
            HostConfig {
                vcpus: 2,
                memory: MEM,
                reset_aps: None,
            }
        ),
        Err(LoadError::MissingVmsa { vp: 1 })
    );
    // A VMSA for a vCPU the host does not have.
    assert_eq!(
        plan(
            &file(2),
            HostConfig {
                vcpus: 1,
                memory: MEM,
                reset_aps: None,
            }
        ),
        Err(LoadError::Vmsa { vp: 1 })
    );
    // Less memory than REQUIRED_MEMORY / the pages need.
    assert!(matches!(
        plan(
            &f,
            HostConfig {
                vcpus: 1,
                memory: 0x30_0000,
                reset_aps: None,
            }
        ),
        Err(LoadError::OutOfMemory { .. })
    ));
    // Not an IGVM file.
    assert!(matches!(
        plan(
            b"not igvm",
            HostConfig {
                vcpus: 1,
                memory: MEM,
                reset_aps: None,
            }
        ),
        Err(LoadError::Parse(_))
    ));
    // A truncated file.
    assert!(matches!(
        plan(
            &f[..f.len() / 2],
            HostConfig {
                vcpus: 1,
                memory: MEM,
                reset_aps: None,
            }
        ),
        Err(LoadError::Parse(_))
    ));
}

/// QEMU+KVM's defaults of `vigil-igvm measure`: a file with one VMSA on two vCPUs, the
/// second measured from reset (CPUID signature 0x800F12, EPYC-v4).
#[test]
fn reset_state_ap_vmsa_equals_vigil_igvm_default_rules() {
    let f = file(1);
    let cfg = HostConfig {
        vcpus: 2,
        memory: MEM,
        reset_aps: Some(0x800f12),
    };
    let p = plan(&f, cfg).unwrap();
    let d = launch(
        &p,
        &mut Memory::new(MEM),
        &mut Rmp::new(MEM / 4096),
        &[[0; 32]; 4],
    )
    .unwrap()
    .digest;
    let rules = LoaderRules {
        vcpus: Some(2),
        vcpu_sig: 0x800f12,
        ..LoaderRules::default()
    };
    let v = measure_file(&f, Platform::Snp, &rules, false)
        .unwrap()
        .measurement
        .digest;
    assert_eq!(hex(&d), hex(&v));
    assert_ne!(d, model_digest(&f, 1));
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
