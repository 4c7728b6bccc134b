//! Guest linear address -> guest-physical address, through the guest's own page tables
//! (APM vol. 2 §5.3 "Long-Mode Page Translation", §5.6 "Page-Protection Checks").
//!
//! The machine uses it to read the bytes at RIP, to turn PVALIDATE's/RMPADJUST's RAX
//! into a GPA, and to reach the IDT, GDT, TSS and stack when it delivers #VC. Modes: no
//! paging (CR0.PG = 0: linear = physical, 32 bits outside long mode; every access private,
//! APM vol. 2 §15.34.5) and 4-level long-mode paging with 4 KiB, 2 MiB and 1 GiB pages.
//! Legacy 32-bit paging, PAE without long mode and 5-level paging are refused by name.
//!
//! The C-bit (bit 51, [`crate::cpuid::C_BIT`]) is masked off every address taken from a
//! page-table entry; the final entry's C-bit says whether the access is private
//! (APM vol. 2 §15.34.5). Page-table reads themselves are always private. The walk reads
//! tables from [`Memory`] and returns their GPAs, so the caller can apply the RMP check
//! of a page-table access (`access::Access::walk`) to each.

use crate::memory::Memory;

/// The C-bit of a guest page-table entry.
pub const C_BIT_MASK: u64 = 1 << crate::cpuid::C_BIT;
/// Address bits 50:12 of an entry (bit 51 is the C-bit; APM vol. 2 §5.3.3 gives bits
/// 51:12 to the address, and the C-bit's position takes one of them).
const ADDR_MASK: u64 = 0x0007_ffff_ffff_f000;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

const CR0_PG: u64 = 1 << 31;
const CR0_WP: u64 = 1 << 16;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const CR4_SMEP: u64 = 1 << 20;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// #PF error code bits (APM vol. 2 §8.4.2, "Page-Fault Error Code").
pub mod pf {
    /// The page was present (a protection violation).
    pub const P: u32 = 1 << 0;
    /// Write.
    pub const W: u32 = 1 << 1;
    /// User (CPL3) access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set.
    pub const RSV: u32 = 1 << 3;
    /// Instruction fetch.
    pub const ID: u32 = 1 << 4;
}

/// The paging registers of one VMSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Paging {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
}

impl Paging {
    /// The paging registers of `v`.
    pub fn of(v: &super::vmsa::Vmsa) -> Paging {
        Paging {
            cr0: v.cr0(),
            cr3: v.cr3(),
            cr4: v.cr4(),
            efer: v.efer(),
        }
    }
}

/// What kind of access the translation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinearAccess {
    /// A write.
    pub write: bool,
    /// An instruction fetch.
    pub fetch: bool,
    /// At CPL3.
    pub user: bool,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The GPA (C-bit masked off).
    pub gpa: u64,
    /// The final entry had the C-bit (always true without paging).
    pub private: bool,
    /// The GPAs of the page-table entries read, first `levels` valid.
    pub tables: [u64; 4],
    /// How many tables were read.
    pub levels: usize,
}

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// #PF to the guest with this error code (CR2 = the linear address).
    PageFault {
        /// The #PF error code.
        error_code: u32,
    },
    /// #GP: the address is not canonical.
    NonCanonical,
    /// A page-table entry lies outside guest memory.
    TableOutsideMemory {
        /// The entry's GPA.
        gpa: u64,
    },
    /// A paging mode the model does not walk.
    Unsupported(&'static str),
}

fn canonical(la: u64) -> bool {
    let top = la >> 47;
    top == 0 || top == 0x1_ffff
}

/// Translate `la` for `a` under `p`, reading tables from `mem`.
pub fn translate(
    mem: &Memory,
    p: &Paging,
    la: u64,
    a: LinearAccess,
) -> Result<Translation, WalkError> {
    let long = p.efer & EFER_LMA != 0;
    if p.cr0 & CR0_PG == 0 {
        let gpa = if long { la } else { la & 0xffff_ffff };
        return Ok(Translation {
            gpa,
            private: true,
            tables: [0; 4],
            levels: 0,
        });
    }
    if !long {
        return Err(WalkError::Unsupported(if p.cr4 & CR4_PAE != 0 {
            "PAE paging outside long mode"
        } else {
            "32-bit paging"
        }));
    }
    if p.cr4 & CR4_LA57 != 0 {
        return Err(WalkError::Unsupported("5-level paging"));
    }
    if !canonical(la) {
        return Err(WalkError::NonCanonical);
    }
    walk4(mem, p, la, a)
}

