//! Which platform Vigil runs on, decided in two steps, both pure so that host tests
//! drive every branch (the machine's answers are passed in as functions).
//!
//! 1. [`choose`]: SEV_STATUS first (MSR 0xC001_0131, APM vol. 2 15.34.10; `None` when
//!    reading it raised #GP, i.e. the MSR does not exist and this is no SEV guest).
//!    Nothing else may come first: under SEV-ES and SNP, CPUID and port I/O raise #VC
//!    (APM vol. 2 15.35; GHCB spec #56421, non-automatic exits), and no #VC handler
//!    exists yet. SEV_STATUS reads are not such an exit (Linux and other SVSMs read it
//!    before they have a GHCB).
//!    * SNP active (bit 2) -> [`BootChoice::Snp`] (the backend is not written yet: the
//!      boot ends with a termination request that says so);
//!    * SEV-ES without SNP (bit 1) -> [`BootChoice::SevEsWithoutSnp`], refused (Vigil
//!      needs VMPLs; ports would #VC, so the refusal goes through the GHCB MSR protocol);
//!    * SEV alone (bit 0) -> [`BootChoice::SevWithoutEs`], refused on the serial port;
//!    * no SEV -> [`BootChoice::Native`], and only then CPUID ([`classify`]).
//! 2. [`classify`] (native only): CPUID 0x8000_0001 ECX bit 2 (SVM) ->
//!    [`PlatformKind::EmulatedCapable`] (the `emulated` platform of DESIGN.md), with
//!    nested paging if CPUID 0x8000_000A EDX bit 0 is set; else [`PlatformKind::Plain`].
//!
//! SEV_STATUS and CPUID are host-controlled outside SNP; this decision only selects a
//! backend, and each backend re-checks what it needs before relying on it.

use core::fmt;

use svsm_abi::sev_status::{SEV_ENABLED, SEV_ES_ENABLED, SNP_ENABLED};

/// The first decision of the boot, from SEV_STATUS alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootChoice {
    /// SEV-SNP is active: the `snp` backend (not written yet).
    Snp {
        /// The raw SEV_STATUS MSR.
        sev_status: u64,
    },
    /// SEV-ES is active without SNP: refused.
    SevEsWithoutSnp {
        /// The raw SEV_STATUS MSR.
        sev_status: u64,
    },
    /// SEV is active without SEV-ES: refused.
    SevWithoutEs {
        /// The raw SEV_STATUS MSR.
        sev_status: u64,
    },
    /// No SEV: ports and the CPUID instruction, classified by CPUID.
    Native(PlatformInfo),
}

/// Decides the platform: `sev_status` is asked first (`None` = the MSR does not exist);
/// `cpuid` is called only when neither SEV-ES nor SNP is active.
pub fn choose(
    sev_status: impl FnOnce() -> Option<u64>,
    cpuid: impl Fn(u32, u32) -> (u32, u32, u32, u32),
) -> BootChoice {
    match sev_status() {
        Some(s) if s & SNP_ENABLED != 0 => BootChoice::Snp { sev_status: s },
        Some(s) if s & SEV_ES_ENABLED != 0 => BootChoice::SevEsWithoutSnp { sev_status: s },
        Some(s) if s & SEV_ENABLED != 0 => BootChoice::SevWithoutEs { sev_status: s },
        _ => BootChoice::Native(classify(cpuid)),
    }
}

/// The kind of a native (non-SEV) machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// AMD-V is available: the `emulated` backend can run.
    EmulatedCapable {
        /// Nested paging is available.
        nested_paging: bool,
        /// The CPU saves next-RIP on #VMEXIT.
        next_rip_save: bool,
    },
    /// No AMD-V.
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

/// Classifies a native machine from `cpuid(leaf, subleaf) -> (eax, ebx, ecx, edx)`.
pub fn classify(cpuid: impl Fn(u32, u32) -> (u32, u32, u32, u32)) -> PlatformInfo {
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
    PlatformInfo {
        vendor,
        hypervisor,
        kind: svm_or_plain(&cpuid, max_ext),
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

fn ascii(s: &[u8; 12]) -> &str {
    core::str::from_utf8(s)
        .unwrap_or("?")
        .trim_end_matches('\0')
}

impl fmt::Display for PlatformInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
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

    /// A CPUID that must not run: on SEV-ES and SNP it would raise #VC.
    fn no_cpuid(leaf: u32, _: u32) -> (u32, u32, u32, u32) {
        panic!("CPUID {leaf:#x} run before the SEV-ES/SNP decision")
    }

    #[test]
    fn snp_active_is_snp_without_running_cpuid() {
        assert_eq!(
            choose(|| Some(0b111), no_cpuid),
            BootChoice::Snp { sev_status: 0b111 }
        );
        // Any further feature bit (restricted injection, ...) keeps it SNP.
        assert_eq!(
            choose(|| Some(0b10_0111), no_cpuid),
            BootChoice::Snp {
                sev_status: 0b10_0111
            }
        );
    }

    #[test]
    fn sev_es_without_snp_is_refused_without_running_cpuid() {
        assert_eq!(
            choose(|| Some(0b011), no_cpuid),
            BootChoice::SevEsWithoutSnp { sev_status: 0b011 }
        );
    }

    #[test]
    fn sev_alone_is_refused() {
        assert_eq!(
            choose(|| Some(0b001), fake(true, true, true)),
            BootChoice::SevWithoutEs { sev_status: 0b001 }
        );
    }

    #[test]
    fn absent_or_zero_sev_status_is_native_and_classified_by_cpuid() {
        for status in [None, Some(0)] {
            let BootChoice::Native(p) = choose(|| status, fake(false, true, true)) else {
                panic!("SEV_STATUS {status:?} is not native");
            };
            assert_eq!(
                p.kind,
                PlatformKind::EmulatedCapable {
                    nested_paging: true,
                    next_rip_save: false
                }
            );
            assert_eq!(&p.vendor, b"AuthenticAMD");
            assert_eq!(p.hypervisor.as_ref(), Some(b"TCGTCGTCGTCG"));
            assert!(std::format!("{p}").starts_with("emulated-capable"));
        }
    }

    #[test]
    fn nothing_is_plain() {
        let p = classify(fake(false, false, false));
        assert_eq!(p.kind, PlatformKind::Plain);
        assert!(std::format!("{p}").starts_with("plain x86-64"));
    }

    #[test]
    fn svm_without_nested_paging_says_so() {
        let p = classify(fake(true, true, false));
        assert_eq!(
            p.kind,
            PlatformKind::EmulatedCapable {
                nested_paging: false,
                next_rip_save: false
            }
        );
    }
}
