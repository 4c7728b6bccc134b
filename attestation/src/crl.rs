//! Certificate revocation: AMD's CRL for a product (`/vcek/v1/{product}/crl`), signed by
//! the ARK with RSA-PSS SHA-384. The check refuses a CRL that the ARK did not sign or
//! whose nextUpdate has passed, and fails when the intermediate (ASK/ASVK) or the leaf is
//! listed.

use der::Decode;
use x509_cert::crl::CertificateList;

use crate::certs::{check_pss_params, Cert};

/// Why a CRL is refused or says "revoked".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// PEM that does not decode.
    #[error("CRL PEM: {0}")]
    Pem(String),
    /// DER that is not a CertificateList (names the offset).
    #[error("not a CRL (X.509 CertificateList, DER or PEM): {0}")]
    Parse(String),
    /// The issuer is not the ARK of the chain.
    #[error("CRL issuer is not the ARK")]
    Issuer,
    /// Outer and TBS signature algorithms differ.
    #[error("CRL signature algorithms differ")]
    AlgorithmMismatch,
    /// Not RSASSA-PSS SHA-384.
    #[error("CRL signature algorithm is not RSA-PSS SHA-384")]
    Algorithm,
    /// The signature BIT STRING has unused bits.
    #[error("CRL signature is not whole bytes")]
    SignatureBits,
    /// The ARK did not sign it.
    #[error("CRL signature does not verify with the ARK")]
    BadSignature,
    /// thisUpdate is in the future.
    #[error("CRL thisUpdate is after the verification time")]
    NotYetValid,
    /// nextUpdate has passed.
    #[error("CRL expired (nextUpdate {0}); fetch a fresh one")]
    Expired(String),
    /// No nextUpdate.
    #[error("CRL has no nextUpdate")]
    NoNextUpdate,
    /// The intermediate or the leaf is listed.
    #[error("{what} {cn} (serial {serial}) is revoked")]
    Revoked {
        /// "intermediate" or "leaf".
        what: &'static str,
        /// Its subject CN.
        cn: String,
        /// Its serial, hex.
        serial: String,
    },
}

fn raw_tbs(der_bytes: &[u8]) -> Result<&[u8], CrlError> {
    use der::Reader;
    let perr = |e: der::Error| CrlError::Parse(e.to_string());
    let mut r = der::SliceReader::new(der_bytes).map_err(perr)?;
    der::Header::decode(&mut r).map_err(perr)?;
    r.tlv_bytes().map_err(perr)
}

/// Decodes PEM (X509 CRL) or DER.
pub fn to_der(bytes: &[u8]) -> Result<Vec<u8>, CrlError> {
    if bytes.starts_with(b"-----BEGIN") {
        der::pem::decode_vec(bytes)
            .map(|(_, d)| d)
            .map_err(|e| CrlError::Pem(e.to_string()))
    } else {
        Ok(bytes.to_vec())
    }
}

/// Parses a CRL (PEM or DER) without checking it: what `--crl` requires of its file.
pub fn parse(bytes: &[u8]) -> Result<CertificateList, CrlError> {
    let der_bytes = to_der(bytes)?;
    CertificateList::from_der(&der_bytes).map_err(|e| CrlError::Parse(e.to_string()))
}

/// Checks the CRL; returns a summary or the reason of failure.
pub fn check(
    bytes: &[u8],
    root: &Cert,
    inter: &Cert,
    leaf: Option<&Cert>,
    at: i64,
) -> Result<String, CrlError> {
    let der_bytes = to_der(bytes)?;
    let crl = CertificateList::from_der(&der_bytes).map_err(|e| CrlError::Parse(e.to_string()))?;
    if crl.tbs_cert_list.issuer != root.parsed.tbs_certificate.subject {
        return Err(CrlError::Issuer);
    }
    if crl.signature_algorithm != crl.tbs_cert_list.signature {
        return Err(CrlError::AlgorithmMismatch);
    }
    check_pss_params(&crl.signature_algorithm).map_err(|_| CrlError::Algorithm)?;
    let sig = crl.signature.as_bytes().ok_or(CrlError::SignatureBits)?;
    crate::certs::verify_pss_sha384(
        &root.parsed.tbs_certificate.subject_public_key_info,
        raw_tbs(&der_bytes)?,
        sig,
    )
    .map_err(|_| CrlError::BadSignature)?;
    let this = i64::try_from(crl.tbs_cert_list.this_update.to_unix_duration().as_secs())
        .unwrap_or(i64::MAX);
    if at < this {
        return Err(CrlError::NotYetValid);
    }
    match &crl.tbs_cert_list.next_update {
        Some(n) if i64::try_from(n.to_unix_duration().as_secs()).unwrap_or(i64::MAX) < at => {
            return Err(CrlError::Expired(n.to_string()));
        }
        None => return Err(CrlError::NoNextUpdate),
        _ => {}
    }
    let revoked = crl
        .tbs_cert_list
        .revoked_certificates
        .as_deref()
        .unwrap_or(&[]);
    for (what, c) in [("intermediate", Some(inter)), ("leaf", leaf)] {
        if let Some(c) = c {
            if c.parsed.tbs_certificate.issuer != root.parsed.tbs_certificate.subject
                && what == "intermediate"
            {
                continue;
            }
            let serial = &c.parsed.tbs_certificate.serial_number;
            if revoked.iter().any(|r| &r.serial_number == serial) {
                return Err(CrlError::Revoked {
                    what,
                    cn: c.subject_cn().unwrap_or_default(),
                    serial: hex::encode(serial.as_bytes()),
                });
            }
        }
    }
    Ok(format!(
        "signed by the ARK, {} entries, intermediate and leaf not revoked",
        revoked.len()
    ))
}
