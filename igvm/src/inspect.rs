//! `vigil-igvm inspect`: what an IGVM file contains, as text or JSON: platforms, guest
//! policy, runs of pages (consecutive GPAs with the same mask, flags, type and
//! data/no-data), parameter areas, required memory, VP contexts with their key
//! registers, the ID block and the decoded Vigil boot parameters.

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use serde::Serialize;

use crate::builder::find_boot_params;
use crate::digest::PAGE_SIZE;
use crate::igvm_measure::vmsa_of;
use crate::reader::{self, HeaderLoc};
use crate::sign::{IdBlockSummary, SignedIdBlock};
use crate::Result;

/// A platform header.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformInfo {
    /// Platform type name.
    pub platform: String,
    /// Compatibility mask.
    pub compatibility_mask: String,
    /// Highest VTL.
    pub highest_vtl: u8,
    /// Shared GPA boundary.
    pub shared_gpa_boundary: String,
}

/// A run of PAGE_DATA directives.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PageRun {
    /// First GPA.
    pub gpa: String,
    /// Number of 4 KiB pages.
    pub pages: u64,
    /// Compatibility mask.
    pub compatibility_mask: String,
    /// IGVM data type (NORMAL, SECRETS, CPUID_DATA, ...).
    pub data_type: String,
    /// Flags (unmeasured, shared, 2mb).
    pub flags: Vec<&'static str>,
    /// Whether the pages carry data in the file.
    pub data: bool,
}

/// A VP context.
#[derive(Clone, Debug, Serialize)]
pub struct VpInfo {
    /// "snp" or "native".
    pub kind: &'static str,
    /// vCPU index.
    pub vp_index: u16,
    /// GPA of the VMSA (SNP).
    pub gpa: Option<String>,
    /// Entry RIP.
    pub rip: String,
    /// VMPL (SNP).
    pub vmpl: Option<u8>,
    /// SEV_FEATURES (SNP).
    pub sev_features: Option<String>,
    /// CR0.
    pub cr0: String,
    /// EFER.
    pub efer: String,
    /// Compatibility mask.
    pub compatibility_mask: String,
}

/// Decoded Vigil boot parameters.
#[derive(Clone, Debug, Serialize)]
pub struct BootParamsInfo {
    /// Version.
    pub version: u32,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest VMPL.
    pub guest_vmpl: u32,
    /// Vigil region.
    pub vigil_region: [String; 2],
    /// Kernel entry.
    pub kernel_entry: String,
    /// Firmware start, size, entry.
    pub firmware: [String; 3],
    /// Monitor policy length.
    pub policy_len: u32,
    /// Monitor policy digest.
    pub policy_digest: String,
}

/// Everything `inspect` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// File size.
    pub file_size: usize,
    /// Number of variable headers.
    pub headers: usize,
    /// Platforms.
    pub platforms: Vec<PlatformInfo>,
    /// Guest policies: (mask, policy).
    pub guest_policies: Vec<[String; 2]>,
    /// Page runs in directive order.
    pub page_runs: Vec<PageRun>,
    /// Parameter areas: index, size, kind, inserted at GPA.
    pub parameter_areas: Vec<serde_json::Value>,
    /// Required memory ranges: gpa, size.
    pub required_memory: Vec<[String; 2]>,
    /// VP contexts.
    pub vp_contexts: Vec<VpInfo>,
    /// ID block.
    pub id_block: Option<IdBlockSummary>,
    /// Vigil boot parameters.
    pub boot_params: Option<BootParamsInfo>,
    /// Directive headers by kind.
    pub directive_counts: std::collections::BTreeMap<String, usize>,
}

