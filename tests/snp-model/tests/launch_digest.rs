//! Two implementations of the SNP launch digest, written apart, on the same IGVM file:
//! the model's loader and security processor (`snp_model::igvm_loader` + `launch`) and
//! `vigil-igvm measure` (`vigil_igvm::igvm_measure`) under the matching loader rules
//! (QEMU+KVM: VMSAs last at 0xFFFFFFFFF000, QEMU's zero-page regions, no reset-state AP
//! VMSAs because every vCPU has one in the file).

use snp_model::igvm_loader::{plan, HostConfig, LoadError};
use snp_model::launch::launch;
use snp_model::memory::Memory;
use snp_model::page_info::PageType;
use snp_model::rmp::Rmp;
use vigil_igvm::igvm_measure::{measure_file, LoaderRules, Platform};

mod common;
use common::{profile_file as file, MEM};

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
