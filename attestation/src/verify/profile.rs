//! Stage 3: the X.509 profile of a complete chain and its validity period (RFC 5280
//! 4.1 and 4.2.1.3/4.2.1.9, as AMD #57230 profiles its certificates).
//!
//! Attack reasoning: a signature alone does not make a CA: an issuer must be a CA with
//! keyCertSign, the leaf must not be one, and the leaf key must be the P-384 key the
//! report signature needs. Validity is checked at `--at`, so that an expired VLEK is
//! named rather than silently accepted.

use super::chain::Chain;
use super::Ctx;
use crate::catalog as cat;
use crate::certs::{Cert, Role};
use crate::oids;

fn time_of(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// RFC 3339 form of a Unix time (the number itself if out of range).
pub(crate) fn fmt_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// `chain.profile` and `chain.validity` (skips when the chain is incomplete).
pub(super) fn check(cx: &mut Ctx, ch: &Chain<'_>, at: i64) {
    let (Some(root), Some(inter), Some(leaf)) = (ch.root, ch.inter, ch.leaf) else {
        cx.skip(cat::CHAIN_PROFILE, "chain incomplete");
        cx.skip(cat::CHAIN_VALIDITY, "chain incomplete");
        return;
    };
    let certs = [("root", root), ("intermediate", inter), ("leaf", leaf)];
    let mut problems = Vec::new();
    for (n, c) in certs {
        cert_profile(n, c, &mut problems);
    }
    if leaf.parsed.tbs_certificate.issuer != inter.parsed.tbs_certificate.subject {
        problems.push("leaf issuer differs from intermediate subject".into());
    }
    let lspki = &leaf.parsed.tbs_certificate.subject_public_key_info;
    let curve = lspki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok());
    if lspki.algorithm.oid != oids::EC_PUBLIC_KEY || curve != Some(oids::SECP384R1) {
        problems.push("leaf key is not EC P-384".into());
    }
    if problems.is_empty() {
        cx.pass(cat::CHAIN_PROFILE, "v3, names, basicConstraints, keyUsage, leaf key P-384 (serial 0 tolerated on the leaf)");
    } else {
        cx.fail(cat::CHAIN_PROFILE, problems.join("; "));
    }
    let mut bad = Vec::new();
    for (n, c) in certs {
        let v = &c.parsed.tbs_certificate.validity;
        let (nb, na) = (time_of(&v.not_before), time_of(&v.not_after));
        if at < nb || at > na {
            bad.push(format!(
                "{n} ({}) valid {} to {}",
                c.subject_cn().unwrap_or_default(),
                fmt_time(nb),
                fmt_time(na)
            ));
        }
    }
    if bad.is_empty() {
        cx.pass(
            cat::CHAIN_VALIDITY,
            format!("all valid at {}", fmt_time(at)),
        );
    } else {
        cx.fail(
            cat::CHAIN_VALIDITY,
            format!("not valid at {}: {}", fmt_time(at), bad.join("; ")),
        );
    }
}

/// The profile rules of one certificate `n` ("root", "intermediate", "leaf").
fn cert_profile(n: &str, c: &Cert, problems: &mut Vec<String>) {
    let t = &c.parsed.tbs_certificate;
    if t.version != x509_cert::Version::V3 {
        problems.push(format!("{n}: not X.509 v3"));
    }
    let is_leaf = matches!(c.role(), Role::Vcek | Role::Vlek);
    if !is_leaf && t.serial_number.as_bytes().iter().all(|b| *b == 0) {
        problems.push(format!("{n}: serial 0 on a CA certificate"));
    }
    let bc = t.get::<x509_cert::ext::pkix::BasicConstraints>();
    let ku = t.get::<x509_cert::ext::pkix::KeyUsage>();
    match (n, bc, ku) {
        ("leaf", Ok(Some((_, bc))), _) if bc.ca => {
            problems.push("leaf: basicConstraints CA=true".into())
        }
        ("leaf", _, _) => {}
        (_, Ok(Some((_, bc))), Ok(Some((_, ku)))) => {
            if !bc.ca {
                problems.push(format!("{n}: basicConstraints CA=false"));
            }
            if !ku.key_cert_sign() {
                problems.push(format!("{n}: keyUsage lacks keyCertSign"));
            }
        }
        (_, _, _) => problems.push(format!(
            "{n}: basicConstraints or keyUsage missing or malformed"
        )),
    }
    let o = t
        .subject
        .0
        .iter()
        .flat_map(|r| r.0.iter())
        .find(|a| a.oid == const_oid::db::rfc4519::O);
    if o.and_then(|a| crate::certs::any_string(&a.value))
        .as_deref()
        != Some("Advanced Micro Devices")
    {
        problems.push(format!("{n}: subject O is not \"Advanced Micro Devices\""));
    }
}