fn kind_name(h: &IgvmDirectiveHeader) -> &'static str {
    match h {
        IgvmDirectiveHeader::PageData { .. } => "PAGE_DATA",
        IgvmDirectiveHeader::ParameterArea { .. } => "PARAMETER_AREA",
        IgvmDirectiveHeader::VpCount(_) => "VP_COUNT",
        IgvmDirectiveHeader::EnvironmentInfo(_) => "ENVIRONMENT_INFO",
        IgvmDirectiveHeader::Srat(_) => "SRAT",
        IgvmDirectiveHeader::Madt(_) => "MADT",
        IgvmDirectiveHeader::Slit(_) => "SLIT",
        IgvmDirectiveHeader::Pptt(_) => "PPTT",
        IgvmDirectiveHeader::MmioRanges(_) => "MMIO_RANGES",
        IgvmDirectiveHeader::MemoryMap(_) => "MEMORY_MAP",
        IgvmDirectiveHeader::CommandLine(_) => "COMMAND_LINE",
        IgvmDirectiveHeader::DeviceTree(_) => "DEVICE_TREE",
        IgvmDirectiveHeader::RequiredMemory { .. } => "REQUIRED_MEMORY",
        IgvmDirectiveHeader::SnpVpContext { .. } => "VP_CONTEXT(SNP)",
        IgvmDirectiveHeader::X64NativeVpContext { .. } => "VP_CONTEXT(native)",
        IgvmDirectiveHeader::X64VbsVpContext { .. } => "VP_CONTEXT(VBS)",
        IgvmDirectiveHeader::AArch64VbsVpContext { .. } => "VP_CONTEXT(AArch64 VBS)",
        IgvmDirectiveHeader::AArch64CcaVpContext { .. } => "VP_CONTEXT(CCA)",
        IgvmDirectiveHeader::ParameterInsert(_) => "PARAMETER_INSERT",
        IgvmDirectiveHeader::ErrorRange { .. } => "ERROR_RANGE",
        IgvmDirectiveHeader::SnpIdBlock { .. } => "SNP_ID_BLOCK",
        IgvmDirectiveHeader::VbsMeasurement { .. } => "VBS_MEASUREMENT",
    }
}

/// The name of a directive kind (for lint messages).
pub fn directive_name(h: &IgvmDirectiveHeader) -> &'static str {
    kind_name(h)
}

/// Inspect `data`.
pub fn inspect(data: &[u8]) -> Result<Inspection> {
    let (file, locs) = reader::parse(data)?;
    Ok(inspect_parsed(&file, &locs, data.len()))
}

/// The file's platform headers.
fn platforms_of(file: &IgvmFile) -> Vec<PlatformInfo> {
    file.platforms()
        .iter()
        .map(|p| {
            let IgvmPlatformHeader::SupportedPlatform(sp) = p;
            PlatformInfo {
                platform: format!("{:?}", sp.platform_type),
                compatibility_mask: format!("{:#x}", sp.compatibility_mask),
                highest_vtl: sp.highest_vtl,
                shared_gpa_boundary: format!("{:#x}", sp.shared_gpa_boundary),
            }
        })
        .collect()
}

/// The file's guest policies: [compatibility mask, policy].
fn guest_policies_of(file: &IgvmFile) -> Vec<[String; 2]> {
    let mut guest_policies = Vec::new();
    for h in file.initializations() {
        if let IgvmInitializationHeader::GuestPolicy {
            policy,
            compatibility_mask,
        } = h
        {
            guest_policies.push([format!("{compatibility_mask:#x}"), format!("{policy:#x}")]);
        }
    }
    guest_policies
}

/// The first guest policy whose mask shares a platform with `mask`.
fn policy_for(file: &IgvmFile, mask: u32) -> Option<u64> {
    file.initializations().iter().find_map(|h| match h {
        IgvmInitializationHeader::GuestPolicy {
            policy,
            compatibility_mask,
        } if compatibility_mask & mask != 0 => Some(*policy),
        _ => None,
    })
}

/// The Vigil boot parameters, if the file has a BootParams page.
fn boot_params_info(file: &IgvmFile) -> Option<BootParamsInfo> {
    find_boot_params(file).map(|b| BootParamsInfo {
        version: b.version,
        vcpus: b.vcpus,
        guest_vmpl: b.guest_vmpl,
        vigil_region: [
            format!("{:#x}", b.vigil_start),
            format!("{:#x}", b.vigil_end),
        ],
        kernel_entry: format!("{:#x}", b.kernel_entry),
        firmware: [
            format!("{:#x}", b.fw_start),
            format!("{:#x}", b.fw_size),
            format!("{:#x}", b.fw_entry),
        ],
        policy_len: b.policy_len,
        policy_digest: hex::encode(b.policy_digest),
    })
}

/// The summary of the directives, built in one pass in directive order. `last_gpa` is
/// the GPA of the previous directive if it was PAGE_DATA (else `u64::MAX`), so that a
/// page run never spans another directive.
struct DirectiveSummary {
    runs: Vec<PageRun>,
    last_gpa: u64,
    counts: std::collections::BTreeMap<String, usize>,
    areas: Vec<serde_json::Value>,
    required: Vec<[String; 2]>,
    vps: Vec<VpInfo>,
    id_block: Option<IdBlockSummary>,
}

