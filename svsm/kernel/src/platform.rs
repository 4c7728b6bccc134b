//! Which platform Vigil runs on: the seam between the kernel and its platform backends.
//!
//! Detection reads CPUID only (plus SEV_STATUS when CPUID says the MSR exists):
//!
//! * CPUID 0x8000001F EAX bit 1 (SEV) set -> read MSR SEV_STATUS (0xC001_0131); bit 2
//!   (SNP active) -> [`PlatformKind::Snp`]; SEV or SEV-ES without SNP is refused later
//!   ([`PlatformKind::SevWithoutSnp`]: Vigil needs VMPLs).
//! * Else CPUID 0x8000_0001 ECX bit 2 (SVM) -> [`PlatformKind::EmulatedCapable`]: Vigil
//!   can be the hypervisor itself (the `emulated` platform of DESIGN.md), with nested
//!   paging if CPUID 0x8000_000A EDX bit 0 is set.
//! * Else [`PlatformKind::Plain`]: a plain x86-64 machine, where only the boot path runs.
//!
//! CPUID is host-controlled outside SNP (and under SNP comes from the validated CPUID
//! page); this decision only selects a backend, and each backend re-checks what it needs
//! (e.g. SNP's own checks of SEV_STATUS against the policy) before relying on it.
//! The classifier is pure (CPUID and the MSR read are passed in) so that host tests
//! drive every branch.

use core::fmt;

/// The detected platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// SEV-SNP is active: the `snp` backend.
    Snp {
        /// The raw SEV_STATUS MSR.
        sev_status: u64,
    },
    /// SEV or SEV-ES is active but not SNP: unsupported.
    SevWithoutSnp {
        /// The raw SEV_STATUS MSR.
        sev_status: u64,
    },
    /// AMD-V is available: the `emulated` backend can run.
    EmulatedCapable {
        /// Nested paging is available.
        nested_paging: bool,
        /// The CPU saves next-RIP on #VMEXIT.
        next_rip_save: bool,
    },
    /// Neither SNP nor AMD-V.
    Plain,
}

/// What detection found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    /// CPUID vendor string.
    pub vendor: [u8; 12],
    /// Hypervisor signature (CPUID 0x4000_0000), if the hypervisor bit is set.
    pub hypervisor: Option<[u8; 12]>,
    /// The platform.
    pub kind: PlatformKind,
}

fn sig(b: u32, c: u32, d: u32) -> [u8; 12] {
    let mut s = [0u8; 12];
    s[..4].copy_from_slice(&b.to_le_bytes());
    s[4..8].copy_from_slice(&c.to_le_bytes());
    s[8..].copy_from_slice(&d.to_le_bytes());
    s
}

/// Classifies the platform from `cpuid(leaf, subleaf) -> (eax, ebx, ecx, edx)`;
/// `sev_status` is called only when CPUID reports SEV (the MSR exists then).
pub fn classify(
    cpuid: impl Fn(u32, u32) -> (u32, u32, u32, u32),
    sev_status: impl FnOnce() -> u64,
) -> PlatformInfo {
    let (_, b, c, d) = cpuid(0, 0);
    let vendor = sig(b, d, c);
    let (_, _, ecx1, _) = cpuid(1, 0);
    let hypervisor = if ecx1 & (1 << 31) != 0 {
        let (_, b, c, d) = cpuid(0x4000_0000, 0);
        Some(sig(b, c, d))
    } else {
        None
    };
    let (max_ext, ..) = cpuid(0x8000_0000, 0);
    let kind = if max_ext >= 0x8000_001f && cpuid(0x8000_001f, 0).0 & (1 << 1) != 0 {
        let status = sev_status();
        if status & (1 << 2) != 0 {
            PlatformKind::Snp { sev_status: status }
        } else if status & 1 != 0 {
            PlatformKind::SevWithoutSnp { sev_status: status }
        } else {
            svm_or_plain(&cpuid, max_ext)
        }
    } else {
        svm_or_plain(&cpuid, max_ext)
    };
    PlatformInfo {
        vendor,
        hypervisor,
        kind,
    }
}

fn svm_or_plain(cpuid: &impl Fn(u32, u32) -> (u32, u32, u32, u32), max_ext: u32) -> PlatformKind {
    if max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0).2 & (1 << 2) != 0 {
        let (nested_paging, next_rip_save) = if max_ext >= 0x8000_000a {
            let d = cpuid(0x8000_000a, 0).3;
            (d & 1 != 0, d & (1 << 3) != 0)
        } else {
            (false, false)
        };
        PlatformKind::EmulatedCapable {
            nested_paging,
            next_rip_save,
        }
    } else {
        PlatformKind::Plain
    }
}

