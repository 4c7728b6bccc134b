//! Launch digests of a guest started from an OVMF image (no IGVM file): a superset of
//! sev-snp-measure's modes, with its flag names and meanings.
//!
//! - `snp`: OVMF pages as NORMAL pages (ending at 4 GiB), then the pages its SEV
//!   metadata lists (SEC memory as ZERO pages, or UNMEASURED on GCE; the secrets page; the
//!   CPUID page, which EC2 adds after all other sections; the kernel hashes page, a NORMAL
//!   page holding the hash table when `--kernel` is given, else ZERO; the SVSM calling
//!   area as ZERO), then one VMSA per vCPU (boot CPU at the reset vector, the others at
//!   the SEV-ES reset block's EIP) at the KVM VMSA GPA.
//! - `snp:ovmf-hash`: the digest of the OVMF pages alone (a seed for `--snp-ovmf-hash`).
//! - `snp:svsm`: OVMF pages, then a pre-IGVM COCONUT SVSM image ending at OVMF's base
//!   minus the vars size, then the SVSM's own metadata sections, then one 32-bit VMSA per
//!   vCPU entering the SVSM.
//! - `seves`, `sev`: the SHA-256 launch digests of SEV-ES and SEV.

use std::borrow::Cow;

use serde::Serialize;
use sha2::{Digest, Sha256};
use svsm_abi::page_info::PageType;

use crate::digest::{self, Digest384, Measurement, PageOp, KVM_VMSA_GPA, PAGE_SIZE};
use crate::ovmf::{Ovmf, SectionType};
use crate::reset_vmsa::{self, Fpu, VmmType, BSP_EIP};
use crate::{Error, Result};

/// Four GiB: OVMF ends here.
pub const FOUR_GB: u64 = 1 << 32;

/// sev-snp-measure's `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Mode {
    /// SEV (SHA-256 of OVMF and the hash table).
    #[value(name = "sev")]
    Sev,
    /// SEV-ES (SHA-256 of OVMF, the hash table and the VMSAs).
    #[value(name = "seves")]
    SevEs,
    /// SEV-SNP.
    #[value(name = "snp")]
    Snp,
    /// SEV-SNP digest of the OVMF pages only.
    #[value(name = "snp:ovmf-hash")]
    SnpOvmfHash,
    /// SEV-SNP with a pre-IGVM COCONUT SVSM image.
    #[value(name = "snp:svsm")]
    SnpSvsm,
}

/// Everything an OVMF-based measurement depends on.
#[derive(Clone, Debug)]
pub struct OvmfParams {
    /// Mode.
    pub mode: Mode,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// CPUID signature placed in RDX of each VMSA (QEMU).
    pub vcpu_sig: u32,
    /// VMM type.
    pub vmm: VmmType,
    /// SEV_FEATURES of the VMSAs (snp mode; sev-snp-measure's `--guest-features`).
    pub guest_features: u64,
    /// The OVMF image.
    pub ovmf: Vec<u8>,
    /// Kernel, initrd and command line for measured direct boot.
    pub kernel: Option<KernelHashes>,
    /// The SVSM image for `snp:svsm`.
    pub svsm: Option<Vec<u8>>,
    /// The OVMF vars size for `snp:svsm`.
    pub vars_size: u64,
    /// A precomputed OVMF digest (`--snp-ovmf-hash`): the chain starts from it and the
    /// OVMF pages are not measured again.
    pub ovmf_hash: Option<Digest384>,
    /// FPU state rule of the VMSAs.
    pub fpu: Fpu,
}

/// SHA-256 digests of the kernel, initrd and command line (QEMU's SEV hash table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the kernel file.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of nothing if none).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line plus its terminating NUL.
    pub cmdline: [u8; 32],
}

const HASH_TABLE_HEADER_GUID: &str = "9438d606-4f22-4cc9-b479-a793d411fd21";
const KERNEL_ENTRY_GUID: &str = "4de79437-abd2-427f-b835-d5b172d2045b";
const INITRD_ENTRY_GUID: &str = "44baf731-3a2f-4bd7-9af1-41e29169781d";
const CMDLINE_ENTRY_GUID: &str = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a";

