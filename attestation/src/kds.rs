//! AMD Key Distribution Service client: VCEK by product, hwID and TCB (Turin: fmcSPL
//! and the 8-byte hwID), the ASK+ARK (or ASVK+ARK) `cert_chain`, and the CRL, with an
//! on-disk cache keyed by product, hwID and TCB, and retry with backoff on HTTP 429.
//!
//! What comes from KDS is not trusted because it came from KDS: it goes through the
//! same chain checks as certificates from a file (pinned root, signatures, extensions).

use std::path::PathBuf;
use std::time::Duration;

use svsm_abi::report::Tcb;

use crate::certs::{parse_blob, Cert};
use crate::product::Product;

/// AMD's KDS.
pub const DEFAULT_BASE: &str = "https://kdsintf.amd.com";

/// A KDS problem.
#[derive(Debug, thiserror::Error)]
pub enum KdsError {
    /// Transport error.
    #[error("KDS {url}: {msg}")]
    Http {
        /// URL.
        url: String,
        /// Message.
        msg: String,
    },
    /// Bad content.
    #[error("KDS {url}: {msg}")]
    Content {
        /// URL.
        url: String,
        /// Message.
        msg: String,
    },
    /// HTTP 404: KDS has no such certificate (for a VCEK: no chip with this hwID and
    /// TCB), which says something about the evidence rather than the network.
    #[error("KDS {url}: HTTP 404, no such certificate")]
    NotFound {
        /// URL.
        url: String,
    },
    /// `--offline`.
    #[error("certificates needed from KDS ({0}) but --offline was given")]
    Offline(String),
}

/// A KDS client with an optional cache folder.
pub struct Kds {
    base: String,
    cache: Option<PathBuf>,
    agent: ureq::Agent,
    offline: bool,
    /// Attempts on HTTP 429 before giving up.
    pub max_attempts: u32,
    /// First backoff delay (doubled on each retry; a Retry-After header, capped at 10 s,
    /// takes precedence).
    pub backoff: Duration,
    /// Say on stderr which URL is fetched (the program sets it: a relying party sees
    /// when the network is used).
    pub announce: bool,
}

impl Kds {
    /// A client for `base` (e.g. [`DEFAULT_BASE`]).
    pub fn new(base: &str, cache: Option<PathBuf>, offline: bool) -> Kds {
        Kds {
            base: base.trim_end_matches('/').to_string(),
            cache,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            offline,
            max_attempts: 5,
            backoff: Duration::from_millis(200),
            announce: false,
        }
    }

    /// The VCEK URL path for a product, hwID and TCB.
    pub fn vcek_path(product: Product, chip_id: &[u8], tcb: &Tcb) -> String {
        let n = product.hwid_len().min(chip_id.len());
        let hw = hex::encode(&chip_id[..n]);
        match tcb.fmc {
            Some(f) if product == Product::Turin => format!(
                "/vcek/v1/{}/{hw}?fmcSPL={f}&blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
                product.name(),
                tcb.bl,
                tcb.tee,
                tcb.snp,
                tcb.ucode
            ),
            _ => format!(
                "/vcek/v1/{}/{hw}?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
                product.name(),
                tcb.bl,
                tcb.tee,
                tcb.snp,
                tcb.ucode
            ),
        }
    }

    fn cached(&self, key: &str, path: &str) -> Result<Vec<u8>, KdsError> {
        let file = self.cache.as_ref().map(|c| c.join(key));
        if let Some(f) = &file {
            // A cache file is read with the certificate limit: a cache someone else
            // can write is still not a way to exhaust memory.
            if let Ok(b) = crate::limits::read(f, crate::limits::Input::Cert) {
                return Ok(b);
            }
        }
        let b = self.get(path)?;
        if let Some(f) = &file {
            if let Some(parent) = f.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            // A cache write failure only costs a later re-fetch.
            let _ = std::fs::write(f, &b);
        }
        Ok(b)
    }

    /// GET with retry on 429.
    pub fn get(&self, path: &str) -> Result<Vec<u8>, KdsError> {
        let url = format!("{}{}", self.base, path);
        if self.offline {
            return Err(KdsError::Offline(url));
        }
        if self.announce {
            eprintln!("vigil-verify: fetching {url} from AMD's KDS (--offline never contacts it)");
        }
        let mut delay = self.backoff;
        for attempt in 1..=self.max_attempts {
            match self.agent.get(&url).call() {
                Ok(resp) => {
                    return crate::limits::read_from(
                        resp.into_reader(),
                        crate::limits::Input::KdsResponse,
                    )
                    .map_err(|e| KdsError::Http {
                        url: url.clone(),
                        msg: e.to_string(),
                    });
                }
                Err(ureq::Error::Status(429, resp)) if attempt < self.max_attempts => {
                    let wait = resp
                        .header("Retry-After")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(10)))
                        .unwrap_or(delay);
                    std::thread::sleep(wait);
                    delay *= 2;
                }
                Err(ureq::Error::Status(404, _)) => return Err(KdsError::NotFound { url }),
                Err(ureq::Error::Status(code, _)) => {
                    return Err(KdsError::Http {
                        url,
                        msg: format!("HTTP {code} (attempt {attempt})"),
                    })
                }
                Err(e) => {
                    return Err(KdsError::Http {
                        url,
                        msg: e.to_string(),
                    })
                }
            }
        }
        Err(KdsError::Http {
            url,
            msg: "HTTP 429: too many requests, retries exhausted".into(),
        })
    }

    /// The VCEK for this chip and TCB (DER), from the cache or KDS.
    pub fn vcek(&self, product: Product, chip_id: &[u8], tcb: &Tcb) -> Result<Cert, KdsError> {
        let path = Self::vcek_path(product, chip_id, tcb);
        let n = product.hwid_len().min(chip_id.len());
        let key = format!(
            "{}/{}/{}.der",
            product.name(),
            hex::encode(&chip_id[..n]),
            hex::encode(product.tcb_layout().encode(tcb).to_le_bytes())
        );
        let b = self.cached(&key, &path)?;
        let mut c = parse_blob(&b, &format!("KDS{path}")).map_err(|e| KdsError::Content {
            url: path.clone(),
            msg: e.to_string(),
        })?;
        Ok(c.remove(0))
    }

    /// ASK+ARK (or ASVK+ARK for `vlek`) as KDS serves them.
    pub fn cert_chain(&self, product: Product, vlek: bool) -> Result<Vec<Cert>, KdsError> {
        let kind = if vlek { "vlek" } else { "vcek" };
        let path = format!("/{kind}/v1/{}/cert_chain", product.name());
        let b = self.cached(&format!("{}/{kind}_cert_chain.pem", product.name()), &path)?;
        parse_blob(&b, &format!("KDS{path}")).map_err(|e| KdsError::Content {
            url: path,
            msg: e.to_string(),
        })
    }

    /// The product's CRL (never cached: it expires).
    pub fn crl(&self, product: Product, vlek: bool) -> Result<Vec<u8>, KdsError> {
        let kind = if vlek { "vlek" } else { "vcek" };
        self.get(&format!("/{kind}/v1/{}/crl", product.name()))
    }
}
