//! Certificates: loading (PEM or DER, one or many per file, found by content rather than
//! by file name), classification (ARK, ASK, ASVK, VCEK, VLEK), RSA-PSS signature checks
//! over the TBS bytes *as received*, and AMD's VCEK/VLEK extensions.
//!
//! Attack reasoning: certificate bytes come from the host (extended-report table), from
//! the network (KDS) or from a file the relying party was handed. Nothing here trusts a
//! certificate because of its name or its file name: a root is trusted only by its
//! SHA-256 fingerprint (see [`crate::roots`]), and every signature is checked over the
//! exact TBS bytes that were received, never a re-encoding (a re-encoding could hide a
//! non-DER quirk that the signer never saw).

use der::{Decode, Reader, SliceReader};
use rsa::pkcs1::RsaPssParams;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::oids;

/// A certificate problem, with the certificate it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not parseable as X.509.
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    Parse {
        /// Which input.
        what: String,
        /// Parser message (names the byte offset).
        reason: String,
    },
    /// Signature algorithm other than RSASSA-PSS/SHA-384/MGF1-SHA-384/salt 48.
    #[error("{0}: signature algorithm is not RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("{0}: signature does not verify")]
    BadSignature(String),
    /// The issuer key is not a usable RSA key.
    #[error("{0}: issuer key is not an RSA key")]
    IssuerKey(String),
    /// An AMD extension is malformed.
    #[error("{cert}: extension {oid}: {reason}")]
    Extension {
        /// Which certificate.
        cert: String,
        /// Extension OID.
        oid: String,
        /// What is wrong.
        reason: String,
    },
}

/// One certificate as received, with its parsed form and raw TBS bytes.
#[derive(Clone, Debug)]
pub struct Cert {
    /// DER bytes exactly as received.
    pub der: Vec<u8>,
    /// Parsed certificate.
    pub parsed: Certificate,
    /// Offset and length of the TBSCertificate inside `der`.
    tbs: (usize, usize),
    /// SHA-256 of `der`.
    pub fingerprint: [u8; 32],
    /// Where it came from (file name, table entry, KDS URL).
    pub source: String,
    /// Role, decided once from the content.
    role: Role,
}

/// The role a certificate plays, decided from its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Self-signed AMD root.
    Ark,
    /// VCEK intermediate (CN SEV-<product>).
    Ask,
    /// VLEK intermediate (CN SEV-VLEK-<product>).
    Asvk,
    /// Chip- and TCB-specific leaf.
    Vcek,
    /// Loaded leaf (per CSP).
    Vlek,
    /// Anything else.
    Other,
}

impl Role {
    /// Lower-case name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ark => "ark",
            Role::Ask => "ask",
            Role::Asvk => "asvk",
            Role::Vcek => "vcek",
            Role::Vlek => "vlek",
            Role::Other => "other",
        }
    }
}

impl Cert {
    /// Parses one DER certificate. Trailing bytes after the certificate are refused.
    pub fn from_der(der: &[u8], source: &str) -> Result<Cert, CertError> {
        let perr = |e: der::Error| CertError::Parse {
            what: source.to_string(),
            reason: e.to_string(),
        };
        let parsed = Certificate::from_der(der).map_err(perr)?;
        // Locate the TBS bytes as received: outer SEQUENCE header, then the first TLV.
        let mut r = SliceReader::new(der).map_err(perr)?;
        let outer = der::Header::decode(&mut r).map_err(perr)?;
        let start = usize::try_from(r.position()).map_err(perr)?;
        let _ = outer;
        let tbs = r.tlv_bytes().map_err(perr)?;
        let mut c = Cert {
            der: der.to_vec(),
            parsed,
            tbs: (start, tbs.len()),
            fingerprint: Sha256::digest(der).into(),
            source: source.to_string(),
            role: Role::Other,
        };
        c.role = c.compute_role();
        Ok(c)
    }

    /// The TBSCertificate bytes exactly as received.
    pub fn tbs_bytes(&self) -> &[u8] {
        &self.der[self.tbs.0..self.tbs.0 + self.tbs.1]
    }

    /// The subject's common name, if any.
    pub fn subject_cn(&self) -> Option<String> {
        cn_of(&self.parsed.tbs_certificate.subject)
    }

    /// The issuer's common name, if any.
    pub fn issuer_cn(&self) -> Option<String> {
        cn_of(&self.parsed.tbs_certificate.issuer)
    }

