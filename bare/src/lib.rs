//! Bare-metal scaffolding shared by the project's bare-metal programs (issue 9): Vigil's
//! kernel, the test guest and the SNP machine model (`tests/snp-machine`).
//!
//! Held to the kernel's standards: every unsafe block carries a `// SAFETY:` comment,
//! every hardware layout has compile-time size and offset asserts, and every rule names
//! its source.
//!
//! Modules:
//! - [`boot`]: the PVH entry ([`pvh_entry!`]: Xen note type 18, 32-bit to long mode,
//!   stack, a bootstrap identity map of the first 4 GiB) and the `hvm_start_info` parser
//!   (memory map, modules, command line);
//! - [`console`]: the 16550 UART at COM1, a `log` logger on it, QEMU's debugcon port;
//! - [`cpu`]: GDT, TSS with IST stacks, IDT with exception reports that end the run;
//! - [`exit`]: ending a QEMU run through isa-debug-exit;
//! - [`heap`]: a `linked_list_allocator` global allocator over identity-mapped RAM;
//! - [`svm`]: enabling SVM, the VMCB, the VMRUN stub with its register block, nested
//!   page tables (moved here from the kernel's `emulated` platform and `svsm-abi`).
//!
//! A program links with `bare/pvh.ld` (entry `bare_pvh_entry`, loaded at 1 MiB).
//!
//! Today the SNP machine model is the one program built on the whole crate; the kernel
//! uses [`svm`] only. Switching the kernel and the test guest onto `bare` for entry,
//! descriptor tables, console and heap is a later step (the kernel's own `boot/`,
//! `cpu/`, `console/` and `mm/` are where this crate's copies started).
//!
//! Everything that only makes sense on the bare-metal target (assembly entry points,
//! descriptor-table loading, port I/O) is compiled for `target_os = "none"` only; the
//! pure parts (layouts, the PVH parser, the page-table builders) build and are tested
//! on the host with `cargo test -p vigil-bare`.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod boot;
pub mod console;
pub mod cpu;
pub mod exit;
pub mod heap;
pub mod svm;
