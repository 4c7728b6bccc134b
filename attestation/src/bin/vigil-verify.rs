//! vigil-verify: verifies SEV-SNP attestation evidence. A thin layer over the
//! `attestation` library: argument parsing, file reading, KDS fetching, printing.
//!
//! Exit codes: 0 verified, 1 rejected, 2 usage or input error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use attestation::certs::{parse_blob, Role};
use attestation::evidence::Refs;
use attestation::inputs::{self, InputError};
use attestation::kds::{Kds, DEFAULT_BASE};
use attestation::output;
use attestation::policy::Policy;
use attestation::product::Product;
use attestation::report::{decode_report_input, Report};
use attestation::roots::TrustStore;
use attestation::verify::{Evidence, Options, Verifier};
use clap::Parser;

/// Verify AMD SEV-SNP attestation reports: signature, certificate chain to a pinned AMD
/// root, TCB and chip binding, CRL, policy, SVSM manifest and Vigil event log.
///
/// Examples:
///   vigil-verify report.bin --certs certs/ --at 2025-06-01T00:00:00Z
///   vigil-verify /sys/kernel/config/tsm/report/r0 --policy policy.toml --json
///   vigil-verify report.hex --nonce 00ff.. --manifest manifest.bin --event-log log.bin --refs refs.json
///   vigil-verify r1.bin r2.bin r3.bin --offline --certs certs/      (batch)
///
/// Exit codes: 0 verified, 1 rejected, 2 usage or input error.
#[derive(Parser, Debug)]
#[command(name = "vigil-verify", version, verbatim_doc_comment)]
struct Cli {
    /// Report file(s): raw, hex or base64; or a configfs-tsm folder (outblob, auxblob,
    /// manifestblob). Several make a batch that shares one certificate cache.
    #[arg(required = true)]
    report: Vec<PathBuf>,
    /// Folder with the leaf (VCEK/VLEK) and intermediates/root, PEM or DER, any names.
    #[arg(long)]
    certs: Option<PathBuf>,
    /// The VCEK (or VLEK) certificate.
    #[arg(long)]
    vcek: Option<PathBuf>,
    /// A certificate chain file (ASK/ASVK and ARK, PEM as KDS serves it, or DER).
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Extended-report certificate table.
    #[arg(long)]
    cert_table: Option<PathBuf>,
    /// CRL (DER or PEM).
    #[arg(long)]
    crl: Option<PathBuf>,
    /// Policy (TOML).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Product (Milan, Genoa, Turin); needed for some v2 reports.
    #[arg(long)]
    product: Option<String>,
    /// Nonce given to the SVSM, hex (with --manifest, or a configfs-tsm folder's
    /// manifestblob).
    #[arg(long)]
    nonce: Option<String>,
    /// Services manifest file.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Vigil event log to replay.
    #[arg(long)]
    event_log: Option<PathBuf>,
    /// Reference values JSON from `vigil-igvm refs`.
    #[arg(long)]
    refs: Option<PathBuf>,
    /// Verify as of this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Never contact KDS.
    #[arg(long)]
    offline: bool,
    /// Fetch the CRL from KDS (when no --crl is given).
    #[arg(long)]
    fetch_crl: bool,
    /// Accept Vigil's TEST root (simulated/emulated security processor; not hardware).
    #[arg(long)]
    allow_test_root: bool,
    /// Trust another ARK (PEM/DER); its CN (ARK-<product>) names the product.
    #[arg(long)]
    trust_root: Vec<PathBuf>,
    /// KDS base URL.
    #[arg(long, default_value = DEFAULT_BASE, env = "VIGIL_KDS_URL")]
    kds_url: String,
    /// Certificate cache folder (default: $XDG_CACHE_HOME or ~/.cache, /vigil-verify).
    #[arg(long, env = "VIGIL_KDS_CACHE")]
    cache_dir: Option<PathBuf>,
    /// JSON output (schema vigil-verify/1).
    #[arg(long)]
    json: bool,
}

fn input_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn default_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|p| p.join("vigil-verify"))
}

