//! Small safe or narrowly unsafe wrappers around privileged instructions.
//!
//! Each wrapper holds one instruction. Reads that cannot break memory safety are safe
//! functions; writes that change the address space or descriptor tables are `unsafe` and
//! state what the caller must guarantee.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// Port writes cannot corrupt Vigil's memory (no DMA-capable device is programmed here),
/// so this is safe; the devices written (COM1, isa-debug-exit) are named at the callers.
pub fn outb(port: u16, value: u8) {
    // SAFETY: an I/O write touches no memory and does not change register state Rust
    // relies on.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: an I/O read touches no memory.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Executes CPUID for `leaf`/`subleaf`, returning (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (reading an absent MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; RDMSR only reads.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must not break the invariants Rust code relies on
/// (e.g. clearing EFER.LME or NXE).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// Reads CR0.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Reads CR3.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Writes CR3 (switches the address space and flushes non-global TLB entries).
///
/// # Safety
/// `pml4` must be the physical address of a valid PML4 that maps all code, data and the
/// current stack at the addresses they are used at.
pub unsafe fn write_cr3(pml4: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) }
}

/// Writes CR4.
///
/// # Safety
/// The new value must keep PAE set and must not enable features the code cannot handle.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Invalidates the TLB entry for one page.
pub fn invlpg(addr: u64) {
    // SAFETY: INVLPG only drops a cached translation; the next access re-walks the tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

/// VMGEXIT (`rep vmmcall`): hands control to the host under SEV-ES/SNP, which reads
/// the GHCB MSR (or the GHCB it names) for the request (#56421, VMGEXIT).
/// Callers run it only on an SEV-ES/SNP guest (`platform::detect::choose`); elsewhere
/// it is VMMCALL, which the hypervisor or #UD answers.
pub fn vmgexit() {
    // SAFETY: VMGEXIT touches no memory of Vigil's; the host may change only what the
    // GHCB protocol lets it change (register state is preserved by the hardware).
    unsafe { asm!("rep vmmcall", options(nostack)) }
}

/// Halts until the next interrupt (with interrupts off: forever, bar NMI/SMI).
pub fn hlt() {
    // SAFETY: HLT has no memory effect.
    unsafe { asm!("hlt", options(nomem, nostack, preserves_flags)) }
}
