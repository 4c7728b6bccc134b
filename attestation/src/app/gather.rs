//! The evidence of one input of a batch: its report (file or configfs-tsm folder), the
//! shared certificates, and what is missing fetched from AMD's KDS unless `--offline`
//! (AMD #57230, KDS interface: `/vcek/v1/{product}/{hwID}?...`, `cert_chain`, `crl`).
//!
//! KDS answers are not trusted because they came from KDS: they go through the same
//! chain checks as given certificates. A KDS that cannot be reached is an environment
//! failure of this input (exit 3); a 404 for a VCEK says AMD knows no such chip and TCB,
//! which the chain checks then report as a missing leaf (exit 1).

use std::path::Path;

use super::cli::Cli;
use super::error::AppError;
use super::load::Config;
use crate::certs::{decode_ia5, Cert, Role};
use crate::inputs;
use crate::kds::{Kds, KdsError};
use crate::limits::Input;
use crate::oids;
use crate::product::Product;
use crate::report::{decode_report_input, Report};
use crate::verify::Evidence;

/// Report bytes, the certificates that came with it, and its manifest.
type Read = (Vec<u8>, Vec<Cert>, Option<Vec<u8>>);

/// Reads one input: a report file or a configfs-tsm folder.
fn read_input(path: &Path, cfg: &Config) -> Result<Read, AppError> {
    if path.is_dir() {
        let t = inputs::load_tsm(path).map_err(|err| AppError::ReportRead { err })?;
        return Ok((
            t.report,
            t.certs,
            t.manifest.or_else(|| cfg.manifest.clone()),
        ));
    }
    let raw = inputs::read(path, Input::Report).map_err(|err| AppError::ReportRead { err })?;
    let rep = decode_report_input(&raw).map_err(|err| AppError::ReportEncoding {
        path: path.display().to_string(),
        err,
    })?;
    Ok((rep, Vec::new(), cfg.manifest.clone()))
}

/// The product to ask KDS for: `--product`, else CPUID (v3+), else the leaf's
/// productName. The checks decide the product again, from every source.
fn kds_product(rep: &Report, certs: &[Cert], want: Role, flag: Option<Product>) -> Option<Product> {
    flag.or_else(|| {
        rep.r
            .has_cpuid()
            .then(|| Product::from_cpuid(rep.r.cpuid_fam_id, rep.r.cpuid_mod_id))
            .flatten()
    })
    .or_else(|| {
        certs
            .iter()
            .find(|c| c.role() == want)
            .and_then(|c| decode_ia5(c, &oids::PRODUCT_NAME).ok().flatten())
            .and_then(|n| Product::parse(&n))
    })
    .filter(|p| *p != Product::VigilTest)
}

/// A KDS result: a 404 is noted and left to the checks, anything else that failed is
/// this input's environment error.
fn kds_ok<T>(r: Result<T, KdsError>) -> Result<Option<T>, AppError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e @ KdsError::NotFound { .. }) => {
            eprintln!("vigil-verify: note: {e}");
            Ok(None)
        }
        Err(e) => Err(AppError::Kds(e)),
    }
}

/// Fetches from KDS what the evidence lacks (never with `--offline`).
fn fetch_missing(
    cli: &Cli,
    cfg: &Config,
    kds: &Kds,
    report: &[u8],
    certs: &mut Vec<Cert>,
    crl: &mut Option<Vec<u8>>,
) -> Result<(), AppError> {
    let Ok(rep) = Report::from_bytes(report) else {
        return Ok(());
    };
    if cli.offline {
        return Ok(());
    }
    let want = if rep.r.signing_key() == 1 {
        Role::Vlek
    } else {
        Role::Vcek
    };
    let Some(prod) = kds_product(&rep, certs, want, cfg.product) else {
        return Ok(());
    };
    let vlek = want == Role::Vlek;
    let have_leaf = certs.iter().any(|c| c.role() == want);
    // VLEKs are not served by KDS; they must be given.
    if !have_leaf && !vlek {
        let tcb = prod.tcb_layout().decode(rep.r.reported_tcb);
        if let Some(c) = kds_ok(kds.vcek(prod, &rep.r.chip_id, &tcb))? {
            certs.push(c);
        }
    }
    let inter = if vlek { Role::Asvk } else { Role::Ask };
    if !have_leaf && !certs.iter().any(|c| c.role() == inter) {
        if let Some(c) = kds_ok(kds.cert_chain(prod, vlek))? {
            certs.extend(c);
        }
    }
    if crl.is_none() && cli.fetch_crl {
        *crl = kds_ok(kds.crl(prod, vlek))?;
    }
    Ok(())
}

/// The evidence of the input at `path`.
pub fn evidence(cli: &Cli, cfg: &Config, kds: &Kds, path: &Path) -> Result<Evidence, AppError> {
    let (report, mut certs, manifest) = read_input(path, cfg)?;
    certs.extend(cfg.certs.iter().cloned());
    let mut crl = cfg.crl.clone();
    fetch_missing(cli, cfg, kds, &report, &mut certs, &mut crl)?;
    Ok(Evidence {
        report,
        certs,
        crl,
        nonce: cli.nonce.as_ref().map(|n| n.0.clone()),
        manifest,
        event_log: cfg.event_log.clone(),
        refs: cfg.refs.clone(),
    })
}
