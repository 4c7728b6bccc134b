//! Verification of AMD SEV-SNP attestation evidence (report, certificate chain, policy,
//! SVSM services manifest and Vigil's event log). The `vigil-verify` binary is a thin
//! layer over this library.
#![forbid(unsafe_code)]

pub mod oids;
pub mod test_chain;
