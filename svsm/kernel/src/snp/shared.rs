//! Turning a page of Vigil's into a page shared with the host (the GHCB page), in the
//! order SNP requires (#56421, "Page State Change"; APM vol. 2 15.36.7, PVALIDATE; the
//! order Linux uses in `early_set_pages_state`, written here from the specs):
//!
//! 1. PVALIDATE rescind, through the private mapping: Vigil's copy stops being valid
//!    (done first, so the host can never flip a page Vigil still treats as private);
//! 2. page-state change to shared, by the GHCB MSR protocol (the host's RMP update);
//! 3. the page's PTE loses the C-bit: the bootstrap map holds it in a 2 MiB page, which
//!    is split into 512 4 KiB PTEs first ([`split_2m`]);
//! 4. TLB flush (CR3 reload: the bootstrap entries are not global);
//! 5. the page is zeroed through its shared mapping (its old contents are ciphertext).
//!
//! Each step's failure has its own termination reason (`PVALIDATE`, `PAGE_STATE`).

use x86_64::structures::paging::PageTableFlags as Flags;

/// Present, writable (APM vol. 2 5.4.1): a table entry that points to a table.
pub const TABLE_FLAGS: u64 = Flags::PRESENT.bits() | Flags::WRITABLE.bits();
/// Bit 7 of a PDE: 2 MiB page.
pub const PS: u64 = Flags::HUGE_PAGE.bits();
/// The flags a 4 KiB entry takes over from the 2 MiB one: present, writable, user,
/// write-through, cache-disable (bits 4:0) and no-execute (bit 63).
const KEPT: u64 = Flags::PRESENT.bits()
    | Flags::WRITABLE.bits()
    | Flags::USER_ACCESSIBLE.bits()
    | Flags::WRITE_THROUGH.bits()
    | Flags::NO_CACHE.bits()
    | Flags::NO_EXECUTE.bits();
/// Bits 51:12 of an entry: the address (the C-bit, when below 52, is masked off).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a 2 MiB mapping could not be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The PDE is not present, or maps a table rather than a 2 MiB page.
    NotA2MPage {
        /// The PDE.
        pde: u64,
    },
}

/// The 512 4 KiB PTEs that map exactly what the 2 MiB PDE `pde` maps: same base, same
/// low flags (present, writable, user, PWT, PCD; PS dropped, PAT moves from bit 12 to
/// bit 7 and is not used by Vigil: refused if set), same NX and the same C-bit
/// (`c_bit_mask`, a single bit 32..=51).
pub fn split_2m(pde: u64, c_bit_mask: u64) -> Result<[u64; 512], SplitError> {
    const PAT_2M: u64 = 1 << 12;
    if pde & 1 == 0 || pde & PS == 0 || pde & PAT_2M != 0 {
        return Err(SplitError::NotA2MPage { pde });
    }
    let base = pde & ADDR_MASK & !c_bit_mask & !0x1f_ffff;
    let keep = (pde & KEPT) | (pde & c_bit_mask);
    let mut ptes = [0u64; 512];
    for (i, pte) in ptes.iter_mut().enumerate() {
        *pte = (base + (i as u64) * 4096) | keep;
    }
    Ok(ptes)
}

/// The index of the 4 KiB page `gpa` within its 2 MiB page.
pub const fn pt_index(gpa: u64) -> usize {
    ((gpa >> 12) & 0x1ff) as usize
}

/// The index of `gpa`'s PDE within its 1 GiB PD.
pub const fn pd_index(gpa: u64) -> usize {
    ((gpa >> 21) & 0x1ff) as usize
}

/// The bare-metal steps.
#[cfg(target_os = "none")]
pub mod make {
    use core::cell::UnsafeCell;

    use svsm_abi::rmp::ret;

    use super::{pd_index, pt_index, split_2m, ADDR_MASK, TABLE_FLAGS};
    use crate::cpu::instr::{pvalidate, read_cr3, write_cr3};
    use crate::snp::msr_protocol::{check_psc, exchange, psc_shared_request};

    #[repr(C, align(4096))]
    struct Table(UnsafeCell<[u64; 512]>);
    // SAFETY: written once, by `ghcb_page_shared` on the boot CPU, before it is linked
    // into the page tables; only the MMU reads it afterwards.
    unsafe impl Sync for Table {}

    /// The 4 KiB page table that replaces the 2 MiB mapping holding the GHCB page.
    static SPLIT_PT: Table = Table(UnsafeCell::new([0; 512]));

