//! Exception dispatch and reports.
//!
//! Every vector lands in [`vigil_exception_dispatch`] with a [`TrapFrame`]. Four outcomes:
//!
//! 0. A #VC (vector 29, SNP only) goes to the handler the SNP boot installed
//!    ([`set_vc_handler`], `snp::vc`), which answers it or ends Vigil with a reason;
//!    without one (no SNP) a #VC is unexpected like any other vector.
//! 1. An *expected* fault: a caller armed [`catch_fault`] for this vector; the fault is
//!    recorded and execution resumes where `catch_fault` returns (the in-kernel tests use
//!    this to prove that faults are caught; later, the monitor may use it to probe memory).
//! 2. An NMI: reported and resumed (an NMI is not an error of the interrupted code).
//! 3. Anything else: a report (vector and name, error code decoded for #PF, RIP, CS,
//!    RFLAGS, RSP, SS, CR0, CR2, CR3, CR4, all general registers, and which stack's
//!    guard page CR2 hit, if any) on the serial port, then exit with
//!    [`ExitCode::Fatal`]. A #DF may first go to a hook installed by the test runner.
//!
//! Attack reasoning: an exception is never "handled" by retrying, skipping the faulting
//! instruction or returning to the interrupted code unless a caller explicitly armed a
//! recovery point for that vector; an unexpected exception means Vigil's own state may be
//! inconsistent, so it stops. The host can inject interrupts and NMIs at will: an NMI
//! resumes (it carries no data), any other unexpected vector ends the VM (availability is
//! not promised, integrity is).

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::instr::{read_cr0, read_cr2, read_cr3, read_cr4};
use crate::console::emergency;
use crate::exit::{exit, ExitCode};
use crate::mm::layout::guard_page_of;

/// The registers saved by `vigil_exception_common`, then the CPU's frame.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// Pushed by the stub.
    pub vector: u64,
    /// Pushed by the CPU, or 0 by the stub.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);

/// Vector numbers used by name.
pub mod vector {
    /// Breakpoint.
    pub const BP: u8 = 3;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Double fault.
    pub const DF: u8 = 8;
    /// General protection.
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
    /// NMI.
    pub const NMI: u8 = 2;
    /// VMM communication exception (SEV-ES/SNP).
    pub const VC: u8 = 29;
}

/// The mnemonic and name of an exception vector.
pub const fn exception_name(v: u64) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        15 | 22..=27 | 31 => "reserved",
        _ => "external interrupt",
    }
}

/// A fault caught by [`catch_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaughtFault {
    /// Vector.
    pub vector: u8,
    /// Error code (0 for vectors without one).
    pub error_code: u64,
    /// RIP of the faulting instruction (for traps such as #BP: the next one).
    pub rip: u64,
    /// CR2 at the time of the fault (meaningful for #PF).
    pub cr2: u64,
}

/// The callee-saved registers and stack pointer `vigil_catch_fault` saves.
#[repr(C)]
struct CatchBuf {
    regs: [u64; 7],
}

extern "C" {
    fn vigil_catch_fault(f: extern "C" fn(usize), arg: usize, buf: *mut CatchBuf) -> u64;
    fn vigil_catch_landing();
}

const NOT_ARMED: usize = usize::MAX;
static ARMED_VECTOR: AtomicUsize = AtomicUsize::new(NOT_ARMED);
static ARMED_BUF: AtomicU64 = AtomicU64::new(0);
static CAUGHT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Runs `f(arg)` with a recovery point armed for `vector`. Returns `Some(fault)` if `f`
/// raised that exception (execution resumes here, as if `f` had returned), `None` if
/// `f` returned normally. Any other exception is unexpected and fatal as usual.
///
/// # Safety
/// On a fault, the frames of `f` and its callees are abandoned without unwinding (like
/// `longjmp`): they must own nothing with a destructor and hold no lock at the point of
/// the fault. Not re-entrant: `f` must not call `catch_fault`.
pub unsafe fn catch_fault(vector: u8, f: extern "C" fn(usize), arg: usize) -> Option<CaughtFault> {
    let mut buf = CatchBuf { regs: [0; 7] };
    ARMED_BUF.store(&mut buf as *mut CatchBuf as u64, Ordering::SeqCst);
    ARMED_VECTOR.store(vector as usize, Ordering::SeqCst);
    // SAFETY: `vigil_catch_fault` follows the C ABI: it saves the callee-saved registers
    // in `buf` (which outlives the call), calls `f(arg)`, and returns either normally or,
    // through the dispatcher, from `vigil_catch_landing` with the same registers and
    // stack pointer restored. Frames abandoned on a fault own nothing (caller).
    let faulted = unsafe { vigil_catch_fault(f, arg, &mut buf) };
    ARMED_VECTOR.store(NOT_ARMED, Ordering::SeqCst);
    if faulted == 0 {
        return None;
    }
    Some(CaughtFault {
        vector: CAUGHT[0].load(Ordering::SeqCst) as u8,
        error_code: CAUGHT[1].load(Ordering::SeqCst),
        rip: CAUGHT[2].load(Ordering::SeqCst),
        cr2: CAUGHT[3].load(Ordering::SeqCst),
    })
}

/// A hook the #DF handler calls instead of the plain fatal exit (set by the test runner
/// for the stack-overflow test, which ends its boot in the #DF handler).
static DOUBLE_FAULT_HOOK: spin::Once<fn(&TrapFrame, u64) -> !> = spin::Once::new();

