//! The attestation report, version 5 (SNP firmware ABI #56860, table "ATTESTATION_REPORT
//! structure"), and its signature: ECDSA P-384 with SHA-384 over bytes 0x000..0x2A0, R
//! and S stored little-endian in 72-byte fields at 0x2A0 and 0x2E8.

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};

/// Report size.
pub const REPORT_LEN: usize = 0x4a0;
/// Bytes covered by the signature.
pub const SIGNED_LEN: usize = 0x2a0;
/// The report version the model writes.
pub const REPORT_VERSION: u32 = 5;

/// Field offsets (SNP ABI table "ATTESTATION_REPORT structure").
pub mod off {
    /// VERSION (u32).
    pub const VERSION: usize = 0x000;
    /// GUEST_SVN (u32).
    pub const GUEST_SVN: usize = 0x004;
    /// POLICY (u64).
    pub const POLICY: usize = 0x008;
    /// VMPL (u32).
    pub const VMPL: usize = 0x030;
    /// SIGNATURE_ALGO (u32): 1 = ECDSA P-384 with SHA-384.
    pub const SIGNATURE_ALGO: usize = 0x034;
    /// CURRENT_TCB (u64).
    pub const CURRENT_TCB: usize = 0x038;
    /// PLATFORM_INFO (u64).
    pub const PLATFORM_INFO: usize = 0x040;
    /// KEY_INFO (u32): bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY.
    pub const KEY_INFO: usize = 0x048;
    /// REPORT_DATA (64 bytes).
    pub const REPORT_DATA: usize = 0x050;
    /// MEASUREMENT (48 bytes).
    pub const MEASUREMENT: usize = 0x090;
    /// HOST_DATA (32 bytes).
    pub const HOST_DATA: usize = 0x0c0;
    /// REPORT_ID (32 bytes).
    pub const REPORT_ID: usize = 0x140;
    /// REPORT_ID_MA (32 bytes).
    pub const REPORT_ID_MA: usize = 0x160;
    /// REPORTED_TCB (u64).
    pub const REPORTED_TCB: usize = 0x180;
    /// CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP (u8 each).
    pub const CPUID_FAM_ID: usize = 0x188;
    /// CHIP_ID (64 bytes).
    pub const CHIP_ID: usize = 0x1a0;
    /// COMMITTED_TCB (u64).
    pub const COMMITTED_TCB: usize = 0x1e0;
    /// CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR (u8 each).
    pub const CURRENT_BUILD: usize = 0x1e8;
    /// COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR (u8 each).
    pub const COMMITTED_BUILD: usize = 0x1ec;
    /// LAUNCH_TCB (u64).
    pub const LAUNCH_TCB: usize = 0x1f0;
    /// LAUNCH_MIT_VECTOR (u64, v5).
    pub const LAUNCH_MIT_VECTOR: usize = 0x1f8;
    /// CURRENT_MIT_VECTOR (u64, v5).
    pub const CURRENT_MIT_VECTOR: usize = 0x200;
    /// SIGNATURE R (72 bytes).
    pub const SIG_R: usize = 0x2a0;
    /// SIGNATURE S (72 bytes).
    pub const SIG_S: usize = 0x2e8;
}

/// What the security processor knows of its platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    /// TCB_VERSION reported as current, reported, committed and launch TCB.
    pub tcb: u64,
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// Firmware version (major, minor, build).
    pub fw: (u8, u8, u8),
    /// Family, model, stepping.
    pub fms: (u8, u8, u8),
}

/// The guest's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The launch digest.
    pub measurement: [u8; 48],
    /// The guest policy.
    pub policy: u64,
    /// REPORT_ID.
    pub report_id: [u8; 32],
}

fn put(r: &mut [u8], o: usize, b: &[u8]) {
    r[o..o + b.len()].copy_from_slice(b);
}

/// Build and sign a report for `vmpl` with `report_data`.
pub fn build(
    key: &SigningKey,
    p: &Platform,
    g: &Guest,
    vmpl: u32,
    report_data: &[u8; 64],
) -> [u8; REPORT_LEN] {
    let mut r = [0u8; REPORT_LEN];
    put(&mut r, off::VERSION, &REPORT_VERSION.to_le_bytes());
    put(&mut r, off::POLICY, &g.policy.to_le_bytes());
    put(&mut r, off::VMPL, &vmpl.to_le_bytes());
    put(&mut r, off::SIGNATURE_ALGO, &1u32.to_le_bytes());
    for o in [
        off::CURRENT_TCB,
        off::REPORTED_TCB,
        off::COMMITTED_TCB,
        off::LAUNCH_TCB,
    ] {
        put(&mut r, o, &p.tcb.to_le_bytes());
    }
    // KEY_INFO 0: signed with the VCEK, no author key.
    put(&mut r, off::REPORT_DATA, report_data);
    put(&mut r, off::MEASUREMENT, &g.measurement);
    put(&mut r, off::REPORT_ID, &g.report_id);
    // No migration agent: REPORT_ID_MA is all ones (as in the Genoa, Turin and Milan
    // reports of attestation/testdata/snp).
    put(&mut r, off::REPORT_ID_MA, &[0xff; 32]);
    put(&mut r, off::CPUID_FAM_ID, &[p.fms.0, p.fms.1, p.fms.2]);
    put(&mut r, off::CHIP_ID, &p.chip_id);
    let (major, minor, build) = p.fw;
    put(&mut r, off::CURRENT_BUILD, &[build, minor, major]);
    put(&mut r, off::COMMITTED_BUILD, &[build, minor, major]);
    sign(key, &mut r);
    r
}

/// Sign bytes 0..0x2A0 and store R and S little-endian.
pub fn sign(key: &SigningKey, r: &mut [u8; REPORT_LEN]) {
    let sig: Signature = key.sign(&r[..SIGNED_LEN]);
    let (rr, ss) = sig.split_bytes();
    for (o, v) in [(off::SIG_R, rr), (off::SIG_S, ss)] {
        let mut le = [0u8; 72];
        for (i, b) in v.iter().rev().enumerate() {
            le[i] = *b;
        }
        put(r, o, &le);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::signature::Verifier;

    #[test]
    fn fields_at_their_offsets_and_signature_verifies() {
        let key = SigningKey::from_slice(&[7; 48]).unwrap();
        let p = Platform {
            tcb: 0x1122,
            chip_id: [3; 64],
            fw: (1, 55, 9),
            fms: (0x19, 1, 1),
        };
        let g = Guest {
            measurement: [4; 48],
            policy: 0x30000,
            report_id: [5; 32],
        };
        let r = build(&key, &p, &g, 2, &[6; 64]);
        assert_eq!(&r[0..4], &[5, 0, 0, 0]);
        assert_eq!(&r[0x30..0x38], &[2, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&r[0x50..0x90], &[6; 64]);
        assert_eq!(&r[0x90..0xc0], &[4; 48]);
        assert_eq!(&r[0x1e8..0x1eb], &[9, 55, 1]);
        assert_eq!(&r[0x1f0..0x1f8], &0x1122u64.to_le_bytes());
        let mut be = [0u8; 96];
        for i in 0..48 {
            be[i] = r[0x2a0 + 47 - i];
            be[48 + i] = r[0x2e8 + 47 - i];
        }
        let sig = Signature::from_slice(&be).unwrap();
        key.verifying_key().verify(&r[..SIGNED_LEN], &sig).unwrap();
        let mut bad = r;
        bad[0x90] ^= 1;
        assert!(key
            .verifying_key()
            .verify(&bad[..SIGNED_LEN], &sig)
            .is_err());
    }
}
