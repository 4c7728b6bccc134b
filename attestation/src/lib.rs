//! Verification of AMD SEV-SNP attestation evidence (report, certificate chain, policy,
//! SVSM services manifest and Vigil's event log). The `vigil-verify` binary is a thin
//! layer over this library.
#![forbid(unsafe_code)]
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod catalog;
pub mod certs;
pub mod checks;
pub mod crl;
pub mod evidence;
pub mod inputs;
pub mod kds;
pub mod limits;
pub mod oids;
pub mod output;
pub mod policy;
pub mod product;
pub mod protection;
pub mod report;
pub mod roots;
pub mod test_chain;
pub mod verify;
