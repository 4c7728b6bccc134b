//! Stage 6: the leaf's AMD extensions against the report (AMD #57230, VCEK/VLEK
//! certificate extensions: blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL, hwID, cspId,
//! productName).
//!
//! Attack reasoning: a VCEK is specific to one chip and one TCB. Without these checks a
//! report from a chip with old, vulnerable firmware could be verified with the VCEK of
//! a patched TCB of the same chip (or of another chip), as long as the signature
//! matched; so the SPLs must equal REPORTED_TCB and hwID must equal CHIP_ID.

use svsm_abi::report::{AttestationReport, Tcb};

use super::Ctx;
use crate::catalog as cat;
use crate::certs::{decode_ia5, decode_spl, Cert, CertError, Role};
use crate::oids;
use crate::policy::Policy;
use crate::product::Product;

fn tcb_str(t: &Tcb) -> String {
    match t.fmc {
        Some(f) => format!(
            "fmc={} bl={} tee={} snp={} ucode={}",
            f, t.bl, t.tee, t.snp, t.ucode
        ),
        None => format!("bl={} tee={} snp={} ucode={}", t.bl, t.tee, t.snp, t.ucode),
    }
}

/// `cert.tcb`, `cert.hwid`, `cert.csp_id` and `cert.product_name`.
pub(super) fn check(
    cx: &mut Ctx,
    r: &AttestationReport,
    leaf: Option<&Cert>,
    product: Option<Product>,
    policy: &Policy,
) {
    let (Some(l), Some(p)) = (leaf, product) else {
        for d in [
            cat::CERT_TCB,
            cat::CERT_HWID,
            cat::CERT_CSP_ID,
            cat::CERT_PRODUCT_NAME,
        ] {
            cx.skip(d, "no leaf certificate or unknown product");
        }
        return;
    };
    tcb(cx, r, l, p);
    if l.role() == Role::Vcek {
        hwid(cx, r, l, p, policy);
        cx.skip(cat::CERT_CSP_ID, "VCEK: no cspId");
    } else {
        cx.skip(
            cat::CERT_HWID,
            "VLEK is not bound to a chip (CHIP_ID is zero in VLEK-signed reports)",
        );
        csp_id(cx, l, policy);
    }
    match decode_ia5(l, &oids::PRODUCT_NAME) {
        Ok(Some(n)) => cx.cond(
            cat::CERT_PRODUCT_NAME,
            Product::parse(&n).is_some(),
            format!("{n:?}"),
            format!("unknown productName {n:?}"),
        ),
        Ok(None) => cx.skip(cat::CERT_PRODUCT_NAME, "leaf has no productName"),
        Err(e) => cx.fail(cat::CERT_PRODUCT_NAME, e.to_string()),
    }
}

/// The leaf's five SPLs (fmc, bl, tee, snp, ucode).
fn spls(l: &Cert) -> Result<[Option<u8>; 5], CertError> {
    Ok([
        decode_spl(l, &oids::FMC_SPL)?,
        decode_spl(l, &oids::BL_SPL)?,
        decode_spl(l, &oids::TEE_SPL)?,
        decode_spl(l, &oids::SNP_SPL)?,
        decode_spl(l, &oids::UCODE_SPL)?,
    ])
}

/// `cert.tcb`: the SPLs equal REPORTED_TCB decoded with the product's layout.
fn tcb(cx: &mut Ctx, r: &AttestationReport, l: &Cert, p: Product) {
    let rtcb = p.tcb_layout().decode(r.reported_tcb);
    let [fmc, bl, tee, snp, ucode] = match spls(l) {
        Ok(v) => v,
        Err(e) => return cx.fail(cat::CERT_TCB, e.to_string()),
    };
    let want_fmc = p == Product::Turin;
    let (Some(bl), Some(tee), Some(snp), Some(ucode)) = (bl, tee, snp, ucode) else {
        return cx.fail(
            cat::CERT_TCB,
            "leaf lacks an SPL extension (blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL on Turin)",
        );
    };
    if want_fmc != fmc.is_some() {
        let msg = if want_fmc {
            "leaf lacks an SPL extension (blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL on Turin)"
                .to_string()
        } else {
            format!("leaf has fmcSPL, which {} does not have", p.name())
        };
        return cx.fail(cat::CERT_TCB, msg);
    }
    let cert_tcb = Tcb {
        fmc,
        bl,
        tee,
        snp,
        ucode,
        reserved_nonzero: false,
    };
    let same = (
        cert_tcb.fmc,
        cert_tcb.bl,
        cert_tcb.tee,
        cert_tcb.snp,
        cert_tcb.ucode,
    ) == (rtcb.fmc, rtcb.bl, rtcb.tee, rtcb.snp, rtcb.ucode)
        && !rtcb.reserved_nonzero;
    cx.cond(
        cat::CERT_TCB,
        same,
        format!("certificate TCB = REPORTED_TCB ({})", tcb_str(&rtcb)),
        format!(
            "certificate TCB ({}) differs from REPORTED_TCB ({}){}",
            tcb_str(&cert_tcb),
            tcb_str(&rtcb),
            if rtcb.reserved_nonzero {
                ", reserved TCB bytes non-zero"
            } else {
                ""
            }
        ),
    );
}

/// `cert.hwid`: the VCEK's hwID equals CHIP_ID (8 bytes on Turin, the rest zero).
fn hwid(cx: &mut Ctx, r: &AttestationReport, l: &Cert, p: Product, policy: &Policy) {
    let Some(hw) = l.extension(&oids::HW_ID) else {
        return cx.fail(cat::CERT_HWID, "VCEK has no hwID extension");
    };
    let n = p.hwid_len();
    if r.chip_id.iter().all(|b| *b == 0) || r.mask_chip_key() {
        if policy.allow_masked_chip_id == Some(true) {
            cx.skip(
                cat::CERT_HWID,
                "CHIP_ID masked; allowed by policy allow_masked_chip_id",
            );
        } else {
            cx.fail(
                cat::CERT_HWID,
                "CHIP_ID is masked (zero); the policy does not allow it (allow_masked_chip_id)",
            );
        }
    } else if hw.len() != n {
        cx.fail(
            cat::CERT_HWID,
            format!("hwID is {} bytes, {} uses {}", hw.len(), p.name(), n),
        );
    } else {
        let ok = r.chip_id[..n] == *hw && r.chip_id[n..].iter().all(|b| *b == 0);
        cx.cond(
            cat::CERT_HWID,
            ok,
            format!("hwID = CHIP_ID ({n} bytes)"),
            format!(
                "hwID {} differs from CHIP_ID {} (offset 0x1A0)",
                hex::encode(hw),
                hex::encode(&r.chip_id[..n.max(8)])
            ),
        );
    }
}

/// `cert.csp_id`: the VLEK's cspId against the policy's allow-list.
fn csp_id(cx: &mut Ctx, l: &Cert, policy: &Policy) {
    match decode_ia5(l, &oids::CSP_ID) {
        Err(e) => cx.fail(cat::CERT_CSP_ID, e.to_string()),
        Ok(None) => cx.fail(cat::CERT_CSP_ID, "VLEK has no cspId extension"),
        Ok(Some(csp)) => match &policy.vlek_csp_ids {
            None => cx.skip(
                cat::CERT_CSP_ID,
                format!("cspId {csp:?}; no allow-list in the policy (vlek_csp_ids)"),
            ),
            Some(list) => cx.cond(
                cat::CERT_CSP_ID,
                list.contains(&csp),
                format!("cspId {csp:?} allowed"),
                format!("cspId {csp:?} not in vlek_csp_ids"),
            ),
        },
    }
}
