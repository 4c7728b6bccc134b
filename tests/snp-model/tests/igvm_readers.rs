//! Two IGVM readers, one loader: the model's own `no_std` reader (`snp_model::igvm_file`)
//! and the igvm crate (`snp_model::igvm_loader`, the library QEMU links) give the same
//! launch plan, or both refuse, for every file the other tests build and for mutated
//! copies of them (truncations and flipped bytes, with the header checksum left broken
//! or recomputed so that the flips reach the header parsers).

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use snp_model::host_loader::{HostConfig, LoadError};
use snp_model::igvm_file::{self, crc32, len, FIXED_HEADER_LEN};
use snp_model::igvm_loader;
use snp_model::launch::Plan;
use vigil_igvm::builder::{build, Firmware};

mod common;
use common::{build_cfg, elf, profile_file, MEM};

fn host(vcpus: u32, memory: u64, reset_aps: Option<u32>) -> HostConfig {
    HostConfig {
        vcpus,
        memory,
        reset_aps,
    }
}

/// The igvm crate's reader; a panic inside the crate (it subtracts file offsets
/// unchecked) counts as a refusal.
fn crate_plan(bytes: &[u8], cfg: HostConfig) -> Result<Plan, LoadError> {
    catch_unwind(AssertUnwindSafe(|| igvm_loader::plan(bytes, cfg)))
        .unwrap_or_else(|_| Err(LoadError::Parse("igvm crate panicked".into())))
}

/// Both readers on `bytes`: equal plans; or, when the crate refuses the format, the
/// model's reader refuses too; or the same loader refusal. Returns whether it loaded.
fn agree(bytes: &[u8], cfg: HostConfig) -> Result<bool, TestCaseError> {
    let theirs = crate_plan(bytes, cfg);
    let ours = igvm_file::plan(bytes, cfg);
    match (&theirs, &ours) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(a.policy, b.policy);
            prop_assert_eq!(a.vmsas.len(), b.vmsas.len());
            prop_assert_eq!(a.pages.len(), b.pages.len());
            let differs = a.pages.iter().zip(&b.pages).position(|(x, y)| x != y);
            prop_assert_eq!(differs, None, "first page that differs");
            prop_assert!(a.vmsas == b.vmsas, "VMSAs differ");
            Ok(true)
        }
        (Err(LoadError::Parse(e)), r) => {
            prop_assert!(
                r.is_err(),
                "igvm crate refuses ({e}), the model's reader loads"
            );
            Ok(false)
        }
        (a, b) => {
            prop_assert_eq!(a.as_ref().err(), b.as_ref().err());
            Ok(false)
        }
    }
}

fn vigil_elf_file() -> Vec<u8> {
    let guest = elf(0x100_0000, &[(0x100_0000, vec![0xf4; 4096], 4096)]);
    build(&build_cfg(Firmware::Elf(guest))).unwrap().bytes
}

#[test]
fn structure_sizes_are_igvm_defs_sizes() {
    use igvm_defs::*;
    use std::mem::size_of;
    assert_eq!(FIXED_HEADER_LEN, size_of::<IGVM_FIXED_HEADER>());
    assert_eq!(
        len::SUPPORTED_PLATFORM,
        size_of::<IGVM_VHS_SUPPORTED_PLATFORM>()
    );
    assert_eq!(len::GUEST_POLICY, size_of::<IGVM_VHS_GUEST_POLICY>());
    assert_eq!(len::CORIM_DATA, size_of::<IGVM_VHS_CORIM_DATA>());
    assert_eq!(len::PARAMETER_AREA, size_of::<IGVM_VHS_PARAMETER_AREA>());
    assert_eq!(len::PAGE_DATA, size_of::<IGVM_VHS_PAGE_DATA>());
    assert_eq!(
        len::PARAMETER_INSERT,
        size_of::<IGVM_VHS_PARAMETER_INSERT>()
    );
    assert_eq!(len::VP_CONTEXT, size_of::<IGVM_VHS_VP_CONTEXT>());
    assert_eq!(len::REQUIRED_MEMORY, size_of::<IGVM_VHS_REQUIRED_MEMORY>());
    assert_eq!(len::PARAMETER, size_of::<IGVM_VHS_PARAMETER>());
    assert_eq!(len::SNP_ID_BLOCK, size_of::<IGVM_VHS_SNP_ID_BLOCK>());
    assert_eq!(len::ERROR_RANGE, size_of::<IGVM_VHS_ERROR_RANGE>());
    assert_eq!(len::VBS_MEASUREMENT, size_of::<IGVM_VHS_VBS_MEASUREMENT>());
    assert_eq!(len::NATIVE_VP_CONTEXT, size_of::<IgvmNativeVpContextX64>());
}

