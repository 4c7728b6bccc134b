//! The invariants of DESIGN.md, checked against the simulated RMP and memory. Property
//! tests and the soak run call [`check`] after every step.
use super::vm::SimVm;
use crate::addr::{Gpa, PAGE_SIZE_4K};
use crate::pages::PageState;
use std::format;
use std::string::String;
use svsm_abi::vmsa::Vmsa;
use zerocopy::FromBytes;

/// Checks every invariant; the error names the invariant and the page.
pub fn check(vm: &SimVm) -> Result<(), String> {
    let m = &vm.m;
    let mach = m.platform();
    let rmp = &mach.rmp;
    let gv = m.guest_vmpl().get() as usize;
    let (vb, vs) = m.vigil_range();
    let (vfirst, vlast) = (vb.gfn(), (vb.0 + vs).div_ceil(PAGE_SIZE_4K));

    // Invariant 1: Vigil's memory is never accessible below VMPL0 and never shared by Vigil.
    for gfn in vfirst..vlast {
        let Some(e) = rmp.get(gfn) else { continue };
        if e.perms[1..].iter().any(|p| *p != 0) {
            return Err(format!(
                "inv1: Vigil page {gfn:#x} accessible below VMPL0: {:?}",
                e.perms
            ));
        }
        if e.vmsa {
            return Err(format!("inv6: VMSA on Vigil page {gfn:#x}"));
        }
        if !mach.vigil_lost && (!e.assigned || !e.validated) {
            return Err(format!(
                "inv1: Vigil page {gfn:#x} not private and validated"
            ));
        }
    }
    for r in &mach.vigil_psc {
        if m.pages().overlaps_vigil(r.gpa, r.size.bytes()) {
            return Err(format!(
                "inv1: Vigil asked for a page-state change of its own page {:#x}",
                r.gpa.0
            ));
        }
    }
    // Invariant 3.
    if rmp.unzeroed_grants != 0 {
        return Err(format!(
            "inv3: {} grants of unzeroed validated pages",
            rmp.unzeroed_grants
        ));
    }
    // Invariants 2 and 6, and the table against the RMP.
    for (gfn, st) in m.pages().iter() {
        let Some(e) = rmp.get(gfn) else { continue };
        if e.validations > 1 {
            return Err(format!(
                "inv2: page {gfn:#x} validated {} times",
                e.validations
            ));
        }
        if e.vmsa && st != PageState::Vmsa {
            return Err(format!(
                "inv6: page {gfn:#x} is a VMSA in the RMP but {st:?} for Vigil"
            ));
        }
        match st {
            PageState::Unvalidated => {
                if e.validated {
                    return Err(format!(
                        "inv2: page {gfn:#x} validated without Vigil's knowledge"
                    ));
                }
            }
            PageState::Validated => {
                if e.validated && e.perms[gv] != 0x0f {
                    return Err(format!(
                        "state: validated page {gfn:#x} lacks guest rights {:?}",
                        e.perms
                    ));
                }
            }
            PageState::Deposited | PageState::Vmsa => {
                if e.perms[1..].iter().any(|p| *p != 0) {
                    return Err(format!(
                        "inv1: {st:?} page {gfn:#x} accessible to the guest"
                    ));
                }
                if st == PageState::Vmsa {
                    if !e.vmsa && e.validated {
                        return Err(format!("inv6: VMSA page {gfn:#x} lacks the VMSA bit"));
                    }
                    let mut raw = [0u8; 4096];
                    mach.peek(Gpa::from_gfn(gfn), &mut raw);
                    let Ok(v) = Vmsa::read_from_bytes(&raw[..]) else {
                        return Err(format!("inv6: VMSA page {gfn:#x} unreadable"));
                    };
                    if e.validated
                        && (v.vmpl as usize != gv || !m.policy().sev_features_ok(v.sev_features))
                    {
                        return Err(format!(
                            "inv6: VMSA {gfn:#x} with VMPL {} features {:#x}",
                            v.vmpl, v.sev_features
                        ));
                    }
                }
            }
            PageState::Vigil => {}
        }
    }
    // Invariants 5 and 7.
    if m.terminated().is_some() && !m.vmpck0_wiped() {
        return Err("inv7: terminated without wiping VMPCK0".into());
    }
    if m.terminated() != mach.terminated {
        return Err("inv5: the monitor and the machine disagree on termination".into());
    }
    // Invariant 8: one record per dispatched call, plus LAUNCH, plus one per refused
    // guest access the platform reported, and the chain replays.
    let log = m.event_log();
    let mut refused = 0u64;
    let (n, head) = svsm_abi::event_log::replay(log.bytes(), |h, _| {
        if h.kind == svsm_abi::event_log::kind::ACCESS_REFUSED {
            refused += 1;
        }
    })
    .map_err(|e| format!("inv8: {e:?}"))?;
    if n != log.count() || head != log.head() {
        return Err("inv8: the log does not replay to its head".into());
    }
    if refused != m.accesses_refused() {
        return Err(format!(
            "inv8: {refused} ACCESS_REFUSED records for {} refused accesses",
            m.accesses_refused()
        ));
    }
    if n - refused != vm.dispatched + 1 {
        return Err(format!(
            "inv8: {} call records for {} calls",
            n - refused,
            vm.dispatched
        ));
    }
    Ok(())
}
