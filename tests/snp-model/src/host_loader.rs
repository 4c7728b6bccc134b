//! The host's loading rules: from an IGVM file's directives to a launch [`Plan`], as
//! QEMU's loader (`backends/igvm.c`, QEMU >= 10.1) does for an SEV-SNP guest on KVM.
//!
//! Two readers turn a file into the [`Directive`]s this module loads: the host-only
//! [`crate::igvm_loader`] (through the `igvm` crate) and the model's own `no_std`
//! [`crate::igvm_file`]. The rules live here once; the tests check that both readers
//! give the same plan for the same bytes.
//!
//! Rules (each is QEMU's, with KVM measuring):
//! - only headers whose compatibility mask has the SNP platform's bit apply;
//! - PAGE_DATA: NORMAL data pages are NORMAL; pages of type SECRETS and CPUID_DATA /
//!   CPUID_XF are SECRETS and CPUID pages (the model's host fills the CPUID page from its
//!   own CPU, [`crate::cpuid`]); the UNMEASURED flag makes an UNMEASURED page;
//! - data-less pages: QEMU coalesces consecutive PAGE_DATA pages with equal flags and
//!   type into one region (`qigvm_directive_page_data`) and, when the region ends (at any
//!   other directive or a gap), launches it as ZERO pages if none of its pages carried
//!   data, else as NORMAL pages with zeros where data is missing;
//! - PARAMETER_AREA + VP_COUNT / MEMORY_MAP + PARAMETER_INSERT: the host writes the vCPU
//!   count (u32) or its memory map (IGVM `IGVM_VHS_MEMORY_MAP_ENTRY`, 24 bytes each, a
//!   zero entry last) into the area and inserts it as UNMEASURED pages;
//! - VP_CONTEXT (SNP): one VMSA per vCPU, measured last by KVM ([`crate::launch`]); a
//!   vCPU without one starts from reset (QEMU resets it, KVM measures its reset-state
//!   VMSA, [`crate::reset_vmsa`]) if the host is configured so;
//! - REQUIRED_MEMORY must lie inside the guest's memory; SNP_ID_BLOCK and ERROR_RANGE
//!   do not change the digest and are not checked by the model.
//!
//! Anything else is refused with an error naming the directive: a loader that guessed
//! would measure something other than what a real host measures.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::launch::{Page, Plan};
use crate::page_info::PageType;
use crate::rmp::PAGE_SIZE;

/// Largest parameter area the loader accepts (the size comes from the file).
pub const MAX_PARAMETER_AREA: u64 = 16 << 20;
/// Size of one IGVM memory-map entry.
pub const MEMORY_MAP_ENTRY_LEN: usize = 24;

/// SEV_FEATURES offset in a VMSA (APM vol. 2 appendix B).
const VMSA_SEV_FEATURES: usize = 0x3b0;

/// PAGE_DATA flag bits (igvm_defs `IgvmPageDataFlags`: bit 0 is_2mb_page, bit 1
/// unmeasured, bit 2 shared).
pub const PAGE_FLAG_2MB: u32 = 1 << 0;
/// See [`PAGE_FLAG_2MB`].
pub const PAGE_FLAG_UNMEASURED: u32 = 1 << 1;
/// See [`PAGE_FLAG_2MB`].
pub const PAGE_FLAG_SHARED: u32 = 1 << 2;

/// PAGE_DATA data types (igvm_defs `IgvmPageDataType`).
pub const PAGE_TYPE_NORMAL: u16 = 0;
/// See [`PAGE_TYPE_NORMAL`].
pub const PAGE_TYPE_SECRETS: u16 = 1;
/// See [`PAGE_TYPE_NORMAL`].
pub const PAGE_TYPE_CPUID_DATA: u16 = 2;
/// See [`PAGE_TYPE_NORMAL`].
pub const PAGE_TYPE_CPUID_XF: u16 = 3;

/// The `what` of every directive kind the qemu-kvm profile does not use.
pub const OTHER_DIRECTIVE: &str = "a directive kind the qemu-kvm profile does not use";

