//! The SNP launch digest of an IGVM file, under explicit loader rules.
//!
//! The IGVM format says what to load, not how the VMM turns it into SNP_LAUNCH_UPDATE
//! calls, and the loaders differ. Three tools disagree in practice:
//!
//! - the `igvm` crate (`igvm::measurement::generate_snp_measurement`) and COCONUT's
//!   igvmmeasure by default measure a VMSA where its directive sits, at the GPA the file
//!   gives, and a page without data as a NORMAL page of zeros (what the IGVM spec asks
//!   of a loader);
//! - QEMU's IGVM loader with KVM measures the VMSAs last, after every page, at the fixed
//!   GPA 0xFFFFFFFFF000, one per vCPU (the file's VMSA for the vCPUs it has one for, a
//!   reset-state VMSA for the others), and turns a run of data-less pages into ZERO
//!   pages (it coalesces consecutive pages with equal flags and type into one region;
//!   the region is ZERO only if none of its pages carries data).
//!
//! [`LoaderRules`] names each of these choices, so that a digest always says which
//! loader it is for. The defaults are QEMU+KVM's. With `VmsaRule::File`,
//! `ZeroRule::Normal` and no AP VMSAs the result equals the `igvm` crate's (tested).
//!
//! Assumption (documented, checked by `lint`): a QEMU region ends at any directive that
//! is not PAGE_DATA. Vigil's builder never interleaves other directives with a run of
//! pages, so its files do not depend on it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType};
use serde::Serialize;
use svsm_abi::page_info::PageType;
use svsm_abi::vmsa::Vmsa;
use zerocopy::{FromBytes, IntoBytes};

use crate::digest::{self, Measurement, PageOp, KVM_VMSA_GPA, PAGE_SIZE};
use crate::limits::MAX_VCPUS;
use crate::reset_vmsa::{self, Fpu, VmmType, BSP_EIP};
use crate::{reader, Error, Result};

/// Where and when VMSAs are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VmsaRule {
    /// QEMU+KVM: after all pages, at 0xFFFFFFFFF000, in vCPU order.
    Kvm,
    /// The igvm crate / IGVM spec: in directive order at the file's GPA.
    File,
}

/// How pages without data are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ZeroRule {
    /// QEMU: ZERO pages unless coalesced into a region that has data.
    Qemu,
    /// Always ZERO pages.
    Zero,
    /// NORMAL pages of zeros (IGVM spec, igvm crate).
    Normal,
}

/// The platform a file is measured or launched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// AMD SEV-SNP.
    Snp,
    /// No isolation.
    Native,
}

impl Platform {
    /// The IGVM platform type.
    pub fn igvm_type(self) -> IgvmPlatformType {
        match self {
            Platform::Snp => IgvmPlatformType::SEV_SNP,
            Platform::Native => IgvmPlatformType::NATIVE,
        }
    }
}

/// Largest parameter area accepted (64 MiB): the size is read from the file and each
/// 4 KiB of it becomes a measured page.
pub const MAX_PARAMETER_AREA: u64 = 64 << 20;

/// Largest sum of all inserted parameter areas (64 MiB). Attack: a PARAMETER_AREA and
/// its PARAMETER_INSERT cost 64 bytes of file each and may declare 64 MiB, so a 1 MiB
/// file could otherwise make a measurement expand into hundreds of millions of pages.
pub const MAX_PARAMETER_TOTAL: u64 = 64 << 20;

/// The loader rules of an IGVM measurement.
#[derive(Clone, Debug, Serialize)]
pub struct LoaderRules {
    /// VMSA placement.
    pub vmsa: VmsaRule,
    /// Data-less pages.
    pub zero_pages: ZeroRule,
    /// Under `VmsaRule::Kvm`: measure a reset-state VMSA for each vCPU without one in the file.
    pub ap_vmsas: bool,
    /// Number of vCPUs (default: the file's own count, see [`file_vcpus`]).
    pub vcpus: Option<u32>,
    /// CPUID signature in RDX of the reset-state VMSAs.
    pub vcpu_sig: u32,
    /// SEV_FEATURES of the reset-state VMSAs (default: the boot VMSA's).
    pub guest_features: Option<u64>,
    /// x87 FCW rule applied to every measured VMSA.
    pub fpu: Fpu,
}

