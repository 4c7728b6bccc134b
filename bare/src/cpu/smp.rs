//! A second CPU: the boot CPU starts an application processor with INIT-SIPI-SIPI
//! through its local APIC, and the AP runs a real-mode trampoline to long mode on the
//! boot CPU's page tables, then jumps to a Rust entry on a stack of the caller's.
//!
//! Sources: Intel SDM vol. 3A §8.4.4 (MP initialisation: INIT, 10 ms, SIPI, 200 µs,
//! SIPI; the SIPI vector is the trampoline's page number below 1 MiB) and §10.6.1 (the
//! ICR at 0xFEE00300/0xFEE00310 of the xAPIC page, destination in ICR high bits 31:24);
//! AMD APM vol. 2 §14.1-14.8 (real mode to long mode: PE, PAE, CR3, EFER.LME, PG, a
//! far jump to a 64-bit code segment) and §16.5 (IPIs on AMD's local APIC).
//!
//! The trampoline is copied to [`TRAMPOLINE`] (0x8000, which the PVH boot leaves
//! unused: QEMU keeps the start info in its option ROM and the command line at
//! 0x20000), so it runs with its own addresses fixed. Its temporary GDT has a 32-bit
//! code segment (0x08), a data segment (0x10) and a 64-bit code segment (0x18). The AP
//! enters `entry` with the temporary GDT and no IDT: it must call [`ap_init`] first.
//! [`ap_init`] loads the boot CPU's GDT and IDT but no TSS (the boot CPU's TSS is busy
//! and one TSS cannot be loaded on two CPUs): an exception whose gate names an IST
//! stack then cannot be delivered on the AP and ends the run as a triple fault.

/// Where the trampoline runs (physical = linear on the identity map); SIPI vector 8.
pub const TRAMPOLINE: u64 = 0x8000;
// A SIPI vector names a page below 1 MiB.
const _: () = assert!(TRAMPOLINE < 1 << 20 && TRAMPOLINE.is_multiple_of(4096));
/// The SIPI vector: the trampoline's page number.
pub const SIPI_VECTOR: u32 = (TRAMPOLINE >> 12) as u32;
/// The xAPIC's ICR, low and high words (Intel SDM vol. 3A §10.6.1).
pub const ICR_LOW: u64 = 0xfee0_0300;
/// ICR high: destination APIC ID in bits 31:24.
pub const ICR_HIGH: u64 = 0xfee0_0310;
/// ICR low for INIT (delivery mode 101b), level assert (bit 14).
pub const ICR_INIT: u32 = 0x0000_4500;
/// ICR low for a start-up IPI (delivery mode 110b), level assert, with the vector.
pub const ICR_SIPI: u32 = 0x0000_4600 | SIPI_VECTOR;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.bare_ap_trampoline, "ax"
    .global bare_ap_trampoline_start
    .global bare_ap_trampoline_end
    .global bare_ap_trampoline_cr3
    .global bare_ap_trampoline_stack
    .global bare_ap_trampoline_entry
    .code16
bare_ap_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    // lgdt [disp16]
    .byte 0x0f, 0x01, 0x16
    .word {base} + (2f - bare_ap_trampoline_start)
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    // jmp far 0x08:offset32 (operand-size prefix in 16-bit code)
    .byte 0x66, 0xea
    .long {base} + (3f - bare_ap_trampoline_start)
    .word 0x08
    .code32
3:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    // mov eax, [disp32]
    .byte 0xa1
    .long {base} + (bare_ap_trampoline_cr3 - bare_ap_trampoline_start)
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    // jmp far 0x18:offset32
    .byte 0xea
    .long {base} + (4f - bare_ap_trampoline_start)
    .word 0x18
    .code64
4:
    // mov rsp, [abs32]; mov rax, [abs32]
    .byte 0x48, 0x8b, 0x24, 0x25
    .long {base} + (bare_ap_trampoline_stack - bare_ap_trampoline_start)
    .byte 0x48, 0x8b, 0x04, 0x25
    .long {base} + (bare_ap_trampoline_entry - bare_ap_trampoline_start)
    jmp rax
    .balign 8
1:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
2:
    .word 31
    .long {base} + (1b - bare_ap_trampoline_start)
    .balign 8
bare_ap_trampoline_cr3:
    .quad 0
bare_ap_trampoline_stack:
    .quad 0
bare_ap_trampoline_entry:
    .quad 0
bare_ap_trampoline_end:
    .text
    "#,
    base = const TRAMPOLINE,
);

// The wake-up interrupt's handler: EOI to the xAPIC (offset 0xB0), then return.
#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.bare_wake_handler, "ax"
    .global bare_wake_handler
bare_wake_handler:
    push rax
    mov eax, 0xfee000b0
    mov dword ptr [rax], 0
    pop rax
    iretq
    .text
    "#
);

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn bare_wake_handler();
    static bare_ap_trampoline_start: u8;
    static bare_ap_trampoline_end: u8;
    static bare_ap_trampoline_cr3: u8;
    static bare_ap_trampoline_stack: u8;
    static bare_ap_trampoline_entry: u8;
}

/// The wake-up IPI's vector (fixed delivery) and the APIC's spurious vector; both go
/// to a handler that only acknowledges (EOI) and returns.
pub const WAKE_VECTOR: u8 = 0xf0;
/// The spurious-interrupt vector programmed on the AP.
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// The xAPIC's spurious-interrupt vector register; bit 8 enables the APIC.
pub const SVR: u64 = 0xfee0_00f0;

