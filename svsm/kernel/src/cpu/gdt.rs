//! The Global Descriptor Table: a 64-bit code segment, a data segment and the TSS.
//!
//! The bootstrap GDT of `boot::entry` is read-only and has no TSS; this one replaces it.
//! It lives in writable memory because `ltr` sets the busy bit in the TSS descriptor.

use core::arch::asm;
use core::cell::UnsafeCell;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector.
pub const TSS_SEL: u16 = 0x18;

/// 64-bit code: present, DPL 0, execute/read, L=1.
const CODE64: u64 = 0x00af_9a00_0000_ffff;
/// Data: present, DPL 0, read/write.
const DATA: u64 = 0x00cf_9200_0000_ffff;

/// Builds the two 8-byte halves of a 64-bit available-TSS descriptor.
pub const fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    let low = (limit as u64 & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9 = available 64-bit TSS
        | (((limit as u64 >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

#[repr(C, align(16))]
struct Gdt(UnsafeCell<[u64; 5]>);

// SAFETY: written once by `load` on the boot CPU before use; the CPU alone writes the
// busy bit afterwards.
unsafe impl Sync for Gdt {}

static GDT: Gdt = Gdt(UnsafeCell::new([0, CODE64, DATA, 0, 0]));

#[repr(C, packed)]
struct Gdtr {
    limit: u16,
    base: u64,
}

/// Installs the TSS descriptor for `tss_addr`, loads the GDT, reloads every segment
/// register and loads the task register.
///
/// # Safety
/// Call once, on the boot CPU, with interrupts off; `tss_addr` must be a 104-byte TSS
/// that stays valid forever.
pub unsafe fn load(tss_addr: u64) {
    let [lo, hi] = tss_descriptor(tss_addr, 103);
    // SAFETY: nothing else references the GDT yet (caller: once, before use).
    unsafe {
        let g = &mut *GDT.0.get();
        g[3] = lo;
        g[4] = hi;
    }
    let gdtr = Gdtr {
        limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
        base: GDT.0.get() as u64,
    };
    // SAFETY: the GDT holds valid code/data descriptors at the selectors reloaded here;
    // the far return reloads CS with the same kind of 64-bit code segment the CPU runs
    // on, and the TSS descriptor describes a valid TSS (caller).
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            gdtr = in(reg) &gdtr,
            cs = const KERNEL_CS as u64,
            tmp = out(reg) _,
            ds = in(reg) KERNEL_DS as u64,
            tss = in(reg) TSS_SEL as u64,
        );
    }
}

/// The selectors currently in CS and TR (for the in-kernel tests).
pub fn current_cs_tr() -> (u16, u16) {
    let (cs, tr): (u16, u16);
    // SAFETY: reading segment selectors has no side effect.
    unsafe {
        asm!("mov {0:x}, cs", "str {1:x}", out(reg) cs, out(reg) tr, options(nomem, nostack, preserves_flags));
    }
    (cs, tr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_descriptor_encodes_base_and_limit() {
        let [lo, hi] = tss_descriptor(0xffff_8000_1234_5678, 103);
        assert_eq!(lo & 0xffff, 103);
        assert_eq!((lo >> 16) & 0xff_ffff, 0x34_5678);
        assert_eq!((lo >> 56) & 0xff, 0x12);
        assert_eq!((lo >> 40) & 0xff, 0x89);
        assert_eq!(hi, 0xffff_8000);
    }
}
