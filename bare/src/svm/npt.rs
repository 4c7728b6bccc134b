//! Nested page tables (AMD APM vol. 2, 15.25 "Nested Paging"): guest-physical to
//! host-physical, 4 KiB leaves only, so that every page's rights are independent of its
//! neighbours'.
//!
//! Two users: Vigil's `emulated` platform, where they stand in for the RMP (a page the
//! RMP would give the guest with read/write/execute is mapped with those rights, a page
//! it would deny is not mapped at all) and guest memory is identity mapped (GPA == host
//! PA, [`Npt::new`]); and the SNP machine model, where each VMPL has its own tables and a
//! GPA maps to `host_base + GPA` ([`Npt::translated`]).
//!
//! Invariant 1 (Vigil's memory never reaches a lower VMPL) is enforced twice: the monitor
//! never asks for a mapping of Vigil's pages, and this table refuses to map anything in
//! the forbidden range or outside guest RAM even if asked ([`NptError::Forbidden`]), so a
//! bug above cannot open the host's memory to the guest.
//!
//! Table pages come from the heap (identity mapped, so a table's address is its physical
//! address); every entry carries the U bit at every level, because nested walks are
//! user-mode accesses. The builder is pure, and runs in host unit tests.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// One table page.
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

/// What the guest may do with a mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NptPerm {
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub exec: bool,
}

/// A refused mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// The address is not 4 KiB aligned.
    NotAligned(u64),
    /// The page is Vigil's, or outside guest RAM.
    Forbidden(u64),
}

/// The nested page tables of one guest.
pub struct Npt {
    tables: Vec<Box<Table>>,
    by_pa: BTreeMap<u64, usize>,
    guest: (u64, u64),
    forbidden: (u64, u64),
    host_offset: u64,
    mapped: usize,
}

fn pa_of(t: &Table) -> u64 {
    t as *const Table as u64
}

impl Npt {
    /// Empty identity tables for guest RAM `[guest.0, guest.1)`; `forbidden` (Vigil's
    /// memory) is never mapped, whatever is asked.
    pub fn new(guest: (u64, u64), forbidden: (u64, u64)) -> Self {
        Self::build(guest, forbidden, 0)
    }

    /// Empty tables for guest RAM `[0, size)` held at host address `host_base`: the page
    /// at GPA `g` maps to host address `host_base + g`. `host_base` must be page aligned
    /// and `host_base + size` must fit the 52-bit address field (else every map is
    /// refused).
    pub fn translated(size: u64, host_base: u64) -> Self {
        let fits = host_base
            .checked_add(size)
            .is_some_and(|end| end <= ADDR + 0x1000);
        let usable = host_base & 0xfff == 0 && fits;
        let guest = if usable { (0, size) } else { (0, 0) };
        Self::build(guest, (0, 0), host_base)
    }

    fn build(guest: (u64, u64), forbidden: (u64, u64), host_offset: u64) -> Self {
        let root = Box::new(Table([0; 512]));
        let mut by_pa = BTreeMap::new();
        by_pa.insert(pa_of(&root), 0);
        Self {
            tables: alloc::vec![root],
            by_pa,
            guest,
            forbidden,
            host_offset,
            mapped: 0,
        }
    }

    /// The value for the VMCB's N_CR3.
    pub fn root(&self) -> u64 {
        pa_of(&self.tables[0])
    }

    /// Pages mapped now.
    pub fn mapped(&self) -> usize {
        self.mapped
    }

    /// Table pages in use.
    pub fn table_pages(&self) -> usize {
        self.tables.len()
    }

    fn index(gpa: u64, level: u32) -> usize {
        ((gpa >> (12 + 9 * (level - 1))) & 0x1ff) as usize
    }

    fn walk(&mut self, gpa: u64, create: bool) -> Option<usize> {
        let mut t = 0usize;
        for level in (2..=4).rev() {
            let i = Self::index(gpa, level);
            let e = self.tables[t].0[i];
            if e & P == 0 {
                if !create {
                    return None;
                }
                let new = Box::new(Table([0; 512]));
                let pa = pa_of(&new);
                self.tables.push(new);
                let idx = self.tables.len() - 1;
                self.by_pa.insert(pa, idx);
                self.tables[t].0[i] = pa | P | RW | US;
                t = idx;
            } else {
                t = *self.by_pa.get(&(e & ADDR))?;
            }
        }
        Some(t)
    }

    fn check(&self, gpa: u64) -> Result<(), NptError> {
        if gpa & 0xfff != 0 {
            return Err(NptError::NotAligned(gpa));
        }
        let in_guest = gpa >= self.guest.0 && gpa < self.guest.1;
        let vigil = gpa >= self.forbidden.0 && gpa < self.forbidden.1;
        if !in_guest || vigil {
            return Err(NptError::Forbidden(gpa));
        }
        Ok(())
    }

