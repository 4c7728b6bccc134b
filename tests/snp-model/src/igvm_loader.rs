//! The host's IGVM loader: from an IGVM file to a launch [`Plan`], as QEMU's loader
//! (`backends/igvm.c`, QEMU >= 10.1) does for an SEV-SNP guest on KVM.
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
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use igvm_defs::{IgvmPageDataType, IgvmPlatformType, IGVM_VHS_PARAMETER};
use zerocopy::IntoBytes;

use crate::launch::{Page, Plan};
use crate::page_info::PageType;
use crate::rmp::PAGE_SIZE;

/// Largest parameter area the loader accepts (the size comes from the file).
pub const MAX_PARAMETER_AREA: u64 = 16 << 20;
/// Size of one IGVM memory-map entry.
pub const MEMORY_MAP_ENTRY_LEN: usize = 24;

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

/// SEV_FEATURES offset in a VMSA (APM vol. 2 appendix B).
const VMSA_SEV_FEATURES: usize = 0x3b0;

/// A file the loader refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The igvm crate could not parse it.
    Parse(String),
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

impl std::error::Error for LoadError {}

/// One run of PAGE_DATA being coalesced (QEMU's region).
#[derive(Default)]
struct Region {
    pages: Vec<(u64, PageType, Vec<u8>)>,
    key: Option<(u64, u32, u32)>, // next gpa, flags, data type
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

/// Build the launch plan of `data` for `cfg`.
pub fn plan(data: &[u8], cfg: HostConfig) -> Result<Plan, LoadError> {
    let file =
        IgvmFile::new_from_binary(data, None).map_err(|e| LoadError::Parse(e.to_string()))?;
    let mask = snp_mask(&file)?;
    let policy = file
        .initializations()
        .iter()
        .find_map(|h| match h {
            IgvmInitializationHeader::GuestPolicy {
                policy,
                compatibility_mask,
            } if compatibility_mask & mask != 0 => Some(*policy),
            _ => None,
        })
        .ok_or(LoadError::NoPolicy)?;
    let mut l = Loader {
        cfg,
        pages: Vec::new(),
        region: Region::default(),
        areas: BTreeMap::new(),
        vmsas: BTreeMap::new(),
    };
    for (index, h) in file.directives().iter().enumerate() {
        if h.compatibility_mask().is_some_and(|m| m & mask == 0) {
            continue;
        }
        l.directive(index, h)?;
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

fn snp_mask(file: &IgvmFile) -> Result<u32, LoadError> {
    file.platforms()
        .iter()
        .find_map(|p| match p {
            IgvmPlatformHeader::SupportedPlatform(sp)
                if sp.platform_type == IgvmPlatformType::SEV_SNP =>
            {
                Some(sp.compatibility_mask)
            }
            _ => None,
        })
        .ok_or(LoadError::NoSnpPlatform)
}

impl Loader {
    fn directive(&mut self, index: usize, h: &IgvmDirectiveHeader) -> Result<(), LoadError> {
        let unsupported = |what| Err(LoadError::Unsupported { index, what });
        if !matches!(h, IgvmDirectiveHeader::PageData { .. }) {
            self.region.flush(&mut self.pages);
        }
        match h {
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                if flags.shared() {
                    return unsupported("shared PAGE_DATA");
                }
                if flags.is_2mb_page() {
                    return unsupported("2 MiB PAGE_DATA");
                }
                let t = if *data_type == IgvmPageDataType::SECRETS {
                    PageType::Secrets
                } else if *data_type == IgvmPageDataType::CPUID_DATA
                    || *data_type == IgvmPageDataType::CPUID_XF
                {
                    PageType::Cpuid
                } else if *data_type != IgvmPageDataType::NORMAL {
                    return unsupported("PAGE_DATA of an unknown type");
                } else if flags.unmeasured() {
                    PageType::Unmeasured
                } else {
                    PageType::Normal
                };
                self.page(*gpa, u32::from(*flags), u32::from(data_type.0), t, data)
            }
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                initial_data,
            } => {
                let bad = LoadError::ParameterArea {
                    index,
                    area: *parameter_area_index,
                };
                // Sizes come from the file: bound them before allocating.
                if *number_of_bytes > MAX_PARAMETER_AREA
                    || !number_of_bytes.is_multiple_of(PAGE_SIZE)
                    || initial_data.len() as u64 > *number_of_bytes
                    || self.areas.contains_key(parameter_area_index)
                {
                    return Err(bad);
                }
                let mut buf = alloc::vec![0u8; *number_of_bytes as usize];
                buf[..initial_data.len()].copy_from_slice(initial_data);
                self.areas.insert(*parameter_area_index, buf);
                Ok(())
            }
            IgvmDirectiveHeader::VpCount(p) => {
                let v = self.cfg.vcpus.to_le_bytes();
                self.write_param(index, p, &v)
            }
            IgvmDirectiveHeader::MemoryMap(p) => {
                let map = memory_map(self.cfg.memory);
                self.write_param(index, p, &map)
            }
            IgvmDirectiveHeader::ParameterInsert(p) => {
                let buf =
                    self.areas
                        .remove(&p.parameter_area_index)
                        .ok_or(LoadError::ParameterArea {
                            index,
                            area: p.parameter_area_index,
                        })?;
                for (i, chunk) in buf.chunks(PAGE_SIZE as usize).enumerate() {
                    // The GPA comes from the file: no wrap past the top of the space.
                    let gpa = p
                        .gpa
                        .checked_add(i as u64 * PAGE_SIZE)
                        .ok_or(LoadError::OutOfMemory { gpa: p.gpa })?;
                    self.bounded(gpa)?;
                    self.pages.push(Page {
                        gpa,
                        page_type: PageType::Unmeasured,
                        data: chunk.to_vec(),
                    });
                }
                Ok(())
            }
            IgvmDirectiveHeader::RequiredMemory {
                gpa,
                number_of_bytes,
                ..
            } => {
                let end = gpa.checked_add(u64::from(*number_of_bytes));
                match end {
                    Some(e) if e <= self.cfg.memory => Ok(()),
                    _ => Err(LoadError::OutOfMemory { gpa: *gpa }),
                }
            }
            IgvmDirectiveHeader::SnpVpContext { vp_index, vmsa, .. } => {
                if u32::from(*vp_index) >= self.cfg.vcpus
                    || self
                        .vmsas
                        .insert(*vp_index, vmsa.as_bytes().to_vec())
                        .is_some()
                {
                    return Err(LoadError::Vmsa { vp: *vp_index });
                }
                Ok(())
            }
            IgvmDirectiveHeader::SnpIdBlock { .. } | IgvmDirectiveHeader::ErrorRange { .. } => {
                Ok(())
            }
            _ => unsupported("a directive kind the qemu-kvm profile does not use"),
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
        dtype: u32,
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

    fn write_param(
        &mut self,
        index: usize,
        p: &IGVM_VHS_PARAMETER,
        bytes: &[u8],
    ) -> Result<(), LoadError> {
        let bad = LoadError::ParameterArea {
            index,
            area: p.parameter_area_index,
        };
        let buf = self
            .areas
            .get_mut(&p.parameter_area_index)
            .ok_or(bad.clone())?;
        let start = p.byte_offset as usize;
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
