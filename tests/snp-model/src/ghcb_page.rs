//! The GHCB page as the host reads and writes it (GHCB spec #56421 §2.3, table "GHCB
//! layout"; Linux `struct ghcb` / `struct ghcb_save_area` in arch/x86/include/asm/svm.h).
//!
//! The save area uses the VMSA's offsets; a field counts only if its bit is set in the
//! valid bitmap at 0x3F0 (bit n = the quadword at offset 8n). The shared buffer is
//! 0x800..0xFF0; the protocol version (u16) is at 0xFFA and the usage (u32) at 0xFFC.

/// Offsets of the save-area fields the host uses.
pub mod off {
    /// CPL (u8).
    pub const CPL: usize = 0x0cb;
    /// RAX.
    pub const RAX: usize = 0x1f8;
    /// RCX.
    pub const RCX: usize = 0x308;
    /// RDX.
    pub const RDX: usize = 0x310;
    /// RBX.
    pub const RBX: usize = 0x318;
    /// SW_EXITCODE.
    pub const SW_EXIT_CODE: usize = 0x390;
    /// SW_EXITINFO1.
    pub const SW_EXIT_INFO_1: usize = 0x398;
    /// SW_EXITINFO2.
    pub const SW_EXIT_INFO_2: usize = 0x3a0;
    /// SW_SCRATCH.
    pub const SW_SCRATCH: usize = 0x3a8;
    /// XCR0.
    pub const XCR0: usize = 0x3e8;
    /// The valid bitmap (16 bytes).
    pub const VALID_BITMAP: usize = 0x3f0;
    /// Shared buffer start.
    pub const SHARED_BUFFER: usize = 0x800;
    /// Shared buffer end (exclusive).
    pub const SHARED_BUFFER_END: usize = 0xff0;
    /// Protocol version (u16).
    pub const PROTOCOL_VERSION: usize = 0xffa;
    /// GHCB usage (u32).
    pub const USAGE: usize = 0xffc;
}

/// A copy of one GHCB page, taken once by the host (KVM copies the fields it uses in
/// `sev_es_sync_from_ghcb`, so a guest changing the page meanwhile changes nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ghcb(pub [u8; 4096]);

impl Ghcb {
    /// A zeroed GHCB (for tests and the model's own guests).
    pub fn new() -> Ghcb {
        Ghcb([0; 4096])
    }

    fn u64_at(&self, o: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[o..o + 8]);
        u64::from_le_bytes(b)
    }

    /// Whether the field at offset `o` is marked valid.
    pub fn valid(&self, o: usize) -> bool {
        let bit = o / 8;
        self.0[off::VALID_BITMAP + bit / 8] & (1 << (bit % 8)) != 0
    }

    /// The field at `o` if valid, else `None`.
    pub fn get(&self, o: usize) -> Option<u64> {
        self.valid(o).then(|| self.u64_at(o))
    }

    /// The field at `o` if valid, else 0 (KVM's `kvm_ghcb_get_*_if_valid`).
    pub fn get_or_zero(&self, o: usize) -> u64 {
        self.get(o).unwrap_or(0)
    }

    /// Set the field at `o` and its valid bit (KVM's `ghcb_set_*`).
    pub fn set(&mut self, o: usize, v: u64) {
        self.0[o..o + 8].copy_from_slice(&v.to_le_bytes());
        let bit = o / 8;
        self.0[off::VALID_BITMAP + bit / 8] |= 1 << (bit % 8);
    }

    /// Set CPL (a byte) and its valid bit.
    pub fn set_cpl(&mut self, cpl: u8) {
        self.0[off::CPL] = cpl;
        let bit = off::CPL / 8;
        self.0[off::VALID_BITMAP + bit / 8] |= 1 << (bit % 8);
    }

    /// Clear the valid bitmap (KVM does so after copying the fields in).
    pub fn clear_valid(&mut self) {
        self.0[off::VALID_BITMAP..off::VALID_BITMAP + 16].fill(0);
    }

    /// Protocol version.
    pub fn version(&self) -> u16 {
        u16::from_le_bytes([
            self.0[off::PROTOCOL_VERSION],
            self.0[off::PROTOCOL_VERSION + 1],
        ])
    }

    /// Set the protocol version.
    pub fn set_version(&mut self, v: u16) {
        self.0[off::PROTOCOL_VERSION..off::PROTOCOL_VERSION + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// GHCB usage.
    pub fn usage(&self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off::USAGE..off::USAGE + 4]);
        u32::from_le_bytes(b)
    }

    /// Set the usage.
    pub fn set_usage(&mut self, u: u32) {
        self.0[off::USAGE..off::USAGE + 4].copy_from_slice(&u.to_le_bytes());
    }
}

impl Default for Ghcb {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_bits_follow_quadword_index() {
        let mut g = Ghcb::new();
        assert_eq!(g.get(off::RAX), None);
        g.set(off::RAX, 7);
        // RAX at 0x1F8 is quadword 63: byte 7 bit 7 of the bitmap.
        assert_eq!(g.0[off::VALID_BITMAP + 7], 0x80);
        assert_eq!(g.get(off::RAX), Some(7));
        g.set(off::SW_EXIT_CODE, 0x72);
        // 0x390 / 8 = 114: byte 14 bit 2.
        assert_eq!(g.0[off::VALID_BITMAP + 14], 0x04);
        g.set_cpl(3);
        assert!(g.valid(off::CPL));
        g.clear_valid();
        assert_eq!(g.get_or_zero(off::RAX), 0);
        g.set_version(2);
        g.set_usage(1);
        assert_eq!((g.version(), g.usage()), (2, 1));
    }
}