impl KernelHashes {
    /// Hash the given contents as QEMU does (`append` gets a NUL terminator; no command
    /// line hashes a lone NUL).
    pub fn new(kernel: &[u8], initrd: Option<&[u8]>, append: Option<&str>) -> Self {
        let mut cmd = append.unwrap_or("").as_bytes().to_vec();
        cmd.push(0);
        Self {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            cmdline: Sha256::digest(&cmd).into(),
        }
    }

    /// From digests already computed (kernel and initrd hashed while read, see
    /// [`crate::limits::sha256`]); no initrd hashes the empty string, as QEMU does.
    pub fn from_digests(kernel: [u8; 32], initrd: Option<[u8; 32]>, append: Option<&str>) -> Self {
        let mut cmd = append.unwrap_or("").as_bytes().to_vec();
        cmd.push(0);
        Self {
            kernel,
            initrd: initrd.unwrap_or_else(|| Sha256::digest([]).into()),
            cmdline: Sha256::digest(&cmd).into(),
        }
    }

    /// QEMU's SEV hash table: header GUID, u16 length, then the cmdline, initrd and
    /// kernel entries (GUID, u16 length, SHA-256), padded to 16 bytes.
    pub fn table(&self) -> Vec<u8> {
        const ENTRY: usize = 16 + 2 + 32;
        const TABLE: usize = 16 + 2 + 3 * ENTRY;
        let mut t = Vec::with_capacity(TABLE.next_multiple_of(16));
        t.extend_from_slice(&crate::ovmf::guid_le(HASH_TABLE_HEADER_GUID));
        t.extend_from_slice(&(TABLE as u16).to_le_bytes());
        for (g, h) in [
            (CMDLINE_ENTRY_GUID, &self.cmdline),
            (INITRD_ENTRY_GUID, &self.initrd),
            (KERNEL_ENTRY_GUID, &self.kernel),
        ] {
            t.extend_from_slice(&crate::ovmf::guid_le(g));
            t.extend_from_slice(&(ENTRY as u16).to_le_bytes());
            t.extend_from_slice(h);
        }
        t.resize(TABLE.next_multiple_of(16), 0);
        t
    }

    /// The hash table page: the table at `offset` in an otherwise zero 4 KiB page.
    pub fn page(&self, offset: usize) -> Result<Vec<u8>> {
        let t = self.table();
        if offset + t.len() > PAGE_SIZE {
            return Err(Error::Invalid(format!(
                "SEV hash table at page offset {offset:#x} does not fit in the page"
            )));
        }
        let mut p = vec![0u8; PAGE_SIZE];
        p[offset..offset + t.len()].copy_from_slice(&t);
        Ok(p)
    }
}

/// The result of an OVMF measurement: the digest (48 bytes for SNP, 32 for SEV/SEV-ES)
/// and, for SNP modes, the page log.
#[derive(Clone, Debug)]
pub struct OvmfMeasurement {
    /// The launch digest.
    pub digest: Vec<u8>,
    /// The SNP page log (empty for SEV/SEV-ES or when not requested).
    pub snp: Option<Measurement>,
}

