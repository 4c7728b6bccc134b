//! Vigil's reference monitor.
//!
//! Mediates the guest that runs at a lower VMPL: SVSM protocol dispatch, guest memory
//! state per 4 KiB page, vCPU/VMSA management, the policy, the event log and
//! attestation assembly. It talks to hardware only through the `Platform` trait; its
//! `sim` feature holds a software SNP machine for host tests.
//!
//! Data flows one way: guest request -> copy-in -> check -> policy -> platform -> log.
//! See docs/monitor.md for the page state machine and where each invariant of
//! DESIGN.md is enforced and tested.
#![no_std]
#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

extern crate alloc;
#[cfg(feature = "sim")]
extern crate std;

pub mod access;
pub mod addr;
pub mod event_log;
pub mod ghcb;
pub mod guest_request;
pub mod memory;
pub mod pages;
pub mod platform;
pub mod policy;
pub mod protect;
pub mod protocol;
pub mod report_sign;
pub mod soft_psp;
pub mod vcpu;

#[cfg(feature = "sim")]
pub mod sim;

use addr::{Gpa, PageSize, Vmpl};
use event_log::{Caller, EventLog};
use guest_request::Channel;
use pages::PageTable;
use platform::{Platform, TermReason};
use policy::Policy;
use svsm_abi::calling_area::SvsmRegs;
use vcpu::{Vcpu, Vcpus};

/// What the monitor is given at launch.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Guest RAM is [0, ram_size).
    pub ram_size: u64,
    /// First byte of Vigil's memory.
    pub vigil_base: Gpa,
    /// Size of Vigil's memory.
    pub vigil_size: u64,
    /// APIC ID of the boot vCPU.
    pub boot_apic_id: u32,
    /// Calling area of the boot vCPU (a guest page, validated by the launch).
    pub boot_caa: Gpa,
    /// Pages of guest RAM that the launch already validated for the guest (the boot
    /// calling area, the guest image): (address, size).
    pub prevalidated: alloc::vec::Vec<(Gpa, PageSize)>,
    /// SEV_FEATURES of the boot vCPU's VMSA (from the launch). Every VMSA the guest
    /// creates must carry exactly these (#58019 6.3).
    pub boot_sev_features: u64,
    /// VMPCK0 from the secrets page.
    pub vmpck0: [u8; 32],
    /// The policy.
    pub policy: Policy,
}

/// A launch configuration the monitor refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The guest VMPL is not 1, 2 or 3.
    GuestVmpl(u8),
    /// Vigil's memory is not page aligned or not inside RAM.
    VigilRange,
    /// The boot calling area is not a prevalidated guest page outside Vigil's memory.
    BootCallingArea,
    /// The boot vCPU's SEV_FEATURES are not allowed by the policy (invariant 6).
    BootSevFeatures(u64),
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call was handled; the registers hold the result.
    Handled,
    /// `call_pending` was not set: nothing was done.
    NotPending,
    /// The monitor asked for termination; nothing more will be handled.
    Terminated(TermReason),
    /// The call deleted the calling vCPU's own VMSA (DELETE_VCPU, #58019 6.4): the
    /// call does not return, the vCPU is not resumed.
    VcpuDeleted,
}

/// The monitor.
pub struct Monitor<P: Platform> {
    pub(crate) p: P,
    pub(crate) pages: PageTable,
    pub(crate) vcpus: Vcpus,
    pub(crate) log: EventLog,
    pub(crate) policy: Policy,
    pub(crate) channel: Channel,
    pub(crate) guest_vmpl: Vmpl,
    pub(crate) vtom: u64,
    pub(crate) terminated: Option<TermReason>,
    pub(crate) vigil_base: Gpa,
    pub(crate) vigil_size: u64,
    pub(crate) deposited: alloc::vec::Vec<(Gpa, PageSize)>,
    pub(crate) dispatched: u64,
    pub(crate) refused_accesses: u64,
    pub(crate) boot_sev_features: u64,
    /// Set by DELETE_VCPU when the caller deleted its own VMSA.
    pub(crate) caller_deleted: bool,
    /// The guest's declared and locked protection (Vigil protection protocol).
    pub(crate) protection: protect::Protection,
}

