//! PVALIDATE (APM vol. 3, "PVALIDATE"; APM vol. 2 §15.36.5 "Page Validation").
//!
//! The guest's PVALIDATE reaches the model as #UD (QEMU has no SNP instructions); the
//! model decodes it, translates RAX (a guest virtual address) to a GPA with the guest's
//! page tables, and then applies [`pvalidate`] to that GPA. This module is that last step:
//! the checks and the RMP update.
//!
//! Operands: RAX = virtual address, ECX = page size (0 = 4 KiB, 1 = 2 MiB), EDX = 1 to
//! validate, 0 to rescind. Result: EAX = a return code, rFLAGS.CF = 1 when the
//! Validated bit already had the requested value (no update, EAX = 0).

use crate::access::npf;
use crate::rmp::{PageSize, Rmp, PAGE_SIZE_2M};

/// Return codes in EAX (APM vol. 3, PVALIDATE and RMPADJUST "return codes").
pub mod ret {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// An operand is invalid (size, reserved bits, misaligned 2 MiB address).
    pub const FAIL_INPUT: u32 = 1;
    /// The current VMPL may not do this.
    pub const FAIL_PERMISSION: u32 = 2;
    /// RMPADJUST would clear the VMSA bit of a VMSA a vCPU is running on.
    pub const FAIL_INUSE: u32 = 3;
    /// The requested page size differs from the RMP entry's.
    pub const FAIL_SIZEMISMATCH: u32 = 6;
}

/// What the instruction did, as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The instruction completed: EAX and rFLAGS.CF.
    Done {
        /// EAX.
        eax: u32,
        /// rFLAGS.CF.
        cf: bool,
    },
    /// #GP(0) to the guest (CPL != 0).
    GeneralProtection,
    /// A nested page fault to the host, with the RMP bit (APM §15.36.10): the page is
    /// not the guest's.
    NestedPageFault {
        /// EXITINFO1 (error code).
        error_code: u64,
        /// EXITINFO2 (GPA).
        gpa: u64,
    },
}

/// One PVALIDATE or RMPADJUST, after the model translated RAX to `gpa` (both take
/// these operands; `rmpadjust::Request` is this type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The GPA RAX translated to.
    pub gpa: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// The VMPL running.
    pub vmpl: u8,
    /// The CPL running.
    pub cpl: u8,
}

fn done(eax: u32) -> Outcome {
    Outcome::Done { eax, cf: false }
}

/// Execute one PVALIDATE against `rmp`.
pub fn pvalidate(rmp: &mut Rmp, r: Request) -> Outcome {
    // APM vol. 3 PVALIDATE, exceptions: #GP(0) if CPL is not 0.
    if r.cpl != 0 {
        return Outcome::GeneralProtection;
    }
    // Operand checks (APM vol. 3): ECX is 0 or 1 and EDX is 0 or 1, else FAIL_INPUT.
    // Attack: a guest passing size 2 or 3 must not get some other page size.
    let Some(size) = PageSize::from_rcx(r.rcx & 0xffff_ffff) else {
        return done(ret::FAIL_INPUT);
    };
    let validate = match r.rdx & 0xffff_ffff {
        0 => false,
        1 => true,
        _ => return done(ret::FAIL_INPUT),
    };
    // A 2 MiB PVALIDATE needs a 2 MiB aligned address (APM vol. 3: FAIL_INPUT).
    if size == PageSize::Size2M && !r.gpa.is_multiple_of(PAGE_SIZE_2M) {
        return done(ret::FAIL_INPUT);
    }
    // Only VMPL0 validates memory (APM §15.36.7; the SVSM spec #58019 §5 exists because
    // lower VMPLs must ask VMPL0). The model answers FAIL_PERMISSION, as Vigil's brief
    // reads the APM (see docs/snp-model.md, "where the model may differ").
    if r.vmpl != 0 {
        return done(ret::FAIL_PERMISSION);
    }
    let gpa = r.gpa & !(size.bytes() - 1);
    // The RMP entry must belong to this guest, else #NPF with the RMP bit (APM
    // §15.36.10): a host page or another guest's page is never validated by a guest.
    let entry = match rmp.entry(gpa) {
        Ok(e) if e.is_guest() && !e.immutable => *e,
        _ => return npf_rmp(gpa),
    };
    // Page size of the request vs the RMP entry (APM vol. 3: FAIL_SIZEMISMATCH), both
    // ways: 4 KiB inside a 2 MiB entry, and 2 MiB over 4 KiB entries.
    if entry.size != size {
        return done(ret::FAIL_SIZEMISMATCH);
    }
    let Ok(range) = rmp.range_mut(gpa, size) else {
        return npf_rmp(gpa);
    };
    // A 2 MiB page needs all 512 entries in one 2 MiB run of this guest.
    if range.iter().any(|e| !e.is_guest() || e.size != size) {
        return done(ret::FAIL_SIZEMISMATCH);
    }
    // No change: CF = 1, EAX = 0 (APM vol. 3 PVALIDATE, "rFLAGS.CF").
    if entry.validated == validate {
        return Outcome::Done {
            eax: ret::SUCCESS,
            cf: true,
        };
    }
    for e in range.iter_mut() {
        e.validated = validate;
    }
    done(ret::SUCCESS)
}

