//! The `emulated` platform (DESIGN.md, "Platforms"): Vigil as the hypervisor of its
//! guest, on any CPU with AMD-V and nested paging (QEMU's software emulation included).
//!
//! Boot (from `kernel_main` when the platform is emulated-capable and the PVH start
//! info carries a boot module):
//!
//! 1. the guest ELF (the first PVH module) is copied in, checked, and loaded into guest
//!    RAM; Vigil builds the guest's page tables, its secrets page (SVSM fields filled,
//!    VMPCK0 zero) and its boot calling area in the launch region ([`loader`]);
//! 2. the launch measurement is computed from what was loaded (rule below);
//! 3. the monitor starts on an [`platform::EmuPlatform`]: the launch region is validated
//!    and mapped for the guest, Vigil's memory (everything below 16 MiB) is never mapped;
//! 4. SVM is enabled and the boot vCPU runs at "VMPL2" under VMRUN; every exit is handled
//!    in [`Runner::handle_exit`] until the guest writes the debug-exit port.
//!
//! The hypervisor's parts (enabling SVM, the VMRUN stub, the VMCB layout, the nested page
//! tables) live in the shared bare-metal crate, `bare::svm`.
//!
//! Measurement rule (xtask computes the same from the ELF files, see docs/emulated.md):
//! starting from 48 zero bytes, extend the SNP PAGE_INFO chain with one NORMAL page per
//! 4 KiB page of (a) Vigil's text and rodata, `[__text_start, __rodata_end)`, as linked
//! and loaded (the pages of the kernel ELF's non-writable PT_LOAD segments), then (b)
//! every page the guest ELF's PT_LOAD segments touch, ascending, as loaded (file bytes,
//! zero elsewhere); each at its physical address.

pub mod loader;
pub mod platform;
pub mod policy;
pub mod psp;
pub mod vcpu;

#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub use run::{boot_module_present, run};

/// Exit counters, by reason, printed at the end of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitStats {
    /// VMMCALL / VMGEXIT (SVSM calls).
    pub vmmcall: u64,
    /// CPUID.
    pub cpuid: u64,
    /// RDMSR/WRMSR.
    pub msr: u64,
    /// IN/OUT.
    pub ioio: u64,
    /// HLT.
    pub hlt: u64,
    /// Nested page faults (each one a mediated event).
    pub npf: u64,
    /// Anything else.
    pub other: u64,
}

impl ExitStats {
    /// All exits.
    pub fn total(&self) -> u64 {
        self.vmmcall + self.cpuid + self.msr + self.ioio + self.hlt + self.npf + self.other
    }
}
