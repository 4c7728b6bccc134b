//! Protocol dispatch: RAX = `protocol << 32 | call` selects the handler.
//!
//! Every call ends in exactly one event-log record: the handler logs its typed record,
//! and a call refused here (unknown protocol or call) is logged as a CALL record with
//! the raw registers.
pub mod attest;
pub mod core;
pub mod protect;

use crate::event_log::Caller;
use crate::pages::RangeError;
use crate::platform::{Platform, TermReason};
use crate::{CallOutcome, Monitor};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{result, SVSM_ATTEST_PROTOCOL, SVSM_CORE_PROTOCOL};
use svsm_abi::protect_protocol::{VERSION, VIGIL_PROTECT_PROTOCOL};

/// What a handler produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ret {
    /// A result code for RAX.
    Code(u64),
    /// The monitor must stop.
    Fatal(TermReason),
}

/// (protocol, lowest version, highest version) of every protocol implemented; what
/// QUERY_PROTOCOL answers.
pub const PROTOCOLS: [(u32, u32, u32); 3] = [
    (SVSM_CORE_PROTOCOL, 1, 1),
    (SVSM_ATTEST_PROTOCOL, 1, 1),
    (VIGIL_PROTECT_PROTOCOL, VERSION, VERSION),
];

pub(crate) fn range_to_code(e: RangeError) -> u64 {
    match e {
        RangeError::OutOfRange | RangeError::VigilMemory | RangeError::WrongState(_) => {
            result::ERR_INVALID_ADDRESS
        }
    }
}

pub(crate) fn dispatch<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
) -> CallOutcome {
    let ret = match (regs.protocol(), regs.call()) {
        (SVSM_CORE_PROTOCOL, c) => core::handle(m, caller, c, regs),
        (SVSM_ATTEST_PROTOCOL, c) => attest::handle(m, caller, c, regs),
        (VIGIL_PROTECT_PROTOCOL, c) => protect::handle(m, caller, c, regs),
        _ => None,
    };
    let ret = match ret {
        Some(r) => r,
        None => {
            let code = if PROTOCOLS.iter().any(|p| p.0 == regs.protocol()) {
                result::ERR_UNSUPPORTED_CALL
            } else {
                result::ERR_UNSUPPORTED_PROTOCOL
            };
            refuse_call(m, caller, regs, code);
            Ret::Code(code)
        }
    };
    match ret {
        Ret::Code(_) if m.caller_deleted => CallOutcome::VcpuDeleted,
        Ret::Code(c) => {
            regs.rax = c;
            CallOutcome::Handled
        }
        Ret::Fatal(r) => m.fatal(r),
    }
}

/// Refuses a call before any handler ran: logs a CALL record with the registers as the
/// guest left them and puts `code` in RAX.
pub(crate) fn refuse_call<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    regs: &mut SvsmRegs,
    code: u64,
) {
    let payload = svsm_abi::event_log::CallPayload {
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        r8: regs.r8,
        r9: regs.r9,
    };
    m.log
        .append(svsm_abi::event_log::kind::CALL, caller, code, &payload);
    regs.rax = code;
}
