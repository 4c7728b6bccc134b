//! Fuzzes the SVSM call dispatcher: arbitrary registers and arbitrary bytes in the
//! guest's memory (the lists, VMSAs and attestation requests the registers may point
//! at), for a few calls in a row on the simulated machine. Every invariant of
//! DESIGN.md is checked after each call; a broken one is a crash. Calls go to the core,
//! attestation and unused protocol numbers, and to Vigil's protection protocol.
#![no_main]
use libfuzzer_sys::fuzz_target;
use monitor::addr::Gpa;
use monitor::sim::invariants::check;
use monitor::sim::vm::SimConfig;
use monitor::sim::SimVm;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::protect_protocol::VIGIL_PROTECT_PROTOCOL;

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut vm = SimVm::new(SimConfig::small(u64_at(data, 0)));
    // Make a few pages private first, so that PVALIDATE can succeed.
    let _ = vm.make_private(Gpa(2 << 20), monitor::addr::PageSize::Size4K, 8);
    let mut rest = data.get(8..).unwrap_or(&[]);
    while rest.len() >= 48 {
        let (regs, tail) = rest.split_at(40);
        // Guest memory: a page of the launch image, then bytes.
        let at = Gpa(((tail[0] as u64 % 0x100) << 12) | (tail[1] as u64 & 0xff8));
        let len = (tail[2] as usize).min(tail.len().saturating_sub(8));
        let _ = vm.guest_write(at, &tail[8..8 + len]);
        // Point registers at guest memory often: small values are page numbers.
        let raw = u64_at(regs, 0);
        // Protocols 0 to 3 and, one call in four, Vigil's protection protocol.
        let protocol = if raw >> 62 == 3 { u64::from(VIGIL_PROTECT_PROTOCOL) } else { (raw >> 32) & 3 };
        let mut r = SvsmRegs {
            rax: (protocol << 32) | (raw & 0xf),
            rcx: u64_at(regs, 8),
            rdx: u64_at(regs, 16),
            r8: u64_at(regs, 24),
            r9: u64_at(regs, 32),
        };
        if r.rcx >> 63 == 0 {
            r.rcx &= 0x7f_fff8;
        }
        if r.rdx >> 63 == 0 {
            r.rdx &= 0x7f_f000;
        }
        vm.call_from((u64_at(regs, 32) % 3) as u32, r);
        if let Err(e) = check(&vm) {
            panic!("invariant broken: {e}");
        }
        rest = &tail[8 + len..];
    }
});
