//! The `snp` backend: Vigil booted from its IGVM file on an SEV-SNP machine, its own
//! memory validated and mapped with the C-bit, the guest prepared at its VMPL, and a
//! clean, reasoned end before the guest's entry (issue 10; docs/kernel.md, "The SNP
//! boot", says where and why it ends).
//!
//! One concern per file:
//! * [`boot_params`]: the checks on the measured `BootParams` page;
//! * [`cpuid`]: CPUID answers and the C-bit position from the CPUID page;
//! * [`msr_protocol`]: the GHCB MSR protocol (SEV information, hypervisor features,
//!   page-state change, GHCB registration), responses checked;
//! * [`shared`]: making a page of Vigil's shared (PVALIDATE rescind, page-state change,
//!   C-bit cleared, TLB flushed);
//! * [`ghcb`]: exits through the GHCB page (IOIO, MSR), answers checked;
//! * [`vc`]: the #VC handler;
//! * [`memory`]: the free part of the Vigil region made private and validated, its
//!   split into heap and 4 KiB frame pool;
//! * [`rmp`]: RMP results and reachable GPAs as pure rules;
//! * `platform`: `monitor::Platform` on SNP (`SnpPlatform`);
//! * [`guest`]: the guest's launch region, page tables, VMSA and AP creation;
//! * `report`: the boot's guest-request check through the monitor's VMPCK0 channel;
//! * [`serve`]: the monitor over `SnpPlatform`, shared by the vCPUs behind one lock,
//!   and every vCPU's run loop;
//! * [`ap`]: Vigil's own VMPL0 vCPUs for the guest's APs (VMSA, stacks, TSS, GHCB);
//! * [`boot`]: the sequence that ties them together (`kernel_main`'s SNP path).
//!
//! The kernel seam's SNP platform (console over the GHCB, exit by termination request,
//! CPUID from the page) is `platform::snp`. Not written yet: #HV.

pub mod ap;
pub mod boot_params;
pub mod cpuid;
pub mod ghcb;
pub mod guest;
pub mod memory;
pub mod msr_protocol;
pub mod rmp;
pub mod serve;
pub mod shared;
pub mod vc;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod report;

#[cfg(target_os = "none")]
static CPUID_TABLE: spin::Once<cpuid::CpuidTable<'static>> = spin::Once::new();

/// The CPUID answer for `leaf`/`subleaf` from the CPUID page; ends Vigil if the page
/// was not read yet (nothing may run CPUID on SNP before it is).
#[cfg(target_os = "none")]
pub fn cpuid_answer(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    match CPUID_TABLE.get() {
        Some(t) => t.answer(leaf, subleaf),
        None => fail(
            svsm_abi::ghcb::term::CPUID_PAGE,
            format_args!("CPUID {leaf:#x} before the CPUID page was read"),
        ),
    }
}

/// Ends Vigil on SNP: says why on the console (when it works yet) and asks the host to
/// terminate the guest with `reason` (set 1).
#[cfg(target_os = "none")]
pub fn fail(reason: u64, why: core::fmt::Arguments<'_>) -> ! {
    use core::fmt::Write;
    let _ = writeln!(
        crate::console::emergency(),
        "vigil: SNP boot ends, reason {reason:#x}: {why}"
    );
    crate::platform::snp::terminate(reason)
}