impl DirectiveSummary {
    fn new() -> Self {
        DirectiveSummary {
            runs: Vec::new(),
            last_gpa: u64::MAX,
            counts: std::collections::BTreeMap::new(),
            areas: Vec::new(),
            required: Vec::new(),
            vps: Vec::new(),
            id_block: None,
        }
    }

    /// Add one directive of `file`.
    fn add(&mut self, file: &IgvmFile, h: &IgvmDirectiveHeader) {
        *self.counts.entry(kind_name(h).to_string()).or_insert(0) += 1;
        match h {
            IgvmDirectiveHeader::PageData {
                gpa,
                compatibility_mask,
                flags,
                data_type,
                data,
            } => {
                let r = PageRun {
                    gpa: format!("{gpa:#x}"),
                    pages: 1,
                    compatibility_mask: format!("{compatibility_mask:#x}"),
                    data_type: format!("{data_type:?}"),
                    flags: flag_names(*flags),
                    data: !data.is_empty(),
                };
                self.page(*gpa, r);
                return;
            }
            IgvmDirectiveHeader::ParameterArea { .. }
            | IgvmDirectiveHeader::VpCount(_)
            | IgvmDirectiveHeader::MemoryMap(_)
            | IgvmDirectiveHeader::EnvironmentInfo(_)
            | IgvmDirectiveHeader::ParameterInsert(_) => self.areas.push(parameter_info(h)),
            IgvmDirectiveHeader::RequiredMemory {
                gpa,
                number_of_bytes,
                ..
            } => self
                .required
                .push([format!("{gpa:#x}"), format!("{number_of_bytes:#x}")]),
            IgvmDirectiveHeader::SnpVpContext { .. }
            | IgvmDirectiveHeader::X64NativeVpContext { .. } => {
                self.vps.extend(vp_info(h));
            }
            IgvmDirectiveHeader::SnpIdBlock {
                compatibility_mask, ..
            } => {
                let policy = policy_for(file, *compatibility_mask).unwrap_or(0);
                self.id_block = SignedIdBlock::from_directive(h, policy)
                    .ok()
                    .flatten()
                    .map(|s| s.summary());
            }
            _ => {}
        }
        self.last_gpa = u64::MAX;
    }

    /// Extend the last page run by the page at `gpa`, or start a new run `r`: a run is
    /// consecutive pages with equal mask, type, flags and data presence.
    fn page(&mut self, gpa: u64, r: PageRun) {
        match self.runs.last_mut() {
            Some(l)
                if self.last_gpa.checked_add(PAGE_SIZE as u64) == Some(gpa)
                    && l.compatibility_mask == r.compatibility_mask
                    && l.data_type == r.data_type
                    && l.flags == r.flags
                    && l.data == r.data =>
            {
                l.pages += 1
            }
            _ => self.runs.push(r),
        }
        self.last_gpa = gpa;
    }
}

/// The names of the PAGE_DATA flags set.
fn flag_names(flags: igvm_defs::IgvmPageDataFlags) -> Vec<&'static str> {
    let mut fl = Vec::new();
    if flags.is_2mb_page() {
        fl.push("2mb");
    }
    if flags.unmeasured() {
        fl.push("unmeasured");
    }
    if flags.shared() {
        fl.push("shared");
    }
    fl
}

/// One parameter-area directive: the area itself, what fills it, or where it is
/// inserted (`null` for other directives).
fn parameter_info(h: &IgvmDirectiveHeader) -> serde_json::Value {
    match h {
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes,
            parameter_area_index,
            initial_data,
        } => serde_json::json!({
            "index": parameter_area_index,
            "size": format!("{number_of_bytes:#x}"),
            "initial_data": !initial_data.is_empty(),
        }),
        IgvmDirectiveHeader::VpCount(p)
        | IgvmDirectiveHeader::MemoryMap(p)
        | IgvmDirectiveHeader::EnvironmentInfo(p) => serde_json::json!({
            "index": p.parameter_area_index,
            "fills": kind_name(h),
            "byte_offset": p.byte_offset,
        }),
        IgvmDirectiveHeader::ParameterInsert(p) => serde_json::json!({
            "index": p.parameter_area_index,
            "inserted_at": format!("{:#x}", p.gpa),
            "compatibility_mask": format!("{:#x}", p.compatibility_mask),
        }),
        _ => serde_json::Value::Null,
    }
}

