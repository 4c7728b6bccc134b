//! `vigil-igvm build`: one IGVM file with the Vigil kernel (VMPL0), the guest firmware
//! (OVMF or an ELF test guest, for the lower VMPL), the CPUID and secrets pages, the
//! boot parameters page, the host parameter areas and the boot CPU's context, for the
//! SNP and the native platform.
//!
//! Guest-physical layout of the `qemu-kvm` profile (the only one supported now):
//!
//! | GPA | what | IGVM | platforms |
//! |---|---|---|---|
//! | ELF PT_LOAD p_paddr (1 MiB up) | Vigil kernel; file bytes as data, the rest of `p_memsz` as data-less pages | PAGE_DATA | both |
//! | 0x007F_A000 | [`BootParams`] page | PAGE_DATA (NORMAL, data) | both |
//! | 0x007F_B000 | memory map parameter area, 4 KiB, written by the host | PARAMETER_AREA + MEMORY_MAP + PARAMETER_INSERT | both |
//! | 0x007F_C000 | vCPU count parameter area, 4 KiB, written by the host | PARAMETER_AREA + VP_COUNT + PARAMETER_INSERT | both |
//! | 0x007F_D000 | SNP secrets page | PAGE_DATA (SECRETS, no data) | SNP |
//! | 0x007F_E000 | SNP CPUID page (QEMU fills it from KVM's CPUID) | PAGE_DATA (CPUID_DATA, no data) | SNP |
//! | 0x0010_0000 - 0x0080_0000 | the Vigil region (kernel + the pages above) | REQUIRED_MEMORY | both |
//! | test guest segments, OVMF metadata ranges | guest RAM that must exist | REQUIRED_MEMORY | as their pages |
//! | 4 GiB - size .. 4 GiB | OVMF image | PAGE_DATA (data) | both |
//! | OVMF SEV metadata ranges | SEC memory, secrets, CPUID, CAA, kernel-hashes pages of OVMF, as data-less pages (Vigil fills the guest's secrets and CPUID pages itself, never with VMPCK0) | PAGE_DATA (no data) | SNP |
//! | ELF PT_LOAD p_paddr | test guest (instead of OVMF) | PAGE_DATA | both |
//! | 0xFFFF_FFFF_F000 | boot CPU VMSA (VMPL0, 32-bit flat protected mode at the kernel entry, RSI = BootParams GPA) | VP_CONTEXT | SNP |
//! | - | boot CPU native context (same registers) | VP_CONTEXT (native) | native |
//!
//! The Vigil region ends at 8 MiB because OVMF uses fixed memory from 0x80_0000 up
//! (its SEC page tables, GHCB, secrets and CPUID pages); the kernel links at 1 MiB.
//!
//! Directive order: kernel pages, boot parameters, secrets, CPUID, firmware pages,
//! firmware metadata pages, parameter areas, required memory, VP contexts. Page runs are
//! never interleaved with other directives, so QEMU's region coalescing (see
//! [`crate::igvm_measure`]) gives one region per run.
//!
//! QEMU constraints honoured: the VMSA sits at 0xFFFFFFFFF000 and sets only fields QEMU
//! copies into KVM (segments, control registers, EFER, XCR0, DR6/DR7, GPRs, RIP, RFLAGS,
//! G_PAT, x87 FCW, MXCSR, SEV_FEATURES), with the values KVM writes back, so that the
//! VMSA KVM measures is the one in the file; parameter areas start zeroed (no initial
//! data); only directives QEMU's loader handles are used.
//!
//! The output is byte-reproducible: it depends only on the inputs and flags (no time,
//! no paths, no randomness), which a test checks.

use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
};
use object::read::elf::{FileHeader, ProgramHeader};
use serde::Serialize;
use sha2::{Digest, Sha384};
use svsm_abi::vmsa::{SevFeatures, VmcbSegment, Vmsa};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::boot_params::{self, BootParams, MapEntry};
use crate::digest::{KVM_VMSA_GPA, PAGE_SIZE};
use crate::ovmf::{Ovmf, SectionType};
use crate::reset_vmsa::PAT_RESET;
use crate::{Error, Result};

