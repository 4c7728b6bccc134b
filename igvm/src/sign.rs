//! SNP ID block and ID authentication structure (SNP firmware ABI #56860,
//! SNP_LAUNCH_FINISH), signing and verification.
//!
//! The ID block (96 bytes: launch digest, family ID, image ID, version, guest SVN,
//! policy) is signed with the ID key (ECDSA P-384, SHA-384); the ID key's public key
//! (a 0x404-byte structure: curve, Qx, Qy, little-endian and zero-padded to 72 bytes)
//! is optionally signed with the author key. The firmware checks both at launch and puts
//! SHA-384 of each public-key structure into the report (ID_KEY_DIGEST,
//! AUTHOR_KEY_DIGEST). In an IGVM file the block is an SNP_ID_BLOCK directive; the
//! policy comes from the file's guest policy.
//!
//! ECDSA nonces are derived per RFC 6979 (the `p384` crate's default), so signing is
//! deterministic and a signed file is byte-reproducible too.

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::Serialize;
use sha2::{Digest, Sha384};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{Error, Result};

/// Algorithm value of ECDSA P-384 with SHA-384.
pub const ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Curve value of P-384.
pub const CURVE_P384: u32 = 2;

/// The ID block.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct IdBlock {
    /// Expected launch digest.
    pub ld: [u8; 48],
    /// Family ID.
    pub family_id: [u8; 16],
    /// Image ID.
    pub image_id: [u8; 16],
    /// Version of the ID block format (1).
    pub version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Guest policy.
    pub policy: u64,
}

const _: () = assert!(core::mem::size_of::<IdBlock>() == 0x60);

/// The public-key structure that is signed by the author key and hashed into the report.
#[derive(Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PubKey {
    /// [`CURVE_P384`].
    pub curve: u32,
    /// Qx, little-endian, zero-padded.
    pub qx: [u8; 72],
    /// Qy, little-endian, zero-padded.
    pub qy: [u8; 72],
    /// Zero.
    pub reserved: [u8; 0x370],
}

const _: () = assert!(core::mem::size_of::<PubKey>() == 0x404);

fn le72(be: &[u8]) -> [u8; 72] {
    let mut out = [0u8; 72];
    for (i, b) in be.iter().rev().enumerate() {
        out[i] = *b;
    }
    out
}

fn be48(le: &[u8; 72]) -> Result<[u8; 48]> {
    if le[48..].iter().any(|b| *b != 0) {
        return Err(Error::Crypto("component wider than 48 bytes".into()));
    }
    let mut out = [0u8; 48];
    for i in 0..48 {
        out[47 - i] = le[i];
    }
    Ok(out)
}

impl PubKey {
    /// The structure for a P-384 verifying key.
    pub fn from_key(k: &VerifyingKey) -> Self {
        let p = k.to_encoded_point(false);
        let mut s = Self {
            curve: CURVE_P384,
            qx: [0; 72],
            qy: [0; 72],
            reserved: [0; 0x370],
        };
        if let (Some(x), Some(y)) = (p.x(), p.y()) {
            s.qx = le72(x);
            s.qy = le72(y);
        }
        s
    }
    /// The verifying key in it.
    pub fn to_key(&self) -> Result<VerifyingKey> {
        if self.curve != CURVE_P384 {
            return Err(Error::Crypto(format!(
                "curve {} is not P-384 (2)",
                self.curve
            )));
        }
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&be48(&self.qx)?);
        sec1.extend_from_slice(&be48(&self.qy)?);
        VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| Error::Crypto(format!("public key: {e}")))
    }
    /// SHA-384 of the structure: what the report's ID_KEY_DIGEST / AUTHOR_KEY_DIGEST holds.
    pub fn digest(&self) -> [u8; 48] {
        Sha384::digest(self.as_bytes()).into()
    }
    /// The IGVM form (curve, reserved, qx, qy).
    pub fn to_igvm(&self) -> IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
        IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: self.curve,
            reserved: 0,
            qx: self.qx,
            qy: self.qy,
        }
    }
    /// From the IGVM form.
    pub fn from_igvm(k: &IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY) -> Self {
        Self {
            curve: k.curve,
            qx: k.qx,
            qy: k.qy,
            reserved: [0; 0x370],
        }
    }
}

/// A signature in SNP form: r and s little-endian, zero-padded to 72 bytes.
pub fn sig_to_igvm(sig: &Signature) -> IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
    let (r, s) = sig.split_bytes();
    IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
        r_comp: le72(&r),
        s_comp: le72(&s),
    }
}

