//! The #VC handler (vector 29, IST4): what Vigil does when one of its own instructions
//! needs the host under SNP (#56421, "#VC exception"; APM vol. 2 15.35.5). The #VC
//! error code is the exit code of the event (`svsm_abi::ghcb::exit`).
//!
//! The decision is pure ([`decide`]: exit code + the instruction bytes at RIP) so that
//! host tests drive every branch:
//! * CPUID (0x72, `0F A2`): answered from the CPUID page, never the host;
//! * IOIO (0x7B): non-string IN/OUT (`E4`-`E7` with an 8-bit port, `EC`-`EF` with DX,
//!   optional `66` operand-size prefix) through the GHCB IOIO exit;
//! * MSR (0x7C, `0F 32` RDMSR / `0F 30` WRMSR): through the GHCB MSR exit;
//! * anything else (another exit code, string I/O, bytes that are not the instruction
//!   the exit code names, a page that is not validated, MMIO) is refused with a named
//!   [`VcRefusal`], and Vigil ends with a GHCB termination request.
//!
//! A #VC inside the #VC handler is refused too (it would reuse the IST stack and
//! overwrite the interrupted handler's frame): the handler marks itself active, and a
//! second entry before it leaves ends Vigil with `VC_NESTED`.

use core::fmt;

use svsm_abi::ghcb::{exit, term};

use super::ghcb::Exit;

/// A decoded IN/OUT instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoInsn {
    /// The port: the immediate, or `None` for the DX forms.
    pub imm_port: Option<u16>,
    /// Operand size: 1, 2 or 4 bytes.
    pub bytes: u8,
    /// IN (true) or OUT.
    pub is_in: bool,
    /// Instruction length (RIP advance).
    pub len: u8,
}

impl IoInsn {
    /// The GHCB exit for this instruction, given DX and RAX of the interrupted code.
    pub fn exit(&self, rdx: u64, rax: u64) -> Exit {
        let port = self.imm_port.unwrap_or(rdx as u16);
        if self.is_in {
            Exit::In {
                port,
                bytes: self.bytes,
            }
        } else {
            Exit::Out {
                port,
                bytes: self.bytes,
                value: rax as u32,
            }
        }
    }

    /// RAX after an IN that read `value`: the low `bytes` bytes replaced, and for a
    /// 32-bit operand the upper half cleared (a 32-bit register write zero-extends).
    pub fn merge_in(&self, rax: u64, value: u64) -> u64 {
        match self.bytes {
            1 => (rax & !0xff) | (value & 0xff),
            2 => (rax & !0xffff) | (value & 0xffff),
            _ => value & 0xffff_ffff,
        }
    }
}

/// What the handler does for one #VC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcAction {
    /// Answer CPUID (EAX, ECX in) from the CPUID page; RIP += 2.
    Cpuid,
    /// Port I/O through the GHCB.
    Io(IoInsn),
    /// RDMSR through the GHCB; RIP += 2.
    RdMsr,
    /// WRMSR through the GHCB; RIP += 2.
    WrMsr,
}

/// Why a #VC is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcRefusal {
    /// An exit code Vigil does not handle (e.g. 0x404: a private access to a page that
    /// is not validated; 0x400: MMIO).
    UnhandledExit {
        /// The #VC error code.
        code: u64,
    },
    /// The bytes at RIP are not an instruction the exit code names (or are string I/O).
    UnexpectedInstruction {
        /// The #VC error code.
        code: u64,
        /// The first bytes at RIP.
        bytes: [u8; 4],
    },
    /// A #VC arrived while the handler was already running.
    Nested,
    /// RIP is outside Vigil's code, whose bytes the handler can trust.
    RipOutsideText {
        /// RIP of the #VC.
        rip: u64,
    },
}

impl VcRefusal {
    /// The termination reason (set 1) that ends Vigil on this refusal.
    pub const fn reason(&self) -> u64 {
        match self {
            VcRefusal::Nested => term::VC_NESTED,
            _ => term::VC_UNEXPECTED,
        }
    }
}

impl fmt::Display for VcRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VcRefusal::UnhandledExit { code } => {
                write!(f, "#VC for exit code {code:#x}, not handled")
            }
            VcRefusal::UnexpectedInstruction { code, bytes } => write!(
                f,
                "#VC {code:#x} at an instruction {bytes:02x?} that is not one it names"
            ),
            VcRefusal::Nested => write!(f, "#VC inside the #VC handler"),
            VcRefusal::RipOutsideText { rip } => {
                write!(f, "#VC at RIP {rip:#x}, outside Vigil's text")
            }
        }
    }
}

