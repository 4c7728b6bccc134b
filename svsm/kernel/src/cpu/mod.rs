//! CPU set-up: descriptor tables, exception handling, instruction wrappers.

#[cfg(target_os = "none")]
pub mod exceptions;
pub mod gdt;
pub mod idt;
pub mod instr;
pub mod tss;
#[cfg(target_os = "none")]
mod vectors;

/// Loads the GDT, the TSS (with the IST stacks) and the IDT. Call once, first thing
/// after the console, so that every later fault gets a report.
#[cfg(target_os = "none")]
pub fn init() {
    use crate::mm::layout::Stack;
    use x86_64::VirtAddr;
    let mut t = tss::Tss::new();
    for (slot, stack) in [
        (tss::IST_DOUBLE_FAULT, Stack::DoubleFault),
        (tss::IST_NMI, Stack::Nmi),
        (tss::IST_MACHINE_CHECK, Stack::MachineCheck),
        (tss::IST_VC, Stack::Vc),
    ] {
        t.interrupt_stack_table[usize::from(slot - 1)] = VirtAddr::new(stack.top());
    }
    // SAFETY: boot CPU, interrupts off, called once from kernel_main before anything
    // else uses the TSS, GDT or IDT; the TSS is a static that lives forever.
    unsafe {
        tss::TSS.set(t);
        gdt::load(tss::TSS.addr());
        idt::load();
    }
}
