//! RMPADJUST (APM vol. 3, "RMPADJUST"; APM vol. 2 §15.36.7 "Virtual Machine Privilege
//! Levels").
//!
//! Operands: RAX = virtual address (translated by the model to [`Request::gpa`]),
//! RCX = page size (0 = 4 KiB, 1 = 2 MiB), RDX = attributes: bits 7:0 the TARGET VMPL,
//! bits 15:8 the target's permission mask, bit 16 VMSA, bits 63:17 reserved. (The
//! target VMPL is in the low byte: Linux `snp_set_vmsa` passes `attrs = 1` "so use
//! VMPL1", and edk2's `SevSnpRmpAdjust` does the same with "a target VMPL level of 1".)
//! Result: EAX = a return code (the PVALIDATE codes, [`crate::pvalidate::ret`]).

use crate::access::npf;
use crate::pvalidate::ret;
use crate::rmp::{PageSize, Perms, Rmp, PAGE_SIZE_2M, VMPLS};

/// RDX bits 7:0.
pub const RDX_TARGET_VMPL_MASK: u64 = 0xff;
/// RDX bits 15:8.
pub const RDX_PERMS_SHIFT: u32 = 8;
/// RDX bit 16.
pub const RDX_VMSA: u64 = 1 << 16;
/// RDX bits 63:17.
pub const RDX_RESERVED: u64 = !((1 << 17) - 1);

/// The RDX value of an RMPADJUST (for tests and the model's own guest programs).
pub fn rdx(target_vmpl: u8, perms: Perms, vmsa: bool) -> u64 {
    u64::from(target_vmpl)
        | (u64::from(perms.0) << RDX_PERMS_SHIFT)
        | if vmsa { RDX_VMSA } else { 0 }
}

/// What the instruction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Completed with this EAX.
    Done {
        /// EAX.
        eax: u32,
    },
    /// #GP(0) to the guest (CPL != 0).
    GeneralProtection,
    /// Nested page fault with the RMP bit: the page is not the guest's.
    NestedPageFault {
        /// EXITINFO1.
        error_code: u64,
        /// EXITINFO2.
        gpa: u64,
    },
}

/// One RMPADJUST after translation: the same operands as PVALIDATE's (RAX translated to
/// a GPA, RCX, RDX, the running VMPL and CPL).
pub use crate::pvalidate::Request;

fn done(eax: u32) -> Outcome {
    Outcome::Done { eax }
}

