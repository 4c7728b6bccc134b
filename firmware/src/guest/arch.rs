//! The instructions the test guest needs, each in one small function: port I/O, WRMSR,
//! RDTSC, RDRAND, HLT, the VMGEXIT of an SVSM call, descriptor tables, and a probe that
//! touches memory and reports the fault instead of dying. The architectural ones (ports,
//! MSRs, control registers, HLT, LGDT/LIDT and descriptor encodings) come from the
//! `x86_64` crate; VMGEXIT, the probes and RDRAND (whose `x86_64` wrapper runs CPUID,
//! an exit to Vigil) are written here.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::registers::model_specific::Msr;
use x86_64::structures::gdt::DescriptorFlags;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use svsm_abi::calling_area::SvsmRegs;
use vigil_firmware::{ghcb_run_vmpl, Transport, MSR_GHCB};

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O touches no memory.
    unsafe { Port::<u8>::new(port).write(v) }
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: port I/O touches no memory.
    unsafe { Port::<u32>::new(port).write(v) }
}

pub fn inb(port: u16) -> u8 {
    // SAFETY: port I/O touches no memory.
    unsafe { Port::<u8>::new(port).read() }
}

pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the only MSR written is the GHCB MSR, which changes no state this program
    // relies on; Vigil virtualises it.
    unsafe { Msr::new(msr).write(v) }
}

/// RDMSR of an MSR this guest may read (the GHCB MSR; on SNP the CPU answers it without
/// a #VC, on `emulated` Vigil does).
pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: reading the GHCB MSR has no side effect.
    unsafe { Msr::new(msr).read() }
}

/// INVLPG: drops the translation of `addr` (a 2 MiB one whole).
pub fn invlpg(addr: u64) {
    x86_64::instructions::tlb::flush(VirtAddr::new(addr));
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effect.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn rdrand() -> u64 {
    let mut v: u64 = 0;
    for _ in 0..16 {
        let ok: u8;
        // SAFETY: RDRAND writes only its output and CF.
        unsafe {
            asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
        };
        if ok != 0 {
            return v;
        }
    }
    v ^ rdtsc()
}

/// HLT: Vigil intercepts it (a yield to the other vCPU).
pub fn hlt() {
    x86_64::instructions::hlt();
}

pub fn cr0() -> u64 {
    Cr0::read_raw()
}
pub fn cr3() -> u64 {
    let (frame, low) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(low)
}
pub fn cr4() -> u64 {
    Cr4::read_raw()
}

/// Volatile byte/word access to guest memory by address (the guest is identity mapped).
pub fn write_bytes(addr: u64, b: &[u8]) {
    for (i, x) in b.iter().enumerate() {
        // SAFETY: callers pass pages this guest owns (validated, mapped by the identity
        // tables) and that hold no Rust object; accesses are volatile.
        unsafe { core::ptr::write_volatile((addr + i as u64) as *mut u8, *x) }
    }
}
pub fn read_bytes(addr: u64, b: &mut [u8]) {
    for (i, x) in b.iter_mut().enumerate() {
        // SAFETY: as for `write_bytes`.
        *x = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
    }
}

/// The SVSM call: `call_pending = 1` in the calling area, GHCB MSR = "run VMPL 0",
/// VMGEXIT (`rep vmmcall`), exactly the SNP sequence.
pub struct Vmgexit;

impl Transport for Vmgexit {
    fn call(&mut self, caa: u64, regs: SvsmRegs) -> SvsmRegs {
        write_bytes(caa, &[1]);
        wrmsr(MSR_GHCB, ghcb_run_vmpl(0));
        vmgexit(regs)
    }
}

/// VMGEXIT with no register arguments: a GHCB MSR protocol request or a GHCB-page exit
/// (the caller has written the GHCB MSR).
pub fn vmgexit_bare() {
    // SAFETY: VMGEXIT exits to the host (or Vigil), which answers in the GHCB MSR or the
    // GHCB page, both read by the caller; no register is changed (the CPU restores the
    // guest's state from its VMSA).
    unsafe { asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack)) }
}