/// On the boot CPU, after `cpu::init` and before [`start_ap`]: the wake-up and spurious
/// vectors' gates.
///
/// # Safety
/// As `idt::set_gate`: no CPU may take either vector yet.
#[cfg(target_os = "none")]
pub unsafe fn install_wake() {
    // SAFETY: forwarded to the caller; the handler acknowledges and returns with IRETQ.
    unsafe {
        super::idt::set_gate(WAKE_VECTOR, bare_wake_handler as *const () as usize as u64);
        super::idt::set_gate(
            SPURIOUS_VECTOR,
            bare_wake_handler as *const () as usize as u64,
        );
    }
}

/// On the AP: software-enable its local APIC (SVR bit 8, spurious vector 0xFF) so that
/// it accepts the wake-up IPI (Intel SDM vol. 3A §10.9).
#[cfg(target_os = "none")]
pub fn enable_local_apic() {
    // SAFETY: the xAPIC page is identity mapped (start_ap's caller); SVR is this CPU's.
    unsafe {
        let v = core::ptr::read_volatile(SVR as *const u32);
        core::ptr::write_volatile(SVR as *mut u32, v | 0x100 | u32::from(SPURIOUS_VECTOR));
    }
}

/// Sleeps until an interrupt (the wake-up IPI): STI; HLT; CLI. An IPI that arrived
/// before is pending and ends the HLT at once (STI's one-instruction shadow covers HLT),
/// so no wake-up is lost between the caller's check and the sleep.
#[cfg(target_os = "none")]
pub fn sleep() {
    // SAFETY: with `install_wake` done, the only interrupts this CPU can take are the
    // wake-up and spurious vectors, whose handler only acknowledges.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Sends the wake-up IPI to `apic_id`.
#[cfg(target_os = "none")]
pub fn wake(apic_id: u8) {
    // SAFETY: the xAPIC's ICR (identity mapped); one fixed IPI to the AP.
    unsafe {
        core::ptr::write_volatile(ICR_HIGH as *mut u32, u32::from(apic_id) << 24);
        core::ptr::write_volatile(ICR_LOW as *mut u32, 0x4000 | u32::from(WAKE_VECTOR));
    }
}

/// Busy-waits `cycles` TSC cycles.
#[cfg(target_os = "none")]
fn delay(cycles: u64) {
    // SAFETY: RDTSC has no side effect.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    // SAFETY: as above.
    while unsafe { core::arch::x86_64::_rdtsc() }.wrapping_sub(t0) < cycles {
        core::hint::spin_loop();
    }
}

/// Starts the AP with APIC ID `apic_id`: it runs `entry` on the stack ending at
/// `stack_top` (16-byte aligned; `entry` sees it as after a call). `tsc_hz` times the
/// waits between the IPIs.
///
/// # Safety
/// Boot CPU, once per AP; the page at [`TRAMPOLINE`] is RAM nothing else uses; the
/// stack is the AP's alone for ever; the xAPIC page and everything `entry` touches are
/// mapped by the current page tables (below 4 GiB, since the AP loads CR3 in 32-bit
/// mode), which must stay in place while the AP runs.
#[cfg(target_os = "none")]
pub unsafe fn start_ap(apic_id: u8, stack_top: u64, entry: extern "C" fn() -> !, tsc_hz: u64) {
    use core::ptr::{addr_of, write_volatile};
    let start = addr_of!(bare_ap_trampoline_start) as u64;
    let len = addr_of!(bare_ap_trampoline_end) as u64 - start;
    let at = |sym: u64| TRAMPOLINE + (sym - start);
    let cr3 = x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64();
    // SAFETY: the caller gives the trampoline page and the stack to the AP; the copy is
    // `len` bytes of the trampoline's own code; the three fields are 8-byte slots at
    // the end of the copy.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE as *mut u8, len as usize);
        write_volatile(at(addr_of!(bare_ap_trampoline_cr3) as u64) as *mut u64, cr3);
        write_volatile(
            at(addr_of!(bare_ap_trampoline_stack) as u64) as *mut u64,
            stack_top - 8,
        );
        write_volatile(
            at(addr_of!(bare_ap_trampoline_entry) as u64) as *mut u64,
            entry as *const () as usize as u64,
        );
    }
    let ipi = |low: u32| {
        // SAFETY: the xAPIC's ICR (identity mapped, caller); writing the high word and
        // then the low word sends one IPI.
        unsafe {
            write_volatile(ICR_HIGH as *mut u32, u32::from(apic_id) << 24);
            write_volatile(ICR_LOW as *mut u32, low);
        }
    };
    ipi(ICR_INIT);
    delay(tsc_hz / 100);
    for _ in 0..2 {
        ipi(ICR_SIPI);
        delay(tsc_hz / 5000);
    }
}

/// On the AP, first thing: the boot CPU's GDT and IDT (no TSS, see the module docs).
///
/// # Safety
/// Once per AP, after the boot CPU ran `cpu::init`, interrupts off.
#[cfg(target_os = "none")]
pub unsafe fn ap_init() {
    // SAFETY: forwarded to the caller; both tables are statics the boot CPU filled.
    unsafe {
        super::gdt::load_without_tss();
        super::idt::reload();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipis_encode_the_trampoline_page() {
        assert_eq!(SIPI_VECTOR, 8);
        assert_eq!(ICR_SIPI, 0x4608);
        assert_eq!(ICR_INIT & 0x700, 0x500, "delivery mode INIT");
    }
}
