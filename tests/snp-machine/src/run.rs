//! The run: the IGVM file launched into the model's SNP machine, then its vCPUs run
//! under `snp_model::machine::Machine` on [`SvmCpu`] until vCPU 0 stops.
//!
//! Two vCPUs (`-append vcpus=2`): vCPU 1 has no launch VMSA and waits until the guest
//! creates it through the host (GHCB AP creation, `Machine::runnable`). Both run on the
//! model's second CPU when it starts (`smp_run`: the AP runs vCPU 1, the boot CPU vCPU
//! 0, under one lock); if it does not, both run on the boot CPU, time-sliced one exit
//! at a time (vCPU 0, then vCPU 1 if it is runnable, and so on): a vCPU runs until its
//! next #VMEXIT, so a guest vCPU that spins without exiting holds the physical CPU (the
//! probe's waits make an exit in every round). A stop of vCPU 1 is logged and recorded,
//! and it stays halted; a stop of vCPU 0 ends the run.
//!
//! Launch (docs/snp-model.md, "Launch"): `igvm_file::plan` turns the file into the pages
//! and VMSAs a QEMU+KVM host would load for the qemu-kvm profile, `launch::launch`
//! loads and measures them into poisoned memory and the RMP, and the security processor
//! gets the launch digest and policy. The VMPCKs are fixed test keys (the security
//! processor signs with the TEST VCEK anyway: nothing here is a secret).
//!
//! End: the out-of-band record (`Record::render`) is written to debugcon (port 0xE9),
//! then QEMU exits with the value the guest wrote to isa-debug-exit if it wrote one, else
//! with [`EXIT_STOPPED`] (status 39): the vCPU stopped and the record says why.

use alloc::format;

use snp_model::host::{Host, Profile};
use snp_model::host_loader::{HostConfig, LoadError};
use snp_model::machine::{Machine, Stop};
use snp_model::memory::Memory;
use snp_model::psp::Psp;
use snp_model::rmp::Rmp;

use crate::devices::ModelDevices;
use crate::svm_cpu::SvmCpu;

/// isa-debug-exit value: the vCPU stopped (QEMU status 39); the record names the reason.
pub const EXIT_STOPPED: u32 = 0x13;

/// The test VCEK's private key (PKCS#8 DER), shared with the model's host tests.
const VCEK_KEY: &[u8] = include_bytes!("../../snp-model/testdata/vcek-key.pk8.der");

/// The VMPCKs the launch puts in the secrets page: fixed test keys.
const VMPCK: [[u8; 32]; 4] = [[0xa0; 32], [0xa1; 32], [0xa2; 32], [0xa3; 32]];

/// The run's settings, from the command line (`mem=<MiB>`, `vcpus=<n>`).
///
/// `vcpus` is what the host offers (default 2, QEMU's `-smp 2` of `cargo xtask
/// model`). The launch measures a VMSA only for the vCPUs the IGVM file has one for;
/// the others get no launch VMSA and wait for AP creation. That departs from QEMU+KVM,
/// which launch such vCPUs from reset and measure their reset VMSAs (`HostConfig::
/// reset_aps`): the model keeps the launch digest of the file's own vCPUs, which is what
/// `vigil-igvm measure` reports, and its APs start only through AP creation as SNP
/// guests start them (the model has no local APIC for INIT-SIPI-SIPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Guest memory in bytes.
    pub memory: u64,
    /// vCPUs the host offers.
    pub vcpus: u32,
}

impl Settings {
    /// Default: 256 MiB, two vCPUs.
    pub const DEFAULT: Settings = Settings {
        memory: 256 << 20,
        vcpus: 2,
    };

    /// Settings from `mem=` (MiB, 2..=768) and `vcpus=` (1..=2); a missing or
    /// unreadable value keeps the default.
    pub fn from_options(mem: Option<&str>, vcpus: Option<&str>) -> Settings {
        let mut s = Settings::DEFAULT;
        if let Some(m) = mem.and_then(|v| v.parse::<u64>().ok()) {
            if (2..=768).contains(&m) {
                s.memory = m << 20;
            }
        }
        if let Some(n) = vcpus.and_then(|v| v.parse::<u32>().ok()) {
            if (1..=2).contains(&n) {
                s.vcpus = n;
            }
        }
        s
    }
}

/// What ended the run.
pub enum End {
    /// The guest wrote this value to isa-debug-exit.
    DebugExit(u32),
    /// The vCPU stopped.
    Stopped(Stop),
}

