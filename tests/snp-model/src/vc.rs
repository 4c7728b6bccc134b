//! #VC: which events SNP turns into a #VC exception (vector 29) and the frame the model
//! pushes when it delivers one in software (QEMU's event injection pushes no error code
//! for vector 29, so the model delivers #VC itself; docs/snp-model.md).
//!
//! Sources: APM vol. 2 §15.35.5 ("#VC Exception"): a non-automatic exit of an SEV-ES/SNP
//! guest raises #VC with the SVM exit code as the error code; §8.9.3 and §8.9.4 (long-mode
//! interrupt gates, IST, stack switch, frame); the GHCB spec #56421 §4.1 for the exit
//! codes a #VC handler must take. This is a pure function of the guest state the model
//! read (gate, target code segment DPL, TSS stacks): the bare-metal model writes the
//! returned frame to guest memory and loads the returned registers.

use crate::exit_codes as ec;

/// The #VC vector.
pub const VC_VECTOR: u8 = 29;

/// An event SNP turns into #VC instead of a host exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// CPUID.
    Cpuid,
    /// IN/OUT/INS/OUTS.
    Ioio,
    /// RDMSR or WRMSR (one exit code; the guest decodes which).
    Msr,
    /// RDTSC.
    Rdtsc,
    /// RDTSCP.
    Rdtscp,
    /// RDPMC.
    Rdpmc,
    /// INVD.
    Invd,
    /// WBINVD.
    Wbinvd,
    /// MONITOR(X).
    Monitor,
    /// MWAIT(X).
    Mwait,
    /// VMMCALL without the REP prefix (with it, it is VMGEXIT: an automatic exit).
    Vmmcall,
    /// MOV from DR7.
    ReadDr7,
    /// MOV to DR7.
    WriteDr7,
    /// #AC (alignment check) while intercepted.
    AlignmentCheck,
    /// A nested page fault on an MMIO (reserved-bit) mapping.
    Mmio,
    /// A private access to a page whose Validated bit is 0.
    PageNotValidated,
}

/// The #VC error code (= the SVM exit code) of `e`.
pub fn exit_code(e: Event) -> u64 {
    match e {
        Event::Cpuid => ec::CPUID,
        Event::Ioio => ec::IOIO,
        Event::Msr => ec::MSR,
        Event::Rdtsc => ec::RDTSC,
        Event::Rdtscp => ec::RDTSCP,
        Event::Rdpmc => ec::RDPMC,
        Event::Invd => ec::INVD,
        Event::Wbinvd => ec::WBINVD,
        Event::Monitor => ec::MONITOR,
        Event::Mwait => ec::MWAIT,
        Event::Vmmcall => ec::VMMCALL,
        Event::ReadDr7 => ec::READ_DR7,
        Event::WriteDr7 => ec::WRITE_DR7,
        Event::AlignmentCheck => ec::EXCP_AC,
        Event::Mmio => ec::NPF,
        Event::PageNotValidated => ec::PAGE_NOT_VALIDATED,
    }
}

/// The interrupted state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// RIP of the instruction that caused the #VC (a fault: it is re-executed or
    /// skipped by the handler).
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// CS selector.
    pub cs: u16,
    /// SS selector.
    pub ss: u16,
    /// CPL.
    pub cpl: u8,
}

/// An IDT gate in long mode (16 bytes, APM vol. 2 §4.8.4 "Gate Descriptors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Handler offset.
    pub offset: u64,
    /// Target code segment selector.
    pub selector: u16,
    /// IST index (0 = none).
    pub ist: u8,
    /// Type (0xE interrupt gate, 0xF trap gate).
    pub gate_type: u8,
    /// Present.
    pub present: bool,
}

impl Gate {
    /// Decode the 16 bytes of an IDT entry.
    pub fn parse(b: &[u8; 16]) -> Gate {
        let w = |i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
        let d = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
        Gate {
            offset: w(0) | (w(6) << 16) | (d(8) << 32),
            selector: w(2) as u16,
            ist: b[4] & 7,
            gate_type: b[5] & 0xf,
            present: b[5] & 0x80 != 0,
        }
    }
}

/// The stacks in the guest's 64-bit TSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tss {
    /// RSP0..RSP2.
    pub rsp: [u64; 3],
    /// IST1..IST7.
    pub ist: [u64; 7],
}

/// What delivery does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The six quadwords pushed, lowest address first: error code, RIP, CS, RFLAGS,
    /// RSP, SS.
    pub frame: [u64; 6],
    /// RSP after the pushes (the frame's address).
    pub rsp: u64,
    /// New RIP (the handler).
    pub rip: u64,
    /// New CS.
    pub cs: u16,
    /// New SS (a null selector with RPL = new CPL after a privilege change).
    pub ss: u16,
    /// New RFLAGS.
    pub rflags: u64,
    /// New CPL.
    pub cpl: u8,
}