/// Compatibility mask of the SNP platform in files built here.
pub const MASK_SNP: u32 = 0x1;
/// Compatibility mask of the native platform.
pub const MASK_NATIVE: u32 = 0x2;

/// A named guest-physical layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Profile {
    /// QEMU with KVM (SNP) or TCG/KVM (native), QEMU >= 10.1 or the COCONUT branch.
    #[value(name = "qemu-kvm")]
    #[serde(rename = "qemu-kvm")]
    QemuKvm,
    /// Hyper-V / OpenHCL-style loaders: documented, not yet supported.
    #[value(name = "hyperv")]
    #[serde(rename = "hyperv")]
    HyperV,
    /// Cloud hypervisor: documented, not yet supported.
    #[value(name = "cloud-hypervisor")]
    #[serde(rename = "cloud-hypervisor")]
    CloudHypervisor,
}

/// Fixed addresses of the `qemu-kvm` profile.
pub mod qemu_kvm {
    /// Start of the Vigil region.
    pub const VIGIL_START: u64 = 0x0010_0000;
    /// End of the Vigil region (exclusive).
    pub const VIGIL_END: u64 = 0x0080_0000;
    /// Highest address the kernel image may use (the special pages sit above).
    pub const KERNEL_LIMIT: u64 = 0x007F_A000;
    /// BootParams page.
    pub const BOOT_PARAMS: u64 = 0x007F_A000;
    /// Memory-map parameter area.
    pub const MEMMAP: u64 = 0x007F_B000;
    /// vCPU-count parameter area.
    pub const VPCOUNT: u64 = 0x007F_C000;
    /// SNP secrets page.
    pub const SECRETS: u64 = 0x007F_D000;
    /// SNP CPUID page.
    pub const CPUID: u64 = 0x007F_E000;
}

/// The guest firmware.
#[derive(Clone, Debug)]
pub enum Firmware {
    /// An OVMF image, loaded to end at 4 GiB.
    Ovmf(Vec<u8>),
    /// An ELF image (Vigil's test guest), loaded at its PT_LOAD physical addresses.
    Elf(Vec<u8>),
}

impl Firmware {
    /// Pick the kind by content: ELF magic, else OVMF.
    pub fn detect(data: Vec<u8>) -> Self {
        if data.starts_with(b"\x7fELF") {
            Firmware::Elf(data)
        } else {
            Firmware::Ovmf(data)
        }
    }
}

/// Inputs of a build.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Layout profile.
    pub profile: Profile,
    /// The Vigil kernel ELF.
    pub kernel: Vec<u8>,
    /// The guest firmware.
    pub firmware: Firmware,
    /// Platforms to include.
    pub snp: bool,
    /// Include the native platform.
    pub native: bool,
    /// vCPU count recorded in the boot parameters.
    pub vcpus: u32,
    /// VMPL of the guest.
    pub guest_vmpl: u32,
    /// The monitor policy bytes.
    pub policy: Vec<u8>,
    /// SNP guest policy.
    pub guest_policy: u64,
    /// SEV_FEATURES of the boot VMSA.
    pub sev_features: u64,
}

