//! The guest's memory as the model holds it: it starts POISONED, not zeroed.
//!
//! On SNP hardware a page that changes owner (host to guest, or guest to host) reads
//! back as ciphertext under the other key: garbage, never zeros. A guest that forgets
//! to zero a page after PVALIDATE, or an SVSM that hands such a page to a lower VMPL,
//! shows it here by reading the poison pattern. Every word of the pattern carries its own
//! address, so a copied page is told apart from a fresh one.

use alloc::boxed::Box;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The high 16 bits of every poison word; the low 48 bits are the word's GPA.
pub const POISON_TAG: u64 = 0xBAD5_0000_0000_0000;

/// The poison word at `gpa` (8-byte aligned).
pub fn poison_word(gpa: u64) -> u64 {
    POISON_TAG | (gpa & 0x0000_FFFF_FFFF_FFFF)
}

/// An access outside the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange {
    /// First GPA of the access.
    pub gpa: u64,
    /// Its length.
    pub len: u64,
}

impl core::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "gpa {:#x}+{:#x} is outside guest memory",
            self.gpa, self.len
        )
    }
}

/// One 4 KiB page of guest memory, page aligned, so that the bare-metal model can map
/// the storage itself as the guest's RAM in its nested page tables.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Guest memory, GPA 0 up: page-aligned storage (whole pages), of which the first
/// `size` bytes are guest memory.
#[derive(Clone)]
pub struct Memory {
    pages: Box<[Page]>,
    size: usize,
}

impl core::fmt::Debug for Memory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Memory {{ size: {:#x}, at: {:#x} }}",
            self.size,
            self.host_address()
        )
    }
}

impl Memory {
    /// `size` bytes (rounded down to 8), all poisoned.
    pub fn new(size: u64) -> Memory {
        let n = usize::try_from(size & !7).unwrap_or(0);
        let mut m = Memory {
            pages: alloc::vec![Page([0; 4096]); n.div_ceil(4096)].into_boxed_slice(),
            size: n,
        };
        m.poison(0, n as u64).ok();
        m
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    /// The host address of GPA 0's byte (4 KiB aligned): GPA `g` is at `host_address() +
    /// g` for every `g < size()`. The bare-metal model maps this storage as the guest's
    /// RAM.
    pub fn host_address(&self) -> usize {
        self.pages.as_ptr() as usize
    }

    fn bytes(&self) -> &[u8] {
        &self.pages.as_bytes()[..self.size]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.pages.as_mut_bytes()[..self.size]
    }

    fn span(&self, gpa: u64, len: u64) -> Result<core::ops::Range<usize>, OutOfRange> {
        let err = OutOfRange { gpa, len };
        let end = gpa.checked_add(len).ok_or(err)?;
        if end > self.size() {
            return Err(err);
        }
        Ok(gpa as usize..end as usize)
    }

    /// Fill `[gpa, gpa+len)` with the poison pattern (8-byte granular).
    pub fn poison(&mut self, gpa: u64, len: u64) -> Result<(), OutOfRange> {
        let r = self.span(gpa & !7, (len + 7) & !7)?;
        let start = r.start as u64;
        for (i, w) in self.bytes_mut()[r].chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&poison_word(start + 8 * i as u64).to_le_bytes());
        }
        Ok(())
    }

    /// Read `out.len()` bytes at `gpa`.
    pub fn read(&self, gpa: u64, out: &mut [u8]) -> Result<(), OutOfRange> {
        let r = self.span(gpa, out.len() as u64)?;
        out.copy_from_slice(&self.bytes()[r]);
        Ok(())
    }

    /// Write `data` at `gpa`.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let r = self.span(gpa, data.len() as u64)?;
        self.bytes_mut()[r].copy_from_slice(data);
        Ok(())
    }

    /// The bytes at `[gpa, gpa+len)`.
    pub fn slice(&self, gpa: u64, len: u64) -> Result<&[u8], OutOfRange> {
        let r = self.span(gpa, len)?;
        Ok(&self.bytes()[r])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_memory_is_poison_with_addresses_not_zero() {
        let m = Memory::new(0x2000);
        let mut w = [0u8; 8];
        m.read(0x1008, &mut w).unwrap();
        assert_eq!(u64::from_le_bytes(w), 0xBAD5_0000_0000_1008);
        assert!(m.slice(0, 0x2000).unwrap().chunks(8).all(|c| c != [0; 8]));
    }

    #[test]
    fn out_of_range_and_wrapping_accesses_fail_without_damage() {
        let mut m = Memory::new(0x1000);
        assert_eq!(
            m.write(0xff8, &[1; 16]),
            Err(OutOfRange {
                gpa: 0xff8,
                len: 16
            })
        );
        assert!(m.read(u64::MAX, &mut [0; 2]).is_err());
        assert_eq!(
            m.slice(0xff8, 8).unwrap(),
            &poison_word(0xff8).to_le_bytes()
        );
    }

    #[test]
    fn storage_is_page_aligned_and_gpa_0_is_its_first_byte() {
        let mut m = Memory::new(0x3008);
        assert_eq!(m.host_address() % 4096, 0);
        assert_eq!(m.size(), 0x3008);
        m.write(0x3000, &[0xaa; 8]).unwrap();
        assert_eq!(m.slice(0x3000, 8).unwrap(), &[0xaa; 8]);
        assert_eq!(m.slice(0, 1).unwrap().as_ptr() as usize, m.host_address());
        // The page past `size` exists in storage but not in guest memory.
        assert!(m.read(0x3008, &mut [0; 1]).is_err());
        let empty = Memory::new(4);
        assert_eq!(empty.size(), 0);
    }

    #[test]
    fn write_then_poison_restores_the_pattern() {
        let mut m = Memory::new(0x1000);
        m.write(0x100, &[0; 64]).unwrap();
        assert_eq!(m.slice(0x100, 8).unwrap(), &[0; 8]);
        m.poison(0x100, 64).unwrap();
        assert_eq!(
            m.slice(0x100, 8).unwrap(),
            &poison_word(0x100).to_le_bytes()
        );
    }
}
