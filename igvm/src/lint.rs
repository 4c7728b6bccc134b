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
    // A file built by vigil-igvm (it has Vigil's BootParams page) must only name the
    // platforms Vigil runs on. A third-party file may carry others (TDX, VBS) for other
    // loaders: QEMU picks the platform it launches, so that is a note.
    let vigil_file = crate::builder::find_boot_params(file).is_some();
    for (mask, pt) in &platforms {
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
    let snp_mask = platforms
        .iter()
        .find(|(_, t)| *t == IgvmPlatformType::SEV_SNP)
        .map(|(m, _)| *m);
    if let Some(m) = snp_mask {
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
    let dirs = file.directives();
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

    for (mask, pt) in &platforms {
        let mask = *mask;
        let snp = *pt == IgvmPlatformType::SEV_SNP;
        let mut owner: HashMap<u64, usize> = HashMap::new();
        let mut required: Vec<(u64, u64)> = Vec::new();
        let mut areas: HashMap<u32, u64> = HashMap::new();
        let mut last_page: Option<(usize, u64)> = None;
        let mut between_dataless = false;
        let mut outside: Vec<(usize, u64)> = Vec::new();
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
        for (i, h) in dirs.iter().enumerate() {
            if !igvm_measure::applies(h, mask) {
                continue;
            }
            let mut claim = |gpa: u64,
                             what: &str,
                             out_push: &mut dyn FnMut(
                Severity,
                &'static str,
                Option<usize>,
                String,
            )| {
                if let Some(prev) = owner.insert(gpa, i) {
                    out_push(
                        Severity::Error,
                        "overlap",
                        Some(i),
                        format!("{what} at GPA {gpa:#x} overlaps directive {prev} (platform mask {mask:#x})"),
                    );
                }
            };
            match h {
                IgvmDirectiveHeader::PageData {
                    gpa, flags, data, ..
                } => {
                    if gpa % PAGE_SIZE as u64 != 0 {
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
                    if snp && flags.shared() {
                        push(
                            Severity::Warning,
                            "shared-page",
                            Some(i),
                            format!("shared page at {gpa:#x} is not measured"),
                        );
                    }
                    if snp && *gpa == KVM_VMSA_GPA {
                        push(
                            Severity::Error,
                            "vmsa-gpa-page",
                            Some(i),
                            "page at the VMSA GPA 0xFFFFFFFFF000".into(),
                        );
                    }
                    claim(*gpa, "page", &mut push);
                    let below_fw = *gpa < 0xFF00_0000;
                    if !required.is_empty()
                        && below_fw
                        && !required.iter().any(|(s, e)| (*s..*e).contains(gpa))
                    {
                        outside.push((i, *gpa));
                    }
                    if data.is_empty() {
                        if between_dataless
                            && last_page
                                .is_some_and(|(_, g)| g.checked_add(PAGE_SIZE as u64) == Some(*gpa))
                        {
                            push(
                                Severity::Warning,
                                "interleaved-zero-run",
                                Some(i),
                                format!("a directive separates data-less page {gpa:#x} from the previous page; QEMU's region coalescing decides its page type"),
                            );
                        }
                        last_page = Some((i, *gpa));
                    } else {
                        last_page = None;
                    }
                    between_dataless = false;
                }
                IgvmDirectiveHeader::ParameterInsert(p) => {
                    let size = areas.get(&p.parameter_area_index).copied().unwrap_or(0);
                    if size > igvm_measure::MAX_PARAMETER_AREA || p.gpa.checked_add(size).is_none()
                    {
                        push(
                            Severity::Error,
                            "param-size",
                            Some(i),
                            format!("parameter area {} of {size:#x} bytes at {:#x} is too large or wraps", p.parameter_area_index, p.gpa),
                        );
                    } else {
                        for k in 0..size.div_ceil(PAGE_SIZE as u64) {
                            claim(p.gpa + k * PAGE_SIZE as u64, "parameter area", &mut push);
                        }
                    }
                    between_dataless = last_page.is_some();
                }
                IgvmDirectiveHeader::SnpVpContext {
                    gpa,
                    vp_index,
                    vmsa,
                    ..
                } if snp => {
                    let later_page = dirs[i + 1..].iter().any(|h| {
                        igvm_measure::applies(h, mask)
                            && matches!(
                                h,
                                IgvmDirectiveHeader::PageData { .. }
                                    | IgvmDirectiveHeader::ParameterInsert(_)
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
                    if *gpa != KVM_VMSA_GPA {
                        push(
                            Severity::Error,
                            "vmsa-gpa",
                            Some(i),
                            format!("VMSA of vCPU {vp_index} at GPA {gpa:#x}: QEMU {QEMU_VERSION} requires 0xFFFFFFFFF000 (KVM measures it there)"),
                        );
                    }
                    match vmsa_of(vmsa) {
                        Ok(v) => lint_vmsa(&v, *vp_index, i, &mut push),
                        Err(e) => push(Severity::Error, "vmsa", Some(i), e.to_string()),
                    }
                    between_dataless = last_page.is_some();
                }
                _ => between_dataless = last_page.is_some(),
            }
        }
        // One warning per run of consecutive pages outside REQUIRED_MEMORY.
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
    if let Some(m) = snp_mask {
        let policy = igvm_measure::guest_policy(file, m).unwrap_or(0);
        for (i, h) in dirs.iter().enumerate() {
            if !igvm_measure::applies(h, m) {
                continue;
            }
            if let Ok(Some(idb)) = SignedIdBlock::from_directive(h, policy) {
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
        || start % PAGE_SIZE as u64 != 0
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

fn lint_vmsa(
    v: &Vmsa,
    vp: u16,
    i: usize,
    push: &mut dyn FnMut(Severity, &'static str, Option<usize>, String),
) {
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