    /// Role from content: self-signed names make a root; an EC P-384 key with CN
    /// SEV-VCEK/SEV-VLEK a leaf; RSA keys with CN SEV-VLEK-* / SEV-* intermediates.
    pub fn role(&self) -> Role {
        self.role
    }

    fn compute_role(&self) -> Role {
        let tbs = &self.parsed.tbs_certificate;
        let cn = self.subject_cn().unwrap_or_default();
        let ec = tbs.subject_public_key_info.algorithm.oid == oids::EC_PUBLIC_KEY;
        if ec && cn == "SEV-VCEK" {
            Role::Vcek
        } else if ec && cn == "SEV-VLEK" {
            Role::Vlek
        } else if !ec && tbs.subject == tbs.issuer && cn.starts_with("ARK-") {
            Role::Ark
        } else if !ec && cn.starts_with("SEV-VLEK-") {
            Role::Asvk
        } else if !ec && cn.starts_with("SEV-") {
            Role::Ask
        } else {
            Role::Other
        }
    }

    /// Fingerprint as lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// Extension value (the OCTET STRING content) by OID.
    pub fn extension(&self, oid: &spki::ObjectIdentifier) -> Option<&[u8]> {
        self.parsed
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| &e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Checks that `issuer` signed this certificate with RSASSA-PSS SHA-384.
    ///
    /// The AlgorithmIdentifier parameters are decoded whether the hash AlgorithmIdentifier
    /// carries an explicit NULL or no parameters and whether the trailer field is explicit
    /// (AMD's ARK and ASK) or omitted (AMD's VCEKs): both encodings mean the same thing.
    /// The outer and inner (TBS) algorithm identifiers must be identical.
    pub fn verify_signed_by(&self, issuer: &Cert) -> Result<(), CertError> {
        let name = self.source.clone();
        let alg = &self.parsed.signature_algorithm;
        if alg != &self.parsed.tbs_certificate.signature {
            return Err(CertError::Algorithm(name));
        }
        check_pss_params(alg).map_err(|_| CertError::Algorithm(name.clone()))?;
        let spki = &issuer.parsed.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != oids::RSA_ENCRYPTION && spki.algorithm.oid != oids::RSASSA_PSS {
            return Err(CertError::IssuerKey(name));
        }
        let sig = self
            .parsed
            .signature
            .as_bytes()
            .ok_or_else(|| CertError::BadSignature(name.clone()))?;
        verify_pss_sha384(spki, self.tbs_bytes(), sig).map_err(|e| match e {
            PssError::Key => CertError::IssuerKey(name),
            PssError::Signature => CertError::BadSignature(name),
        })
    }
}

/// Why an RSA-PSS check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PssError {
    /// The key is not a usable RSA key.
    Key,
    /// The signature does not verify.
    Signature,
}

/// Verifies an RSASSA-PSS SHA-384 (MGF1-SHA-384, salt 48) signature over `msg` with
/// the RSA key in `spki`. `ring` does the arithmetic (faster than the `rsa` crate, which
/// this crate uses only to *make* test certificates); ring requires the salt length to
/// equal the hash length, 48, which is what AMD uses and what [`check_pss_params`] has
/// already required of the AlgorithmIdentifier.
pub fn verify_pss_sha384(
    spki: &spki::SubjectPublicKeyInfoOwned,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), PssError> {
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return Err(PssError::Key);
    }
    // The BIT STRING of an rsaEncryption SPKI is the PKCS#1 RSAPublicKey ring expects.
    let pkcs1 = spki.subject_public_key.as_bytes().ok_or(PssError::Key)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA384, pkcs1)
        .verify(msg, sig)
        .map_err(|_| PssError::Signature)
}

/// RSASSA-PSS parameters other than the ones AMD uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPssParams;

