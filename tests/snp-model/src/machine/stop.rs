//! Why a vCPU stopped, each with the short name the record keeps.

use crate::host::Fault;
use crate::machine::walk::WalkError;
use crate::vc::DeliveryError;

/// Why #VC could not be delivered. On hardware a fault during delivery becomes #DF and
/// then a shutdown; the model stops the vCPU and names the cause instead of guessing
/// the guest's double-fault handling (docs/snp-model.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcFailure {
    /// The vCPU is not in long mode (the model delivers only through a 64-bit IDT).
    NotLongMode,
    /// The gate, stack or privilege rule refused it (`vc::deliver`).
    Delivery(DeliveryError),
    /// The IDT, GDT, TSS or stack could not be reached through the guest's page tables.
    Walk {
        /// The linear address.
        la: u64,
        /// Why.
        error: WalkError,
    },
    /// The IDT, GDT, TSS or stack page is not accessible to the VMPL under the RMP.
    Rmp {
        /// The GPA.
        gpa: u64,
    },
    /// The IDT is too short to hold the #VC gate (#GP on hardware).
    IdtLimit,
    /// The gate's code segment selector is null, points into the LDT or past the GDT
    /// limit.
    BadSelector {
        /// The selector.
        selector: u16,
    },
}

/// Why [`super::Machine::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The guest asked to terminate (GHCB MSR protocol or the termination exit).
    Terminated {
        /// Reason code set.
        set: u8,
        /// Reason code.
        code: u8,
    },
    /// HLT (an automatic exit on SEV-ES/SNP; KVM halts the vCPU until an interrupt).
    Halted,
    /// AP reset hold (the vCPU waits for a SIPI).
    ResetHold,
    /// SHUTDOWN (a triple fault).
    TripleFault,
    /// The host stopped the VM (KVM fails KVM_RUN).
    HostFault(Fault),
    /// A nested page fault the host cannot fix (a VMPL permission fault, a page outside
    /// memory): on KVM it would refault for ever.
    RmpFault {
        /// GPA.
        gpa: u64,
        /// EXITINFO1 with the SNP bits.
        error_code: u64,
    },
    /// #VC could not be delivered.
    VcDelivery(VcFailure),
    /// The guest's page tables could not be walked for an instruction's operand.
    Walk {
        /// The linear address.
        la: u64,
        /// Why.
        error: WalkError,
    },
    /// No such vCPU.
    NoVcpu,
    /// The running VMPL of the vCPU has no VMSA (or it is outside memory).
    NoVmsa {
        /// The VMPL.
        vmpl: u8,
    },
    /// VMRUN refused the state (#VMEXIT INVALID, exit code -1).
    InvalidState,
    /// An exit the machine has no rule for.
    UnknownExit {
        /// EXITCODE.
        code: u64,
        /// EXITINFO1.
        info1: u64,
        /// EXITINFO2.
        info2: u64,
    },
}

impl Stop {
    /// The reason's name in the record (`stop vcpu=.. reason=<name> count=..`).
    pub fn reason(&self) -> &'static str {
        match self {
            Stop::Terminated { .. } => "terminated",
            Stop::Halted => "halted",
            Stop::ResetHold => "ap-reset-hold",
            Stop::TripleFault => "triple-fault",
            Stop::HostFault(_) => "host-fault",
            Stop::RmpFault { .. } => "rmp-fault",
            Stop::VcDelivery(_) => "vc-delivery-failed",
            Stop::Walk { .. } => "page-walk-failed",
            Stop::NoVcpu => "no-vcpu",
            Stop::NoVmsa { .. } => "no-vmsa",
            Stop::InvalidState => "vmrun-invalid-state",
            Stop::UnknownExit { .. } => "unknown-exit",
        }
    }
}
