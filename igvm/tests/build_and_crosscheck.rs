//! `build` produces a byte-reproducible IGVM file with the documented layout; its SNP
//! launch digest agrees with `igvm::measurement::generate_snp_measurement` (the `igvm`
//! crate, feature `corim`) under the loader rules that crate implements, and every
//! divergence under QEMU+KVM's rules is shown and explained here.
#![warn(clippy::too_many_lines)]

mod common;

use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType, IGVM_VHS_SUPPORTED_PLATFORM,
};
use vigil_igvm::builder::{self, qemu_kvm, BuildConfig, Firmware, Profile, MASK_SNP};
use vigil_igvm::digest::KVM_VMSA_GPA;
use vigil_igvm::igvm_measure::{measure_parsed, LoaderRules, VmsaRule, ZeroRule};
use vigil_igvm::reader;
use vigil_igvm::reset_vmsa::Fpu;
use zerocopy::FromBytes;

fn cfg(firmware: Firmware) -> BuildConfig {
    BuildConfig {
        profile: Profile::QemuKvm,
        kernel: common::test_kernel(),
        firmware,
        snp: true,
        native: true,
        vcpus: 1,
        guest_vmpl: 2,
        policy: b"{\"protect\":\"kernel-text\"}".to_vec(),
        guest_policy: 0x30000,
        sev_features: 0x1,
    }
}

fn crate_rules() -> LoaderRules {
    LoaderRules {
        vmsa: VmsaRule::File,
        zero_pages: ZeroRule::Normal,
        ap_vmsas: false,
        ..LoaderRules::default()
    }
}

fn crate_digest(f: &IgvmFile) -> [u8; 48] {
    igvm::measurement::generate_snp_measurement(f.initializations(), f.directives(), MASK_SNP)
        .unwrap()
}

#[test]
fn build_is_byte_reproducible_and_parses_back() {
    let c = cfg(Firmware::Ovmf(common::fixture("ovmf_AmdSev_suffix.bin")));
    let a = builder::build(&c).unwrap();
    let b = builder::build(&c).unwrap();
    assert_eq!(a.bytes, b.bytes, "two builds of the same inputs differ");
    let (f, _) = reader::parse(&a.bytes).unwrap();
    let bp = builder::find_boot_params(&f).unwrap();
    assert_eq!(bp, a.boot_params);
    assert_eq!(bp.guest_vmpl, 2);
    assert_eq!(bp.kernel_entry, 0x10_0000);
    assert_eq!(bp.fw_start, 0xFFFF_F000);
    assert_eq!(
        bp.policy_digest,
        builder::policy_digest(b"{\"protect\":\"kernel-text\"}")
    );
    // The AmdSev OVMF's metadata pages (SEC memory at 8 MiB, secrets, CPUID, hashes)
    // are recorded and loaded as data-less pages for SNP.
    assert_ne!(bp.fw_secrets_gpa, 0);
    assert_ne!(bp.fw_cpuid_gpa, 0);
    // A changed input changes the bytes.
    let mut c2 = c.clone();
    c2.vcpus = 2;
    assert_ne!(builder::build(&c2).unwrap().bytes, a.bytes);
}

#[test]
fn vmsa_is_last_at_kvm_gpa_with_entry_and_boot_params() {
    let a = builder::build(&cfg(Firmware::Elf(common::test_guest()))).unwrap();
    let last_snp = a
        .file
        .directives()
        .iter()
        .rev()
        .find(|h| h.compatibility_mask().is_some_and(|m| m & MASK_SNP != 0))
        .unwrap();
    let IgvmDirectiveHeader::SnpVpContext {
        gpa,
        vp_index,
        vmsa,
        ..
    } = last_snp
    else {
        panic!("last SNP directive is not the VMSA: {last_snp:?}");
    };
    assert_eq!((*gpa, *vp_index), (KVM_VMSA_GPA, 0));
    let v = vigil_igvm::igvm_measure::vmsa_of(vmsa).unwrap();
    assert_eq!(v.rip, 0x10_0000);
    assert_eq!(v.rsi, qemu_kvm::BOOT_PARAMS);
    assert_eq!(v.vmpl, 0);
    assert_eq!(v.sev_features, 1);
}

#[test]
fn agrees_with_igvm_crate_under_its_rules() {
    for fw in [
        Firmware::Ovmf(common::fixture("ovmf_AmdSev_suffix.bin")),
        Firmware::Ovmf(common::fixture("ovmf_OvmfX64_suffix.bin")),
        Firmware::Elf(common::test_guest()),
    ] {
        let a = builder::build(&cfg(fw)).unwrap();
        // Every build lints clean: no error and no warning.
        assert_eq!(vigil_igvm::lint::lint(&a.bytes).unwrap(), vec![]);
        let (f, _) = reader::parse(&a.bytes).unwrap();
        let ours = measure_parsed(&f, &crate_rules(), false).unwrap();
        assert_eq!(ours.measurement.digest, crate_digest(&f));
        // The builder puts the one VMSA last at the KVM GPA, so KVM's VMSA rule gives the
        // same digest for one vCPU when zero pages are measured the crate's way.
        let kvm_normal = LoaderRules {
            zero_pages: ZeroRule::Normal,
            ..LoaderRules::default()
        };
        assert_eq!(
            measure_parsed(&f, &kvm_normal, false)
                .unwrap()
                .measurement
                .digest,
            crate_digest(&f)
        );
    }
}

