//! Every launch digest of testdata/measure/VECTORS.md (copied from
//! ../shared/testdata/measure with its README) reproduces, the two read from SNP
//! hardware included. A last test checks that no digest of VECTORS.md is left out here.
#![warn(clippy::too_many_lines)]

use vigil_igvm::ovmf_measure::{measure, KernelHashes, Mode, OvmfParams};
use vigil_igvm::reset_vmsa::{Fpu, VmmType};

const EPYC_V4: u32 = 0x800f12;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/measure/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn params(ovmf: &str, vcpus: u32, features: u64, kernel: Option<Option<&str>>) -> OvmfParams {
    OvmfParams {
        mode: Mode::Snp,
        vcpus,
        vcpu_sig: EPYC_V4,
        vmm: VmmType::QEMU,
        guest_features: features,
        ovmf: fixture(ovmf),
        // "kernel" in VECTORS.md = an empty kernel and an empty initrd.
        kernel: kernel.map(|append| KernelHashes::new(b"", Some(b""), append)),
        svsm: None,
        vars_size: 0,
        ovmf_hash: None,
        fpu: Fpu::VmmDefault,
    }
}

fn hexd(p: &OvmfParams) -> String {
    hex::encode(measure(p, false).unwrap().digest)
}

// (vCPUs, guest features, kernel: None = no kernel, Some(append), digest)
#[allow(clippy::type_complexity)]
const AMDSEV: &[(u32, u64, Option<Option<&str>>, &str)] = &[
    (1, 0x21, None, "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
    (1, 0x1, None, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"),
    (1, 0x21, Some(Some("console=ttyS0 loglevel=7")), "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
    (1, 0x1, Some(Some("console=ttyS0 loglevel=7")), "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
    (1, 0x21, Some(Some("")), "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"),
    (1, 0x1, Some(Some("")), "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"),
    (4, 0x21, Some(Some("")), "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
    (4, 0x1, Some(Some("")), "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
];

const OVMFX64: &[(u64, &str)] = &[
    (0x21, "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
    (0x1, "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"),
];

const AMDSEV_OVMF_HASH: &str =
    "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

// Read from attestation reports on SNP hardware (VECTORS.md): (vCPUs, digest).
const HARDWARE_SVSM: &[(u32, &str)] = &[
    (4, "27d154c27b7b359c935e250ec6fee72aa0ae8c1225e3b0e1cf46a9567e938066d7d6f94bbdc4a857818bdb79277a44b2"),
    (2, "9b94745036aafddf4f7f8b00c7513abb5b7703178cb95aaa57928bd963d68d3bfcb715d6019b9167ee2517b11b0d9be7"),
];

#[test]
fn amdsev_ovmf_digests() {
    for (vcpus, f, k, want) in AMDSEV {
        assert_eq!(
            &hexd(&params("ovmf_AmdSev_suffix.bin", *vcpus, *f, *k)),
            want,
            "vcpus {vcpus} features {f:#x} kernel {k:?}"
        );
    }
}

#[test]
fn amdsev_ovmf_hash_mode_and_seed() {
    let mut p = params("ovmf_AmdSev_suffix.bin", 1, 0x21, None);
    p.mode = Mode::SnpOvmfHash;
    assert_eq!(hexd(&p), AMDSEV_OVMF_HASH);
    // Seeding the chain with that hash skips the OVMF pages and gives the same digest.
    let mut seeded = params("ovmf_AmdSev_suffix.bin", 1, 0x21, None);
    let mut seed = [0u8; 48];
    hex::decode_to_slice(AMDSEV_OVMF_HASH, &mut seed).unwrap();
    seeded.ovmf_hash = Some(seed);
    assert_eq!(hexd(&seeded), AMDSEV[0].3);
}

#[test]
fn ovmfx64_digests() {
    for (f, want) in OVMFX64 {
        assert_eq!(
            &hexd(&params("ovmf_OvmfX64_suffix.bin", 1, *f, None)),
            want,
            "features {f:#x}"
        );
    }
}

#[test]
fn ovmfx64_refuses_kernel_without_hashes_section() {
    let e = measure(&params("ovmf_OvmfX64_suffix.bin", 1, 1, Some(None)), false).unwrap_err();
    assert!(
        e.to_string().contains("no SNP_KERNEL_HASHES section"),
        "{e}"
    );
}

fn svsm_params(vcpus: u32, fpu: Fpu) -> OvmfParams {
    OvmfParams {
        mode: Mode::SnpSvsm,
        vcpus,
        vcpu_sig: EPYC_V4,
        vmm: VmmType::QEMU,
        guest_features: 1,
        ovmf: fixture("svsm_ovmf.fd"),
        kernel: None,
        svsm: Some(fixture("svsm.bin")),
        vars_size: 540672,
        ovmf_hash: None,
        fpu,
    }
}

#[test]
fn hardware_svsm_digests_need_fcw_zero() {
    for (vcpus, want) in HARDWARE_SVSM {
        assert_eq!(
            &hexd(&svsm_params(*vcpus, Fpu::FcwZero)),
            want,
            "vcpus {vcpus}"
        );
        // With the architectural FCW (0x37F) the digest differs: the rule matters.
        assert_ne!(&hexd(&svsm_params(*vcpus, Fpu::VmmDefault)), want);
    }
}

#[test]
fn every_vector_of_vectors_md_is_tested() {
    let md = String::from_utf8(fixture("VECTORS.md")).unwrap();
    let mut tested: Vec<&str> = AMDSEV.iter().map(|v| v.3).collect();
    tested.extend(OVMFX64.iter().map(|v| v.1));
    tested.extend(HARDWARE_SVSM.iter().map(|v| v.1));
    tested.push(AMDSEV_OVMF_HASH);
    let mut found = 0;
    for word in md.split(|c: char| !c.is_ascii_hexdigit()) {
        if word.len() == 96 {
            found += 1;
            assert!(
                tested.contains(&word),
                "digest {word} of VECTORS.md is not tested"
            );
        }
    }
    assert_eq!(found, tested.len());
}