/// Back from SNP form.
pub fn sig_from_igvm(s: &IGVM_VHS_SNP_ID_BLOCK_SIGNATURE) -> Result<Signature> {
    let r = be48(&s.r_comp)?;
    let sv = be48(&s.s_comp)?;
    Signature::from_scalars(r, sv).map_err(|e| Error::Crypto(format!("signature: {e}")))
}

/// Load a P-384 private key from PEM (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY") or
/// DER (PKCS#8).
pub fn load_signing_key(data: &[u8], what: &str) -> Result<SigningKey> {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = SigningKey::from_pkcs8_pem(text) {
            return Ok(k);
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
            return Ok(SigningKey::from(k));
        }
    }
    SigningKey::from_pkcs8_der(data).map_err(|e| {
        Error::Crypto(format!(
            "{what}: not a P-384 private key in PEM or PKCS#8 ({e})"
        ))
    })
}

/// Load a P-384 public key from PEM or DER SubjectPublicKeyInfo.
pub fn load_verifying_key(data: &[u8], what: &str) -> Result<VerifyingKey> {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = VerifyingKey::from_public_key_pem(text) {
            return Ok(k);
        }
    }
    VerifyingKey::from_public_key_der(data)
        .map_err(|e| Error::Crypto(format!("{what}: not a P-384 public key ({e})")))
}

/// Load a signature: DER (ASN.1 ECDSA-Sig-Value) or 96 raw bytes r||s big-endian.
pub fn load_signature(data: &[u8], what: &str) -> Result<Signature> {
    if data.len() == 96 {
        return Signature::from_slice(data).map_err(|e| Error::Crypto(format!("{what}: {e}")));
    }
    Signature::from_der(data).map_err(|e| {
        Error::Crypto(format!(
            "{what}: not a DER or raw r||s P-384 signature ({e})"
        ))
    })
}

/// The fields of an SNP_ID_BLOCK directive, in a form for signing and checking.
#[derive(Clone, Debug)]
pub struct SignedIdBlock {
    /// The ID block (policy from the file).
    pub block: IdBlock,
    /// ID public key.
    pub id_key: PubKey,
    /// Signature of the block by the ID key.
    pub id_sig: Signature,
    /// Author public key and its signature over `id_key`, if any.
    pub author: Option<(PubKey, Signature)>,
}

