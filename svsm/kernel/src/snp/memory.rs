//! Vigil's own memory on SNP: the part of the Vigil region the launch left unvalidated
//! is made private and validated, then Vigil's page tables (C-bit on every private
//! mapping, the GHCB page shared) replace the bootstrap map and the heap starts.
//!
//! Layout of the free part `[page_up(image end), lowest parameter page)` of the region
//! (docs/kernel.md, "The SNP boot"): its 2 MiB-aligned middle is the heap, validated as
//! 2 MiB pages; the 4 KiB pages before and after it are a frame pool for pages that
//! must be 4 KiB in the RMP (VMSAs: RMPADJUST with the VMSA bit refuses a 2 MiB page)
//! ([`split`]).
//!
//! Order per range (GHCB spec #56421 "Page State Change"; APM vol. 3 PVALIDATE):
//! 1. page-state change to private through the GHCB page (the PSC exit with a
//!    descriptor of at most 253 entries, 2 MiB entries where aligned); a partial answer
//!    is re-issued from the host's `cur_entry`, each answer checked
//!    (`monitor::ghcb::check_psc_answer`: no progress, changed entries or an error code
//!    end the boot, reason `PAGE_STATE`);
//! 2. PVALIDATE of each page through the bootstrap map (private, identity). EAX must be
//!    SUCCESS and CF clear (a page already validated was validated by someone else than
//!    this boot: refused). A 2 MiB PVALIDATE answered FAIL_SIZEMISMATCH (the host backed
//!    the range with 4 KiB RMP entries) falls back to 512 4 KiB PVALIDATEs. Failure:
//!    reason `PVALIDATE`.

use monitor::addr::{Gpa, PageSize};
use monitor::platform::{PscOp, PscRequest};

/// 2 MiB.
pub const SIZE_2M: u64 = 2 << 20;
/// The virtual page through which Vigil reaches one guest page at a time (re-pointed
/// with a private leaf and INVLPG per access; outside the identity-mapped first GiB).
pub const WINDOW_VA: u64 = 0x40_0000_0000;
#[cfg(target_os = "none")]
const PAGE: u64 = 4096;

/// The free part of the Vigil region split for its uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// 4 KiB frames below the heap.
    pub head: (u64, u64),
    /// The heap (2 MiB aligned at both ends; may be empty).
    pub heap: (u64, u64),
    /// 4 KiB frames above the heap.
    pub tail: (u64, u64),
}

/// Splits `[start, end)` (page aligned) into 4 KiB head, 2 MiB-aligned heap, 4 KiB tail.
pub fn split(start: u64, end: u64) -> Split {
    let hs = start.next_multiple_of(SIZE_2M).min(end);
    let he = (end / SIZE_2M * SIZE_2M).max(hs);
    Split {
        head: (start, hs),
        heap: (hs, he),
        tail: (he, end),
    }
}

/// The page-state-change requests that make `[start, end)` private: 2 MiB entries for
/// the 2 MiB-aligned chunks, 4 KiB entries elsewhere, at most `max` per call to `f`.
pub fn private_requests(
    start: u64,
    end: u64,
    max: usize,
    mut f: impl FnMut(&[PscRequest]) -> Result<(), u64>,
) -> Result<(), u64> {
    let mut buf = [PscRequest {
        gpa: Gpa(0),
        size: PageSize::Size4K,
        op: PscOp::Private,
    }; svsm_abi::ghcb::PSC_MAX_ENTRIES];
    let max = max.clamp(1, buf.len());
    let mut n = 0;
    let mut a = start;
    while a < end {
        let size = if a.is_multiple_of(SIZE_2M) && a + SIZE_2M <= end {
            PageSize::Size2M
        } else {
            PageSize::Size4K
        };
        buf[n] = PscRequest {
            gpa: Gpa(a),
            size,
            op: PscOp::Private,
        };
        n += 1;
        a += size.bytes();
        if n == max {
            f(&buf[..n])?;
            n = 0;
        }
    }
    if n > 0 {
        f(&buf[..n])?;
    }
    Ok(())
}

/// The 4 KiB frames of the free part (head and tail of [`split`]), handed out once each,
/// never returned: VMSA pages and other pages whose RMP entry must be 4 KiB.
#[cfg(target_os = "none")]
pub mod frames {
    use spin::Mutex;

    static FRAMES: Mutex<[(u64, u64); 2]> = Mutex::new([(0, 0); 2]);

    /// Hands the two ranges to the pool (validated private 4 KiB pages).
    pub fn init(head: (u64, u64), tail: (u64, u64)) {
        *FRAMES.lock() = [head, tail];
    }

