//! The Vigil protection protocol (docs/protocols.md, "Vigil protection protocol"): the
//! guest kernel declares its text and read-only data, locks them, and queries the
//! state. Once locked, every request to change the protection (DECLARE, LOCK, UNLOCK)
//! is refused with INVALID_REQUEST (#58019 section 5: a request invalid in the current
//! state) and logged as PROTECT_REFUSED; nothing lifts it until the VM resets.
mod declare;
mod lock;
mod query;

use super::Ret;
use crate::event_log::Caller;
use crate::platform::Platform;
use crate::Monitor;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, ProtectRefusedPayload};
use svsm_abi::protect_protocol::call;

pub(crate) fn handle<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    c: u32,
    regs: &mut SvsmRegs,
) -> Option<Ret> {
    let locked = m.protection.locked;
    Some(match c {
        // Attack: a guest kernel compromised after boot widens a range, declares a
        // new one over its data, locks again with other text, or asks to unlock. The
        // protection is a one-way door: each is refused by name and logged.
        call::DECLARE | call::LOCK if locked => refuse(m, caller, c, regs),
        call::UNLOCK => refuse(m, caller, c, regs),
        call::DECLARE => declare::declare(m, caller, regs),
        call::LOCK => lock::lock(m, caller),
        call::QUERY => query::query(m, caller, regs),
        _ => return None,
    })
}

/// Refuses a request the protection's state forbids: one PROTECT_REFUSED record with
/// the call and its arguments, INVALID_REQUEST, nothing changed.
fn refuse<P: Platform>(m: &mut Monitor<P>, caller: Caller, c: u32, regs: &SvsmRegs) -> Ret {
    let payload = ProtectRefusedPayload {
        call: c,
        locked: u32::from(m.protection.locked),
        rcx: regs.rcx,
        rdx: regs.rdx,
        r8: regs.r8,
    };
    m.log.append(
        kind::PROTECT_REFUSED,
        caller,
        result::ERR_INVALID_REQUEST,
        &payload,
    );
    Ret::Code(result::ERR_INVALID_REQUEST)
}