/// The page operations of the metadata sections of `fw` (an OVMF or SVSM image).
fn metadata_ops<'a>(
    fw: &Ovmf,
    name: &str,
    kernel: Option<&KernelHashes>,
    vmm: VmmType,
    ops: &mut Vec<PageOp<'a>>,
) -> Result<()> {
    for s in fw.metadata() {
        let (gpa, size) = (u64::from(s.gpa), u64::from(s.size));
        match s.section_type {
            SectionType::SnpSecMem => {
                let t = if vmm == VmmType::gce {
                    PageType::Unmeasured
                } else {
                    PageType::Zero
                };
                ops.extend(digest::unhashed_pages(gpa, size, t));
            }
            SectionType::SnpSecrets => ops.push(PageOp::unhashed(gpa, PageType::Secrets)),
            SectionType::Cpuid => {
                if vmm != VmmType::ec2 {
                    ops.push(PageOp::unhashed(gpa, PageType::Cpuid));
                }
            }
            SectionType::SnpKernelHashes => match kernel {
                Some(k) => {
                    if size != PAGE_SIZE as u64 {
                        return Err(Error::Invalid(format!(
                            "{name}: kernel hashes section at {gpa:#x} is {size:#x} bytes, not one page"
                        )));
                    }
                    let off = (fw.sev_hashes_table_gpa(name)? as usize) & (PAGE_SIZE - 1);
                    ops.push(PageOp::normal(gpa, Cow::Owned(k.page(off)?)));
                }
                None => ops.extend(digest::unhashed_pages(gpa, size, PageType::Zero)),
            },
            SectionType::SvsmCaa => ops.extend(digest::unhashed_pages(gpa, size, PageType::Zero)),
        }
    }
    if vmm == VmmType::ec2 {
        // EC2 adds the CPUID page after every other section.
        for s in fw
            .metadata()
            .iter()
            .filter(|s| s.section_type == SectionType::Cpuid)
        {
            ops.push(PageOp::unhashed(u64::from(s.gpa), PageType::Cpuid));
        }
    }
    if kernel.is_some()
        && !fw
            .metadata()
            .iter()
            .any(|s| s.section_type == SectionType::SnpKernelHashes)
    {
        return Err(Error::Invalid(format!(
            "{name}: a kernel was given but the SEV metadata has no SNP_KERNEL_HASHES section"
        )));
    }
    Ok(())
}

/// True for the SNP modes, whose OVMF image needs SEV metadata to launch under QEMU.
pub fn is_snp(m: Mode) -> bool {
    matches!(m, Mode::Snp | Mode::SnpOvmfHash | Mode::SnpSvsm)
}

/// Compute the launch digest for `p`. `want_log` asks for the per-page log (SNP modes).
pub fn measure(p: &OvmfParams, want_log: bool) -> Result<OvmfMeasurement> {
    // SEV metadata is not required here: sev-snp-measure measures images without it
    // (Debian 12's), and the CLI warns. `build` requires it (builder.rs).
    let ovmf = Ovmf::parse_ovmf(p.ovmf.as_slice(), false)?;
    match p.mode {
        Mode::SnpOvmfHash => {
            let ops: Vec<PageOp> = digest::normal_pages(ovmf.gpa(), ovmf.data()).collect();
            let m = digest::measure([0; 48], &ops, want_log)?;
            Ok(OvmfMeasurement {
                digest: m.digest.to_vec(),
                snp: Some(m),
            })
        }
        Mode::Snp => {
            let mut ops: Vec<PageOp> = Vec::new();
            let seed = match p.ovmf_hash {
                Some(h) => h,
                None => {
                    ops.extend(digest::normal_pages(ovmf.gpa(), ovmf.data()));
                    [0; 48]
                }
            };
            metadata_ops(&ovmf, "OVMF", p.kernel.as_ref(), p.vmm, &mut ops)?;
            let ap_eip = if p.vcpus > 1 {
                ovmf.sev_es_reset_eip("OVMF")?
            } else {
                0
            };
            let bsp = reset_vmsa::to_page(&reset_vmsa::reset_vmsa(
                BSP_EIP,
                p.guest_features,
                p.vcpu_sig,
                p.vmm,
                p.fpu,
            ));
            let ap = reset_vmsa::to_page(&reset_vmsa::reset_vmsa(
                ap_eip,
                p.guest_features,
                p.vcpu_sig,
                p.vmm,
                p.fpu,
            ));
            for i in 0..p.vcpus {
                let page = if i == 0 { bsp.clone() } else { ap.clone() };
                ops.push(PageOp {
                    gpa: KVM_VMSA_GPA,
                    page_type: PageType::Vmsa,
                    data: Cow::Owned(page),
                });
            }
            let m = digest::measure(seed, &ops, want_log)?;
            Ok(OvmfMeasurement {
                digest: m.digest.to_vec(),
                snp: Some(m),
            })
        }
        Mode::SnpSvsm => {
            if p.vmm != VmmType::QEMU {
                return Err(Error::Usage(
                    "snp:svsm mode is defined for --vmm-type QEMU only".into(),
                ));
            }
            let svsm_data = p
                .svsm
                .as_deref()
                .ok_or_else(|| Error::Usage("snp:svsm mode needs --svsm".into()))?;
            let end = ovmf.gpa().checked_sub(p.vars_size).ok_or_else(|| {
                Error::Usage(format!(
                    "--vars-size {:#x} is above the OVMF base {:#x}",
                    p.vars_size,
                    ovmf.gpa()
                ))
            })?;
            let svsm = Ovmf::parse("SVSM", svsm_data, end)?;
            let eip = svsm.svsm_entry("SVSM")?;
            let mut ops: Vec<PageOp> = digest::normal_pages(ovmf.gpa(), ovmf.data()).collect();
            ops.extend(digest::normal_pages(svsm.gpa(), svsm.data()));
            metadata_ops(&svsm, "SVSM", None, VmmType::QEMU, &mut ops)?;
            let vmsa = reset_vmsa::to_page(&reset_vmsa::svsm_legacy_vmsa(eip, p.vcpu_sig, p.fpu));
            for _ in 0..p.vcpus {
                ops.push(PageOp {
                    gpa: KVM_VMSA_GPA,
                    page_type: PageType::Vmsa,
                    data: Cow::Owned(vmsa.clone()),
                });
            }
            let m = digest::measure([0; 48], &ops, want_log)?;
            Ok(OvmfMeasurement {
                digest: m.digest.to_vec(),
                snp: Some(m),
            })
        }
        Mode::Sev | Mode::SevEs => {
            let mut h = Sha256::new();
            h.update(ovmf.data());
            if let Some(k) = &p.kernel {
                if !ovmf.supports_kernel_hashes() {
                    return Err(Error::Invalid(
                        "OVMF: a kernel was given but the image does not support kernel hashes"
                            .into(),
                    ));
                }
                h.update(k.table());
            }
            if p.mode == Mode::SevEs {
                let ap_eip = ovmf.sev_es_reset_eip("OVMF")?;
                let bsp = reset_vmsa::reset_vmsa(BSP_EIP, 0, p.vcpu_sig, p.vmm, p.fpu);
                let ap = reset_vmsa::reset_vmsa(ap_eip, 0, p.vcpu_sig, p.vmm, p.fpu);
                for i in 0..p.vcpus {
                    h.update(reset_vmsa::to_page(if i == 0 { &bsp } else { &ap }));
                }
            }
            Ok(OvmfMeasurement {
                digest: h.finalize().to_vec(),
                snp: None,
            })
        }
    }
}

