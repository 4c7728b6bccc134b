//! The checks on `BootParams` (svsm-abi `boot_params`) before the SNP boot relies on it.
//!
//! The page is measured (a NORMAL IGVM page: the launch digest covers it), so a host
//! cannot forge it; the checks guard against a page built for another kernel, version
//! or platform, and against values that would send Vigil outside its own region. Each
//! failure names the field and its offset ([`BootParamsError`]); any of them ends the
//! boot with termination reason `BOOT_PARAMS`.

use core::fmt;

use svsm_abi::boot_params::{
    BootParams, FLAG_SNP, MAGIC, MAX_MAP, POLICY_MAX, POLICY_OFFSET, VERSION,
};

const PAGE: u64 = 4096;

/// What the SNP boot takes from a checked `BootParams`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpLayout {
    /// The Vigil region (start, end).
    pub vigil: (u64, u64),
    /// The CPUID page GPA.
    pub cpuid_gpa: u64,
    /// The secrets page GPA.
    pub secrets_gpa: u64,
    /// vCPUs the image was built for.
    pub vcpus: u32,
    /// The guest's VMPL.
    pub guest_vmpl: u32,
    /// The lowest parameter page inside the Vigil region above the image (BootParams,
    /// secrets, CPUID, the host's memory-map and vCPU-count areas): Vigil's free pages
    /// end there.
    pub params_low: u64,
    /// The lower-VMPL guest's image as launched: (start, end, entry) from `fw_start`,
    /// `fw_size`, `fw_entry` (0x060..0x078), end saturating.
    pub fw: (u64, u64, u64),
}

/// A refused `BootParams` (field and offset named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootParamsError {
    /// The GPA in RSI is 0, not page-aligned, or outside the Vigil region.
    BadAddress {
        /// The GPA.
        gpa: u64,
    },
    /// `magic` (0x000) is not "VIGILBP\0".
    BadMagic,
    /// `version` (0x008) is not [`VERSION`].
    BadVersion {
        /// The value found.
        found: u32,
    },
    /// `size` (0x00C) is not 0x1000.
    BadSize {
        /// The value found.
        found: u32,
    },
    /// `flags` (0x018) lacks the SNP platform bit.
    NotForSnp {
        /// The value found.
        flags: u32,
    },
    /// `vigil_start`/`vigil_end` (0x020/0x028) are unaligned, empty, or do not hold the
    /// kernel image.
    BadRegion {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// `kernel_entry` (0x030) is not this kernel's IGVM entry.
    WrongEntry {
        /// The value found.
        found: u64,
        /// This kernel's entry.
        expected: u64,
    },
    /// A page GPA (the field at `offset`) is 0, unaligned, outside the Vigil region or
    /// inside the kernel image.
    BadPage {
        /// The field's offset.
        offset: usize,
        /// The GPA.
        gpa: u64,
    },
    /// `vcpus` (0x010) is 0, or `guest_vmpl` (0x014) is not 1..=3.
    BadVcpusOrVmpl {
        /// vCPUs.
        vcpus: u32,
        /// Guest VMPL.
        vmpl: u32,
    },
    /// `map_entries` (0x01C), `policy_len` (0x090) or `policy_offset` (0x094) is out of
    /// bounds.
    BadBounds,
}

