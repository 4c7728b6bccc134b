//! Certificate revocation: AMD's CRL for a product (`/vcek/v1/{product}/crl`), signed by
//! the ARK with RSA-PSS SHA-384. The check refuses a CRL that the ARK did not sign or
//! whose nextUpdate has passed, and fails when the intermediate (ASK/ASVK) or the leaf is
//! listed.

use der::Decode;
use x509_cert::crl::CertificateList;

use crate::certs::{check_pss_params, Cert};

fn raw_tbs(der_bytes: &[u8]) -> Result<&[u8], String> {
    use der::Reader;
    let mut r = der::SliceReader::new(der_bytes).map_err(|e| e.to_string())?;
    der::Header::decode(&mut r).map_err(|e| e.to_string())?;
    r.tlv_bytes().map_err(|e| format!("CRL: {e}"))
}

/// Decodes PEM (X509 CRL) or DER.
pub fn to_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        der::pem::decode_vec(bytes)
            .map(|(_, d)| d)
            .map_err(|e| format!("CRL PEM: {e}"))
    } else {
        Ok(bytes.to_vec())
    }
}

/// Checks the CRL; returns a summary or the reason of failure.
pub fn check(
    bytes: &[u8],
    root: &Cert,
    inter: &Cert,
    leaf: Option<&Cert>,
    at: i64,
) -> Result<String, String> {
    let der_bytes = to_der(bytes)?;
    let crl =
        CertificateList::from_der(&der_bytes).map_err(|e| format!("CRL does not parse: {e}"))?;
    if crl.tbs_cert_list.issuer != root.parsed.tbs_certificate.subject {
        return Err("CRL issuer is not the ARK".into());
    }
    if crl.signature_algorithm != crl.tbs_cert_list.signature {
        return Err("CRL signature algorithms differ".into());
    }
    check_pss_params(&crl.signature_algorithm)
        .map_err(|_| "CRL signature algorithm is not RSA-PSS SHA-384".to_string())?;
    let sig = crl
        .signature
        .as_bytes()
        .ok_or("CRL signature is not whole bytes")?;
    crate::certs::verify_pss_sha384(
        &root.parsed.tbs_certificate.subject_public_key_info,
        raw_tbs(&der_bytes)?,
        sig,
    )
    .map_err(|_| "CRL signature does not verify with the ARK".to_string())?;
    let this = crl.tbs_cert_list.this_update.to_unix_duration().as_secs() as i64;
    if at < this {
        return Err("CRL thisUpdate is after the verification time".into());
    }
    match &crl.tbs_cert_list.next_update {
        Some(n) if (n.to_unix_duration().as_secs() as i64) < at => {
            return Err(format!("CRL expired (nextUpdate {n}); fetch a fresh one"));
        }
        None => return Err("CRL has no nextUpdate".into()),
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
                return Err(format!(
                    "{what} {} (serial {}) is revoked",
                    c.subject_cn().unwrap_or_default(),
                    hex::encode(serial.as_bytes())
                ));
            }
        }
    }
    Ok(format!(
        "signed by the ARK, {} entries, intermediate and leaf not revoked",
        revoked.len()
    ))
}