/// What the host knows besides the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// vCPUs (QEMU `-smp`).
    pub vcpus: u32,
    /// Guest RAM from GPA 0 (QEMU `-m`).
    pub memory: u64,
    /// For vCPUs without a VMSA in the file: `Some(CPUID signature)` to launch them
    /// from reset as QEMU+KVM do (a reset-state VMSA at the reset vector, with the boot
    /// VMSA's SEV features and RDX = the signature); `None` to refuse such a file.
    pub reset_aps: Option<u32>,
}

/// A file the loader refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The igvm crate could not parse it ([`crate::igvm_loader`]).
    Parse(String),
    /// The file breaks the IGVM format, or uses a header the model's own reader
    /// ([`crate::igvm_file`]) does not load.
    Format {
        /// File offset of the offending header or field.
        offset: usize,
        /// What is wrong, by name.
        what: &'static str,
    },
    /// No SEV-SNP platform header.
    NoSnpPlatform,
    /// No guest policy for the SNP platform.
    NoPolicy,
    /// A directive the loader does not implement.
    Unsupported {
        /// Index of the directive in the file.
        index: usize,
        /// What it is.
        what: &'static str,
    },
    /// A parameter area that is too large, not page-sized, unknown or written out of
    /// bounds.
    ParameterArea {
        /// Index of the directive.
        index: usize,
        /// The area.
        area: u32,
    },
    /// REQUIRED_MEMORY or a page beyond the guest's memory.
    OutOfMemory {
        /// The GPA.
        gpa: u64,
    },
    /// Two VMSAs for one vCPU, or one for a vCPU the host does not have.
    Vmsa {
        /// The vCPU index.
        vp: u16,
    },
    /// A vCPU without a VMSA in the file, and reset-state VMSAs were not asked for.
    MissingVmsa {
        /// The vCPU index.
        vp: u32,
    },
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::Parse(e) => write!(f, "IGVM file does not parse: {e}"),
            LoadError::Format { offset, what } => {
                write!(f, "IGVM file refused at offset {offset:#x}: {what}")
            }
            LoadError::NoSnpPlatform => write!(f, "IGVM file has no SEV-SNP platform"),
            LoadError::NoPolicy => write!(f, "IGVM file has no SNP guest policy"),
            LoadError::Unsupported { index, what } => {
                write!(
                    f,
                    "directive {index} ({what}) is not supported by the model's loader"
                )
            }
            LoadError::ParameterArea { index, area } => {
                write!(
                    f,
                    "directive {index}: parameter area {area} is unknown, too large or overrun"
                )
            }
            LoadError::OutOfMemory { gpa } => write!(f, "gpa {gpa:#x} is beyond guest memory"),
            LoadError::Vmsa { vp } => write!(f, "VMSA for vCPU {vp} is duplicated or beyond -smp"),
            LoadError::MissingVmsa { vp } => write!(
                f,
                "vCPU {vp} has no VMSA in the file and reset-state VMSAs are off"
            ),
        }
    }
}

impl core::error::Error for LoadError {}

