//! 4-level page tables built from a fixed pool of table pages.
//!
//! Policy (docs/kernel.md): the kernel maps only what it owns and needs, each page with
//! the least permission its content needs. Code is read+execute, read-only data is
//! read+no-execute, writable data is read+write+no-execute; no page is both writable and
//! executable; guard pages and everything the kernel does not own stay unmapped, so a
//! stray pointer faults instead of reading or writing someone else's memory. All leaves
//! are 4 KiB (the image is small; fine-grained permissions matter more than TLB reach).
//! Intermediate entries are present+writable and never no-execute: the leaf decides.
//!
//! The builder is pure: a table's physical address is turned into a pool index by
//! arithmetic on the pool's base address, so the same code runs in host unit tests on a
//! heap-allocated pool with a made-up base address and in the kernel on the .bss pool
//! (which is identity-mapped, so a table's physical address is also where it is read).

use x86_64::structures::paging::PageTableFlags as F;

use super::address::{PhysAddr, VirtAddr, PAGE_SIZE};

// The entry bits are the `x86_64` crate's (APM vol. 2, 5.3.3 and 5.4.1); the tables
// themselves stay plain `u64` arrays so that the builder runs on the host unchanged.
/// Present.
pub const PTE_PRESENT: u64 = F::PRESENT.bits();
/// Writable.
pub const PTE_WRITABLE: u64 = F::WRITABLE.bits();
/// User-accessible (never set by this kernel).
pub const PTE_USER: u64 = F::USER_ACCESSIBLE.bits();
/// Large page (in a PD or PDPT entry).
pub const PTE_HUGE: u64 = F::HUGE_PAGE.bits();
/// No-execute (needs EFER.NXE).
pub const PTE_NX: u64 = F::NO_EXECUTE.bits();
/// Physical-address bits of an entry.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The permission of a mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Read and execute (code).
    ReadExec,
    /// Read only, no execute (read-only data).
    Read,
    /// Read and write, no execute (data, stacks, heap).
    ReadWrite,
}

impl Perm {
    const fn leaf_bits(self) -> u64 {
        match self {
            Perm::ReadExec => PTE_PRESENT,
            Perm::Read => PTE_PRESENT | PTE_NX,
            Perm::ReadWrite => PTE_PRESENT | PTE_WRITABLE | PTE_NX,
        }
    }

    const fn from_leaf(entry: u64) -> Self {
        if entry & PTE_WRITABLE != 0 {
            Perm::ReadWrite
        } else if entry & PTE_NX != 0 {
            Perm::Read
        } else {
            Perm::ReadExec
        }
    }
}

/// One page table (any level).
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct PageTable {
    /// The 512 entries.
    pub entries: [u64; 512],
}

const _: () = assert!(core::mem::size_of::<PageTable>() == PAGE_SIZE as usize);

impl PageTable {
    /// An all-absent table.
    pub const EMPTY: PageTable = PageTable { entries: [0; 512] };
}

/// Why a mapping was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The pool has no free table page left.
    OutOfTables,
    /// The virtual page is mapped already (mappings are never silently replaced).
    AlreadyMapped(VirtAddr),
    /// An address is not 4 KiB aligned.
    NotAligned(u64),
    /// The virtual address is not canonical.
    NonCanonical(VirtAddr),
    /// A large page covers the address (the builder never creates one).
    HugePage(VirtAddr),
    /// An entry points outside the pool: the tables were not built by this builder.
    ForeignTable(u64),
}

/// Page tables whose table pages come from `pool`.
pub struct PageTables<'a> {
    pool: &'a mut [PageTable],
    pool_base: u64,
    used: usize,
    /// The SEV C-bit (a single bit 32..=51, or 0 without SEV): set in every table entry
    /// and every private leaf, masked off every address read back (APM vol. 2 15.34.5:
    /// the C-bit of the leaf decides private vs shared, those of the tables decide how
    /// the walk reads the next table).
    c_bit: u64,
}

