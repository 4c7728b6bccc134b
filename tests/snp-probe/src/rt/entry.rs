//! The probe's entry: flat 32-bit protected mode to long mode (the boot VMSA that
//! `vigil-igvm build` writes starts at the ELF entry with CS 0x8, paging off and RSI = the
//! BootParams GPA; docs/igvm.md "build").
//!
//! With paging off every access of an SNP guest is private (APM vol. 2 §15.34.4), so the
//! code below can read the measured BootParams and CPUID pages and write its page tables
//! before it knows the C-bit. It then:
//! 1. reads the CPUID page's GPA from BootParams (offset 0x40) and finds leaf 0x8000001F
//!    there (entries of 0x30 bytes from offset 0x10, EBX output at +0x1C): EBX bits 5:0
//!    are the C-bit (never the host's word; SNP ABI #56860 "CPUID page");
//! 2. identity-maps the first 1 GiB with 2 MiB pages, the C-bit set at every level;
//! 3. enables PAE, loads CR3, writes EFER = SVME | LME | NXE (SVME must stay set under
//!    SNP), enables paging, loads a GDT with a 64-bit code segment and far-returns to
//!    64-bit code, which calls `probe_main(boot_params, c_bit)`.
//!
//! Without a C-bit in the CPUID page it terminates through the GHCB MSR protocol
//! (reason set 1, code 1): there is no console yet.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.entry, "ax"
    .code32
    .global probe_entry
probe_entry:
    cli
    cld
    mov esp, offset probe_stack_top
    mov ebp, esi
    mov edi, dword ptr [esi + 0x40]
    mov ecx, dword ptr [edi]
    cmp ecx, 64
    ja 9f
    lea edx, [edi + 16]
1:
    test ecx, ecx
    jz 9f
    cmp dword ptr [edx], 0x8000001f
    je 2f
    add edx, 0x30
    dec ecx
    jmp 1b
2:
    mov eax, dword ptr [edx + 0x1c]
    and eax, 0x3f
    mov dword ptr [probe_cbit], eax
    sub eax, 32
    jb 9f
    mov ecx, eax
    mov ebx, 1
    shl ebx, cl

    mov edi, offset probe_pml4
    mov ecx, 3 * 4096 / 4
    xor eax, eax
    rep stosd
    mov eax, offset probe_pdpt
    or eax, 0x3
    mov dword ptr [probe_pml4], eax
    mov dword ptr [probe_pml4 + 4], ebx
    mov eax, offset probe_pd
    or eax, 0x3
    mov dword ptr [probe_pdpt], eax
    mov dword ptr [probe_pdpt + 4], ebx
    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [probe_pd + ecx * 8], eax
    mov dword ptr [probe_pd + ecx * 8 + 4], ebx
    inc ecx
    cmp ecx, 512
    jne 3b

    mov eax, cr4
    or eax, 1 << 5
    mov cr4, eax
    mov eax, offset probe_pml4
    mov cr3, eax
    mov ecx, 0xc0000080
    mov eax, 0x1900
    xor edx, edx
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1
    mov cr0, eax
    lgdt [probe_gdtr]
    push 0x08
    mov eax, offset probe_long_mode
    push eax
    retf

9:
    mov ecx, 0xc0010130
    mov eax, 0x11100
    xor edx, edx
    wrmsr
    .byte 0xf3, 0x0f, 0x01, 0xd9
8:
    hlt
    jmp 8b

    .code64
probe_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov edi, ebp
    mov esi, dword ptr [rip + probe_cbit]
    xor ebp, ebp
    call {main}
5:
    hlt
    jmp 5b

    .section .rodata.probe_gdt, "a"
    .balign 16
probe_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
probe_gdt_end:
probe_gdtr:
    .word probe_gdt_end - probe_gdt - 1
    .quad probe_gdt

    .section .data.probe_cbit, "aw"
    .balign 4
    .global probe_cbit
probe_cbit:
    .long 0

    .section .bss.probe_tables, "aw", @nobits
    .balign 4096
    .global probe_pml4
probe_pml4:
    .skip 4096
probe_pdpt:
    .skip 4096
    .global probe_pd
probe_pd:
    .skip 4096

    .section .bss.probe_stack, "aw", @nobits
    .balign 16
    .skip 65536
probe_stack_top:
    "#,
    main = sym crate::probe_main,
);