/// One directive header, as the loader needs it (data borrowed from the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive<'a> {
    /// IGVM_VHT_PAGE_DATA.
    PageData {
        /// Page GPA.
        gpa: u64,
        /// Compatibility mask.
        mask: u32,
        /// Raw flags ([`PAGE_FLAG_2MB`] ...).
        flags: u32,
        /// Raw data type ([`PAGE_TYPE_NORMAL`] ...).
        data_type: u16,
        /// The page's data: empty (no file data) or 4096 bytes.
        data: &'a [u8],
    },
    /// IGVM_VHT_PARAMETER_AREA.
    ParameterArea {
        /// Size of the area.
        bytes: u64,
        /// Area index.
        area: u32,
        /// Initial data (empty or `bytes` long).
        initial: &'a [u8],
    },
    /// IGVM_VHT_VP_COUNT_PARAMETER.
    VpCount {
        /// Area index.
        area: u32,
        /// Byte offset in the area.
        offset: u32,
    },
    /// IGVM_VHT_MEMORY_MAP.
    MemoryMap {
        /// Area index.
        area: u32,
        /// Byte offset in the area.
        offset: u32,
    },
    /// IGVM_VHT_PARAMETER_INSERT.
    ParameterInsert {
        /// Where the area goes.
        gpa: u64,
        /// Compatibility mask.
        mask: u32,
        /// Area index.
        area: u32,
    },
    /// IGVM_VHT_REQUIRED_MEMORY.
    RequiredMemory {
        /// Start.
        gpa: u64,
        /// Compatibility mask.
        mask: u32,
        /// Length.
        bytes: u32,
    },
    /// IGVM_VHT_VP_CONTEXT for an SEV-SNP (or SEV-ES) platform: a VMSA page.
    SnpVpContext {
        /// vCPU index.
        vp: u16,
        /// Compatibility mask.
        mask: u32,
        /// The VMSA (4096 bytes).
        vmsa: &'a [u8],
    },
    /// IGVM_VHT_SNP_ID_BLOCK (does not change the launch).
    SnpIdBlock {
        /// Compatibility mask.
        mask: u32,
    },
    /// IGVM_VHT_ERROR_RANGE (does not change the launch).
    ErrorRange {
        /// Compatibility mask.
        mask: u32,
    },
    /// Any other directive kind: refused if it applies to the SNP platform.
    Other {
        /// Compatibility mask, for the kinds that have one.
        mask: Option<u32>,
    },
}

impl Directive<'_> {
    /// The compatibility mask, for the kinds that have one (IGVM: parameter usage
    /// headers and PARAMETER_AREA have none).
    pub fn mask(&self) -> Option<u32> {
        match *self {
            Directive::PageData { mask, .. }
            | Directive::ParameterInsert { mask, .. }
            | Directive::RequiredMemory { mask, .. }
            | Directive::SnpVpContext { mask, .. }
            | Directive::SnpIdBlock { mask }
            | Directive::ErrorRange { mask } => Some(mask),
            Directive::Other { mask } => mask,
            Directive::ParameterArea { .. }
            | Directive::VpCount { .. }
            | Directive::MemoryMap { .. } => None,
        }
    }
}

/// The SNP platform's compatibility mask: the first SUPPORTED_PLATFORM of type SEV-SNP.
/// `platforms` holds (platform type, mask) in file order.
pub fn snp_mask(platforms: &[(u8, u32)]) -> Result<u32, LoadError> {
    /// igvm_defs `IgvmPlatformType::SEV_SNP`.
    const SEV_SNP: u8 = 2;
    platforms
        .iter()
        .find(|(t, _)| *t == SEV_SNP)
        .map(|(_, m)| *m)
        .ok_or(LoadError::NoSnpPlatform)
}

/// The guest policy: the first GUEST_POLICY whose mask has the SNP bit. `policies`
/// holds (policy, mask) in file order.
pub fn snp_policy(policies: &[(u64, u32)], mask: u32) -> Result<u64, LoadError> {
    policies
        .iter()
        .find(|(_, m)| m & mask != 0)
        .map(|(p, _)| *p)
        .ok_or(LoadError::NoPolicy)
}

/// One run of PAGE_DATA being coalesced (QEMU's region).
#[derive(Default)]
struct Region {
    pages: Vec<(u64, PageType, Vec<u8>)>,
    key: Option<(u64, u32, u16)>, // next gpa, flags, data type
    has_data: bool,
}

impl Region {
    fn flush(&mut self, out: &mut Vec<Page>) {
        let zero = !self.has_data;
        for (gpa, t, data) in self.pages.drain(..) {
            let page_type = if t == PageType::Normal && data.is_empty() && zero {
                PageType::Zero
            } else {
                t
            };
            out.push(Page {
                gpa,
                page_type,
                data,
            });
        }
        self.key = None;
        self.has_data = false;
    }
}

