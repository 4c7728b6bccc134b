//! The simulated hypervisor: answers the GHCB protocol (page-state changes, AP
//! creation, guest requests), honestly or in one of the hostile modes tests script.
use super::psp::SimPsp;
use super::rmp::Rmp;
use crate::addr::{Gpa, PageSize};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::vec::Vec;
use svsm_abi::ghcb::{psc_op, Ghcb, PscDesc, PscEntry};
use zerocopy::{FromBytes, IntoBytes};

/// How the host behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMode {
    /// Does what it is asked, all at once.
    Honest,
    /// Refuses every request with an error code.
    RefuseAll,
    /// Processes at most this many page-state entries per exit (still honest).
    PscPartial(u16),
    /// Moves `cur_entry` backwards.
    PscBackwards,
    /// Rewrites an entry of the request (another GFN).
    PscAlterEntry,
    /// Claims a page-state change is done without changing the RMP.
    PscLie,
    /// Answers a page-state change without making progress.
    PscStall,
    /// Refuses AP creation.
    ApRefuse,
    /// Flips a byte of the security processor's response.
    GuestRequestCorrupt,
    /// Answers a guest request with the previous response (replay).
    GuestRequestReplay,
    /// Answers a guest request with success but a response page of its own making.
    GuestRequestForge,
    /// Writes random bytes over the whole GHCB answer.
    Garbage,
    /// Keeps every vCPU it starts inside VMRUN (never exits it): the VMSA stays in use.
    VcpuPinned,
}

/// Counts of host exits (VMGEXITs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Page-state-change exits.
    pub psc: u64,
    /// AP-creation exits.
    pub ap_create: u64,
    /// Guest-request exits.
    pub guest_request: u64,
    /// Run-VMPL exits (guest to Vigil and back).
    pub run_vmpl: u64,
    /// Termination requests.
    pub terminate: u64,
}

impl ExitStats {
    /// All exits.
    pub fn total(&self) -> u64 {
        self.psc + self.ap_create + self.guest_request + self.run_vmpl + self.terminate
    }
}

/// The hypervisor.
#[derive(Debug)]
pub struct Hypervisor {
    /// Current behaviour.
    pub mode: HostMode,
    /// vCPUs it runs: (APIC ID, VMSA GPA).
    pub aps: Vec<(u32, Gpa)>,
    /// The VMPL field of each AP creation it accepted (GHCB SW_EXITINFO1 19:16).
    pub ap_vmpls: Vec<u8>,
    /// Answers that deviated from an honest host's (a hostile mode changed them).
    pub deviations: u64,
    last_response: Option<[u8; 4096]>,
    rng: SmallRng,
}

