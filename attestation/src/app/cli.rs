//! vigil-verify's command line (clap). Flags that only make sense together are tied
//! by the parser (`--manifest` and `--event-log` need `--nonce`; `--fetch-crl` excludes
//! `--offline` and `--crl`); the one rule clap cannot say (`--nonce` needs `--manifest`
//! unless every input is a configfs-tsm folder, which carries its manifestblob) is
//! checked in [`super::check_partners`]. Every value is bounded before it is used.

use std::path::PathBuf;

use clap::Parser;

use crate::kds::DEFAULT_BASE;
use crate::limits::MAX_NONCE;

/// Shown after the options by both `-h` and `--help`.
pub const AFTER_HELP: &str = "\
Network: unless --offline is given, certificates that are not given (the VCEK and its
ASK/ARK chain) are fetched from AMD's Key Distribution Service (--kds-url, default
https://kdsintf.amd.com) and cached; --fetch-crl fetches the CRL too. With --offline
nothing is fetched and the certificates must be given.

Examples:
  vigil-verify report.bin --certs certs/ --offline --at 2025-06-01T00:00:00Z
  vigil-verify /sys/kernel/config/tsm/report/r0 --policy policy.toml --json
  vigil-verify report.bin --certs certs/ --nonce 00ff.. --manifest manifest.bin \\
               --event-log log.bin --refs refs.json --offline
  vigil-verify r1.bin r2.bin r3.bin --offline --certs certs/      (batch)
  vigil-verify --list-checks                                      (the named checks)

Exit codes (a batch exits with the most severe: 2, then 3, then 1, then 0):
  0  verified: every check of every input passed or was skipped
  1  rejected: the evidence was examined and a check failed
  2  usage: bad or conflicting flags, a flag without its partner, a file that is not
     what its option says (e.g. --crl not a CRL, an ASK given as --vcek, a file over
     its size limit), an invalid policy or refs file
  3  environment: a file or folder that cannot be read, KDS unreachable or failing
With --json a JSON document (schema vigil-verify/1) is printed on every exit, with the
error in it.";

/// Verify AMD SEV-SNP attestation reports: signature, certificate chain to a pinned AMD
/// root, TCB and chip binding, CRL, policy, SVSM manifest and Vigil event log.
#[derive(Parser, Debug, Clone)]
#[command(name = "vigil-verify", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Report file(s): raw, hex or base64; or a configfs-tsm folder (outblob, auxblob,
    /// manifestblob). Several make a batch that shares one certificate cache.
    #[arg(required_unless_present = "list_checks")]
    pub report: Vec<PathBuf>,
    /// Folder with the leaf (VCEK/VLEK) and intermediates/root, PEM or DER, any names.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// The VCEK (or VLEK) certificate.
    #[arg(long)]
    pub vcek: Option<PathBuf>,
    /// A certificate chain file (ASK/ASVK and ARK, PEM as KDS serves it, or DER).
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// Extended-report certificate table.
    #[arg(long)]
    pub cert_table: Option<PathBuf>,
    /// CRL (DER or PEM).
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// Policy (TOML).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Product (Milan, Genoa, Turin); needed for some v2 reports.
    #[arg(long)]
    pub product: Option<String>,
    /// Nonce given to the SVSM, hex, at most 4096 bytes (with --manifest, or a
    /// configfs-tsm folder's manifestblob).
    #[arg(long, value_parser = parse_nonce)]
    pub nonce: Option<Nonce>,
    /// Services manifest file (with --nonce).
    #[arg(long, requires = "nonce")]
    pub manifest: Option<PathBuf>,
    /// Vigil event log to replay (with --nonce and the manifest that binds it).
    #[arg(long, requires = "nonce")]
    pub event_log: Option<PathBuf>,
    /// Reference values JSON from `vigil-igvm refs`.
    #[arg(long)]
    pub refs: Option<PathBuf>,
    /// Verify as of this time (RFC 3339) instead of now.
    #[arg(long)]
    pub at: Option<String>,
    /// Never contact AMD's KDS (the certificates must be given).
    #[arg(long)]
    pub offline: bool,
    /// Fetch the CRL from KDS (not with --offline or --crl).
    #[arg(long, conflicts_with_all = ["offline", "crl"])]
    pub fetch_crl: bool,
    /// Accept Vigil's TEST root (simulated/emulated security processor; not hardware).
    #[arg(long)]
    pub allow_test_root: bool,
    /// Trust another ARK (PEM/DER); its CN (ARK-<product>) names the product.
    #[arg(long)]
    pub trust_root: Vec<PathBuf>,
    /// KDS base URL (http:// or https://, host, optional port and path).
    #[arg(long, default_value = DEFAULT_BASE, env = "VIGIL_KDS_URL", value_parser = parse_kds_url)]
    pub kds_url: String,
    /// Certificate cache folder (default: $XDG_CACHE_HOME or ~/.cache, /vigil-verify).
    #[arg(long, env = "VIGIL_KDS_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// JSON output (schema vigil-verify/1), also on errors.
    #[arg(long)]
    pub json: bool,
    /// Print the table of named checks (name, what a pass proves, where it applies).
    #[arg(long)]
    pub list_checks: bool,
}

/// The bytes of `--nonce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce(pub Vec<u8>);

/// `--nonce`: hex, at most [`MAX_NONCE`] bytes.
fn parse_nonce(s: &str) -> Result<Nonce, String> {
    let t = s.trim();
    if t.len() > 2 * MAX_NONCE {
        return Err(format!(
            "{} hex digits; a nonce is at most {MAX_NONCE} bytes",
            t.len()
        ));
    }
    hex::decode(t)
        .map(Nonce)
        .map_err(|e| format!("not hex: {e}"))
}

/// `--kds-url`: `http://` or `https://`, a non-empty host of URL characters, no
/// query or fragment (paths are appended to it).
pub fn parse_kds_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} does not start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    let host_ok = !host.is_empty()
        && !host.starts_with(':')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    if !host_ok {
        return Err(format!("{s:?} has no valid host"));
    }
    if rest
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'?' || b == b'#')
    {
        return Err(format!("{s:?} contains whitespace, a query or a fragment"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kds_urls() {
        for ok in [
            "https://kdsintf.amd.com",
            "http://127.0.0.1:8080",
            "http://[::1]:80/base/",
        ] {
            assert!(parse_kds_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "kdsintf.amd.com",
            "ftp://x",
            "https://",
            "https:///path",
            "http://a b",
            "http://host?x=1",
            "http://:80",
        ] {
            assert!(parse_kds_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonce_is_bounded_hex() {
        assert_eq!(parse_nonce("00ff").unwrap(), Nonce(vec![0, 0xff]));
        assert!(parse_nonce("zz").is_err());
        assert!(parse_nonce(&"00".repeat(MAX_NONCE)).is_ok());
        assert!(parse_nonce(&"00".repeat(MAX_NONCE + 1))
            .unwrap_err()
            .contains("at most"));
    }
}
