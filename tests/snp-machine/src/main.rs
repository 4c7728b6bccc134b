//! The SNP machine model's bare-metal program (issue 9): QEMU boots it with software SVM
//! (`-accel tcg -cpu EPYC-Milan,+svm`), it finds the IGVM file (PVH module 0, QEMU's
//! `-initrd`), and runs the guest under the rules of `snp-model`. See docs/snp-model.md,
//! "The bare-metal machine".
//!
//! Output: the model's own log goes to COM1; the out-of-band record goes to QEMU's
//! debugcon port 0xE9, which the guest can never reach (all its I/O is intercepted).
//! Exit (isa-debug-exit): the guest's own value if it wrote one; 0x13 (QEMU status 39)
//! when vCPU 0 stopped (the record says why); 0x11 (35) when the IGVM file or the launch
//! is refused; 0x12 (37) on a panic or an exception in the model. `-append probe=demo`
//! and `-append probe=cbit` run the hand-made guests instead (0x10, status 33, on
//! success).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![warn(missing_docs)]
// On the host only the unit tests use the modules.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

mod cbit_probe;
mod demo;
mod devices;
mod layout;
mod run;
mod svm_cpu;
mod vmsa_state;

#[cfg(target_os = "none")]
mod smp_run;
#[cfg(target_os = "none")]
mod start;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("snp-machine runs only on x86_64-unknown-none under QEMU");
    std::process::exit(2);
}