/// Launches `igvm` and runs its vCPUs until vCPU 0 stops; `tsc_hz` (the model's TSC
/// frequency, if known) goes into the record. Returns the record's text and how the run
/// ended, or why the launch was refused.
pub fn run_machine(
    igvm: &[u8],
    s: Settings,
    tsc_hz: Option<u64>,
) -> Result<(alloc::string::String, End), alloc::string::String> {
    let cfg = HostConfig {
        vcpus: s.vcpus,
        memory: s.memory,
        reset_aps: None,
    };
    // vCPUs the file has no VMSA for are not launched: planned again with the file's
    // vCPUs only (see `Settings`).
    let plan = match snp_model::igvm_file::plan(igvm, cfg) {
        Err(LoadError::MissingVmsa { vp }) if vp > 0 => {
            snp_model::igvm_file::plan(igvm, HostConfig { vcpus: vp, ..cfg })
        }
        r => r,
    }
    .map_err(|e| format!("IGVM file refused: {e:?}"))?;
    let mut mem = Memory::new(s.memory);
    let mut rmp = Rmp::new(s.memory / 4096);
    let launched = snp_model::launch::launch(&plan, &mut mem, &mut rmp, &VMPCK)
        .map_err(|e| format!("launch refused: {e:?}"))?;
    log::info!(
        "launched: {} pages measured, {} VMSA(s), policy {:#x}",
        launched.pages,
        launched.vmsas.len(),
        launched.policy
    );
    let psp = Psp::new(VMPCK, VCEK_KEY, launched.digest, launched.policy)
        .map_err(|_| alloc::string::String::from("the test VCEK key does not load"))?;
    let host = Host::new(Profile::default(), s.vcpus, launched.vmsas.len() as u32);
    let mut cpu = SvmCpu::new(mem.host_address() as u64, mem.size());
    let mut m = Machine::new(mem, rmp, host, psp, ModelDevices::default(), &launched);
    m.record.tsc_hz = tsc_hz;
    #[cfg(target_os = "none")]
    if s.vcpus > 1 {
        match tsc_hz.map(crate::smp_run::start_ap) {
            Some(true) => return Ok(run_smp(m, cpu)),
            _ => log::warn!("the second CPU did not start: vCPU 1 shares the boot CPU"),
        }
    }
    let end = 'run: loop {
        for vcpu in 0..s.vcpus {
            if !m.runnable(vcpu) {
                continue;
            }
            match m.step(&mut cpu, vcpu) {
                Err(stop) if vcpu == 0 => break 'run End::Stopped(stop),
                Err(stop) => log::info!("vCPU {vcpu} stopped: {} ({stop:?})", stop.reason()),
                Ok(()) => {}
            }
            if let Some(v) = m.devices.debug_exit {
                break 'run End::DebugExit(v);
            }
        }
        if !m.runnable(0) {
            break End::Stopped(Stop::ResetHold);
        }
    };
    Ok((m.record.render(), end))
}

/// vCPU 0 on this CPU while the AP runs vCPU 1 (`smp_run`); the record when vCPU 0
/// stops or the guest writes isa-debug-exit.
#[cfg(target_os = "none")]
fn run_smp(m: Machine<ModelDevices, Psp>, cpu: SvmCpu) -> (alloc::string::String, End) {
    use crate::smp_run::{publish, Shared, SHARED};
    *SHARED.lock() = Some(Shared { m, cpu });
    loop {
        let mut g = SHARED.lock();
        let Some(s) = g.as_mut() else {
            return (alloc::string::String::new(), End::Stopped(Stop::NoVcpu));
        };
        let end = match s.m.step(&mut s.cpu, 0) {
            Err(stop) => Some(End::Stopped(stop)),
            Ok(()) => s.m.devices.debug_exit.map(End::DebugExit),
        };
        publish(s.m.runnable(1));
        if let Some(end) = end {
            return (s.m.record.render(), end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_take_bounded_values_only() {
        assert_eq!(Settings::from_options(None, None), Settings::DEFAULT);
        let s = Settings::from_options(Some("512"), Some("1"));
        assert_eq!((s.memory, s.vcpus), (512 << 20, 1));
        let s = Settings::from_options(Some("4096"), Some("0"));
        assert_eq!(s, Settings::DEFAULT);
        let s = Settings::from_options(Some("lots"), Some("3"));
        assert_eq!(s, Settings::DEFAULT);
    }
}
