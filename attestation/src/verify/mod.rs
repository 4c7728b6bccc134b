//! The verifier: runs every check on one piece of evidence and returns them all, named,
//! with a verdict. Checks do not stop at the first failure (a report with a bad
//! signature still gets its other fields checked and shown), but a check that depends on
//! a failed one is reported as "skip" with that reason, and the verdict is "verified"
//! only when no check failed.
//!
//! The work is split into stages, one file each: the report's structure and signature
//! (`report_checks`), the certificate chain (`chain`, `profile`), the product
//! (`product`), the leaf's AMD extensions (`leaf`), then the CRL, the relying party's
//! policy (`crate::checks`) and the SVSM evidence (`crate::evidence`). Every check a
//! stage emits is a [`CheckDef`] of [`crate::catalog`].

mod chain;
mod leaf;
mod product;
mod profile;
mod report_checks;

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;

use crate::catalog::{self as cat, CheckDef};
use crate::certs::{Cert, CertError};
use crate::crl;
use crate::evidence::{self, Refs};
use crate::policy::Policy;
use crate::product::Product;
use crate::report::Report;
use crate::roots::TrustStore;

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check ran and passed.
    Pass,
    /// The check ran and failed.
    Fail,
    /// The check did not run; the detail says why.
    Skip,
}

/// One named check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable dotted name from [`crate::catalog::CHECKS`], e.g. `report.signature`.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was compared, or why it failed or was skipped.
    pub detail: String,
    /// What a pass proves (from the catalog).
    pub proves: &'static str,
}

/// Everything given to one verification.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// The report bytes (already decoded from hex/base64).
    pub report: Vec<u8>,
    /// Certificates given (leaf, intermediates, roots), any order.
    pub certs: Vec<Cert>,
    /// CRL (DER or PEM), if any.
    pub crl: Option<Vec<u8>>,
    /// Nonce given to ATTEST_SERVICES.
    pub nonce: Option<Vec<u8>>,
    /// Services manifest.
    pub manifest: Option<Vec<u8>>,
    /// Vigil event log.
    pub event_log: Option<Vec<u8>>,
    /// Reference values from `vigil-igvm refs`.
    pub refs: Option<Refs>,
}

/// Options of one verification.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--product`.
    pub product: Option<Product>,
    /// Time for validity and CRL checks (Unix seconds).
    pub at: i64,
    /// Accept Vigil's test root.
    pub allow_test_root: bool,
    /// The policy.
    pub policy: Policy,
}

/// The result of one verification.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// "verified" or "rejected".
    pub verdict: &'static str,
    /// Whether the chain ends in Vigil's TEST root (evidence not from AMD hardware).
    pub test_root: bool,
    /// The product the checks used.
    pub product: Option<Product>,
    /// Report fields.
    pub claims: serde_json::Value,
    /// Every check in order.
    pub checks: Vec<Check>,
}

impl Outcome {
    /// Whether every check passed or was skipped.
    pub fn verified(&self) -> bool {
        self.verdict == "verified"
    }

