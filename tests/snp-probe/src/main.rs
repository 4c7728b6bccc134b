//! The SNP probe (issue 9): a small guest program of the tests' own, packaged by
//! `vigil-igvm build` in place of the Vigil kernel and run at VMPL0 by the SNP machine
//! model. It exercises, in order, each with a line `probe-step <name> ok|fail <detail>`
//! on COM1: its own 32-bit to long-mode entry with the C-bit from the CPUID page, a GHCB
//! (SEV information and hypervisor features through the MSR protocol, the page rescinded,
//! made shared by an MSR-protocol page-state change, registered), #VC for CPUID (answered
//! from the CPUID page) and for port I/O (through the GHCB), PVALIDATE of a page the
//! launch did not validate, a VMPL2 VMSA made with RMPADJUST, VMPL2's code pages opened to
//! it, the VMPL2 context created through the AP-creation exit and run through the
//! run-VMPL exit (it returns with the MSR-protocol VMPL request), and an attestation
//! report through an SNP guest request with VMPCK0, printed in hex between
//! `probe-report-begin` and `probe-report-end`, then a second vCPU (APIC ID 1, VMPL0)
//! created through the AP-creation exit that writes a marker the boot vCPU reads. It terminates through the GHCB MSR
//! protocol with reason set 1, code 0 on success (a failed step's number otherwise).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod ap_run;
#[cfg(target_os = "none")]
mod rt;
#[cfg(target_os = "none")]
mod steps;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("snp-probe runs only on x86_64-unknown-none, at VMPL0 in the SNP machine model");
    std::process::exit(2);
}

/// Called by the entry code in long mode.
#[cfg(target_os = "none")]
extern "C" fn probe_main(boot_params: u64, c_bit: u32) -> ! {
    steps::run(boot_params, c_bit)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    say!("probe-step panic fail {info}");
    rt::msr_protocol::terminate(0x3f)
}
