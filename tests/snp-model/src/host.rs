//! The model's host: its state per vCPU and VMPL, its devices, and what it can see of
//! guest memory. The GHCB answers live in `msr_protocol`, `ghcb_exits` and `psc`.
//!
//! The host follows Linux KVM (`arch/x86/kvm/svm/sev.c`), with the VMPL parts from the
//! GHCB spec #56421 v2.03+ (run-VMPL, MULTI_VMPL, the AP-creation VMPL field) and the
//! "planes" KVM branch for SVSMs as a second opinion (per-VMPL SEV features).

use alloc::vec::Vec;

use crate::memory::{poison_word, Memory};
use crate::rmp::{Rmp, PAGE_SIZE, VMPLS};

/// The host's devices, reached only through the GHCB (IOIO and MMIO exits).
pub trait Devices {
    /// IN of `size` bytes (1, 2 or 4) from `port`.
    fn io_in(&mut self, port: u16, size: u8) -> u32;
    /// OUT of `size` bytes to `port`.
    fn io_out(&mut self, port: u16, size: u8, value: u32);
    /// MMIO read of `out.len()` bytes at `gpa`.
    fn mmio_read(&mut self, gpa: u64, out: &mut [u8]);
    /// MMIO write at `gpa`.
    fn mmio_write(&mut self, gpa: u64, data: &[u8]);
}

/// What the host does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resume the same vCPU at the same VMPL.
    Resume,
    /// Run this vCPU at another VMPL; the requester's answer is already in place (its
    /// GHCB MSR value or its GHCB page).
    RunVmpl(u8),
    /// Hold the vCPU until a SIPI (AP reset hold).
    Halt,
    /// The guest asked to terminate (GHCB spec "Termination Request"; KVM exits to the
    /// VMM with KVM_SYSTEM_EVENT_SEV_TERM).
    Terminate {
        /// Reason code set.
        set: u8,
        /// Reason code.
        code: u8,
    },
    /// KVM's handler returned an error (`-EINVAL`/`-EIO`): KVM_RUN fails and the VMM
    /// stops the VM. The guest gets no answer.
    Fatal(Fault),
}

/// Why the host stopped the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A GHCB-page exit with a GHCB GPA of 0 (KVM: "GHCB gpa is not set").
    GhcbNotSet,
    /// SNP: the GHCB GPA differs from the registered one (KVM `ghcb_gpa_is_registered`).
    GhcbNotRegistered {
        /// The GPA in the MSR.
        gpa: u64,
    },
    /// The GHCB or a buffer the host must read is outside memory or private (the host
    /// reads only shared pages).
    GuestMemory {
        /// The GPA.
        gpa: u64,
    },
    /// The unsupported-event exit (KVM returns -EINVAL).
    UnsupportedEvent,
    /// A GHCB protocol version the host does not speak (KVM terminates).
    GhcbVersion {
        /// The version.
        version: u16,
    },
}

/// Host settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// SEV features of each VMPL's VMSAs (KVM planes: `vmsa_features` per plane); AP
    /// creation must name exactly these.
    pub vmsa_features: [u64; 4],
    /// Hypervisor features (GHCB spec "Hypervisor Feature Support").
    pub hv_features: u64,
}

/// Hypervisor feature bits (GHCB spec #56421, "SNP Hypervisor Feature Support").
pub mod hv_features {
    /// SEV-SNP.
    pub const SNP: u64 = 1 << 0;
    /// SNP AP creation.
    pub const AP_CREATION: u64 = 1 << 1;
    /// Restricted injection.
    pub const RESTRICTED_INJECTION: u64 = 1 << 2;
    /// Restricted injection timer.
    pub const RESTRICTED_INJECTION_TIMER: u64 = 1 << 3;
    /// APIC ID list.
    pub const APIC_ID_LIST: u64 = 1 << 4;
    /// Multiple VMPLs (run-VMPL, VMPL requests).
    pub const MULTI_VMPL: u64 = 1 << 5;
}

impl Default for Profile {
    /// KVM's SNP set (`GHCB_HV_FT_SUPPORTED` = SNP | AP_CREATION) plus MULTI_VMPL, as
    /// a host that runs an SVSM must offer; SEV features = SNPActive for every VMPL.
    fn default() -> Self {
        Profile {
            vmsa_features: [1; 4],
            hv_features: hv_features::SNP | hv_features::AP_CREATION | hv_features::MULTI_VMPL,
        }
    }
}

/// A VMSA the host knows for one (vCPU, VMPL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmsaRef {
    /// The launch VMSA of this vCPU.
    Launch,
    /// A VMSA page the guest named by AP creation.
    Gpa(u64),
}

/// Per-vCPU host state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vcpu {
    /// The GHCB GPA registered per VMPL (MSR protocol REG_GPA).
    pub ghcb: [Option<u64>; 4],
    /// The VMSA per VMPL.
    pub vmsa: [Option<VmsaRef>; 4],
    /// AP creation marked the vCPU to (re)load its VMSA.
    pub waiting_for_reset: bool,
}

/// The host.
#[derive(Clone, Debug)]
pub struct Host {
    /// Settings.
    pub profile: Profile,
    /// vCPUs by APIC ID (= index).
    pub vcpus: Vec<Vcpu>,
    /// Writes the host made to private pages (dropped: they land in host memory, not in
    /// the guest's private page).
    pub dropped_writes: u64,
}