/// One loaded segment.
#[derive(Clone, Debug)]
struct Segment {
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

/// Load the PT_LOAD segments and the entry of an ELF64 little-endian x86-64 file.
fn load_elf(what: &str, data: &[u8]) -> Result<(u64, Vec<Segment>)> {
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(data)
        .map_err(|e| Error::format(format!("{what} ELF header"), 0, e.to_string()))?;
    let endian = hdr
        .endian()
        .map_err(|e| Error::format(format!("{what} ELF header: e_ident"), 5, e.to_string()))?;
    if hdr.e_machine(endian) != object::elf::EM_X86_64 {
        return Err(Error::format(
            format!("{what} ELF header: e_machine"),
            0x12,
            format!("{} is not x86-64 (62)", hdr.e_machine(endian)),
        ));
    }
    let phoff = hdr.e_phoff(endian);
    let phentsize = u64::from(hdr.e_phentsize(endian));
    let phs = hdr
        .program_headers(endian, data)
        .map_err(|e| Error::format(format!("{what} ELF program headers"), phoff, e.to_string()))?;
    let mut segs = Vec::new();
    for (i, ph) in phs.iter().enumerate() {
        if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let at = phoff + i as u64 * phentsize;
        let paddr = ph.p_paddr(endian);
        let filesz = ph.p_filesz(endian);
        let memsz = ph.p_memsz(endian);
        if paddr % PAGE_SIZE as u64 != 0 {
            return Err(Error::format(
                format!("{what} ELF program header {i}: p_paddr"),
                at + 0x18,
                format!("{paddr:#x} is not 4 KiB aligned"),
            ));
        }
        if paddr.checked_add(memsz).is_none_or(|e| e > 1 << 52) {
            return Err(Error::format(
                format!("{what} ELF program header {i}: p_memsz"),
                at + 0x28,
                format!("{paddr:#x}+{memsz:#x} is beyond the 52-bit physical address space"),
            ));
        }
        if filesz > memsz {
            return Err(Error::format(
                format!("{what} ELF program header {i}: p_filesz"),
                at + 0x20,
                format!("{filesz:#x} > p_memsz {memsz:#x}"),
            ));
        }
        let bytes = ph.data(endian, data).map_err(|_| {
            Error::format(
                format!("{what} ELF program header {i}: p_offset/p_filesz"),
                at + 0x8,
                "segment data runs past the end of the file",
            )
        })?;
        segs.push(Segment {
            paddr,
            data: bytes.to_vec(),
            memsz,
        });
    }
    if segs.is_empty() {
        return Err(Error::format(
            format!("{what} ELF program headers"),
            phoff,
            "no PT_LOAD segment",
        ));
    }
    segs.sort_by_key(|s| s.paddr);
    for w in segs.windows(2) {
        if w[0].paddr + w[0].memsz > w[1].paddr {
            return Err(Error::Invalid(format!(
                "{what} ELF: segments at {:#x} and {:#x} overlap",
                w[0].paddr, w[1].paddr
            )));
        }
    }
    Ok((hdr.e_entry(endian), segs))
}

fn page_data(
    gpa: u64,
    mask: u32,
    data_type: IgvmPageDataType,
    data: Vec<u8>,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: mask,
        flags: IgvmPageDataFlags::new(),
        data_type,
        data,
    }
}

/// Page directives for a segment: file bytes as data pages, the rest as data-less pages.
fn segment_pages(seg: &Segment, mask: u32, out: &mut Vec<IgvmDirectiveHeader>) {
    let pages = seg.memsz.div_ceil(PAGE_SIZE as u64);
    for p in 0..pages {
        let off = (p as usize) * PAGE_SIZE;
        let data = if off < seg.data.len() {
            let end = (off + PAGE_SIZE).min(seg.data.len());
            let mut d = seg.data[off..end].to_vec();
            d.resize(PAGE_SIZE, 0);
            d
        } else {
            Vec::new()
        };
        out.push(page_data(
            seg.paddr + p * PAGE_SIZE as u64,
            mask,
            IgvmPageDataType::NORMAL,
            data,
        ));
    }
}

/// The VMPL0 boot VMSA: flat 32-bit protected mode at `entry`, RSI = boot params.
pub fn boot_vmsa(entry: u64, boot_params: u64, sev_features: u64) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let code = VmcbSegment::new(8, 0xc9b, 0xffff_ffff, 0);
    let data = VmcbSegment::new(16, 0xc93, 0xffff_ffff, 0);
    v.es = data;
    v.cs = code;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.ldtr = VmcbSegment::new(0, 0x82, 0xffff, 0);
    v.tr = VmcbSegment::new(0, 0x8b, 0xffff, 0);
    v.efer = 0x1000; // SVME, as KVM keeps it
    v.cr0 = 0x11; // PE | ET
    v.cr4 = 0x40; // MCE, as KVM sets it
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.rflags = 0x2;
    v.rip = entry;
    v.rsi = boot_params;
    v.g_pat = PAT_RESET;
    v.xcr0 = 1;
    v.mxcsr = 0x1f80;
    v.x87_fcw = 0x37f;
    v.sev_features = sev_features;
    v
}

