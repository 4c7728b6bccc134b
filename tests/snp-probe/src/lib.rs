//! The pure parts of the SNP probe (issue 9): what the bare-metal program computes
//! without touching hardware, kept here so that it is tested on the host. No unsafe code;
//! wire facts come from `svsm-abi` (the guest side's ABI crate), never from the model.
//!
//! - [`cpuid_page`]: answers from the SNP CPUID page (the #VC handler's CPUID, and the
//!   C-bit position the entry code also reads);
//! - [`io_insn`]: the port I/O instructions the #VC handler emulates through the GHCB;
//! - [`guest_request`]: the MSG_REPORT_REQ message sealed with VMPCK0 and the response
//!   opened with it (AES-256-GCM);
//! - [`vmpl2`]: the VMSA of the probe's VMPL2 context;
//! - [`ap`]: the VMSA of the probe's application processor (vCPU 1);
//! - [`hex`]: the report printed in hex.
#![no_std]
#![forbid(unsafe_code)]

pub mod ap;
pub mod cpuid_page;
pub mod guest_request;
pub mod hex;
pub mod io_insn;
pub mod vmpl2;
