//! The PVH entry point: 32-bit protected mode to 64-bit long mode, as a macro that a
//! bare-metal program invokes once (a library cannot hold an entry point without
//! putting it into every program that links the library).
//!
//! QEMU's `-kernel` loader finds the Xen ELF note `XEN_ELFNOTE_PHYS32_ENTRY` (type 18,
//! Xen's public `elfnote.h`) and jumps to the address it holds in 32-bit protected mode,
//! paging off, interrupts off, flat segments, with EBX holding the physical address of
//! the `hvm_start_info` structure (Xen's `arch-x86/hvm/start_info.h`). There is no
//! stack. The expanded assembly:
//!
//! 1. sets up a stack (a `.bss` array of the size the program asks for);
//! 2. zeroes six page-table pages in `.bss` and identity-maps the first 4 GiB with 2 MiB
//!    pages (writable, executable: [`BOOT_MAP_END`](super::BOOT_MAP_END));
//! 3. enables PAE, loads CR3, sets EFER.LME and EFER.NXE, enables paging (with CR0.WP);
//! 4. loads a bootstrap GDT with a 64-bit code segment and far-returns into 64-bit code;
//! 5. loads the data segments and calls `main(start_info_paddr)`.
//!
//! Note layout: QEMU (hw/i386/x86.c, `read_pvh_start_addr`) reads a 64-bit ELF's note
//! descriptor as a 64-bit value located at `12 + align_up(namesz, p_align)` bytes into the
//! note. So the descriptor is a `.quad` and the note section must be 4-byte aligned: the
//! program's linker script keeps `.note.Xen` in its own 4-aligned output section (see
//! `bare/pvh.ld`).

/// Expands to the PVH entry (symbol `bare_pvh_entry`, the ELF entry of `bare/pvh.ld`),
/// which calls `$main` in long mode with the `hvm_start_info` physical address as its
/// one argument. `$main` must be `extern "C" fn(u64) -> !`; `$stack` is the size in
/// bytes of the boot stack (a multiple of 16).
#[macro_export]
macro_rules! pvh_entry {
    ($main:path, $stack:expr) => {
        const _: extern "C" fn(u64) -> ! = $main;
        const _: () = assert!(($stack) % 16 == 0 && ($stack) >= 4096);
        core::arch::global_asm!(
            r#"
            .section .note.Xen, "a", @note
            .balign 4
            .long 4                     /* namesz: "Xen\0" */
            .long 8                     /* descsz: a 64-bit physical address */
            .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
            .asciz "Xen"
            .balign 4
            .quad bare_pvh_entry
            .balign 4

            .section .text.boot, "ax"
            .code32
            .global bare_pvh_entry
        bare_pvh_entry:
            cli
            cld
            mov esi, ebx                /* keep the start-info address */
            mov esp, offset bare_boot_stack_top

            /* Zero the six bootstrap page-table pages. */
            mov edi, offset bare_boot_pml4
            mov ecx, 6 * 4096 / 4
            xor eax, eax
            rep stosd

            /* PML4[0] -> PDPT; PDPT[0..4] -> the four PDs (present, writable). */
            mov eax, offset bare_boot_pdpt
            or eax, 0x3
            mov dword ptr [bare_boot_pml4], eax
            xor ecx, ecx
        2:
            mov eax, ecx
            shl eax, 12
            add eax, offset bare_boot_pd
            or eax, 0x3
            mov dword ptr [bare_boot_pdpt + ecx * 8], eax
            inc ecx
            cmp ecx, 4
            jne 2b
            xor ecx, ecx
            /* PD entries 0..2048: 2 MiB pages at ecx << 21 (present, writable, PS). */
        3:
            mov eax, ecx
            shl eax, 21
            or eax, 0x83
            mov dword ptr [bare_boot_pd + ecx * 8], eax
            inc ecx
            cmp ecx, 2048
            jne 3b

            mov eax, cr4
            or eax, 1 << 5              /* PAE */
            mov cr4, eax
            mov eax, offset bare_boot_pml4
            mov cr3, eax
            mov ecx, 0xC0000080         /* EFER */
            rdmsr
            or eax, (1 << 8) | (1 << 11) /* LME, NXE */
            wrmsr
            mov eax, cr0
            or eax, (1 << 31) | (1 << 16) | 1 /* PG, WP, PE */
            mov cr0, eax

            lgdt [bare_boot_gdtr]
            mov eax, 0x08               /* far return to 0x08:bare_long_mode_entry */
            push eax
            mov eax, offset bare_long_mode_entry
            push eax
            retf

            .code64
        bare_long_mode_entry:
            mov ax, 0x10
            mov ds, ax
            mov es, ax
            mov ss, ax
            xor eax, eax
            mov fs, ax
            mov gs, ax
            mov edi, esi                /* arg 0: start-info physical address */
            xor ebp, ebp
            call {main}
        4:
            hlt
            jmp 4b

            .section .rodata.bare_boot_gdt, "a"
            .balign 16
        bare_boot_gdt:
            .quad 0
            /* Accessed bits preset: the CPU never writes this read-only table. */
            .quad 0x00af9b000000ffff    /* 0x08: 64-bit code, DPL 0 */
            .quad 0x00cf93000000ffff    /* 0x10: data, DPL 0 */
        bare_boot_gdt_end:
        bare_boot_gdtr:
            .word bare_boot_gdt_end - bare_boot_gdt - 1
            .quad bare_boot_gdt

            .section .bss.bare_boot, "aw", @nobits
            .balign 4096
        bare_boot_pml4:
            .skip 4096
        bare_boot_pdpt:
            .skip 4096
        bare_boot_pd:
            .skip 4 * 4096
        bare_boot_stack:
            .skip {stack}
        bare_boot_stack_top:
            "#,
            main = sym $main,
            stack = const $stack,
        );
    };
}