/// Only the VMGEXIT (the caller has set `call_pending` and the GHCB MSR): the benchmark
/// times this.
pub fn vmgexit(regs: SvsmRegs) -> SvsmRegs {
    let mut o = regs;
    // SAFETY: VMGEXIT exits to Vigil, which writes only RAX/RCX/RDX/R8/R9 (declared) and
    // this guest's memory the call names.
    unsafe {
        asm!(".byte 0xf3, 0x0f, 0x01, 0xd9",
            inout("rax") o.rax, inout("rcx") o.rcx, inout("rdx") o.rdx,
            inout("r8") o.r8, inout("r9") o.r9, options(nostack))
    }
    o
}

// ---------------------------------------------------------------------------------------
// Descriptor tables and faults.

/// The last fault: vector, error code, CR2.
pub static FAULT_VECTOR: AtomicU64 = AtomicU64::new(0);
pub static FAULT_ERROR: AtomicU64 = AtomicU64::new(0);
pub static FAULT_CR2: AtomicU64 = AtomicU64::new(0);
/// Where a fault resumes (0 = a fault is fatal).
#[no_mangle]
pub static GUEST_RECOVER: AtomicU64 = AtomicU64::new(0);

#[repr(C, align(16))]
struct Gdt([u64; 3]);
static GDT: Gdt = Gdt([
    0,
    DescriptorFlags::KERNEL_CODE64.bits(),
    DescriptorFlags::KERNEL_DATA.bits(),
]);

#[repr(C, align(16))]
struct Idt([AtomicU64; 64]);
static IDT: Idt = Idt([const { AtomicU64::new(0) }; 64]);

extern "C" {
    fn guest_exc_6();
    fn guest_exc_13();
    fn guest_exc_14();
    fn guest_vc_entry();
}

/// Loads the GDT (same selectors as the boot state) and an IDT for #UD, #GP, #PF and
/// #VC (vector 29, `guest::snp`; only SNP raises it).
pub fn init_tables() {
    for (v, h) in [
        (6usize, guest_exc_6 as *const () as u64),
        (13, guest_exc_13 as *const () as u64),
        (14, guest_exc_14 as *const () as u64),
        (29, guest_vc_entry as *const () as u64),
    ] {
        let lo = (h & 0xffff) | (0x08 << 16) | (0x8e00u64 << 32) | ((h >> 16) & 0xffff) << 48;
        IDT.0[v * 2].store(lo, Ordering::Relaxed);
        IDT.0[v * 2 + 1].store(h >> 32, Ordering::Relaxed);
    }
    let g = DescriptorTablePointer {
        limit: 23,
        base: VirtAddr::new(&GDT as *const Gdt as u64),
    };
    let i = DescriptorTablePointer {
        limit: (64 * 8 - 1) as u16,
        base: VirtAddr::new(&IDT as *const Idt as u64),
    };
    // SAFETY: both tables are statics that live forever; the GDT's code selector 0x08
    // and data selector 0x10 match the segments the guest already runs with.
    unsafe {
        x86_64::instructions::tables::lgdt(&g);
        x86_64::instructions::tables::lidt(&i);
    }
}

/// A fault seen by [`probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u64,
    pub error: u64,
    pub cr2: u64,
}

/// Reads (or writes 0x5a to) the byte at `addr`; returns the fault if it faulted.
pub fn probe(addr: u64, write: bool) -> Option<Fault> {
    FAULT_VECTOR.store(u64::MAX, Ordering::SeqCst);
    let faulted: u64;
    // SAFETY: the access may fault; the handler resumes at label 2 with RECOVER set, and
    // rax = 1. The byte written (if any) lands in memory the test wants refused; the
    // refusal is the point. No Rust object lives at `addr`.
    unsafe {
        if write {
            asm!(
                "lea rax, [rip + 2f]",
                "mov [rip + GUEST_RECOVER], rax",
                "xor eax, eax",
                "mov byte ptr [{a}], 0x5a",
                "2:",
                "mov qword ptr [rip + GUEST_RECOVER], 0",
                a = in(reg) addr, out("rax") faulted, options(nostack)
            );
        } else {
            asm!(
                "lea rax, [rip + 2f]",
                "mov [rip + GUEST_RECOVER], rax",
                "xor eax, eax",
                "mov cl, byte ptr [{a}]",
                "2:",
                "mov qword ptr [rip + GUEST_RECOVER], 0",
                a = in(reg) addr, out("rax") faulted, out("cl") _, options(nostack)
            );
        }
    }
    (faulted != 0).then(|| Fault {
        vector: FAULT_VECTOR.load(Ordering::SeqCst),
        error: FAULT_ERROR.load(Ordering::SeqCst),
        cr2: FAULT_CR2.load(Ordering::SeqCst),
    })
}

