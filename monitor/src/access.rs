//! Refused guest memory accesses: issue 5's "a nested page fault on a page the guest may
//! not touch is a mediated event (logged, and the guest gets the fault SNP would give
//! it)" and invariant 8 ("every mediated event is appended to the event log").
//!
//! Which platform reports them: on `emulated` Vigil is the hypervisor, so every guest
//! access its nested page tables refuse comes to it as a #VMEXIT(NPF); the kernel calls
//! [`Monitor::record_refused_access`] for each before it injects the #PF. On SNP
//! hardware an RMP violation by the guest VMPL is reported to the (untrusted)
//! hypervisor, never to VMPL0, so Vigil cannot see (nor log) it there; the sim models
//! SNP and does not call this either. The record kind exists for every platform; only
//! `emulated` produces it today.
//!
//! Classification is Vigil's own page state ([`crate::pages::PageTable`]) of the 4 KiB
//! page holding the address, never the platform's or the guest's word: the reason in the
//! log is what Vigil knew the page to be when it refused.
//!
//! Attack reasoning: a guest that faults in a loop makes the log grow by one 48-byte
//! record a fault, as it can with SVSM calls; the emulated kernel stops the guest after
//! 64 refused accesses, so the log (kept on Vigil's heap) stays bounded there.
use crate::addr::Gpa;
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::Platform;
use crate::Monitor;
use svsm_abi::event_log::{access as abi_access, kind, refusal, AccessRefusedPayload};

bitflags::bitflags! {
    /// What the refused access was (the record's `access` bits).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Access: u32 {
        /// A data read.
        const READ = abi_access::READ;
        /// A data write.
        const WRITE = abi_access::WRITE;
        /// An instruction fetch.
        const FETCH = abi_access::FETCH;
        /// The fault came from the CPU walking the guest's own page tables.
        const TABLE_WALK = abi_access::TABLE_WALK;
    }
}

/// Why Vigil refused an access: its page state of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Vigil's own memory (invariant 1).
    VigilMemory,
    /// Guest RAM that is not validated (or was rescinded).
    NotValidated,
    /// A vCPU's VMSA.
    Vmsa,
    /// A page given to Vigil by DEPOSIT_MEM.
    Deposited,
    /// Beyond the guest RAM Vigil manages.
    OutsideRam,
    /// Validated for the guest, but its permissions exclude this access.
    NoPermission,
}

impl Refusal {
    /// The record's `reason` code (`svsm_abi::event_log::refusal`).
    pub const fn code(self) -> u32 {
        match self {
            Self::VigilMemory => refusal::VIGIL_MEMORY,
            Self::NotValidated => refusal::NOT_VALIDATED,
            Self::Vmsa => refusal::VMSA,
            Self::Deposited => refusal::DEPOSITED,
            Self::OutsideRam => refusal::OUTSIDE_RAM,
            Self::NoPermission => refusal::NO_PERMISSION,
        }
    }
    /// A few words for a console line.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::VigilMemory => "Vigil's memory",
            Self::NotValidated => "a page not validated",
            Self::Vmsa => "a VMSA page",
            Self::Deposited => "a page deposited with Vigil",
            Self::OutsideRam => "outside guest RAM",
            Self::NoPermission => "a validated page the guest has no such right on",
        }
    }
}

/// #PF error-code bits (APM vol. 2, 8.4.2).
const PF_PRESENT: u32 = 1 << 0;
const PF_WRITE: u32 = 1 << 1;
const PF_FETCH: u32 = 1 << 4;
const PF_RMP: u32 = 1 << 31;

/// The #PF error code SNP gives a guest for an RMP violation on `access`: present,
/// W for a write, I/D for a fetch, and bit 31 (RMP). The U/S bit is left clear: the
/// monitor does not know the guest's CPL.
pub const fn rmp_fault_error_code(access: Access) -> u32 {
    let mut e = PF_PRESENT | PF_RMP;
    if access.contains(Access::WRITE) {
        e |= PF_WRITE;
    }
    if access.contains(Access::FETCH) {
        e |= PF_FETCH;
    }
    e
}

/// What [`Monitor::record_refused_access`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedAccess {
    /// Why, from Vigil's page state.
    pub reason: Refusal,
    /// The #PF error code to give the guest (also the record's `result`).
    pub error_code: u32,
    /// Whether a record was appended (false only once the monitor has terminated).
    pub logged: bool,
}

impl<P: Platform> Monitor<P> {
    /// Classifies `gpa` by Vigil's page state of the 4 KiB page holding it.
    pub fn classify_refused(&self, gpa: Gpa) -> Refusal {
        if self.pages.overlaps_vigil(gpa, 1) {
            return Refusal::VigilMemory;
        }
        match self.pages.get(gpa) {
            None => Refusal::OutsideRam,
            Some(PageState::Vigil) => Refusal::VigilMemory,
            Some(PageState::Unvalidated) => Refusal::NotValidated,
            Some(PageState::Vmsa) => Refusal::Vmsa,
            Some(PageState::Deposited) => Refusal::Deposited,
            Some(PageState::Validated | PageState::Locked) => Refusal::NoPermission,
        }
    }

    /// The platform refused vCPU `apic_id`'s `access` at `gpa`: classifies it, appends
    /// one `ACCESS_REFUSED` record (caller VMPL = the guest's, `result` = the #PF error
    /// code) and returns the reason and the error code for the fault to inject. Access
    /// bits other than those of [`Access`] are dropped; an access with no bit is a read.
    /// Once the monitor has terminated nothing more is logged (as for calls).
    pub fn record_refused_access(
        &mut self,
        apic_id: u32,
        gpa: Gpa,
        access: Access,
    ) -> RefusedAccess {
        let mut access = access & Access::all();
        if !access.intersects(Access::READ | Access::WRITE | Access::FETCH) {
            access |= Access::READ;
        }
        let reason = self.classify_refused(gpa);
        let error_code = rmp_fault_error_code(access);
        let logged = self.terminated.is_none();
        if logged {
            let payload = AccessRefusedPayload {
                gpa: gpa.0,
                apic_id,
                access: access.bits(),
                reason: reason.code(),
                reserved: 0,
            };
            self.log.append(
                kind::ACCESS_REFUSED,
                Caller {
                    vmpl: self.guest_vmpl.get(),
                    apic_id,
                },
                error_code as u64,
                &payload,
            );
            self.refused_accesses += 1;
        }
        RefusedAccess {
            reason,
            error_code,
            logged,
        }
    }

    /// Refused guest accesses logged so far (each appended exactly one record).
    pub fn accesses_refused(&self) -> u64 {
        self.refused_accesses
    }
}