    /// The check with this name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A verifier with its trust store and a cache of verified certificate signatures
/// (child fingerprint, issuer fingerprint), shared by every verification it runs.
pub struct Verifier {
    store: TrustStore,
    sig_cache: Mutex<HashSet<([u8; 32], [u8; 32])>>,
}

/// The checks of one verification, in order.
pub(crate) struct Ctx {
    checks: Vec<Check>,
}

impl Ctx {
    pub(crate) fn add(&mut self, def: &'static CheckDef, status: Status, d: impl Into<String>) {
        self.checks.push(Check {
            name: def.name,
            status,
            detail: d.into(),
            proves: def.proves,
        });
    }
    pub(crate) fn pass(&mut self, def: &'static CheckDef, d: impl Into<String>) {
        self.add(def, Status::Pass, d)
    }
    pub(crate) fn fail(&mut self, def: &'static CheckDef, d: impl Into<String>) {
        self.add(def, Status::Fail, d)
    }
    pub(crate) fn skip(&mut self, def: &'static CheckDef, d: impl Into<String>) {
        self.add(def, Status::Skip, d)
    }
    pub(crate) fn cond(
        &mut self,
        def: &'static CheckDef,
        ok: bool,
        pass: impl Into<String>,
        fail: impl Into<String>,
    ) {
        if ok {
            self.pass(def, pass)
        } else {
            self.fail(def, fail)
        }
    }
}

/// Report fields as JSON claims.
pub fn claims(rep: &Report, product: Option<Product>) -> serde_json::Value {
    let r = &rep.r;
    let layout = product.unwrap_or(Product::Milan).tcb_layout();
    let tcb = |v: u64| {
        let t = layout.decode(v);
        serde_json::json!({"raw": format!("0x{v:016x}"), "fmc": t.fmc, "bl": t.bl, "tee": t.tee, "snp": t.snp, "ucode": t.ucode})
    };
    let mit = |v: u64| {
        if r.has_mit_vectors() {
            serde_json::json!(format!("0x{v:x}"))
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({
        "version": r.version,
        "guest_svn": r.guest_svn,
        "policy": format!("0x{:x}", r.policy),
        "family_id": hex::encode(r.family_id),
        "image_id": hex::encode(r.image_id),
        "vmpl": r.vmpl,
        "signature_algo": r.signature_algo,
        "signing_key": match r.signing_key() { 0 => "vcek", 1 => "vlek", 7 => "none", _ => "reserved" },
        "author_key_en": r.author_key_en(),
        "mask_chip_key": r.mask_chip_key(),
        "platform_info": format!("0x{:x}", r.platform_info),
        "report_data": hex::encode(r.report_data),
        "measurement": hex::encode(r.measurement),
        "host_data": hex::encode(r.host_data),
        "id_key_digest": hex::encode(r.id_key_digest),
        "author_key_digest": hex::encode(r.author_key_digest),
        "report_id": hex::encode(r.report_id),
        "report_id_ma": hex::encode(r.report_id_ma),
        "chip_id": hex::encode(r.chip_id),
        "cpuid": if r.has_cpuid() { serde_json::json!({"family": r.cpuid_fam_id, "model": r.cpuid_mod_id, "stepping": r.cpuid_step}) } else { serde_json::Value::Null },
        "current_tcb": tcb(r.current_tcb),
        "reported_tcb": tcb(r.reported_tcb),
        "committed_tcb": tcb(r.committed_tcb),
        "launch_tcb": tcb(r.launch_tcb),
        "current_version": format!("{}.{}.{}", r.current_major, r.current_minor, r.current_build),
        "committed_version": format!("{}.{}.{}", r.committed_major, r.committed_minor, r.committed_build),
        "launch_mit_vector": mit(r.launch_mit_vector),
        "current_mit_vector": mit(r.current_mit_vector),
    })
}

impl Verifier {
    /// A verifier with this trust store.
    pub fn new(store: TrustStore) -> Verifier {
        Verifier {
            store,
            sig_cache: Mutex::new(HashSet::new()),
        }
    }

    /// The trust store.
    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// Checks that `issuer` signed `child`, remembering successes by fingerprint pair.
    fn verify_sig_cached(&self, child: &Cert, issuer: &Cert) -> Result<(), CertError> {
        let key = (child.fingerprint, issuer.fingerprint);
        if let Ok(c) = self.sig_cache.lock() {
            if c.contains(&key) {
                return Ok(());
            }
        }
        child.verify_signed_by(issuer)?;
        if let Ok(mut c) = self.sig_cache.lock() {
            c.insert(key);
        }
        Ok(())
    }

    /// Runs every check on `ev` under `opt`, stage by stage.
    pub fn verify(&self, ev: &Evidence, opt: &Options) -> Outcome {
        let mut cx = Ctx { checks: Vec::new() };
        let Some(rep) = report_checks::length(&mut cx, &ev.report) else {
            return Outcome {
                verdict: "rejected",
                test_root: false,
                product: None,
                claims: serde_json::Value::Null,
                checks: cx.checks,
            };
        };
        let r = rep.r;
        let leaf_role = report_checks::structure(&mut cx, &r);
        let ch = chain::build(self, &mut cx, ev, &r, leaf_role, opt);
        profile::check(&mut cx, &ch, opt.at);
        report_checks::signature(&mut cx, &rep, ch.leaf);
        let product = product::decide(&mut cx, &r, ch.leaf, ch.root_product, opt.product);
        leaf::check(&mut cx, &r, ch.leaf, product, &opt.policy);
        match (&ev.crl, ch.root, ch.inter) {
            (None, _, _) => cx.skip(cat::CRL, "no CRL given (--crl, or fetched from KDS)"),
            (Some(bytes), Some(root), Some(inter)) => {
                match crl::check(bytes, root, inter, ch.leaf, opt.at) {
                    Ok(d) => cx.pass(cat::CRL, d),
                    Err(e) => cx.fail(cat::CRL, e.to_string()),
                }
            }
            (Some(_), _, _) => cx.skip(cat::CRL, "chain incomplete"),
        }
        let layout = product.unwrap_or(Product::Milan).tcb_layout();
        crate::checks::policy_checks(&mut cx, &r, product, layout, &opt.policy);
        evidence::checks(&mut cx, &r, ev, &opt.policy);
        let verified = cx.checks.iter().all(|c| c.status != Status::Fail);
        Outcome {
            verdict: if verified { "verified" } else { "rejected" },
            test_root: ch.test_root,
            product,
            claims: claims(&rep, product),
            checks: cx.checks,
        }
    }
}
