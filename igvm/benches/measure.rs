//! Criterion benchmarks of the SNP launch digest:
//! - a 4 MiB OVMF image (synthetic: 4 MiB - 4 KiB of pseudo-random bytes followed by the
//!   AmdSev fixture's last 4 KiB with its footer table and SEV metadata), `--mode snp`,
//!   4 vCPUs;
//! - a Vigil IGVM file built from a test kernel ELF and that OVMF, default loader rules.
//!
//! Run: `cargo bench -p vigil-igvm --bench measure`. The whole-process comparison with
//! sev-snp-measure is `cargo run --release -p vigil-igvm --example bench-vs-snpmeasure`.
#![warn(clippy::too_many_lines)]

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_igvm::builder::{self, BuildConfig, Firmware, Profile};
use vigil_igvm::igvm_measure::{self, LoaderRules, Platform};
use vigil_igvm::ovmf_measure::{measure, Mode, OvmfParams};
use vigil_igvm::reset_vmsa::{Fpu, VmmType};

fn ovmf_4m() -> Vec<u8> {
    let suffix = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/measure/ovmf_AmdSev_suffix.bin"
    ))
    .unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut img: Vec<u8> = (0..(4 << 20) - 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    img.extend_from_slice(&suffix);
    img
}

fn kernel() -> Vec<u8> {
    // One PT_LOAD of 256 KiB at 1 MiB.
    let mut e = vec![0u8; 4096];
    e[0..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&62u16.to_le_bytes());
    e[24..32].copy_from_slice(&0x10_0000u64.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[54..56].copy_from_slice(&56u16.to_le_bytes());
    e[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    e[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
    e[ph + 8..ph + 16].copy_from_slice(&4096u64.to_le_bytes());
    e[ph + 16..ph + 24].copy_from_slice(&0x10_0000u64.to_le_bytes());
    e[ph + 24..ph + 32].copy_from_slice(&0x10_0000u64.to_le_bytes());
    e[ph + 32..ph + 40].copy_from_slice(&(256u64 << 10).to_le_bytes());
    e[ph + 40..ph + 48].copy_from_slice(&(256u64 << 10).to_le_bytes());
    e.extend((0..256 << 10).map(|i: u32| (i % 251) as u8));
    e
}

fn bench(c: &mut Criterion) {
    let ovmf = ovmf_4m();
    let p = OvmfParams {
        mode: Mode::Snp,
        vcpus: 4,
        vcpu_sig: 0x800f12,
        vmm: VmmType::QEMU,
        guest_features: 0x21,
        ovmf: ovmf.clone(),
        kernel: None,
        svsm: None,
        vars_size: 0,
        ovmf_hash: None,
        fpu: Fpu::VmmDefault,
    };
    c.bench_function("measure_ovmf_4MiB_snp_4vcpus", |b| {
        b.iter(|| measure(&p, false).unwrap())
    });
    let built = builder::build(&BuildConfig {
        profile: Profile::QemuKvm,
        kernel: kernel(),
        firmware: Firmware::Ovmf(ovmf),
        snp: true,
        native: true,
        vcpus: 4,
        guest_vmpl: 2,
        policy: Vec::new(),
        guest_policy: 0x30000,
        sev_features: 1,
    })
    .unwrap();
    let rules = LoaderRules {
        vcpus: Some(4),
        vcpu_sig: 0x800f12,
        ..LoaderRules::default()
    };
    c.bench_function("measure_vigil_igvm_file", |b| {
        b.iter(|| igvm_measure::measure_file(&built.bytes, Platform::Snp, &rules, false).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