impl SignedIdBlock {
    /// The IGVM directive.
    pub fn to_directive(&self, compatibility_mask: u32) -> IgvmDirectiveHeader {
        let zero_sig = IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: [0; 72],
            s_comp: [0; 72],
        };
        let zero_key = IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY {
            curve: 0,
            reserved: 0,
            qx: [0; 72],
            qy: [0; 72],
        };
        IgvmDirectiveHeader::SnpIdBlock {
            compatibility_mask,
            author_key_enabled: u8::from(self.author.is_some()),
            reserved: [0; 3],
            ld: self.block.ld,
            family_id: self.block.family_id,
            image_id: self.block.image_id,
            version: self.block.version,
            guest_svn: self.block.guest_svn,
            id_key_algorithm: ALGO_ECDSA_P384_SHA384,
            author_key_algorithm: if self.author.is_some() {
                ALGO_ECDSA_P384_SHA384
            } else {
                0
            },
            id_key_signature: Box::new(sig_to_igvm(&self.id_sig)),
            id_public_key: Box::new(self.id_key.to_igvm()),
            author_key_signature: Box::new(
                self.author
                    .as_ref()
                    .map(|(_, s)| sig_to_igvm(s))
                    .unwrap_or(zero_sig),
            ),
            author_public_key: Box::new(
                self.author
                    .as_ref()
                    .map(|(k, _)| k.to_igvm())
                    .unwrap_or(zero_key),
            ),
        }
    }

    /// Read the block from a directive (`policy` from the file's guest policy).
    pub fn from_directive(h: &IgvmDirectiveHeader, policy: u64) -> Result<Option<Self>> {
        let IgvmDirectiveHeader::SnpIdBlock {
            author_key_enabled,
            ld,
            family_id,
            image_id,
            version,
            guest_svn,
            id_key_algorithm,
            author_key_algorithm,
            id_key_signature,
            id_public_key,
            author_key_signature,
            author_public_key,
            ..
        } = h
        else {
            return Ok(None);
        };
        if *id_key_algorithm != ALGO_ECDSA_P384_SHA384 {
            return Err(Error::Crypto(format!(
                "ID key algorithm {id_key_algorithm} is not ECDSA P-384 (1)"
            )));
        }
        let author = if *author_key_enabled != 0 {
            if *author_key_algorithm != ALGO_ECDSA_P384_SHA384 {
                return Err(Error::Crypto(format!(
                    "author key algorithm {author_key_algorithm} is not ECDSA P-384 (1)"
                )));
            }
            Some((
                PubKey::from_igvm(author_public_key),
                sig_from_igvm(author_key_signature)?,
            ))
        } else {
            None
        };
        Ok(Some(Self {
            block: IdBlock {
                ld: *ld,
                family_id: *family_id,
                image_id: *image_id,
                version: *version,
                guest_svn: *guest_svn,
                policy,
            },
            id_key: PubKey::from_igvm(id_public_key),
            id_sig: sig_from_igvm(id_key_signature)?,
            author,
        }))
    }

    /// Sign `block` with the ID key and, if given, the ID key with the author key.
    pub fn sign(block: IdBlock, id: &SigningKey, author: Option<&SigningKey>) -> Self {
        let id_key = PubKey::from_key(id.verifying_key());
        let id_sig: Signature = id.sign(block.as_bytes());
        let author = author.map(|a| {
            let s: Signature = a.sign(id_key.as_bytes());
            (PubKey::from_key(a.verifying_key()), s)
        });
        Self {
            block,
            id_key,
            id_sig,
            author,
        }
    }

    /// Check both signatures. Returns what failed.
    pub fn verify(&self) -> Vec<String> {
        let mut bad = Vec::new();
        match self.id_key.to_key() {
            Ok(k) => {
                if k.verify(self.block.as_bytes(), &self.id_sig).is_err() {
                    bad.push("ID block signature does not verify with the ID key".to_string());
                }
            }
            Err(e) => bad.push(format!("ID key: {e}")),
        }
        if let Some((ak, s)) = &self.author {
            match ak.to_key() {
                Ok(k) => {
                    if k.verify(self.id_key.as_bytes(), s).is_err() {
                        bad.push(
                            "ID key signature does not verify with the author key".to_string(),
                        );
                    }
                }
                Err(e) => bad.push(format!("author key: {e}")),
            }
        }
        bad
    }

    /// A summary for JSON output.
    pub fn summary(&self) -> IdBlockSummary {
        IdBlockSummary {
            ld: hex::encode(self.block.ld),
            family_id: hex::encode(self.block.family_id),
            image_id: hex::encode(self.block.image_id),
            version: self.block.version,
            guest_svn: self.block.guest_svn,
            policy: format!("{:#x}", self.block.policy),
            id_key_digest: hex::encode(self.id_key.digest()),
            author_key_digest: self.author.as_ref().map(|(k, _)| hex::encode(k.digest())),
        }
    }
}

/// JSON summary of an ID block.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IdBlockSummary {
    /// Launch digest in the block.
    pub ld: String,
    /// Family ID.
    pub family_id: String,
    /// Image ID.
    pub image_id: String,
    /// Block version.
    pub version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Policy.
    pub policy: String,
    /// SHA-384 of the ID public key structure (report ID_KEY_DIGEST).
    pub id_key_digest: String,
    /// SHA-384 of the author public key structure (report AUTHOR_KEY_DIGEST).
    pub author_key_digest: Option<String>,
}