impl Host {
    /// A host with `launch_vmsas` vCPUs started from the launch (each runs VMPL0 from
    /// its launch VMSA) and `vcpus` in all.
    pub fn new(profile: Profile, vcpus: u32, launch_vmsas: u32) -> Host {
        let mut v = alloc::vec![Vcpu::default(); vcpus as usize];
        for c in v.iter_mut().take(launch_vmsas as usize) {
            c.vmsa[0] = Some(VmsaRef::Launch);
        }
        Host {
            profile,
            vcpus: v,
            dropped_writes: 0,
        }
    }

    /// The vCPU state, if the APIC ID exists.
    pub fn vcpu(&self, id: u32) -> Option<&Vcpu> {
        self.vcpus.get(id as usize)
    }

    pub(crate) fn vcpu_mut(&mut self, id: u32) -> Option<&mut Vcpu> {
        self.vcpus.get_mut(id as usize)
    }

    /// Whether `vmpl` of vCPU `id` has a VMSA the host can run.
    pub fn has_vmsa(&self, id: u32, vmpl: u64) -> bool {
        vmpl < u64::from(VMPLS)
            && self
                .vcpu(id)
                .is_some_and(|c| c.vmsa[vmpl as usize].is_some())
    }

    /// Write `data` at `gpa` as the host does (KVM `kvm_write_guest`): shared pages get
    /// the bytes; private pages do not (the host's write never reaches them).
    pub fn write_guest(
        &mut self,
        mem: &mut Memory,
        rmp: &Rmp,
        gpa: u64,
        data: &[u8],
    ) -> Result<(), Fault> {
        let end = gpa
            .checked_add(data.len() as u64)
            .filter(|e| *e <= mem.size())
            .ok_or(Fault::GuestMemory { gpa })?;
        let mut a = gpa;
        while a < end {
            let next = ((a / PAGE_SIZE) + 1) * PAGE_SIZE;
            let stop = next.min(end);
            let src = &data[(a - gpa) as usize..(stop - gpa) as usize];
            if rmp.entry(a).map_or(true, |e| e.assigned) {
                self.dropped_writes += 1;
            } else {
                mem.write(a, src)
                    .map_err(|_| Fault::GuestMemory { gpa: a })?;
            }
            a = stop;
        }
        Ok(())
    }
}

/// Read `out.len()` bytes at `gpa` as the host sees them (KVM `kvm_read_guest`): shared
/// pages as they are, private pages as ciphertext (the model shows the poison pattern).
pub fn read_guest(mem: &Memory, rmp: &Rmp, gpa: u64, out: &mut [u8]) -> Result<(), Fault> {
    let end = gpa
        .checked_add(out.len() as u64)
        .filter(|e| *e <= mem.size())
        .ok_or(Fault::GuestMemory { gpa })?;
    mem.read(gpa, out).map_err(|_| Fault::GuestMemory { gpa })?;
    for (i, b) in out.iter_mut().enumerate() {
        let a = gpa + i as u64;
        if a < end && rmp.entry(a).map_or(true, |e| e.assigned) {
            *b = poison_word(a & !7).to_le_bytes()[(a & 7) as usize];
        }
    }
    Ok(())
}

/// Whether every page of `[gpa, gpa+len)` is shared (host-owned) and inside memory.
pub fn is_shared(mem: &Memory, rmp: &Rmp, gpa: u64, len: u64) -> bool {
    let Some(end) = gpa.checked_add(len).filter(|e| *e <= mem.size()) else {
        return false;
    };
    let mut a = gpa & !(PAGE_SIZE - 1);
    while a < end {
        if rmp.entry(a).map_or(true, |e| e.assigned) {
            return false;
        }
        a += PAGE_SIZE;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmp::PageSize;

    #[test]
    fn host_sees_ciphertext_of_private_pages_and_cannot_write_them() {
        let mut mem = Memory::new(0x3000);
        let mut rmp = Rmp::new(3);
        mem.write(0x1000, b"secret").unwrap();
        rmp.make_private(0x1000, PageSize::Size4K).unwrap();
        mem.write(0x2000, b"public").unwrap();
        let mut b = [0u8; 6];
        read_guest(&mem, &rmp, 0x2000, &mut b).unwrap();
        assert_eq!(&b, b"public");
        read_guest(&mem, &rmp, 0x1000, &mut b).unwrap();
        assert_ne!(&b, b"secret");
        assert_eq!(&b, &poison_word(0x1000).to_le_bytes()[..6]);
        let mut h = Host::new(Profile::default(), 1, 1);
        h.write_guest(&mut mem, &rmp, 0x0ffc, &[7; 8]).unwrap();
        assert_eq!(mem.slice(0x0ffc, 4).unwrap(), &[7; 4]);
        assert_eq!(mem.slice(0x1000, 6).unwrap(), b"secret");
        assert_eq!(h.dropped_writes, 1);
        assert_eq!(
            read_guest(&mem, &rmp, 0x2ffc, &mut b),
            Err(Fault::GuestMemory { gpa: 0x2ffc })
        );
        assert!(is_shared(&mem, &rmp, 0x2000, 0x1000));
        assert!(!is_shared(&mem, &rmp, 0x0800, 0x1000));
        assert!(!is_shared(&mem, &rmp, u64::MAX, 2));
    }

    #[test]
    fn launch_vmsas_make_vmpl0_runnable() {
        let h = Host::new(Profile::default(), 2, 1);
        assert!(h.has_vmsa(0, 0));
        assert!(!h.has_vmsa(1, 0));
        assert!(!h.has_vmsa(0, 2));
        assert!(!h.has_vmsa(0, 4));
        assert!(!h.has_vmsa(5, 0));
    }
}