impl<P: Platform> Monitor<P> {
    /// Starts the monitor on a launched machine and logs the LAUNCH record. The
    /// platform must already hold the launch state (Vigil's memory validated at VMPL0
    /// only, the pages in `cfg.prevalidated` validated with full guest rights).
    pub fn new(platform: P, cfg: MonitorConfig) -> Result<Self, ConfigError> {
        let guest_vmpl = match Vmpl::new(cfg.policy.guest_vmpl) {
            Some(v) if v.get() >= 1 => v,
            _ => return Err(ConfigError::GuestVmpl(cfg.policy.guest_vmpl)),
        };
        let vigil_end = cfg
            .vigil_base
            .0
            .checked_add(cfg.vigil_size)
            .ok_or(ConfigError::VigilRange)?;
        if !cfg.vigil_base.is_aligned(PageSize::Size4K)
            || !cfg.vigil_size.is_multiple_of(addr::PAGE_SIZE_4K)
            || cfg.vigil_size == 0
            || vigil_end > cfg.ram_size
        {
            return Err(ConfigError::VigilRange);
        }
        let mut pages = PageTable::new(cfg.ram_size, cfg.vigil_base, cfg.vigil_size);
        for (gpa, size) in &cfg.prevalidated {
            if pages
                .check_page(*gpa, *size, pages::PageState::Unvalidated)
                .is_ok()
            {
                pages.set(*gpa, *size, pages::PageState::Validated);
            }
        }
        if !cfg.boot_caa.is_aligned(PageSize::Size4K)
            || pages
                .check_page(cfg.boot_caa, PageSize::Size4K, pages::PageState::Validated)
                .is_err()
        {
            return Err(ConfigError::BootCallingArea);
        }
        if !cfg.policy.sev_features_ok(cfg.boot_sev_features) {
            return Err(ConfigError::BootSevFeatures(cfg.boot_sev_features));
        }
        let mut vcpus = Vcpus::default();
        vcpus.add(Vcpu {
            apic_id: cfg.boot_apic_id,
            caa: cfg.boot_caa,
            vmsa: None,
        });
        let mut m = Self {
            p: platform,
            pages,
            vcpus,
            log: EventLog::new(),
            policy: cfg.policy,
            channel: Channel::new(cfg.vmpck0),
            guest_vmpl,
            vtom: 0,
            terminated: None,
            vigil_base: cfg.vigil_base,
            vigil_size: cfg.vigil_size,
            deposited: alloc::vec::Vec::new(),
            dispatched: 0,
            refused_accesses: 0,
            boot_sev_features: cfg.boot_sev_features,
            caller_deleted: false,
            protection: protect::Protection::default(),
        };
        let launch = svsm_abi::event_log::LaunchPayload {
            svsm_base: cfg.vigil_base.0,
            svsm_size: cfg.vigil_size,
            guest_vmpl: guest_vmpl.get() as u32,
            reserved: 0,
            required_sev_features: cfg.policy.required_sev_features,
        };
        m.log.append(
            svsm_abi::event_log::kind::LAUNCH,
            Caller {
                vmpl: 0,
                apic_id: cfg.boot_apic_id,
            },
            0,
            &launch,
        );
        Ok(m)
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.p
    }
    /// The platform, mutably (tests script the host through it).
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.p
    }
    /// The page table.
    pub fn pages(&self) -> &PageTable {
        &self.pages
    }
    /// The vCPUs.
    pub fn vcpus(&self) -> &Vcpus {
        &self.vcpus
    }
    /// The event log.
    pub fn event_log(&self) -> &EventLog {
        &self.log
    }
    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The guest's VMPL.
    pub fn guest_vmpl(&self) -> Vmpl {
        self.guest_vmpl
    }
    /// Vigil's memory: (base, size).
    pub fn vigil_range(&self) -> (Gpa, u64) {
        (self.vigil_base, self.vigil_size)
    }
    /// Calls that reached the dispatcher (each appends exactly one log record).
    pub fn calls_dispatched(&self) -> u64 {
        self.dispatched
    }
    /// SEV_FEATURES every guest VMSA must carry (the boot vCPU's).
    pub fn boot_sev_features(&self) -> u64 {
        self.boot_sev_features
    }
    /// The protection the guest declared and locked.
    pub fn protection(&self) -> &protect::Protection {
        &self.protection
    }
    /// Why the monitor terminated, if it did.
    pub fn terminated(&self) -> Option<TermReason> {
        self.terminated
    }
    /// Whether VMPCK0 has been wiped.
    pub fn vmpck0_wiped(&self) -> bool {
        self.channel.is_wiped() && self.channel.key_is_zero()
    }

    /// Asks for termination: wipes VMPCK0 (invariant 7) and refuses all further calls.
    pub(crate) fn fatal(&mut self, reason: TermReason) -> CallOutcome {
        log::error!("vigil: terminating: {reason:?}");
        self.channel.wipe();
        self.terminated = Some(reason);
        self.p.terminate(reason);
        CallOutcome::Terminated(reason)
    }

    /// Vigil took a fault on its own memory (the host took a page away): terminate.
    /// The kernel's #VC handler calls this; the sim calls it when the host touched
    /// Vigil's memory.
    pub fn vigil_fault(&mut self) -> CallOutcome {
        self.fatal(TermReason::VigilMemoryLost)
    }

    /// Handles a request from the vCPU `apic_id` (the calling-area handshake, #58019
    /// section 5): `call_pending` must be 1 (0: no call, nothing done; any other value:
    /// INVALID_FORMAT), the call is dispatched with its results in `regs`, and only then
    /// is `call_pending` cleared in the calling area the call came through. The caller
    /// must make `regs` visible to the guest before resuming it.
    pub fn handle_request(&mut self, apic_id: u32, regs: &mut SvsmRegs) -> CallOutcome {
        let (o, caa) = self.dispatch_pending(apic_id, regs);
        if let Some(caa) = caa {
            self.clear_pending(caa);
        }
        o
    }

    /// Checks `call_pending` and dispatches; returns the outcome and the calling area
    /// whose `call_pending` is to be cleared once the results are in place.
    fn dispatch_pending(
        &mut self,
        apic_id: u32,
        regs: &mut SvsmRegs,
    ) -> (CallOutcome, Option<Gpa>) {
        if let Some(r) = self.terminated {
            return (CallOutcome::Terminated(r), None);
        }
        let Some(caa) = self.vcpus.by_apic(apic_id).map(|v| v.caa) else {
            return (CallOutcome::NotPending, None);
        };
        let mut pending = [0u8; 1];
        if self.p.read(caa, &mut pending).is_err() || pending[0] == 0 {
            return (CallOutcome::NotPending, None);
        }
        if pending[0] != 1 {
            // Section 5: CALL_PENDING holds 0 or 1; anything else is a malformed
            // calling area. Refused (and logged) without running a handler.
            self.dispatched += 1;
            let caller = self.caller(apic_id);
            protocol::refuse_call(
                self,
                caller,
                regs,
                svsm_abi::core_protocol::result::ERR_INVALID_FORMAT,
            );
            return (CallOutcome::Handled, Some(caa));
        }
        (self.handle_call(apic_id, regs), Some(caa))
    }

    /// Clears `call_pending` after the call. A failed write (the host took the page)
    /// leaves it set, and the guest, which checks it after the call (Linux
    /// `svsm_issue_call`, edk2 `SvsmMsrProtocol`), stops.
    fn clear_pending(&mut self, caa: Gpa) {
        let _ = self.p.write(caa, &[0]);
    }

    fn caller(&self, apic_id: u32) -> Caller {
        Caller {
            vmpl: self.guest_vmpl.get(),
            apic_id,
        }
    }

    /// Serves one entry of vCPU `apic_id` into Vigil: reads its call registers, handles
    /// the request, writes the results back, then clears `call_pending` (results before
    /// the flag, section 5) and switches back to the guest. A vCPU Vigil cannot read or
    /// resume ends the VM; a vCPU that deleted itself is not resumed.
    pub fn serve(&mut self, apic_id: u32) -> CallOutcome {
        if let Some(r) = self.terminated {
            return CallOutcome::Terminated(r);
        }
        let Ok(mut regs) = self.p.guest_regs(apic_id) else {
            return self.fatal(TermReason::HostInconsistent);
        };
        let (o, caa) = self.dispatch_pending(apic_id, &mut regs);
        if let CallOutcome::Terminated(_) = o {
            return o;
        }
        if o == CallOutcome::Handled && self.p.set_guest_regs(apic_id, &regs).is_err() {
            return self.fatal(TermReason::HostInconsistent);
        }
        if let Some(caa) = caa {
            self.clear_pending(caa);
        }
        if o == CallOutcome::VcpuDeleted {
            return o;
        }
        if self.p.run_guest(apic_id).is_err() {
            return self.fatal(TermReason::HostRefused);
        }
        o
    }

    /// A VMPL0 report over `report_data` for Vigil itself (no guest call behind it): the
    /// boot's check that VMPCK0 and the security processor's path work before the
    /// guest runs. It goes through the monitor's one VMPCK0 channel, so the sequence
    /// numbers the security processor expects stay in step with the guest's later
    /// attestation requests (a second channel would start again at 1 and be refused as
    /// a replay). Attack: the host relays the messages; any answer that does not open,
    /// carries another sequence number, another REPORT_DATA or another VMPL ends the VM
    /// with VMPCK0 wiped, as for a guest's request.
    pub fn boot_report(
        &mut self,
        report_data: &[u8; 64],
    ) -> Result<[u8; svsm_abi::guest_request::REPORT_SIZE], TermReason> {
        if let Some(r) = self.terminated {
            return Err(r);
        }
        protocol::attest::request_report(self, report_data).inspect_err(|&reason| {
            self.fatal(reason);
        })
    }

    /// Dispatches one call (without the calling-area handshake).
    pub fn handle_call(&mut self, apic_id: u32, regs: &mut SvsmRegs) -> CallOutcome {
        if let Some(r) = self.terminated {
            return CallOutcome::Terminated(r);
        }
        let caller = self.caller(apic_id);
        self.dispatched += 1;
        self.caller_deleted = false;
        protocol::dispatch(self, caller, regs)
    }
}
