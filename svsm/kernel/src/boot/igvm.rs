//! The IGVM entry point (`vigil_igvm_entry`, the kernel ELF's `e_entry`).
//!
//! `vigil-igvm build` starts the boot CPU here through its VP context (docs/igvm.md,
//! "build"): flat 32-bit protected mode, paging off, CS 0x8, data segments 0x10,
//! RSI = the BootParams GPA, no stack, no start_info. This code only chooses the C-bit
//! for the bootstrap page tables and joins the common path (`boot::entry`,
//! `vigil_entry32_common`) with entry kind 1:
//!
//! 1. if BootParams.flags (offset 0x18) has the SNP bit, read SEV_STATUS (MSR
//!    0xC001_0131; RDMSR of it raises no #VC, APM vol. 2 15.34.10); an image built
//!    without SNP is never launched as an SNP guest, and on a CPU without the MSR the
//!    read would #GP with no IDT yet, so it is skipped there;
//! 2. SNP active (bit 2): find leaf 0x8000_001F in the CPUID page (BootParams offset
//!    0x40; CPUID itself would raise #VC with no handler yet) and take EBX[5:0], which
//!    must lie in 32..=51 (it goes into the high dword of every entry); a missing page
//!    or leaf, or a position out of range, ends the boot at once with a GHCB MSR
//!    termination request (reason `CPUID_PAGE`, 0x16), VMGEXIT;
//! 3. no SNP: no C-bit (the Rust side then refuses an IGVM boot it cannot serve).
//!
//! With paging off every data access is private (APM vol. 2 15.34.4), so BootParams and
//! the CPUID page (both launched as private, measured pages) read correctly here. The
//! Rust side (`snp::boot`) checks both pages again, in full, and compares its C-bit with
//! the mask passed on.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .code32
    .global vigil_igvm_entry
vigil_igvm_entry:
    cli
    cld
    xor ebx, ebx                          /* C-bit mask (high dword): none yet */
    test dword ptr [esi + 0x18], {flag_snp}
    jz 3f
    mov ecx, {msr_sev_status}
    rdmsr
    test eax, {snp_enabled}
    jz 3f

    /* SNP: the CPUID page. Its GPA must fit in 32 bits and not be 0. */
    cmp dword ptr [esi + 0x44], 0
    jne 8f
    mov edx, dword ptr [esi + 0x40]
    test edx, edx
    jz 8f
    mov ecx, dword ptr [edx]              /* count */
    cmp ecx, {max_entries}
    ja 8f
    add edx, 0x10                         /* the first function */
5:
    test ecx, ecx
    jz 8f
    cmp dword ptr [edx], 0x8000001f       /* eax_in */
    je 6f
    add edx, 48
    dec ecx
    jmp 5b
6:
    mov ecx, dword ptr [edx + 0x1c]       /* EBX out */
    and ecx, 0x3f
    cmp ecx, 32
    jb 8f
    cmp ecx, 51
    ja 8f
    sub ecx, 32
    mov ebx, 1
    shl ebx, cl
3:
    mov ebp, 1                            /* entry kind 1: IGVM */
    jmp vigil_entry32_common

8:  /* No usable C-bit: GHCB MSR termination request, reason CPUID_PAGE. */
    mov ecx, {msr_ghcb}
    mov eax, {term_cpuid_page}
    xor edx, edx
    wrmsr
9:
    .byte 0xf3, 0x0f, 0x01, 0xd9          /* VMGEXIT (rep vmmcall) */
    hlt
    jmp 9b
    .code64
    "#,
    flag_snp = const svsm_abi::boot_params::FLAG_SNP,
    msr_sev_status = const svsm_abi::sev_status::MSR_SEV_STATUS,
    snp_enabled = const svsm_abi::sev_status::SNP_ENABLED,
    max_entries = const svsm_abi::cpuid::CPUID_MAX_ENTRIES,
    msr_ghcb = const svsm_abi::ghcb::MSR_GHCB,
    term_cpuid_page = const svsm_abi::ghcb::msr::terminate(
        svsm_abi::ghcb::term::SET_SVSM,
        svsm_abi::ghcb::term::CPUID_PAGE
    ),
);

/// The kind of entry `kernel_main` was reached through (its second argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `vigil_pvh_entry`: QEMU `-kernel`, argument = `hvm_start_info` address.
    Pvh,
    /// `vigil_igvm_entry`: an IGVM VP context, argument = BootParams GPA.
    Igvm,
}
