//! The protection protocol's invariants (issue 12), checked against the simulated RMP,
//! not against the monitor's bookkeeping:
//! - P1: locked text and read-only data are never writable by any VMPL but 0, and
//!   never lost: every page of a locked range stays `Locked` in Vigil's table, and in
//!   the RMP it stays validated with exactly its range's rights unless the host took it
//!   with RMPUPDATE (availability, which the host always has);
//! - P2: after the lock, no page outside the text is supervisor-executable by any VMPL
//!   below 0;
//! - P3: nothing is `Locked` before the lock.
use super::vm::SimVm;
use crate::pages::PageState;
use crate::platform::Perms;
use std::format;
use std::string::String;
use svsm_abi::protect_protocol::{perms_of, range_kind};

/// Checks P1 to P3; the error names the invariant and the page.
pub fn check(vm: &SimVm) -> Result<(), String> {
    let m = &vm.m;
    let p = m.protection();
    let rmp = &m.platform().rmp;
    let gv = m.guest_vmpl().get() as usize;
    if !p.is_locked() {
        return match m.pages().iter().find(|(_, s)| *s == PageState::Locked) {
            Some((gfn, _)) => Err(format!("P3: page {gfn:#x} Locked before any lock")),
            None => Ok(()),
        };
    }
    let sx = Perms::EXEC_SUPERVISOR.bits();
    let w = Perms::WRITE.bits();
    for (gfn, st) in m.pages().iter() {
        let Some(e) = rmp.get(gfn) else { continue };
        let kind = p.kind_of(gfn);
        if kind != Some(range_kind::TEXT) && e.perms[1..].iter().any(|x| x & sx != 0) {
            return Err(format!(
                "P2: page {gfn:#x} outside the text is supervisor-executable below VMPL0: {:?}",
                e.perms
            ));
        }
        let Some(kind) = kind else { continue };
        if st != PageState::Locked {
            return Err(format!(
                "P1: locked page {gfn:#x} lost: {st:?} in Vigil's table"
            ));
        }
        if e.perms[1..].iter().any(|x| x & w != 0) {
            return Err(format!(
                "P1: locked page {gfn:#x} writable below VMPL0: {:?}",
                e.perms
            ));
        }
        if !e.validated || !e.assigned {
            if rmp.host_updated.contains(&gfn) {
                continue;
            }
            return Err(format!(
                "P1: locked page {gfn:#x} lost: not validated in the RMP"
            ));
        }
        let want = perms_of(kind).unwrap_or(0);
        if e.perms[1..=gv].iter().any(|x| *x != want) {
            return Err(format!(
                "P1: locked page {gfn:#x} has rights {:?}, its range says {want:#x}",
                e.perms
            ));
        }
    }
    Ok(())
}
