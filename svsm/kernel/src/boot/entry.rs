//! The PVH entry point and the 32-bit-to-long-mode path it shares with the IGVM entry.
//!
//! QEMU's `-kernel` loader finds the Xen ELF note `XEN_ELFNOTE_PHYS32_ENTRY` (type 18) and
//! jumps to the address it holds in 32-bit protected mode, paging off, interrupts off, flat
//! segments, with EBX holding the physical address of the `hvm_start_info` structure. There
//! is no stack. `vigil_pvh_entry` passes that address on, with no C-bit and entry kind 0
//! (PVH), to `vigil_entry32_common`; the IGVM entry (`boot::igvm`) joins there with the
//! BootParams GPA, the C-bit and kind 1. The common path is the only code that runs
//! before Rust (ESI = argument, EBX = the C-bit as a mask of the high dword of a page-table
//! entry, EBP = entry kind):
//!
//! 1. set up a stack (the top of the main kernel stack, see `mm::layout`);
//! 2. zero three page-table pages in .bss and identity-map the first 1 GiB with 2 MiB
//!    pages (writable, executable; every entry, tables included, with the C-bit mask:
//!    under SNP, data accesses with paging on are private only with the C-bit, APM vol. 2
//!    15.34.4): a bootstrap map only, replaced by `mm::paging` on the native path;
//! 3. enable PAE, load CR3, set EFER.LME and EFER.NXE, enable paging (with CR0.WP).
//!    After the PVH entry EFER is read and the bits ORed in; after the IGVM entry it is
//!    written whole (SVME, which an SNP guest's EFER keeps set as its VMSA has it, plus
//!    LME and NXE) without a read: no MSR access there is left for a host to intercept
//!    as a #VC before a handler exists (the GHCB spec lets a hypervisor intercept any
//!    MSR; KVM passes EFER through, a model need not);
//! 4. load a bootstrap GDT with a 64-bit code segment and far-return into 64-bit code;
//! 5. load the data segments and call `kernel_main(argument, kind, c_bit_mask)`.
//!
//! Note layout: QEMU (hw/i386/x86.c, `read_pvh_start_addr`) reads a 64-bit ELF's note
//! descriptor as a 64-bit value located at `12 + align_up(namesz, p_align)` bytes into the
//! note. So the descriptor is a `.quad` and the note section is 4-byte aligned (the
//! linker script keeps it in its own 4-aligned output section).

use core::arch::global_asm;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 8                     /* descsz: a 64-bit physical address */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad vigil_pvh_entry
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global vigil_pvh_entry
vigil_pvh_entry:
    cli
    cld
    mov esi, ebx                          /* argument: the start-info address */
    xor ebx, ebx                          /* no C-bit */
    xor ebp, ebp                          /* entry kind 0: PVH */

    .global vigil_entry32_common
vigil_entry32_common:
    mov esp, offset {stacks} + {main_top}

    /* Zero the three bootstrap page-table pages. */
    mov edi, offset vigil_boot_pml4
    mov ecx, 3 * 4096 / 4
    xor eax, eax
    rep stosd

    mov eax, offset vigil_boot_pdpt
    or eax, 0x3                           /* present, writable */
    mov dword ptr [vigil_boot_pml4], eax
    mov dword ptr [vigil_boot_pml4 + 4], ebx
    mov eax, offset vigil_boot_pd
    or eax, 0x3
    mov dword ptr [vigil_boot_pdpt], eax
    mov dword ptr [vigil_boot_pdpt + 4], ebx
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                          /* present, writable, 2 MiB page */
    mov dword ptr [vigil_boot_pd + ecx * 8], eax
    mov dword ptr [vigil_boot_pd + ecx * 8 + 4], ebx
    inc ecx
    cmp ecx, 512
    jne 2b

    mov eax, cr4
    or eax, 1 << 5                        /* PAE */
    mov cr4, eax
    mov eax, offset vigil_boot_pml4
    mov cr3, eax
    mov ecx, 0xC0000080                   /* EFER */
    test ebp, ebp
    jnz 3f
    rdmsr                                 /* PVH: keep what is set */
    jmp 4f
3:
    mov eax, 1 << 12                      /* IGVM: SVME, as the VMSA starts it */
    xor edx, edx
4:
    or eax, (1 << 8) | (1 << 11)          /* LME, NXE */
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1     /* PG, WP, PE */
    mov cr0, eax

    lgdt [vigil_boot_gdtr]
    mov eax, 0x08                         /* far return to 0x08:vigil_long_mode_entry */
    push eax
    mov eax, offset vigil_long_mode_entry
    push eax
    retf

    .code64
vigil_long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov edx, ebx
    shl rdx, 32                           /* arg 2: the C-bit mask (0 without SNP) */
    mov edi, esi                          /* arg 0: start info / BootParams address */
    mov esi, ebp                          /* arg 1: entry kind */
    xor ebp, ebp
    call {main}
4:
    hlt
    jmp 4b

    .section .rodata.vigil_boot_gdt, "a"
    .balign 16
vigil_boot_gdt:
    .quad 0
    /* The accessed bits are preset (type 0xB and 0x3): the CPU then never writes to this
       table when it loads the segments, so the measured .rodata stays as linked. */
    .quad 0x00af9b000000ffff              /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf93000000ffff              /* 0x10: data, DPL 0 */
vigil_boot_gdt_end:
vigil_boot_gdtr:
    .word vigil_boot_gdt_end - vigil_boot_gdt - 1
    .quad vigil_boot_gdt

    .section .bss.vigil_boot_pagetables, "aw", @nobits
    .balign 4096
vigil_boot_pml4:
    .skip 4096
vigil_boot_pdpt:
    .skip 4096
vigil_boot_pd:
    .skip 4096
    "#,
    stacks = sym crate::mm::layout::VIGIL_STACKS,
    main_top = const crate::mm::layout::MAIN_STACK_TOP_OFFSET,
    main = sym crate::kernel_main,
);
