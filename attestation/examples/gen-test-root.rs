//! Regenerates Vigil's TEST certificate chain in `attestation/testdata/test-root/`:
//! ARK (RSA-4096, self-signed) -> ASK (RSA-4096) -> VCEK (P-384), all RSA-PSS SHA-384,
//! shaped like AMD's, product name "Vigil-Test". Keys come from a ChaCha20 generator with
//! a fixed seed, so the output is reproducible. These are TEST keys, public on purpose.
//!
//! Usage: `cargo run -p attestation --example gen-test-root [OUT_DIR]`

use attestation::test_chain::{
    amd_name, build_cert, p384_spki, rsa_spki, test_chip_id, test_validity, Kind, TEST_PRODUCT,
    TEST_TCB,
};
use der::{Encode, EncodePem};
use pkcs8::EncodePrivateKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/test-root").into());
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out)?;
    let mut rng = ChaCha20Rng::from_seed(*b"vigil-test-root-seed-do-not-use!");

    eprintln!("generating ARK (RSA-4096)...");
    let ark_key = rsa::RsaPrivateKey::new(&mut rng, 4096)?;
    eprintln!("generating ASK (RSA-4096)...");
    let ask_key = rsa::RsaPrivateKey::new(&mut rng, 4096)?;
    let vcek_key = p384::SecretKey::random(&mut rng);

    let ark_name = amd_name(&format!("ARK-{TEST_PRODUCT}"))?;
    let ask_name = amd_name(&format!("SEV-{TEST_PRODUCT}"))?;
    let ark_spki = rsa_spki(&ark_key)?;
    let ark = build_cert(
        Kind::Root,
        &[0x01, 0x00, 0x00],
        ark_name.clone(),
        ark_name.clone(),
        test_validity()?,
        ark_spki.clone(),
        &ark_key,
        &mut rng,
    )?;
    let ask = build_cert(
        Kind::Intermediate(&ark_spki),
        &[0x01, 0x00, 0x01],
        ask_name.clone(),
        ark_name,
        test_validity()?,
        rsa_spki(&ask_key)?,
        &ark_key,
        &mut rng,
    )?;
    let chip_id = test_chip_id();
    let vcek = build_cert(
        Kind::Vcek {
            product: TEST_PRODUCT,
            tcb: TEST_TCB,
            hwid: &chip_id,
        },
        &[0x00],
        amd_name("SEV-VCEK")?,
        ask_name,
        test_validity()?,
        p384_spki(&vcek_key)?,
        &ask_key,
        &mut rng,
    )?;
    let le = der::pem::LineEnding::LF;
    std::fs::write(out.join("ark.pem"), ark.to_pem(le)?)?;
    std::fs::write(out.join("ask.pem"), ask.to_pem(le)?)?;
    std::fs::write(out.join("vcek.pem"), vcek.to_pem(le)?)?;
    std::fs::write(out.join("vcek.der"), vcek.to_der()?)?;
    std::fs::write(
        out.join("vcek-key.pk8.der"),
        vcek_key.to_pkcs8_der()?.as_bytes(),
    )?;
    std::fs::write(
        out.join("ark-key.pk8.der"),
        ark_key.to_pkcs8_der()?.as_bytes(),
    )?;
    std::fs::write(
        out.join("ask-key.pk8.der"),
        ask_key.to_pkcs8_der()?.as_bytes(),
    )?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
