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
    let mut t = tss::Tss::new();
    t.ist[usize::from(tss::IST_DOUBLE_FAULT - 1)] = Stack::DoubleFault.top();
    t.ist[usize::from(tss::IST_NMI - 1)] = Stack::Nmi.top();
    t.ist[usize::from(tss::IST_MACHINE_CHECK - 1)] = Stack::MachineCheck.top();
    // SAFETY: boot CPU, interrupts off, called once from kernel_main before anything
    // else uses the TSS, GDT or IDT; the TSS is a static that lives forever.
    unsafe {
        tss::TSS.set(t);
        gdt::load(tss::TSS.addr());
        idt::load();
    }
}
