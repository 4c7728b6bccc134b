//! `vigil-igvm lint`: what QEMU's IGVM loader or KVM would refuse, or what would make
//! the launch digest differ from the one `measure` computes, found before a launch.
//!
//! Errors (exit 1):
//! - a header type QEMU's loader does not handle (it accepts PAGE_DATA, VP_CONTEXT,
//!   PARAMETER_AREA, PARAMETER_INSERT, MEMORY_MAP, VP_COUNT, ENVIRONMENT_INFO,
//!   REQUIRED_MEMORY, SNP_ID_BLOCK, GUEST_POLICY and SUPPORTED_PLATFORM);
//! - a parameter area with initial data (Vigil's files and QEMU expect them zeroed);
//! - an SNP VMSA not at 0xFFFFFFFFF000 (KVM measures it there whatever the file says),
//!   with a nonzero field outside QEMU's whitelist (QEMU refuses it: the field would not
//!   reach KVM and the measured VMSA would differ), without EFER.SVME (KVM sets it, so
//!   the measured VMSA would differ), at a VMPL other than 0, or with SEV_FEATURES
//!   lacking SNPActive or holding reserved bits;
//! - two pages (or a page and a parameter area) of one platform at the same GPA;
//! - a page at the VMSA GPA; an unaligned page; a 2 MiB page (not supported here);
//! - an SNP platform without guest policy, or a policy with reserved bit 17 clear.
//!
//! Warnings: a VMSA before pages (KVM measures it last, the igvm crate in place), pages of a platform outside every REQUIRED_MEMORY range below the 4 GiB
//! firmware window (the loader then creates memory for them), shared pages in an SNP
//! file, directives between data-less pages of one run (QEMU's region coalescing then
//! decides their page type), the SNP policy's debug bit, an ID block whose launch digest
//! differs from the one measured under the default rules.

use std::collections::HashMap;

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_defs::IgvmPlatformType;
use serde::Serialize;
use svsm_abi::vmsa::{SevFeatures, Vmsa};
use zerocopy::{FromZeros, IntoBytes};

use crate::digest::{KVM_VMSA_GPA, PAGE_SIZE};
use crate::igvm_measure::{self, vmsa_of, LoaderRules};
use crate::inspect::directive_name;
use crate::reader::{self, HeaderLoc};
use crate::sign::SignedIdBlock;
use crate::Result;

/// Severity of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file would be refused or mis-measured.
    Error,
    /// Worth a look.
    Warning,
    /// Information that needs no change (e.g. a platform Vigil does not run on, in a
    /// file not built by vigil-igvm).
    Note,
}

/// The QEMU release whose IGVM loader (backends/igvm.c) the QEMU rules describe: 10.1,
/// the first with IGVM support. Later releases may accept more (MADT, for one, is
/// being added upstream); the messages name the version so that a finding can be
/// weighed against the QEMU actually used.
pub const QEMU_VERSION: &str = "10.1";

/// One finding.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Short stable code.
    pub code: &'static str,
    /// Directive index (among directives), if any.
    pub directive: Option<usize>,
    /// Variable-header index (among all variable headers, as in the reader's and
    /// measure's errors "IGVM variable header N"), if any.
    pub header: Option<usize>,
    /// File offset of the header, if known.
    pub offset: Option<String>,
    /// Explanation.
    pub message: String,
}