/// One VP context (SNP or native); `None` for an SNP VMSA of the wrong size and for
/// other directives.
fn vp_info(h: &IgvmDirectiveHeader) -> Option<VpInfo> {
    match h {
        IgvmDirectiveHeader::SnpVpContext {
            gpa,
            compatibility_mask,
            vp_index,
            vmsa,
        } => vmsa_of(vmsa).ok().map(|v| VpInfo {
            kind: "snp",
            vp_index: *vp_index,
            gpa: Some(format!("{gpa:#x}")),
            rip: format!("{:#x}", v.rip),
            vmpl: Some(v.vmpl),
            sev_features: Some(format!("{:#x}", v.sev_features)),
            cr0: format!("{:#x}", v.cr0),
            efer: format!("{:#x}", v.efer),
            compatibility_mask: format!("{compatibility_mask:#x}"),
        }),
        IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask,
            vp_index,
            context,
        } => Some(VpInfo {
            kind: "native",
            vp_index: *vp_index,
            gpa: None,
            rip: format!("{:#x}", context.rip),
            vmpl: None,
            sev_features: None,
            cr0: format!("{:#x}", context.cr0),
            efer: format!("{:#x}", context.efer),
            compatibility_mask: format!("{compatibility_mask:#x}"),
        }),
        _ => None,
    }
}

/// Inspect a parsed file: its platforms, guest policies, the directive summary and the
/// Vigil boot parameters.
pub fn inspect_parsed(file: &IgvmFile, locs: &[HeaderLoc], file_size: usize) -> Inspection {
    let mut d = DirectiveSummary::new();
    for h in file.directives() {
        d.add(file, h);
    }
    Inspection {
        file_size,
        headers: locs.len(),
        platforms: platforms_of(file),
        guest_policies: guest_policies_of(file),
        page_runs: d.runs,
        parameter_areas: d.areas,
        required_memory: d.required,
        vp_contexts: d.vps,
        id_block: d.id_block,
        boot_params: boot_params_info(file),
        directive_counts: d.counts,
    }
}

/// Human-readable rendering.
pub fn to_text(i: &Inspection) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "IGVM file: {} bytes, {} headers", i.file_size, i.headers);
    for p in &i.platforms {
        let _ = writeln!(
            s,
            "platform {} mask {} vtl {}",
            p.platform, p.compatibility_mask, p.highest_vtl
        );
    }
    for [m, p] in &i.guest_policies {
        let _ = writeln!(s, "guest policy {p} (mask {m})");
    }
    let _ = writeln!(s, "directives:");
    for (k, n) in &i.directive_counts {
        let _ = writeln!(s, "  {k:20} {n}");
    }
    let _ = writeln!(s, "page runs:");
    for r in &i.page_runs {
        let _ = writeln!(
            s,
            "  {:>18} {:6} pages  {:10} mask {} {}{}",
            r.gpa,
            r.pages,
            r.data_type,
            r.compatibility_mask,
            if r.data { "data" } else { "no data" },
            if r.flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", r.flags.join(","))
            }
        );
    }
    for a in &i.parameter_areas {
        let _ = writeln!(s, "parameter {a}");
    }
    for [g, n] in &i.required_memory {
        let _ = writeln!(s, "required memory {g} size {n}");
    }
    for v in &i.vp_contexts {
        let _ = writeln!(
            s,
            "vp {} {}: rip {} cr0 {} efer {}{}{}",
            v.vp_index,
            v.kind,
            v.rip,
            v.cr0,
            v.efer,
            v.gpa
                .as_ref()
                .map(|g| format!(" gpa {g}"))
                .unwrap_or_default(),
            v.sev_features
                .as_ref()
                .map(|f| format!(" sev_features {f}"))
                .unwrap_or_default()
        );
    }
    if let Some(b) = &i.id_block {
        let _ = writeln!(
            s,
            "id block: ld {} svn {} id key digest {}",
            b.ld, b.guest_svn, b.id_key_digest
        );
    }
    if let Some(b) = &i.boot_params {
        let _ = writeln!(
            s,
            "vigil boot params v{}: vcpus {} guest vmpl {} region {}..{} entry {} firmware {} size {} policy {} bytes sha384 {}",
            b.version,
            b.vcpus,
            b.guest_vmpl,
            b.vigil_region[0],
            b.vigil_region[1],
            b.kernel_entry,
            b.firmware[0],
            b.firmware[1],
            b.policy_len,
            b.policy_digest
        );
    }
    s
}
