//! The launch: the host loads a plan of pages into guest memory and the security
//! processor measures each one, in launch order (SNP firmware ABI #56860 §8.17:
//! SNP_LAUNCH_START, SNP_LAUNCH_UPDATE per page, SNP_LAUNCH_FINISH).
//!
//! The plan is what a host loader makes of an IGVM file (`crate::igvm_loader`): pages
//! with their type and data, then the VMSAs. As QEMU+KVM do, the VMSAs are measured
//! after every page, one per vCPU in vCPU order, at GPA 0xFFFFFFFFF000 (KVM's
//! `INITIAL_VMSA_GPA` in `snp_launch_update_vmsa`); they live in host memory, not in the
//! guest's address space.
//!
//! What each page type does to memory and the RMP (SNP ABI SNP_LAUNCH_UPDATE):
//! NORMAL and UNMEASURED pages keep the host's data; ZERO pages are zeroed; the SECRETS
//! page is written by the firmware ([`crate::secrets`]); the CPUID page holds what the
//! host wrote (the model's host writes [`crate::cpuid::cpuid_page`]). Every page becomes
//! guest-owned and validated.

use alloc::vec::Vec;

use crate::memory::Memory;
use crate::page_info::{Digest384, LaunchDigest, PageType};
use crate::rmp::{Rmp, PAGE_SIZE};

/// KVM's `INITIAL_VMSA_GPA` (arch/x86/kvm/svm/sev.c): the GPA every VMSA is measured at.
pub const INITIAL_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// One page of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Page-aligned GPA.
    pub gpa: u64,
    /// Page type.
    pub page_type: PageType,
    /// The host's data (at most 4096 bytes, the rest of the page is zero). Ignored for
    /// ZERO and SECRETS pages.
    pub data: Vec<u8>,
}

/// A launch plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pages, in launch order.
    pub pages: Vec<Page>,
    /// VMSA page of each vCPU, in vCPU order (4096 bytes each).
    pub vmsas: Vec<Vec<u8>>,
    /// The guest policy (SNP_LAUNCH_START).
    pub policy: u64,
}

/// A refused plan. Nothing is measured or kept from a refused plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchError {
    /// A page's GPA is not 4 KiB aligned.
    Misaligned {
        /// The GPA.
        gpa: u64,
    },
    /// A page lies outside the guest's memory.
    OutOfRange {
        /// The GPA.
        gpa: u64,
    },
    /// More than 4096 bytes of data for one page.
    TooMuchData {
        /// The GPA.
        gpa: u64,
        /// The data length.
        len: usize,
    },
    /// A page launched twice (SNP_LAUNCH_UPDATE needs a page the guest does not own yet).
    Twice {
        /// The GPA.
        gpa: u64,
    },
    /// A VMSA page is not 4096 bytes.
    VmsaSize {
        /// The vCPU index.
        vcpu: usize,
        /// Its length.
        len: usize,
    },
    /// A plan without a VMSA has nothing to run.
    NoVmsa,
    /// A page of type VMSA among the pages (VMSAs go in `vmsas`).
    VmsaAmongPages {
        /// The GPA.
        gpa: u64,
    },
}

impl core::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LaunchError::Misaligned { gpa } => write!(f, "page gpa {gpa:#x} is not 4 KiB aligned"),
            LaunchError::OutOfRange { gpa } => {
                write!(f, "page gpa {gpa:#x} is outside guest memory")
            }
            LaunchError::TooMuchData { gpa, len } => {
                write!(f, "page gpa {gpa:#x}: {len} bytes of data exceed one page")
            }
            LaunchError::Twice { gpa } => write!(f, "page gpa {gpa:#x} is launched twice"),
            LaunchError::VmsaSize { vcpu, len } => {
                write!(f, "VMSA of vCPU {vcpu} is {len} bytes, not 4096")
            }
            LaunchError::NoVmsa => write!(f, "the plan has no VMSA"),
            LaunchError::VmsaAmongPages { gpa } => {
                write!(
                    f,
                    "page gpa {gpa:#x} has type VMSA; VMSAs are given per vCPU"
                )
            }
        }
    }
}

/// What the launch produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launched {
    /// The launch digest (MEASUREMENT of every report).
    pub digest: Digest384,
    /// Pages measured, VMSAs included.
    pub pages: u64,
    /// The guest policy.
    pub policy: u64,
    /// The VMSAs, in vCPU order.
    pub vmsas: Vec<[u8; 4096]>,
}

/// The page's final content as the firmware leaves it.
fn content(p: &Page, secrets: &[u8; 4096]) -> [u8; 4096] {
    let mut page = [0u8; 4096];
    match p.page_type {
        PageType::Zero => {}
        PageType::Secrets => page = *secrets,
        _ => page[..p.data.len()].copy_from_slice(&p.data),
    }
    page
}

