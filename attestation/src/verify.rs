//! The verifier: runs every check on one piece of evidence and returns them all, named,
//! with a verdict. Checks do not stop at the first failure (a report with a bad
//! signature still gets its other fields checked and shown), but a check that depends on
//! a failed one is reported as "skip" with that reason, and the verdict is "verified"
//! only when no check failed.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;
use svsm_abi::report::{self as abi, Tcb, SIGNING_KEY_NONE, SIGNING_KEY_VCEK, SIGNING_KEY_VLEK};

use crate::certs::{decode_ia5, decode_spl, Cert, Role};
use crate::crl;
use crate::evidence::{self, Refs};
use crate::oids;
use crate::policy::{self, Policy};
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
    /// Stable dotted name, e.g. `report.signature`.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was compared, or why it failed or was skipped.
    pub detail: String,
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

struct Ctx {
    checks: Vec<Check>,
}

impl Ctx {
    fn add(&mut self, name: &str, status: Status, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            detail: detail.into(),
        });
        status != Status::Fail
    }
    fn pass(&mut self, name: &str, d: impl Into<String>) -> bool {
        self.add(name, Status::Pass, d)
    }
    fn fail(&mut self, name: &str, d: impl Into<String>) -> bool {
        self.add(name, Status::Fail, d)
    }
    fn skip(&mut self, name: &str, d: impl Into<String>) -> bool {
        self.add(name, Status::Skip, d)
    }
    fn cond(
        &mut self,
        name: &str,
        ok: bool,
        pass: impl Into<String>,
        fail: impl Into<String>,
    ) -> bool {
        if ok {
            self.pass(name, pass)
        } else {
            self.fail(name, fail)
        }
    }
}

fn tcb_str(t: &Tcb) -> String {
    match t.fmc {
        Some(f) => format!(
            "fmc={} bl={} tee={} snp={} ucode={}",
            f, t.bl, t.tee, t.snp, t.ucode
        ),
        None => format!("bl={} tee={} snp={} ucode={}", t.bl, t.tee, t.snp, t.ucode),
    }
}