/// Checks RSASSA-PSS parameters: SHA-384, MGF1 with SHA-384, salt length 48, trailer 1.
pub fn check_pss_params(alg: &spki::AlgorithmIdentifierOwned) -> Result<(), BadPssParams> {
    if alg.oid != oids::RSASSA_PSS {
        return Err(BadPssParams);
    }
    let params = alg.parameters.as_ref().ok_or(BadPssParams)?;
    let der = der::Encode::to_der(params).map_err(|_| BadPssParams)?;
    let p = RsaPssParams::from_der(&der).map_err(|_| BadPssParams)?;
    let null_or_absent = |a: &Option<der::asn1::AnyRef<'_>>| match a {
        None => true,
        Some(a) => a.is_null(),
    };
    if p.hash.oid != oids::SHA384 || !null_or_absent(&p.hash.parameters) {
        return Err(BadPssParams);
    }
    let mgf_hash = p.mask_gen.parameters.as_ref().ok_or(BadPssParams)?;
    if p.mask_gen.oid != oids::MGF1
        || mgf_hash.oid != oids::SHA384
        || !null_or_absent(&mgf_hash.parameters)
    {
        return Err(BadPssParams);
    }
    if p.salt_len != 48 {
        return Err(BadPssParams);
    }
    Ok(())
}

fn cn_of(name: &x509_cert::name::Name) -> Option<String> {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == const_oid::db::rfc4519::CN {
                return any_string(&atv.value);
            }
        }
    }
    None
}

/// The string value of a DirectoryString-like attribute (UTF8, Printable, IA5).
pub fn any_string(v: &der::Any) -> Option<String> {
    match der::Tagged::tag(v) {
        der::Tag::Utf8String | der::Tag::PrintableString | der::Tag::Ia5String => {
            std::str::from_utf8(v.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}

/// Parses every certificate in one blob: PEM (any number of CERTIFICATE blocks, as in
/// KDS's `cert_chain`) or a single DER certificate.
pub fn parse_blob(bytes: &[u8], source: &str) -> Result<Vec<Cert>, CertError> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let text = std::str::from_utf8(bytes).map_err(|e| CertError::Parse {
            what: source.to_string(),
            reason: format!("PEM is not UTF-8 at byte offset {}", e.valid_up_to()),
        })?;
        let mut out = Vec::new();
        let mut rest = text;
        let mut idx = 0;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let end_marker = block.find("-----END ").ok_or_else(|| CertError::Parse {
                what: source.to_string(),
                reason: "PEM block without END line".into(),
            })?;
            let after = block[end_marker..]
                .find('\n')
                .map(|n| end_marker + n + 1)
                .unwrap_or(block.len());
            let pem = &block[..after];
            let (label, der) =
                der::pem::decode_vec(pem.as_bytes()).map_err(|e| CertError::Parse {
                    what: format!("{source} (PEM block {idx})"),
                    reason: e.to_string(),
                })?;
            if label == "CERTIFICATE" {
                out.push(Cert::from_der(&der, &format!("{source}#{idx}"))?);
            }
            idx += 1;
            rest = &block[after..];
        }
        if out.is_empty() {
            return Err(CertError::Parse {
                what: source.to_string(),
                reason: "no CERTIFICATE block in PEM".into(),
            });
        }
        Ok(out)
    } else {
        Ok(vec![Cert::from_der(bytes, source)?])
    }
}

/// Decodes one of AMD's SPL extensions: a DER INTEGER 0..=255. KDS has served both the
/// correct encoding (`02 02 00 DB` for 219) and a one-octet form whose high bit makes it
/// negative in strict DER (`02 01 DB`); both mean the unsigned byte and are accepted.
pub fn decode_spl(cert: &Cert, oid: &spki::ObjectIdentifier) -> Result<Option<u8>, CertError> {
    let Some(v) = cert.extension(oid) else {
        return Ok(None);
    };
    let err = |reason: &str| CertError::Extension {
        cert: cert.source.clone(),
        oid: oid.to_string(),
        reason: reason.to_string(),
    };
    match v {
        [0x02, 0x01, b] => Ok(Some(*b)),
        [0x02, 0x02, 0x00, b] if *b >= 0x80 => Ok(Some(*b)),
        [0x02, ..] => Err(err("INTEGER out of range 0..=255 or not minimally encoded")),
        _ => Err(err("not a DER INTEGER")),
    }
}

/// Decodes an IA5String extension (productName, cspId).
pub fn decode_ia5(cert: &Cert, oid: &spki::ObjectIdentifier) -> Result<Option<String>, CertError> {
    let Some(v) = cert.extension(oid) else {
        return Ok(None);
    };
    der::asn1::Ia5StringRef::from_der(v)
        .map(|s| Some(s.as_str().to_string()))
        .map_err(|e| CertError::Extension {
            cert: cert.source.clone(),
            oid: oid.to_string(),
            reason: format!("not an IA5String: {e}"),
        })
}
