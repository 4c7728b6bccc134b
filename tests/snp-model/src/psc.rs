//! Page state changes: the host turning guest pages private or shared (GHCB spec #56421
//! §4.1.6 "Page State Change"), by MSR or by the GHCB page's PSC descriptor, checked and
//! answered as KVM's `snp_begin_psc` / `snp_complete_psc` do.
//!
//! Effect on the RMP (KVM with guest_memfd): to private, a shared page becomes assigned
//! to the guest and not validated (`rmp_make_private` when the gmem page is prepared);
//! to shared, a private page returns to the host (`rmp_make_shared`). A page already in
//! the requested state is left as it is (QEMU's `kvm_convert_memory` skips it). The
//! page's content is poisoned on every change of owner (it is ciphertext to the other
//! side). KVM maps private memory at 4 KiB without huge pages, and so does the model.

use crate::memory::Memory;
use crate::rmp::{PageSize, Rmp, PAGE_SIZE};

/// The requested state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Assign to the guest.
    Private,
    /// Return to the host.
    Shared,
}

/// The range is outside the guest's memory (the VMM refuses KVM_HC_MAP_GPA_RANGE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// First GPA.
    pub gpa: u64,
}

/// Convert `pages` 4 KiB pages from `gpa`. All or nothing: the range is checked first.
pub fn convert(
    mem: &mut Memory,
    rmp: &mut Rmp,
    gpa: u64,
    pages: u64,
    op: Op,
) -> Result<(), OutOfRange> {
    let end = pages
        .checked_mul(PAGE_SIZE)
        .and_then(|l| gpa.checked_add(l))
        .filter(|e| *e <= mem.size() && *e <= rmp.pages() * PAGE_SIZE)
        .ok_or(OutOfRange { gpa })?;
    let mut a = gpa;
    while a < end {
        let assigned = rmp.entry(a).map_err(|_| OutOfRange { gpa: a })?.assigned;
        let change = match op {
            Op::Private => !assigned,
            Op::Shared => assigned,
        };
        if change {
            let r = match op {
                Op::Private => rmp.make_private(a, PageSize::Size4K),
                Op::Shared => rmp.make_shared(a, PageSize::Size4K),
            };
            r.map_err(|_| OutOfRange { gpa: a })?;
            mem.poison(a, PAGE_SIZE)
                .map_err(|_| OutOfRange { gpa: a })?;
        }
        a += PAGE_SIZE;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::poison_word;

    #[test]
    fn convert_both_ways_poisons_and_keeps_validated_pages_that_stay() {
        let mut m = Memory::new(0x4000);
        let mut r = Rmp::new(4);
        m.write(0x1000, b"data").unwrap();
        convert(&mut m, &mut r, 0x1000, 2, Op::Private).unwrap();
        assert!(r.entry(0x2000).unwrap().is_guest());
        assert_eq!(
            m.slice(0x1000, 8).unwrap(),
            &poison_word(0x1000).to_le_bytes()
        );
        r.entry_mut(0x1000).unwrap().validated = true;
        m.write(0x1000, b"kept").unwrap();
        convert(&mut m, &mut r, 0x1000, 1, Op::Private).unwrap();
        assert!(r.entry(0x1000).unwrap().validated);
        assert_eq!(m.slice(0x1000, 4).unwrap(), b"kept");
        convert(&mut m, &mut r, 0x1000, 1, Op::Shared).unwrap();
        assert!(!r.entry(0x1000).unwrap().assigned);
    }

    #[test]
    fn out_of_range_changes_nothing() {
        let mut m = Memory::new(0x4000);
        let mut r = Rmp::new(4);
        assert_eq!(
            convert(&mut m, &mut r, 0x3000, 2, Op::Private),
            Err(OutOfRange { gpa: 0x3000 })
        );
        assert!(!r.entry(0x3000).unwrap().assigned);
        assert!(convert(&mut m, &mut r, 0xffff_ffff_ffff_f000, 1, Op::Private).is_err());
        assert!(convert(&mut m, &mut r, 0, u64::MAX, Op::Private).is_err());
    }
}
