//! Stage 5: which product (Milan, Genoa, Turin) the report comes from, which decides
//! the TCB layout (AMD #56860, TCB_VERSION structure: Turin adds the FMC byte) and the
//! hwID length.
//!
//! Attack reasoning: the product is taken from every source available (`--product`, the
//! leaf's productName, the pinned root, CPUID family/model on v3+ reports) and any
//! disagreement fails, so that a report cannot be read with another product's TCB
//! layout to pass a TCB comparison.

use svsm_abi::report::AttestationReport;

use super::Ctx;
use crate::catalog as cat;
use crate::certs::{decode_ia5, Cert};
use crate::oids;
use crate::product::Product;

/// `product`: the product, or `None` when no source names one.
pub(super) fn decide(
    cx: &mut Ctx,
    r: &AttestationReport,
    leaf: Option<&Cert>,
    root_product: Option<Product>,
    flag: Option<Product>,
) -> Option<Product> {
    let cert_product = leaf
        .and_then(|l| decode_ia5(l, &oids::PRODUCT_NAME).ok().flatten())
        .and_then(|n| Product::parse(&n));
    let mut sources: Vec<(String, Product)> = Vec::new();
    if let Some(p) = flag {
        sources.push(("--product".into(), p));
    }
    if let Some(p) = cert_product {
        sources.push(("certificate productName".into(), p));
    }
    if let Some(p) = root_product {
        sources.push(("root".into(), p));
    }
    // The simulated PSP of the TEST root may report any CPU, so CPUID is not a source
    // for the test product.
    let is_test = root_product == Some(Product::VigilTest);
    let cpuid = if r.has_cpuid() {
        Product::from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id)
    } else {
        None
    };
    if let (Some(p), false) = (cpuid, is_test) {
        sources.push((
            format!(
                "CPUID family 0x{:02x} model 0x{:02x}",
                r.cpuid_fam_id, r.cpuid_mod_id
            ),
            p,
        ));
    }
    let Some((first, p)) = sources.first().cloned() else {
        cx.fail(cat::PRODUCT, "product unknown: v2 report without CPUID and no certificate product name; give --product");
        return None;
    };
    let disagree: Vec<String> = sources
        .iter()
        .filter(|s| s.1 != p)
        .map(|s| format!("{} says {}", s.0, s.1.name()))
        .collect();
    if disagree.is_empty() {
        let srcs: Vec<&str> = sources.iter().map(|s| s.0.as_str()).collect();
        cx.pass(
            cat::PRODUCT,
            format!(
                "{} (from {}); TCB layout {:?}",
                p.name(),
                srcs.join(", "),
                p.tcb_layout()
            ),
        );
    } else {
        cx.fail(
            cat::PRODUCT,
            format!("{} from {first}, but {}", p.name(), disagree.join(", ")),
        );
    }
    Some(p)
}
