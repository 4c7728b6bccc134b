//! AMD SVM from the hypervisor's side (AMD APM vol. 2, chapter 15): turning it on and
//! running a guest ([`vmrun`]), the VMCB layout ([`vmcb`]) and nested page tables
//! ([`npt`]).
//!
//! Moved here from Vigil's kernel (`svsm/kernel/src/emulated/{svm,npt}.rs`) and from
//! `svsm-abi` (`vmcb.rs`): the kernel's `emulated` platform and the SNP machine model
//! (`tests/snp-machine`) are both hypervisors of a guest, and the VMCB is the
//! hypervisor's structure rather than an SNP wire fact.

pub mod fpu;
pub mod npt;
pub mod vmcb;
pub mod vmrun;

pub use vmrun::{enable, rdtsc, vmrun, Gprs, SvmError};