#[test]
fn divergences_from_igvm_crate_are_the_documented_ones() {
    let a = builder::build(&cfg(Firmware::Ovmf(common::fixture(
        "ovmf_AmdSev_suffix.bin",
    ))))
    .unwrap();
    let (f, _) = reader::parse(&a.bytes).unwrap();
    let crate_d = crate_digest(&f);
    // 1. Zero pages: OVMF's SEV metadata pages (SEC memory at 8 MiB, ...) carry no data
    //    and form their own run. The igvm crate (and the IGVM spec) measure them as
    //    NORMAL pages of zeros; QEMU measures a data-less region as ZERO pages.
    let qemu = measure_parsed(&f, &LoaderRules::default(), true).unwrap();
    assert_ne!(qemu.measurement.digest, crate_d);
    let page = |m: &vigil_igvm::igvm_measure::IgvmMeasurement, gpa: &str| {
        m.measurement
            .log
            .iter()
            .find(|e| e.gpa == gpa)
            .unwrap()
            .page_type
    };
    assert_eq!(page(&qemu, "0x800000"), "ZERO");
    //    The kernel's bss pages follow its data page with equal flags and type, so QEMU
    //    coalesces them into a region that has data: NORMAL pages of zeros, as in the
    //    crate. Only the "zero" rule makes them ZERO.
    assert_eq!(page(&qemu, "0x103000"), "NORMAL");
    let all_zero = LoaderRules {
        zero_pages: ZeroRule::Zero,
        ..LoaderRules::default()
    };
    assert_eq!(
        page(&measure_parsed(&f, &all_zero, true).unwrap(), "0x103000"),
        "ZERO"
    );
    // 2. vCPUs: KVM measures one VMSA per vCPU; for vCPUs the file has no VMSA for, a
    //    reset-state VMSA. The crate measures only the file's VMSAs.
    let two = LoaderRules {
        zero_pages: ZeroRule::Normal,
        vcpus: Some(2),
        ..LoaderRules::default()
    };
    let m2 = measure_parsed(&f, &two, true).unwrap();
    assert_ne!(m2.measurement.digest, crate_d);
    assert_eq!(
        m2.measurement
            .log
            .iter()
            .filter(|e| e.page_type == "VMSA")
            .count(),
        2
    );
    // 3. The x87 FCW rule changes the measured VMSA.
    let fcw = LoaderRules {
        zero_pages: ZeroRule::Normal,
        fpu: Fpu::FcwZero,
        ..LoaderRules::default()
    };
    assert_ne!(
        measure_parsed(&f, &fcw, false).unwrap().measurement.digest,
        crate_d
    );
}

/// A hand-made file with the VMSA in the middle at a non-KVM GPA: the crate measures it
/// there; KVM would measure it last at 0xFFFFFFFFF000.
#[test]
fn vmsa_placement_rule_on_a_foreign_file() {
    let vmsa = builder::boot_vmsa(0x10_0000, 0, 1);
    let sev =
        igvm::snp_defs::SevVmsa::read_from_bytes(zerocopy::IntoBytes::as_bytes(&vmsa)).unwrap();
    let page = |gpa: u64, b: u8| IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: 1,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data: vec![b; 4096],
    };
    let f = IgvmFile::new(
        IgvmRevision::V1,
        vec![IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: 1,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::SEV_SNP,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        )],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: 1,
        }],
        vec![
            page(0x1000, 1),
            IgvmDirectiveHeader::SnpVpContext {
                gpa: 0x5000,
                compatibility_mask: 1,
                vp_index: 0,
                vmsa: Box::new(sev),
            },
            page(0x2000, 2),
        ],
    )
    .unwrap();
    let file_rule = measure_parsed(&f, &crate_rules(), true).unwrap();
    assert_eq!(file_rule.measurement.digest, crate_digest(&f));
    assert_eq!(file_rule.measurement.log[1].page_type, "VMSA");
    assert_eq!(file_rule.measurement.log[1].gpa, "0x5000");
    let kvm = measure_parsed(&f, &LoaderRules::default(), true).unwrap();
    assert_ne!(kvm.measurement.digest, crate_digest(&f));
    assert_eq!(kvm.measurement.log[2].page_type, "VMSA");
    assert_eq!(kvm.measurement.log[2].gpa, "0xfffffffff000");
}

#[test]
fn build_refuses_bad_inputs_with_reasons() {
    let mut c = cfg(Firmware::Elf(common::test_guest()));
    c.kernel = common::elf(0x90_0000, &[(0x90_0000, vec![1; 10], 4096)]);
    let e = builder::build(&c).unwrap_err().to_string();
    assert!(e.contains("outside the kernel area"), "{e}");
    let mut c = cfg(Firmware::Elf(common::elf(
        0x20_0000,
        &[(0x20_0000, vec![1; 10], 4096)],
    )));
    c.kernel = common::test_kernel();
    let e = builder::build(&c).unwrap_err().to_string();
    assert!(e.contains("overlaps the Vigil region"), "{e}");
    let mut c = cfg(Firmware::Elf(common::test_guest()));
    c.kernel = b"\x7fELF garbage".to_vec();
    let e = builder::build(&c).unwrap_err().to_string();
    assert!(e.starts_with("kernel ELF header at offset 0x0"), "{e}");
    let mut c = cfg(Firmware::Elf(common::test_guest()));
    c.profile = Profile::HyperV;
    assert!(builder::build(&c)
        .unwrap_err()
        .to_string()
        .contains("not yet supported"));
    let mut c = cfg(Firmware::Elf(common::test_guest()));
    c.sev_features = 0x1 | (1 << 40);
    assert!(builder::build(&c)
        .unwrap_err()
        .to_string()
        .contains("reserved"));
}
