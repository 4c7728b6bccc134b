//! SVSM core protocol (0), every call of spec #58019 section 6.
//!
//! Each handler follows the same order: copy the guest's arguments in once, check them
//! against the page table (bounds, alignment, Vigil's memory, page state), apply the
//! policy, act through the platform, log one record. Attack reasoning sits next to the
//! checks that answer it; the spec section next to each rule. Error classes follow
//! section 5: a misaligned address or a malformed structure is INVALID_PARAMETER, an
//! address outside what the guest owns (or in use by a calling area or VMSA) is
//! INVALID_ADDRESS, a failing RMP instruction is 0x8000_1000 plus its return code.
mod lists;
mod mem;
mod pvalidate;
mod query;
mod vcpu;

use super::Ret;
use crate::addr::{Gpa, PageSize, Vmpl};
use crate::event_log::Caller;
use crate::platform::{Perms, Platform, RmpError};
use crate::Monitor;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result};

/// Result code logged for a call that ended the VM.
pub(crate) const FATAL_RESULT: u64 = 0xffff_ffff;

pub(crate) fn handle<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    c: u32,
    regs: &mut SvsmRegs,
) -> Option<Ret> {
    Some(match c {
        call::REMAP_CA => query::remap_ca(m, caller, regs),
        call::PVALIDATE => pvalidate::pvalidate(m, caller, regs),
        call::CREATE_VCPU => vcpu::create_vcpu(m, caller, regs),
        call::DELETE_VCPU => vcpu::delete_vcpu(m, caller, regs),
        call::DEPOSIT_MEM => mem::deposit_mem(m, caller, regs),
        call::WITHDRAW_MEM => mem::withdraw_mem(m, caller, regs),
        call::QUERY_PROTOCOL => query::query_protocol(m, caller, regs),
        call::CONFIGURE_VTOM => query::configure_vtom(m, caller, regs),
        _ => return None,
    })
}

pub(crate) fn code_of(r: Ret) -> u64 {
    match r {
        Ret::Code(c) => c,
        Ret::Fatal(_) => FATAL_RESULT,
    }
}

/// A failing RMP instruction as the spec reports it: 0x8000_1000 plus its return code.
pub(crate) fn rmp_code(e: RmpError) -> u64 {
    result::ERR_PVALIDATE_BASE | e.code() as u64
}

/// Whether any 4 KiB page of [gpa, gpa+len) is a calling area in use.
pub(crate) fn holds_caa<P: Platform>(m: &Monitor<P>, gpa: Gpa, len: u64) -> bool {
    m.vcpus
        .iter()
        .any(|v| v.caa.0 >= gpa.0 && v.caa.0 < gpa.0.saturating_add(len))
}

/// Whether [gpa, gpa+len) overlaps the 8-byte head of any vCPU's calling area
/// (`call_pending`, `mem_available`, reserved: section 5). Vigil writes those bytes
/// itself after a call, and reads `call_pending` before it; a guest structure there
/// would be changed under the guest and read twice by Vigil (invariant 4). Such a
/// structure is an address conflict with a calling area: INVALID_ADDRESS.
pub(crate) fn overlaps_caa_head<P: Platform>(m: &Monitor<P>, gpa: Gpa, len: u64) -> bool {
    let end = gpa.0.saturating_add(len);
    m.vcpus.iter().any(|v| {
        let head = v
            .caa
            .0
            .saturating_add(svsm_abi::calling_area::CALLING_AREA_HEAD as u64);
        gpa.0 < head && v.caa.0 < end
    })
}

/// The VMPLs that get a guest page's rights: the guest's and every VMPL above it but
/// VMPL0, which always has them (#58019 6.2: validation grants the requesting VMPL and
/// the ones above it). Listed from the guest's VMPL upwards.
pub(crate) fn guest_vmpls<P: Platform>(m: &Monitor<P>) -> impl Iterator<Item = Vmpl> {
    (1..=m.guest_vmpl.get()).rev().filter_map(Vmpl::new)
}

/// Gives the page to the guest: RMPADJUST of all rights for every VMPL of
/// [`guest_vmpls`] (6.2, 6.4, 6.6); with `Perms::empty()`, takes it away from every
/// VMPL but VMPL0, 3 to 1 (6.2 rescind, 6.3, 6.5: "all VMPLs except VMPL0"). Stops at
/// the first failure.
fn set_guest_rights<P: Platform>(
    m: &mut Monitor<P>,
    gpa: Gpa,
    size: PageSize,
    perms: Perms,
) -> Result<(), RmpError> {
    let perms = m.protection.grant(perms);
    let targets: alloc::vec::Vec<Vmpl> = if perms.is_empty() {
        (1..=3).rev().filter_map(Vmpl::new).collect()
    } else {
        guest_vmpls(m).collect()
    };
    for t in targets {
        m.p.rmpadjust(gpa, size, t, perms, false)?;
    }
    Ok(())
}