/// The fields of the VMSA that QEMU copies into KVM's vCPU state (and so may be nonzero
/// in an IGVM VMSA). Everything else must be zero.
pub fn qemu_vmsa_whitelist_mask() -> Vmsa {
    let mut m = Vmsa::new_zeroed();
    let seg = svsm_abi::vmsa::VmcbSegment::new(0xffff, 0xffff, 0xffff_ffff, u64::MAX);
    m.es = seg;
    m.cs = seg;
    m.ss = seg;
    m.ds = seg;
    m.fs = seg;
    m.gs = seg;
    m.gdtr = seg;
    m.idtr = seg;
    m.ldtr = seg;
    m.tr = seg;
    m.efer = u64::MAX;
    m.cr0 = u64::MAX;
    m.cr3 = u64::MAX;
    m.cr4 = u64::MAX;
    m.xcr0 = u64::MAX;
    m.dr6 = u64::MAX;
    m.dr7 = u64::MAX;
    m.rax = u64::MAX;
    m.rcx = u64::MAX;
    m.rdx = u64::MAX;
    m.rbx = u64::MAX;
    m.rsp = u64::MAX;
    m.rbp = u64::MAX;
    m.rsi = u64::MAX;
    m.rdi = u64::MAX;
    m.r8 = u64::MAX;
    m.r9 = u64::MAX;
    m.r10 = u64::MAX;
    m.r11 = u64::MAX;
    m.r12 = u64::MAX;
    m.r13 = u64::MAX;
    m.r14 = u64::MAX;
    m.r15 = u64::MAX;
    m.rip = u64::MAX;
    m.rflags = u64::MAX;
    m.g_pat = u64::MAX;
    m.x87_fcw = u16::MAX;
    m.mxcsr = u32::MAX;
    m.sev_features = u64::MAX;
    m
}

/// Byte offsets of nonzero VMSA bytes outside the QEMU whitelist.
pub fn vmsa_outside_whitelist(v: &Vmsa) -> Vec<usize> {
    let mask = qemu_vmsa_whitelist_mask();
    v.as_bytes()
        .iter()
        .zip(mask.as_bytes())
        .enumerate()
        .filter(|(_, (b, m))| **b & !**m != 0)
        .map(|(i, _)| i)
        .collect()
}

const QEMU_DIRECTIVES: &[&str] = &[
    "PAGE_DATA",
    "VP_CONTEXT(SNP)",
    "VP_CONTEXT(native)",
    "PARAMETER_AREA",
    "PARAMETER_INSERT",
    "MEMORY_MAP",
    "VP_COUNT",
    "ENVIRONMENT_INFO",
    "REQUIRED_MEMORY",
    "SNP_ID_BLOCK",
];

/// Lint `data`. The result is empty for a clean file.
pub fn lint(data: &[u8]) -> Result<Vec<Finding>> {
    let (file, locs) = reader::parse(data)?;
    Ok(lint_parsed(&file, &locs))
}

/// Where findings go: severity, code, directive index (if any), message.
type Push<'a> = dyn FnMut(Severity, &'static str, Option<usize>, String) + 'a;

/// Lint a parsed file.
pub fn lint_parsed(file: &IgvmFile, locs: &[HeaderLoc]) -> Vec<Finding> {
    let mut out = Vec::new();
    let first_dir = file.platforms().len() + file.initializations().len();
    let exact = first_dir + file.directives().len() == locs.len();
    let offset_of = |i: usize| exact.then(|| format!("{:#x}", locs[first_dir + i].offset));
    let mut push = |sev, code, i: Option<usize>, msg: String| {
        out.push(Finding {
            severity: sev,
            code,
            directive: i,
            header: i.map(|i| first_dir + i),
            offset: i.and_then(offset_of),
            message: msg,
        })
    };
    let platforms: Vec<(u32, IgvmPlatformType)> = file
        .platforms()
        .iter()
        .map(|p| {
            let IgvmPlatformHeader::SupportedPlatform(sp) = p;
            (sp.compatibility_mask, sp.platform_type)
        })
        .collect();
    lint_platforms(file, &platforms, &mut push);
    let dirs = file.directives();
    lint_directive_kinds(dirs, &mut push);
    for (mask, pt) in &platforms {
        lint_layout(dirs, *mask, *pt == IgvmPlatformType::SEV_SNP, &mut push);
    }
    let snp_mask = platforms
        .iter()
        .find(|(_, t)| *t == IgvmPlatformType::SEV_SNP)
        .map(|(m, _)| *m);
    if let Some(m) = snp_mask {
        lint_id_blocks(file, m, &mut push);
    }
    if let Some(msg) = firmware_finding(file) {
        push(Severity::Error, "firmware", None, msg);
    }
    // A directive that applies to two platforms is checked twice: report it once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| {
        seen.insert((
            f.code,
            f.directive,
            f.message
                .split(" (platform mask")
                .next()
                .unwrap_or("")
                .to_string(),
        ))
    });
    out
}

