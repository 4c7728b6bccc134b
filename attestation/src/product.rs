//! Products (Milan, Genoa, Turin, and Vigil's test product) and their TCB layouts.

use svsm_abi::report::TcbLayout;

/// An SEV-SNP product line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Product {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004/8004.
    Genoa,
    /// EPYC 9005.
    Turin,
    /// Vigil's simulated/emulated security processor (test chain only).
    #[serde(rename = "Vigil-Test")]
    VigilTest,
}

impl Product {
    /// Name as KDS and the certificates spell it.
    pub fn name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
            Product::VigilTest => "Vigil-Test",
        }
    }

    /// Parses a product name: "Milan", "Milan-B0" (the stepping suffix of a VCEK's
    /// productName is dropped), case-insensitive.
    pub fn parse(s: &str) -> Option<Product> {
        let l = s.to_ascii_lowercase();
        if l == "vigil-test" {
            return Some(Product::VigilTest);
        }
        let base = l.split('-').next().unwrap_or("");
        match base {
            "milan" => Some(Product::Milan),
            "genoa" => Some(Product::Genoa),
            "turin" => Some(Product::Turin),
            _ => None,
        }
    }

    /// The product a CPUID family/model belongs to (report v3+), if known.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Product> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Product::Milan),
            (0x19, 0x10..=0x1F) | (0x19, 0xA0..=0xAF) => Some(Product::Genoa),
            (0x1A, 0x00..=0x11) => Some(Product::Turin),
            _ => None,
        }
    }

    /// TCB byte layout of the product.
    pub fn tcb_layout(self) -> TcbLayout {
        match self {
            Product::Turin => TcbLayout::Turin,
            _ => TcbLayout::MilanGenoa,
        }
    }

    /// Length of the hwID in the VCEK (8 on Turin, 64 otherwise).
    pub fn hwid_len(self) -> usize {
        match self {
            Product::Turin => 8,
            _ => 64,
        }
    }

    /// All products with AMD roots.
    pub const AMD: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];
}
