//! The model's launch digest against published vectors that need no IGVM file (copied
//! from ../shared/testdata/measure/VECTORS.md into testdata/VECTORS.md, source noted
//! there): OVMF images measured as QEMU+KVM launch them, vCPU type EPYC-v4 (CPUID
//! signature 0x800F12), no kernel. These digests were computed by sev-snp-measure, a
//! third implementation written by neither side.

use snp_model::launch::measure;
use snp_model::ovmf::{plan, OvmfError};

const X64: &[u8] = include_bytes!("../testdata/ovmf_OvmfX64_suffix.bin");
const AMDSEV: &[u8] = include_bytes!("../testdata/ovmf_AmdSev_suffix.bin");
const EPYC_V4: u32 = 0x800f12;

fn digest(img: &[u8], vcpus: u32, features: u64) -> String {
    let p = plan(img, vcpus, features, EPYC_V4).expect("plan");
    let d = measure(&p, &[[0; 32]; 4]).expect("measure");
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ovmf_x64_one_vcpu() {
    assert_eq!(
        digest(X64, 1, 0x21),
        "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"
    );
    assert_eq!(
        digest(X64, 1, 0x1),
        "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"
    );
}

#[test]
fn ovmf_amdsev_one_vcpu_without_kernel() {
    assert_eq!(
        digest(AMDSEV, 1, 0x21),
        "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"
    );
    assert_eq!(
        digest(AMDSEV, 1, 0x1),
        "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"
    );
}

#[test]
fn damaged_images_are_refused_by_name() {
    assert_eq!(plan(&X64[1..], 1, 1, EPYC_V4).err(), Some(OvmfError::Size));
    let mut no_footer = X64.to_vec();
    no_footer[4096 - 32 - 1] ^= 0xff;
    assert!(matches!(
        plan(&no_footer, 1, 1, EPYC_V4),
        Err(OvmfError::NoFooter { .. })
    ));
    let mut long = X64.to_vec();
    // The footer's table length (u16 before the footer GUID) made larger than the image.
    long[4096 - 32 - 18..4096 - 32 - 16].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        plan(&long, 1, 1, EPYC_V4),
        Err(OvmfError::BadEntry { .. })
    ));
    assert!(plan(&[0u8; 4096], 1, 1, EPYC_V4).is_err());
}