/// Platforms Vigil does not run on, and the SNP guest policy (#56860 "Guest Policy":
/// bit 17 must be one, SNP_LAUNCH_START refuses it otherwise).
fn lint_platforms(file: &IgvmFile, platforms: &[(u32, IgvmPlatformType)], push: &mut Push) {
    // A file built by vigil-igvm (it has Vigil's BootParams page) must only name the
    // platforms Vigil runs on. A third-party file may carry others (TDX, VBS) for other
    // loaders: QEMU picks the platform it launches, so that is a note.
    let vigil_file = crate::builder::find_boot_params(file).is_some();
    for (mask, pt) in platforms {
        if *pt != IgvmPlatformType::SEV_SNP && *pt != IgvmPlatformType::NATIVE {
            push(
                if vigil_file {
                    Severity::Error
                } else {
                    Severity::Note
                },
                "platform",
                None,
                format!("platform {pt:?} (mask {mask:#x}) is not one Vigil runs on"),
            );
        }
    }
    let Some(m) = platforms
        .iter()
        .find(|(_, t)| *t == IgvmPlatformType::SEV_SNP)
        .map(|(m, _)| *m)
    else {
        return;
    };
    match igvm_measure::guest_policy(file, m) {
        None => push(
            Severity::Error,
            "policy-missing",
            None,
            "SNP platform without a guest policy".into(),
        ),
        Some(p) => {
            if p & (1 << 17) == 0 {
                push(
                    Severity::Error,
                    "policy-reserved",
                    None,
                    format!("guest policy {p:#x}: reserved bit 17 must be 1"),
                );
            }
            if p & (1 << 19) != 0 {
                push(
                    Severity::Warning,
                    "policy-debug",
                    None,
                    format!("guest policy {p:#x} allows debugging"),
                );
            }
        }
    }
}

/// Header kinds QEMU's loader does not handle.
fn lint_directive_kinds(dirs: &[IgvmDirectiveHeader], push: &mut Push) {
    for (i, h) in dirs.iter().enumerate() {
        let name = directive_name(h);
        if !QEMU_DIRECTIVES.contains(&name) {
            push(
                Severity::Error,
                "qemu-directive",
                Some(i),
                format!("QEMU {QEMU_VERSION}'s IGVM loader does not handle {name} headers"),
            );
        }
    }
}

/// The REQUIRED_MEMORY ranges and parameter area sizes of one platform; parameter areas
/// with initial data are reported.
fn required_and_areas(
    dirs: &[IgvmDirectiveHeader],
    mask: u32,
    push: &mut Push,
) -> (Vec<(u64, u64)>, HashMap<u32, u64>) {
    let mut required: Vec<(u64, u64)> = Vec::new();
    let mut areas: HashMap<u32, u64> = HashMap::new();
    for (i, h) in dirs.iter().enumerate() {
        if !igvm_measure::applies(h, mask) {
            continue;
        }
        match h {
            IgvmDirectiveHeader::RequiredMemory {
                gpa,
                number_of_bytes,
                ..
            } => required.push((*gpa, gpa.saturating_add(u64::from(*number_of_bytes)))),
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                initial_data,
            } => {
                areas.insert(*parameter_area_index, *number_of_bytes);
                if !initial_data.is_empty() {
                    push(
                        Severity::Error,
                        "param-initial-data",
                        Some(i),
                        format!("parameter area {parameter_area_index} has initial data; QEMU {QEMU_VERSION} expects parameter areas zeroed"),
                    );
                }
            }
            _ => {}
        }
    }
    (required, areas)
}

