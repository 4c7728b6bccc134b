//! Loading what the options name, once per run: policy, product, time, trust roots,
//! certificates, CRL, manifest, event log and reference values. Each file is read with
//! its format's limit (`crate::limits`) and must be what its option says: a certificate
//! of the wrong role or a CRL that is not a CRL is a usage error naming the file.

use std::path::Path;

use super::cli::Cli;
use super::error::AppError;
use crate::certs::{parse_blob, Cert, Role};
use crate::evidence::Refs;
use crate::inputs::{self, InputError};
use crate::limits::Input;
use crate::policy::Policy;
use crate::product::Product;
use crate::roots::TrustStore;

/// Everything the options give, shared by every input of a batch.
pub struct Config {
    /// The policy (default when no file).
    pub policy: Policy,
    /// `--product`.
    pub product: Option<Product>,
    /// Verification time, Unix seconds.
    pub at: i64,
    /// Built-in roots plus `--trust-root`.
    pub store: TrustStore,
    /// Certificates from `--certs`, `--vcek`, `--chain`, `--cert-table`.
    pub certs: Vec<Cert>,
    /// CRL from `--crl` or `--certs`.
    pub crl: Option<Vec<u8>>,
    /// `--manifest`.
    pub manifest: Option<Vec<u8>>,
    /// `--event-log`.
    pub event_log: Option<Vec<u8>>,
    /// `--refs`.
    pub refs: Option<Refs>,
}

fn utf8(option: &'static str, p: &Path, b: Vec<u8>) -> Result<String, AppError> {
    String::from_utf8(b).map_err(|e| AppError::NotUtf8 {
        option,
        path: p.display().to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

fn policy(cli: &Cli) -> Result<Policy, AppError> {
    let Some(p) = &cli.policy else {
        return Ok(Policy::default());
    };
    let text = utf8(
        "policy",
        p,
        inputs::read(p, Input::Policy).map_err(AppError::input("policy"))?,
    )?;
    Policy::from_toml(&text).map_err(|err| AppError::Policy {
        path: p.display().to_string(),
        err,
    })
}

fn refs(cli: &Cli) -> Result<Option<Refs>, AppError> {
    let Some(p) = &cli.refs else { return Ok(None) };
    let text = utf8(
        "refs",
        p,
        inputs::read(p, Input::Refs).map_err(AppError::input("refs"))?,
    )?;
    Refs::from_json(&text)
        .map(Some)
        .map_err(|err| AppError::Refs {
            path: p.display().to_string(),
            err,
        })
}

fn at(cli: &Cli) -> Result<i64, AppError> {
    let fmt = &time::format_description::well_known::Rfc3339;
    match &cli.at {
        Some(s) => time::OffsetDateTime::parse(s, fmt)
            .map(|t| t.unix_timestamp())
            .map_err(|e| AppError::At {
                value: s.clone(),
                reason: e.to_string(),
            }),
        None => Ok(time::OffsetDateTime::now_utc().unix_timestamp()),
    }
}

/// Certificates of one option's file, each required to have one of `roles`.
fn certs_of(
    option: &'static str,
    p: &Path,
    roles: &[Role],
    want: &'static str,
) -> Result<Vec<Cert>, AppError> {
    let bytes = inputs::read(p, Input::Cert).map_err(AppError::input(option))?;
    let certs = parse_blob(&bytes, &p.display().to_string())
        .map_err(|e| AppError::input(option)(InputError::Cert(e)))?;
    for c in &certs {
        if !roles.contains(&c.role()) {
            return Err(AppError::wrong_role(
                option,
                p,
                c.role(),
                c.subject_cn().unwrap_or_default(),
                want,
            ));
        }
    }
    Ok(certs)
}

fn store(cli: &Cli) -> Result<TrustStore, AppError> {
    let mut store = TrustStore::builtin()?;
    for p in &cli.trust_root {
        let err = |reason: String| AppError::TrustRoot {
            path: p.display().to_string(),
            reason,
        };
        for c in certs_of(
            "trust-root",
            p,
            &[Role::Ark],
            "a self-signed ARK-<product> root",
        )? {
            let cn = c.subject_cn().unwrap_or_default();
            let prod = Product::parse(cn.trim_start_matches("ARK-"))
                .ok_or_else(|| err(format!("unknown product in {cn:?}")))?;
            store.add_root(c, prod);
        }
    }
    Ok(store)
}

/// Certificates and CRL from `--certs`, `--vcek`, `--chain`, `--cert-table`, `--crl`.
fn certs_and_crl(cli: &Cli) -> Result<(Vec<Cert>, Option<Vec<u8>>), AppError> {
    let mut certs = Vec::new();
    let mut crl = None;
    if let Some(d) = &cli.certs {
        let f = inputs::load_cert_dir(d).map_err(AppError::input("certs"))?;
        for s in &f.skipped {
            eprintln!("vigil-verify: note: skipped {s}");
        }
        certs.extend(f.certs);
        crl = f.crl;
    }
    if let Some(p) = &cli.vcek {
        certs.extend(certs_of(
            "vcek",
            p,
            &[Role::Vcek, Role::Vlek],
            "a VCEK or VLEK",
        )?);
    }
    if let Some(p) = &cli.chain {
        let roles = [Role::Ask, Role::Asvk, Role::Ark];
        certs.extend(certs_of("chain", p, &roles, "an ASK, ASVK or ARK")?);
    }
    if let Some(p) = &cli.cert_table {
        let b = inputs::read(p, Input::CertTable).map_err(AppError::input("cert-table"))?;
        certs.extend(
            inputs::parse_cert_table(&b, &p.display().to_string())
                .map_err(AppError::input("cert-table"))?,
        );
    }
    if let Some(p) = &cli.crl {
        let b = inputs::read(p, Input::Crl).map_err(AppError::input("crl"))?;
        // The file must be a CRL; whether the ARK signed it and whether it lists the
        // chain is the `crl` check's business.
        crate::crl::parse(&b).map_err(|err| AppError::NotACrl {
            path: p.display().to_string(),
            err,
        })?;
        crl = Some(b);
    }
    Ok((certs, crl))
}

/// Loads everything the options name.
pub fn config(cli: &Cli) -> Result<Config, AppError> {
    let policy = policy(cli)?;
    let product = match &cli.product {
        Some(s) => Some(Product::parse(s).ok_or_else(|| AppError::Product(s.clone()))?),
        None => None,
    };
    let at = at(cli)?;
    let store = store(cli)?;
    let (certs, crl) = certs_and_crl(cli)?;
    let opt_file = |option: &'static str, p: &Option<std::path::PathBuf>, kind| {
        p.as_ref()
            .map(|p| inputs::read(p, kind).map_err(AppError::input(option)))
            .transpose()
    };
    let manifest = opt_file("manifest", &cli.manifest, Input::Manifest)?;
    let event_log = opt_file("event-log", &cli.event_log, Input::EventLog)?;
    let refs = refs(cli)?;
    Ok(Config {
        policy,
        product,
        at,
        store,
        certs,
        crl,
        manifest,
        event_log,
        refs,
    })
}