    /// One zeroed frame, or None when the pool is empty.
    pub fn alloc() -> Option<u64> {
        let mut f = FRAMES.lock();
        let r = f.iter_mut().find(|r| r.0 < r.1)?;
        let a = r.0;
        r.0 += 4096;
        // SAFETY: a validated private page of the pool, identity-mapped read+write by
        // Vigil's tables, handed out once.
        unsafe { core::ptr::write_bytes(a as *mut u8, 0, 4096) };
        Some(a)
    }
}

/// The bare-metal steps.
#[cfg(target_os = "none")]
pub mod make {
    use monitor::addr::PageSize;
    use monitor::platform::PscRequest;
    use svsm_abi::ghcb::{term, PSC_MAX_ENTRIES};
    use svsm_abi::rmp::ret;

    use super::{private_requests, PAGE, SIZE_2M};
    use crate::cpu::instr::pvalidate;
    use crate::snp::fail;

    /// Sends one page-state change (`snp::platform::psc`); ends the boot on failure.
    pub fn psc(req: &[PscRequest]) {
        if let Err(e) = crate::snp::platform::psc(req) {
            fail(
                term::PAGE_STATE,
                format_args!("page-state change from {:#x}: {e:?}", req[0].gpa.0),
            );
        }
    }

    /// PVALIDATE one page of Vigil's own memory, identity-mapped private.
    fn validate_one(gpa: u64, size: PageSize) {
        let big = size == PageSize::Size2M;
        // SAFETY: `gpa` is a page of the Vigil region outside the image and the
        // parameter pages, just made private; nothing references it yet.
        let out = unsafe { pvalidate(gpa, big, true) };
        if big && out.ret == ret::FAIL_SIZEMISMATCH {
            let mut a = gpa;
            while a < gpa + SIZE_2M {
                validate_one(a, PageSize::Size4K);
                a += PAGE;
            }
            return;
        }
        if out.ret != ret::SUCCESS || out.unchanged {
            fail(
                term::PVALIDATE,
                format_args!(
                    "PVALIDATE {gpa:#x} ({}): EAX {:#x}, CF {}",
                    if big { "2 MiB" } else { "4 KiB" },
                    out.ret,
                    u8::from(out.unchanged)
                ),
            );
        }
    }

    /// Makes `[start, end)` private (PSC) and validated (PVALIDATE), 2 MiB where
    /// aligned. Returns the count of 2 MiB and 4 KiB requests made.
    pub fn validate_range(start: u64, end: u64) -> (usize, usize) {
        let mut counts = (0, 0);
        let _ = private_requests(start, end, PSC_MAX_ENTRIES, |reqs| {
            psc(reqs);
            for r in reqs {
                validate_one(r.gpa.0, r.size);
                if r.size == PageSize::Size2M {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            }
            Ok(())
        });
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn split_puts_the_2m_aligned_middle_in_the_heap() {
        let s = split(0x18d000, 0x7fa000);
        assert_eq!(s.head, (0x18d000, 0x200000));
        assert_eq!(s.heap, (0x200000, 0x600000));
        assert_eq!(s.tail, (0x600000, 0x7fa000));
        // No 2 MiB inside: everything is head, the heap empty.
        let s = split(0x201000, 0x300000);
        assert_eq!(s.head, (0x201000, 0x300000));
        assert_eq!(s.heap.0, s.heap.1);
        assert_eq!(s.tail, (0x300000, 0x300000));
    }

    #[test]
    fn requests_use_2m_entries_only_where_aligned_and_respect_the_limit() {
        let mut calls: Vec<Vec<PscRequest>> = Vec::new();
        private_requests(0x1fe000, 0x601000, 3, |r| {
            calls.push(r.to_vec());
            Ok(())
        })
        .unwrap();
        let all: Vec<_> = calls.iter().flatten().map(|r| (r.gpa.0, r.size)).collect();
        assert_eq!(
            all,
            [
                (0x1fe000, PageSize::Size4K),
                (0x1ff000, PageSize::Size4K),
                (0x200000, PageSize::Size2M),
                (0x400000, PageSize::Size2M),
                (0x600000, PageSize::Size4K),
            ]
        );
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);
        assert!(calls.iter().flatten().all(|r| r.op == PscOp::Private));
        // A refusal stops the sequence and is returned.
        let mut n = 0;
        assert_eq!(
            private_requests(0, 0x10000, 2, |_| {
                n += 1;
                Err(7)
            }),
            Err(7)
        );
        assert_eq!(n, 1);
    }
}