fn run(cli: &Cli) -> Result<bool, String> {
    let policy = match &cli.policy {
        Some(p) => {
            let text = String::from_utf8(inputs::read(p).map_err(input_err)?).map_err(|e| {
                format!(
                    "{}: not UTF-8 at byte offset {}",
                    p.display(),
                    e.utf8_error().valid_up_to()
                )
            })?;
            Policy::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Policy::default(),
    };
    let product = match &cli.product {
        Some(s) => Some(
            Product::parse(s)
                .ok_or_else(|| format!("--product: unknown product {s:?} (Milan, Genoa, Turin)"))?,
        ),
        None => None,
    };
    let at = match &cli.at {
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("--at {s:?}: not RFC 3339: {e}"))?
            .unix_timestamp(),
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let mut store = TrustStore::builtin().map_err(input_err)?;
    for p in &cli.trust_root {
        let certs = parse_blob(
            &inputs::read(p).map_err(input_err)?,
            &p.display().to_string(),
        )
        .map_err(input_err)?;
        for c in certs {
            if c.role() != Role::Ark {
                return Err(format!(
                    "--trust-root {}: not a self-signed ARK-<product> certificate",
                    p.display()
                ));
            }
            let cn = c.subject_cn().unwrap_or_default();
            let prod = Product::parse(cn.trim_start_matches("ARK-")).ok_or_else(|| {
                format!("--trust-root {}: unknown product in {cn:?}", p.display())
            })?;
            store.add_root(c, prod);
        }
    }
    // Shared certificates.
    let mut shared = Vec::new();
    let mut crl = None;
    if let Some(d) = &cli.certs {
        let f = inputs::load_cert_dir(d).map_err(input_err)?;
        for s in &f.skipped {
            eprintln!("vigil-verify: note: skipped {s}");
        }
        shared.extend(f.certs);
        crl = f.crl;
    }
    for p in [&cli.vcek, &cli.chain].into_iter().flatten() {
        shared.extend(
            parse_blob(
                &inputs::read(p).map_err(input_err)?,
                &p.display().to_string(),
            )
            .map_err(input_err)?,
        );
    }
    if let Some(p) = &cli.cert_table {
        shared.extend(
            inputs::parse_cert_table(
                &inputs::read(p).map_err(input_err)?,
                &p.display().to_string(),
            )
            .map_err(input_err)?,
        );
    }
    if let Some(p) = &cli.crl {
        crl = Some(inputs::read(p).map_err(input_err)?);
    }
    let nonce = match &cli.nonce {
        Some(h) => Some(hex::decode(h.trim()).map_err(|e| format!("--nonce: not hex: {e}"))?),
        None => None,
    };
    let manifest_arg = match &cli.manifest {
        Some(p) => Some(inputs::read(p).map_err(input_err)?),
        None => None,
    };
    let event_log = match &cli.event_log {
        Some(p) => Some(inputs::read(p).map_err(input_err)?),
        None => None,
    };
    let refs = match &cli.refs {
        Some(p) => {
            let t = String::from_utf8(inputs::read(p).map_err(input_err)?)
                .map_err(|_| format!("{}: not UTF-8", p.display()))?;
            Some(Refs::from_json(&t).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let kds = Kds::new(
        &cli.kds_url,
        cli.cache_dir.clone().or_else(default_cache),
        cli.offline,
    );
    let verifier = Verifier::new(store);
    let opt = Options {
        product,
        at,
        allow_test_root: cli.allow_test_root,
        policy: policy.clone(),
    };

    if !cli.json {
        print!("{}", output::policy_text(&policy));
    }
    let mut results = Vec::new();
    for path in &cli.report {
        let (report, mut certs, manifest) = if path.is_dir() {
            let t = inputs::load_tsm(path).map_err(|e: InputError| e.to_string())?;
            (
                t.report,
                t.certs,
                t.manifest.or_else(|| manifest_arg.clone()),
            )
        } else {
            let raw = inputs::read(path).map_err(input_err)?;
            let rep = decode_report_input(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
            (rep, Vec::new(), manifest_arg.clone())
        };
        certs.extend(shared.iter().cloned());
        let mut ev_crl = crl.clone();
        // Fetch what is missing from KDS, unless --offline.
        if let Ok(rep) = Report::from_bytes(&report) {
            let want = if rep.r.signing_key() == 1 {
                Role::Vlek
            } else {
                Role::Vcek
            };
            let have_leaf = certs.iter().any(|c| c.role() == want);
            let prod = product
                .or_else(|| {
                    if rep.r.has_cpuid() {
                        Product::from_cpuid(rep.r.cpuid_fam_id, rep.r.cpuid_mod_id)
                    } else {
                        None
                    }
                })
                .or_else(|| {
                    certs
                        .iter()
                        .find(|c| c.role() == want)
                        .and_then(|c| {
                            attestation::certs::decode_ia5(c, &attestation::oids::PRODUCT_NAME)
                                .ok()
                                .flatten()
                        })
                        .and_then(|n| Product::parse(&n))
                });
            if let Some(prod) = prod.filter(|p| *p != Product::VigilTest) {
                if !have_leaf && want == Role::Vcek && !cli.offline {
                    let tcb = prod.tcb_layout().decode(rep.r.reported_tcb);
                    match kds.vcek(prod, &rep.r.chip_id, &tcb) {
                        Ok(c) => certs.push(c),
                        Err(e) => eprintln!("vigil-verify: {e}"),
                    }
                }
                let inter = if want == Role::Vlek {
                    Role::Asvk
                } else {
                    Role::Ask
                };
                if !certs.iter().any(|c| c.role() == inter) && !cli.offline && !have_leaf {
                    match kds.cert_chain(prod, want == Role::Vlek) {
                        Ok(c) => certs.extend(c),
                        Err(e) => eprintln!("vigil-verify: {e}"),
                    }
                }
                if ev_crl.is_none() && cli.fetch_crl && !cli.offline {
                    match kds.crl(prod, want == Role::Vlek) {
                        Ok(c) => ev_crl = Some(c),
                        Err(e) => eprintln!("vigil-verify: {e}"),
                    }
                }
            }
        }
        let ev = Evidence {
            report,
            certs,
            crl: ev_crl,
            nonce: nonce.clone(),
            manifest,
            event_log: event_log.clone(),
            refs: refs.clone(),
        };
        let out = verifier.verify(&ev, &opt);
        if out.test_root {
            eprintln!("{}", output::TEST_ROOT_WARNING);
        }
        if !cli.json {
            print!("{}", output::text(&path.display().to_string(), &out));
        }
        results.push((path.display().to_string(), out));
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output::json(&policy, &results)).map_err(input_err)?
        );
    } else if results.len() > 1 {
        let ok = results.iter().filter(|r| r.1.verified()).count();
        println!("batch: {ok} of {} verified", results.len());
    }
    Ok(results.iter().all(|r| r.1.verified()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let _ = Path::new("");
    match run(&cli) {
        Ok(true) => ExitCode::from(0),
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vigil-verify: error: {e}");
            ExitCode::from(2)
        }
    }
}
