//! The instructions SNP adds (and the few x86 ones the probe needs), behind small
//! functions. Encodings from AMD APM vol. 3: VMGEXIT = F3 0F 01 D9 (REP VMMCALL),
//! PVALIDATE = F2 0F 01 FF, RMPADJUST = F3 0F 01 FE.

use core::arch::asm;

/// The GHCB MSR (GHCB spec #56421, `svsm_abi::ghcb::MSR_GHCB`).
pub use svsm_abi::ghcb::MSR_GHCB;

/// WRMSR.
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the probe writes only the GHCB MSR, which has no effect but on the next
    // VMGEXIT; it runs at CPL0.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// RDMSR.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the GHCB MSR only (callers pass MSR_GHCB); no memory is touched.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
             options(nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// VMGEXIT: exit to the host, which reads the GHCB MSR (and the GHCB page).
pub fn vmgexit() {
    // SAFETY: hands control to the host and back; memory is clobbered because the host
    // writes the shared GHCB page.
    unsafe {
        asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack));
    }
}

/// PVALIDATE the 4 KiB page at `va` (validate or rescind): returns EAX and CF.
///
/// # Safety
/// `va` must be mapped; rescinding a page the probe then touches through a private
/// mapping faults (#VC 0x404).
pub unsafe fn pvalidate(va: u64, validate: bool) -> (u32, bool) {
    let rax: u64;
    let cf: u8;
    // SAFETY: per the caller's contract; PVALIDATE changes only the RMP entry.
    unsafe {
        asm!(".byte 0xf2, 0x0f, 0x01, 0xff", "setc {cf}",
             inout("rax") va => rax, in("rcx") 0u64, in("rdx") u64::from(validate),
             cf = out(reg_byte) cf, options(nostack));
    }
    (rax as u32, cf != 0)
}

/// RMPADJUST the 4 KiB page at `va` with `attrs` (RDX: target VMPL in bits 7:0,
/// permission mask in 15:8, VMSA bit 16): returns EAX.
///
/// # Safety
/// `va` must be mapped and the probe's own private page.
pub unsafe fn rmpadjust(va: u64, attrs: u64) -> u32 {
    let rax: u64;
    // SAFETY: per the caller's contract; RMPADJUST changes only the RMP entry.
    unsafe {
        asm!(".byte 0xf3, 0x0f, 0x01, 0xfe",
             inout("rax") va => rax, in("rcx") 0u64, in("rdx") attrs, options(nostack));
    }
    rax as u32
}

/// INVLPG.
pub fn invlpg(va: u64) {
    // SAFETY: flushes one TLB entry; no memory effect.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// HLT forever.
pub fn halt() -> ! {
    loop {
        // SAFETY: halts the vCPU; interrupts are off.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}
