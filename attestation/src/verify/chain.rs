//! Stage 2: the certificate chain leaf -> intermediate -> root (VCEK -> ASK -> ARK, or
//! VLEK -> ASVK -> ARK; AMD #57230 VCEK specification, chapter on the certificate
//! chain), the root pinned by fingerprint, and the three RSA-PSS signatures.
//!
//! Attack reasoning: certificates are matched by subject/issuer name and then proven by
//! signature; the root is trusted only by its SHA-256 fingerprint (a self-made
//! "ARK-Milan" is named and refused). With several leaves (a folder of VCEKs), the one
//! whose hwID matches CHIP_ID is chosen; a wrong choice can only fail later checks.

use svsm_abi::report::AttestationReport;

use super::{Ctx, Options, Verifier};
use crate::catalog::{self as cat, CheckDef};
use crate::certs::{Cert, Role};
use crate::oids;
use crate::product::Product;

/// The chain found for one report.
pub(super) struct Chain<'a> {
    pub leaf: Option<&'a Cert>,
    pub inter: Option<&'a Cert>,
    pub root: Option<&'a Cert>,
    /// The root is Vigil's TEST root (accepted with --allow-test-root).
    pub test_root: bool,
    /// The product the pinned root belongs to.
    pub root_product: Option<Product>,
}

/// Finds and checks the chain: `chain.leaf`, `chain.intermediate`, `chain.root` and the
/// three `*.signature` checks.
pub(super) fn build<'a>(
    v: &'a Verifier,
    cx: &mut Ctx,
    ev: &'a super::Evidence,
    r: &AttestationReport,
    leaf_role: Option<Role>,
    opt: &Options,
) -> Chain<'a> {
    let leaf = find_leaf(cx, &ev.certs, r, leaf_role);
    let inter_role = if leaf_role == Some(Role::Vlek) {
        Role::Asvk
    } else {
        Role::Ask
    };
    let inter = leaf.and_then(|l| issuer_of(v, &ev.certs, l, inter_role));
    match (inter, leaf) {
        (Some(i), _) => cx.pass(
            cat::CHAIN_INTERMEDIATE,
            format!(
                "{} {} from {}",
                inter_role.name(),
                i.subject_cn().unwrap_or_default(),
                i.source
            ),
        ),
        (None, Some(l)) => cx.fail(
            cat::CHAIN_INTERMEDIATE,
            format!(
                "no {} whose subject is the leaf's issuer ({})",
                inter_role.name().to_uppercase(),
                l.issuer_cn().unwrap_or_default()
            ),
        ),
        (None, None) => cx.skip(cat::CHAIN_INTERMEDIATE, "no leaf"),
    }
    let root = inter.and_then(|i| issuer_of(v, &ev.certs, i, Role::Ark));
    let (test_root, root_product) = pin_root(v, cx, root, inter.is_some(), opt);
    let sigs: [(&'static CheckDef, _, _); 3] = [
        (cat::CHAIN_ROOT_SIGNATURE, root, root),
        (cat::CHAIN_INTERMEDIATE_SIGNATURE, inter, root),
        (cat::CHAIN_LEAF_SIGNATURE, leaf, inter),
    ];
    for (def, child, issuer) in sigs {
        match (child, issuer) {
            (Some(c), Some(i)) => match v.verify_sig_cached(c, i) {
                Ok(()) => cx.pass(
                    def,
                    format!("RSA-PSS SHA-384 by {}", i.subject_cn().unwrap_or_default()),
                ),
                Err(e) => cx.fail(def, e.to_string()),
            },
            _ => cx.skip(def, "chain incomplete"),
        }
    }
    Chain {
        leaf,
        inter,
        root,
        test_root,
        root_product,
    }
}

/// `chain.leaf`: the VCEK or VLEK that SIGNING_KEY names; among several, the one whose
/// hwID is CHIP_ID's prefix.
fn find_leaf<'a>(
    cx: &mut Ctx,
    certs: &'a [Cert],
    r: &AttestationReport,
    leaf_role: Option<Role>,
) -> Option<&'a Cert> {
    let Some(role) = leaf_role else {
        cx.skip(cat::CHAIN_LEAF, "no valid SIGNING_KEY");
        return None;
    };
    let mut c: Vec<&Cert> = certs.iter().filter(|c| c.role() == role).collect();
    c.sort_by_key(|c| {
        let hw = c.extension(&oids::HW_ID).unwrap_or(&[]);
        hw.is_empty() || !r.chip_id.starts_with(hw)
    });
    match c.first().copied() {
        Some(l) => {
            cx.pass(
                cat::CHAIN_LEAF,
                format!("{} from {}", l.role().name(), l.source),
            );
            Some(l)
        }
        None => {
            cx.fail(
                cat::CHAIN_LEAF,
                format!(
                    "no {} certificate given or fetched",
                    role.name().to_uppercase()
                ),
            );
            None
        }
    }
}

/// The certificate of `role` whose subject is `child`'s issuer: from the evidence
/// first, else from the built-in anchors.
fn issuer_of<'a>(v: &'a Verifier, certs: &'a [Cert], child: &Cert, role: Role) -> Option<&'a Cert> {
    let issuer = &child.parsed.tbs_certificate.issuer;
    certs
        .iter()
        .find(|c| c.role() == role && &c.parsed.tbs_certificate.subject == issuer)
        .or_else(|| {
            v.store
                .anchors
                .iter()
                .find(|a| a.role == role.name() && &a.cert.parsed.tbs_certificate.subject == issuer)
                .map(|a| &a.cert)
        })
}

/// `chain.root`: the root must be pinned; the TEST root only with --allow-test-root.
/// Returns (test root, the root's product).
fn pin_root(
    v: &Verifier,
    cx: &mut Ctx,
    root: Option<&Cert>,
    have_inter: bool,
    opt: &Options,
) -> (bool, Option<Product>) {
    let Some(root) = root else {
        if have_inter {
            cx.fail(
                cat::CHAIN_ROOT,
                "no ARK whose subject is the intermediate's issuer",
            );
        } else {
            cx.skip(cat::CHAIN_ROOT, "no intermediate");
        }
        return (false, None);
    };
    match v.store.root_by_fingerprint(&root.fingerprint) {
        Some(a) if a.test && !opt.allow_test_root => {
            cx.fail(cat::CHAIN_ROOT, "the root is Vigil's TEST root (evidence from a simulated or emulated security processor, not AMD hardware); refused without --allow-test-root");
            (false, None)
        }
        Some(a) => {
            let note = if a.test {
                " (Vigil TEST root: NOT AMD hardware)"
            } else if a.user {
                " (--trust-root)"
            } else {
                ""
            };
            cx.pass(
                cat::CHAIN_ROOT,
                format!(
                    "{} pinned by SHA-256 {}{note}",
                    root.subject_cn().unwrap_or_default(),
                    root.fingerprint_hex(),
                ),
            );
            (a.test, Some(a.product))
        }
        None => {
            cx.fail(
                cat::CHAIN_ROOT,
                format!(
                    "root {} with SHA-256 {} is not a pinned AMD root",
                    root.subject_cn().unwrap_or_default(),
                    root.fingerprint_hex()
                ),
            );
            (false, None)
        }
    }
}