/// The native context with the same register state as [`boot_vmsa`].
fn native_context(entry: u64, boot_params: u64) -> IgvmNativeVpContextX64 {
    let mut c = IgvmNativeVpContextX64::new_zeroed();
    c.rip = entry;
    c.rsi = boot_params;
    c.rflags = 0x2;
    c.code_selector = 8;
    c.code_attributes = 0xc09b;
    c.code_base = 0;
    c.code_limit = 0xffff_ffff;
    c.data_selector = 16;
    c.data_attributes = 0xc093;
    c.data_base = 0;
    c.data_limit = 0xffff_ffff;
    c.gdtr_limit = 0xffff;
    c.idtr_limit = 0xffff;
    c.cr0 = 0x11;
    c.cr4 = 0x40;
    c
}

/// The result of a build.
#[derive(Clone, Debug)]
pub struct Built {
    /// The serialized IGVM file.
    pub bytes: Vec<u8>,
    /// The parsed-back headers (as built).
    pub file: IgvmFile,
    /// The boot parameters page.
    pub boot_params: BootParams,
}

/// The SNP guest policy a build or `sign --policy` may write (#56860, "Guest Policy"
/// table, and SNP_LAUNCH_START, which fails on a policy with bit 17 clear or a reserved
/// bit set): bit 17 set, bits 63:26 clear. `lint` refuses the same (`policy-reserved`).
pub fn check_guest_policy(p: u64) -> Result<()> {
    use svsm_abi::report::policy as P;
    if p & P::RESERVED_MBO == 0 {
        return Err(Error::Usage(format!(
            "guest policy {p:#x}: reserved bit 17 must be 1 (e.g. {:#x})",
            p | P::RESERVED_MBO
        )));
    }
    if p & P::RESERVED_MASK != 0 {
        return Err(Error::Usage(format!(
            "guest policy {p:#x}: reserved bits {:#x} must be 0",
            p & P::RESERVED_MASK
        )));
    }
    Ok(())
}

