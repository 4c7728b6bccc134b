//! Fuzzes the SVSM calling area (#58019 section 5: call_pending, mem_available, the
//! rest of the page) together with REMAP_CA and the calls that follow it: arbitrary
//! bytes in the boot vCPU's calling area page, arbitrary new calling-area addresses,
//! arbitrary registers. Every invariant of DESIGN.md is checked after each call; a call
//! taken from a calling area whose call_pending the guest did not set, or a calling area
//! inside Vigil's memory, breaks them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use monitor::addr::{Gpa, PageSize};
use monitor::sim::invariants::check;
use monitor::sim::vm::{SimConfig, BOOT_APIC, BOOT_CAA};
use monitor::sim::SimVm;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::call;

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut vm = SimVm::new(SimConfig::small(u64_at(data, 0)));
    let _ = vm.make_private(Gpa(2 << 20), PageSize::Size4K, 8);
    let mut rest = data.get(8..).unwrap_or(&[]);
    while rest.len() >= 24 {
        let (head, tail) = rest.split_at(24);
        // Bytes into the calling area page (where it is now, or the boot one).
        let n = (head[0] as usize).min(tail.len());
        let off = u64::from(head[1]) * 16;
        let _ = vm.guest_write(Gpa(BOOT_CAA.0 + off), &tail[..n]);
        // A REMAP_CA to a fuzzed address (pages of the small machine, often near the
        // image and Vigil's memory), or another call with fuzzed registers.
        let target = u64_at(head, 8) & 0x3ff_ffff;
        let regs = if head[2] & 1 == 0 {
            SvsmRegs {
                rax: SvsmRegs::rax_for(0, call::REMAP_CA),
                rcx: target,
                rdx: 0,
                r8: 0,
                r9: 0,
            }
        } else {
            SvsmRegs {
                rax: u64::from(head[3] & 7) | (u64::from(head[4] & 1) << 32),
                rcx: target,
                rdx: u64_at(head, 16) & 0x3ff_ffff,
                r8: u64::from(head[5]),
                r9: 0,
            }
        };
        vm.call_from(BOOT_APIC, regs);
        if let Err(e) = check(&vm) {
            panic!("invariant broken: {e}");
        }
        rest = &tail[n..];
    }
});