/// Parse a 16-byte ID given as 32 hex digits (or shorter, zero-padded on the right).
pub fn parse_id(s: &str, what: &str) -> Result<[u8; 16]> {
    let b = hex::decode(s).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    if b.len() > 16 {
        return Err(Error::Invalid(format!(
            "{what}: {} bytes, at most 16",
            b.len()
        )));
    }
    let mut out = [0u8; 16];
    out[..b.len()].copy_from_slice(&b);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 48]).unwrap()
    }

    fn block() -> IdBlock {
        IdBlock {
            ld: [7; 48],
            family_id: [1; 16],
            image_id: [2; 16],
            version: 1,
            guest_svn: 3,
            policy: 0x30000,
        }
    }

    #[test]
    fn sign_verify_round_trip_through_directive() {
        let s = SignedIdBlock::sign(block(), &key(1), Some(&key(2)));
        assert!(s.verify().is_empty());
        let d = s.to_directive(1);
        let back = SignedIdBlock::from_directive(&d, 0x30000).unwrap().unwrap();
        assert!(back.verify().is_empty());
        assert_eq!(back.block, s.block);
        // Deterministic signatures.
        let again = SignedIdBlock::sign(block(), &key(1), Some(&key(2)));
        assert_eq!(again.id_sig, s.id_sig);
    }

    #[test]
    fn tampering_is_detected() {
        let s = SignedIdBlock::sign(block(), &key(1), Some(&key(2)));
        let mut t = s.clone();
        t.block.guest_svn = 4;
        assert_eq!(
            t.verify(),
            vec!["ID block signature does not verify with the ID key".to_string()]
        );
        let mut t = s.clone();
        t.id_key = PubKey::from_key(key(3).verifying_key());
        assert_eq!(t.verify().len(), 2);
        // Policy from the file differs from the signed one: detected.
        let back = SignedIdBlock::from_directive(&s.to_directive(1), 0x30001)
            .unwrap()
            .unwrap();
        assert_eq!(back.verify().len(), 1);
    }

    #[test]
    fn pubkey_layout_and_round_trip() {
        let k = key(9);
        let p = PubKey::from_key(k.verifying_key());
        assert_eq!(p.as_bytes().len(), 0x404);
        assert_eq!(&p.as_bytes()[0..4], &[2, 0, 0, 0]);
        assert_eq!(&p.to_key().unwrap(), k.verifying_key());
    }
}

/// The 4096-byte ID authentication structure of SNP_LAUNCH_FINISH (what QEMU's
/// `id-auth=` option takes, base64-encoded).
pub fn id_auth_bytes(s: &SignedIdBlock) -> Vec<u8> {
    let mut out = vec![0u8; 0x1000];
    out[0..4].copy_from_slice(&ALGO_ECDSA_P384_SHA384.to_le_bytes());
    let auth_algo = if s.author.is_some() {
        ALGO_ECDSA_P384_SHA384
    } else {
        0
    };
    out[4..8].copy_from_slice(&auth_algo.to_le_bytes());
    let put_sig = |out: &mut [u8], at: usize, sig: &Signature| {
        let i = sig_to_igvm(sig);
        out[at..at + 72].copy_from_slice(&i.r_comp);
        out[at + 72..at + 144].copy_from_slice(&i.s_comp);
    };
    put_sig(&mut out, 0x40, &s.id_sig);
    out[0x240..0x644].copy_from_slice(s.id_key.as_bytes());
    if let Some((k, sig)) = &s.author {
        put_sig(&mut out, 0x680, sig);
        out[0x880..0xC84].copy_from_slice(k.as_bytes());
    }
    out
}

/// Settable fields of the ID block.
#[derive(Clone, Debug, Default)]
pub struct IdFields {
    /// Family ID.
    pub family_id: [u8; 16],
    /// Image ID.
    pub image_id: [u8; 16],
    /// Guest SVN.
    pub guest_svn: u32,
    /// ID block version (1 is the only version the firmware defines).
    pub version: u32,
    /// Replace the file's SNP guest policy.
    pub policy: Option<u64>,
}

/// An IGVM file opened for signing: its headers with the policy applied and any old ID
/// block removed, and the ID block to sign.
pub struct Unsigned {
    platforms: Vec<igvm::IgvmPlatformHeader>,
    inits: Vec<igvm::IgvmInitializationHeader>,
    dirs: Vec<IgvmDirectiveHeader>,
    mask: u32,
    /// The block to sign (launch digest measured under the given rules).
    pub block: IdBlock,
    /// The vCPU count the launch digest was measured for.
    pub vcpus: u32,
}

/// Open `data` for signing: measure it under `rules` and fill the ID block.
pub fn prepare(
    data: &[u8],
    rules: &crate::igvm_measure::LoaderRules,
    f: &IdFields,
) -> Result<Unsigned> {
    let (file, _) = crate::reader::parse(data)?;
    let m = crate::igvm_measure::measure_parsed(&file, rules, false)?;
    let mask = m.rules.compatibility_mask;
    let policy = f.policy.unwrap_or(m.rules.policy);
    let inits = file
        .initializations()
        .iter()
        .map(|h| match h {
            igvm::IgvmInitializationHeader::GuestPolicy {
                compatibility_mask, ..
            } if compatibility_mask & mask != 0 => igvm::IgvmInitializationHeader::GuestPolicy {
                policy,
                compatibility_mask: *compatibility_mask,
            },
            other => other.clone(),
        })
        .collect();
    let dirs = file
        .directives()
        .iter()
        .filter(|h| !matches!(h, IgvmDirectiveHeader::SnpIdBlock { .. }))
        .cloned()
        .collect();
    Ok(Unsigned {
        platforms: file.platforms().to_vec(),
        inits,
        dirs,
        mask,
        vcpus: m.rules.vcpus,
        block: IdBlock {
            ld: m.measurement.digest,
            family_id: f.family_id,
            image_id: f.image_id,
            version: f.version,
            guest_svn: f.guest_svn,
            policy,
        },
    })
}