struct Loader {
    cfg: HostConfig,
    pages: Vec<Page>,
    region: Region,
    areas: BTreeMap<u32, Vec<u8>>,
    vmsas: BTreeMap<u16, Vec<u8>>,
}

/// Build the launch plan from the file's directives (in file order), the SNP
/// platform's mask and the guest policy, for `cfg`.
pub fn plan_directives<'a>(
    directives: impl IntoIterator<Item = Directive<'a>>,
    mask: u32,
    policy: u64,
    cfg: HostConfig,
) -> Result<Plan, LoadError> {
    let mut l = Loader {
        cfg,
        pages: Vec::new(),
        region: Region::default(),
        areas: BTreeMap::new(),
        vmsas: BTreeMap::new(),
    };
    for (index, h) in directives.into_iter().enumerate() {
        if h.mask().is_some_and(|m| m & mask == 0) {
            continue;
        }
        l.directive(index, &h)?;
    }
    l.region.flush(&mut l.pages);
    let boot_features = l.vmsas.get(&0).map_or(1, |v| {
        let mut f = [0u8; 8];
        f.copy_from_slice(&v[VMSA_SEV_FEATURES..VMSA_SEV_FEATURES + 8]);
        u64::from_le_bytes(f)
    });
    let mut vmsas = Vec::new();
    for vp in 0..cfg.vcpus {
        let file = u16::try_from(vp).ok().and_then(|i| l.vmsas.remove(&i));
        let v = match (file, cfg.reset_aps) {
            (Some(v), _) => v,
            (None, Some(sig)) => {
                crate::reset_vmsa::reset_vmsa(crate::ovmf::BSP_EIP, boot_features, sig).to_vec()
            }
            (None, None) => return Err(LoadError::MissingVmsa { vp }),
        };
        vmsas.push(v);
    }
    if let Some(vp) = l.vmsas.keys().next() {
        return Err(LoadError::Vmsa { vp: *vp });
    }
    Ok(Plan {
        pages: l.pages,
        vmsas,
        policy,
    })
}