fn walk4(mem: &Memory, p: &Paging, la: u64, a: LinearAccess) -> Result<Translation, WalkError> {
    let nxe = p.efer & EFER_NXE != 0;
    let mut code = if a.write { pf::W } else { 0 } | if a.user { pf::U } else { 0 };
    if a.fetch && nxe {
        code |= pf::ID;
    }
    let mut t = Translation {
        gpa: 0,
        private: false,
        tables: [0; 4],
        levels: 0,
    };
    let (mut rw, mut us, mut nx) = (true, true, false);
    let mut table = p.cr3 & ADDR_MASK;
    for level in (0..4u32).rev() {
        let shift = 12 + 9 * level;
        let slot = table + 8 * ((la >> shift) & 0x1ff);
        let mut e = [0u8; 8];
        mem.read(slot, &mut e)
            .map_err(|_| WalkError::TableOutsideMemory { gpa: slot })?;
        let e = u64::from_le_bytes(e);
        t.tables[t.levels] = slot;
        t.levels += 1;
        if e & P == 0 {
            return Err(WalkError::PageFault { error_code: code });
        }
        rw &= e & RW != 0;
        us &= e & US != 0;
        nx |= nxe && e & NX != 0;
        // PS is reserved in a PML4E (APM vol. 2 §5.3.3); a 1 GiB or 2 MiB page ends the
        // walk at level 2 or 1.
        let large = e & PS != 0 && level != 0;
        if large && level == 3 {
            return Err(WalkError::PageFault {
                error_code: code | pf::P | pf::RSV,
            });
        }
        if large || level == 0 {
            let page_mask = (1u64 << shift) - 1;
            t.gpa = (e & ADDR_MASK & !page_mask) | (la & page_mask);
            t.private = e & C_BIT_MASK != 0;
            break;
        }
        table = e & ADDR_MASK;
    }
    let denied = (a.user && !us)
        || (a.write && !rw && (a.user || p.cr0 & CR0_WP != 0))
        || (a.fetch && nx)
        || (a.fetch && !a.user && us && p.cr4 & CR4_SMEP != 0);
    if denied {
        return Err(WalkError::PageFault {
            error_code: code | pf::P,
        });
    }
    Ok(t)
}

