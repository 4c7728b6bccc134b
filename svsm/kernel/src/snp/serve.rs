//! The monitor over `SnpPlatform`, and the guest's run loop on SNP.
//!
//! The monitor is the same one every backend runs (crate `monitor`): it is handed the
//! platform once the guest is prepared (`guest::make::start`), with what the launch and
//! the boot validated for the guest, VMPCK0 from the secrets page and the policy. The
//! run loop is the SVSM calling convention of #58019 section 5 seen from VMPL0: Vigil
//! enters the guest's VMSA with the run-VMPL exit; the guest comes back to VMPL0 with
//! its own run-VMPL request (call_pending set in its calling area); `Monitor::serve`
//! reads the call registers from the guest's VMSA, handles the call, writes the
//! results back, clears call_pending and runs the guest again.
//!
//! Attack: the host decides when VMPL0 runs and may resume it without a guest request;
//! `serve` then finds call_pending clear and only resumes the guest (nothing is
//! handled). A host that refuses to resume the guest ends the VM (`HostRefused`).

use alloc::vec::Vec;

use monitor::addr::{Gpa, PageSize};

use crate::emulated::loader::{IMAGE_END, LAUNCH_END};

/// The guest pages validated before the guest runs: the ELF's pages (validated by the
/// launch) and `[IMAGE_END, LAUNCH_END)` (validated by Vigil in `guest::make`).
pub fn prevalidated(fw: (u64, u64, u64)) -> Vec<(Gpa, PageSize)> {
    let elf = (fw.0 & !0xfff)..fw.1.next_multiple_of(4096);
    elf.step_by(4096)
        .chain((IMAGE_END..LAUNCH_END).step_by(4096))
        .map(|a| (Gpa(a), PageSize::Size4K))
        .collect()
}

/// The bare-metal part.
#[cfg(target_os = "none")]
pub mod on_snp {
    use monitor::addr::Gpa;
    use monitor::policy::Policy;
    use monitor::{CallOutcome, Monitor, MonitorConfig};
    use svsm_abi::ghcb::term;

    use super::prevalidated;
    use crate::emulated::loader::{GUEST_CAA, GUEST_END, VIGIL_END};
    use crate::snp::fail;
    use crate::snp::guest::make::GuestStart;
    use crate::snp::platform::SnpPlatform;

    /// Builds the monitor over the prepared platform; a configuration the monitor refuses
    /// ends the boot with `GUEST_START`.
    pub fn monitor(
        plat: SnpPlatform,
        g: &GuestStart<'_>,
        vmpck0: [u8; 32],
    ) -> Monitor<SnpPlatform> {
        let cfg = MonitorConfig {
            ram_size: GUEST_END,
            vigil_base: Gpa(0),
            vigil_size: VIGIL_END,
            boot_apic_id: 0,
            boot_caa: Gpa(GUEST_CAA),
            prevalidated: prevalidated(g.fw),
            // The guest's VMSA carries Vigil's own SEV features (guest::make); every VMSA
            // the guest makes must carry the same (#58019 6.3).
            boot_sev_features: g.sev_features,
            vmpck0,
            policy: Policy::default(),
        };
        match Monitor::new(plat, cfg) {
            Ok(m) => m,
            Err(e) => fail(
                term::GUEST_START,
                format_args!("monitor configuration refused: {e:?}"),
            ),
        }
    }

    /// Enters the guest's boot vCPU and serves it for good.
    pub fn run(m: &mut Monitor<SnpPlatform>) -> ! {
        use monitor::platform::Platform;
        if let Err(e) = m.platform_mut().run_guest(0) {
            fail(term::GUEST_START, format_args!("run VMPL: {e:?}"));
        }
        loop {
            match m.serve(0) {
                CallOutcome::Handled | CallOutcome::NotPending => {}
                // The monitor asked the host to terminate; on SNP that request does not
                // return, so this is reached only if the host ignored it.
                CallOutcome::Terminated(r) => crate::platform::snp::terminate(r.code()),
                // The boot vCPU deleted its own VMSA: nothing is left to run at the
                // guest's VMPL on this vCPU (APs are not served yet).
                CallOutcome::VcpuDeleted => fail(
                    term::GUEST_START,
                    format_args!("the guest deleted its boot vCPU"),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prevalidated_is_the_elf_and_the_launch_region() {
        let p = prevalidated((0x100_0010, 0x100_2001, 0));
        assert_eq!(p.first(), Some(&(Gpa(0x100_0000), PageSize::Size4K)));
        assert!(p.contains(&(Gpa(0x100_2000), PageSize::Size4K)));
        assert!(!p.contains(&(Gpa(0x100_3000), PageSize::Size4K)));
        assert!(p.contains(&(Gpa(crate::emulated::loader::GUEST_CAA), PageSize::Size4K)));
        assert_eq!(
            p.last(),
            Some(&(Gpa(LAUNCH_END - 0x1000), PageSize::Size4K))
        );
    }
}
