//! Step `ap-run`: a second vCPU. The boot vCPU makes a VMPL0 VMSA for APIC ID 1
//! (RMPADJUST with the VMSA bit, as Linux's `snp_set_vmsa`), hands it to the host with
//! the AP-creation exit (GHCB spec v2.03 "SNP AP Creation"; KVM `sev_snp_ap_creation`),
//! and waits for the AP's marker in its own memory. The AP, in flat 32-bit mode without
//! paging (every access private), writes the marker and asks for AP reset hold (MSR
//! protocol 0x006), which halts it.

use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicU32, Ordering};

use snp_probe::ap;
use svsm_abi::ghcb::{ap_create, exit};
use zerocopy::IntoBytes;

use crate::rt::ghcb::{call, Regs};
use crate::rt::instr::rmpadjust;
use crate::rt::msr_protocol as msrp;
use crate::say;

/// Where the AP writes [`ap::MARKER`].
static AP_FLAG: AtomicU32 = AtomicU32::new(0);

global_asm!(
    r#"
    .section .text.probe_ap, "ax"
    .code32
    .global probe_ap_entry
probe_ap_entry:
    mov dword ptr [{flag}], {marker}
    mov ecx, 0xc0010130
    mov eax, 0x006
    xor edx, edx
    wrmsr
    .byte 0xf3, 0x0f, 0x01, 0xd9
    jmp probe_ap_entry
    .code64
    "#,
    flag = sym AP_FLAG,
    marker = const ap::MARKER,
);

unsafe extern "C" {
    static probe_ap_entry: u8;
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Two candidate VMSA pages (a VMSA must not be 2 MiB aligned).
static mut AP_VMSA: [Page; 2] = [const { Page([0; 4096]) }; 2];

/// Runs the step; `Err` names what failed.
pub fn run() -> Result<(), &'static str> {
    // SAFETY: only addresses are taken.
    let (cands, entry) = unsafe {
        (
            [
                addr_of_mut!(AP_VMSA[0]) as u64,
                addr_of_mut!(AP_VMSA[1]) as u64,
            ],
            addr_of!(probe_ap_entry) as u64,
        )
    };
    let gpa = if cands[0] % (2 << 20) == 0 {
        cands[1]
    } else {
        cands[0]
    };
    let v = ap::vmsa(entry);
    // SAFETY: the probe's own private page, not yet a VMSA.
    unsafe {
        (gpa as *mut [u8; 4096]).write_volatile(v.as_bytes().try_into().unwrap_or([0; 4096]))
    };
    // RDX: target VMPL1, no permissions, VMSA bit (APM vol. 3 RMPADJUST; the VMSA bit
    // is the page's, set from VMPL0).
    // SAFETY: the probe's own private page.
    if unsafe { rmpadjust(gpa, 1 | 1 << 16) } != 0 {
        return Err("rmpadjust");
    }
    let regs = Regs {
        rax: Some(v.sev_features),
        ..Regs::default()
    };
    let info1 = ap_create::info1(ap::APIC_ID, 0, ap_create::CREATE);
    match call(exit::SNP_AP_CREATION, info1, gpa, regs) {
        Some(a) if a.info1 as u32 == 0 => {}
        _ => return Err("ap-creation"),
    }
    for round in 0..ap::WAIT_ROUNDS {
        let seen = AP_FLAG.load(Ordering::Acquire);
        if seen == ap::MARKER {
            say!("probe-step ap-run ok apic_id=1 vmsa={gpa:#x} value={seen:#x} rounds={round}");
            return Ok(());
        }
        // One exit per round (hypervisor features, MSR protocol).
        let _ = msrp::hv_features();
    }
    Err("no marker from the AP")
}