impl Default for LoaderRules {
    fn default() -> Self {
        Self {
            vmsa: VmsaRule::Kvm,
            zero_pages: ZeroRule::Qemu,
            ap_vmsas: true,
            vcpus: None,
            vcpu_sig: 0,
            guest_features: None,
            fpu: Fpu::VmmDefault,
        }
    }
}

/// The rules as resolved for one file (what a digest was computed with).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ResolvedRules {
    /// VMSA rule.
    pub vmsa: VmsaRule,
    /// Zero-page rule.
    pub zero_pages: ZeroRule,
    /// Reset VMSAs added for vCPUs without a file VMSA.
    pub ap_vmsas: bool,
    /// vCPU count.
    pub vcpus: u32,
    /// SEV features of the boot VMSA (hex in JSON, like every bit field and address).
    #[serde(serialize_with = "hex_json")]
    pub sev_features: u64,
    /// Guest policy of the file.
    #[serde(serialize_with = "hex_json")]
    pub policy: u64,
    /// Compatibility mask of the SNP platform.
    #[serde(serialize_with = "hex_json")]
    pub compatibility_mask: u32,
    /// x87 FCW zeroed.
    pub x87_fcw_zero: bool,
}

/// Serialize a number as a "0x..." string (JSON output shows addresses and bit fields in
/// hex everywhere).
fn hex_json<T: std::fmt::LowerHex, S: serde::Serializer>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

/// The result of [`measure_file`].
#[derive(Clone, Debug)]
pub struct IgvmMeasurement {
    /// Digest and log.
    pub measurement: Measurement,
    /// Rules used.
    pub rules: ResolvedRules,
}

/// The compatibility mask of `platform` in `file`.
pub fn platform_mask(file: &IgvmFile, platform: Platform) -> Result<u32> {
    file.platforms()
        .iter()
        .find_map(|p| match p {
            IgvmPlatformHeader::SupportedPlatform(sp)
                if sp.platform_type == platform.igvm_type() =>
            {
                Some(sp.compatibility_mask)
            }
            _ => None,
        })
        .ok_or_else(|| Error::Invalid(format!("the IGVM file has no {platform:?} platform header")))
}

/// The SNP guest policy of `file` for `mask`.
pub fn guest_policy(file: &IgvmFile, mask: u32) -> Option<u64> {
    file.initializations().iter().find_map(|h| match h {
        IgvmInitializationHeader::GuestPolicy {
            policy,
            compatibility_mask,
        } if compatibility_mask & mask == mask => Some(*policy),
        _ => None,
    })
}

/// True if `h` applies to `mask` (headers without a mask apply to every platform).
pub fn applies(h: &IgvmDirectiveHeader, mask: u32) -> bool {
    h.compatibility_mask().is_none_or(|m| m & mask == mask)
}

/// A VMSA of the file as the typed structure.
pub fn vmsa_of(v: &igvm::snp_defs::SevVmsa) -> Result<Vmsa> {
    Vmsa::read_from_bytes(v.as_bytes()).map_err(|_| Error::Igvm("VMSA is not 4096 bytes".into()))
}

fn apply_fpu(mut v: Vmsa, fpu: Fpu) -> Vmsa {
    if fpu == Fpu::FcwZero {
        v.x87_fcw = 0;
    }
    v
}

/// The file's own vCPU count, the default of every command that measures (measure,
/// refs, sign, lint) and of qemu-args' `-smp`: the count Vigil's BootParams page was
/// built for, else the number of the file's SNP VMSAs (at least 1). A count above
/// [`MAX_VCPUS`] is refused: each vCPU adds a measured page, and the value comes from
/// the file.
pub fn file_vcpus(file: &IgvmFile, file_vmsa_count: u32) -> Result<u32> {
    match crate::builder::find_boot_params(file) {
        Some(bp) if bp.vcpus == 0 || bp.vcpus > MAX_VCPUS => Err(Error::Invalid(format!(
            "BootParams: vCPU count {} is outside 1..={MAX_VCPUS}",
            bp.vcpus
        ))),
        Some(bp) => Ok(bp.vcpus),
        None => Ok(file_vmsa_count.max(1)),
    }
}