impl fmt::Display for BootParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BootParamsError::BadAddress { gpa } => write!(
                f,
                "BootParams GPA {gpa:#x} (RSI) is not a page of the Vigil region"
            ),
            BootParamsError::BadMagic => write!(f, "BootParams.magic (0x000) is wrong"),
            BootParamsError::BadVersion { found } => write!(
                f,
                "BootParams.version (0x008) is {found}, expected {VERSION}"
            ),
            BootParamsError::BadSize { found } => {
                write!(f, "BootParams.size (0x00c) is {found:#x}, expected 0x1000")
            }
            BootParamsError::NotForSnp { flags } => {
                write!(f, "BootParams.flags (0x018) {flags:#x} lack the SNP bit")
            }
            BootParamsError::BadRegion { start, end } => write!(
                f,
                "BootParams Vigil region (0x020/0x028) {start:#x}-{end:#x} does not hold the kernel"
            ),
            BootParamsError::WrongEntry { found, expected } => write!(
                f,
                "BootParams.kernel_entry (0x030) {found:#x} is not this kernel's {expected:#x}"
            ),
            BootParamsError::BadPage { offset, gpa } => write!(
                f,
                "BootParams field at {offset:#05x} = {gpa:#x} is not a free page of the Vigil region"
            ),
            BootParamsError::BadVcpusOrVmpl { vcpus, vmpl } => write!(
                f,
                "BootParams vcpus (0x010) {vcpus} / guest_vmpl (0x014) {vmpl} out of range"
            ),
            BootParamsError::BadBounds => write!(
                f,
                "BootParams map_entries (0x01c) / policy_len (0x090) / policy_offset (0x094) out of bounds"
            ),
        }
    }
}