/// Decodes a non-string IN/OUT at the start of `insn`.
pub fn decode_io(insn: &[u8]) -> Option<IoInsn> {
    let (prefix, rest) = match insn.first() {
        Some(0x66) => (1u8, insn.get(1..)?),
        _ => (0, insn),
    };
    let wide = if prefix == 1 { 2 } else { 4 };
    let op = *rest.first()?;
    let (bytes, is_in, imm) = match op {
        0xe4 => (1, true, true),
        0xe5 => (wide, true, true),
        0xe6 => (1, false, true),
        0xe7 => (wide, false, true),
        0xec => (1, true, false),
        0xed => (wide, true, false),
        0xee => (1, false, false),
        0xef => (wide, false, false),
        _ => return None,
    };
    let imm_port = if imm {
        Some(u16::from(*rest.get(1)?))
    } else {
        None
    };
    Some(IoInsn {
        imm_port,
        bytes,
        is_in,
        len: prefix + 1 + u8::from(imm),
    })
}

/// Decides what to do for a #VC with error code `code` at an instruction starting with
/// `insn` (Vigil's own code: the caller checks RIP lies in Vigil's text).
pub fn decide(code: u64, insn: &[u8]) -> Result<VcAction, VcRefusal> {
    let unexpected = || {
        let mut bytes = [0u8; 4];
        for (b, i) in bytes.iter_mut().zip(insn) {
            *b = *i;
        }
        VcRefusal::UnexpectedInstruction { code, bytes }
    };
    match code {
        exit::CPUID if insn.starts_with(&[0x0f, 0xa2]) => Ok(VcAction::Cpuid),
        exit::MSR if insn.starts_with(&[0x0f, 0x32]) => Ok(VcAction::RdMsr),
        exit::MSR if insn.starts_with(&[0x0f, 0x30]) => Ok(VcAction::WrMsr),
        exit::IOIO => decode_io(insn).map(VcAction::Io).ok_or_else(unexpected),
        exit::CPUID | exit::MSR => Err(unexpected()),
        _ => Err(VcRefusal::UnhandledExit { code }),
    }
}

/// The handler itself, installed by the SNP boot (`cpu::exceptions::set_vc_handler`).
#[cfg(target_os = "none")]
pub mod handler {
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::{decide, VcAction, VcRefusal};
    use crate::cpu::exceptions::TrapFrame;
    use crate::snp::ghcb::{page, Exit};

    /// Per CPU: a #VC is being handled (each CPU has its own #VC IST stack and GHCB).
    static ACTIVE: [AtomicBool; page::MAX_CPUS] =
        [const { AtomicBool::new(false) }; page::MAX_CPUS];

    /// Answers one #VC, or ends Vigil with the reason it was refused.
    pub fn handle(frame: &mut TrapFrame) {
        // A task register Vigil never set cannot be: counted as CPU 0's.
        let active = &ACTIVE[page::current().unwrap_or(0)];
        if active.swap(true, Ordering::SeqCst) {
            refuse(VcRefusal::Nested);
        }
        let text = crate::mm::layout::image_layout().text;
        // The longest instruction decoded is 3 bytes (66 E5 ib); 4 are read for reports.
        if frame.rip < text.start || frame.rip.saturating_add(4) > text.end {
            refuse(VcRefusal::RipOutsideText { rip: frame.rip });
        }
        let mut insn = [0u8; 4];
        for (i, b) in insn.iter_mut().enumerate() {
            // SAFETY: RIP..RIP+4 lies in Vigil's text (checked above), which is mapped
            // and never written; a volatile byte read has no side effect.
            *b = unsafe { core::ptr::read_volatile((frame.rip + i as u64) as *const u8) };
        }
        match decide(frame.error_code, &insn) {
            Ok(action) => run(action, frame),
            Err(r) => refuse(r),
        }
        active.store(false, Ordering::SeqCst);
    }

    fn run(action: VcAction, frame: &mut TrapFrame) {
        match action {
            VcAction::Cpuid => {
                let (a, b, c, d) = crate::snp::cpuid_answer(frame.rax as u32, frame.rcx as u32);
                frame.rax = u64::from(a);
                frame.rbx = u64::from(b);
                frame.rcx = u64::from(c);
                frame.rdx = u64::from(d);
                frame.rip += 2;
            }
            VcAction::Io(io) => {
                let v = ghcb_call(&io.exit(frame.rdx, frame.rax));
                if io.is_in {
                    frame.rax = io.merge_in(frame.rax, v);
                }
                frame.rip += u64::from(io.len);
            }
            VcAction::RdMsr => {
                let v = ghcb_call(&Exit::RdMsr {
                    msr: frame.rcx as u32,
                });
                frame.rax = v & 0xffff_ffff;
                frame.rdx = v >> 32;
                frame.rip += 2;
            }
            VcAction::WrMsr => {
                ghcb_call(&Exit::WrMsr {
                    msr: frame.rcx as u32,
                    value: (frame.rax & 0xffff_ffff) | (frame.rdx << 32),
                });
                frame.rip += 2;
            }
        }
    }

