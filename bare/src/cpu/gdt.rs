//! The Global Descriptor Table: a 64-bit code segment, a data segment and the TSS.
//!
//! The bootstrap GDT of [`pvh_entry!`](crate::pvh_entry) is read-only and has no TSS; this one replaces it.
//! It lives in writable memory because `ltr` sets the busy bit in the TSS descriptor.

use core::arch::asm;
use core::cell::UnsafeCell;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::DescriptorFlags;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Code selector (Intel SDM vol. 3 / AMD APM vol. 2 "Segment Descriptors").
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector.
pub const TSS_SEL: u16 = 0x18;

/// 64-bit code: present, DPL 0, execute/read, L=1 (the `x86_64` crate's encoding).
const CODE64: u64 = DescriptorFlags::KERNEL_CODE64.bits();
/// Data: present, DPL 0, read/write.
const DATA: u64 = DescriptorFlags::KERNEL_DATA.bits();

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

/// Installs the TSS descriptor for `tss_addr`, loads the GDT, reloads every segment
/// register and loads the task register.
///
/// # Safety
/// Call once, on the boot CPU, with interrupts off; `tss_addr` must be a 104-byte TSS
/// that stays valid forever.
pub unsafe fn load(tss_addr: u64) {
    let [lo, hi] = tss_descriptor(tss_addr, super::tss::TSS_LIMIT);
    // SAFETY: nothing else references the GDT yet (caller: once, before use).
    unsafe {
        let g = &mut *GDT.0.get();
        g[3] = lo;
        g[4] = hi;
    }
    let gdtr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
        base: VirtAddr::new(GDT.0.get() as u64),
    };
    // SAFETY: the GDT holds valid code/data descriptors at the selectors reloaded here
    // (CS is reloaded with a far return to the same kind of 64-bit code segment the CPU
    // runs on), and the TSS descriptor describes a valid TSS (caller).
    unsafe {
        lgdt(&gdtr);
        CS::set_reg(SegmentSelector(KERNEL_CS));
        DS::set_reg(SegmentSelector(KERNEL_DS));
        ES::set_reg(SegmentSelector(KERNEL_DS));
        SS::set_reg(SegmentSelector(KERNEL_DS));
        load_tss(SegmentSelector(TSS_SEL));
    }
}

/// Loads the GDT the boot CPU filled, and its code and data selectors, on an AP (no
/// TSS: the boot CPU's is busy, `cpu::smp`).
///
/// # Safety
/// After [`load`] ran on the boot CPU; interrupts off.
#[cfg(target_os = "none")]
pub unsafe fn load_without_tss() {
    let gdtr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
        base: VirtAddr::new(GDT.0.get() as u64),
    };
    // SAFETY: the GDT holds the same valid code/data descriptors `load` relies on and is
    // not written again; CS is reloaded with a far return to a 64-bit code segment.
    unsafe {
        lgdt(&gdtr);
        CS::set_reg(SegmentSelector(KERNEL_CS));
        DS::set_reg(SegmentSelector(KERNEL_DS));
        ES::set_reg(SegmentSelector(KERNEL_DS));
        SS::set_reg(SegmentSelector(KERNEL_DS));
    }
}

/// The selectors currently in CS and TR.
pub fn current_cs_tr() -> (u16, u16) {
    let tr: u16;
    // SAFETY: STR (not in the `x86_64` crate) only reads the task register.
    unsafe {
        asm!("str {0:x}", out(reg) tr, options(nomem, nostack, preserves_flags));
    }
    (CS::get_reg().0, tr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_data_descriptors_are_flat_ring0_long_mode() {
        // Present (47), DPL 0 (46:45), code/data (44), L (53) for code only, limit 0xfffff.
        assert_eq!(CODE64 & (1 << 47 | 3 << 45 | 1 << 44), 1 << 47 | 1 << 44);
        assert_ne!(CODE64 & (1 << 53), 0);
        assert_ne!(CODE64 & (1 << 43), 0, "code is executable");
        assert_eq!(DATA & (1 << 43 | 1 << 53), 0, "data is not code");
        assert_ne!(DATA & (1 << 41), 0, "data is writable");
    }

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
