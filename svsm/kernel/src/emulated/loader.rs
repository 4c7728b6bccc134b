//! Loading the guest: its ELF image, the launch region, its first register state, and
//! the launch measurement. Pure functions over byte slices (host-tested); the kernel
//! feeds them guest memory.
//!
//! Guest-physical layout on `emulated` (docs/emulated.md has the table):
//!
//! | GPA                      | what                                             |
//! |--------------------------|--------------------------------------------------|
//! | 0 .. 16 MiB              | Vigil (image, heap, tables, VMCBs; never mapped)  |
//! | 16 MiB .. 17 MiB         | the guest ELF's PT_LOAD segments                  |
//! | 17 MiB + 0x0000/1000/2000| the guest's PML4, PDPT, PD (identity, 2 MiB pages)|
//! | 17 MiB + 0x3000          | the guest's copy of the secrets page              |
//! | 17 MiB + 0x4000          | the boot vCPU's calling area                      |
//! | 17 MiB + 64 KiB .. +128K | the boot stack                                    |
//! | 16 .. 18 MiB             | the launch region: validated for the guest        |
//! | 18 MiB .. 48 MiB         | guest RAM, not validated (the guest PVALIDATEs it)|

use sha2::{Digest, Sha384};
use svsm_abi::page_info::PageType;

/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// Vigil's memory: everything below 16 MiB.
pub const VIGIL_END: u64 = 16 * MIB;
/// First guest GPA.
pub const GUEST_BASE: u64 = 16 * MIB;
/// End of guest RAM.
pub const GUEST_END: u64 = 48 * MIB;
/// The ELF must lie below this.
pub const IMAGE_END: u64 = 17 * MIB;
/// Guest PML4.
pub const GUEST_PML4: u64 = 17 * MIB;
/// Guest secrets page.
pub const GUEST_SECRETS: u64 = 17 * MIB + 0x3000;
/// Boot calling area.
pub const GUEST_CAA: u64 = 17 * MIB + 0x4000;
/// Initial RSP.
pub const GUEST_STACK_TOP: u64 = 17 * MIB + 0x2_0000;
/// End of the launch region (validated at launch).
pub const LAUNCH_END: u64 = 18 * MIB;

/// A refused guest image: what is wrong, at which byte offset of the ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a 64-bit little-endian x86-64 executable (offset of the bad field).
    NotElf64(usize),
    /// A header or segment lies outside the file (offset of the field).
    OutOfFile(usize),
    /// A PT_LOAD segment lies outside [16 MiB, 17 MiB) (offset of its program header).
    OutsideImageArea(usize),
    /// A segment's file size exceeds its memory size (offset of its program header).
    FileBiggerThanMemory(usize),
}

/// One PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Load address (GPA; the guest is identity mapped).
    pub paddr: u64,
    /// Bytes in memory.
    pub memsz: u64,
    /// File offset of the bytes.
    pub offset: u64,
    /// Bytes in the file.
    pub filesz: u64,
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, ElfError> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ElfError::OutOfFile(o))
}
fn u32_at(b: &[u8], o: usize) -> Result<u32, ElfError> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ElfError::OutOfFile(o))
}
fn u64_at(b: &[u8], o: usize) -> Result<u64, ElfError> {
    b.get(o..o + 8)
        .map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
        .ok_or(ElfError::OutOfFile(o))
}

/// The entry point and PT_LOAD segments of a guest ELF, checked: every segment inside
/// the image area and inside the file. The ELF comes from the host (a boot module), so
/// nothing in it is trusted; what it contains ends up measured.
pub fn parse_elf(b: &[u8]) -> Result<(u64, alloc::vec::Vec<Segment>), ElfError> {
    if b.get(0..4) != Some(&b"\x7fELF"[..]) {
        return Err(ElfError::NotElf64(0));
    }
    if b.get(4) != Some(&2) {
        return Err(ElfError::NotElf64(4));
    }
    if b.get(5) != Some(&1) {
        return Err(ElfError::NotElf64(5));
    }
    if u16_at(b, 0x12)? != 0x3e {
        return Err(ElfError::NotElf64(0x12));
    }
    let entry = u64_at(b, 0x18)?;
    let phoff = u64_at(b, 0x20)? as usize;
    let phentsize = u16_at(b, 0x36)? as usize;
    let phnum = u16_at(b, 0x38)? as usize;
    if phentsize < 56 {
        return Err(ElfError::NotElf64(0x36));
    }
    let mut segs = alloc::vec::Vec::new();
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfError::OutOfFile(0x20))?;
        if u32_at(b, ph)? != 1 {
            continue;
        }
        let s = Segment {
            offset: u64_at(b, ph + 8)?,
            paddr: u64_at(b, ph + 0x18)?,
            filesz: u64_at(b, ph + 0x20)?,
            memsz: u64_at(b, ph + 0x28)?,
        };
        if s.filesz > s.memsz {
            return Err(ElfError::FileBiggerThanMemory(ph));
        }
        let end = s
            .paddr
            .checked_add(s.memsz)
            .ok_or(ElfError::OutsideImageArea(ph))?;
        if s.paddr < GUEST_BASE || end > IMAGE_END {
            return Err(ElfError::OutsideImageArea(ph));
        }
        let fend = s
            .offset
            .checked_add(s.filesz)
            .ok_or(ElfError::OutOfFile(ph + 8))?;
        if fend > b.len() as u64 {
            return Err(ElfError::OutOfFile(ph + 8));
        }
        segs.push(s);
    }
    if !(GUEST_BASE..IMAGE_END).contains(&entry) {
        return Err(ElfError::OutsideImageArea(0x18));
    }
    Ok((entry, segs))
}