/// The guest-physical layout of one platform, walked in directive order.
struct Layout<'a> {
    dirs: &'a [IgvmDirectiveHeader],
    mask: u32,
    snp: bool,
    owner: HashMap<u64, usize>,
    required: Vec<(u64, u64)>,
    areas: HashMap<u32, u64>,
    last_page: Option<(usize, u64)>,
    between_dataless: bool,
    outside: Vec<(usize, u64)>,
    /// Bytes of parameter areas inserted so far (bounded by MAX_PARAMETER_TOTAL).
    inserted: u64,
}

impl Layout<'_> {
    /// Directive `i` takes the page at `gpa`: two owners of one page is an error.
    fn claim(&mut self, i: usize, gpa: u64, what: &str, push: &mut Push) {
        if let Some(prev) = self.owner.insert(gpa, i) {
            push(
                Severity::Error,
                "overlap",
                Some(i),
                format!(
                    "{what} at GPA {gpa:#x} overlaps directive {prev} (platform mask {:#x})",
                    self.mask
                ),
            );
        }
    }

    fn page(
        &mut self,
        i: usize,
        gpa: u64,
        flags: &igvm_defs::IgvmPageDataFlags,
        data: &[u8],
        push: &mut Push,
    ) {
        if !gpa.is_multiple_of(PAGE_SIZE as u64) {
            push(
                Severity::Error,
                "unaligned",
                Some(i),
                format!("page at GPA {gpa:#x} is not 4 KiB aligned"),
            );
        }
        if flags.is_2mb_page() {
            push(
                Severity::Error,
                "2mb-page",
                Some(i),
                format!("2 MiB page at {gpa:#x}: not supported"),
            );
        }
        if self.snp && flags.shared() {
            push(
                Severity::Warning,
                "shared-page",
                Some(i),
                format!("shared page at {gpa:#x} is not measured"),
            );
        }
        if self.snp && gpa == KVM_VMSA_GPA {
            push(
                Severity::Error,
                "vmsa-gpa-page",
                Some(i),
                "page at the VMSA GPA 0xFFFFFFFFF000".into(),
            );
        }
        self.claim(i, gpa, "page", push);
        let below_fw = gpa < 0xFF00_0000;
        if !self.required.is_empty()
            && below_fw
            && !self.required.iter().any(|(s, e)| (*s..*e).contains(&gpa))
        {
            self.outside.push((i, gpa));
        }
        if data.is_empty() {
            if self.between_dataless
                && self
                    .last_page
                    .is_some_and(|(_, g)| g.checked_add(PAGE_SIZE as u64) == Some(gpa))
            {
                push(
                    Severity::Warning,
                    "interleaved-zero-run",
                    Some(i),
                    format!("a directive separates data-less page {gpa:#x} from the previous page; QEMU's region coalescing decides its page type"),
                );
            }
            self.last_page = Some((i, gpa));
        } else {
            self.last_page = None;
        }
        self.between_dataless = false;
    }

    fn insert(&mut self, i: usize, p: &igvm_defs::IGVM_VHS_PARAMETER_INSERT, push: &mut Push) {
        let size = self
            .areas
            .get(&p.parameter_area_index)
            .copied()
            .unwrap_or(0);
        self.inserted = self.inserted.saturating_add(size);
        if size > igvm_measure::MAX_PARAMETER_AREA
            || self.inserted > igvm_measure::MAX_PARAMETER_TOTAL
            || p.gpa.checked_add(size).is_none()
        {
            push(
                Severity::Error,
                "param-size",
                Some(i),
                format!(
                    "parameter area {} of {size:#x} bytes at {:#x} is too large (or all areas together are), or wraps",
                    p.parameter_area_index, p.gpa
                ),
            );
        } else {
            for k in 0..size.div_ceil(PAGE_SIZE as u64) {
                self.claim(i, p.gpa + k * PAGE_SIZE as u64, "parameter area", push);
            }
        }
        self.between_dataless = self.last_page.is_some();
    }

    fn vmsa(
        &mut self,
        i: usize,
        gpa: u64,
        vp_index: u16,
        vmsa: &igvm::snp_defs::SevVmsa,
        push: &mut Push,
    ) {
        let mask = self.mask;
        let later_page = self.dirs[i + 1..].iter().any(|h| {
            igvm_measure::applies(h, mask)
                && matches!(
                    h,
                    IgvmDirectiveHeader::PageData { .. } | IgvmDirectiveHeader::ParameterInsert(_)
                )
        });
        if later_page {
            push(
                Severity::Warning,
                "vmsa-order",
                Some(i),
                format!(
                    "VMSA of vCPU {vp_index} comes before pages: KVM measures it after all pages, \
                     the igvm crate in place, so their digests differ"
                ),
            );
        }
        if gpa != KVM_VMSA_GPA {
            push(
                Severity::Error,
                "vmsa-gpa",
                Some(i),
                format!("VMSA of vCPU {vp_index} at GPA {gpa:#x}: QEMU {QEMU_VERSION} requires 0xFFFFFFFFF000 (KVM measures it there)"),
            );
        }
        match vmsa_of(vmsa) {
            Ok(v) => lint_vmsa(&v, vp_index, i, push),
            Err(e) => push(Severity::Error, "vmsa", Some(i), e.to_string()),
        }
        self.between_dataless = self.last_page.is_some();
    }
}

