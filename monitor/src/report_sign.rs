//! A software security processor's report signer: builds a version-5 attestation
//! report and signs it with ECDSA P-384/SHA-384 in AMD's format (r and s little-endian
//! in 72-byte fields at 0x2A0). no_std: the sim PSP uses it and so will the emulated
//! kernel's software PSP. Its key is a test VCEK: reports it signs chain to a test root
//! that no verifier accepts unless told to.
//!
//! Offsets written (SNP firmware ABI #56860, ATTESTATION_REPORT): VERSION 0x000,
//! GUEST_SVN 0x004, POLICY 0x008, VMPL 0x030, SIGNATURE_ALGO 0x034, CURRENT_TCB 0x038,
//! PLATFORM_INFO 0x040, REPORT_DATA 0x050, MEASUREMENT 0x090, HOST_DATA 0x0C0,
//! REPORT_ID 0x140, REPORTED_TCB 0x180, CPUID_FAM/MOD/STEP 0x188, CHIP_ID 0x1A0,
//! COMMITTED_TCB 0x1E0, LAUNCH_TCB 0x1F0, LAUNCH_MIT_VECTOR 0x1F8,
//! CURRENT_MIT_VECTOR 0x200, SIGNATURE 0x2A0.
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use svsm_abi::guest_request::REPORT_SIZE;

/// Report version produced.
pub const REPORT_VERSION: u32 = 5;
/// SIGNATURE_ALGO: ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// End of the signed part.
pub const SIGNED_LEN: usize = 0x2a0;

/// The fields of a report the software PSP fills in.
#[derive(Clone, Copy, Debug)]
pub struct ReportFields {
    /// Guest policy.
    pub policy: u64,
    /// VMPL of the report.
    pub vmpl: u32,
    /// REPORT_DATA.
    pub report_data: [u8; 64],
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// REPORT_ID.
    pub report_id: [u8; 32],
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// TCB value used for CURRENT/REPORTED/COMMITTED/LAUNCH_TCB.
    pub tcb: u64,
}

/// Builds and signs a report.
pub fn sign_report(key: &SigningKey, f: &ReportFields) -> [u8; REPORT_SIZE] {
    let mut r = [0u8; REPORT_SIZE];
    put(&mut r, 0x000, &REPORT_VERSION.to_le_bytes());
    put(&mut r, 0x008, &f.policy.to_le_bytes());
    put(&mut r, 0x030, &f.vmpl.to_le_bytes());
    put(&mut r, 0x034, &SIG_ALGO_ECDSA_P384_SHA384.to_le_bytes());
    put(&mut r, 0x038, &f.tcb.to_le_bytes());
    put(&mut r, 0x050, &f.report_data);
    put(&mut r, 0x090, &f.measurement);
    put(&mut r, 0x0c0, &f.host_data);
    put(&mut r, 0x140, &f.report_id);
    put(&mut r, 0x180, &f.tcb.to_le_bytes());
    // CPUID family 0x19, model 0x11, stepping 1 (a Genoa-shaped test part).
    put(&mut r, 0x188, &[0x19, 0x11, 0x01]);
    put(&mut r, 0x1a0, &f.chip_id);
    put(&mut r, 0x1e0, &f.tcb.to_le_bytes());
    put(&mut r, 0x1f0, &f.tcb.to_le_bytes());
    let sig: Signature = key.sign(&r[..SIGNED_LEN]);
    let (rr, ss) = sig.split_bytes();
    let mut le = [0u8; 48];
    le.copy_from_slice(&rr);
    le.reverse();
    put(&mut r, SIGNED_LEN, &le);
    le.copy_from_slice(&ss);
    le.reverse();
    put(&mut r, SIGNED_LEN + 72, &le);
    r
}

fn put(r: &mut [u8], off: usize, b: &[u8]) {
    r[off..off + b.len()].copy_from_slice(b);
}