/// Detects the platform of the running CPU.
#[cfg(target_os = "none")]
pub fn detect() -> PlatformInfo {
    use crate::cpu::instr::{cpuid, rdmsr};
    classify(cpuid, || {
        // SAFETY: called only when CPUID 0x8000001F reports SEV, in which case the
        // SEV_STATUS MSR exists (AMD APM vol. 2, 15.34.10).
        unsafe { rdmsr(svsm_abi::sev_status::MSR_SEV_STATUS) }
    })
}

fn ascii(s: &[u8; 12]) -> &str {
    core::str::from_utf8(s)
        .unwrap_or("?")
        .trim_end_matches('\0')
}

impl fmt::Display for PlatformInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PlatformKind::Snp { sev_status } => {
                write!(f, "snp (SEV-SNP active, SEV_STATUS {sev_status:#x})")?
            }
            PlatformKind::SevWithoutSnp { sev_status } => write!(
                f,
                "unsupported (SEV without SNP, SEV_STATUS {sev_status:#x})"
            )?,
            PlatformKind::EmulatedCapable {
                nested_paging,
                next_rip_save,
            } => write!(
                f,
                "emulated-capable (AMD-V, nested paging {}, next-RIP save {})",
                if nested_paging { "yes" } else { "no" },
                if next_rip_save { "yes" } else { "no" }
            )?,
            PlatformKind::Plain => write!(f, "plain x86-64 (no SEV-SNP, no AMD-V)")?,
        }
        write!(f, "; CPU vendor {}", ascii(&self.vendor))?;
        if let Some(h) = &self.hypervisor {
            write!(f, ", hypervisor {}", ascii(h))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake CPUID: vendor "AuthenticAMD", hypervisor "TCGTCGTCGTCG", with the given
    /// SEV / SVM / NPT bits.
    fn fake(sev: bool, svm: bool, npt: bool) -> impl Fn(u32, u32) -> (u32, u32, u32, u32) {
        move |leaf, _| match leaf {
            0 => (
                0xd,
                u32::from_le_bytes(*b"Auth"),
                u32::from_le_bytes(*b"cAMD"),
                u32::from_le_bytes(*b"enti"),
            ),
            1 => (0, 0, 1 << 31, 0),
            0x4000_0000 => (
                0,
                u32::from_le_bytes(*b"TCGT"),
                u32::from_le_bytes(*b"CGTC"),
                u32::from_le_bytes(*b"GTCG"),
            ),
            0x8000_0000 => (0x8000_001f, 0, 0, 0),
            0x8000_0001 => (0, 0, if svm { 1 << 2 } else { 0 }, 0),
            0x8000_000a => (0, 0, 0, if npt { 1 } else { 0 }),
            0x8000_001f => (if sev { 0b11010 } else { 0 }, 0, 0, 0),
            _ => (0, 0, 0, 0),
        }
    }

    #[test]
    fn snp_active_is_snp() {
        let p = classify(fake(true, true, true), || 0b111);
        assert_eq!(p.kind, PlatformKind::Snp { sev_status: 0b111 });
        assert_eq!(&p.vendor, b"AuthenticAMD");
        assert_eq!(p.hypervisor.as_ref(), Some(b"TCGTCGTCGTCG"));
    }

    #[test]
    fn sev_without_snp_is_refused() {
        let p = classify(fake(true, true, true), || 0b011);
        assert_eq!(p.kind, PlatformKind::SevWithoutSnp { sev_status: 0b011 });
    }

    #[test]
    fn svm_is_emulated_capable_and_msr_not_read_without_sev() {
        let p = classify(fake(false, true, true), || {
            panic!("SEV_STATUS read without SEV")
        });
        assert_eq!(
            p.kind,
            PlatformKind::EmulatedCapable {
                nested_paging: true,
                next_rip_save: false
            }
        );
        assert!(std::format!("{p}").starts_with("emulated-capable"));
    }

    #[test]
    fn nothing_is_plain() {
        let p = classify(fake(false, false, false), || 0);
        assert_eq!(p.kind, PlatformKind::Plain);
        assert!(std::format!("{p}").starts_with("plain x86-64"));
    }

    #[test]
    fn sev_capable_but_inactive_falls_back_to_svm() {
        let p = classify(fake(true, true, false), || 0);
        assert_eq!(
            p.kind,
            PlatformKind::EmulatedCapable {
                nested_paging: false,
                next_rip_save: false
            }
        );
    }
}
