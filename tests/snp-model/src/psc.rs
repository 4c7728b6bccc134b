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

/// Entries a PSC descriptor holds (GHCB spec; KVM `VMGEXIT_PSC_MAX_COUNT`).
pub const PSC_MAX_ENTRIES: usize = 253;
/// Size of the descriptor: an 8-byte header and 253 entries (the GHCB shared buffer).
pub const PSC_BUFFER_LEN: usize = 8 + 8 * PSC_MAX_ENTRIES;
/// KVM `VMGEXIT_PSC_ERROR_GENERIC`.
pub const PSC_ERROR_GENERIC: u64 = 0x100 << 32;
/// KVM `VMGEXIT_PSC_ERROR_INVALID_HDR`.
pub const PSC_ERROR_INVALID_HDR: u64 = (1 << 32) | 1;
/// KVM `VMGEXIT_PSC_ERROR_INVALID_ENTRY`.
pub const PSC_ERROR_INVALID_ENTRY: u64 = (1 << 32) | 2;

fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn entry(b: &[u8], i: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[8 + 8 * i..16 + 8 * i]);
    u64::from_le_bytes(x)
}

/// Process a PSC descriptor (header: CUR_ENTRY u16, END_ENTRY u16, reserved u32;
/// entries: bits 11:0 CUR_PAGE, 51:12 GFN, 55:52 operation, 56 2 MiB) the way KVM's
/// `snp_begin_psc`/`__snp_complete_one_psc` loop does, and return SW_EXITINFO2.
///
/// The descriptor is the host's copy (taken once: the guest can change the buffer while
/// the host works, so KVM indexes only with values it checked). Processed entries get
/// CUR_PAGE = their page count and CUR_ENTRY moves past them; the first bad entry stops
/// the walk with CUR_ENTRY pointing at it.
pub fn descriptor(mem: &mut Memory, rmp: &mut Rmp, buf: &mut [u8; PSC_BUFFER_LEN]) -> u64 {
    let start = usize::from(rd16(buf, 0));
    let end = usize::from(rd16(buf, 2));
    // END_ENTRY indexes the entry array: 253 or more would read past the buffer.
    if end >= PSC_MAX_ENTRIES {
        return PSC_ERROR_INVALID_HDR;
    }
    let mut idx = start;
    while idx <= end {
        let e = entry(buf, idx);
        let huge = e & (1 << 56) != 0;
        let total = if huge { 512 } else { 1 };
        let cur = e & 0xfff;
        let gfn = (e >> 12) & ((1 << 40) - 1);
        if cur > total || !gfn.is_multiple_of(total) {
            return PSC_ERROR_INVALID_ENTRY;
        }
        let left = total - cur;
        if left != 0 {
            let op = match (e >> 52) & 0xf {
                1 => Op::Private,
                2 => Op::Shared,
                _ => return PSC_ERROR_INVALID_ENTRY,
            };
            if convert(mem, rmp, (gfn + cur) * PAGE_SIZE, left, op).is_err() {
                return PSC_ERROR_GENERIC;
            }
            let done = (e & !0xfff) | total;
            buf[8 + 8 * idx..16 + 8 * idx].copy_from_slice(&done.to_le_bytes());
        }
        idx += 1;
        buf[0..2].copy_from_slice(&(idx as u16).to_le_bytes());
    }
    0
}

#[cfg(test)]
mod descriptor_tests {
    use super::*;

    fn desc(entries: &[u64], cur: u16, end: u16) -> [u8; PSC_BUFFER_LEN] {
        let mut b = [0u8; PSC_BUFFER_LEN];
        b[0..2].copy_from_slice(&cur.to_le_bytes());
        b[2..4].copy_from_slice(&end.to_le_bytes());
        for (i, e) in entries.iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&e.to_le_bytes());
        }
        b
    }

    fn e(gfn: u64, op: u64, huge: bool) -> u64 {
        (gfn << 12) | (op << 52) | if huge { 1 << 56 } else { 0 }
    }

    fn setup() -> (Memory, Rmp) {
        (Memory::new(0x80_0000), Rmp::new(0x800))
    }

    #[test]
    fn processes_all_entries_and_marks_them_done() {
        let (mut m, mut r) = setup();
        let mut b = desc(&[e(1, 1, false), e(0x200, 1, true), e(1, 2, false)], 0, 2);
        assert_eq!(descriptor(&mut m, &mut r, &mut b), 0);
        assert!(!r.entry(0x1000).unwrap().assigned, "private then shared");
        assert!(r.entry(0x20_0000).unwrap().assigned);
        assert!(r.entry(0x3f_f000).unwrap().assigned);
        assert_eq!(rd16(&b, 0), 3);
        assert_eq!(entry(&b, 1) & 0xfff, 512);
    }

    #[test]
    fn resumes_a_partly_done_2m_entry_at_cur_page() {
        let (mut m, mut r) = setup();
        let mut b = desc(&[e(0x200, 1, true) | 256], 0, 0);
        assert_eq!(descriptor(&mut m, &mut r, &mut b), 0);
        assert!(!r.entry(0x20_0000 + 255 * 4096).unwrap().assigned);
        assert!(r.entry(0x20_0000 + 256 * 4096).unwrap().assigned);
    }

    #[test]
    fn bad_header_entries_and_ranges_get_kvm_codes() {
        let (mut m, mut r) = setup();
        let mut b = desc(&[e(1, 1, false)], 0, 253);
        assert_eq!(descriptor(&mut m, &mut r, &mut b), PSC_ERROR_INVALID_HDR);
        // Unaligned 2 MiB GFN, CUR_PAGE beyond the page count, operation 3.
        for bad in [e(0x201, 1, true), e(1, 1, false) | 2, e(1, 3, false)] {
            let mut b = desc(&[e(2, 1, false), bad], 0, 1);
            assert_eq!(descriptor(&mut m, &mut r, &mut b), PSC_ERROR_INVALID_ENTRY);
            assert_eq!(rd16(&b, 0), 1, "CUR_ENTRY stops at the bad entry");
        }
        let mut b = desc(&[e(0x900, 1, false)], 0, 0);
        assert_eq!(descriptor(&mut m, &mut r, &mut b), PSC_ERROR_GENERIC);
        // CUR_ENTRY past END_ENTRY: nothing to do.
        let mut b = desc(&[e(3, 1, false)], 1, 0);
        assert_eq!(descriptor(&mut m, &mut r, &mut b), 0);
        assert!(!r.entry(0x3000).unwrap().assigned);
    }
}