fn check(plan: &Plan, mem: &Memory, rmp: &Rmp) -> Result<(), LaunchError> {
    if plan.vmsas.is_empty() {
        return Err(LaunchError::NoVmsa);
    }
    for (vcpu, v) in plan.vmsas.iter().enumerate() {
        if v.len() != 4096 {
            return Err(LaunchError::VmsaSize { vcpu, len: v.len() });
        }
    }
    let mut seen: Vec<u64> = plan.pages.iter().map(|p| p.gpa).collect();
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        return Err(LaunchError::Twice { gpa: w[0] });
    }
    for p in &plan.pages {
        let gpa = p.gpa;
        if !gpa.is_multiple_of(PAGE_SIZE) {
            return Err(LaunchError::Misaligned { gpa });
        }
        if p.page_type == PageType::Vmsa {
            return Err(LaunchError::VmsaAmongPages { gpa });
        }
        if p.data.len() > 4096 {
            return Err(LaunchError::TooMuchData {
                gpa,
                len: p.data.len(),
            });
        }
        if gpa.checked_add(PAGE_SIZE).is_none_or(|e| e > mem.size()) {
            return Err(LaunchError::OutOfRange { gpa });
        }
        match rmp.entry(gpa) {
            Ok(e) if !e.assigned => {}
            Ok(_) => return Err(LaunchError::Twice { gpa }),
            Err(_) => return Err(LaunchError::OutOfRange { gpa }),
        }
    }
    Ok(())
}

/// The launch digest of `plan` alone (no memory or RMP), for plans that need more
/// memory than a test has (an OVMF image ends at 4 GiB). Same order and rules as
/// [`launch`]; the plan is not checked against memory.
pub fn measure(plan: &Plan, vmpck: &[[u8; 32]; 4]) -> Result<Digest384, LaunchError> {
    let secrets = crate::secrets::secrets_page(vmpck);
    let mut d = LaunchDigest::new();
    for p in &plan.pages {
        if p.data.len() > 4096 {
            return Err(LaunchError::TooMuchData {
                gpa: p.gpa,
                len: p.data.len(),
            });
        }
        d.add(p.gpa, p.page_type, &content(p, &secrets));
    }
    for (vcpu, v) in plan.vmsas.iter().enumerate() {
        let page: &[u8; 4096] = v
            .as_slice()
            .try_into()
            .map_err(|_| LaunchError::VmsaSize { vcpu, len: v.len() })?;
        d.add(INITIAL_VMSA_GPA, PageType::Vmsa, page);
    }
    Ok(d.value())
}