impl Loader {
    fn directive(&mut self, index: usize, h: &Directive<'_>) -> Result<(), LoadError> {
        let unsupported = |what| Err(LoadError::Unsupported { index, what });
        if !matches!(h, Directive::PageData { .. }) {
            self.region.flush(&mut self.pages);
        }
        match *h {
            Directive::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                if flags & PAGE_FLAG_SHARED != 0 {
                    return unsupported("shared PAGE_DATA");
                }
                if flags & PAGE_FLAG_2MB != 0 {
                    return unsupported("2 MiB PAGE_DATA");
                }
                let t = match data_type {
                    PAGE_TYPE_SECRETS => PageType::Secrets,
                    PAGE_TYPE_CPUID_DATA | PAGE_TYPE_CPUID_XF => PageType::Cpuid,
                    PAGE_TYPE_NORMAL if flags & PAGE_FLAG_UNMEASURED != 0 => PageType::Unmeasured,
                    PAGE_TYPE_NORMAL => PageType::Normal,
                    _ => return unsupported("PAGE_DATA of an unknown type"),
                };
                self.page(gpa, flags, data_type, t, data)
            }
            Directive::ParameterArea {
                bytes,
                area,
                initial,
            } => {
                // Sizes come from the file: bound them before allocating.
                if bytes > MAX_PARAMETER_AREA
                    || !bytes.is_multiple_of(PAGE_SIZE)
                    || initial.len() as u64 > bytes
                    || self.areas.contains_key(&area)
                {
                    return Err(LoadError::ParameterArea { index, area });
                }
                let mut buf = alloc::vec![0u8; bytes as usize];
                buf[..initial.len()].copy_from_slice(initial);
                self.areas.insert(area, buf);
                Ok(())
            }
            Directive::VpCount { area, offset } => {
                let v = self.cfg.vcpus.to_le_bytes();
                self.write_param(index, area, offset, &v)
            }
            Directive::MemoryMap { area, offset } => {
                let map = memory_map(self.cfg.memory);
                self.write_param(index, area, offset, &map)
            }
            Directive::ParameterInsert { gpa, area, .. } => self.insert(index, gpa, area),
            Directive::RequiredMemory { gpa, bytes, .. } => {
                match gpa.checked_add(u64::from(bytes)) {
                    Some(e) if e <= self.cfg.memory => Ok(()),
                    _ => Err(LoadError::OutOfMemory { gpa }),
                }
            }
            Directive::SnpVpContext { vp, vmsa, .. } => {
                if u32::from(vp) >= self.cfg.vcpus || self.vmsas.insert(vp, vmsa.to_vec()).is_some()
                {
                    return Err(LoadError::Vmsa { vp });
                }
                Ok(())
            }
            Directive::SnpIdBlock { .. } | Directive::ErrorRange { .. } => Ok(()),
            Directive::Other { .. } => unsupported(OTHER_DIRECTIVE),
        }
    }

    fn bounded(&self, gpa: u64) -> Result<(), LoadError> {
        match gpa.checked_add(PAGE_SIZE) {
            Some(e) if e <= self.cfg.memory && gpa.is_multiple_of(PAGE_SIZE) => Ok(()),
            _ => Err(LoadError::OutOfMemory { gpa }),
        }
    }

    fn page(
        &mut self,
        gpa: u64,
        flags: u32,
        dtype: u16,
        t: PageType,
        data: &[u8],
    ) -> Result<(), LoadError> {
        self.bounded(gpa)?;
        let continues = self.region.key == Some((gpa, flags, dtype));
        if !continues {
            self.region.flush(&mut self.pages);
        }
        let data = if t == PageType::Cpuid {
            crate::cpuid::cpuid_page().to_vec()
        } else {
            data.to_vec()
        };
        self.region.has_data |= !data.is_empty();
        self.region.pages.push((gpa, t, data));
        self.region.key = Some((gpa + PAGE_SIZE, flags, dtype));
        Ok(())
    }

    fn insert(&mut self, index: usize, gpa: u64, area: u32) -> Result<(), LoadError> {
        let buf = self
            .areas
            .remove(&area)
            .ok_or(LoadError::ParameterArea { index, area })?;
        for (i, chunk) in buf.chunks(PAGE_SIZE as usize).enumerate() {
            // The GPA comes from the file: no wrap past the top of the space.
            let gpa_i = gpa
                .checked_add(i as u64 * PAGE_SIZE)
                .ok_or(LoadError::OutOfMemory { gpa })?;
            self.bounded(gpa_i)?;
            self.pages.push(Page {
                gpa: gpa_i,
                page_type: PageType::Unmeasured,
                data: chunk.to_vec(),
            });
        }
        Ok(())
    }

    fn write_param(
        &mut self,
        index: usize,
        area: u32,
        offset: u32,
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        let bad = LoadError::ParameterArea { index, area };
        let buf = self.areas.get_mut(&area).ok_or(bad.clone())?;
        let start = offset as usize;
        let dst = start
            .checked_add(bytes.len())
            .and_then(|end| buf.get_mut(start..end))
            .ok_or(bad)?;
        dst.copy_from_slice(bytes);
        Ok(())
    }
}

/// The memory map the host writes: all RAM as one MEMORY entry, then a zero entry.
pub fn memory_map(memory: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(2 * MEMORY_MAP_ENTRY_LEN);
    m.extend_from_slice(&0u64.to_le_bytes()); // starting_gpa_page_number
    m.extend_from_slice(&(memory / PAGE_SIZE).to_le_bytes()); // number_of_pages
    m.extend_from_slice(&0u16.to_le_bytes()); // entry_type MEMORY
    m.extend_from_slice(&0u16.to_le_bytes()); // flags
    m.extend_from_slice(&0u32.to_le_bytes()); // reserved
    m.extend_from_slice(&[0; MEMORY_MAP_ENTRY_LEN]);
    m
}