/// Build 4-level tables in `mem` (for tests and the model's own guests): map each
/// `(la, gpa, flags)` 4 KiB page, tables allocated from `*next` up, PML4 at `cr3`.
/// Intermediate entries get P|RW|US; the leaf gets `flags` | P.
pub fn map_4k(mem: &mut Memory, cr3: u64, next: &mut u64, la: u64, gpa: u64, flags: u64) {
    let mut table = cr3;
    for level in (1..4u32).rev() {
        let slot = table + 8 * ((la >> (12 + 9 * level)) & 0x1ff);
        let mut e = [0u8; 8];
        mem.read(slot, &mut e).ok();
        let mut e = u64::from_le_bytes(e);
        if e & P == 0 || e >> 48 == 0xbad5 {
            e = *next | P | RW | US;
            mem.write(*next, &[0; 4096]).ok();
            *next += 4096;
            mem.write(slot, &e.to_le_bytes()).ok();
        }
        table = e & ADDR_MASK;
    }
    let slot = table + 8 * ((la >> 12) & 0x1ff);
    mem.write(slot, &(gpa | flags | P).to_le_bytes()).ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR3: u64 = 0x1000;
    const RWU: u64 = RW | US;

    fn paging() -> Paging {
        Paging {
            cr0: CR0_PG | CR0_WP | 1,
            cr3: CR3,
            cr4: CR4_PAE,
            efer: EFER_LMA | EFER_NXE | (1 << 8),
        }
    }

    fn setup() -> Memory {
        let mut m = Memory::new(0x40_0000);
        m.write(CR3, &[0; 4096]).unwrap();
        m
    }

    const READ: LinearAccess = LinearAccess {
        write: false,
        fetch: false,
        user: false,
    };

    #[test]
    fn a_4k_page_translates_and_its_c_bit_is_masked_off() {
        let mut m = setup();
        let mut next = 0x2000;
        let la = 0xffff_8000_0012_3000;
        map_4k(&mut m, CR3, &mut next, la, 0x30_5000 | C_BIT_MASK, RW);
        let t = translate(&m, &paging(), la + 0x10, READ).unwrap();
        assert_eq!(t.gpa, 0x30_5010);
        assert!(t.private);
        assert_eq!(t.levels, 4);
        assert_eq!(t.tables[0], CR3 + 8 * 256);
        // Without the C-bit the access is shared.
        map_4k(&mut m, CR3, &mut next, la + 0x1000, 0x30_6000, RW);
        let t = translate(&m, &paging(), la + 0x1000, READ).unwrap();
        assert_eq!((t.gpa, t.private), (0x30_6000, false));
    }

    #[test]
    fn large_pages_end_the_walk() {
        let mut m = setup();
        // PML4[0] -> PDPT at 0x2000; PDPT[1] = a 1 GiB page at 0x4000_0000 (C-bit set);
        // PDPT[0] -> PD at 0x3000; PD[1] = a 2 MiB page at 0x20_0000.
        m.write(CR3, &(0x2000 | P | RW).to_le_bytes()).unwrap();
        m.write(0x2000, &[0; 4096]).unwrap();
        m.write(0x3000, &[0; 4096]).unwrap();
        m.write(0x2008, &(0x4000_0000 | C_BIT_MASK | P | PS).to_le_bytes())
            .unwrap();
        m.write(0x2000, &(0x3000 | P | RW).to_le_bytes()).unwrap();
        m.write(0x3008, &(0x20_0000 | P | RW | PS).to_le_bytes())
            .unwrap();
        let t = translate(&m, &paging(), 0x4123_4567, READ).unwrap();
        assert_eq!((t.gpa, t.private, t.levels), (0x4123_4567, true, 2));
        let t = translate(&m, &paging(), 0x2a_bcde, READ).unwrap();
        assert_eq!((t.gpa, t.levels), (0x2a_bcde, 3));
    }

    #[test]
    fn not_present_write_user_and_nx_faults_carry_the_pf_error_code() {
        let mut m = setup();
        let mut next = 0x2000;
        map_4k(&mut m, CR3, &mut next, 0x40_0000, 0x10_0000, NX);
        let p = paging();
        let pfc = |a| match translate(&m, &p, 0x40_0000, a) {
            Err(WalkError::PageFault { error_code }) => error_code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            pfc(LinearAccess {
                write: true,
                ..READ
            }),
            pf::P | pf::W
        );
        assert_eq!(
            pfc(LinearAccess {
                fetch: true,
                ..READ
            }),
            pf::P | pf::ID
        );
        assert!(translate(&m, &p, 0x40_0000, READ).is_ok());
        let missing = translate(&m, &p, 0x40_1000, READ);
        assert_eq!(missing, Err(WalkError::PageFault { error_code: 0 }));
        // A user access to a supervisor page: the intermediate entries have US, the leaf
        // does not.
        assert_eq!(pfc(LinearAccess { user: true, ..READ }), pf::P | pf::U);
        map_4k(&mut m, CR3, &mut next, 0x40_2000, 0x10_1000, RWU);
        assert!(translate(
            &m,
            &p,
            0x40_2000,
            LinearAccess {
                user: true,
                write: true,
                fetch: false
            }
        )
        .is_ok());
    }

    #[test]
    fn no_paging_is_identity_and_private() {
        let m = setup();
        let p = Paging {
            cr0: 1,
            ..Paging::default()
        };
        let t = translate(&m, &p, 0x1_2345_6789, READ).unwrap();
        assert_eq!((t.gpa, t.private, t.levels), (0x2345_6789, true, 0));
    }

    #[test]
    fn unsupported_modes_and_bad_addresses_are_named() {
        let m = setup();
        let mut p = paging();
        p.efer = 0;
        assert_eq!(
            translate(&m, &p, 0, READ),
            Err(WalkError::Unsupported("PAE paging outside long mode"))
        );
        p.cr4 = 0;
        assert_eq!(
            translate(&m, &p, 0, READ),
            Err(WalkError::Unsupported("32-bit paging"))
        );
        let mut p = paging();
        assert_eq!(
            translate(&m, &p, 0x0000_8000_0000_0000, READ),
            Err(WalkError::NonCanonical)
        );
        p.cr3 = 0x1000_0000;
        assert_eq!(
            translate(&m, &p, 0, READ),
            Err(WalkError::TableOutsideMemory { gpa: 0x1000_0000 })
        );
        p.cr4 |= CR4_LA57;
        assert_eq!(
            translate(&m, &p, 0, READ),
            Err(WalkError::Unsupported("5-level paging"))
        );
    }

    #[test]
    fn a_ps_bit_in_the_pml4_is_a_reserved_bit_fault() {
        let mut m = setup();
        m.write(CR3, &(0x20_0000 | P | PS).to_le_bytes()).unwrap();
        assert_eq!(
            translate(&m, &paging(), 0x1000, READ),
            Err(WalkError::PageFault {
                error_code: pf::P | pf::RSV
            })
        );
    }
}