/// Load and measure `plan`. The whole plan is checked before anything is written, so a
/// refused plan leaves memory and the RMP as they were.
pub fn launch(
    plan: &Plan,
    mem: &mut Memory,
    rmp: &mut Rmp,
    vmpck: &[[u8; 32]; 4],
) -> Result<Launched, LaunchError> {
    check(plan, mem, rmp)?;
    let secrets = crate::secrets::secrets_page(vmpck);
    let mut d = LaunchDigest::new();
    for p in &plan.pages {
        let page = content(p, &secrets);
        d.add(p.gpa, p.page_type, &page);
        mem.write(p.gpa, &page)
            .map_err(|_| LaunchError::OutOfRange { gpa: p.gpa })?;
        rmp.launch_page(p.gpa, false)
            .map_err(|_| LaunchError::OutOfRange { gpa: p.gpa })?;
    }
    let mut vmsas = Vec::with_capacity(plan.vmsas.len());
    for v in &plan.vmsas {
        let mut page = [0u8; 4096];
        page.copy_from_slice(v);
        d.add(INITIAL_VMSA_GPA, PageType::Vmsa, &page);
        vmsas.push(page);
    }
    Ok(Launched {
        digest: d.value(),
        pages: d.pages(),
        policy: plan.policy,
        vmsas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::poison_word;

    fn page(gpa: u64, page_type: PageType, data: &[u8]) -> Page {
        Page {
            gpa,
            page_type,
            data: data.to_vec(),
        }
    }

    fn plan() -> Plan {
        Plan {
            pages: alloc::vec![
                page(0x1000, PageType::Normal, b"code"),
                page(0x2000, PageType::Zero, &[]),
                page(0x3000, PageType::Secrets, &[]),
                page(0x4000, PageType::Cpuid, &crate::cpuid::cpuid_page()),
                page(0x5000, PageType::Unmeasured, &[9; 16]),
            ],
            vmsas: alloc::vec![alloc::vec![0x11; 4096]],
            policy: 0x30000,
        }
    }

    const KEYS: [[u8; 32]; 4] = [[0xa0; 32], [0xa1; 32], [0xa2; 32], [0xa3; 32]];

    #[test]
    fn launch_writes_measures_and_validates_in_order() {
        let mut mem = Memory::new(0x10000);
        let mut rmp = Rmp::new(16);
        let l = launch(&plan(), &mut mem, &mut rmp, &KEYS).unwrap();
        assert_eq!(l.pages, 6);
        assert_eq!(mem.slice(0x1000, 5).unwrap(), b"code\0");
        assert!(mem.slice(0x2000, 4096).unwrap().iter().all(|&b| b == 0));
        assert_eq!(mem.slice(0x3020, 32).unwrap(), &[0xa0; 32]);
        for g in [0x1000, 0x2000, 0x3000, 0x4000, 0x5000] {
            let e = rmp.entry(g).unwrap();
            assert!(e.is_guest() && e.validated && !e.vmsa, "{g:#x}");
        }
        // A page not in the plan stays poisoned and host-owned.
        assert_eq!(
            mem.slice(0x6000, 8).unwrap(),
            &poison_word(0x6000).to_le_bytes()
        );
        assert!(!rmp.entry(0x6000).unwrap().assigned);
        // The digest is the chain computed by hand.
        let mut d = LaunchDigest::new();
        let mut normal = [0u8; 4096];
        normal[..4].copy_from_slice(b"code");
        d.add(0x1000, PageType::Normal, &normal);
        for (g, t) in [
            (0x2000, PageType::Zero),
            (0x3000, PageType::Secrets),
            (0x4000, PageType::Cpuid),
            (0x5000, PageType::Unmeasured),
        ] {
            d.add(g, t, &[0; 4096]);
        }
        d.add(INITIAL_VMSA_GPA, PageType::Vmsa, &[0x11; 4096]);
        assert_eq!(l.digest, d.value());
    }

    #[test]
    fn vmpcks_do_not_change_the_digest_but_vmsas_do() {
        let a = launch(&plan(), &mut Memory::new(0x10000), &mut Rmp::new(16), &KEYS).unwrap();
        let b = launch(
            &plan(),
            &mut Memory::new(0x10000),
            &mut Rmp::new(16),
            &[[7; 32]; 4],
        )
        .unwrap();
        assert_eq!(a.digest, b.digest);
        let mut p = plan();
        p.vmsas[0][0x100] ^= 1;
        let c = launch(&p, &mut Memory::new(0x10000), &mut Rmp::new(16), &KEYS).unwrap();
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn each_bad_plan_is_refused_by_name_and_changes_nothing() {
        type Case = (fn(&mut Plan), LaunchError);
        let cases: [Case; 7] = [
            (
                |p| p.pages[0].gpa = 0x1001,
                LaunchError::Misaligned { gpa: 0x1001 },
            ),
            (
                |p| p.pages[0].gpa = 0x10000,
                LaunchError::OutOfRange { gpa: 0x10000 },
            ),
            (
                |p| p.pages[0].gpa = 0xffff_ffff_ffff_f000,
                LaunchError::OutOfRange {
                    gpa: 0xffff_ffff_ffff_f000,
                },
            ),
            (
                |p| p.pages[0].data = alloc::vec![1; 4097],
                LaunchError::TooMuchData {
                    gpa: 0x1000,
                    len: 4097,
                },
            ),
            (
                |p| p.pages[1].gpa = 0x1000,
                LaunchError::Twice { gpa: 0x1000 },
            ),
            (
                |p| p.vmsas[0].truncate(100),
                LaunchError::VmsaSize { vcpu: 0, len: 100 },
            ),
            (
                |p| p.pages[2].page_type = PageType::Vmsa,
                LaunchError::VmsaAmongPages { gpa: 0x3000 },
            ),
        ];
        for (edit, want) in cases {
            let mut p = plan();
            edit(&mut p);
            let mut mem = Memory::new(0x10000);
            let mut rmp = Rmp::new(16);
            assert_eq!(launch(&p, &mut mem, &mut rmp, &KEYS), Err(want));
            assert_eq!(
                mem.slice(0x1000, 8).unwrap(),
                &poison_word(0x1000).to_le_bytes()
            );
            assert!(!rmp.entry(0x1000).unwrap().assigned);
        }
        let mut p = plan();
        p.vmsas.clear();
        assert_eq!(
            launch(&p, &mut Memory::new(0x10000), &mut Rmp::new(16), &KEYS),
            Err(LaunchError::NoVmsa)
        );
        // A page the guest already owns.
        let mut rmp = Rmp::new(16);
        rmp.launch_page(0x5000, false).unwrap();
        assert_eq!(
            launch(&plan(), &mut Memory::new(0x10000), &mut rmp, &KEYS),
            Err(LaunchError::Twice { gpa: 0x5000 })
        );
    }
}