/// Why delivery failed (on hardware a nested fault, #DF at worst; the model stops the
/// vCPU and records it instead of guessing the guest's double-fault behaviour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The gate is not present (#NP).
    NotPresent,
    /// The gate is not a 64-bit interrupt or trap gate (#GP).
    BadType,
    /// The handler or the new stack pointer is not canonical, or the stack is null
    /// (#GP/#SS).
    NotCanonical,
    /// The target code segment is less privileged than the interrupted code (#GP).
    OuterPrivilege,
}

fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

const RF_TF: u64 = 1 << 8;
const RF_IF: u64 = 1 << 9;
const RF_NT: u64 = 1 << 14;
const RF_RF: u64 = 1 << 16;
const RF_VM: u64 = 1 << 17;

/// Deliver #VC with `code` through `gate` (whose code segment has DPL `cs_dpl`).
pub fn deliver(
    s: &State,
    gate: &Gate,
    cs_dpl: u8,
    tss: &Tss,
    code: u64,
) -> Result<Delivery, DeliveryError> {
    if !gate.present {
        return Err(DeliveryError::NotPresent);
    }
    if gate.gate_type != 0xe && gate.gate_type != 0xf {
        return Err(DeliveryError::BadType);
    }
    if !canonical(gate.offset) {
        return Err(DeliveryError::NotCanonical);
    }
    let new_cpl = cs_dpl & 3;
    let cpl = s.cpl & 3;
    // An interrupt never goes to a less privileged level (APM §8.9.3).
    if new_cpl > cpl {
        return Err(DeliveryError::OuterPrivilege);
    }
    let change = new_cpl < cpl;
    // Stack: IST if the gate names one (always), else RSPn of the TSS on a privilege
    // change, else the current stack; then aligned down to 16 bytes (APM §8.9.3).
    let base = if gate.ist != 0 {
        tss.ist[usize::from(gate.ist - 1)]
    } else if change {
        tss.rsp[usize::from(new_cpl)]
    } else {
        s.rsp
    };
    if !canonical(base) || base < 48 {
        return Err(DeliveryError::NotCanonical);
    }
    let top = base & !0xf;
    let frame = [
        code,
        s.rip,
        u64::from(s.cs),
        s.rflags,
        s.rsp,
        u64::from(s.ss),
    ];
    let mut rflags = s.rflags & !(RF_TF | RF_NT | RF_RF | RF_VM);
    if gate.gate_type == 0xe {
        rflags &= !RF_IF;
    }
    Ok(Delivery {
        frame,
        rsp: top - 48,
        rip: gate.offset,
        cs: gate.selector,
        ss: if change { u16::from(new_cpl) } else { s.ss },
        rflags,
        cpl: new_cpl,
    })
}

