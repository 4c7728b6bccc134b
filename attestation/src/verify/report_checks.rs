//! Stage 1 and 4: the report's length and structural fields, then its signature with
//! the leaf's key (AMD #56860, ATTESTATION_REPORT structure, table "Attestation Report
//! Structure"; signature format in the same chapter's ECDSA signature table).
//!
//! Attack reasoning: every structural field a verifier interprets is checked on its own,
//! so that a report of an unknown layout is refused rather than misread; the signature
//! is verified over the bytes as received (see `crate::report`).

use svsm_abi::report::{
    self as abi, AttestationReport, SIGNING_KEY_NONE, SIGNING_KEY_VCEK, SIGNING_KEY_VLEK,
};

use super::Ctx;
use crate::catalog as cat;
use crate::certs::{Cert, Role};
use crate::report::Report;

/// `report.length`: the report, or `None` (then nothing else can be checked).
pub(super) fn length(cx: &mut Ctx, bytes: &[u8]) -> Option<Report> {
    match Report::from_bytes(bytes) {
        Ok(r) => {
            cx.pass(cat::REPORT_LENGTH, format!("{} bytes", r.bytes.len()));
            Some(r)
        }
        Err(e) => {
            cx.fail(cat::REPORT_LENGTH, e.to_string());
            None
        }
    }
}

/// VERSION, SIG_ALGO, SIGNING_KEY and the reserved fields; returns the leaf role that
/// SIGNING_KEY names.
pub(super) fn structure(cx: &mut Ctx, r: &AttestationReport) -> Option<Role> {
    cx.cond(
        cat::REPORT_VERSION,
        (abi::MIN_VERSION..=abi::MAX_VERSION).contains(&r.version),
        format!("version {}", r.version),
        format!("version {} is not 2..5 (offset 0x000)", r.version),
    );
    cx.cond(
        cat::REPORT_SIG_ALGO,
        r.signature_algo == abi::SIG_ALGO_ECDSA_P384_SHA384,
        "1 (ECDSA P-384 with SHA-384)",
        format!("SIG_ALGO {} is not 1 (offset 0x034)", r.signature_algo),
    );
    let leaf_role = match r.signing_key() {
        SIGNING_KEY_VCEK => {
            cx.pass(cat::REPORT_SIGNING_KEY, "VCEK");
            Some(Role::Vcek)
        }
        SIGNING_KEY_VLEK => {
            cx.pass(cat::REPORT_SIGNING_KEY, "VLEK");
            Some(Role::Vlek)
        }
        SIGNING_KEY_NONE => {
            cx.fail(
                cat::REPORT_SIGNING_KEY,
                "SIGNING_KEY 7 (none): the report is not signed (offset 0x048 bits 4:2)",
            );
            None
        }
        v => {
            cx.fail(
                cat::REPORT_SIGNING_KEY,
                format!("SIGNING_KEY {v} is reserved (offset 0x048 bits 4:2)"),
            );
            None
        }
    };
    match r.first_nonzero_reserved() {
        None => cx.pass(cat::REPORT_RESERVED, "all reserved fields are zero"),
        Some(x) => cx.fail(
            cat::REPORT_RESERVED,
            format!("{} is not zero (byte offset 0x{:03X})", x.field, x.offset),
        ),
    }
    leaf_role
}

/// `report.signature`: ECDSA P-384/SHA-384 with the leaf's key over 0x000-0x29F.
pub(super) fn signature(cx: &mut Ctx, rep: &Report, leaf: Option<&Cert>) {
    let Some(l) = leaf else {
        cx.skip(cat::REPORT_SIGNATURE, "no leaf certificate");
        return;
    };
    let point = l
        .parsed
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    // The point is checked on the curve first so that a bad key is named as such rather
    // than as a bad signature.
    if p384::ecdsa::VerifyingKey::from_sec1_bytes(point).is_err() {
        cx.fail(
            cat::REPORT_SIGNATURE,
            "leaf public key is not a valid P-384 point",
        );
        return;
    }
    match rep.verify_signature_ring(point) {
        Ok(()) => cx.pass(
            cat::REPORT_SIGNATURE,
            "ECDSA P-384/SHA-384 over bytes 0x000-0x29F as received",
        ),
        Err(e) => cx.fail(cat::REPORT_SIGNATURE, e.to_string()),
    }
}
