//! The emulated security processor: the simulator's own `monitor::soft_psp::SoftPsp`
//! (open the guest request, check VMPCK index and sequence number, build and sign a
//! version-5 report, seal the answer), keyed with the TEST VCEK of
//! attestation/testdata/test-root, whose reports no verifier accepts unless told
//! `--allow-test-root`. The report carries the TCB and CHIP_ID that certificate
//! certifies, POLICY 0x30000, and MEASUREMENT = the launch digest the kernel computed
//! from what it loaded (see `emulated::mod`).

use monitor::soft_psp::SoftPsp;
use p384::ecdsa::SigningKey;

/// The TEST VCEK's private key (PKCS#8 DER), public on purpose.
pub const TEST_VCEK_KEY: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/vcek-key.pk8.der");
/// The TEST ARK certificate.
pub const TEST_ARK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/ark.pem");
/// The TEST ASK certificate.
pub const TEST_ASK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/ask.pem");
/// The TEST VCEK certificate.
pub const TEST_VCEK_PEM: &[u8] =
    include_bytes!("../../../../attestation/testdata/test-root/vcek.pem");

/// The guest policy reported.
pub const POLICY: u64 = 0x3_0000;

/// The signing key did not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyError;

/// The emulated PSP: `SoftPsp` with the test VCEK, reporting `measurement`.
pub fn new_psp(vmpck: [[u8; 32]; 4], measurement: [u8; 48]) -> Result<SoftPsp, KeyError> {
    use p384::pkcs8::DecodePrivateKey;
    let key = SigningKey::from_pkcs8_der(TEST_VCEK_KEY).map_err(|_| KeyError)?;
    let mut p = SoftPsp::new(vmpck, key);
    p.measurement = measurement;
    p.policy = POLICY;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_the_certified_key_and_values() {
        let p = new_psp([[1; 32]; 4], [9; 48]).unwrap();
        assert_eq!(p.tcb, monitor::soft_psp::TEST_TCB);
        assert_eq!(p.chip_id, monitor::soft_psp::test_chip_id());
        assert_eq!(p.measurement, [9; 48]);
        // The key is the one in vcek.der: its public point is in the certificate.
        let point = p.verifying_key().to_encoded_point(false);
        let der = include_bytes!("../../../../attestation/testdata/test-root/vcek.der");
        assert!(der
            .windows(point.as_bytes().len())
            .any(|w| w == point.as_bytes()));
    }
}