/// The monitor policy file: empty (the monitor's defaults) or one JSON object, at most
/// [`boot_params::POLICY_MAX`] bytes. Its bytes are measured and its SHA-384 goes into
/// the reference values, so a file that is not the intended policy (a binary, a
/// truncated JSON) must not be packaged silently.
pub fn check_monitor_policy(p: &[u8]) -> Result<()> {
    if p.len() > boot_params::POLICY_MAX {
        return Err(Error::format(
            "monitor policy: size",
            boot_params::POLICY_MAX as u64,
            format!(
                "{} bytes exceed the {} bytes of the BootParams page",
                p.len(),
                boot_params::POLICY_MAX
            ),
        ));
    }
    if p.is_empty() {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(p).map_err(|e| {
        // serde_json reports line and column; turn them into a byte offset.
        let line_start: usize = p
            .split(|b| *b == b'\n')
            .take(e.line().saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum();
        Error::format(
            "monitor policy: JSON",
            (line_start + e.column().saturating_sub(1)) as u64,
            e.to_string(),
        )
    })?;
    if !v.is_object() {
        return Err(Error::format(
            "monitor policy: JSON",
            0,
            "the policy must be one JSON object",
        ));
    }
    Ok(())
}

/// The flags of a build that need no input file read: the profile, platforms, guest
/// VMPL (1..=3, DESIGN.md), vCPU count, both policies and SEV_FEATURES (SNPActive set,
/// no reserved bit: APM vol 2, 15.36.1, SEV_FEATURES of the VMSA).
fn check_config(cfg: &BuildConfig) -> Result<()> {
    if cfg.profile != Profile::QemuKvm {
        return Err(Error::Usage(format!(
            "profile {:?} is documented but not yet supported; use qemu-kvm",
            cfg.profile
        )));
    }
    if !cfg.snp && !cfg.native {
        return Err(Error::Usage("select at least one platform".into()));
    }
    if !(1..=3).contains(&cfg.guest_vmpl) {
        return Err(Error::Usage(format!(
            "--guest-vmpl {} is not 1, 2 or 3",
            cfg.guest_vmpl
        )));
    }
    if cfg.vcpus == 0 || cfg.vcpus > crate::limits::MAX_VCPUS {
        return Err(Error::Usage(format!(
            "--vcpus {} is outside 1..={}",
            cfg.vcpus,
            crate::limits::MAX_VCPUS
        )));
    }
    check_monitor_policy(&cfg.policy)?;
    if cfg.snp {
        check_guest_policy(cfg.guest_policy)?;
    }
    let feats = SevFeatures(cfg.sev_features);
    if cfg.snp && (!feats.contains(SevFeatures::SNP_ACTIVE) || feats.unknown_bits() != 0) {
        return Err(Error::Usage(format!(
            "--sev-features {:#x}: SNPActive (bit 0) is required and bits {:#x} are reserved",
            cfg.sev_features,
            feats.unknown_bits()
        )));
    }
    Ok(())
}

/// The compatibility mask of every directive both platforms share.
fn platform_mask(cfg: &BuildConfig) -> u32 {
    (if cfg.snp { MASK_SNP } else { 0 }) | (if cfg.native { MASK_NATIVE } else { 0 })
}

/// Load the kernel ELF and hold its segments and entry to the kernel area of the
/// `qemu-kvm` profile: a segment reaching into the special pages above
/// `KERNEL_LIMIT` would be overwritten by them (or overwrite them) at launch, and the
/// 32-bit boot VMSA cannot start at an entry above 4 GiB.
fn load_kernel(kernel: &[u8]) -> Result<(u64, Vec<Segment>)> {
    use qemu_kvm as L;
    let (entry, ksegs) = load_elf("kernel", kernel)?;
    for s in &ksegs {
        if s.paddr < L::VIGIL_START || s.paddr + s.memsz > L::KERNEL_LIMIT {
            return Err(Error::Invalid(format!(
                "kernel segment {:#x}+{:#x} is outside the kernel area [{:#x}, {:#x}) of the qemu-kvm profile",
                s.paddr,
                s.memsz,
                L::VIGIL_START,
                L::KERNEL_LIMIT
            )));
        }
    }
    if !(L::VIGIL_START..L::KERNEL_LIMIT).contains(&entry) || entry > u64::from(u32::MAX) {
        return Err(Error::Invalid(format!(
            "kernel entry {entry:#x} is outside the kernel area"
        )));
    }
    Ok((entry, ksegs))
}

/// The BootParams page before the firmware is placed: platforms, vCPUs, guest VMPL,
/// the Vigil region, the special pages and the monitor policy (its length was checked
/// against `POLICY_MAX` by [`check_config`]).
fn boot_params_page(cfg: &BuildConfig, entry: u64) -> BootParams {
    use qemu_kvm as L;
    let mut bp = BootParams::new_zeroed();
    bp.magic = boot_params::MAGIC;
    bp.version = boot_params::VERSION;
    bp.size = PAGE_SIZE as u32;
    bp.vcpus = cfg.vcpus;
    bp.guest_vmpl = cfg.guest_vmpl;
    bp.flags = (if cfg.snp { boot_params::FLAG_SNP } else { 0 })
        | (if cfg.native {
            boot_params::FLAG_NATIVE
        } else {
            0
        });
    bp.vigil_start = L::VIGIL_START;
    bp.vigil_end = L::VIGIL_END;
    bp.kernel_entry = entry;
    bp.secrets_gpa = if cfg.snp { L::SECRETS } else { 0 };
    bp.cpuid_gpa = if cfg.snp { L::CPUID } else { 0 };
    bp.memmap_gpa = L::MEMMAP;
    bp.memmap_size = PAGE_SIZE as u64;
    bp.vpcount_gpa = L::VPCOUNT;
    bp.policy_len = cfg.policy.len() as u32;
    bp.policy_offset = boot_params::POLICY_OFFSET;
    bp.policy_digest = Sha384::digest(&cfg.policy).into();
    bp.policy[..cfg.policy.len()].copy_from_slice(&cfg.policy);
    bp
}

/// The memory map entries every build starts with: the Vigil region, then the guest's
/// low memory below the legacy VGA hole.
fn base_memory_map() -> Vec<MapEntry> {
    use qemu_kvm as L;
    vec![
        MapEntry {
            base: L::VIGIL_START,
            size: L::VIGIL_END - L::VIGIL_START,
            kind: boot_params::kind::VIGIL,
            reserved: 0,
        },
        MapEntry {
            base: 0,
            size: 0xA_0000,
            kind: boot_params::kind::GUEST_LOW,
            reserved: 0,
        },
    ]
}

/// Whether `base..base+size` touches the Vigil region.
fn overlaps_vigil(base: u64, size: u64) -> bool {
    use qemu_kvm as L;
    base < L::VIGIL_END && base + size > L::VIGIL_START
}

/// The firmware's share of a build: its page directives, its data-less SNP metadata
/// pages and the guest RAM ranges (base, size, mask) that must exist for it.
#[derive(Default)]
struct FirmwarePlan {
    pages: Vec<IgvmDirectiveHeader>,
    meta_pages: Vec<IgvmDirectiveHeader>,
    guest_ram: Vec<(u64, u32, u32)>,
}

/// Place an OVMF image to end at 4 GiB, record its entry and SEV metadata pages in the
/// boot parameters and memory map, and (SNP) add those pages data-less.
fn place_ovmf(
    data: &[u8],
    snp: bool,
    both: u32,
    bp: &mut BootParams,
    map: &mut Vec<MapEntry>,
) -> Result<FirmwarePlan> {
    let ovmf = Ovmf::parse_ovmf(data, snp)?;
    let mut plan = FirmwarePlan::default();
    bp.fw_start = ovmf.gpa();
    bp.fw_size = data.len() as u64;
    bp.fw_entry = 0xFFFF_FFF0;
    map.push(MapEntry {
        base: ovmf.gpa(),
        size: data.len() as u64,
        kind: boot_params::kind::FIRMWARE,
        reserved: 0,
    });
    for (i, chunk) in data.chunks(PAGE_SIZE).enumerate() {
        plan.pages.push(page_data(
            ovmf.gpa() + (i * PAGE_SIZE) as u64,
            both,
            IgvmPageDataType::NORMAL,
            chunk.to_vec(),
        ));
    }
    for s in ovmf.metadata() {
        let (base, size) = (u64::from(s.gpa), u64::from(s.size));
        // A metadata range inside the Vigil region would let OVMF's SEC (or the
        // pre-validated pages it asks for) land on the monitor's own memory.
        if overlaps_vigil(base, size) {
            return Err(Error::Invalid(format!(
                "OVMF metadata section {:?} {base:#x}+{size:#x} overlaps the Vigil region",
                s.section_type
            )));
        }
        match s.section_type {
            SectionType::SnpSecrets => bp.fw_secrets_gpa = base,
            SectionType::Cpuid => bp.fw_cpuid_gpa = base,
            SectionType::SvsmCaa => bp.fw_caa_gpa = base,
            SectionType::SnpSecMem | SectionType::SnpKernelHashes => {}
        }
        if map.len() < boot_params::MAX_MAP {
            map.push(MapEntry {
                base,
                size,
                kind: boot_params::kind::FIRMWARE_PREVALIDATED,
                reserved: 0,
            });
        }
        if snp {
            plan.guest_ram.push((base, s.size, MASK_SNP));
            for p in 0..size / PAGE_SIZE as u64 {
                plan.meta_pages.push(page_data(
                    base + p * PAGE_SIZE as u64,
                    MASK_SNP,
                    IgvmPageDataType::NORMAL,
                    Vec::new(),
                ));
            }
        }
    }
    Ok(plan)
}

/// Place an ELF firmware (the test guest) at its PT_LOAD physical addresses, outside
/// the Vigil region, and record its span and entry.
fn place_elf_firmware(
    data: &[u8],
    both: u32,
    bp: &mut BootParams,
    map: &mut Vec<MapEntry>,
) -> Result<FirmwarePlan> {
    let (fw_entry, segs) = load_elf("firmware", data)?;
    let mut plan = FirmwarePlan::default();
    let start = segs.first().map(|s| s.paddr).unwrap_or(0);
    let end = segs.last().map(|s| s.paddr + s.memsz).unwrap_or(0);
    for s in &segs {
        // The lower-VMPL guest must not be loaded over the monitor's memory.
        if overlaps_vigil(s.paddr, s.memsz) {
            return Err(Error::Invalid(format!(
                "firmware segment {:#x}+{:#x} overlaps the Vigil region",
                s.paddr, s.memsz
            )));
        }
        segment_pages(s, both, &mut plan.pages);
        let size = u32::try_from(s.memsz.next_multiple_of(PAGE_SIZE as u64)).map_err(|_| {
            Error::Invalid(format!(
                "firmware segment {:#x}+{:#x} is larger than 4 GiB",
                s.paddr, s.memsz
            ))
        })?;
        plan.guest_ram.push((s.paddr, size, both));
    }
    bp.fw_start = start;
    bp.fw_size = end - start;
    bp.fw_entry = fw_entry;
    map.push(MapEntry {
        base: start,
        size: end - start,
        kind: boot_params::kind::FIRMWARE,
        reserved: 0,
    });
    Ok(plan)
}

/// The two host parameter areas (memory map, vCPU count), each as PARAMETER_AREA, its
/// kind and PARAMETER_INSERT at its fixed GPA.
fn parameter_areas(both: u32, dirs: &mut Vec<IgvmDirectiveHeader>) {
    use qemu_kvm as L;
    for (index, gpa, kind) in [(0u32, L::MEMMAP, 0), (1u32, L::VPCOUNT, 1)] {
        dirs.push(IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: PAGE_SIZE as u64,
            parameter_area_index: index,
            initial_data: Vec::new(),
        });
        let p = IGVM_VHS_PARAMETER {
            parameter_area_index: index,
            byte_offset: 0,
        };
        dirs.push(if kind == 0 {
            IgvmDirectiveHeader::MemoryMap(p)
        } else {
            IgvmDirectiveHeader::VpCount(p)
        });
        dirs.push(IgvmDirectiveHeader::ParameterInsert(
            IGVM_VHS_PARAMETER_INSERT {
                gpa,
                compatibility_mask: both,
                parameter_area_index: index,
            },
        ));
    }
}

/// The boot CPU's context: the SNP VMSA at QEMU's fixed VMSA GPA and/or the native
/// context, both at the kernel entry with RSI = the BootParams GPA.
fn vp_contexts(cfg: &BuildConfig, entry: u64, dirs: &mut Vec<IgvmDirectiveHeader>) -> Result<()> {
    use qemu_kvm as L;
    if cfg.snp {
        let v = boot_vmsa(entry, L::BOOT_PARAMS, cfg.sev_features);
        let sev = igvm::snp_defs::SevVmsa::read_from_bytes(v.as_bytes())
            .map_err(|_| Error::Igvm("VMSA size mismatch".into()))?;
        dirs.push(IgvmDirectiveHeader::SnpVpContext {
            gpa: KVM_VMSA_GPA,
            compatibility_mask: MASK_SNP,
            vp_index: 0,
            vmsa: Box::new(sev),
        });
    }
    if cfg.native {
        dirs.push(IgvmDirectiveHeader::X64NativeVpContext {
            compatibility_mask: MASK_NATIVE,
            vp_index: 0,
            context: Box::new(native_context(entry, L::BOOT_PARAMS)),
        });
    }
    Ok(())
}

/// All directives, in the order the module doc gives: kernel pages, boot parameters,
/// secrets, CPUID, firmware pages, firmware metadata pages, parameter areas, required
/// memory, VP contexts.
fn directives(
    cfg: &BuildConfig,
    entry: u64,
    ksegs: &[Segment],
    bp: &BootParams,
    fw: FirmwarePlan,
) -> Result<Vec<IgvmDirectiveHeader>> {
    use qemu_kvm as L;
    let both = platform_mask(cfg);
    let mut dirs: Vec<IgvmDirectiveHeader> = Vec::new();
    for s in ksegs {
        segment_pages(s, both, &mut dirs);
    }
    dirs.push(page_data(
        L::BOOT_PARAMS,
        both,
        IgvmPageDataType::NORMAL,
        bp.as_bytes().to_vec(),
    ));
    if cfg.snp {
        dirs.push(page_data(
            L::SECRETS,
            MASK_SNP,
            IgvmPageDataType::SECRETS,
            Vec::new(),
        ));
        dirs.push(page_data(
            L::CPUID,
            MASK_SNP,
            IgvmPageDataType::CPUID_DATA,
            Vec::new(),
        ));
    }
    dirs.extend(fw.pages);
    dirs.extend(fw.meta_pages);
    parameter_areas(both, &mut dirs);
    dirs.push(IgvmDirectiveHeader::RequiredMemory {
        gpa: L::VIGIL_START,
        compatibility_mask: both,
        number_of_bytes: (L::VIGIL_END - L::VIGIL_START) as u32,
        vtl2_protectable: false,
    });
    // The guest's pages outside the firmware ROM window must be RAM too.
    for (base, size, mask) in fw.guest_ram {
        dirs.push(IgvmDirectiveHeader::RequiredMemory {
            gpa: base,
            compatibility_mask: mask,
            number_of_bytes: size,
            vtl2_protectable: false,
        });
    }
    vp_contexts(cfg, entry, &mut dirs)?;
    Ok(dirs)
}

/// The platform headers (SNP and/or native) and the initialization headers (the SNP
/// guest policy).
fn platform_headers(cfg: &BuildConfig) -> (Vec<IgvmPlatformHeader>, Vec<IgvmInitializationHeader>) {
    let mut platforms = Vec::new();
    let mut inits = Vec::new();
    if cfg.snp {
        platforms.push(IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: MASK_SNP,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::SEV_SNP,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        ));
        inits.push(IgvmInitializationHeader::GuestPolicy {
            policy: cfg.guest_policy,
            compatibility_mask: MASK_SNP,
        });
    }
    if cfg.native {
        platforms.push(IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: MASK_NATIVE,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::NATIVE,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        ));
    }
    (platforms, inits)
}

