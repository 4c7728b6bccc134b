//! `vigil-igvm qemu-args`: the QEMU command line that launches an IGVM file.
//!
//! SNP (QEMU >= 10.1 with IGVM support, or COCONUT's QEMU branch, on an SNP host with
//! KVM): a `sev-snp-guest` object as the machine's confidential-guest-support, the IGVM
//! file through an `igvm-cfg` object, guest memory from a memfd backend (KVM's
//! guest_memfd needs a private-capable backend), the vCPU model whose signature the
//! reference values assume, and `-smp` equal to the measured vCPU count. The guest
//! policy comes from the file (QEMU's loader applies its GUEST_POLICY header); it is also
//! passed on the object so that an older loader cannot silently use its default.
//!
//! Native (any x86-64 host; `emulated` platform): the same machine without the SEV
//! object; TCG by default with `-cpu max` (which has SVM with nested paging, see
//! DESIGN.md), KVM with `--accel kvm`.
//!
//! Both add Vigil's conventions: serial console on stdio and the isa-debug-exit device
//! (port 0xf4) through which a test run reports its status.

use serde::Serialize;

use crate::igvm_measure::{self, Platform};
use crate::{reader, Error, Result};

/// Options of the command line.
#[derive(Clone, Debug, Serialize)]
pub struct QemuOptions {
    /// Target platform.
    pub platform: Platform,
    /// Path of the IGVM file as QEMU should see it.
    pub igvm_path: String,
    /// Guest memory, QEMU syntax ("512M").
    pub memory: String,
    /// vCPUs.
    pub vcpus: u32,
    /// QEMU CPU model (SNP: must match the vCPU type of the reference values).
    pub cpu: Option<String>,
    /// Accelerator for native ("tcg" or "kvm"); SNP always uses KVM.
    pub accel: String,
    /// QEMU binary.
    pub qemu: String,
}

/// The argument vector (argv[0] is the QEMU binary).
pub fn qemu_args(data: &[u8], o: &QemuOptions) -> Result<Vec<String>> {
    let (file, _) = reader::parse(data)?;
    igvm_measure::platform_mask(&file, o.platform)?;
    if o.vcpus == 0 {
        return Err(Error::Usage("--vcpus must be at least 1".into()));
    }
    let mut a: Vec<String> = vec![o.qemu.clone()];
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    let igvm = format!("igvm-cfg,id=igvm0,file={}", o.igvm_path);
    match o.platform {
        Platform::Snp => {
            let mask = igvm_measure::platform_mask(&file, Platform::Snp)?;
            let policy = igvm_measure::guest_policy(&file, mask)
                .ok_or_else(|| Error::Invalid("the file has no SNP guest policy".into()))?;
            let cpu = o.cpu.clone().unwrap_or_else(|| "EPYC-v4".into());
            push(&["-enable-kvm", "-cpu", &cpu]);
            push(&[
                "-machine",
                "q35,confidential-guest-support=sev0,memory-backend=ram0,igvm-cfg=igvm0",
            ]);
            push(&[
                "-object",
                &format!(
                    "memory-backend-memfd,id=ram0,size={},share=true,prealloc=false",
                    o.memory
                ),
            ]);
            push(&[
                "-object",
                &format!("sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy={policy:#x}"),
            ]);
        }
        Platform::Native => {
            let cpu = o.cpu.clone().unwrap_or_else(|| "max".into());
            push(&["-accel", &o.accel, "-cpu", &cpu]);
            push(&["-machine", "q35,igvm-cfg=igvm0"]);
        }
    }
    push(&["-object", &igvm]);
    push(&["-m", &o.memory, "-smp", &o.vcpus.to_string()]);
    push(&[
        "-nographic",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
    ]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    Ok(a)
}

/// Quote one argument for a POSIX shell when needed.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