/// The 16 bytes of a present 64-bit gate (for tests and the model's own guests).
pub fn gate_bytes(offset: u64, selector: u16, ist: u8, gate_type: u8) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&(offset as u16).to_le_bytes());
    b[2..4].copy_from_slice(&selector.to_le_bytes());
    b[4] = ist & 7;
    b[5] = 0x80 | (gate_type & 0xf);
    b[6..8].copy_from_slice(&((offset >> 16) as u16).to_le_bytes());
    b[8..12].copy_from_slice(&((offset >> 32) as u32).to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDLER: u64 = 0xffff_ffff_8100_1230;

    fn kernel() -> State {
        State {
            rip: 0xffff_ffff_8100_0042,
            rsp: 0xffff_c900_0000_3f58,
            rflags: 0x246 | RF_TF,
            cs: 0x10,
            ss: 0x18,
            cpl: 0,
        }
    }

    fn tss() -> Tss {
        Tss {
            rsp: [0xffff_c900_0001_0000, 0, 0],
            ist: [0, 0, 0xffff_c900_0002_0008, 0, 0, 0, 0],
        }
    }

    #[test]
    fn exit_codes_of_every_event() {
        let want = [
            (Event::Cpuid, 0x72),
            (Event::Ioio, 0x7b),
            (Event::Msr, 0x7c),
            (Event::Rdtsc, 0x6e),
            (Event::Rdtscp, 0x87),
            (Event::Rdpmc, 0x6f),
            (Event::Invd, 0x76),
            (Event::Wbinvd, 0x89),
            (Event::Monitor, 0x8a),
            (Event::Mwait, 0x8b),
            (Event::Vmmcall, 0x81),
            (Event::ReadDr7, 0x27),
            (Event::WriteDr7, 0x37),
            (Event::AlignmentCheck, 0x51),
            (Event::Mmio, 0x400),
            (Event::PageNotValidated, 0x404),
        ];
        for (e, c) in want {
            assert_eq!(exit_code(e), c, "{e:?}");
        }
    }

    #[test]
    fn every_event_pushes_its_exit_code_as_the_error_code() {
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 3, 0xe));
        let events = [
            Event::Cpuid,
            Event::Ioio,
            Event::Msr,
            Event::Rdtsc,
            Event::Rdtscp,
            Event::Rdpmc,
            Event::Invd,
            Event::Wbinvd,
            Event::Monitor,
            Event::Mwait,
            Event::Vmmcall,
            Event::ReadDr7,
            Event::WriteDr7,
            Event::AlignmentCheck,
            Event::Mmio,
            Event::PageNotValidated,
        ];
        for e in events {
            let d = deliver(&kernel(), &g, 0, &tss(), exit_code(e)).unwrap();
            assert_eq!(d.frame[0], exit_code(e), "{e:?}");
            assert_eq!(
                d.frame[1..],
                [kernel().rip, 0x10, kernel().rflags, kernel().rsp, 0x18]
            );
        }
    }

    #[test]
    fn same_privilege_no_ist_pushes_on_the_aligned_current_stack() {
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 0, 0xe));
        let d = deliver(&kernel(), &g, 0, &tss(), 0x72).unwrap();
        assert_eq!(d.rsp, 0xffff_c900_0000_3f50 - 48);
        assert_eq!(
            d.frame,
            [
                0x72,
                0xffff_ffff_8100_0042,
                0x10,
                0x246 | RF_TF,
                0xffff_c900_0000_3f58,
                0x18
            ]
        );
        assert_eq!((d.rip, d.cs, d.ss, d.cpl), (HANDLER, 0x10, 0x18, 0));
        assert_eq!(
            d.rflags & (RF_IF | RF_TF),
            0,
            "interrupt gate clears IF and TF"
        );
    }

    #[test]
    fn ist_stack_is_used_even_without_privilege_change() {
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 3, 0xf));
        let d = deliver(&kernel(), &g, 0, &tss(), 0x404).unwrap();
        assert_eq!(d.rsp, 0xffff_c900_0002_0000 - 48);
        assert_eq!(d.frame[0], 0x404);
        assert_ne!(d.rflags & RF_IF, 0, "trap gate keeps IF");
    }

    #[test]
    fn user_mode_vc_switches_to_rsp0_and_null_ss() {
        let user = State {
            rip: 0x40_1000,
            rsp: 0x7fff_ffff_e000,
            rflags: 0x202,
            cs: 0x33,
            ss: 0x2b,
            cpl: 3,
        };
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 0, 0xe));
        let d = deliver(&user, &g, 0, &tss(), 0x7b).unwrap();
        assert_eq!(d.rsp, 0xffff_c900_0001_0000 - 48);
        assert_eq!(
            d.frame,
            [0x7b, 0x40_1000, 0x33, 0x202, 0x7fff_ffff_e000, 0x2b]
        );
        assert_eq!((d.ss, d.cpl), (0, 0));
    }

    #[test]
    fn bad_gates_and_stacks_are_refused_by_name() {
        let t = tss();
        let mut b = gate_bytes(HANDLER, 0x10, 0, 0xe);
        b[5] &= 0x7f;
        assert_eq!(
            deliver(&kernel(), &Gate::parse(&b), 0, &t, 0x72),
            Err(DeliveryError::NotPresent)
        );
        let call_gate = Gate::parse(&gate_bytes(HANDLER, 0x10, 0, 0xc));
        assert_eq!(
            deliver(&kernel(), &call_gate, 0, &t, 0x72),
            Err(DeliveryError::BadType)
        );
        let wild = Gate::parse(&gate_bytes(0x0000_8000_0000_0000, 0x10, 0, 0xe));
        assert_eq!(
            deliver(&kernel(), &wild, 0, &t, 0x72),
            Err(DeliveryError::NotCanonical)
        );
        let empty_ist = Gate::parse(&gate_bytes(HANDLER, 0x10, 1, 0xe));
        assert_eq!(
            deliver(&kernel(), &empty_ist, 0, &t, 0x72),
            Err(DeliveryError::NotCanonical)
        );
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 0, 0xe));
        assert_eq!(
            deliver(&kernel(), &g, 3, &t, 0x72),
            Err(DeliveryError::OuterPrivilege)
        );
    }

    #[test]
    fn cpl_above_3_is_read_as_its_low_two_bits() {
        let mut s = kernel();
        s.cpl = 7;
        let g = Gate::parse(&gate_bytes(HANDLER, 0x10, 0, 0xe));
        let d = deliver(&s, &g, 0, &tss(), 0x72).unwrap();
        assert_eq!(d.rsp, 0xffff_c900_0001_0000 - 48, "CPL 3 -> 0 uses RSP0");
    }

    #[test]
    fn gate_parse_round_trips() {
        let g = Gate::parse(&gate_bytes(0x1234_5678_9abc_def0, 0x28, 2, 0xf));
        assert_eq!(
            g,
            Gate {
                offset: 0x1234_5678_9abc_def0,
                selector: 0x28,
                ist: 2,
                gate_type: 0xf,
                present: true
            }
        );
    }
}
