//! The operations the monitor needs from the machine (DESIGN.md, "Platforms"), typed,
//! with errors that mirror the hardware's return codes.
//!
//! Three backends implement [`Platform`]: `snp` (the kernel, real instructions and the
//! GHCB), `emulated` (the kernel as hypervisor) and [`crate::sim`] (host tests).
use crate::addr::{Gpa, PageSize, Vmpl};
use crate::memory::GuestMemory;
use svsm_abi::calling_area::SvsmRegs;

bitflags::bitflags! {
    /// RMP permissions of a lower VMPL on a page (RMPADJUST RDX bits 7:0).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Perms: u8 {
        /// Read.
        const READ = svsm_abi::rmp::PERM_READ;
        /// Write.
        const WRITE = svsm_abi::rmp::PERM_WRITE;
        /// Execute in user mode.
        const EXEC_USER = svsm_abi::rmp::PERM_EXEC_USER;
        /// Execute in supervisor mode.
        const EXEC_SUPERVISOR = svsm_abi::rmp::PERM_EXEC_SUPERVISOR;
    }
}

/// A failing RMP instruction (PVALIDATE or RMPADJUST), by its return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpError {
    /// FAIL_INPUT (1): bad address, page not assigned to the guest, bad attributes.
    FailInput,
    /// FAIL_PERMISSION (2): RMPADJUST beyond the caller's own rights.
    FailPermission,
    /// FAIL_INUSE (3): RMPADJUST of a VMSA a running vCPU is using.
    FailInUse,
    /// FAIL_SIZEMISMATCH (6): the size asked for differs from the RMP entry's.
    FailSizeMismatch,
}

impl RmpError {
    /// The instruction's return code.
    pub const fn code(self) -> u32 {
        match self {
            Self::FailInput => svsm_abi::rmp::ret::FAIL_INPUT,
            Self::FailPermission => svsm_abi::rmp::ret::FAIL_PERMISSION,
            Self::FailInUse => svsm_abi::rmp::ret::FAIL_INUSE,
            Self::FailSizeMismatch => svsm_abi::rmp::ret::FAIL_SIZEMISMATCH,
        }
    }
}

/// What PVALIDATE did when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalidateOutcome {
    /// The validated bit changed.
    Changed,
    /// The validated bit already had the value asked for (rFLAGS.CF = 1).
    Unchanged,
}

/// A page-state-change operation asked of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscOp {
    /// Assign the page to the guest (it is then private and not validated).
    Private,
    /// Make the page shared with the host.
    Shared,
}

/// One page-state-change request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscRequest {
    /// The page.
    pub gpa: Gpa,
    /// Its size.
    pub size: PageSize,
    /// The change.
    pub op: PscOp,
}

/// AP creation requests (GHCB SNP_AP_CREATION).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApOp {
    /// Create and start the vCPU.
    Create,
    /// Destroy the vCPU.
    Destroy,
}

/// A failure in talking to the host. Every variant ends in termination when the
/// monitor cannot continue safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The host answered with an error code (it refused the service).
    Refused(u64),
    /// The host's answer contradicts the request or itself (field named).
    Inconsistent(&'static str),
}

/// Why Vigil asks the host to terminate the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermReason {
    /// The host answered inconsistently.
    HostInconsistent,
    /// The host refused a service Vigil cannot do without.
    HostRefused,
    /// A guest-request answer failed authentication or checks (VMPCK0 wiped).
    GuestRequestFailed,
    /// Vigil's own memory was taken away by the host (a #VC on Vigil memory).
    VigilMemoryLost,
}

impl TermReason {
    /// The GHCB termination reason code (reason set 1, SVSM).
    pub const fn code(self) -> u64 {
        match self {
            Self::HostInconsistent => svsm_abi::ghcb::term::HOST_INCONSISTENT,
            Self::HostRefused => svsm_abi::ghcb::term::HOST_REFUSED,
            Self::GuestRequestFailed => svsm_abi::ghcb::term::GUEST_REQUEST_AUTH,
            Self::VigilMemoryLost => svsm_abi::ghcb::term::VIGIL_MEMORY_LOST,
        }
    }
}

/// The machine as the monitor sees it. Memory accesses go through [`GuestMemory`]
/// (at VMPL0's rights: Vigil can read any validated private page).
pub trait Platform: GuestMemory {
    /// PVALIDATE at VMPL0.
    fn pvalidate(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        validate: bool,
    ) -> Result<PvalidateOutcome, RmpError>;
    /// RMPADJUST at VMPL0: set `target`'s permissions on the page and its VMSA bit.
    fn rmpadjust(
        &mut self,
        gpa: Gpa,
        size: PageSize,
        target: Vmpl,
        perms: Perms,
        vmsa: bool,
    ) -> Result<(), RmpError>;
    /// Ask the host to change page states (GHCB page-state change).
    fn page_state_change(&mut self, req: &[PscRequest]) -> Result<(), HostError>;
    /// Ask the host to create or destroy a vCPU whose VMSA runs at `vmpl` (GHCB AP
    /// creation). The SVSM core protocol never needs it: CREATE_VCPU only makes the
    /// VMSA, the guest starts it with its own AP creation (#58019 6.3).
    fn ap_create(
        &mut self,
        op: ApOp,
        apic_id: u32,
        vmpl: Vmpl,
        vmsa: Gpa,
        sev_features: u64,
    ) -> Result<(), HostError>;
    /// Send one encrypted guest-request page to the security processor through the
    /// host and receive the encrypted response page.
    fn guest_request(&mut self, request: &[u8; 4096]) -> Result<[u8; 4096], HostError>;
    /// Ask the host to terminate the VM. On hardware this does not return; the sim
    /// records it and the monitor refuses every further call.
    fn terminate(&mut self, reason: TermReason);
    /// Reads the SVSM call registers (RAX, RCX, RDX, R8, R9) the lower-VMPL vCPU
    /// `apic_id` left (on SNP: from its VMSA, which only VMPL0 can read). A backend
    /// that passes registers to `Monitor::handle_request` itself need not implement it;
    /// the default refuses, and `Monitor::serve` then terminates.
    fn guest_regs(&mut self, apic_id: u32) -> Result<SvsmRegs, VcpuError> {
        Err(VcpuError::Unsupported(apic_id))
    }
    /// Writes the call's results back into that vCPU's registers (default: refused).
    fn set_guest_regs(&mut self, apic_id: u32, _regs: &SvsmRegs) -> Result<(), VcpuError> {
        Err(VcpuError::Unsupported(apic_id))
    }
    /// Switches back to the lower VMPL on vCPU `apic_id` (on SNP: the GHCB "run VMPL"
    /// request; on `emulated`: VMRUN) (default: refused).
    fn run_guest(&mut self, apic_id: u32) -> Result<(), VcpuError> {
        Err(VcpuError::Unsupported(apic_id))
    }
}

/// A vCPU register or switch operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuError {
    /// No such vCPU.
    UnknownVcpu(u32),
    /// The backend does not offer this operation (it drives `handle_request` itself).
    Unsupported(u32),
    /// The host refused to switch.
    Host(HostError),
}