    fn ghcb_call(e: &Exit) -> u64 {
        match page::call(e) {
            Ok(v) => v,
            Err(err) => crate::snp::fail(err.reason(), format_args!("#VC {e:?}: {err}")),
        }
    }

    fn refuse(r: VcRefusal) -> ! {
        crate::snp::fail(r.reason(), format_args!("{r}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_and_msr_exits_need_their_own_instruction() {
        assert_eq!(
            decide(exit::CPUID, &[0x0f, 0xa2, 0x90]),
            Ok(VcAction::Cpuid)
        );
        assert_eq!(decide(exit::MSR, &[0x0f, 0x32]), Ok(VcAction::RdMsr));
        assert_eq!(decide(exit::MSR, &[0x0f, 0x30]), Ok(VcAction::WrMsr));
        let e = decide(exit::CPUID, &[0x0f, 0x32, 0, 0]).unwrap_err();
        assert_eq!(
            e,
            VcRefusal::UnexpectedInstruction {
                code: exit::CPUID,
                bytes: [0x0f, 0x32, 0, 0]
            }
        );
        assert_eq!(e.reason(), term::VC_UNEXPECTED);
    }

    #[test]
    fn io_forms_decode_with_port_size_direction_and_length() {
        let io = |b: &[u8]| match decide(exit::IOIO, b) {
            Ok(VcAction::Io(i)) => i,
            other => panic!("{b:02x?}: {other:?}"),
        };
        assert_eq!(
            io(&[0xee]),
            IoInsn {
                imm_port: None,
                bytes: 1,
                is_in: false,
                len: 1
            }
        );
        assert_eq!(
            io(&[0xec]),
            IoInsn {
                imm_port: None,
                bytes: 1,
                is_in: true,
                len: 1
            }
        );
        assert_eq!(io(&[0xef]).bytes, 4);
        assert_eq!(io(&[0x66, 0xef]).bytes, 2);
        assert_eq!(io(&[0x66, 0xef]).len, 2);
        let i = io(&[0xe6, 0xf4]);
        assert_eq!(
            (i.imm_port, i.bytes, i.is_in, i.len),
            (Some(0xf4), 1, false, 2)
        );
        let i = io(&[0x66, 0xe5, 0x71]);
        assert_eq!(
            (i.imm_port, i.bytes, i.is_in, i.len),
            (Some(0x71), 2, true, 3)
        );
    }

    #[test]
    fn string_io_and_unknown_exits_are_refused() {
        // OUTSB (6E) and REP INSB (F3 6C): string I/O is never Vigil's.
        assert!(matches!(
            decide(exit::IOIO, &[0x6e]),
            Err(VcRefusal::UnexpectedInstruction { .. })
        ));
        assert!(decide(exit::IOIO, &[0xf3, 0x6c]).is_err());
        assert_eq!(
            decide(exit::NOT_VALIDATED, &[0x48, 0x8b, 0x00]),
            Err(VcRefusal::UnhandledExit {
                code: exit::NOT_VALIDATED
            })
        );
        assert_eq!(
            decide(exit::NPF, &[0x8b]),
            Err(VcRefusal::UnhandledExit { code: exit::NPF })
        );
        assert_eq!(VcRefusal::Nested.reason(), term::VC_NESTED);
        // A truncated immediate is no instruction.
        assert!(decide(exit::IOIO, &[0xe4]).is_err());
    }

    #[test]
    fn io_exits_use_dx_or_the_immediate_and_in_merges_by_size() {
        let dx_form = decode_io(&[0xee]).unwrap();
        assert_eq!(
            dx_form.exit(0x1234_03f8, 0x41),
            Exit::Out {
                port: 0x3f8,
                bytes: 1,
                value: 0x41
            }
        );
        let imm = decode_io(&[0xe4, 0x60]).unwrap();
        assert_eq!(
            imm.exit(0x3f8, 0),
            Exit::In {
                port: 0x60,
                bytes: 1
            }
        );
        assert_eq!(
            imm.merge_in(0xffff_ffff_ffff_ff00, 0x1ab),
            0xffff_ffff_ffff_ffab
        );
        let w = decode_io(&[0x66, 0xed]).unwrap();
        assert_eq!(
            w.merge_in(0xffff_ffff_ffff_0000, 0xabcd),
            0xffff_ffff_ffff_abcd
        );
        let d = decode_io(&[0xed]).unwrap();
        assert_eq!(
            d.merge_in(0xffff_ffff_0000_0000, 0x1_dead_beef),
            0xdead_beef
        );
    }
}
