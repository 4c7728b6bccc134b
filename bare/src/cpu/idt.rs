//! The Interrupt Descriptor Table: 256 interrupt gates to the stubs of `cpu::vectors`.
//!
//! The gates are encoded here rather than with the `x86_64` crate's `InterruptDescriptorTable`,
//! whose typed handlers need the unstable `x86-interrupt` ABI: this crate's handlers are the
//! assembly stubs of `cpu::vectors`, which save every register themselves. LIDT and the
//! table pointer come from the crate.
//!
//! Every vector has a gate (an unexpected vector gets a report rather than a triple
//! fault); #DF, NMI and #MC switch to their IST stacks.

use core::cell::UnsafeCell;

use super::tss::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};

/// One 16-byte 64-bit interrupt gate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Gate>() == 16);

impl Gate {
    const ABSENT: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present, DPL 0, 64-bit interrupt gate (interrupts stay off in the handler).
    pub const fn interrupt(handler: u64, selector: u16, ist: u8) -> Self {
        Gate {
            offset_low: handler as u16,
            selector,
            ist: ist & 0x7,
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }

    /// The handler address.
    pub const fn handler(&self) -> u64 {
        self.offset_low as u64
            | ((self.offset_mid as u64) << 16)
            | ((self.offset_high as u64) << 32)
    }

    /// The IST slot (0 = none).
    pub const fn ist(&self) -> u8 {
        self.ist
    }
}

/// The IST slot each vector uses.
pub const fn ist_for_vector(vector: u8) -> u8 {
    match vector {
        2 => IST_NMI,
        8 => IST_DOUBLE_FAULT,
        18 => IST_MACHINE_CHECK,
        _ => 0,
    }
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: written once by `load` on the boot CPU before `lidt`, read-only afterwards.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::ABSENT; 256]));

#[cfg(target_os = "none")]
extern "C" {
    static bare_vector_table: [u64; 256];
}

/// Fills the IDT from the stub table and loads it.
///
/// # Safety
/// Call once, on the boot CPU, after the GDT (for `KERNEL_CS`) and the TSS (for the IST
/// stacks) are loaded.
#[cfg(target_os = "none")]
pub unsafe fn load() {
    use super::gdt::KERNEL_CS;
    use x86_64::structures::DescriptorTablePointer;
    use x86_64::VirtAddr;
    // SAFETY: nothing reads the IDT before `lidt` below (caller: once, at boot), and the
    // stub table is a read-only array of 256 addresses defined in cpu/vectors.rs.
    unsafe {
        let idt = &mut *IDT.0.get();
        for (v, gate) in idt.iter_mut().enumerate() {
            let handler = bare_vector_table[v];
            *gate = Gate::interrupt(handler, KERNEL_CS, ist_for_vector(v as u8));
        }
    }
    let idtr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the IDT is fully initialised with gates to valid handlers.
    unsafe { x86_64::instructions::tables::lidt(&idtr) };
}

/// Points the gate of `vector` at `handler` (an interrupt gate, kernel code, no IST).
///
/// # Safety
/// After [`load`], before any CPU can take `vector`; `handler` is an interrupt handler
/// that ends with IRETQ.
#[cfg(target_os = "none")]
pub unsafe fn set_gate(vector: u8, handler: u64) {
    // SAFETY: the caller ensures no CPU takes `vector` while its gate is written.
    unsafe { (*IDT.0.get())[vector as usize] = Gate::interrupt(handler, super::gdt::KERNEL_CS, 0) };
}

/// Loads the IDT the boot CPU filled (on an AP, `cpu::smp`).
///
/// # Safety
/// After [`load`] ran on the boot CPU.
#[cfg(target_os = "none")]
pub unsafe fn reload() {
    use x86_64::structures::DescriptorTablePointer;
    use x86_64::VirtAddr;
    let idtr = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: `load` filled every gate and the IDT is never written again.
    unsafe { x86_64::instructions::tables::lidt(&idtr) };
}

/// A copy of the gate for `vector`.
pub fn gate(vector: u8) -> Gate {
    // SAFETY: after `load` the IDT is never written again; before it, it is all-absent.
    unsafe { (*IDT.0.get())[vector as usize] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_round_trips_the_handler_address() {
        let g = Gate::interrupt(0xffff_8000_dead_beef, 0x08, 1);
        assert_eq!(g.handler(), 0xffff_8000_dead_beef);
        assert_eq!(g.ist(), 1);
        assert_eq!(g.type_attr, 0x8e);
        assert_eq!(g.selector, 0x08);
    }

    #[test]
    fn only_df_nmi_mc_use_ist() {
        assert_eq!(ist_for_vector(8), IST_DOUBLE_FAULT);
        assert_eq!(ist_for_vector(2), IST_NMI);
        assert_eq!(ist_for_vector(18), IST_MACHINE_CHECK);
        assert_eq!(ist_for_vector(14), 0);
        assert_eq!(ist_for_vector(13), 0);
    }
}
