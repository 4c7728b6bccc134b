//! Boot: the PVH entry ([`pvh_entry!`](crate::pvh_entry)) and the boot-information
//! parser ([`pvh`]).

mod entry;
pub mod pvh;

/// How much the entry's bootstrap page tables identity-map: the first 4 GiB, with 2 MiB
/// pages (writable, executable).
pub const BOOT_MAP_END: u64 = 4 << 30;

/// Reads physical memory through the bootstrap identity map that
/// [`pvh_entry!`](crate::pvh_entry) sets up (everything below [`BOOT_MAP_END`]).
#[cfg(target_os = "none")]
pub struct BootMapReader;

#[cfg(target_os = "none")]
impl pvh::PhysReader for BootMapReader {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), pvh::Unreadable> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(pvh::Unreadable)?;
        // Address 0 is the null pointer to Rust: refused rather than read.
        if paddr == 0 || end > BOOT_MAP_END {
            return Err(pvh::Unreadable);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `paddr + i` is below BOOT_MAP_END, which the bootstrap page tables
            // map (read+write) to the same physical address; the loader's data is plain
            // memory (RAM or ROM), so a volatile byte read has no side effect.
            *b = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
        }
        Ok(())
    }
}
