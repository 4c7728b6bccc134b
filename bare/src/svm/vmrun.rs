//! SVM itself: turning it on, and the VMRUN stub (AMD APM vol. 2, 15.4 "Enabling SVM",
//! 15.5 "VMRUN").
//!
//! VMRUN and #VMEXIT switch only RAX, RSP and RIP (and the state in the VMCB save area);
//! every other general register keeps whatever value it had, in both directions. The
//! stub below therefore loads the guest's registers from a [`Gprs`] block just before
//! VMRUN and stores them back just after #VMEXIT, and keeps the host's callee-saved
//! registers on its own stack. VMLOAD/VMSAVE move the state VMRUN leaves alone (FS, GS,
//! TR, LDTR with their hidden parts, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER):
//! the host's own copy is saved into a host save page before each run and restored after,
//! so the guest can never leave its TR or GS base behind in the host.

use core::arch::global_asm;

use x86_64::registers::model_specific::Msr;

/// The guest's general registers that VMRUN does not switch (RAX and RSP live in the
/// VMCB). The offsets are used by the assembly below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
#[allow(missing_docs)]
pub struct Gprs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

const _: () = assert!(core::mem::size_of::<Gprs>() == 14 * 8);
const _: () = assert!(core::mem::offset_of!(Gprs, rsi) == 24);
const _: () = assert!(core::mem::offset_of!(Gprs, r15) == 104);

const MSR_EFER: u32 = 0xc000_0080;
const EFER_SVME: u64 = 1 << 12;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const MSR_VM_CR: u32 = 0xc001_0114;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// Why SVM could not be turned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// VM_CR.SVMDIS is set (SVM disabled by firmware).
    DisabledByFirmware,
    /// The host save area is not page aligned.
    HsaveNotAligned(u64),
}

/// Sets EFER.SVME and VM_HSAVE_PA.
///
/// # Safety
/// CPUID must report SVM (Fn8000_0001_ECX bit 2), and `hsave_pa` must be a page that
/// the caller owns for as long as SVM is used (the CPU writes the host's state into it
/// on every VMRUN) and that nothing else uses.
pub unsafe fn enable(hsave_pa: u64) -> Result<(), SvmError> {
    if hsave_pa & 0xfff != 0 {
        return Err(SvmError::HsaveNotAligned(hsave_pa));
    }
    // SAFETY: VM_CR exists when CPUID reports SVM (APM vol. 2, 15.30.1); RDMSR only
    // reads.
    let vm_cr = unsafe { Msr::new(MSR_VM_CR).read() };
    if vm_cr & VM_CR_SVMDIS != 0 {
        return Err(SvmError::DisabledByFirmware);
    }
    // SAFETY: EFER exists in long mode; setting SVME keeps LME/LMA/NXE as they are.
    // VM_HSAVE_PA exists when CPUID reports SVM, and the caller hands the page over.
    unsafe {
        let efer = Msr::new(MSR_EFER).read();
        Msr::new(MSR_EFER).write(efer | EFER_SVME);
        Msr::new(MSR_VM_HSAVE_PA).write(hsave_pa);
    }
    Ok(())
}

extern "C" {
    fn vigil_vmrun(guest_vmcb_pa: u64, gprs: *mut Gprs, host_save_pa: u64);
}

/// Runs the guest of `guest_vmcb_pa` until its next #VMEXIT.
///
/// # Safety
/// SVM is enabled; `guest_vmcb_pa` is the (identity-mapped) address of a page-aligned
/// VMCB that the caller owns and filled in (intercepts VMRUN, ASID != 0, nested paging
/// on tables that never map the host's own memory); `host_save_pa` is another such
/// page, used for the host's VMLOAD/VMSAVE state only.
pub unsafe fn vmrun(guest_vmcb_pa: u64, gprs: &mut Gprs, host_save_pa: u64) {
    // SAFETY: forwarded to the caller; the stub saves and restores every callee-saved
    // register and the host's VMLOAD state, and writes only `*gprs`.
    unsafe { vigil_vmrun(guest_vmcb_pa, gprs, host_save_pa) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effect.
    unsafe { core::arch::x86_64::_rdtsc() }
}

// rdi = guest VMCB PA, rsi = &mut Gprs, rdx = host save page PA.
global_asm!(
    ".section .text.vigil_vmrun, \"ax\"",
    ".global vigil_vmrun",
    "vigil_vmrun:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdx",
    "push rsi",
    "clgi",
    "mov rax, rdx",
    "vmsave rax",
    "mov rax, rdi",
    "vmload rax",
    "mov rbx, [rsi + 0]",
    "mov rcx, [rsi + 8]",
    "mov rdx, [rsi + 16]",
    "mov rdi, [rsi + 32]",
    "mov rbp, [rsi + 40]",
    "mov r8, [rsi + 48]",
    "mov r9, [rsi + 56]",
    "mov r10, [rsi + 64]",
    "mov r11, [rsi + 72]",
    "mov r12, [rsi + 80]",
    "mov r13, [rsi + 88]",
    "mov r14, [rsi + 96]",
    "mov r15, [rsi + 104]",
    "mov rsi, [rsi + 24]",
    "vmrun rax",
    "vmsave rax",
    "push rsi",
    "mov rsi, [rsp + 8]",
    "mov [rsi + 0], rbx",
    "mov [rsi + 8], rcx",
    "mov [rsi + 16], rdx",
    "mov [rsi + 32], rdi",
    "mov [rsi + 40], rbp",
    "mov [rsi + 48], r8",
    "mov [rsi + 56], r9",
    "mov [rsi + 64], r10",
    "mov [rsi + 72], r11",
    "mov [rsi + 80], r12",
    "mov [rsi + 88], r13",
    "mov [rsi + 96], r14",
    "mov [rsi + 104], r15",
    "pop rax",
    "mov [rsi + 24], rax",
    "pop rsi",
    "pop rax",
    "vmload rax",
    "stgi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".text",
);
