//! The kernel-level platform seam: what the kernel itself needs from the machine
//! (console output, ending the run, CPUID, which CPU is running), chosen once at boot.
//!
//! Why a seam here and not only the monitor's `Platform` trait: on SEV-ES and SEV-SNP
//! a port access or a CPUID instruction raises #VC (APM vol. 2 15.35; GHCB spec #56421,
//! non-automatic exits), so the kernel must know which machine it is on *before* it
//! prints its banner. [`select`] therefore asks the machine exactly one question first,
//! SEV_STATUS (`detect::choose`), and only on a machine without SEV-ES or SNP goes on to
//! CPUID and the serial port. Every console line, every exit and every CPUID the kernel
//! runs for itself afterwards goes through the [`KernelPlatform`] chosen there.
//!
//! Backends today:
//! * [`native::Native`]: no SEV-ES/SNP (plain x86-64, or AMD-V for the emulated
//!   platform): COM1 through port I/O, QEMU's isa-debug-exit, the CPUID instruction.
//! * [`snp::Snp`]: SEV-SNP, installed by `kernel_main`'s SNP path (`snp::boot`, after an
//!   IGVM boot) with [`install_snp`]: COM1 through the GHCB IOIO exit, exits as GHCB
//!   termination requests, CPUID from the CPUID page. An SNP machine reached through
//!   the PVH entry (no BootParams) ends with a termination request; SEV-ES without SNP
//!   ends the same way with its own reason; SEV without SEV-ES is refused on COM1.
//!
//! Before [`select`] has run, nothing is printed and an exit halts the CPU: only the
//! descriptor tables and the SEV_STATUS read come before it.

pub mod detect;
#[cfg(target_os = "none")]
pub mod native;
pub mod snp;

pub use detect::{BootChoice, PlatformInfo, PlatformKind};

use crate::exit::ExitCode;

/// What the kernel needs from the machine it runs on; one implementation per backend,
/// chosen once by [`select`].
pub trait KernelPlatform: Sync {
    /// A short name for the boot log.
    fn name(&self) -> &'static str;
    /// Writes console bytes as they are (no lock: the logger serialises lines, and the
    /// fault reporter must be able to write while a line is half written).
    fn console_write(&self, bytes: &[u8]);
    /// Ends the run with `code` and never returns.
    fn exit(&self, code: ExitCode) -> !;
    /// CPUID for `leaf`/`subleaf` as (eax, ebx, ecx, edx), from the source this platform
    /// trusts (the instruction without SEV-ES; the validated CPUID page on SNP).
    fn cpuid(&self, leaf: u32, subleaf: u32) -> (u32, u32, u32, u32);
    /// The APIC ID of the running CPU: the key of per-CPU data.
    fn apic_id(&self) -> u32;
}

#[cfg(target_os = "none")]
static CURRENT: spin::Once<&'static dyn KernelPlatform> = spin::Once::new();

/// The chosen platform, or `None` before [`select`].
#[cfg(target_os = "none")]
pub fn current() -> Option<&'static dyn KernelPlatform> {
    CURRENT.get().copied()
}

/// Console output through the chosen platform; dropped before [`select`] (no machine
/// is known yet whose console could be written without a risk of #VC).
#[cfg(target_os = "none")]
pub fn console_write(bytes: &[u8]) {
    if let Some(p) = current() {
        p.console_write(bytes);
    }
}

/// Ends the run through the chosen platform; before [`select`], halts forever.
#[cfg(target_os = "none")]
pub fn exit(code: ExitCode) -> ! {
    if let Some(p) = current() {
        p.exit(code);
    }
    loop {
        crate::cpu::instr::hlt();
    }
}

/// Chooses the platform once, at boot, after the descriptor tables are loaded (the
/// SEV_STATUS read relies on a caught #GP where the MSR does not exist), and installs
/// the native backend where the choice allows ports and CPUID (no SEV, or SEV without
/// SEV-ES). The caller (`kernel_main`) takes the path the choice names; on SNP and
/// SEV-ES nothing is installed and nothing may touch a port or run CPUID.
#[cfg(target_os = "none")]
pub fn select() -> BootChoice {
    // CPUID runs (through the native backend) only if `choose` finds neither SEV-ES nor SNP.
    let choice = detect::choose(read_sev_status, |leaf, sub| native::NATIVE.cpuid(leaf, sub));
    if matches!(
        choice,
        BootChoice::Native(_) | BootChoice::SevWithoutEs { .. }
    ) {
        CURRENT.call_once(|| {
            native::init();
            &native::NATIVE
        });
    }
    choice
}

/// Installs the SNP backend (called first by the SNP boot path, `snp::boot::run`).
#[cfg(target_os = "none")]
pub fn install_snp() {
    CURRENT.call_once(|| &snp::SNP);
}

/// Reads SEV_STATUS, or `None` if the MSR does not exist (#GP: not an SEV guest, e.g.
/// an Intel CPU or QEMU's software emulation).
#[cfg(target_os = "none")]
fn read_sev_status() -> Option<u64> {
    use core::sync::atomic::{AtomicU64, Ordering};
    static VALUE: AtomicU64 = AtomicU64::new(0);
    extern "C" fn probe(_: usize) {
        // SAFETY: run under `catch_fault(#GP)`: where SEV_STATUS does not exist, RDMSR
        // raises #GP, which is caught. Reading the MSR has no side effect.
        let v = unsafe { crate::cpu::instr::rdmsr(svsm_abi::sev_status::MSR_SEV_STATUS) };
        VALUE.store(v, Ordering::SeqCst);
    }
    const GP: u8 = 13;
    // SAFETY: `probe` owns nothing with a destructor and holds no lock when RDMSR
    // faults, and it does not call `catch_fault` itself.
    let fault = unsafe { crate::cpu::exceptions::catch_fault(GP, probe, 0) };
    match fault {
        Some(_) => None,
        None => Some(VALUE.load(Ordering::SeqCst)),
    }
}