fn npf_rmp(gpa: u64) -> Outcome {
    Outcome::NestedPageFault {
        error_code: npf::PRESENT | npf::RMP | npf::FINAL | npf::ENC,
        gpa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmp::{RmpEntry, PAGE_SIZE};

    fn rmp() -> Rmp {
        let mut r = Rmp::new(2048);
        r.make_private(0x1000, PageSize::Size4K).unwrap();
        r.make_private(PAGE_SIZE_2M, PageSize::Size2M).unwrap();
        r
    }

    fn req(gpa: u64, rcx: u64, rdx: u64) -> Request {
        Request {
            gpa,
            rcx,
            rdx,
            vmpl: 0,
            cpl: 0,
        }
    }

    const OK: Outcome = Outcome::Done { eax: 0, cf: false };
    const UNCHANGED: Outcome = Outcome::Done { eax: 0, cf: true };

    #[test]
    fn validate_then_rescind_4k_with_cf_on_no_change() {
        let mut r = rmp();
        assert_eq!(pvalidate(&mut r, req(0x1000, 0, 1)), OK);
        assert!(r.entry(0x1000).unwrap().validated);
        assert_eq!(pvalidate(&mut r, req(0x1234, 0, 1)), UNCHANGED);
        assert_eq!(pvalidate(&mut r, req(0x1000, 0, 0)), OK);
        assert!(!r.entry(0x1000).unwrap().validated);
        assert_eq!(pvalidate(&mut r, req(0x1000, 0, 0)), UNCHANGED);
    }

    #[test]
    fn validate_2m_sets_all_512_entries() {
        let mut r = rmp();
        assert_eq!(pvalidate(&mut r, req(PAGE_SIZE_2M, 1, 1)), OK);
        assert!(r.entry(PAGE_SIZE_2M).unwrap().validated);
        assert!(r.entry(2 * PAGE_SIZE_2M - PAGE_SIZE).unwrap().validated);
        assert_eq!(pvalidate(&mut r, req(PAGE_SIZE_2M, 1, 1)), UNCHANGED);
    }

    #[test]
    fn size_mismatch_both_ways() {
        let mut r = rmp();
        // 4 KiB inside a 2 MiB entry.
        let four_in_two = req(PAGE_SIZE_2M + 0x3000, 0, 1);
        assert_eq!(
            pvalidate(&mut r, four_in_two),
            Outcome::Done {
                eax: ret::FAIL_SIZEMISMATCH,
                cf: false
            }
        );
        // 2 MiB over 4 KiB entries.
        r.make_private(0, PageSize::Size4K).unwrap();
        assert_eq!(
            pvalidate(&mut r, req(0, 1, 1)),
            Outcome::Done {
                eax: ret::FAIL_SIZEMISMATCH,
                cf: false
            }
        );
        assert!(!r.entry(0).unwrap().validated);
    }

    #[test]
    fn bad_operands_are_fail_input_and_change_nothing() {
        let mut r = rmp();
        let before = r.clone();
        let fail = Outcome::Done {
            eax: ret::FAIL_INPUT,
            cf: false,
        };
        assert_eq!(pvalidate(&mut r, req(0x1000, 2, 1)), fail);
        assert_eq!(pvalidate(&mut r, req(0x1000, 0, 2)), fail);
        assert_eq!(pvalidate(&mut r, req(PAGE_SIZE_2M + 0x1000, 1, 1)), fail);
        assert_eq!(r.entry(0x1000), before.entry(0x1000));
        assert!(!r.entry(PAGE_SIZE_2M).unwrap().validated);
    }

    #[test]
    fn lower_vmpl_gets_fail_permission_and_cpl3_gets_gp() {
        let mut r = rmp();
        let mut q = req(0x1000, 0, 1);
        q.vmpl = 2;
        assert_eq!(
            pvalidate(&mut r, q),
            Outcome::Done {
                eax: ret::FAIL_PERMISSION,
                cf: false
            }
        );
        q.vmpl = 0;
        q.cpl = 3;
        assert_eq!(pvalidate(&mut r, q), Outcome::GeneralProtection);
        assert!(!r.entry(0x1000).unwrap().validated);
    }

    #[test]
    fn host_page_or_outside_memory_is_an_rmp_npf() {
        let mut r = rmp();
        let code = npf::PRESENT | npf::RMP | npf::FINAL | npf::ENC;
        assert_eq!(
            pvalidate(&mut r, req(0x3000, 0, 1)),
            Outcome::NestedPageFault {
                error_code: code,
                gpa: 0x3000
            }
        );
        assert_eq!(
            pvalidate(&mut r, req(0x1_0000_0000, 0, 1)),
            Outcome::NestedPageFault {
                error_code: code,
                gpa: 0x1_0000_0000
            }
        );
        assert_eq!(*r.entry(0x3000).unwrap(), RmpEntry::HOST);
    }
}
