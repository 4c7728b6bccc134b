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

/// The test signing key (a P-384 scalar derived from a fixed seed; not AMD's).
pub fn test_signing_key() -> SigningKey {
    let mut seed = [0x5au8; 48];
    seed[0] = 0x01;
    // A constant, not input: a failure here is a bug in this file.
    SigningKey::from_slice(&seed).expect("the fixed test scalar is a valid P-384 key")
}

/// A PSP with the test VMPCKs and key.
pub fn new_psp() -> SimPsp {
    SoftPsp::new(test_vmpcks(), test_signing_key())
}
