//! Byte layouts and constants of the AMD SEV-SNP and SVSM ABIs.
//!
//! Every structure that crosses a trust boundary (the GHCB, the VMSA, the SVSM calling
//! area, the attestation report, guest-request messages, PAGE_INFO, ...) is defined here
//! once, as a `zerocopy` type with compile-time size and offset asserts taken from the
//! specifications (AMD #58019 SVSM, #56421 GHCB, #56860 SEV-SNP firmware ABI, APM vol. 2).
//! The crate is `no_std` and contains no unsafe code.
#![no_std]
#![forbid(unsafe_code)]
pub mod attest_protocol;
pub mod boot_params;
pub mod calling_area;
pub mod core_protocol;
pub mod cpuid;
pub mod event_log;
pub mod evidence;
pub mod ghcb;
pub mod guest_request;
pub mod page_info;
pub mod protect_protocol;
pub mod pvalidate;
pub mod report;
pub mod rmp;
pub mod secrets;
pub mod sev_status;
pub mod vmsa;