/// Build the IGVM file for `cfg`, in stages: check the flags, load the kernel, fill the
/// boot parameters, place the firmware, emit the directives and headers, serialize.
pub fn build(cfg: &BuildConfig) -> Result<Built> {
    check_config(cfg)?;
    let both = platform_mask(cfg);
    let (entry, ksegs) = load_kernel(&cfg.kernel)?;
    let mut bp = boot_params_page(cfg, entry);
    let mut map = base_memory_map();
    let fw = match &cfg.firmware {
        Firmware::Ovmf(data) => place_ovmf(data, cfg.snp, both, &mut bp, &mut map)?,
        Firmware::Elf(data) => place_elf_firmware(data, both, &mut bp, &mut map)?,
    };
    bp.map_entries = map.len() as u32;
    for (slot, e) in bp.memory_map.iter_mut().zip(map.iter()) {
        *slot = *e;
    }
    let dirs = directives(cfg, entry, &ksegs, &bp, fw)?;
    let (platforms, inits) = platform_headers(cfg);
    let file = IgvmFile::new(IgvmRevision::V1, platforms, inits, dirs)
        .map_err(|e| Error::Igvm(e.to_string()))?;
    let mut bytes = Vec::new();
    file.serialize(&mut bytes)
        .map_err(|e| Error::Igvm(e.to_string()))?;
    Ok(Built {
        bytes,
        file,
        boot_params: bp,
    })
}

/// Read the boot parameters page back from a file built here (for `refs` and `inspect`).
pub fn find_boot_params(file: &IgvmFile) -> Option<BootParams> {
    file.directives().iter().find_map(|h| match h {
        IgvmDirectiveHeader::PageData { gpa, data, .. }
            if *gpa == qemu_kvm::BOOT_PARAMS && data.len() == PAGE_SIZE =>
        {
            BootParams::read_from_bytes(data)
                .ok()
                .filter(|b| b.magic == boot_params::MAGIC)
        }
        _ => None,
    })
}

/// SHA-384 of the monitor policy bytes.
pub fn policy_digest(policy: &[u8]) -> [u8; 48] {
    Sha384::digest(policy).into()
}
