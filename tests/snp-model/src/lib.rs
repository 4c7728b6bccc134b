//! The SNP machine model's rules, as a library tested on the host.
//!
//! The model plays an AMD SEV-SNP host for one guest: the CPU's reverse map table (RMP)
//! and its instructions (PVALIDATE, RMPADJUST, RMPQUERY), the access checks that turn a
//! refused access into a nested page fault, the launch (an IGVM file loaded as a host
//! loader does and measured as the security processor does), the host's side of the
//! GHCB (answered as Linux KVM's `arch/x86/kvm/svm/sev.c` answers), the security
//! processor's guest requests, and the #VC frames the model pushes.
//!
//! Independence: every constant and layout here is the model's own, written from the
//! specs (AMD APM vol. 2 ch. 15 and vol. 3, GHCB spec #56421, SNP firmware ABI #56860)
//! and from KVM, with the source next to each rule. Nothing here comes from `svsm-abi`
//! or the monitor: the model exists to check them. `tests/disagreements.rs` names every
//! place where the two sides read the specs differently.
//!
//! The rules are `no_std` + `alloc`, so that the bare-metal model can use them, the IGVM
//! reader [`igvm_file`] included; the second IGVM reader, through the `igvm` crate
//! ([`igvm_loader`], feature `host`), needs std. See docs/snp-model.md.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "host"))]
extern crate std;

pub mod access;
pub mod cpuid;
pub mod exit_codes;
pub mod ghcb_exits;
pub mod ghcb_io;
pub mod ghcb_page;
pub mod guest_msg;
pub mod host;
pub mod host_loader;
pub mod igvm_file;
#[cfg(feature = "host")]
pub mod igvm_loader;
pub mod injection;
pub mod launch;
pub mod machine;
pub mod memory;
pub mod msr_protocol;
pub mod ovmf;
pub mod page_info;
pub mod psc;
pub mod psp;
pub mod pvalidate;
pub mod record;
pub mod report;
pub mod reset_vmsa;
pub mod rmp;
pub mod rmpadjust;
pub mod secrets;
pub mod sev_status;
pub mod vc;
