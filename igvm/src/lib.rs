//! Build, measure, sign and inspect IGVM files that package Vigil with its guest
//! firmware. The `vigil-igvm` binary is a thin layer over this library.
//!
//! Modules: [`digest`] (the SNP launch-digest chain), [`ovmf`] and [`ovmf_measure`]
//! (OVMF images and sev-snp-measure's modes), [`reset_vmsa`] (VMM-built VMSAs),
//! [`reader`] (IGVM parsing with offset-naming errors), [`igvm_measure`] (IGVM launch
//! digests under named loader rules), [`builder`] (`build`; the
//! BootParams layout it fills is `svsm_abi::boot_params`, re-exported as [`boot_params`]),
//! [`sign`] (ID block), [`refs`], [`inspect`], [`lint`], [`qemu`]; [`limits`] (bounded
//! input reading and count limits).
#![forbid(unsafe_code)]
// No function over 150 lines (igvm/clippy.toml); `-D warnings` makes it an error.
#![warn(clippy::too_many_lines)]

pub mod builder;
pub mod digest;
pub mod error;
pub mod igvm_measure;
pub mod inspect;
pub mod limits;
pub mod lint;
pub mod ovmf;
pub mod ovmf_measure;
pub mod qemu;
pub mod reader;
pub mod refs;
pub mod reset_vmsa;
pub mod sign;

pub use error::{Error, Result};
/// The BootParams page layout, defined once in `svsm-abi` for the builder and the kernel.
pub use svsm_abi::boot_params;
