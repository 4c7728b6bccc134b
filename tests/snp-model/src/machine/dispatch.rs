//! One exit, dispatched by its SVM exit code (APM vol. 2 appendix C) to what SEV-SNP
//! hardware does with it: an automatic exit the host answers, a #VC to the guest for the
//! non-automatic ones (APM vol. 2 §15.35.5; the list as Linux's `vc_handle_exitcode`
//! takes them), an SNP instruction behind #UD, or a stop.

use crate::exit_codes as ec;
use crate::ghcb_exits::SecurityProcessor;
use crate::host::Devices;
use crate::machine::stop::Stop;
use crate::machine::vmsa::Vmsa;
use crate::machine::{Cpu, Exit, Machine};

/// SVM exit codes the machine handles besides those in `exit_codes` (APM vol. 2
/// appendix C).
pub mod code {
    /// Exception intercept of vector 6 (#UD): 0x40 + 6.
    pub const EXCP_UD: u64 = 0x46;
    /// Physical interrupt (the model's own; the guest resumes).
    pub const INTR: u64 = 0x60;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// SHUTDOWN (triple fault).
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMEXIT_INVALID (-1): VMRUN refused the state.
    pub const INVALID: u64 = u64::MAX;
}

/// The exits SNP turns into #VC with the exit code as error code (APM vol. 2
/// §15.35.5): the guest's #VC handler emulates them through the GHCB.
fn is_vc(code: u64) -> bool {
    matches!(
        code,
        ec::CPUID
            | ec::IOIO
            | ec::RDTSC
            | ec::RDTSCP
            | ec::RDPMC
            | ec::INVD
            | ec::WBINVD
            | ec::MONITOR
            | ec::MWAIT
            | ec::READ_DR7
            | ec::WRITE_DR7
            | ec::EXCP_AC
    )
}

impl<D: Devices, P: SecurityProcessor> Machine<D, P> {
    pub(super) fn dispatch(
        &mut self,
        cpu: &mut impl Cpu,
        vcpu: u32,
        vmpl: u8,
        v: &mut Vmsa,
        exit: Exit,
    ) -> Result<(), Stop> {
        match exit.code {
            c if is_vc(c) => self.deliver_vc(v, vmpl, c),
            ec::MSR => self.msr_exit(v, vcpu, vmpl, exit),
            ec::VMMCALL => self.vmmcall_exit(cpu, v, vcpu, vmpl),
            ec::NPF => self.nested_page_fault(cpu, v, vmpl, exit),
            code::EXCP_UD => self.invalid_opcode(cpu, v, vmpl),
            code::INTR => Ok(()),
            // HLT is an automatic exit on SEV-ES/SNP; the CPU has moved past it.
            code::HLT => {
                v.set_rip(v.rip().wrapping_add(1));
                Err(Stop::Halted)
            }
            code::SHUTDOWN => Err(Stop::TripleFault),
            code::INVALID => Err(Stop::InvalidState),
            code => Err(Stop::UnknownExit {
                code,
                info1: exit.info1,
                info2: exit.info2,
            }),
        }
    }
}
