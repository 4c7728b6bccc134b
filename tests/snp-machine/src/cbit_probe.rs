//! The C-bit probe: can a guest page-table entry carry bit 51 (the C-bit of Milan, Genoa
//! and Turin) under QEMU's software SVM, and what GPA does the nested walk then see?
//!
//! The guest runs in 32-bit PAE paging (CR0.PG, CR4.PAE, EFER.LME clear: 64-bit table
//! entries without long mode): CR3 -> PDPT at GPA 0x2000 -> PD at 0x3000, whose entry 0
//! maps VA 0..2 MiB as one 2 MiB page at GPA `C | 0`, C = 1 << 51. It then runs the demo
//! code at VA 0x1000. QEMU refuses table bits at or above phys-bits (default 40) with a
//! reserved-bit #PF (the guest has no IDT, so that ends in SHUTDOWN); with phys-bits=52
//! the walk accepts the bit and the NPF's EXITINFO2 shows which GPA reaches the nested
//! tables. Every NPF is resolved by mapping `EXITINFO2` with bits 63:48 cleared (a 4-level
//! nested walk indexes GPA bits 47:12 only), read+write+execute.

use alloc::vec::Vec;

use bare::svm::vmcb::{exit, ioio};
use snp_model::rmp::Perms;

use crate::demo::{self, CODE, CODE_GPA};
use snp_model::machine::Exit;

use crate::svm_cpu::SvmCpu;

/// The C-bit the probe sets.
pub const C_BIT: u64 = 1 << 51;
const PDPT_GPA: u64 = 0x2000;
const PD_GPA: u64 = 0x3000;
/// The nested walk's GPA bits (47:12).
const NESTED_GPA: u64 = 0x0000_ffff_ffff_f000;

fn put(memory: &mut [u8], gpa: u64, val: u64) {
    let at = gpa as usize;
    memory[at..at + 8].copy_from_slice(&val.to_le_bytes());
}

/// What the probe saw: each exit, with EXITINFO2 as reported.
pub fn run(cpu: &mut SvmCpu, memory: &mut [u8]) -> Vec<Exit> {
    let code_at = CODE_GPA as usize;
    memory[code_at..code_at + CODE.len()].copy_from_slice(&CODE);
    put(memory, PDPT_GPA, PD_GPA | 1); // PDPTE: P
    put(memory, PD_GPA, C_BIT | 0x83); // PDE: P, RW, PS; address 0 with the C-bit
    let mut vmsa = demo::vmsa_32bit(CODE_GPA);
    let mut set = |off: usize, v: u64| vmsa[off..off + 8].copy_from_slice(&v.to_le_bytes());
    set(0x158, 0x8000_0011); // CR0: PG, ET, PE
    set(0x148, 1 << 5); // CR4: PAE
    set(0x150, PDPT_GPA); // CR3
    let mut seen = Vec::new();
    for _ in 0..16 {
        let e = cpu.run(0, 0, &mut vmsa);
        seen.push(e);
        log::info!(
            "cbit probe: exit {:#x} ({}) info1 {:#x} info2 {:#x}",
            e.code,
            demo::name(e.code),
            e.info1,
            e.info2
        );
        match e.code {
            exit::NPF => cpu.map(
                0,
                e.info2 & NESTED_GPA,
                Perms(Perms::READ | Perms::WRITE | Perms::SUPER_EXEC),
            ),
            exit::CPUID => demo::advance(&mut vmsa, 2),
            exit::IOIO if e.info1 & ioio::TYPE_IN == 0 => demo::set_rip(&mut vmsa, e.info2),
            _ => break,
        }
    }
    seen
}
