//! Small safe or narrowly unsafe wrappers around privileged instructions.
//!
//! The architectural ones (port I/O, MSRs, control registers, TLB, HLT) come from the
//! `x86_64` crate; what it lacks is written here by hand: CPUID (from `core::arch`) and
//! the SEV-SNP instructions (VMGEXIT, PVALIDATE, RMPADJUST, RMPQUERY; APM vol. 3, each
//! under its own name; opcodes F3 0F 01 D9, F2 0F 01 FF, F3 0F 01 FE, F3 0F 01 FD). Reads that cannot break memory safety are safe functions; writes that
//! change the address space or descriptor tables are `unsafe` and state what the caller
//! must guarantee. The functions keep plain `u64`/`u16` signatures so that their callers
//! (fault reports, page-table loading, the emulated platform) stay as they were.

use core::arch::asm;

use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

/// Writes a byte to an I/O port.
///
/// Port writes cannot corrupt Vigil's memory (no DMA-capable device is programmed here),
/// so this is safe; the devices written (COM1, isa-debug-exit) are named at the callers.
pub fn outb(port: u16, value: u8) {
    // SAFETY: an I/O write touches no memory and does not change register state Rust
    // relies on.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    // SAFETY: an I/O read touches no memory (the devices read are named at the callers).
    unsafe { Port::<u8>::new(port).read() }
}

/// Executes CPUID for `leaf`/`subleaf`, returning (eax, ebx, ecx, edx). Not wrapped by
/// the `x86_64` crate; under SEV-ES/SNP it raises #VC, so only the native platform runs
/// it (`platform::native`).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (reading an absent MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists; RDMSR only reads.
    unsafe { Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must not break the invariants Rust code relies on
/// (e.g. clearing EFER.LME or NXE).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { Msr::new(msr).write(value) }
}

/// Reads CR0.
pub fn read_cr0() -> u64 {
    Cr0::read_raw()
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    Cr2::read_raw()
}

/// Reads CR3 (the PML4 address and the low flag/PCID bits, as the register holds them).
pub fn read_cr3() -> u64 {
    let (frame, low) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(low)
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    Cr4::read_raw()
}

/// Writes CR3 (switches the address space and flushes non-global TLB entries).
///
/// # Safety
/// `pml4` must be the physical address of a valid PML4 that maps all code, data and the
/// current stack at the addresses they are used at.
pub unsafe fn write_cr3(pml4: u64) {
    let frame = PhysFrame::containing_address(PhysAddr::new(pml4 & !0xfff));
    // SAFETY: forwarded to the caller; the low 12 bits (PWT/PCD/PCID) are kept.
    unsafe { Cr3::write_raw(frame, (pml4 & 0xfff) as u16) }
}

/// Writes CR4.
///
/// # Safety
/// The new value must keep PAE set and must not enable features the code cannot handle.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { Cr4::write_raw(v) }
}

/// Invalidates the TLB entry for one page.
pub fn invlpg(addr: u64) {
    x86_64::instructions::tlb::flush(VirtAddr::new_truncate(addr));
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

/// What PVALIDATE, RMPADJUST and RMPQUERY report: EAX (one of
/// `svsm_abi::rmp::ret`), and for PVALIDATE whether RFLAGS.CF was set (the RMP entry's
/// validated bit already had the requested value: nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpOutcome {
    /// EAX after the instruction.
    pub ret: u32,
    /// RFLAGS.CF after the instruction (PVALIDATE: "not updated").
    pub unchanged: bool,
}

/// PVALIDATE (APM vol. 3, "PVALIDATE"): sets (`validate`) or clears the validated bit of
/// the RMP entry of the page at virtual address `vaddr` (4 KiB, or 2 MiB if `size_2m`).
/// RAX = address, ECX = page size, EDX = validate; EAX returns the result, CF = 1 means
/// the bit already had that value.
///
/// # Safety
/// Only on an SNP guest (elsewhere the opcode raises #UD). `vaddr` must map, with the
/// C-bit, the page meant: validating a page makes the host's earlier contents of it
/// private data of Vigil's (the caller zeroes it before use); rescinding makes every
/// later private access to it raise #VC, so no Rust reference to the page may be used
/// after a rescind.
pub unsafe fn pvalidate(vaddr: u64, size_2m: bool, validate: bool) -> RmpOutcome {
    let ret: u64;
    let cf: u8;
    // SAFETY: forwarded to the caller; the instruction reads RAX/RCX/RDX, writes RAX and
    // RFLAGS, and touches no memory through Rust's view of it.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xff",
            "setc {cf}",
            cf = out(reg_byte) cf,
            inout("rax") vaddr => ret,
            in("rcx") u64::from(size_2m),
            in("rdx") u64::from(validate),
            options(nostack)
        );
    }
    RmpOutcome {
        ret: ret as u32,
        unchanged: cf != 0,
    }
}

/// RMPADJUST (APM vol. 3, "RMPADJUST"): sets the permissions (and the VMSA bit) of a
/// less privileged VMPL for the page at `vaddr`. RAX = address, ECX = page size, RDX =
/// attributes (`svsm_abi::rmp::rmpadjust_attrs`: target VMPL 7:0, permission mask 15:8,
/// VMSA bit 16); EAX returns the result.
///
/// # Safety
/// Only on an SNP guest, at a VMPL more privileged than the target. Granting a lower VMPL
/// access to a page of Vigil's gives that VMPL Vigil's data: the caller decides from the
/// monitor's ownership records, never from a guest's word alone.
pub unsafe fn rmpadjust(vaddr: u64, size_2m: bool, attrs: u64) -> RmpOutcome {
    let ret: u64;
    // SAFETY: forwarded to the caller; no memory is touched through Rust's view of it.
    unsafe {
        asm!(
            ".byte 0xf3, 0x0f, 0x01, 0xfe",
            inout("rax") vaddr => ret,
            in("rcx") u64::from(size_2m),
            in("rdx") attrs,
            options(nostack)
        );
    }
    RmpOutcome {
        ret: ret as u32,
        unchanged: false,
    }
}

/// RMPQUERY (APM vol. 3, "RMPQUERY"): reads the permissions of VMPL `target_vmpl` for
/// the page at `vaddr`. RAX = address, RDX bits 7:0 = the VMPL asked about; returns EAX,
/// RDX (bits 7:0 the permission mask, bit 16 the VMSA bit) and RCX (the page size).
/// Changes nothing, so it is safe wherever the instruction exists; on a machine without
/// SNP the opcode raises #UD, which only the SNP backend can rule out, hence `unsafe`.
///
/// # Safety
/// Only on an SNP guest.
pub unsafe fn rmpquery(vaddr: u64, target_vmpl: u8) -> (RmpOutcome, u64, u64) {
    let ret: u64;
    let rdx: u64;
    let rcx: u64;
    // SAFETY: forwarded to the caller; RMPQUERY only reads the RMP.
    unsafe {
        asm!(
            ".byte 0xf3, 0x0f, 0x01, 0xfd",
            inout("rax") vaddr => ret,
            inout("rdx") u64::from(target_vmpl) => rdx,
            out("rcx") rcx,
            options(nostack, readonly)
        );
    }
    (
        RmpOutcome {
            ret: ret as u32,
            unchanged: false,
        },
        rdx,
        rcx,
    )
}

/// Halts until the next interrupt (with interrupts off: forever, bar NMI/SMI).
pub fn hlt() {
    x86_64::instructions::hlt();
}