impl<'a> PageTables<'a> {
    /// Starts empty tables in `pool`, whose first table lies at physical `pool_base`.
    /// Fails if the pool is empty or `pool_base` is not page aligned.
    pub fn new(pool: &'a mut [PageTable], pool_base: PhysAddr) -> Result<Self, MapError> {
        if !pool_base.is_page_aligned() {
            return Err(MapError::NotAligned(pool_base.0));
        }
        let root = pool.first_mut().ok_or(MapError::OutOfTables)?;
        *root = PageTable::EMPTY;
        Ok(Self {
            pool,
            pool_base: pool_base.0,
            used: 1,
            c_bit: 0,
        })
    }

    /// Starts empty tables whose entries carry the SEV C-bit `c_bit_mask` (SNP: every
    /// mapping private unless made with [`PageTables::map_page_shared`]). Fails like
    /// [`PageTables::new`], and with `NotAligned` for a mask that is not one bit of
    /// 32..=51.
    pub fn new_encrypted(
        pool: &'a mut [PageTable],
        pool_base: PhysAddr,
        c_bit_mask: u64,
    ) -> Result<Self, MapError> {
        if c_bit_mask.count_ones() != 1 || !(32..=51).contains(&c_bit_mask.trailing_zeros()) {
            return Err(MapError::NotAligned(c_bit_mask));
        }
        let mut t = Self::new(pool, pool_base)?;
        t.c_bit = c_bit_mask;
        Ok(t)
    }

    /// The address bits of an entry (the C-bit masked off).
    fn addr_of(&self, entry: u64) -> u64 {
        entry & PTE_ADDR_MASK & !self.c_bit
    }

    /// Physical address of the PML4 (the value for CR3).
    pub fn root(&self) -> PhysAddr {
        PhysAddr(self.pool_base)
    }

    /// Table pages used so far, out of the pool's size.
    pub fn usage(&self) -> (usize, usize) {
        (self.used, self.pool.len())
    }

    fn index_of(&self, table_paddr: u64) -> Result<usize, MapError> {
        let off = table_paddr
            .checked_sub(self.pool_base)
            .ok_or(MapError::ForeignTable(table_paddr))?;
        let idx = (off / PAGE_SIZE) as usize;
        if !off.is_multiple_of(PAGE_SIZE) || idx >= self.used {
            return Err(MapError::ForeignTable(table_paddr));
        }
        Ok(idx)
    }

    fn alloc_table(&mut self) -> Result<usize, MapError> {
        let idx = self.used;
        let t = self.pool.get_mut(idx).ok_or(MapError::OutOfTables)?;
        *t = PageTable::EMPTY;
        self.used += 1;
        Ok(idx)
    }

    /// Index of the level-1 table (PT) covering `va`, creating tables on the way if
    /// `create`; `None` when absent and not creating.
    fn walk_to_pt(&mut self, va: VirtAddr, create: bool) -> Result<Option<usize>, MapError> {
        let mut table = 0usize;
        for level in (2..=4u8).rev() {
            let i = va.table_index(level);
            let entry = self.pool[table].entries[i];
            if entry & PTE_PRESENT == 0 {
                if !create {
                    return Ok(None);
                }
                let new = self.alloc_table()?;
                self.pool[table].entries[i] = (self.pool_base + new as u64 * PAGE_SIZE)
                    | PTE_PRESENT
                    | PTE_WRITABLE
                    | self.c_bit;
                table = new;
            } else if entry & PTE_HUGE != 0 && level < 4 {
                return Err(MapError::HugePage(va));
            } else {
                table = self.index_of(self.addr_of(entry))?;
            }
        }
        Ok(Some(table))
    }

    /// Maps one 4 KiB page `va` -> `pa` with `perm` (private: with the C-bit, if any).
    pub fn map_page(&mut self, va: VirtAddr, pa: PhysAddr, perm: Perm) -> Result<(), MapError> {
        self.map_leaf(va, pa, perm, self.c_bit)
    }

    /// Maps one 4 KiB page `va` -> `pa` with `perm` and without the C-bit: shared with
    /// the host on SEV (the GHCB page, pages for the host's answers).
    pub fn map_page_shared(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        perm: Perm,
    ) -> Result<(), MapError> {
        self.map_leaf(va, pa, perm, 0)
    }