/// The file's own vCPU count for a whole file (see [`file_vcpus`]).
pub fn default_vcpus(file: &IgvmFile) -> Result<u32> {
    let vmsas = file
        .directives()
        .iter()
        .filter(|h| matches!(h, IgvmDirectiveHeader::SnpVpContext { .. }))
        .count() as u32;
    file_vcpus(file, vmsas)
}

/// Measure the IGVM file `data` for SNP under `rules`.
pub fn measure_file(
    data: &[u8],
    platform: Platform,
    rules: &LoaderRules,
    want_log: bool,
) -> Result<IgvmMeasurement> {
    if platform != Platform::Snp {
        return Err(Error::Usage(
            "only the SNP platform has a launch digest".into(),
        ));
    }
    let (file, _) = reader::parse(data)?;
    measure_parsed(&file, rules, want_log)
}

/// The pass over the directives that apply to the platform: the page operations in
/// directive order, the parameter areas declared so far (index to size), the bytes
/// inserted so far and, under [`VmsaRule::Kvm`], the file's VMSAs by vCPU.
#[derive(Default)]
struct DirectivePass<'a> {
    ops: Vec<PageOp<'a>>,
    areas: HashMap<u32, u64>,
    inserted: u64,
    file_vmsas: BTreeMap<u16, Vmsa>,
}

