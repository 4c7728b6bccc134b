//! CPU set-up: the GDT with a TSS ([`gdt`], [`tss`]), the IDT ([`idt`]) with 256 stubs
//! that report every exception and end the run ([`exceptions`]); the TSC's frequency
//! ([`tsc`]); starting a second CPU ([`smp`]).

#[cfg(target_os = "none")]
pub mod exceptions;
pub mod gdt;
pub mod idt;
pub mod smp;
pub mod tsc;
pub mod tss;
#[cfg(target_os = "none")]
mod vectors;

/// Loads the GDT, the TSS (with the IST stacks) and the IDT. Call once, first thing
/// after the serial port, so that every later fault gets a report.
///
/// # Safety
/// Boot CPU only, interrupts off, called once, before anything else uses the TSS, GDT
/// or IDT.
#[cfg(target_os = "none")]
pub unsafe fn init() {
    // SAFETY: forwarded to the caller (once, boot CPU, before any reader); the TSS is a
    // static that lives forever.
    unsafe {
        tss::TSS.init();
        gdt::load(tss::TSS.addr());
        idt::load();
    }
}