impl Unsigned {
    /// Write the signed file. The signatures are checked first.
    pub fn finish(mut self, signed: &SignedIdBlock) -> Result<Vec<u8>> {
        if signed.block != self.block {
            return Err(Error::Crypto(
                "the signed ID block is not the one prepared for this file".into(),
            ));
        }
        let bad = signed.verify();
        if !bad.is_empty() {
            return Err(Error::Crypto(bad.join("; ")));
        }
        self.dirs.push(signed.to_directive(self.mask));
        let f = igvm::IgvmFile::new(
            igvm::IgvmRevision::V1,
            self.platforms,
            self.inits,
            self.dirs,
        )
        .map_err(|e| Error::Igvm(e.to_string()))?;
        let mut out = Vec::new();
        f.serialize(&mut out)
            .map_err(|e| Error::Igvm(e.to_string()))?;
        Ok(out)
    }
}

/// Check the ID block of `data`: both signatures, and the launch digest against the one
/// measured under `rules`. Returns the block and the list of failures.
pub fn verify_file(
    data: &[u8],
    rules: &crate::igvm_measure::LoaderRules,
) -> Result<(SignedIdBlock, Vec<String>)> {
    let (file, _) = crate::reader::parse(data)?;
    let m = crate::igvm_measure::measure_parsed(&file, rules, false)?;
    let mask = m.rules.compatibility_mask;
    let block = file
        .directives()
        .iter()
        .filter(|h| crate::igvm_measure::applies(h, mask))
        .find_map(|h| SignedIdBlock::from_directive(h, m.rules.policy).transpose())
        .transpose()?
        .ok_or_else(|| Error::Invalid("the file has no SNP ID block".into()))?;
    let mut bad = block.verify();
    if block.block.ld != m.measurement.digest {
        bad.push(format!(
            "ID block launch digest {} != measured {}",
            hex::encode(block.block.ld),
            hex::encode(m.measurement.digest)
        ));
    }
    Ok((block, bad))
}

/// Read an ID authentication structure (4096 bytes) for `block`, as produced by
/// [`id_auth_bytes`] or by other tools (sev-snp-measure's snp-create-id-block).
pub fn parse_id_auth(block: IdBlock, auth: &[u8]) -> Result<SignedIdBlock> {
    if auth.len() != 0x1000 {
        return Err(Error::format(
            "ID auth",
            0,
            format!("length {:#x} != 0x1000", auth.len()),
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes([auth[o], auth[o + 1], auth[o + 2], auth[o + 3]]);
    let sig_at = |o: usize| -> Result<Signature> {
        let mut s = IGVM_VHS_SNP_ID_BLOCK_SIGNATURE {
            r_comp: [0; 72],
            s_comp: [0; 72],
        };
        s.r_comp.copy_from_slice(&auth[o..o + 72]);
        s.s_comp.copy_from_slice(&auth[o + 72..o + 144]);
        sig_from_igvm(&s).map_err(|e| Error::format("ID auth: signature", o as u64, e.to_string()))
    };
    let key_at = |o: usize| -> Result<PubKey> {
        PubKey::read_from_bytes(&auth[o..o + 0x404])
            .map_err(|_| Error::format("ID auth: public key", o as u64, "size"))
    };
    if u32_at(0) != ALGO_ECDSA_P384_SHA384 {
        return Err(Error::format(
            "ID auth: id_key_algo",
            0,
            format!("{} is not ECDSA P-384 (1)", u32_at(0)),
        ));
    }
    let author = match u32_at(4) {
        0 => None,
        ALGO_ECDSA_P384_SHA384 => Some((key_at(0x880)?, sig_at(0x680)?)),
        other => {
            return Err(Error::format(
                "ID auth: auth_key_algo",
                4,
                format!("{other} is not 0 or 1"),
            ))
        }
    };
    Ok(SignedIdBlock {
        block,
        id_key: key_at(0x240)?,
        id_sig: sig_at(0x40)?,
        author,
    })
}
