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
            boot_apic_id: BOOT_APIC_ID,
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

    /// What the vCPUs share: the monitor and Vigil's own APs (`snp::ap`), behind one
    /// lock. The run-VMPL switch is made outside it (`SnpPlatform::run_guest`), so a
    /// CPU holds it only while it serves a call.
    pub struct Shared {
        /// The monitor over the SNP platform.
        pub m: Monitor<SnpPlatform>,
        /// Vigil's VMPL0 vCPUs for the guest's APs.
        pub aps: crate::snp::ap::Aps,
    }

    static SHARED: spin::Once<spin::Mutex<Shared>> = spin::Once::new();

    /// The shared state, locked. While another CPU holds the lock this CPU waits with
    /// one harmless exit per try ([`pause`]) rather than a bare spin: the other CPU
    /// may be inside an exit of its own (the lock is held across the monitor's GHCB
    /// requests), and a host that runs one vCPU at a time, exit to exit (the SNP
    /// machine model), would never get back to it while this one spins.
    pub fn lock() -> spin::MutexGuard<'static, Shared> {
        let Some(s) = SHARED.get() else {
            fail(
                term::GUEST_START,
                format_args!("monitor used before it exists"),
            )
        };
        loop {
            if let Some(g) = s.try_lock() {
                return g;
            }
            pause();
        }
    }

    /// One exit to the host that changes nothing (the MSR protocol's SEV information
    /// request, its answer ignored): a pause on hardware, a turn for the other vCPU in
    /// the model. Every GHCB-page exit writes the GHCB MSR again first.
    pub fn pause() {
        let _ = crate::snp::msr_protocol::exchange(svsm_abi::ghcb::msr::SEV_INFO_REQ);
    }

    /// Makes the monitor shared, enters the guest's boot vCPU and serves it for good.
    pub fn run(m: Monitor<SnpPlatform>, sev_features: u64) -> ! {
        let vmpl = m.platform().guest_vmpl();
        SHARED.call_once(|| {
            spin::Mutex::new(Shared {
                m,
                aps: crate::snp::ap::Aps::new(sev_features, vmpl),
            })
        });
        vcpu_loop(BOOT_APIC_ID, vmpl)
    }

    /// The boot vCPU's APIC ID (`MonitorConfig::boot_apic_id`).
    pub const BOOT_APIC_ID: u32 = 0;

    /// The loop of every CPU of Vigil's (the boot CPU and each AP, `snp::ap`): enter
    /// the guest's VMSA for `apic_id` at `vmpl`; on each return to VMPL0,
    /// `Monitor::serve(apic_id)` under the lock, then start Vigil's own vCPU for any
    /// APIC ID the guest's CREATE_VCPU has newly named.
    pub fn vcpu_loop(apic_id: u32, vmpl: u8) -> ! {
        loop {
            enter(apic_id, vmpl);
            let o = {
                let mut s = lock();
                let o = if sync_vmsa(&mut s.m, apic_id) {
                    s.m.serve(apic_id)
                } else {
                    CallOutcome::NotPending
                };
                crate::snp::ap::start_named(&mut s);
                o
            };
            match o {
                CallOutcome::Handled | CallOutcome::NotPending => {}
                // The monitor asked the host to terminate; on SNP that request does not
                // return, so this is reached only if the host ignored it.
                CallOutcome::Terminated(r) => crate::platform::snp::terminate(r.code()),
                // The boot vCPU deleted its own VMSA: nothing is left to run at the
                // guest's VMPL on this vCPU.
                CallOutcome::VcpuDeleted if apic_id == BOOT_APIC_ID => fail(
                    term::GUEST_START,
                    format_args!("the guest deleted its boot vCPU"),
                ),
                // An AP deleted its own VMSA: `enter` waits for a new one.
                CallOutcome::VcpuDeleted => {}
            }
        }
    }

    /// Points the platform at the VMSA the monitor serves for `apic_id` (the newest one
    /// the guest created for it, #58019 6.3); false if there is none (an AP whose VMSA
    /// was deleted, or not created yet). The boot vCPU's VMSA is Vigil's own
    /// (`guest::make`), which the monitor does not list.
    fn sync_vmsa(m: &mut Monitor<SnpPlatform>, apic_id: u32) -> bool {
        let newest = m.vcpus().by_apic(apic_id).and_then(|v| v.vmsa);
        match newest {
            Some(g) => m.platform_mut().set_vmsa(apic_id, g.0),
            None if apic_id != BOOT_APIC_ID => m.platform_mut().clear_vmsa(apic_id),
            None => {}
        }
        apic_id == BOOT_APIC_ID || newest.is_some()
    }

    /// Switches this vCPU to the guest's VMSA at `vmpl` and returns when the guest (or
    /// the host) gives VMPL0 back. The boot vCPU's switch must succeed. An AP waits,
    /// one [`pause`] per try, until the monitor has a VMSA for its APIC ID and the host
    /// runs it: CREATE_VCPU only makes the VMSA, the guest's own AP creation hands it to
    /// the host (#58019 6.3; Linux `wakeup_cpu_via_vmgexit`), and until then the host
    /// refuses the switch (no VMSA at that VMPL: `SW_EXITINFO1` = 2, `SW_EXITINFO2` =
    /// invalid input, as the planes KVM branch's `sev_snp_run_vmpl`).
    fn enter(apic_id: u32, vmpl: u8) {
        loop {
            let known = apic_id == BOOT_APIC_ID || sync_vmsa(&mut lock().m, apic_id);
            if known {
                match crate::snp::platform::run_vmpl(vmpl) {
                    Ok(()) => return,
                    Err(e) if apic_id == BOOT_APIC_ID => {
                        fail(term::GUEST_START, format_args!("run VMPL: {e:?}"))
                    }
                    Err(_) => {}
                }
            }
            pause();
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