/// Execute one RMPADJUST against `rmp`.
pub fn rmpadjust(rmp: &mut Rmp, r: Request) -> Outcome {
    // APM vol. 3 RMPADJUST, exceptions: #GP(0) if CPL is not 0.
    if r.cpl != 0 {
        return Outcome::GeneralProtection;
    }
    let Some(size) = PageSize::from_rcx(r.rcx & 0xffff_ffff) else {
        return done(ret::FAIL_INPUT);
    };
    let target = (r.rdx & RDX_TARGET_VMPL_MASK) as u8;
    let perms = Perms(((r.rdx >> RDX_PERMS_SHIFT) & 0xff) as u8);
    let vmsa = r.rdx & RDX_VMSA != 0;
    // Reserved RDX bits, reserved mask bits and a VMPL above 3 are FAIL_INPUT.
    // Attack: a caller hiding bits in reserved fields must not get any effect.
    if r.rdx & RDX_RESERVED != 0 || perms.reserved_bits() || target >= VMPLS {
        return done(ret::FAIL_INPUT);
    }
    if size == PageSize::Size2M && !r.gpa.is_multiple_of(PAGE_SIZE_2M) {
        return done(ret::FAIL_INPUT);
    }
    // The target must be less privileged, i.e. numerically greater (APM §15.36.7):
    // nobody changes their own or a more privileged level's permissions. (A caller VMPL
    // above 3 cannot run; it is refused rather than trusted.)
    if target <= r.vmpl || r.vmpl >= VMPLS {
        return done(ret::FAIL_PERMISSION);
    }
    let gpa = r.gpa & !(size.bytes() - 1);
    let entry = match rmp.entry(gpa) {
        Ok(e) if e.is_guest() && !e.immutable => *e,
        _ => {
            return Outcome::NestedPageFault {
                error_code: npf::PRESENT | npf::RMP | npf::FINAL | npf::ENC,
                gpa,
            }
        }
    };
    if entry.size != size {
        return done(ret::FAIL_SIZEMISMATCH);
    }
    // The page must be validated: RMPADJUST adjusts a page the guest accepted. The model
    // answers FAIL_INPUT (its reading; docs/snp-model.md lists it as unverified).
    if !entry.validated {
        return done(ret::FAIL_INPUT);
    }
    // A VMPL can grant only what it has itself (APM §15.36.7).
    let own = entry.perms[usize::from(r.vmpl)];
    if !own.covers(perms) {
        return done(ret::FAIL_PERMISSION);
    }
    // The VMSA bit changes only at VMPL0 and is ignored otherwise (APM vol. 3; restated
    // by edk2's SevSnpRmpAdjust comment and Microsoft's __rmpadjust: "Ignored when the
    // current VMPL != 0"). A VMSA is one 4 KiB page: the model refuses VMSA on 2 MiB.
    let set_vmsa = r.vmpl == 0;
    if set_vmsa && vmsa && size == PageSize::Size2M {
        return done(ret::FAIL_INPUT);
    }
    // Clearing the VMSA bit of a running VMSA would let the guest write the state the
    // CPU is using: FAIL_INUSE (APM vol. 3 RMPADJUST return codes).
    if set_vmsa && !vmsa && entry.vmsa && entry.in_use {
        return done(ret::FAIL_INUSE);
    }
    let Ok(range) = rmp.range_mut(gpa, size) else {
        return done(ret::FAIL_INPUT);
    };
    if range
        .iter()
        .any(|e| !e.is_guest() || e.size != size || !e.validated)
    {
        return done(ret::FAIL_SIZEMISMATCH);
    }
    for e in range.iter_mut() {
        e.perms[usize::from(target)] = perms;
        if set_vmsa {
            e.vmsa = vmsa;
        }
    }
    done(ret::SUCCESS)
}

/// RMPQUERY's answer (APM vol. 3, "RMPQUERY"): RDX bits 7:0 the target VMPL's
/// permission mask, bit 16 the VMSA bit; RCX the page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Completed.
    Done {
        /// EAX.
        eax: u32,
        /// RDX out (0 on failure).
        rdx: u64,
        /// RCX out (0 on failure).
        rcx: u64,
    },
    /// #GP(0).
    GeneralProtection,
    /// Nested page fault with the RMP bit.
    NestedPageFault {
        /// EXITINFO1.
        error_code: u64,
        /// EXITINFO2.
        gpa: u64,
    },
}

