//! Exception dispatch and reports.
//!
//! Every vector lands in [`bare_exception_dispatch`] with a [`TrapFrame`]. An NMI is
//! reported and resumed (it carries no data and is not an error of the interrupted
//! code); anything else gets a report on COM1 (vector and name, error code decoded for
//! #PF and the selector faults, RIP, CS, RFLAGS, RSP, SS, CR0, CR2, CR3, CR4, all general
//! registers) and ends the run through isa-debug-exit with [`FATAL_EXIT`]: an unexpected
//! exception means the program's own state may be inconsistent, so it stops rather than
//! retry or skip the instruction.

use core::fmt::Write;

use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};

use crate::console::serial::Serial;
use crate::exit::qemu_exit;

/// The isa-debug-exit value of a fatal exception (QEMU status 37, as the kernel's
/// `ExitCode::Fatal`).
pub const FATAL_EXIT: u32 = 0x12;

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

/// Vector numbers used by name.
pub mod vector {
    /// NMI.
    pub const NMI: u8 = 2;
}

/// The Rust side of every interrupt stub.
#[no_mangle]
pub extern "C" fn bare_exception_dispatch(frame: &mut TrapFrame) {
    if frame.vector == u64::from(vector::NMI) {
        let _ = writeln!(Serial, "NMI at RIP {:#018x}, resuming", frame.rip);
        return;
    }
    report(frame, Cr2::read_raw());
    qemu_exit(FATAL_EXIT);
}

fn read_cr3() -> u64 {
    let (frame, low) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(low)
}

/// Writes the exception report for `frame` to the serial port.
pub fn report(frame: &TrapFrame, cr2: u64) {
    let mut w = Serial;
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
        Cr0::read_raw(),
        cr2,
        read_cr3(),
        Cr4::read_raw()
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