    /// Maps the page at `gpa` (to itself, or to `host_base + gpa` for
    /// [`Npt::translated`]) with `perm`, replacing any earlier rights.
    pub fn map(&mut self, gpa: u64, perm: NptPerm) -> Result<(), NptError> {
        self.check(gpa)?;
        let Some(t) = self.walk(gpa, true) else {
            return Err(NptError::Forbidden(gpa));
        };
        let slot = &mut self.tables[t].0[Self::index(gpa, 1)];
        if *slot & P == 0 {
            self.mapped += 1;
        }
        // `check` bounded gpa below guest.1, and `translated` checked that the host range
        // fits the address field, so the sum neither overflows nor spills into flags.
        let hpa = gpa + self.host_offset;
        *slot = hpa | P | US | if perm.write { RW } else { 0 } | if perm.exec { 0 } else { NX };
        Ok(())
    }

    /// Removes the page at `gpa`; returns whether it was mapped.
    pub fn unmap(&mut self, gpa: u64) -> bool {
        let Some(t) = self.walk(gpa & !0xfff, false) else {
            return false;
        };
        let slot = &mut self.tables[t].0[Self::index(gpa, 1)];
        let was = *slot & P != 0;
        *slot = 0;
        if was {
            self.mapped -= 1;
        }
        was
    }

    /// The rights the guest has on the page holding `gpa`, if mapped.
    pub fn lookup(&mut self, gpa: u64) -> Option<NptPerm> {
        let t = self.walk(gpa & !0xfff, false)?;
        let e = self.tables[t].0[Self::index(gpa, 1)];
        (e & P != 0).then_some(NptPerm {
            write: e & RW != 0,
            exec: e & NX == 0,
        })
    }

    /// Every present entry at every level, as (level, entry), for invariant checks.
    pub fn entries(&self) -> impl Iterator<Item = u64> + '_ {
        self.tables
            .iter()
            .flat_map(|t| t.0.iter().copied())
            .filter(|e| e & P != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const RWX: NptPerm = NptPerm {
        write: true,
        exec: true,
    };

    #[test]
    fn maps_identity_with_user_bit_everywhere() {
        let mut n = Npt::new((16 * MIB, 48 * MIB), (0, 16 * MIB));
        n.map(16 * MIB, RWX).unwrap();
        n.map(
            20 * MIB + 0x3000,
            NptPerm {
                write: false,
                exec: false,
            },
        )
        .unwrap();
        assert_eq!(n.lookup(16 * MIB + 0x123), Some(RWX));
        assert_eq!(
            n.lookup(20 * MIB + 0x3fff),
            Some(NptPerm {
                write: false,
                exec: false
            })
        );
        assert_eq!(n.lookup(16 * MIB + 0x1000), None);
        assert_eq!(n.mapped(), 2);
        for e in n.entries() {
            assert_ne!(e & US, 0, "entry {e:#x} lacks U");
        }
        // Leaves are identity: the entry's address is the GPA.
        let leaf = n.entries().find(|e| e & ADDR == 16 * MIB).unwrap();
        assert_eq!(leaf & (RW | NX), RW);
    }

    #[test]
    fn never_maps_vigil_or_outside_ram() {
        let mut n = Npt::new((16 * MIB, 48 * MIB), (0, 16 * MIB));
        assert_eq!(n.map(MIB, RWX), Err(NptError::Forbidden(MIB)));
        assert_eq!(n.map(48 * MIB, RWX), Err(NptError::Forbidden(48 * MIB)));
        assert_eq!(
            n.map(16 * MIB + 1, RWX),
            Err(NptError::NotAligned(16 * MIB + 1))
        );
        // A guest range that overlaps Vigil's: the overlap still refused.
        let mut n = Npt::new((0, 48 * MIB), (MIB, 16 * MIB));
        assert_eq!(n.map(2 * MIB, RWX), Err(NptError::Forbidden(2 * MIB)));
        assert!(n.map(16 * MIB, RWX).is_ok());
        assert_eq!(n.mapped(), 1);
    }

    #[test]
    fn translated_tables_add_the_host_base() {
        let mut n = Npt::translated(4 * MIB, 64 * MIB);
        n.map(0x3000, RWX).unwrap();
        let leaf = n.entries().find(|e| e & ADDR == 64 * MIB + 0x3000);
        assert!(leaf.is_some(), "leaf points at host_base + gpa");
        assert_eq!(n.lookup(0x3abc), Some(RWX));
        assert_eq!(n.map(4 * MIB, RWX), Err(NptError::Forbidden(4 * MIB)));
        // A host range that would wrap, or an unaligned base, maps nothing.
        let mut n = Npt::translated(2 * MIB, !0xfff);
        assert_eq!(n.map(0, RWX), Err(NptError::Forbidden(0)));
        let mut n = Npt::translated(2 * MIB, 0x800);
        assert_eq!(n.map(0, RWX), Err(NptError::Forbidden(0)));
    }

    #[test]
    fn unmap_and_remap_change_rights() {
        let mut n = Npt::new((16 * MIB, 48 * MIB), (0, 16 * MIB));
        n.map(17 * MIB, RWX).unwrap();
        assert!(n.unmap(17 * MIB));
        assert!(!n.unmap(17 * MIB));
        assert_eq!(n.lookup(17 * MIB), None);
        n.map(17 * MIB, RWX).unwrap();
        n.map(
            17 * MIB,
            NptPerm {
                write: false,
                exec: true,
            },
        )
        .unwrap();
        assert_eq!(n.mapped(), 1);
        assert_eq!(n.lookup(17 * MIB).map(|p| p.write), Some(false));
        assert!(!n.unmap(40 * MIB));
    }
}
