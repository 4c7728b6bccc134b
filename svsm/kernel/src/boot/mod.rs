//! Boot: the PVH and IGVM entry assembly and the boot-information parser.

#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
pub mod igvm;
pub mod pvh;

/// Reads physical memory through the bootstrap identity map (first 1 GiB, set up by the
/// entry assembly). Used only before the kernel's own page tables are loaded.
#[cfg(target_os = "none")]
pub struct BootMapReader;

#[cfg(target_os = "none")]
impl pvh::PhysReader for BootMapReader {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), pvh::Unreadable> {
        const BOOT_MAP_END: u64 = 1 << 30;
        let end = paddr.checked_add(buf.len() as u64).ok_or(pvh::Unreadable)?;
        // Address 0 is the null pointer to Rust: refused rather than read.
        if paddr == 0 || end > BOOT_MAP_END {
            return Err(pvh::Unreadable);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `paddr + i` is below 1 GiB, which the bootstrap page tables map
            // (read+write) to the same physical address; the loader's data is plain
            // memory (RAM or ROM), so a volatile byte read has no side effect.
            *b = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
        }
        Ok(())
    }
}
