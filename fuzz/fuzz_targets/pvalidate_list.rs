//! Fuzzes the PVALIDATE list path of the core protocol (#58019 section 6.2) and the
//! lists of DEPOSIT_MEM/WITHDRAW_MEM that share its page: an arbitrary list page (count,
//! `next`, reserved bytes, entries pointing anywhere, at any offset in the page) given
//! to each call on the simulated machine. Every invariant of DESIGN.md is checked after
//! each call, and RAX must be one of the spec's result codes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use monitor::addr::{Gpa, PageSize};
use monitor::sim::invariants::check;
use monitor::sim::vm::{SimConfig, LIST_PAGE};
use monitor::sim::SimVm;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result};

fn spec_code(rax: u64) -> bool {
    rax == result::SUCCESS
        || (result::ERR_INCOMPLETE..=result::ERR_BUSY).contains(&rax)
        || (result::ERR_PVALIDATE_BASE..=result::ERR_PVALIDATE_BASE + 0xff).contains(&rax)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut vm = SimVm::new(SimConfig::small(u64::from(sel)));
    // Some private pages, 4 KiB and 2 MiB, so that entries can succeed as well as fail.
    let _ = vm.make_private(Gpa(2 << 20), PageSize::Size4K, 16);
    let _ = vm.make_private(Gpa(4 << 20), PageSize::Size2M, 1);
    // The list: at an offset inside the page chosen by the input, then its bytes.
    let offset = u64::from(rest.first().copied().unwrap_or(0)) * 8;
    let list = rest.get(1..).unwrap_or(&[]);
    let len = list.len().min(4096 - offset as usize);
    let at = Gpa(LIST_PAGE.0 + offset);
    for (i, c) in [call::PVALIDATE, call::DEPOSIT_MEM, call::WITHDRAW_MEM, call::PVALIDATE]
        .into_iter()
        .enumerate()
    {
        if (sel >> i) & 1 == 0 && i != 0 {
            continue;
        }
        let _ = vm.guest_write(at, &list[..len]);
        let (_, r) = vm.call_from(
            monitor::sim::vm::BOOT_APIC,
            SvsmRegs {
                rax: SvsmRegs::rax_for(0, c),
                rcx: at.0,
                rdx: 0,
                r8: 0,
                r9: 0,
            },
        );
        if let Err(e) = check(&vm) {
            panic!("invariant broken after call {c}: {e}");
        }
        if vm.m.terminated().is_none() {
            assert!(spec_code(r.rax), "call {c}: RAX {:#x} is no spec result code", r.rax);
        }
    }
});
