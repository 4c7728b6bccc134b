//! Guest memory through a trait (like rust-vmm's vm-memory): the monitor never holds a
//! pointer into guest memory, it copies bytes in and out at guest-physical addresses.
use crate::addr::Gpa;

/// A failed guest-memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The address is not backed by memory.
    OutOfRange(Gpa),
    /// The page is not a validated private page (on hardware: a #VC).
    NotValidated(Gpa),
}

/// Byte access to guest memory at VMPL0's rights.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from `gpa`.
    fn read(&mut self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `buf` to `gpa`.
    fn write(&mut self, gpa: Gpa, buf: &[u8]) -> Result<(), MemError>;
    /// Fills `len` bytes at `gpa` with zeros.
    fn zero(&mut self, gpa: Gpa, len: u64) -> Result<(), MemError> {
        let z = [0u8; 512];
        let mut off = 0u64;
        while off < len {
            let n = core::cmp::min(512, len - off) as usize;
            let at = gpa.checked_add(off).ok_or(MemError::OutOfRange(gpa))?;
            self.write(at, &z[..n])?;
            off += n as u64;
        }
        Ok(())
    }
}
