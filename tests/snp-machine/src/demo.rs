//! A hand-made guest that proves the SVM loop before the machine drives it: a few bytes
//! of 32-bit code in guest memory, run from a VMSA with nothing mapped.
//!
//! ```text
//! 0x1000: 0f a2           cpuid             -> CPUID exit (RIP += 2)
//! 0x1002: e6 f4           out 0xf4, al      -> IOIO exit (EXITINFO2 = next RIP)
//! 0x1004: a1 00 50 00 00  mov eax, [0x5000] -> NPF (read, not present): map, retry
//! 0x1009: f4              hlt               -> HLT exit: done
//! ```
//! The very first fetch is an NPF too (the code page is not mapped yet), resolved by
//! mapping it read+execute. Expected exits, in order: NPF 0x1000 (fetch), CPUID, IOIO,
//! NPF 0x5000 (read), HLT.

use alloc::vec::Vec;

use bare::svm::vmcb::{exit, ioio, npf};
use snp_model::rmp::Perms;

use snp_model::machine::Exit;

use crate::svm_cpu::SvmCpu;
use crate::vmsa_state::VmsaPage;

/// The guest's code.
pub const CODE: [u8; 10] = [0x0f, 0xa2, 0xe6, 0xf4, 0xa1, 0x00, 0x50, 0x00, 0x00, 0xf4];
/// Where the code goes.
pub const CODE_GPA: u64 = 0x1000;
/// The page the code reads.
pub const DATA_GPA: u64 = 0x5000;

/// A 32-bit flat protected-mode VMSA at `rip`, paging off (APM vol. 2 table B-2 offsets).
pub fn vmsa_32bit(rip: u64) -> VmsaPage {
    let mut v = [0u8; 4096];
    let mut seg = |off: usize, sel: u16, attr: u16, limit: u32| {
        v[off..off + 2].copy_from_slice(&sel.to_le_bytes());
        v[off + 2..off + 4].copy_from_slice(&attr.to_le_bytes());
        v[off + 4..off + 8].copy_from_slice(&limit.to_le_bytes());
    };
    // CS: P, S, execute/read accessed, D, G. Data: P, S, read/write accessed, D, G.
    seg(0x010, 0x08, 0x0c9b, 0xffff_ffff);
    for off in [0x000, 0x020, 0x030, 0x040, 0x050] {
        seg(off, 0x10, 0x0c93, 0xffff_ffff);
    }
    seg(0x060, 0, 0, 0xffff); // GDTR
    seg(0x070, 0, 0x0082, 0xffff); // LDTR
    seg(0x080, 0, 0, 0xffff); // IDTR
    seg(0x090, 0, 0x008b, 0xffff); // TR: busy 32-bit TSS
    let mut put = |off: usize, val: u64| v[off..off + 8].copy_from_slice(&val.to_le_bytes());
    put(0x158, 0x11); // CR0: PE, ET
    put(0x160, 0x400); // DR7
    put(0x168, 0xffff_0ff0); // DR6
    put(0x170, 0x2); // RFLAGS
    put(0x178, rip);
    put(0x1d8, 0x8000); // RSP
    put(0x1f8, 0x4000_0000); // RAX: the CPUID leaf asked
    put(0x268, 0x0007_0406_0007_0406); // G_PAT
    v
}

/// What one exit was, as the demo names it.
pub fn name(code: u64) -> &'static str {
    match code {
        exit::CPUID => "CPUID",
        exit::IOIO => "IOIO",
        exit::HLT => "HLT",
        exit::NPF => "NPF",
        exit::SHUTDOWN => "SHUTDOWN",
        c if c == exit::EXCP_BASE + 6 => "#UD",
        exit::INVALID => "INVALID",
        _ => "other",
    }
}

/// Runs the guest in `memory` (GPA 0 up) on `cpu` until HLT or 16 exits; returns the
/// exits seen, each with the RIP after it. Nothing is logged here ([`log_exits`] does
/// it afterwards), so that the bench's baseline (the TSC around this call, `start.rs`)
/// holds the SVM loop and no serial output.
pub fn run(cpu: &mut SvmCpu, memory: &mut [u8]) -> Vec<(Exit, u64)> {
    let code_at = CODE_GPA as usize;
    memory[code_at..code_at + CODE.len()].copy_from_slice(&CODE);
    let mut vmsa = vmsa_32bit(CODE_GPA);
    let mut seen = Vec::new();
    for _ in 0..16 {
        let e = cpu.run(0, 0, &mut vmsa);
        seen.push((e, rip(&vmsa)));
        match e.code {
            exit::NPF => {
                let perms = if e.info1 & npf::FETCH != 0 {
                    Perms::READ | Perms::SUPER_EXEC
                } else {
                    Perms::READ | Perms::WRITE
                };
                cpu.map(0, e.info2, Perms(perms));
            }
            exit::CPUID => advance(&mut vmsa, 2),
            exit::IOIO if e.info1 & ioio::TYPE_IN == 0 => set_rip(&mut vmsa, e.info2),
            _ => break,
        }
    }
    seen
}

fn rip(v: &VmsaPage) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[0x178..0x180]);
    u64::from_le_bytes(b)
}

pub fn set_rip(v: &mut VmsaPage, rip: u64) {
    v[0x178..0x180].copy_from_slice(&rip.to_le_bytes());
}

pub fn advance(v: &mut VmsaPage, len: u64) {
    set_rip(v, rip(v) + len);
}

/// Logs each exit [`run`] returned.
pub fn log_exits(exits: &[(Exit, u64)]) {
    for (e, rip) in exits {
        log::info!(
            "demo exit {:#x} ({}) info1 {:#x} info2 {:#x} at RIP {:#x}",
            e.code,
            name(e.code),
            e.info1,
            e.info2,
            rip
        );
    }
}