/// WRMSR that reports the fault (#GP) instead of dying.
pub fn probe_wrmsr(msr: u32, v: u64) -> Option<Fault> {
    FAULT_VECTOR.store(u64::MAX, Ordering::SeqCst);
    let faulted: u64;
    // SAFETY: the WRMSR is expected to fault (Vigil refuses it); if it does not, the
    // MSR written is one this guest does not rely on. The handler resumes at label 2.
    unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov [rip + GUEST_RECOVER], rax",
            "mov eax, {lo:e}",
            "wrmsr",
            "xor eax, eax",
            "2:",
            "mov qword ptr [rip + GUEST_RECOVER], 0",
            lo = in(reg) v as u32,
            in("ecx") msr, in("edx") (v >> 32) as u32,
            out("rax") faulted, options(nostack)
        );
    }
    (faulted != 0).then(|| Fault {
        vector: FAULT_VECTOR.load(Ordering::SeqCst),
        error: FAULT_ERROR.load(Ordering::SeqCst),
        cr2: FAULT_CR2.load(Ordering::SeqCst),
    })
}

/// RDMSR that reports the fault (#GP) instead of dying.
pub fn probe_rdmsr(msr: u32) -> Result<u64, Fault> {
    FAULT_VECTOR.store(u64::MAX, Ordering::SeqCst);
    let faulted: u64;
    let (lo, hi): (u64, u64);
    // SAFETY: RDMSR reads only; if it faults (#GP for an MSR Vigil does not answer)
    // the handler resumes at label 2 with RAX = 1.
    unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "mov [rip + GUEST_RECOVER], rax",
            "rdmsr",
            "mov {lo}, rax",
            "xor eax, eax",
            "jmp 3f",
            "2:",
            "xor edx, edx",
            "mov {lo}, 0",
            "3:",
            "mov qword ptr [rip + GUEST_RECOVER], 0",
            lo = out(reg) lo,
            in("ecx") msr,
            out("rax") faulted, out("rdx") hi, options(nostack)
        );
    }
    if faulted != 0 {
        return Err(Fault {
            vector: FAULT_VECTOR.load(Ordering::SeqCst),
            error: FAULT_ERROR.load(Ordering::SeqCst),
            cr2: FAULT_CR2.load(Ordering::SeqCst),
        });
    }
    Ok((hi << 32) | (lo & 0xffff_ffff))
}

/// CPUID (exits to Vigil, answered by its policy).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

#[no_mangle]
extern "C" fn guest_unexpected_fault(vector: u64, error: u64, rip: u64) -> ! {
    crate::guest::fatal(format_args!(
        "unexpected exception {vector} (error {error:#x}) at RIP {rip:#x}, CR2 {:#x}",
        FAULT_CR2.load(Ordering::SeqCst)
    ))
}

// Exception stubs. Stack on entry: [error code,] RIP, CS, RFLAGS, RSP, SS. A fault with
// a recovery point armed returns there with RAX = 1; any other is fatal.
global_asm!(
    ".global guest_exc_6, guest_exc_13, guest_exc_14",
    "guest_exc_6:",
    "push 0",
    "push rax",
    "mov rax, 6",
    "jmp 3f",
    "guest_exc_13:",
    "push rax",
    "mov rax, 13",
    "jmp 3f",
    "guest_exc_14:",
    "push rax",
    "mov rax, 14",
    "3:",
    "mov [rip + {vec}], rax",
    "mov rax, [rsp + 8]",
    "mov [rip + {err}], rax",
    "mov rax, cr2",
    "mov [rip + {cr2}], rax",
    "mov rax, [rip + GUEST_RECOVER]",
    "test rax, rax",
    "jz 4f",
    "mov [rsp + 16], rax",
    "mov qword ptr [rip + GUEST_RECOVER], 0",
    "pop rax",
    "mov rax, 1",
    "add rsp, 8",
    "iretq",
    "4:",
    "mov rdi, [rip + {vec}]",
    "mov rsi, [rsp + 8]",
    "mov rdx, [rsp + 16]",
    "and rsp, -16",
    "call guest_unexpected_fault",
    "ud2",
    vec = sym FAULT_VECTOR,
    err = sym FAULT_ERROR,
    cr2 = sym FAULT_CR2,
);
