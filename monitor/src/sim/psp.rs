//! The simulated security processor: the software PSP of [`crate::soft_psp`] with the
//! sim's VMPCKs and a test signing key.
use crate::soft_psp::SoftPsp;
use p384::ecdsa::SigningKey;

/// The sim's PSP.
pub type SimPsp = SoftPsp;

/// The VMPCKs the sim puts into the secrets page (fixed test values).
pub fn test_vmpcks() -> [[u8; 32]; 4] {
    [[0xa0; 32], [0xa1; 32], [0xa2; 32], [0xa3; 32]]
}

/// The test VCEK's private key (PKCS#8 DER, P-384), from the repository's committed
/// TEST chain (product "Vigil-Test"; see attestation/testdata/test-root/README.md).
const TEST_VCEK_KEY: &[u8] =
    include_bytes!("../../../attestation/testdata/test-root/vcek-key.pk8.der");

/// The test VCEK signing key (parsed once: deriving its public half costs a scalar
/// multiplication, which would dominate launching a simulated VM).
pub fn test_signing_key() -> SigningKey {
    use p384::pkcs8::DecodePrivateKey;
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        // A file committed next to the code, not input: a failure here is a bug.
        SigningKey::from_pkcs8_der(TEST_VCEK_KEY)
            .expect("the committed test VCEK key is PKCS#8 P-384")
    })
    .clone()
}

/// A PSP with the test VMPCKs and key.
pub fn new_psp() -> SimPsp {
    SoftPsp::new(test_vmpcks(), test_signing_key())
}
