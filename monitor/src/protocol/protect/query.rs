//! QUERY: the guest reads the protection's state (RCX bit 0 locked, bits 15:8 ranges
//! declared; RDX text pages; R8 read-only pages). Logged as PROTECT_QUERY.
use super::super::Ret;
use crate::event_log::Caller;
use crate::platform::Platform;
use crate::Monitor;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, QueryPayload};
use svsm_abi::protect_protocol::{query, range_kind};

pub(super) fn query<P: Platform>(m: &mut Monitor<P>, caller: Caller, regs: &mut SvsmRegs) -> Ret {
    let p = &m.protection;
    let count = (p.ranges.len() as u64) & query::RANGES_MASK;
    let rcx = u64::from(p.locked) | (count << query::RANGES_SHIFT);
    let payload = QueryPayload {
        rcx_in: regs.rcx,
        rcx_out: rcx,
    };
    regs.rdx = p.pages_of(range_kind::TEXT);
    regs.r8 = p.pages_of(range_kind::RODATA);
    regs.rcx = rcx;
    m.log
        .append(kind::PROTECT_QUERY, caller, result::SUCCESS, &payload);
    Ret::Code(result::SUCCESS)
}
