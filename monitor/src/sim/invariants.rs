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
    vigil_memory(vm)?;
    // Invariant 3.
    let rmp = &vm.m.platform().rmp;
    if rmp.unzeroed_grants != 0 {
        return Err(format!(
            "inv3: {} grants of unzeroed validated pages",
            rmp.unzeroed_grants
        ));
    }
    // The protection's invariants (P1-P3) first: they name the broken rule more
    // precisely than the table-against-RMP check below.
    super::protect_invariants::check(vm)?;
    pages_against_rmp(vm)?;
    copy_in_and_host_answers(vm)?;
    event_log(vm)
}

/// Invariant 1: Vigil's memory is never accessible below VMPL0 and never shared by Vigil.
fn vigil_memory(vm: &SimVm) -> Result<(), String> {
    let m = &vm.m;
    let mach = m.platform();
    let rmp = &mach.rmp;
    let (vb, vs) = m.vigil_range();
    let (vfirst, vlast) = (vb.gfn(), (vb.0 + vs).div_ceil(PAGE_SIZE_4K));
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
    Ok(())
}

/// Invariants 2 and 6, and Vigil's page table against the RMP.
fn pages_against_rmp(vm: &SimVm) -> Result<(), String> {
    let m = &vm.m;
    let mach = m.platform();
    let rmp = &mach.rmp;
    let gv = m.guest_vmpl().get() as usize;
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
                // After the lock, the "everything else" rule (read, write, user-execute).
                let want = if m.protection().is_locked() {
                    svsm_abi::protect_protocol::PERMS_OTHER
                } else {
                    0x0f
                };
                if e.validated && e.perms[1..=gv].iter().any(|p| *p != want) {
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
                        && e.vmsa
                        && (v.vmpl as usize != gv || v.sev_features != m.boot_sev_features())
                    {
                        return Err(format!(
                            "inv6: VMSA {gfn:#x} with VMPL {} features {:#x}",
                            v.vmpl, v.sev_features
                        ));
                    }
                }
            }
            PageState::Vigil | PageState::Locked => {}
        }
    }

    Ok(())
}

/// Invariants 4 (copy-in once) and 5 (every host answer checked).
fn copy_in_and_host_answers(vm: &SimVm) -> Result<(), String> {
    let mach = vm.m.platform();
    // Invariant 4: guest data copied in once. The machine saw every read Vigil made of
    // guest memory in each call; no bytes may have been read twice in one call.
    if let Some((gpa, len)) = mach.rereads.first() {
        return Err(format!(
            "inv4: Vigil read guest bytes {gpa:#x}+{len:#x} a second time in one call ({} such reads)",
            mach.rereads.len()
        ));
    }
    // Invariant 5: a host answer that deviated from an honest host's ends the call in
    // a clean termination or in a refusal that changed no protected state.
    for (i, c) in vm.hostile_calls.iter().enumerate() {
        let terminated = matches!(c.outcome, crate::CallOutcome::Terminated(_));
        if !terminated && (c.rax == svsm_abi::core_protocol::result::SUCCESS || c.before != c.after)
        {
            return Err(format!(
                "inv5: hostile host answer {i} ended in {:?} with RAX {:#x} and {} state",
                c.outcome,
                c.rax,
                if c.before == c.after {
                    "unchanged"
                } else {
                    "changed"
                }
            ));
        }
    }
    Ok(())
}

/// Invariant 8: one record per dispatched call, plus LAUNCH, plus one per refused
/// guest access the platform reported, and the chain replays.
fn event_log(vm: &SimVm) -> Result<(), String> {
    let m = &vm.m;
    let mach = m.platform();
    // Refused accesses are counted on the machine's side: every ACCESS_REFUSED record
    // must name, in order, a fault the machine's RMP refused and reported.
    let log = m.event_log();
    let mut refused_gpas = std::vec::Vec::new();
    let (n, head) = svsm_abi::event_log::replay(log.bytes(), |h, p| {
        if h.kind == svsm_abi::event_log::kind::ACCESS_REFUSED {
            let gpa = p.get(0..8).map_or(u64::MAX, |b| {
                let mut x = [0u8; 8];
                x.copy_from_slice(b);
                u64::from_le_bytes(x)
            });
            refused_gpas.push(gpa);
        }
    })
    .map_err(|e| format!("inv8: {e:?}"))?;
    if n != log.count() || head != log.head() {
        return Err("inv8: the log does not replay to its head".into());
    }
    let reported: std::vec::Vec<u64> = mach.reported_faults.iter().map(|f| f.1 .0).collect();
    if refused_gpas != reported {
        return Err(format!(
            "inv8: ACCESS_REFUSED records for GPAs {refused_gpas:x?}, but the machine refused and reported {reported:x?}"
        ));
    }
    let refused = refused_gpas.len() as u64;
    if n - refused != vm.dispatched + 1 {
        return Err(format!(
            "inv8: {} call records for {} calls",
            n - refused,
            vm.dispatched
        ));
    }
    Ok(())
}