    /// Replaces the leaf of a mapped page with `pa`, `perm`, private (with the C-bit) or
    /// shared (for a window page that is re-pointed, or a frame handed to the host;
    /// never used to change what the kernel's image maps). The caller flushes the TLB
    /// entry. Fails with `NotAligned` for unaligned addresses and returns `Ok(false)`
    /// when `va` had no table to hold it.
    pub fn remap_page(
        &mut self,
        va: VirtAddr,
        pa: PhysAddr,
        perm: Perm,
        private: bool,
    ) -> Result<bool, MapError> {
        if !va.is_page_aligned() || !va.is_canonical() {
            return Err(MapError::NotAligned(va.0));
        }
        if !pa.is_page_aligned() || pa.0 & !PTE_ADDR_MASK != 0 || pa.0 & self.c_bit != 0 {
            return Err(MapError::NotAligned(pa.0));
        }
        let Some(pt) = self.walk_to_pt(va, false)? else {
            return Ok(false);
        };
        let c = if private { self.c_bit } else { 0 };
        self.pool[pt].entries[va.table_index(1)] = pa.0 | perm.leaf_bits() | c;
        Ok(true)
    }

    fn map_leaf(&mut self, va: VirtAddr, pa: PhysAddr, perm: Perm, c: u64) -> Result<(), MapError> {
        if !va.is_page_aligned() {
            return Err(MapError::NotAligned(va.0));
        }
        if !pa.is_page_aligned() || pa.0 & !PTE_ADDR_MASK != 0 || pa.0 & self.c_bit != 0 {
            return Err(MapError::NotAligned(pa.0));
        }
        if !va.is_canonical() {
            return Err(MapError::NonCanonical(va));
        }
        let pt = self.walk_to_pt(va, true)?.ok_or(MapError::OutOfTables)?;
        let slot = &mut self.pool[pt].entries[va.table_index(1)];
        if *slot & PTE_PRESENT != 0 {
            return Err(MapError::AlreadyMapped(va));
        }
        *slot = pa.0 | perm.leaf_bits() | c;
        Ok(())
    }

