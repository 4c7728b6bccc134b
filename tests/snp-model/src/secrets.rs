//! The secrets page the security processor writes at launch (SNP firmware ABI #56860
//! §8.17.2, table "Secrets page format", version 3).
//!
//! | offset | field |
//! |---|---|
//! | 0x000 | VERSION (u32) = 3 |
//! | 0x004 | IMIEN (bit 0) |
//! | 0x008 | FMS (u32): family/model/stepping |
//! | 0x010 | GOSVW (16 bytes) |
//! | 0x020, 0x040, 0x060, 0x080 | VMPCK0..VMPCK3 (32 bytes each) |
//! | 0x0A0 | guest OS area (96 bytes; Linux keeps its sequence numbers here) |
//! | 0x100 | VMSA tweak bitmap (64 bytes) |
//! | 0x140 | guest area 1 (the SVSM spec puts the SVSM fields here; firmware leaves 0) |
//! | 0x160 | TSC_FACTOR (u32) |
//!
//! Everything the firmware does not write is zero.

/// Offset of VMPCK0; VMPCK n is at `VMPCK_OFFSET + 32 * n`.
pub const VMPCK_OFFSET: usize = 0x20;
/// Secrets page version the model writes.
pub const SECRETS_VERSION: u32 = 3;
/// FMS of the model's CPU (family 19h, model 01h, stepping 1, as CPUID 1 EAX).
pub const FMS: u32 = 0x00a0_0f11;

/// The secrets page with these four VMPCKs.
pub fn secrets_page(vmpck: &[[u8; 32]; 4]) -> [u8; 4096] {
    let mut p = [0u8; 4096];
    p[0..4].copy_from_slice(&SECRETS_VERSION.to_le_bytes());
    p[8..12].copy_from_slice(&FMS.to_le_bytes());
    for (i, k) in vmpck.iter().enumerate() {
        let o = VMPCK_OFFSET + 32 * i;
        p[o..o + 32].copy_from_slice(k);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmpcks_at_their_offsets_and_the_rest_zero() {
        let keys = [[1u8; 32], [2; 32], [3; 32], [4; 32]];
        let p = secrets_page(&keys);
        assert_eq!(&p[0..4], &[3, 0, 0, 0]);
        assert_eq!(&p[0x20..0x40], &[1; 32]);
        assert_eq!(&p[0x80..0xa0], &[4; 32]);
        assert!(p[0xa0..].iter().all(|&b| b == 0));
    }
}