/// The 4 KiB pages the segments touch, ascending, each once.
pub fn image_pages(segs: &[Segment]) -> alloc::vec::Vec<u64> {
    let mut v: alloc::vec::Vec<u64> = segs
        .iter()
        .filter(|s| s.memsz > 0)
        .flat_map(|s| {
            let first = s.paddr & !0xfff;
            let last = (s.paddr + s.memsz - 1) & !0xfff;
            (first..=last).step_by(4096)
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The guest's page tables (PML4, PDPT, PD at [`GUEST_PML4`] + 0/0x1000/0x2000):
/// identity map of the first GiB with 2 MiB pages, read/write/execute. The guest's
/// own tables grant everything; the nested tables decide what it really gets.
pub fn guest_page_tables() -> [[u64; 512]; 3] {
    let mut t = [[0u64; 512]; 3];
    t[0][0] = (GUEST_PML4 + 0x1000) | 0x3;
    t[1][0] = (GUEST_PML4 + 0x2000) | 0x3;
    for (i, e) in t[2].iter_mut().enumerate() {
        *e = (i as u64 * 2 * MIB) | 0x83;
    }
    t
}

/// Extends a launch digest by one NORMAL page (SNP firmware ABI PAGE_INFO chain).
pub fn extend_normal(digest: &[u8; 48], gpa: u64, page: &[u8; 4096]) -> [u8; 48] {
    let contents: [u8; 48] = Sha384::digest(page).into();
    svsm_abi::page_info::extend(digest, &contents, PageType::Normal, gpa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A minimal ELF with the given PT_LOADs (paddr, memsz, data).
    fn elf(entry: u64, segs: &[(u64, u64, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * segs.len()];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x12] = 0x3e;
        b[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36] = 56;
        b[0x38] = segs.len() as u8;
        for (i, (pa, memsz, data)) in segs.iter().enumerate() {
            let off = b.len() as u64;
            let ph = 64 + 56 * i;
            b[ph] = 1;
            b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            b[ph + 0x18..ph + 0x20].copy_from_slice(&pa.to_le_bytes());
            b[ph + 0x20..ph + 0x28].copy_from_slice(&(data.len() as u64).to_le_bytes());
            b[ph + 0x28..ph + 0x30].copy_from_slice(&memsz.to_le_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    #[test]
    fn parses_segments_and_lists_pages() {
        let e = elf(
            GUEST_BASE + 0x10,
            &[
                (GUEST_BASE, 0x1800, b"code"),
                (GUEST_BASE + 0x1800, 0x2000, b"d"),
            ],
        );
        let (entry, segs) = parse_elf(&e).unwrap();
        assert_eq!(entry, GUEST_BASE + 0x10);
        assert_eq!(segs.len(), 2);
        assert_eq!(
            image_pages(&segs),
            vec![
                GUEST_BASE,
                GUEST_BASE + 0x1000,
                GUEST_BASE + 0x2000,
                GUEST_BASE + 0x3000
            ]
        );
    }

    #[test]
    fn refuses_hostile_images_naming_the_offset() {
        assert_eq!(parse_elf(b"MZ"), Err(ElfError::NotElf64(0)));
        // A segment over Vigil's memory.
        let e = elf(GUEST_BASE, &[(0x100000, 0x1000, b"x")]);
        assert_eq!(parse_elf(&e), Err(ElfError::OutsideImageArea(64)));
        // A segment past the image area.
        let e = elf(GUEST_BASE, &[(IMAGE_END - 0x1000, 0x2000, b"x")]);
        assert_eq!(parse_elf(&e), Err(ElfError::OutsideImageArea(64)));
        // File bytes past the end of the file.
        let mut e = elf(GUEST_BASE, &[(GUEST_BASE, 0x1000, b"xy")]);
        e.truncate(e.len() - 1);
        assert_eq!(parse_elf(&e), Err(ElfError::OutOfFile(72)));
        // Entry outside the image.
        let e = elf(0x1000, &[(GUEST_BASE, 0x1000, b"x")]);
        assert_eq!(parse_elf(&e), Err(ElfError::OutsideImageArea(0x18)));
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let t = guest_page_tables();
        assert_eq!(t[0][0] & !0xfff, GUEST_PML4 + 0x1000);
        assert_eq!(t[2][8], (16 * MIB) | 0x83);
        assert_eq!(t[2][511] & !0xfff, 1022 * MIB);
    }

    #[test]
    fn extend_is_the_page_info_chain() {
        let page = [0u8; 4096];
        let d = extend_normal(&[0; 48], 0x1000, &page);
        let mut info = vec![0u8; 0x70];
        info[0x30..0x60].copy_from_slice(&Sha384::digest(page));
        info[0x60] = 0x70;
        info[0x62] = 1;
        info[0x68..0x70].copy_from_slice(&0x1000u64.to_le_bytes());
        let want: [u8; 48] = Sha384::digest(&info).into();
        assert_eq!(d, want);
    }
}