    /// Identity-maps `[start, end)` (both page aligned) with `perm`.
    pub fn identity_map(&mut self, start: u64, end: u64, perm: Perm) -> Result<(), MapError> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::NotAligned(start));
        }
        if !end.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::NotAligned(end));
        }
        let mut a = start;
        while a < end {
            self.map_page(VirtAddr(a), PhysAddr(a), perm)?;
            a += PAGE_SIZE;
        }
        Ok(())
    }

    /// Removes the mapping of one page; returns whether it was mapped. The caller flushes
    /// the TLB entry if these tables are live.
    pub fn unmap_page(&mut self, va: VirtAddr) -> Result<bool, MapError> {
        let Some(pt) = self.walk_to_pt(va, false)? else {
            return Ok(false);
        };
        let slot = &mut self.pool[pt].entries[va.table_index(1)];
        let was = *slot & PTE_PRESENT != 0;
        *slot = 0;
        Ok(was)
    }

    /// The physical address and permission `va` maps to, if mapped.
    pub fn translate(&mut self, va: VirtAddr) -> Option<(PhysAddr, Perm)> {
        self.translate_private(va).map(|(pa, perm, _)| (pa, perm))
    }

    /// As [`PageTables::translate`], and whether the leaf is private (carries the
    /// C-bit; always false without one).
    pub fn translate_private(&mut self, va: VirtAddr) -> Option<(PhysAddr, Perm, bool)> {
        let pt = self.walk_to_pt(va.page_floor(), false).ok()??;
        let entry = self.pool[pt].entries[va.table_index(1)];
        if entry & PTE_PRESENT == 0 {
            return None;
        }
        Some((
            PhysAddr(self.addr_of(entry) | (va.0 & (PAGE_SIZE - 1))),
            Perm::from_leaf(entry),
            self.c_bit != 0 && entry & self.c_bit != 0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const BASE: PhysAddr = PhysAddr(0x40_0000);

    #[test]
    fn maps_with_the_requested_permissions() {
        let mut pool = vec![PageTable::EMPTY; 8];
        let mut pt = PageTables::new(&mut pool, BASE).unwrap();
        pt.identity_map(0x10_0000, 0x10_2000, Perm::ReadExec)
            .unwrap();
        pt.identity_map(0x10_2000, 0x10_3000, Perm::Read).unwrap();
        pt.identity_map(0x10_3000, 0x10_4000, Perm::ReadWrite)
            .unwrap();
        assert_eq!(
            pt.translate(VirtAddr(0x10_1abc)),
            Some((PhysAddr(0x10_1abc), Perm::ReadExec))
        );
        assert_eq!(pt.translate(VirtAddr(0x10_2000)).unwrap().1, Perm::Read);
        assert_eq!(
            pt.translate(VirtAddr(0x10_3fff)).unwrap().1,
            Perm::ReadWrite
        );
        // Unmapped neighbours stay unmapped.
        assert_eq!(pt.translate(VirtAddr(0x10_4000)), None);
        assert_eq!(pt.translate(VirtAddr(0x0f_f000)), None);
        // One PML4, PDPT, PD and PT: 4 tables.
        assert_eq!(pt.usage().0, 4);
    }

    #[test]
    fn leaf_bits_are_never_writable_and_executable() {
        for p in [Perm::ReadExec, Perm::Read, Perm::ReadWrite] {
            let b = p.leaf_bits();
            assert!(b & PTE_WRITABLE == 0 || b & PTE_NX != 0, "{p:?} is W+X");
            assert_eq!(b & PTE_USER, 0);
        }
    }

    #[test]
    fn intermediate_entries_point_into_the_pool() {
        let mut pool = vec![PageTable::EMPTY; 8];
        {
            let mut pt = PageTables::new(&mut pool, BASE).unwrap();
            pt.map_page(VirtAddr(0x20_0000), PhysAddr(0x20_0000), Perm::Read)
                .unwrap();
        }
        let pml4e = pool[0].entries[0];
        assert_eq!(pml4e & PTE_ADDR_MASK, BASE.0 + PAGE_SIZE);
        assert_eq!(
            pml4e & (PTE_PRESENT | PTE_WRITABLE | PTE_NX),
            PTE_PRESENT | PTE_WRITABLE
        );
    }

    #[test]
    fn refuses_double_mapping_and_bad_addresses() {
        let mut pool = vec![PageTable::EMPTY; 8];
        let mut pt = PageTables::new(&mut pool, BASE).unwrap();
        pt.map_page(VirtAddr(0x1000), PhysAddr(0x1000), Perm::Read)
            .unwrap();
        assert_eq!(
            pt.map_page(VirtAddr(0x1000), PhysAddr(0x5000), Perm::ReadWrite),
            Err(MapError::AlreadyMapped(VirtAddr(0x1000)))
        );
        assert_eq!(
            pt.map_page(VirtAddr(0x1001), PhysAddr(0x1000), Perm::Read),
            Err(MapError::NotAligned(0x1001))
        );
        assert_eq!(
            pt.map_page(VirtAddr(0x8000_0000_0000), PhysAddr(0), Perm::Read),
            Err(MapError::NonCanonical(VirtAddr(0x8000_0000_0000)))
        );
        assert_eq!(
            pt.map_page(VirtAddr(0x2000), PhysAddr(1 << 53), Perm::Read),
            Err(MapError::NotAligned(1 << 53))
        );
    }

    #[test]
    fn runs_out_of_tables_cleanly() {
        let mut pool = vec![PageTable::EMPTY; 4];
        let mut pt = PageTables::new(&mut pool, BASE).unwrap();
        pt.map_page(VirtAddr(0), PhysAddr(0), Perm::Read).unwrap();
        // A page 1 GiB away needs a new PD and PT: only 0 tables left.
        assert_eq!(
            pt.map_page(VirtAddr(1 << 30), PhysAddr(0), Perm::Read),
            Err(MapError::OutOfTables)
        );
    }

    #[test]
    fn unmap_removes_only_that_page() {
        let mut pool = vec![PageTable::EMPTY; 8];
        let mut pt = PageTables::new(&mut pool, BASE).unwrap();
        pt.identity_map(0, 0x3000, Perm::ReadWrite).unwrap();
        assert_eq!(pt.unmap_page(VirtAddr(0x1000)), Ok(true));
        assert_eq!(pt.unmap_page(VirtAddr(0x1000)), Ok(false));
        assert!(pt.translate(VirtAddr(0x1000)).is_none());
        assert!(pt.translate(VirtAddr(0x2000)).is_some());
        assert_eq!(pt.unmap_page(VirtAddr(1 << 40)), Ok(false));
    }

    const C51: u64 = 1 << 51;

    #[test]
    fn encrypted_tables_carry_the_c_bit_except_on_shared_leaves() {
        let mut pool = vec![PageTable::EMPTY; 8];
        {
            let mut pt = PageTables::new_encrypted(&mut pool, BASE, C51).unwrap();
            pt.identity_map(0x10_0000, 0x10_2000, Perm::ReadWrite)
                .unwrap();
            pt.map_page_shared(VirtAddr(0x10_2000), PhysAddr(0x10_2000), Perm::ReadWrite)
                .unwrap();
            // The walk masks the C-bit off the table addresses it follows.
            assert_eq!(
                pt.translate_private(VirtAddr(0x10_1008)),
                Some((PhysAddr(0x10_1008), Perm::ReadWrite, true))
            );
            assert_eq!(
                pt.translate_private(VirtAddr(0x10_2000)),
                Some((PhysAddr(0x10_2000), Perm::ReadWrite, false))
            );
            // A physical address with the C-bit in it is refused, not merged.
            assert_eq!(
                pt.map_page(VirtAddr(0x20_0000), PhysAddr(0x20_0000 | C51), Perm::Read),
                Err(MapError::NotAligned(0x20_0000 | C51))
            );
            // Re-pointing a mapped page keeps it private.
            assert_eq!(
                pt.remap_page(VirtAddr(0x10_0000), PhysAddr(0x5000), Perm::Read, true),
                Ok(true)
            );
            assert_eq!(
                pt.translate_private(VirtAddr(0x10_0000)),
                Some((PhysAddr(0x5000), Perm::Read, true))
            );
            assert_eq!(
                pt.remap_page(VirtAddr(1 << 40), PhysAddr(0x5000), Perm::Read, false),
                Ok(false)
            );
            assert_eq!(
                pt.remap_page(
                    VirtAddr(0x10_1000),
                    PhysAddr(0x6000),
                    Perm::ReadWrite,
                    false
                ),
                Ok(true)
            );
            assert_eq!(
                pt.translate_private(VirtAddr(0x10_1000)),
                Some((PhysAddr(0x6000), Perm::ReadWrite, false))
            );
        }
        // Every table entry on the way (PML4, PDPT, PD) carries the C-bit.
        for (t, table) in pool.iter().enumerate().take(3) {
            let e = table
                .entries
                .iter()
                .copied()
                .find(|e| e & PTE_PRESENT != 0)
                .unwrap();
            assert_ne!(e & C51, 0, "table {t} entry {e:#x}");
        }
        assert_eq!(pool[3].entries[0x100] & C51, C51);
        assert_eq!(pool[3].entries[0x102] & C51, 0);
    }

    #[test]
    fn the_c_bit_mask_must_be_one_bit_of_32_to_51() {
        for bad in [0, 1 << 31, 1 << 52, C51 | 1 << 47] {
            let mut pool = vec![PageTable::EMPTY; 2];
            assert!(PageTables::new_encrypted(&mut pool, BASE, bad).is_err());
        }
    }

    #[test]
    fn foreign_table_pointers_are_detected() {
        let mut pool = vec![PageTable::EMPTY; 8];
        pool[0].entries[0] = 0x9999_0000 | PTE_PRESENT;
        // `new` zeroes the root, so corrupt it after construction through a raw walk.
        let mut pt = PageTables::new(&mut pool, BASE).unwrap();
        pt.pool[0].entries[0] = 0x9999_0000 | PTE_PRESENT;
        assert_eq!(
            pt.map_page(VirtAddr(0), PhysAddr(0), Perm::Read),
            Err(MapError::ForeignTable(0x9999_0000))
        );
    }
}