/// Pages, parameter areas and VMSAs of the platform `mask`, in directive order.
fn lint_layout(dirs: &[IgvmDirectiveHeader], mask: u32, snp: bool, push: &mut Push) {
    let (required, areas) = required_and_areas(dirs, mask, push);
    let mut l = Layout {
        dirs,
        mask,
        snp,
        owner: HashMap::new(),
        required,
        areas,
        last_page: None,
        between_dataless: false,
        outside: Vec::new(),
        inserted: 0,
    };
    for (i, h) in dirs.iter().enumerate() {
        if !igvm_measure::applies(h, mask) {
            continue;
        }
        match h {
            IgvmDirectiveHeader::PageData {
                gpa, flags, data, ..
            } => l.page(i, *gpa, flags, data, push),
            IgvmDirectiveHeader::ParameterInsert(p) => l.insert(i, p, push),
            IgvmDirectiveHeader::SnpVpContext {
                gpa,
                vp_index,
                vmsa,
                ..
            } if snp => l.vmsa(i, *gpa, *vp_index, vmsa, push),
            _ => l.between_dataless = l.last_page.is_some(),
        }
    }
    report_outside(&l.outside, mask, push);
}

/// One warning per run of consecutive pages outside REQUIRED_MEMORY.
fn report_outside(outside: &[(usize, u64)], mask: u32, push: &mut Push) {
    let mut k = 0;
    while k < outside.len() {
        let (first, start) = outside[k];
        let mut n = 1u64;
        while k + (n as usize) < outside.len()
            && outside[k + n as usize].1 == start.wrapping_add(n * PAGE_SIZE as u64)
        {
            n += 1;
        }
        push(
            Severity::Warning,
            "outside-required-memory",
            Some(first),
            format!(
                "{n} page(s) from {start:#x} are outside every REQUIRED_MEMORY range (platform mask {mask:#x})"
            ),
        );
        k += n as usize;
    }
}

/// ID blocks of the SNP platform `m`: signatures, and the digest under the defaults.
fn lint_id_blocks(file: &IgvmFile, m: u32, push: &mut Push) {
    let policy = igvm_measure::guest_policy(file, m).unwrap_or(0);
    for (i, h) in file.directives().iter().enumerate() {
        if !igvm_measure::applies(h, m) {
            continue;
        }
        let Ok(Some(idb)) = SignedIdBlock::from_directive(h, policy) else {
            continue;
        };
        for bad in idb.verify() {
            push(Severity::Error, "id-block-signature", Some(i), bad);
        }
        // The file's own vCPU count (igvm_measure::file_vcpus) and vCPU type
        // EPYC-v4: the defaults of measure, refs and sign.
        let rules = LoaderRules {
            vcpu_sig: crate::reset_vmsa::vcpu_type_sig("EPYC-v4").unwrap_or(0),
            ..LoaderRules::default()
        };
        if let Ok(me) = igvm_measure::measure_parsed(file, &rules, false) {
            if me.measurement.digest != idb.block.ld {
                push(
                    Severity::Warning,
                    "id-block-digest",
                    Some(i),
                    format!(
                        "ID block launch digest {} differs from the digest under the default loader rules ({} vCPU(s), vCPU type EPYC-v4) {}",
                        hex::encode(idb.block.ld),
                        me.rules.vcpus,
                        hex::encode(me.measurement.digest)
                    ),
                );
            }
        }
    }
}

