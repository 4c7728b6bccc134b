//! The RMP check of one guest memory access (APM vol. 2 §15.36.10, "RMP and VMPL Access
//! Checks"), as the model's nested page tables enforce it.
//!
//! Three outcomes, as on hardware:
//! - allowed;
//! - #VC with exit code 0x404 to the guest (a private access to an assigned page whose
//!   Validated bit is 0: the guest must validate before it uses memory);
//! - a nested page fault to the HOST (#VMEXIT 0x400) with the RMP bit in EXITINFO1 and
//!   the GPA in EXITINFO2: the page is not the guest's for this kind of access, or the
//!   running VMPL lacks the permission. The guest sees nothing of it; what the host does
//!   next is [`host_reaction`].

use crate::rmp::{Perms, Rmp};

/// Bits of the nested page fault error code (EXITINFO1): the x86 #PF bits and the SNP
/// bits of APM vol. 2 §15.36.10 (Linux names them PFERR_GUEST_*_BIT in kvm_host.h).
pub mod npf {
    /// The nested entry was present.
    pub const PRESENT: u64 = 1 << 0;
    /// Write access.
    pub const WRITE: u64 = 1 << 1;
    /// User (CPL3) access.
    pub const USER: u64 = 1 << 2;
    /// Instruction fetch.
    pub const FETCH: u64 = 1 << 4;
    /// The RMP check failed.
    pub const RMP: u64 = 1 << 31;
    /// The fault is on the final guest-physical address.
    pub const FINAL: u64 = 1 << 32;
    /// The fault is on a guest page-table access.
    pub const WALK: u64 = 1 << 33;
    /// The access was private (C-bit set).
    pub const ENC: u64 = 1 << 34;
    /// Page-size mismatch between the nested mapping and the RMP.
    pub const SIZEM: u64 = 1 << 35;
    /// VMPL permission violation.
    pub const VMPL: u64 = 1 << 36;
}

/// #VC exit code of an access to a private page that is not validated (APM vol. 2
/// §15.36.10; GHCB spec #56421 lists it as "#VC error code 0x404").
pub const VC_PAGE_NOT_VALIDATED: u64 = 0x404;

/// The kind of access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch at CPL3.
    UserExec,
    /// Instruction fetch at CPL0-2.
    SuperExec,
}

/// One access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Guest-physical address (without the C-bit).
    pub gpa: u64,
    /// The C-bit of the guest's mapping (private = true).
    pub private: bool,
    /// Kind.
    pub kind: Kind,
    /// Data access at CPL3 (sets the U bit of the error code).
    pub user: bool,
    /// The VMPL running.
    pub vmpl: u8,
    /// Whether the access is during the guest's page-table walk.
    pub walk: bool,
}

/// The result of the RMP check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The access proceeds.
    Allowed,
    /// #VC(0x404) to the guest.
    NotValidated,
    /// #VMEXIT(NPF) to the host.
    NestedPageFault {
        /// EXITINFO1.
        error_code: u64,
        /// EXITINFO2.
        gpa: u64,
    },
}

fn needed(kind: Kind) -> Perms {
    Perms(match kind {
        Kind::Read => Perms::READ,
        Kind::Write => Perms::WRITE,
        Kind::UserExec => Perms::USER_EXEC,
        Kind::SuperExec => Perms::SUPER_EXEC,
    })
}

fn base_code(a: &Access) -> u64 {
    let mut c = npf::PRESENT | if a.walk { npf::WALK } else { npf::FINAL };
    match a.kind {
        Kind::Write => c |= npf::WRITE,
        Kind::UserExec | Kind::SuperExec => c |= npf::FETCH,
        Kind::Read => {}
    }
    if a.user || a.kind == Kind::UserExec {
        c |= npf::USER;
    }
    c
}