/// Installs the #DF hook (first call wins).
pub fn set_double_fault_hook(hook: fn(&TrapFrame, u64) -> !) {
    DOUBLE_FAULT_HOOK.call_once(|| hook);
}

/// The #VC handler, installed once by the SNP boot (first call wins).
static VC_HANDLER: spin::Once<fn(&mut TrapFrame)> = spin::Once::new();

/// Installs the #VC handler (SNP only; first call wins).
pub fn set_vc_handler(handler: fn(&mut TrapFrame)) {
    VC_HANDLER.call_once(|| handler);
}

/// The Rust side of every interrupt stub.
#[no_mangle]
pub extern "C" fn vigil_exception_dispatch(frame: &mut TrapFrame) {
    if frame.vector == u64::from(vector::VC) {
        if let Some(handler) = VC_HANDLER.get() {
            handler(frame);
            return;
        }
    }
    let cr2 = read_cr2();
    if frame.vector as usize == ARMED_VECTOR.load(Ordering::SeqCst) {
        ARMED_VECTOR.store(NOT_ARMED, Ordering::SeqCst);
        CAUGHT[0].store(frame.vector, Ordering::SeqCst);
        CAUGHT[1].store(frame.error_code, Ordering::SeqCst);
        CAUGHT[2].store(frame.rip, Ordering::SeqCst);
        CAUGHT[3].store(cr2, Ordering::SeqCst);
        let buf = ARMED_BUF.load(Ordering::SeqCst);
        frame.rdi = buf;
        // The saved stack pointer (regs[6]) points at the return address into
        // `catch_fault`; the landing pad restores the other saved registers.
        // SAFETY: `buf` points at the live CatchBuf in `catch_fault`'s frame, which is
        // below us on this stack and still valid (the fault happened inside the call).
        frame.rsp = unsafe { (*(buf as *const CatchBuf)).regs[6] };
        frame.rip = vigil_catch_landing as *const () as u64;
        return;
    }
    if frame.vector == u64::from(vector::NMI) {
        let _ = writeln!(
            emergency(),
            "vigil: NMI at RIP {:#018x}, resuming",
            frame.rip
        );
        return;
    }
    report(frame, cr2);
    if frame.vector == u64::from(vector::DF) {
        if let Some(hook) = DOUBLE_FAULT_HOOK.get() {
            hook(frame, cr2);
        }
    }
    exit(ExitCode::Fatal);
}

/// Writes the exception report for `frame` to the serial port.
pub fn report(frame: &TrapFrame, cr2: u64) {
    let mut w = emergency();
    let v = frame.vector;
    let _ = writeln!(
        w,
        "\n*** EXCEPTION: vector {} ({}) ***",
        v,
        exception_name(v)
    );
    let _ = writeln!(
        w,
        "error code: {:#x}{}",
        frame.error_code,
        decode_error(v, frame.error_code)
    );
    let _ = writeln!(
        w,
        "RIP {:#018x}  CS {:#06x}  RFLAGS {:#018x}",
        frame.rip, frame.cs, frame.rflags
    );
    let _ = writeln!(w, "RSP {:#018x}  SS {:#06x}", frame.rsp, frame.ss);
    let _ = writeln!(
        w,
        "CR0 {:#018x}  CR2 {:#018x}  CR3 {:#018x}  CR4 {:#018x}",
        read_cr0(),
        cr2,
        read_cr3(),
        read_cr4()
    );
    let regs = [
        ("RAX", frame.rax),
        ("RBX", frame.rbx),
        ("RCX", frame.rcx),
        ("RDX", frame.rdx),
        ("RSI", frame.rsi),
        ("RDI", frame.rdi),
        ("RBP", frame.rbp),
        ("R8 ", frame.r8),
        ("R9 ", frame.r9),
        ("R10", frame.r10),
        ("R11", frame.r11),
        ("R12", frame.r12),
        ("R13", frame.r13),
        ("R14", frame.r14),
        ("R15", frame.r15),
    ];
    for row in regs.chunks(3) {
        for (name, val) in row {
            let _ = write!(w, "{name} {val:#018x}  ");
        }
        let _ = writeln!(w);
    }
    if v == u64::from(vector::PF) || v == u64::from(vector::DF) {
        if let Some(stack) = guard_page_of(cr2) {
            let _ = writeln!(
                w,
                "CR2 is in the guard page of the {}: stack overflow",
                stack.name()
            );
        }
    }
}

struct PfError(u64);

impl core::fmt::Display for PfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        write!(
            f,
            " ({}, {}, {}{}{})",
            if e & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if e & 2 != 0 { "write" } else { "read" },
            if e & 4 != 0 { "user" } else { "supervisor" },
            if e & 8 != 0 { ", reserved bit set" } else { "" },
            if e & 16 != 0 {
                ", instruction fetch"
            } else {
                ""
            },
        )
    }
}

fn decode_error(vector: u64, code: u64) -> impl core::fmt::Display {
    struct D(u64, u64);
    impl core::fmt::Display for D {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                14 => PfError(self.1).fmt(f),
                10..=13 if self.1 != 0 => write!(
                    f,
                    " (selector index {:#x}{}{})",
                    self.1 >> 3,
                    if self.1 & 2 != 0 { ", IDT" } else { "" },
                    if self.1 & 1 != 0 { ", external" } else { "" }
                ),
                _ => Ok(()),
            }
        }
    }
    D(vector, code)
}