/// The OVMF image of a Vigil file (BootParams: firmware entry at the reset vector),
/// put back together from its pages and checked as `build --firmware` checks it: a file
/// built by an older vigil-igvm from OVMF_VARS or random bytes is caught here.
fn firmware_finding(file: &IgvmFile) -> Option<String> {
    let bp = crate::builder::find_boot_params(file)?;
    if bp.fw_entry != 0xFFFF_FFF0 {
        return None; // an ELF guest, checked when it was loaded
    }
    let (start, size) = (bp.fw_start, bp.fw_size);
    // Both values come from the file: bound them before allocating.
    if size == 0
        || size > crate::limits::OVMF.limit
        || start.checked_add(size) != Some(1 << 32)
        || !start.is_multiple_of(PAGE_SIZE as u64)
    {
        return Some(format!(
            "BootParams firmware {start:#x}+{size:#x} is not an OVMF image ending at 4 GiB \
             of at most {:#x} bytes",
            crate::limits::OVMF.limit
        ));
    }
    let mut img = vec![0u8; size as usize];
    for h in file.directives() {
        if let IgvmDirectiveHeader::PageData { gpa, data, .. } = h {
            if (start..start + size).contains(gpa) && !data.is_empty() {
                let off = (gpa - start) as usize;
                let n = data.len().min(img.len() - off);
                img[off..off + n].copy_from_slice(&data[..n]);
            }
        }
    }
    let snp = bp.flags & crate::boot_params::FLAG_SNP != 0;
    crate::ovmf::Ovmf::parse_ovmf(img.as_slice(), snp)
        .err()
        .map(|e| format!("firmware pages at {start:#x}: {e}"))
}

fn lint_vmsa(v: &Vmsa, vp: u16, i: usize, push: &mut Push) {
    let outside = vmsa_outside_whitelist(v);
    if !outside.is_empty() {
        let shown: Vec<String> = outside.iter().take(8).map(|o| format!("{o:#x}")).collect();
        push(
            Severity::Error,
            "vmsa-whitelist",
            Some(i),
            format!(
                "VMSA of vCPU {vp}: nonzero bytes outside the fields QEMU {QEMU_VERSION} passes to KVM, at offsets {}{}",
                shown.join(", "),
                if outside.len() > 8 { " ..." } else { "" }
            ),
        );
    }
    if v.efer & 0x1000 == 0 {
        push(
            Severity::Error,
            "vmsa-efer",
            Some(i),
            format!(
                "VMSA of vCPU {vp}: EFER {:#x} lacks SVME, which KVM sets",
                v.efer
            ),
        );
    }
    if v.vmpl != 0 {
        push(
            Severity::Error,
            "vmsa-vmpl",
            Some(i),
            format!(
                "VMSA of vCPU {vp}: VMPL {} (launch VMSAs run at VMPL0)",
                v.vmpl
            ),
        );
    }
    let f = SevFeatures(v.sev_features);
    if !f.contains(SevFeatures::SNP_ACTIVE) || f.unknown_bits() != 0 {
        push(
            Severity::Error,
            "vmsa-sev-features",
            Some(i),
            format!(
                "VMSA of vCPU {vp}: SEV_FEATURES {:#x} lacks SNPActive or sets reserved bits",
                v.sev_features
            ),
        );
    }
}
