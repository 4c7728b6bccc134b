//! Calls through the GHCB page (GHCB spec #56421 §2.3.2, layout `svsm_abi::ghcb::Ghcb`):
//! the probe fills a fresh GHCB (protocol version 2, usage 0, the valid bitmap for every
//! field it sets), copies it to the shared page, VMGEXITs and copies the page back. Every
//! value read back is the host's word and is checked by the caller.

use core::sync::atomic::Ordering;

use svsm_abi::ghcb::{offset, Ghcb};

use super::instr::vmgexit;
use super::msr_protocol::GHCB_GPA;

/// Registers passed in (and read back from) the GHCB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    /// RAX, when `Some`.
    pub rax: Option<u64>,
    /// RBX.
    pub rbx: Option<u64>,
    /// RCX.
    pub rcx: Option<u64>,
    /// RDX.
    pub rdx: Option<u64>,
}

/// What came back: SW_EXITINFO1, SW_EXITINFO2, RAX..RDX.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    /// SW_EXITINFO1 (0 = success for most exits).
    pub info1: u64,
    /// SW_EXITINFO2.
    pub info2: u64,
    /// RAX, RBX, RCX, RDX.
    pub regs: [u64; 4],
}

/// One GHCB exit. `None` when no GHCB is registered yet.
pub fn call(code: u64, info1: u64, info2: u64, regs: Regs) -> Option<Answer> {
    let gpa = GHCB_GPA.load(Ordering::Relaxed);
    if gpa == 0 {
        return None;
    }
    let mut g = Ghcb::new_zeroed_v2();
    g.sw_exit_code = code;
    g.sw_exit_info_1 = info1;
    g.sw_exit_info_2 = info2;
    g.set_valid(offset::SW_EXIT_CODE);
    g.set_valid(offset::SW_EXIT_INFO_1);
    g.set_valid(offset::SW_EXIT_INFO_2);
    let set = [
        (regs.rax, offset::RAX),
        (regs.rbx, offset::RBX),
        (regs.rcx, offset::RCX),
        (regs.rdx, offset::RDX),
    ];
    for (v, off) in set {
        if let Some(v) = v {
            match off {
                offset::RAX => g.rax = v,
                offset::RBX => g.rbx = v,
                offset::RCX => g.rcx = v,
                _ => g.rdx = v,
            }
            g.set_valid(off);
        }
    }
    let page = gpa as *mut Ghcb;
    // SAFETY: `gpa` is the probe's own shared page, identity-mapped without the C-bit
    // (`paging::set_shared`), registered with the host; volatile because the host
    // writes it during the VMGEXIT.
    unsafe { page.write_volatile(g) };
    vmgexit();
    // SAFETY: as above.
    let back = unsafe { page.read_volatile() };
    Some(Answer {
        info1: back.sw_exit_info_1,
        info2: back.sw_exit_info_2,
        regs: [back.rax, back.rbx, back.rcx, back.rdx],
    })
}
