//! The native backend of the kernel seam: a machine without SEV-ES or SNP (plain
//! x86-64, or AMD-V where Vigil can be the hypervisor itself). Port I/O and CPUID are
//! plain instructions here; the host answers them, and nothing the kernel decides
//! for the guest's safety rests on them (the emulated platform filters what the guest
//! sees, `emulated::policy`).

use super::KernelPlatform;
use crate::console::serial;
use crate::cpu::instr::{cpuid, hlt, outl};
use crate::exit::{ExitCode, DEBUG_EXIT_PORT};

/// The native platform (no state: COM1 and the exit device are fixed ports).
pub struct Native;

/// The one instance [`super::select`] installs.
pub static NATIVE: Native = Native;

/// Programs COM1; called once by [`super::select`] before the first console line.
pub fn init() {
    serial::init();
}

impl KernelPlatform for Native {
    fn name(&self) -> &'static str {
        "native (port I/O, CPUID instruction)"
    }

    fn console_write(&self, bytes: &[u8]) {
        serial::write_bytes(bytes);
    }

    fn exit(&self, code: ExitCode) -> ! {
        // QEMU's isa-debug-exit; on a machine without the device the write does
        // nothing and the CPU halts forever instead.
        outl(DEBUG_EXIT_PORT, code as u32);
        loop {
            hlt();
        }
    }

    fn cpuid(&self, leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
        cpuid(leaf, subleaf)
    }

    fn apic_id(&self) -> u32 {
        // CPUID 1 EBX bits 31:24: the initial APIC ID (APM vol. 3, CPUID Fn0000_0001).
        cpuid(1, 0).1 >> 24
    }
}