/// The VMSA pages the measurement of `p` includes, in order (for `--dump-vmsa`).
pub fn vmsa_pages(p: &OvmfParams) -> Result<Vec<Vec<u8>>> {
    // SEV metadata is not required here: sev-snp-measure measures images without it
    // (Debian 12's), and the CLI warns. `build` requires it (builder.rs).
    let ovmf = Ovmf::parse_ovmf(p.ovmf.as_slice(), false)?;
    let n = p.vcpus as usize;
    Ok(match p.mode {
        Mode::Sev | Mode::SnpOvmfHash => Vec::new(),
        Mode::Snp | Mode::SevEs => {
            let features = if p.mode == Mode::Snp {
                p.guest_features
            } else {
                0
            };
            let ap_eip = if n > 1 {
                ovmf.sev_es_reset_eip("OVMF")?
            } else {
                0
            };
            (0..n)
                .map(|i| {
                    let eip = if i == 0 { BSP_EIP } else { ap_eip };
                    reset_vmsa::to_page(&reset_vmsa::reset_vmsa(
                        eip, features, p.vcpu_sig, p.vmm, p.fpu,
                    ))
                })
                .collect()
        }
        Mode::SnpSvsm => {
            let svsm_data = p
                .svsm
                .as_deref()
                .ok_or_else(|| Error::Usage("snp:svsm mode needs --svsm".into()))?;
            let end = ovmf.gpa().saturating_sub(p.vars_size);
            let svsm = Ovmf::parse("SVSM", svsm_data, end)?;
            let page = reset_vmsa::to_page(&reset_vmsa::svsm_legacy_vmsa(
                svsm.svsm_entry("SVSM")?,
                p.vcpu_sig,
                p.fpu,
            ));
            vec![page; n]
        }
    })
}
