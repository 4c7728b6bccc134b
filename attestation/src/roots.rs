//! Built-in trust anchors: AMD's ARK, ASK and ASVK for Milan, Genoa and Turin (the same
//! certificates KDS serves under `/vcek/v1/{product}/cert_chain` and `/vlek/...`), each
//! pinned by the SHA-256 fingerprint of its DER, plus Vigil's TEST root, which is only
//! accepted with `--allow-test-root`.
//!
//! Attack reasoning: a root is trusted because its fingerprint is in [`PINNED`], never
//! because of its name. An attacker who presents a self-made "ARK-Milan" gets a named
//! failure. The embedded PEMs are checked against the pins when loaded (a test does it).

use crate::certs::{parse_blob, Cert};
use crate::product::Product;

/// (product, role, SHA-256 of the DER) for each built-in AMD certificate.
pub const PINNED: [(Product, &str, &str); 9] = [
    (
        Product::Milan,
        "ark",
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    ),
    (
        Product::Milan,
        "ask",
        "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    ),
    (
        Product::Milan,
        "asvk",
        "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    ),
    (
        Product::Genoa,
        "ark",
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    ),
    (
        Product::Genoa,
        "ask",
        "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    ),
    (
        Product::Genoa,
        "asvk",
        "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    ),
    (
        Product::Turin,
        "ark",
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    ),
    (
        Product::Turin,
        "ask",
        "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    ),
    (
        Product::Turin,
        "asvk",
        "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
    ),
];

/// SHA-256 of Vigil's TEST ARK (`testdata/test-root/ark.pem`).
pub const TEST_ARK_SHA256: &str =
    "458f1d27f564cbbfde230723aee131d8a7af8ef4c884d09558cad50cdb4ce789";

const PEMS: [(Product, &str, &str); 9] = [
    (
        Product::Milan,
        "ark",
        include_str!("../roots/milan_ark.pem"),
    ),
    (
        Product::Milan,
        "ask",
        include_str!("../roots/milan_ask.pem"),
    ),
    (
        Product::Milan,
        "asvk",
        include_str!("../roots/milan_asvk.pem"),
    ),
    (
        Product::Genoa,
        "ark",
        include_str!("../roots/genoa_ark.pem"),
    ),
    (
        Product::Genoa,
        "ask",
        include_str!("../roots/genoa_ask.pem"),
    ),
    (
        Product::Genoa,
        "asvk",
        include_str!("../roots/genoa_asvk.pem"),
    ),
    (
        Product::Turin,
        "ark",
        include_str!("../roots/turin_ark.pem"),
    ),
    (
        Product::Turin,
        "ask",
        include_str!("../roots/turin_ask.pem"),
    ),
    (
        Product::Turin,
        "asvk",
        include_str!("../roots/turin_asvk.pem"),
    ),
];

const TEST_PEMS: [(&str, &str); 2] = [
    ("ark", include_str!("../testdata/test-root/ark.pem")),
    ("ask", include_str!("../testdata/test-root/ask.pem")),
];

/// A trusted certificate with what it is trusted for.
#[derive(Clone, Debug)]
pub struct Anchor {
    /// The certificate.
    pub cert: Cert,
    /// Product it belongs to.
    pub product: Product,
    /// "ark", "ask" or "asvk".
    pub role: &'static str,
    /// Whether it is Vigil's test chain.
    pub test: bool,
    /// Whether it was added by `--trust-root`.
    pub user: bool,
}

/// The set of trusted roots and known intermediates.
#[derive(Clone, Debug)]
pub struct TrustStore {
    /// Every anchor.
    pub anchors: Vec<Anchor>,
}

/// Error loading the built-in store (only if the embedded files were tampered with).
#[derive(Debug, thiserror::Error)]
#[error("built-in root {0}: {1}")]
pub struct BuiltinError(String, String);

impl TrustStore {
    /// AMD's built-in anchors and Vigil's test anchors (the latter marked `test`).
    pub fn builtin() -> Result<TrustStore, BuiltinError> {
        let mut anchors = Vec::new();
        for (product, role, pem) in PEMS {
            let src = format!("builtin:{}_{}", product.name(), role);
            let cert = parse_blob(pem.as_bytes(), &src)
                .map_err(|e| BuiltinError(src.clone(), e.to_string()))?
                .remove(0);
            let pin = PINNED
                .iter()
                .find(|(p, r, _)| *p == product && *r == role)
                .map(|x| x.2)
                .unwrap_or("");
            if cert.fingerprint_hex() != pin {
                return Err(BuiltinError(src, "fingerprint differs from its pin".into()));
            }
            anchors.push(Anchor {
                cert,
                product,
                role,
                test: false,
                user: false,
            });
        }
        for (role, pem) in TEST_PEMS {
            let src = format!("builtin:Vigil-Test_{role}");
            let cert = parse_blob(pem.as_bytes(), &src)
                .map_err(|e| BuiltinError(src.clone(), e.to_string()))?
                .remove(0);
            if role == "ark" && cert.fingerprint_hex() != TEST_ARK_SHA256 {
                return Err(BuiltinError(src, "fingerprint differs from its pin".into()));
            }
            anchors.push(Anchor {
                cert,
                product: Product::VigilTest,
                role,
                test: true,
                user: false,
            });
        }
        Ok(TrustStore { anchors })
    }

    /// Adds a user root (`--trust-root`): a self-signed ARK for `product`.
    pub fn add_root(&mut self, cert: Cert, product: Product) {
        self.anchors.push(Anchor {
            cert,
            product,
            role: "ark",
            test: false,
            user: true,
        });
    }

    /// The trusted root with this fingerprint.
    pub fn root_by_fingerprint(&self, fp: &[u8; 32]) -> Option<&Anchor> {
        self.anchors
            .iter()
            .find(|a| a.role == "ark" && &a.cert.fingerprint == fp)
    }

    /// The built-in certificate of `role` for `product`.
    pub fn get(&self, product: Product, role: &str) -> Option<&Anchor> {
        self.anchors
            .iter()
            .find(|a| a.product == product && a.role == role && !a.user)
    }
}