    /// What failed, with the termination reason it maps to.
    #[derive(Clone, Copy, Debug)]
    pub enum SharedError {
        /// PVALIDATE returned `ret` / left the page unchanged.
        Pvalidate(crate::cpu::instr::RmpOutcome),
        /// The host refused the page-state change.
        Psc(crate::snp::msr_protocol::MsrProtocolError),
        /// The bootstrap map does not hold the page the way the entry built it.
        Map(super::SplitError),
    }

    /// Makes the 4 KiB page at `gpa` (in the first GiB, identity-mapped by the
    /// bootstrap tables) shared with the host, in the module's five steps.
    ///
    /// # Safety
    /// `gpa` must be a page of Vigil's that no Rust reference points into, used only
    /// through volatile accesses afterwards (the GHCB page), and the bootstrap page
    /// tables (`boot::entry`) must be the ones loaded.
    pub unsafe fn page_shared(gpa: u64, c_bit_mask: u64) -> Result<(), SharedError> {
        // SAFETY: the caller owns the page; it is mapped (private) at `gpa`.
        let out = unsafe { pvalidate(gpa, false, false) };
        if out.ret != ret::SUCCESS || out.unchanged {
            return Err(SharedError::Pvalidate(out));
        }
        check_psc(exchange(psc_shared_request(gpa >> 12))).map_err(SharedError::Psc)?;
        // Walk CR3 -> PML4[0] -> PDPT[0] -> PD (the bootstrap map covers the first GiB).
        let pml4 = read_cr3() & ADDR_MASK & !c_bit_mask;
        // SAFETY: the bootstrap tables are identity-mapped Vigil statics (.bss).
        let pdpt = unsafe { *(pml4 as *const u64) } & ADDR_MASK & !c_bit_mask;
        // SAFETY: as above.
        let pd = unsafe { *(pdpt as *const u64) } & ADDR_MASK & !c_bit_mask;
        let pde_ptr = (pd as *mut u64).wrapping_add(pd_index(gpa));
        // SAFETY: `pde_ptr` is inside the PD page (index < 512).
        let pde = unsafe { pde_ptr.read_volatile() };
        let mut ptes = split_2m(pde, c_bit_mask).map_err(SharedError::Map)?;
        ptes[pt_index(gpa)] &= !c_bit_mask;
        // SAFETY: SPLIT_PT is not linked into any table yet (written once, here).
        unsafe { *SPLIT_PT.0.get() = ptes };
        let pt = SPLIT_PT.0.get() as u64;
        // SAFETY: the new table maps the same 2 MiB to the same frames with the same
        // permissions, except the one page that no Rust reference uses; the PDE write
        // is one aligned 8-byte store, and the CR3 reload flushes the old translation.
        unsafe {
            pde_ptr.write_volatile(pt | TABLE_FLAGS | c_bit_mask);
            write_cr3(read_cr3());
            core::ptr::write_bytes(gpa as *mut u8, 0, 4096);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C51: u64 = 1 << 51;

    #[test]
    fn a_2m_page_splits_into_the_same_frames_flags_and_c_bit() {
        let pde = 0x20_0000 | C51 | 0x83;
        let ptes = split_2m(pde, C51).unwrap();
        assert_eq!(ptes[0], 0x20_0000 | C51 | 0x3);
        assert_eq!(ptes[511], 0x3f_f000 | C51 | 0x3);
        assert!(ptes.iter().all(|p| p & PS == 0 && p & C51 != 0));
        // NX is kept.
        let ptes = split_2m(pde | 1 << 63, C51).unwrap();
        assert!(ptes.iter().all(|p| p & (1 << 63) != 0));
        // Without SEV (no C-bit) the same split works with a zero mask.
        assert_eq!(split_2m(0x83, 0).unwrap()[1], 0x1003);
    }

    #[test]
    fn only_present_2m_pages_split() {
        for pde in [0x20_0003 | C51, 0x20_0082, 0x20_1083] {
            assert_eq!(split_2m(pde, C51), Err(SplitError::NotA2MPage { pde }));
        }
    }

    #[test]
    fn indices_name_the_pde_and_pte_of_a_gpa() {
        assert_eq!(pd_index(0x13_7000), 0);
        assert_eq!(pt_index(0x13_7000), 0x137);
        assert_eq!(pd_index(0x7f_e000), 3);
        assert_eq!(pt_index(0x7f_e000), 0x1fe);
    }
}