/// Check `a` against `rmp`.
pub fn check(rmp: &Rmp, a: &Access) -> Outcome {
    let gpa = a.gpa & !0xfff;
    // Instruction fetches and guest page-table walks are always private in an SNP guest
    // (APM vol. 2 §15.34.5, "the C-bit is treated as 1 for instruction fetches and page
    // table accesses" of SEV-ES/SNP guests).
    let private = a.private || a.walk || matches!(a.kind, Kind::UserExec | Kind::SuperExec);
    let code = base_code(a) | if private { npf::ENC } else { 0 };
    let fault = |extra| Outcome::NestedPageFault {
        error_code: code | npf::RMP | extra,
        gpa: a.gpa,
    };
    let Ok(e) = rmp.entry(gpa) else {
        // Outside the guest's memory: no RMP entry the guest owns.
        return fault(0);
    };
    if !private {
        // A shared access must hit a host page (APM §15.36.10): a C=0 access to a
        // guest-assigned page would let the host read or plant guest data.
        return if e.assigned {
            fault(0)
        } else {
            Outcome::Allowed
        };
    }
    // A private access needs the page assigned to this guest.
    if !e.is_guest() {
        return fault(0);
    }
    if !e.validated {
        return Outcome::NotValidated;
    }
    // VMPL0 always has every permission; a lower VMPL needs the bit (APM §15.36.7).
    if !e.perms[usize::from(a.vmpl & 3)].covers(needed(a.kind)) {
        return fault(npf::VMPL);
    }
    Outcome::Allowed
}

/// What the host does with a nested page fault that has the RMP bit (KVM `svm_handle_npf`
/// -> `kvm_mmu_page_fault`, SNP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostReaction {
    /// The access's private/shared kind differs from the page's state: KVM exits to the
    /// VMM with KVM_EXIT_MEMORY_FAULT (`kvm_mmu_prepare_memory_fault_exit`, "is_private"
    /// from the error code's ENC bit), QEMU converts the page (`kvm_convert_memory`) and
    /// the guest retries: an implicit page-state change. To private, the page is then
    /// assigned but not validated, so the retry takes #VC 0x404.
    Convert {
        /// The state the VMM converts the page to.
        private: bool,
    },
    /// Nothing KVM can fix (a VMPL permission fault, another guest's page): the nested
    /// mapping is present, KVM resumes the vCPU and it faults again for ever. The model
    /// stops the vCPU and records the fault instead of spinning.
    Stuck,
}