/// Every file and host of launch_digest.rs, loaded or refused alike.
#[test]
fn profile_files_agree() {
    let one = profile_file(1);
    let two = profile_file(2);
    let cases: Vec<(&[u8], HostConfig, bool)> = vec![
        (&one, host(1, MEM, None), true),
        (&two, host(2, MEM, None), true),
        (&one, host(2, MEM, Some(0x800f12)), true),
        (&one, host(2, MEM, None), false),
        (&two, host(1, MEM, None), false),
        (&one, host(1, 0x30_0000, None), false),
        (b"not igvm", host(1, MEM, None), false),
        (&one[..one.len() / 2], host(1, MEM, None), false),
    ];
    for (i, (bytes, cfg, loads)) in cases.into_iter().enumerate() {
        assert_eq!(agree(bytes, cfg).unwrap(), loads, "case {i}");
    }
}

/// Every file of vigil_igvm_build.rs (an ELF test guest, an OVMF image).
#[test]
fn vigil_igvm_build_files_agree() {
    let f = vigil_elf_file();
    for vcpus in [1, 2] {
        assert!(agree(&f, host(vcpus, 32 << 20, Some(0x800f12))).unwrap());
    }
    let ovmf = include_bytes!("../testdata/ovmf_AmdSev_suffix.bin").to_vec();
    let o = build(&build_cfg(Firmware::Ovmf(ovmf))).unwrap().bytes;
    assert!(agree(&o, host(1, 1 << 32, None)).unwrap());
}

/// A refusal names the header and its offset.
#[test]
fn refusals_name_the_offset() {
    let mut f = profile_file(1);
    // The first variable header (SUPPORTED_PLATFORM) gets an unknown platform type.
    f[FIXED_HEADER_LEN + 8 + 5] = 0x7f;
    let ck = checksum(&f);
    f[20..24].copy_from_slice(&ck.to_le_bytes());
    assert_eq!(
        igvm_file::plan(&f, host(1, MEM, None)),
        Err(LoadError::Format {
            offset: FIXED_HEADER_LEN + 8 + 5,
            what: "unknown platform type"
        })
    );
    assert!(matches!(
        crate_plan(&f, host(1, MEM, None)),
        Err(LoadError::Parse(_))
    ));
}

/// The header checksum of `f` as it stands (fixed header with checksum zero, then the
/// variable header section).
fn checksum(f: &[u8]) -> u32 {
    let off = u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize;
    let size = u32::from_le_bytes(f[12..16].try_into().unwrap()) as usize;
    let mut fixed = f[..FIXED_HEADER_LEN].to_vec();
    fixed[20..24].fill(0);
    let end = off.saturating_add(size).min(f.len());
    crc32(&[&fixed, f.get(off..end).unwrap_or(&[])])
}

fn mutate(base: &[u8], flips: &[(usize, u8)], fix: bool) -> Vec<u8> {
    let mut f = base.to_vec();
    for (at, x) in flips {
        let i = at % f.len();
        f[i] ^= x.max(&1);
    }
    if fix && f.len() >= FIXED_HEADER_LEN {
        let ck = checksum(&f);
        f[20..24].copy_from_slice(&ck.to_le_bytes());
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Truncated files: never a panic, the same answer.
    #[test]
    fn truncations_agree(cut in 0usize..20_000, which in 0usize..2) {
        let base = if which == 0 { profile_file(2) } else { vigil_elf_file() };
        let cut = cut % base.len();
        agree(&base[..cut], host(2, 32 << 20, Some(0x800f12)))?;
    }

    /// Flipped bytes, anywhere or in the headers, with the checksum broken or fixed.
    #[test]
    fn flipped_bytes_agree(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        in_headers in any::<bool>(),
        fix in any::<bool>(),
        which in 0usize..2,
    ) {
        let base = if which == 0 { profile_file(2) } else { vigil_elf_file() };
        let hdr_end = u32::from_le_bytes(base[8..12].try_into().unwrap()) as usize
            + u32::from_le_bytes(base[12..16].try_into().unwrap()) as usize;
        let flips: Vec<(usize, u8)> = flips
            .into_iter()
            .map(|(at, x)| (if in_headers { at % hdr_end } else { at }, x))
            .collect();
        let f = mutate(&base, &flips, fix);
        agree(&f, host(2, 32 << 20, Some(0x800f12)))?;
    }
}