/// Execute one RMPQUERY for `gpa`, RDX bits 7:0 = the VMPL asked about.
pub fn rmpquery(rmp: &Rmp, gpa: u64, rdx_in: u64, vmpl: u8, cpl: u8) -> QueryOutcome {
    if cpl != 0 {
        return QueryOutcome::GeneralProtection;
    }
    let target = rdx_in & RDX_TARGET_VMPL_MASK;
    let fail = |eax| QueryOutcome::Done {
        eax,
        rdx: 0,
        rcx: 0,
    };
    if rdx_in & !RDX_TARGET_VMPL_MASK != 0 || target >= u64::from(VMPLS) {
        return fail(ret::FAIL_INPUT);
    }
    // A VMPL may read its own and less privileged levels' permissions, never a more
    // privileged level's (the model's reading of APM vol. 3 RMPQUERY).
    if target < u64::from(vmpl) {
        return fail(ret::FAIL_PERMISSION);
    }
    let gpa = gpa & !0xfff;
    match rmp.entry(gpa) {
        Ok(e) if e.is_guest() => QueryOutcome::Done {
            eax: ret::SUCCESS,
            rdx: u64::from(e.perms[target as usize].0) | if e.vmsa { RDX_VMSA } else { 0 },
            rcx: match e.size {
                PageSize::Size4K => 0,
                PageSize::Size2M => 1,
            },
        },
        _ => QueryOutcome::NestedPageFault {
            error_code: npf::PRESENT | npf::RMP | npf::FINAL | npf::ENC,
            gpa,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pvalidate::{pvalidate, Request as PvRequest};

    const RW: Perms = Perms(Perms::READ | Perms::WRITE);

    fn rmp() -> Rmp {
        let mut r = Rmp::new(2048);
        for gpa in [0x1000, 0x2000] {
            r.make_private(gpa, PageSize::Size4K).unwrap();
            let q = PvRequest {
                gpa,
                rcx: 0,
                rdx: 1,
                vmpl: 0,
                cpl: 0,
            };
            pvalidate(&mut r, q);
        }
        r.make_private(0x3000, PageSize::Size4K).unwrap(); // assigned, not validated
        r
    }

    fn req(gpa: u64, rdx: u64, vmpl: u8) -> Request {
        Request {
            gpa,
            rcx: 0,
            rdx,
            vmpl,
            cpl: 0,
        }
    }

    fn eax(o: Outcome) -> u32 {
        match o {
            Outcome::Done { eax } => eax,
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn vmpl0_grants_vmpl2_and_the_rmp_records_it() {
        let mut r = rmp();
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(2, RW, false), 0))), 0);
        assert_eq!(r.entry(0x1000).unwrap().perms[2], RW);
        assert_eq!(r.entry(0x1000).unwrap().perms[1], Perms::NONE);
    }

    #[test]
    fn target_not_numerically_greater_is_fail_permission() {
        let mut r = rmp();
        rmpadjust(&mut r, req(0x1000, rdx(1, Perms::ALL, false), 0));
        // VMPL1 adjusting VMPL1 (itself) and VMPL0.
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(1, RW, false), 1))), 2);
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(0, RW, false), 1))), 2);
        // VMPL0 adjusting VMPL0; a caller "VMPL 5" (no such level).
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(0, RW, false), 0))), 2);
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(3, RW, false), 5))), 2);
        assert_eq!(r.entry(0x1000).unwrap().perms[1], Perms::ALL);
    }

    #[test]
    fn cannot_grant_more_than_the_caller_has() {
        let mut r = rmp();
        rmpadjust(&mut r, req(0x1000, rdx(1, Perms(Perms::READ), false), 0));
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(2, RW, false), 1))), 2);
        assert_eq!(r.entry(0x1000).unwrap().perms[2], Perms::NONE);
        let read = Perms(Perms::READ);
        assert_eq!(
            eax(rmpadjust(&mut r, req(0x1000, rdx(2, read, false), 1))),
            0
        );
        assert_eq!(r.entry(0x1000).unwrap().perms[2], read);
    }

    #[test]
    fn vmsa_bit_set_at_vmpl0_ignored_elsewhere() {
        let mut r = rmp();
        assert_eq!(
            eax(rmpadjust(&mut r, req(0x1000, rdx(1, Perms::NONE, true), 0))),
            0
        );
        assert!(r.entry(0x1000).unwrap().vmsa);
        assert_eq!(
            eax(rmpadjust(
                &mut r,
                req(0x1000, rdx(1, Perms::NONE, false), 0)
            )),
            0
        );
        assert!(!r.entry(0x1000).unwrap().vmsa);
        rmpadjust(&mut r, req(0x2000, rdx(1, Perms::ALL, false), 0));
        assert_eq!(
            eax(rmpadjust(&mut r, req(0x2000, rdx(2, Perms::NONE, true), 1))),
            0
        );
        assert!(
            !r.entry(0x2000).unwrap().vmsa,
            "VMSA from VMPL1 must be ignored"
        );
    }

    #[test]
    fn clearing_the_vmsa_bit_of_a_running_vmsa_is_fail_inuse() {
        let mut r = rmp();
        rmpadjust(&mut r, req(0x1000, rdx(1, Perms::NONE, true), 0));
        assert!(r.set_in_use(0x1000, true).unwrap());
        assert!(!r.set_in_use(0x2000, true).unwrap(), "not a VMSA");
        assert_eq!(
            eax(rmpadjust(
                &mut r,
                req(0x1000, rdx(1, Perms::NONE, false), 0)
            )),
            3
        );
        assert!(r.entry(0x1000).unwrap().vmsa);
        // Keeping the bit while changing permissions is allowed.
        assert_eq!(
            eax(rmpadjust(&mut r, req(0x1000, rdx(1, Perms::NONE, true), 0))),
            0
        );
        r.set_in_use(0x1000, false).unwrap();
        assert_eq!(
            eax(rmpadjust(
                &mut r,
                req(0x1000, rdx(1, Perms::NONE, false), 0)
            )),
            0
        );
        assert!(!r.entry(0x1000).unwrap().vmsa);
    }

    #[test]
    fn bad_input_size_mismatch_unvalidated_and_npf() {
        let mut r = rmp();
        let before = r.clone();
        // Reserved RDX bit, reserved permission bit, VMPL 4, RCX 2.
        assert_eq!(
            eax(rmpadjust(
                &mut r,
                req(0x1000, rdx(1, RW, false) | 1 << 17, 0)
            )),
            1
        );
        assert_eq!(
            eax(rmpadjust(
                &mut r,
                req(0x1000, rdx(1, Perms(0x10), false), 0)
            )),
            1
        );
        assert_eq!(eax(rmpadjust(&mut r, req(0x1000, rdx(4, RW, false), 0))), 1);
        let mut q = req(0x1000, rdx(1, RW, false), 0);
        q.rcx = 2;
        assert_eq!(eax(rmpadjust(&mut r, q)), 1);
        // 2 MiB request on a 4 KiB entry.
        let mut q = req(0, rdx(1, RW, false), 0);
        r.make_private(0, PageSize::Size4K).unwrap();
        q.rcx = 1;
        assert_eq!(eax(rmpadjust(&mut r, q)), 6);
        // Not validated.
        assert_eq!(eax(rmpadjust(&mut r, req(0x3000, rdx(1, RW, false), 0))), 1);
        // Host page.
        assert!(matches!(
            rmpadjust(&mut r, req(0x4000, rdx(1, RW, false), 0)),
            Outcome::NestedPageFault { gpa: 0x4000, .. }
        ));
        for g in [0x1000, 0x2000, 0x3000, 0x4000] {
            assert_eq!(r.entry(g), before.entry(g), "{g:#x} changed");
        }
        let mut q = req(0x1000, rdx(1, RW, false), 0);
        q.cpl = 3;
        assert_eq!(rmpadjust(&mut r, q), Outcome::GeneralProtection);
    }

    #[test]
    fn vmsa_on_2m_is_refused_and_2m_grant_covers_512_pages() {
        let mut r = Rmp::new(1024);
        r.make_private(PAGE_SIZE_2M, PageSize::Size2M).unwrap();
        let q = PvRequest {
            gpa: PAGE_SIZE_2M,
            rcx: 1,
            rdx: 1,
            vmpl: 0,
            cpl: 0,
        };
        pvalidate(&mut r, q);
        let mut a = req(PAGE_SIZE_2M, rdx(1, Perms::NONE, true), 0);
        a.rcx = 1;
        assert_eq!(eax(rmpadjust(&mut r, a)), 1);
        a.rdx = rdx(3, RW, false);
        assert_eq!(eax(rmpadjust(&mut r, a)), 0);
        assert_eq!(r.entry(2 * PAGE_SIZE_2M - 1).unwrap().perms[3], RW);
    }

    #[test]
    fn rmpquery_reports_perms_vmsa_and_size() {
        let mut r = rmp();
        rmpadjust(&mut r, req(0x1000, rdx(2, RW, true), 0));
        assert_eq!(
            rmpquery(&r, 0x1000, 2, 0, 0),
            QueryOutcome::Done {
                eax: 0,
                rdx: u64::from(RW.0) | RDX_VMSA,
                rcx: 0
            }
        );
        assert_eq!(
            rmpquery(&r, 0x1000, 0, 2, 0),
            QueryOutcome::Done {
                eax: 2,
                rdx: 0,
                rcx: 0
            }
        );
        assert_eq!(
            rmpquery(&r, 0x1000, 4, 0, 0),
            QueryOutcome::Done {
                eax: 1,
                rdx: 0,
                rcx: 0
            }
        );
        assert!(matches!(
            rmpquery(&r, 0x9000, 1, 0, 0),
            QueryOutcome::NestedPageFault { gpa: 0x9000, .. }
        ));
        assert_eq!(
            rmpquery(&r, 0x1000, 1, 0, 3),
            QueryOutcome::GeneralProtection
        );
    }
}