impl Hypervisor {
    /// An honest hypervisor.
    pub fn new(seed: u64) -> Self {
        Self {
            mode: HostMode::Honest,
            aps: Vec::new(),
            ap_vmpls: Vec::new(),
            deviations: 0,
            last_response: None,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn garbage(&mut self, page: &mut [u8; 4096]) -> bool {
        if self.mode == HostMode::Garbage {
            self.rng.fill_bytes(page);
            self.deviations += 1;
            return true;
        }
        false
    }

    fn refuse(&mut self, page: &mut [u8; 4096]) -> bool {
        if self.mode == HostMode::RefuseAll {
            self.deviations += 1;
            // SW_EXITINFO1 = 1 (error), SW_EXITINFO2 = an error code.
            page[0x398..0x3a0].copy_from_slice(&1u64.to_le_bytes());
            page[0x3a0..0x3a8].copy_from_slice(&0x10u64.to_le_bytes());
            return true;
        }
        false
    }

    /// Answers a page-state change in `page`, updating the RMP.
    pub fn answer_psc(&mut self, page: &mut [u8; 4096], rmp: &mut Rmp) {
        if self.garbage(page) || self.refuse(page) {
            return;
        }
        let Ok(g) = Ghcb::read_from_bytes(&page[..]) else {
            return;
        };
        let Ok(mut d) = PscDesc::read_from_bytes(&g.shared_buffer) else {
            return;
        };
        let end = d.header.end_entry as usize;
        let mut cur = d.header.cur_entry as usize;
        let start = cur;
        let limit = match self.mode {
            HostMode::PscPartial(n) => cur + n.max(1) as usize,
            HostMode::PscStall => cur,
            HostMode::PscBackwards => cur + 1,
            _ => usize::MAX,
        };
        while cur <= end && cur < limit && cur < d.entries.len() {
            let e = PscEntry(d.entries[cur]);
            if self.mode != HostMode::PscLie {
                let size = if e.size_2m() {
                    PageSize::Size2M
                } else {
                    PageSize::Size4K
                };
                let gpa = Gpa::from_gfn(e.gfn());
                match e.op() {
                    psc_op::PRIVATE => {
                        rmp.rmpupdate(gpa, size, true);
                    }
                    psc_op::SHARED => {
                        rmp.rmpupdate(gpa, size, false);
                    }
                    _ => {}
                }
            }
            cur += 1;
        }
        d.header.cur_entry = cur as u16;
        if matches!(
            self.mode,
            HostMode::PscBackwards
                | HostMode::PscAlterEntry
                | HostMode::PscLie
                | HostMode::PscStall
        ) {
            self.deviations += 1;
        }
        match self.mode {
            // First answer: one entry done; on the re-issue: back before the start.
            HostMode::PscBackwards if start > 0 => d.header.cur_entry = start as u16 - 1,
            HostMode::PscAlterEntry => d.entries[0] ^= 1 << 12,
            _ => {}
        }
        page[0x800..0x800 + core::mem::size_of::<PscDesc>()].copy_from_slice(d.as_bytes());
        page[0x3a0..0x3a8].copy_from_slice(&0u64.to_le_bytes());
    }

    /// Answers an AP creation request (GHCB SNP AP Creation) as KVM does, with the
    /// hardware's rule that only a page with the RMP's VMSA bit can run.
    pub fn answer_ap(&mut self, page: &mut [u8; 4096], rmp: &mut Rmp) {
        if self.garbage(page) || self.refuse(page) {
            return;
        }
        let Ok(g) = Ghcb::read_from_bytes(&page[..]) else {
            return;
        };
        if self.mode == HostMode::ApRefuse {
            self.deviations += 1;
            page[0x398..0x3a0].copy_from_slice(&2u64.to_le_bytes());
            return;
        }
        let (apic, vmpl, request) = svsm_abi::ghcb::ap_create::decode(g.sw_exit_info_1);
        let vmsa = Gpa(g.sw_exit_info_2);
        let ok = match request {
            svsm_abi::ghcb::ap_create::CREATE => {
                let pin = self.mode == HostMode::VcpuPinned;
                let runs = rmp.get(vmsa.gfn()).is_some_and(|e| e.vmsa && e.validated);
                if runs {
                    if pin {
                        self.deviations += 1;
                        rmp.set_in_use(vmsa.gfn(), true);
                    }
                    self.aps.retain(|a| a.0 != apic);
                    self.aps.push((apic, vmsa));
                    self.ap_vmpls.push(vmpl);
                }
                runs
            }
            svsm_abi::ghcb::ap_create::DESTROY => {
                self.aps.retain(|a| a.0 != apic);
                true
            }
            _ => false,
        };
        page[0x398..0x3a0].copy_from_slice(&u64::from(!ok).to_le_bytes());
        page[0x3a0..0x3a8].copy_from_slice(&0u64.to_le_bytes());
    }

    /// Relays a guest request to the security processor and returns the response page.
    pub fn answer_guest_request(
        &mut self,
        page: &mut [u8; 4096],
        req: &[u8; 4096],
        psp: &mut SimPsp,
    ) -> [u8; 4096] {
        let mut resp = [0u8; 4096];
        if self.garbage(page) || self.refuse(page) {
            return resp;
        }
        match psp.handle(req) {
            Ok(r) => resp = r,
            Err(_) => {
                page[0x3a0..0x3a8].copy_from_slice(&0x1_0000_0000u64.to_le_bytes());
                return resp;
            }
        }
        match self.mode {
            HostMode::GuestRequestCorrupt => {
                resp[0x70] ^= 0x01;
                self.deviations += 1;
            }
            HostMode::GuestRequestReplay => {
                if let Some(old) = self.last_response {
                    resp = old;
                    self.deviations += 1;
                }
            }
            HostMode::GuestRequestForge => {
                self.rng.fill_bytes(&mut resp[0x60..]);
                self.deviations += 1;
            }
            _ => {}
        }
        self.last_response = Some(resp);
        page[0x398..0x3a0].copy_from_slice(&0u64.to_le_bytes());
        page[0x3a0..0x3a8].copy_from_slice(&0u64.to_le_bytes());
        resp
    }
}