/// Checks `bp` (read from `gpa`) for the kernel whose image spans `image` and whose
/// IGVM entry is `entry`.
pub fn check(
    bp: &BootParams,
    gpa: u64,
    image: (u64, u64),
    entry: u64,
) -> Result<SnpLayout, BootParamsError> {
    if bp.magic != MAGIC {
        return Err(BootParamsError::BadMagic);
    }
    if bp.version != VERSION {
        return Err(BootParamsError::BadVersion { found: bp.version });
    }
    if bp.size != PAGE as u32 {
        return Err(BootParamsError::BadSize { found: bp.size });
    }
    if bp.flags & FLAG_SNP == 0 {
        return Err(BootParamsError::NotForSnp { flags: bp.flags });
    }
    let (start, end) = (bp.vigil_start, bp.vigil_end);
    if !start.is_multiple_of(PAGE)
        || !end.is_multiple_of(PAGE)
        || start >= end
        || image.0 < start
        || image.1 > end
    {
        return Err(BootParamsError::BadRegion { start, end });
    }
    if bp.kernel_entry != entry {
        return Err(BootParamsError::WrongEntry {
            found: bp.kernel_entry,
            expected: entry,
        });
    }
    let free_page = |g: u64| {
        g != 0
            && g.is_multiple_of(PAGE)
            && g >= start
            && g < end
            && (g >= image.1 || g + PAGE <= image.0)
    };
    if !free_page(gpa) {
        return Err(BootParamsError::BadAddress { gpa });
    }
    for (offset, g) in [(0x38, bp.secrets_gpa), (0x40, bp.cpuid_gpa)] {
        if !free_page(g) || g == gpa {
            return Err(BootParamsError::BadPage { offset, gpa: g });
        }
    }
    if bp.vcpus == 0 || !(1..=3).contains(&bp.guest_vmpl) {
        return Err(BootParamsError::BadVcpusOrVmpl {
            vcpus: bp.vcpus,
            vmpl: bp.guest_vmpl,
        });
    }
    if bp.map_entries as usize > MAX_MAP
        || bp.policy_len as usize > POLICY_MAX
        || bp.policy_offset != POLICY_OFFSET
    {
        return Err(BootParamsError::BadBounds);
    }
    let params_low = [
        gpa,
        bp.secrets_gpa,
        bp.cpuid_gpa,
        bp.memmap_gpa,
        bp.vpcount_gpa,
    ]
    .into_iter()
    .filter(|&g| g >= image.1 && g < end)
    .min()
    .unwrap_or(end)
        & !(PAGE - 1);
    Ok(SnpLayout {
        vigil: (start, end),
        params_low,
        fw: (
            bp.fw_start,
            bp.fw_start.saturating_add(bp.fw_size),
            bp.fw_entry,
        ),
        cpuid_gpa: bp.cpuid_gpa,
        secrets_gpa: bp.secrets_gpa,
        vcpus: bp.vcpus,
        guest_vmpl: bp.guest_vmpl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    const IMAGE: (u64, u64) = (0x10_0000, 0x18_c000);
    const ENTRY: u64 = 0x10_0040;
    const GPA: u64 = 0x7f_a000;

    /// The page `vigil-igvm build --platforms snp` writes (profile qemu-kvm, docs/igvm.md).
    fn good() -> BootParams {
        let mut bp = BootParams::new_zeroed();
        bp.magic = MAGIC;
        bp.version = VERSION;
        bp.size = 0x1000;
        bp.vcpus = 1;
        bp.guest_vmpl = 2;
        bp.flags = FLAG_SNP;
        bp.vigil_start = 0x10_0000;
        bp.vigil_end = 0x80_0000;
        bp.kernel_entry = ENTRY;
        bp.secrets_gpa = 0x7f_d000;
        bp.cpuid_gpa = 0x7f_e000;
        bp.policy_offset = POLICY_OFFSET;
        bp
    }

    #[test]
    fn the_builders_page_is_accepted() {
        let l = check(&good(), GPA, IMAGE, ENTRY).unwrap();
        assert_eq!(l.cpuid_gpa, 0x7f_e000);
        assert_eq!(l.secrets_gpa, 0x7f_d000);
        assert_eq!(l.vigil, (0x10_0000, 0x80_0000));
        assert_eq!((l.vcpus, l.guest_vmpl), (1, 2));
    }

    #[test]
    fn each_bad_field_is_refused_by_name() {
        let refuse = |f: &dyn Fn(&mut BootParams)| {
            let mut bp = good();
            f(&mut bp);
            check(&bp, GPA, IMAGE, ENTRY).unwrap_err()
        };
        assert_eq!(refuse(&|b| b.magic[0] = b'X'), BootParamsError::BadMagic);
        assert_eq!(
            refuse(&|b| b.version = 2),
            BootParamsError::BadVersion { found: 2 }
        );
        assert_eq!(
            refuse(&|b| b.size = 0x800),
            BootParamsError::BadSize { found: 0x800 }
        );
        assert_eq!(
            refuse(&|b| b.flags = 2),
            BootParamsError::NotForSnp { flags: 2 }
        );
        assert!(matches!(
            refuse(&|b| b.vigil_end = 0x18_0000),
            BootParamsError::BadRegion { .. }
        ));
        assert_eq!(
            refuse(&|b| b.kernel_entry = 0x10_0000),
            BootParamsError::WrongEntry {
                found: 0x10_0000,
                expected: ENTRY
            }
        );
        // A CPUID page inside the kernel image, or outside the region, or unaligned.
        for bad in [0x10_1000, 0x90_0000, 0x7f_e800, 0] {
            assert_eq!(
                refuse(&|b| b.cpuid_gpa = bad),
                BootParamsError::BadPage {
                    offset: 0x40,
                    gpa: bad
                }
            );
        }
        assert_eq!(
            refuse(&|b| b.secrets_gpa = GPA),
            BootParamsError::BadPage {
                offset: 0x38,
                gpa: GPA
            }
        );
        assert!(matches!(
            refuse(&|b| b.guest_vmpl = 0),
            BootParamsError::BadVcpusOrVmpl { vmpl: 0, .. }
        ));
        assert_eq!(refuse(&|b| b.map_entries = 33), BootParamsError::BadBounds);
        assert_eq!(
            refuse(&|b| b.policy_len = 0xc01),
            BootParamsError::BadBounds
        );
        let e = refuse(&|b| b.flags = 0);
        assert!(std::format!("{e}").contains("0x018"));
    }

    #[test]
    fn the_page_itself_must_be_a_free_page_of_the_region() {
        for gpa in [0, 0x7f_a010, 0x10_2000, 0x90_0000] {
            assert_eq!(
                check(&good(), gpa, IMAGE, ENTRY),
                Err(BootParamsError::BadAddress { gpa })
            );
        }
    }
}