impl<'a> DirectivePass<'a> {
    /// Turn `dirs` into page operations under `rules`; `zero_as_zero` says which
    /// data-less pages are measured as ZERO (see [`zero_page_types`]).
    fn run(
        dirs: &[&'a IgvmDirectiveHeader],
        rules: &LoaderRules,
        zero_as_zero: &HashMap<usize, bool>,
    ) -> Result<Self> {
        let mut pass = DirectivePass::default();
        for (i, &h) in dirs.iter().enumerate() {
            match h {
                IgvmDirectiveHeader::PageData {
                    gpa,
                    flags,
                    data_type,
                    data,
                    ..
                } => {
                    let zero = zero_as_zero.get(&i).copied().unwrap_or(false);
                    pass.page_data(*gpa, *flags, *data_type, data, zero)?;
                }
                IgvmDirectiveHeader::ParameterArea {
                    number_of_bytes,
                    parameter_area_index,
                    ..
                } => {
                    pass.areas.insert(*parameter_area_index, *number_of_bytes);
                }
                IgvmDirectiveHeader::ParameterInsert(p) => {
                    pass.parameter_insert(p.gpa, p.parameter_area_index)?
                }
                IgvmDirectiveHeader::SnpVpContext {
                    gpa,
                    vp_index,
                    vmsa,
                    ..
                } => pass.vp_context(*gpa, *vp_index, vmsa, rules)?,
                _ => {}
            }
        }
        Ok(pass)
    }

    /// One PAGE_DATA page: shared pages are not measured; SECRETS, CPUID, unmeasured
    /// and (per `zero`) data-less pages have their own page types; the rest is NORMAL.
    fn page_data(
        &mut self,
        gpa: u64,
        flags: IgvmPageDataFlags,
        data_type: IgvmPageDataType,
        data: &'a [u8],
        zero: bool,
    ) -> Result<()> {
        if flags.shared() {
            return Ok(());
        }
        if flags.is_2mb_page() {
            return Err(Error::Invalid(format!(
                "PAGE_DATA at GPA {gpa:#x}: 2 MiB pages are not supported"
            )));
        }
        let op = if data_type == IgvmPageDataType::SECRETS {
            PageOp::unhashed(gpa, PageType::Secrets)
        } else if data_type == IgvmPageDataType::CPUID_DATA
            || data_type == IgvmPageDataType::CPUID_XF
        {
            PageOp::unhashed(gpa, PageType::Cpuid)
        } else if flags.unmeasured() {
            PageOp::unhashed(gpa, PageType::Unmeasured)
        } else if data.is_empty() && zero {
            PageOp::unhashed(gpa, PageType::Zero)
        } else {
            PageOp::normal(gpa, Cow::Borrowed(data))
        };
        self.ops.push(op);
        Ok(())
    }

    /// A PARAMETER_INSERT: the declared area's pages, as UNMEASURED pages at `gpa`.
    fn parameter_insert(&mut self, gpa: u64, index: u32) -> Result<()> {
        let size = self.areas.get(&index).ok_or_else(|| {
            Error::Invalid(format!(
                "PARAMETER_INSERT at GPA {gpa:#x}: unknown parameter area {index}"
            ))
        })?;
        // The size comes from the file: bound it before expanding it into pages.
        if *size > MAX_PARAMETER_AREA || gpa.checked_add(*size).is_none() {
            return Err(Error::Invalid(format!(
                "PARAMETER_INSERT at GPA {gpa:#x}: parameter area {index} of {size:#x} bytes is larger than {MAX_PARAMETER_AREA:#x} or wraps"
            )));
        }
        self.inserted = self.inserted.saturating_add(*size);
        if self.inserted > MAX_PARAMETER_TOTAL {
            return Err(Error::Invalid(format!(
                "PARAMETER_INSERT at GPA {gpa:#x}: parameter areas inserted so far sum to more than {MAX_PARAMETER_TOTAL:#x} bytes"
            )));
        }
        self.ops
            .extend(digest::unhashed_pages(gpa, *size, PageType::Unmeasured));
        Ok(())
    }

    /// An SNP VP context: measured where the file puts it ([`VmsaRule::File`]) or kept
    /// for the KVM rule, which measures every vCPU's VMSA at KVM's GPA afterwards.
    fn vp_context(
        &mut self,
        gpa: u64,
        vp_index: u16,
        vmsa: &igvm::snp_defs::SevVmsa,
        rules: &LoaderRules,
    ) -> Result<()> {
        let v = apply_fpu(vmsa_of(vmsa)?, rules.fpu);
        match rules.vmsa {
            VmsaRule::File => self.ops.push(PageOp {
                gpa,
                page_type: PageType::Vmsa,
                data: Cow::Owned(v.as_bytes().to_vec()),
            }),
            VmsaRule::Kvm => {
                // Two contexts for one vCPU: which one KVM would use is not defined.
                if self.file_vmsas.insert(vp_index, v).is_some() {
                    return Err(Error::Invalid(format!("two VMSAs for vCPU {vp_index}")));
                }
            }
        }
        Ok(())
    }

    /// The KVM rule's VMSA pages, one per vCPU at KVM's VMSA GPA, in vCPU order: the
    /// file's VMSA for that vCPU, else (with `ap_vmsas`) the reset VMSA QEMU gives an
    /// AP. A file VMSA for a vCPU beyond `vcpus` is refused, not dropped silently.
    fn kvm_vmsas(&mut self, rules: &LoaderRules, vcpus: u32, boot_features: u64) -> Result<()> {
        if let Some(max) = self.file_vmsas.keys().next_back() {
            if u32::from(*max) >= vcpus {
                return Err(Error::Usage(format!(
                    "the file has a VMSA for vCPU {max} but --vcpus is {vcpus}"
                )));
            }
        }
        let features = rules.guest_features.unwrap_or(boot_features);
        for vp in 0..vcpus {
            let v = match u16::try_from(vp).ok().and_then(|i| self.file_vmsas.get(&i)) {
                Some(v) => v.clone(),
                None if rules.ap_vmsas => reset_vmsa::reset_vmsa(
                    BSP_EIP,
                    features,
                    rules.vcpu_sig,
                    VmmType::QEMU,
                    rules.fpu,
                ),
                None => continue,
            };
            self.ops.push(PageOp {
                gpa: KVM_VMSA_GPA,
                page_type: PageType::Vmsa,
                data: Cow::Owned(v.as_bytes().to_vec()),
            });
        }
        Ok(())
    }
}

/// SEV_FEATURES of the boot vCPU's VMSA in `dirs`, else SNPActive alone.
fn boot_features(dirs: &[&IgvmDirectiveHeader]) -> u64 {
    dirs.iter()
        .find_map(|h| match h {
            IgvmDirectiveHeader::SnpVpContext {
                vp_index: 0, vmsa, ..
            } => vmsa_of(vmsa).ok().map(|v| v.sev_features),
            _ => None,
        })
        .unwrap_or(1)
}

/// The vCPU count to measure: `--vcpus` (bounded by [`MAX_VCPUS`]), else the file's own
/// (see [`file_vcpus`]).
fn resolve_vcpus(
    file: &IgvmFile,
    dirs: &[&IgvmDirectiveHeader],
    rules: &LoaderRules,
) -> Result<u32> {
    let file_vmsa_count = dirs
        .iter()
        .filter(|h| matches!(h, IgvmDirectiveHeader::SnpVpContext { .. }))
        .count() as u32;
    match rules.vcpus {
        Some(v) if v == 0 || v > MAX_VCPUS => Err(Error::Usage(format!(
            "--vcpus {v} is outside 1..={MAX_VCPUS}"
        ))),
        Some(v) => Ok(v),
        None => file_vcpus(file, file_vmsa_count),
    }
}

/// Measure a parsed file (see [`measure_file`]): the directives of the SNP platform
/// become page operations in file order, then (KVM rule) the VMSAs of every vCPU.
pub fn measure_parsed(
    file: &IgvmFile,
    rules: &LoaderRules,
    want_log: bool,
) -> Result<IgvmMeasurement> {
    let mask = platform_mask(file, Platform::Snp)?;
    let policy = guest_policy(file, mask)
        .ok_or_else(|| Error::Invalid("the IGVM file has no SNP guest policy".into()))?;
    let dirs: Vec<&IgvmDirectiveHeader> = file
        .directives()
        .iter()
        .filter(|h| applies(h, mask))
        .collect();

    // Pass 1: which data-less pages QEMU would measure as ZERO (regions without data).
    let zero_as_zero = zero_page_types(&dirs, rules.zero_pages);
    // Pass 2: the page operations.
    let mut pass = DirectivePass::run(&dirs, rules, &zero_as_zero)?;
    let boot_features = boot_features(&dirs);
    let vcpus = resolve_vcpus(file, &dirs, rules)?;
    if rules.vmsa == VmsaRule::Kvm {
        pass.kvm_vmsas(rules, vcpus, boot_features)?;
    }
    let measurement = digest::measure([0; 48], &pass.ops, want_log)?;
    Ok(IgvmMeasurement {
        measurement,
        rules: ResolvedRules {
            vmsa: rules.vmsa,
            zero_pages: rules.zero_pages,
            ap_vmsas: rules.ap_vmsas,
            vcpus,
            sev_features: boot_features,
            policy,
            compatibility_mask: mask,
            x87_fcw_zero: rules.fpu == Fpu::FcwZero,
        },
    })
}

/// For every data-less PAGE_DATA directive (by index in `dirs`), whether it is measured
/// as a ZERO page under `rule`.
fn zero_page_types(dirs: &[&IgvmDirectiveHeader], rule: ZeroRule) -> HashMap<usize, bool> {
    let mut out = HashMap::new();
    match rule {
        ZeroRule::Normal => {}
        ZeroRule::Zero => {
            for (i, h) in dirs.iter().enumerate() {
                if let IgvmDirectiveHeader::PageData { data, .. } = h {
                    if data.is_empty() {
                        out.insert(i, true);
                    }
                }
            }
        }
        ZeroRule::Qemu => {
            // Regions: runs of PAGE_DATA with consecutive GPAs and equal flags and type.
            let mut region: Vec<usize> = Vec::new();
            let mut has_data = false;
            let mut last: Option<(u64, u32, u32)> = None; // gpa, flags, type
            let flush =
                |region: &mut Vec<usize>, has_data: bool, out: &mut HashMap<usize, bool>| {
                    for i in region.drain(..) {
                        out.insert(i, !has_data);
                    }
                };
            for (i, h) in dirs.iter().enumerate() {
                match h {
                    IgvmDirectiveHeader::PageData {
                        gpa,
                        flags,
                        data_type,
                        data,
                        ..
                    } => {
                        let key = (*gpa, u32::from(*flags), u32::from(data_type.0));
                        let continues = last.is_some_and(|(g, f, t)| {
                            g.checked_add(PAGE_SIZE as u64) == Some(key.0)
                                && f == key.1
                                && t == key.2
                        });
                        if !continues {
                            flush(&mut region, has_data, &mut out);
                            has_data = false;
                        }
                        region.push(i);
                        has_data |= !data.is_empty();
                        last = Some(key);
                    }
                    _ => {
                        flush(&mut region, has_data, &mut out);
                        has_data = false;
                        last = None;
                    }
                }
            }
            flush(&mut region, has_data, &mut out);
        }
    }
    out
}