/// The host's reaction to the nested page fault that `a` got.
pub fn host_reaction(rmp: &Rmp, a: &Access, error_code: u64) -> HostReaction {
    let private = error_code & npf::ENC != 0;
    if error_code & npf::VMPL != 0 {
        return HostReaction::Stuck;
    }
    match rmp.entry(a.gpa & !0xfff) {
        Ok(e) if e.assigned != private && (e.is_guest() || !e.assigned) => {
            HostReaction::Convert { private }
        }
        _ => HostReaction::Stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmp::PageSize;

    #[test]
    fn host_converts_on_kind_mismatch_and_is_stuck_on_permission() {
        let r = rmp();
        // Private access to a host page: convert to private.
        let a = acc(0x3000, Kind::Read, 0);
        let c = npf_code(check(&r, &a));
        assert_eq!(
            host_reaction(&r, &a, c),
            HostReaction::Convert { private: true }
        );
        // Shared access to a guest page: convert to shared.
        let mut s = acc(0x1000, Kind::Write, 0);
        s.private = false;
        let c = npf_code(check(&r, &s));
        assert_eq!(
            host_reaction(&r, &s, c),
            HostReaction::Convert { private: false }
        );
        // VMPL2 writing a page it may only read.
        let w = acc(0x1000, Kind::Write, 2);
        let c = npf_code(check(&r, &w));
        assert_eq!(host_reaction(&r, &w, c), HostReaction::Stuck);
        // Outside memory.
        let o = acc(0x10_0000, Kind::Read, 0);
        let c = npf_code(check(&r, &o));
        assert_eq!(host_reaction(&r, &o, c), HostReaction::Stuck);
    }

    fn rmp() -> Rmp {
        let mut r = Rmp::new(16);
        r.launch_page(0x1000, false).unwrap();
        r.entry_mut(0x1000).unwrap().perms[2] = Perms(Perms::READ | Perms::SUPER_EXEC);
        r.make_private(0x2000, PageSize::Size4K).unwrap();
        r
    }

    fn acc(gpa: u64, kind: Kind, vmpl: u8) -> Access {
        Access {
            gpa,
            private: true,
            kind,
            user: false,
            vmpl,
            walk: false,
        }
    }

    fn npf_code(o: Outcome) -> u64 {
        match o {
            Outcome::NestedPageFault { error_code, .. } => error_code,
            other => panic!("not an NPF: {other:?}"),
        }
    }

    #[test]
    fn vmpl0_may_do_everything_on_a_validated_page() {
        let r = rmp();
        for k in [Kind::Read, Kind::Write, Kind::UserExec, Kind::SuperExec] {
            assert_eq!(check(&r, &acc(0x1000, k, 0)), Outcome::Allowed, "{k:?}");
        }
    }

    #[test]
    fn lower_vmpl_gets_what_rmpadjust_granted_and_an_npf_otherwise() {
        let r = rmp();
        assert_eq!(check(&r, &acc(0x1008, Kind::Read, 2)), Outcome::Allowed);
        assert_eq!(
            check(&r, &acc(0x1000, Kind::SuperExec, 2)),
            Outcome::Allowed
        );
        let w = check(&r, &acc(0x1008, Kind::Write, 2));
        assert_eq!(
            w,
            Outcome::NestedPageFault {
                error_code: npf::PRESENT
                    | npf::WRITE
                    | npf::FINAL
                    | npf::ENC
                    | npf::RMP
                    | npf::VMPL,
                gpa: 0x1008
            }
        );
        let mut u = acc(0x1000, Kind::UserExec, 2);
        u.user = true;
        let c = npf_code(check(&r, &u));
        assert_ne!(c & npf::FETCH, 0);
        assert_ne!(c & npf::USER, 0);
        assert_ne!(c & npf::VMPL, 0);
        // VMPL1 has nothing on this page.
        assert_ne!(
            npf_code(check(&r, &acc(0x1000, Kind::Read, 1))) & npf::RMP,
            0
        );
    }

    #[test]
    fn unvalidated_private_page_is_vc_404() {
        let r = rmp();
        assert_eq!(
            check(&r, &acc(0x2000, Kind::Read, 0)),
            Outcome::NotValidated
        );
    }

    #[test]
    fn private_access_to_host_page_and_shared_access_to_guest_page_fault() {
        let r = rmp();
        let c = npf_code(check(&r, &acc(0x3000, Kind::Read, 0)));
        assert_eq!(c, npf::PRESENT | npf::FINAL | npf::ENC | npf::RMP);
        let mut s = acc(0x1000, Kind::Write, 0);
        s.private = false;
        let c = npf_code(check(&r, &s));
        assert_eq!(c, npf::PRESENT | npf::WRITE | npf::FINAL | npf::RMP);
        s.gpa = 0x3000;
        assert_eq!(check(&r, &s), Outcome::Allowed);
        // Outside memory.
        assert_ne!(
            npf_code(check(&r, &acc(0x10_0000, Kind::Read, 0))) & npf::RMP,
            0
        );
    }

    #[test]
    fn fetch_and_walk_are_private_even_with_c_bit_clear() {
        let r = rmp();
        let mut f = acc(0x3000, Kind::SuperExec, 0);
        f.private = false;
        let c = npf_code(check(&r, &f));
        assert_ne!(c & npf::ENC, 0);
        let mut w = acc(0x3000, Kind::Read, 0);
        w.private = false;
        w.walk = true;
        let c = npf_code(check(&r, &w));
        assert_eq!(c, npf::PRESENT | npf::WALK | npf::ENC | npf::RMP);
    }
}