fn time_of(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn fmt_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Report fields as JSON claims.
pub fn claims(rep: &Report, product: Option<Product>) -> serde_json::Value {
    let r = &rep.r;
    let layout = product.unwrap_or(Product::Milan).tcb_layout();
    let tcb = |v: u64| {
        let t = layout.decode(v);
        serde_json::json!({"raw": format!("0x{v:016x}"), "fmc": t.fmc, "bl": t.bl, "tee": t.tee, "snp": t.snp, "ucode": t.ucode})
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
        "launch_mit_vector": if r.has_mit_vectors() { serde_json::json!(format!("0x{:x}", r.launch_mit_vector)) } else { serde_json::Value::Null },
        "current_mit_vector": if r.has_mit_vectors() { serde_json::json!(format!("0x{:x}", r.current_mit_vector)) } else { serde_json::Value::Null },
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

    fn verify_sig_cached(&self, child: &Cert, issuer: &Cert) -> Result<(), String> {
        let key = (child.fingerprint, issuer.fingerprint);
        if let Ok(c) = self.sig_cache.lock() {
            if c.contains(&key) {
                return Ok(());
            }
        }
        child.verify_signed_by(issuer).map_err(|e| e.to_string())?;
        if let Ok(mut c) = self.sig_cache.lock() {
            c.insert(key);
        }
        Ok(())
    }

    /// Runs every check on `ev` under `opt`.
    pub fn verify(&self, ev: &Evidence, opt: &Options) -> Outcome {
        let mut cx = Ctx { checks: Vec::new() };
        let rep = match Report::from_bytes(&ev.report) {
            Ok(r) => {
                cx.pass("report.length", format!("{} bytes", r.bytes.len()));
                r
            }
            Err(e) => {
                cx.fail("report.length", e);
                return Outcome {
                    verdict: "rejected",
                    test_root: false,
                    product: None,
                    claims: serde_json::Value::Null,
                    checks: cx.checks,
                };
            }
        };
        let r = rep.r;
        cx.cond(
            "report.version",
            (abi::MIN_VERSION..=abi::MAX_VERSION).contains(&r.version),
            format!("version {}", r.version),
            format!("version {} is not 2..5 (offset 0x000)", r.version),
        );
        cx.cond(
            "report.sig_algo",
            r.signature_algo == abi::SIG_ALGO_ECDSA_P384_SHA384,
            "1 (ECDSA P-384 with SHA-384)",
            format!("SIG_ALGO {} is not 1 (offset 0x034)", r.signature_algo),
        );
        let sk = r.signing_key();
        let leaf_role = match sk {
            SIGNING_KEY_VCEK => {
                cx.pass("report.signing_key", "VCEK");
                Some(Role::Vcek)
            }
            SIGNING_KEY_VLEK => {
                cx.pass("report.signing_key", "VLEK");
                Some(Role::Vlek)
            }
            SIGNING_KEY_NONE => {
                cx.fail(
                    "report.signing_key",
                    "SIGNING_KEY 7 (none): the report is not signed (offset 0x048 bits 4:2)",
                );
                None
            }
            v => {
                cx.fail(
                    "report.signing_key",
                    format!("SIGNING_KEY {v} is reserved (offset 0x048 bits 4:2)"),
                );
                None
            }
        };
        match r.first_nonzero_reserved() {
            None => cx.pass("report.reserved", "all reserved fields are zero"),
            Some(x) => cx.fail(
                "report.reserved",
                format!("{} is not zero (byte offset 0x{:03X})", x.field, x.offset),
            ),
        };

        // ---- chain
        let leaf = leaf_role.and_then(|role| {
            let mut c: Vec<&Cert> = ev.certs.iter().filter(|c| c.role() == role).collect();
            // Prefer the VCEK whose hwID matches CHIP_ID (a batch folder may hold many).
            c.sort_by_key(|c| {
                let hw = c.extension(&oids::HW_ID).unwrap_or(&[]);
                hw.is_empty() || !r.chip_id.starts_with(hw)
            });
            c.first().copied()
        });
        let leaf = match (leaf, leaf_role) {
            (Some(l), _) => {
                cx.pass(
                    "chain.leaf",
                    format!("{} from {}", l.role().name(), l.source),
                );
                Some(l)
            }
            (None, Some(role)) => {
                cx.fail(
                    "chain.leaf",
                    format!(
                        "no {} certificate given or fetched",
                        role.name().to_uppercase()
                    ),
                );
                None
            }
            (None, None) => {
                cx.skip("chain.leaf", "no valid SIGNING_KEY");
                None
            }
        };
        let inter_role = if leaf_role == Some(Role::Vlek) {
            Role::Asvk
        } else {
            Role::Ask
        };
        let inter: Option<&Cert> = leaf.and_then(|l| {
            let issuer = &l.parsed.tbs_certificate.issuer;
            ev.certs
                .iter()
                .find(|c| c.role() == inter_role && &c.parsed.tbs_certificate.subject == issuer)
                .or_else(|| {
                    self.store
                        .anchors
                        .iter()
                        .find(|a| {
                            a.role == inter_role.name()
                                && &a.cert.parsed.tbs_certificate.subject == issuer
                        })
                        .map(|a| &a.cert)
                })
        });
        match (&inter, leaf) {
            (Some(i), _) => cx.pass(
                "chain.intermediate",
                format!(
                    "{} {} from {}",
                    inter_role.name(),
                    i.subject_cn().unwrap_or_default(),
                    i.source
                ),
            ),
            (None, Some(l)) => cx.fail(
                "chain.intermediate",
                format!(
                    "no {} whose subject is the leaf's issuer ({})",
                    inter_role.name().to_uppercase(),
                    l.issuer_cn().unwrap_or_default()
                ),
            ),
            (None, None) => cx.skip("chain.intermediate", "no leaf"),
        };
        let root: Option<&Cert> = inter.and_then(|i| {
            let issuer = &i.parsed.tbs_certificate.issuer;
            ev.certs
                .iter()
                .find(|c| c.role() == Role::Ark && &c.parsed.tbs_certificate.subject == issuer)
                .or_else(|| {
                    self.store
                        .anchors
                        .iter()
                        .find(|a| {
                            a.role == "ark" && &a.cert.parsed.tbs_certificate.subject == issuer
                        })
                        .map(|a| &a.cert)
                })
        });
        let mut test_root = false;
        let mut root_product = None;
        let mut chain_ok = true;
        match &root {
            None => {
                chain_ok = false;
                if inter.is_some() {
                    cx.fail(
                        "chain.root",
                        "no ARK whose subject is the intermediate's issuer",
                    )
                } else {
                    cx.skip("chain.root", "no intermediate")
                };
            }
            Some(root) => match self.store.root_by_fingerprint(&root.fingerprint) {
                Some(a) if a.test && !opt.allow_test_root => {
                    chain_ok = false;
                    cx.fail("chain.root", "the root is Vigil's TEST root (evidence from a simulated or emulated security processor, not AMD hardware); refused without --allow-test-root");
                }
                Some(a) => {
                    test_root = a.test;
                    root_product = Some(a.product);
                    cx.pass(
                        "chain.root",
                        format!(
                            "{} pinned by SHA-256 {}{}",
                            root.subject_cn().unwrap_or_default(),
                            root.fingerprint_hex(),
                            if a.test {
                                " (Vigil TEST root: NOT AMD hardware)"
                            } else if a.user {
                                " (--trust-root)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
                None => {
                    chain_ok = false;
                    cx.fail(
                        "chain.root",
                        format!(
                            "root {} with SHA-256 {} is not a pinned AMD root",
                            root.subject_cn().unwrap_or_default(),
                            root.fingerprint_hex()
                        ),
                    );
                }
            },
        }
        // Signatures down the chain.
        for (name, child, issuer) in [
            ("chain.root.signature", root, root),
            ("chain.intermediate.signature", inter, root),
            ("chain.leaf.signature", leaf, inter),
        ] {
            match (child, issuer) {
                (Some(c), Some(i)) => match self.verify_sig_cached(c, i) {
                    Ok(()) => cx.pass(
                        name,
                        format!("RSA-PSS SHA-384 by {}", i.subject_cn().unwrap_or_default()),
                    ),
                    Err(e) => {
                        chain_ok = false;
                        cx.fail(name, e)
                    }
                },
                _ => {
                    chain_ok = false;
                    cx.skip(name, "chain incomplete")
                }
            };
        }
        // X.509 profile.
        let certs: Vec<(&str, &Cert)> = [("root", root), ("intermediate", inter), ("leaf", leaf)]
            .into_iter()
            .filter_map(|(n, c)| c.map(|c| (n, c)))
            .collect();
        if certs.len() == 3 {
            let mut problems = Vec::new();
            for (n, c) in &certs {
                let t = &c.parsed.tbs_certificate;
                if t.version != x509_cert::Version::V3 {
                    problems.push(format!("{n}: not X.509 v3"));
                }
                if c.role() != Role::Vcek
                    && c.role() != Role::Vlek
                    && t.serial_number.as_bytes().iter().all(|b| *b == 0)
                {
                    problems.push(format!("{n}: serial 0 on a CA certificate"));
                }
                let bc = c
                    .parsed
                    .tbs_certificate
                    .get::<x509_cert::ext::pkix::BasicConstraints>();
                let ku = c
                    .parsed
                    .tbs_certificate
                    .get::<x509_cert::ext::pkix::KeyUsage>();
                match (*n, bc, ku) {
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
                let o = c
                    .parsed
                    .tbs_certificate
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
            if let (Some(l), Some(i)) = (leaf, inter) {
                if l.parsed.tbs_certificate.issuer != i.parsed.tbs_certificate.subject {
                    problems.push("leaf issuer differs from intermediate subject".into());
                }
                let lspki = &l.parsed.tbs_certificate.subject_public_key_info;
                let curve = lspki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok());
                if lspki.algorithm.oid != oids::EC_PUBLIC_KEY || curve != Some(oids::SECP384R1) {
                    problems.push("leaf key is not EC P-384".into());
                }
            }
            if problems.is_empty() {
                cx.pass("chain.profile", "v3, names, basicConstraints, keyUsage, leaf key P-384 (serial 0 tolerated on the leaf)");
            } else {
                chain_ok = false;
                cx.fail("chain.profile", problems.join("; "));
            }
            let mut bad = Vec::new();
            for (n, c) in &certs {
                let v = &c.parsed.tbs_certificate.validity;
                let (nb, na) = (time_of(&v.not_before), time_of(&v.not_after));
                if opt.at < nb || opt.at > na {
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
                    "chain.validity",
                    format!("all valid at {}", fmt_time(opt.at)),
                );
            } else {
                chain_ok = false;
                cx.fail(
                    "chain.validity",
                    format!("not valid at {}: {}", fmt_time(opt.at), bad.join("; ")),
                );
            }
        } else {
            cx.skip("chain.profile", "chain incomplete");
            cx.skip("chain.validity", "chain incomplete");
        }

        // ---- report signature with the leaf key
        let leaf_key = leaf.and_then(|l| {
            let spki = &l.parsed.tbs_certificate.subject_public_key_info;
            p384::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).ok()
        });
        match (&leaf_key, leaf) {
            (Some(_), Some(l)) => {
                let point = l
                    .parsed
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes();
                match rep.verify_signature_ring(point) {
                    Ok(()) => cx.pass(
                        "report.signature",
                        "ECDSA P-384/SHA-384 over bytes 0x000-0x29F as received",
                    ),
                    Err(e) => cx.fail("report.signature", e),
                };
            }
            (None, Some(_)) => {
                cx.fail(
                    "report.signature",
                    "leaf public key is not a valid P-384 point",
                );
            }
            (_, None) => {
                cx.skip("report.signature", "no leaf certificate");
            }
        }

        // ---- product
        let cpuid_product = if r.has_cpuid() {
            Product::from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id)
        } else {
            None
        };
        let leaf_pname = leaf.map(|l| decode_ia5(l, &oids::PRODUCT_NAME));
        let cert_product = match &leaf_pname {
            Some(Ok(Some(n))) => Product::parse(n),
            _ => None,
        };
        let mut sources: Vec<(String, Product)> = Vec::new();
        if let Some(p) = opt.product {
            sources.push(("--product".into(), p));
        }
        if let Some(p) = cert_product {
            sources.push(("certificate productName".into(), p));
        }
        if let Some(p) = root_product {
            sources.push(("root".into(), p));
        }
        let is_test = root_product == Some(Product::VigilTest);
        if let (Some(p), false) = (cpuid_product, is_test) {
            sources.push((
                format!(
                    "CPUID family 0x{:02x} model 0x{:02x}",
                    r.cpuid_fam_id, r.cpuid_mod_id
                ),
                p,
            ));
        }
        let product = sources.first().map(|s| s.1);
        match product {
            None => {
                cx.fail("product", "product unknown: v2 report without CPUID and no certificate product name; give --product");
            }
            Some(p) => {
                let disagree: Vec<String> = sources
                    .iter()
                    .filter(|s| s.1 != p)
                    .map(|s| format!("{} says {}", s.0, s.1.name()))
                    .collect();
                let srcs: Vec<String> = sources.iter().map(|s| s.0.clone()).collect();
                if disagree.is_empty() {
                    cx.pass(
                        "product",
                        format!(
                            "{} (from {}); TCB layout {:?}",
                            p.name(),
                            srcs.join(", "),
                            p.tcb_layout()
                        ),
                    );
                } else {
                    cx.fail(
                        "product",
                        format!(
                            "{} from {}, but {}",
                            p.name(),
                            sources[0].0,
                            disagree.join(", ")
                        ),
                    );
                }
            }
        }
        let layout = product.unwrap_or(Product::Milan).tcb_layout();
        let rtcb = layout.decode(r.reported_tcb);

        // ---- leaf extensions vs report
        match (leaf, product) {
            (Some(l), Some(p)) => {
                let spl = |oid: &spki::ObjectIdentifier| decode_spl(l, oid);
                let vals = (|| -> Result<Spls, String> {
                    Ok((
                        spl(&oids::FMC_SPL).map_err(|e| e.to_string())?,
                        spl(&oids::BL_SPL).map_err(|e| e.to_string())?,
                        spl(&oids::TEE_SPL).map_err(|e| e.to_string())?,
                        spl(&oids::SNP_SPL).map_err(|e| e.to_string())?,
                        spl(&oids::UCODE_SPL).map_err(|e| e.to_string())?,
                    ))
                })();
                match vals {
                    Err(e) => {
                        cx.fail("cert.tcb", e);
                    }
                    Ok((fmc, bl, tee, snp, ucode)) => {
                        let want_fmc = p == Product::Turin;
                        let cert_tcb = Tcb {
                            fmc,
                            bl: bl.unwrap_or(0),
                            tee: tee.unwrap_or(0),
                            snp: snp.unwrap_or(0),
                            ucode: ucode.unwrap_or(0),
                            reserved_nonzero: false,
                        };
                        if bl.is_none()
                            || tee.is_none()
                            || snp.is_none()
                            || ucode.is_none()
                            || (want_fmc && fmc.is_none())
                        {
                            cx.fail("cert.tcb", "leaf lacks an SPL extension (blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL on Turin)");
                        } else if !want_fmc && fmc.is_some() {
                            cx.fail(
                                "cert.tcb",
                                format!("leaf has fmcSPL, which {} does not have", p.name()),
                            );
                        } else {
                            let same = cert_tcb.fmc == rtcb.fmc
                                && cert_tcb.bl == rtcb.bl
                                && cert_tcb.tee == rtcb.tee
                                && cert_tcb.snp == rtcb.snp
                                && cert_tcb.ucode == rtcb.ucode
                                && !rtcb.reserved_nonzero;
                            cx.cond(
                                "cert.tcb",
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
                    }
                }
                if l.role() == Role::Vcek {
                    match l.extension(&oids::HW_ID) {
                        None => {
                            cx.fail("cert.hwid", "VCEK has no hwID extension");
                        }
                        Some(hw) => {
                            let n = p.hwid_len();
                            if r.chip_id.iter().all(|b| *b == 0) || r.mask_chip_key() {
                                if opt.policy.allow_masked_chip_id == Some(true) {
                                    cx.skip(
                                        "cert.hwid",
                                        "CHIP_ID masked; allowed by policy allow_masked_chip_id",
                                    );
                                } else {
                                    cx.fail("cert.hwid", "CHIP_ID is masked (zero); the policy does not allow it (allow_masked_chip_id)");
                                }
                            } else if hw.len() != n {
                                cx.fail(
                                    "cert.hwid",
                                    format!("hwID is {} bytes, {} uses {}", hw.len(), p.name(), n),
                                );
                            } else {
                                let ok =
                                    r.chip_id[..n] == *hw && r.chip_id[n..].iter().all(|b| *b == 0);
                                cx.cond(
                                    "cert.hwid",
                                    ok,
                                    format!("hwID = CHIP_ID ({} bytes)", n),
                                    format!(
                                        "hwID {} differs from CHIP_ID {} (offset 0x1A0)",
                                        hex::encode(hw),
                                        hex::encode(&r.chip_id[..n.max(8)])
                                    ),
                                );
                            }
                        }
                    }
                    cx.skip("cert.csp_id", "VCEK: no cspId");
                } else {
                    cx.skip(
                        "cert.hwid",
                        "VLEK is not bound to a chip (CHIP_ID is zero in VLEK-signed reports)",
                    );
                    match decode_ia5(l, &oids::CSP_ID) {
                        Err(e) => {
                            cx.fail("cert.csp_id", e.to_string());
                        }
                        Ok(None) => {
                            cx.fail("cert.csp_id", "VLEK has no cspId extension");
                        }
                        Ok(Some(csp)) => {
                            match &opt.policy.vlek_csp_ids {
                                None => {
                                    cx.skip("cert.csp_id", format!("cspId {csp:?}; no allow-list in the policy (vlek_csp_ids)"));
                                }
                                Some(list) => {
                                    cx.cond(
                                        "cert.csp_id",
                                        list.contains(&csp),
                                        format!("cspId {csp:?} allowed"),
                                        format!("cspId {csp:?} not in vlek_csp_ids"),
                                    );
                                }
                            }
                        }
                    }
                }
                match &leaf_pname {
                    Some(Ok(Some(n))) => cx.cond(
                        "cert.product_name",
                        Product::parse(n).is_some(),
                        format!("{n:?}"),
                        format!("unknown productName {n:?}"),
                    ),
                    Some(Ok(None)) => cx.skip("cert.product_name", "leaf has no productName"),
                    Some(Err(e)) => cx.fail("cert.product_name", e.to_string()),
                    None => cx.skip("cert.product_name", "no leaf"),
                };
            }
            _ => {
                for n in ["cert.tcb", "cert.hwid", "cert.csp_id", "cert.product_name"] {
                    cx.skip(n, "no leaf certificate or unknown product");
                }
            }
        }

        // ---- CRL
        match (&ev.crl, root, inter) {
            (None, _, _) => {
                cx.skip("crl", "no CRL given (--crl, or fetched from KDS)");
            }
            (Some(bytes), Some(root), Some(inter)) => {
                match crl::check(bytes, root, inter, leaf, opt.at) {
                    Ok(d) => cx.pass("crl", d),
                    Err(e) => cx.fail("crl", e),
                };
            }
            (Some(_), _, _) => {
                cx.skip("crl", "chain incomplete");
            }
        }

        // ---- policy
        crate::checks::policy_checks(
            &mut |n, s, d| {
                cx.add(n, s, d);
            },
            &r,
            product,
            layout,
            &opt.policy,
        );

        // ---- SVSM evidence and reference values
        evidence::checks(
            &mut |n, s, d| {
                cx.add(n, s, d);
            },
            &r,
            ev,
        );

        let _ = chain_ok;
        let verified = cx.checks.iter().all(|c| c.status != Status::Fail);
        Outcome {
            verdict: if verified { "verified" } else { "rejected" },
            test_root,
            product,
            claims: claims(&rep, product),
            checks: cx.checks,
        }
    }
}

/// The five SPL extensions of a leaf (fmc, bl, tee, snp, ucode).
type Spls = (Option<u8>, Option<u8>, Option<u8>, Option<u8>, Option<u8>);

/// Policy check helper signature: (name, status, detail).
pub type Sink<'a> = dyn FnMut(&str, Status, String) + 'a;

#[allow(dead_code)]
fn _unused(_: &policy::Policy) {}
