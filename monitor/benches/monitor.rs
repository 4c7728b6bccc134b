//! `cargo bench -p monitor`:
//! 1. host exits (VMGEXITs) counted by the simulator while the guest validates 1 GiB
//!    given as 4 KiB entries, as 2 MiB entries and as a mixed list, beside the minimum
//!    (one page-state-change exit per 253 entries, none for PVALIDATE itself, and one
//!    SVSM call - two run-VMPL switches - per 511-entry PVALIDATE list);
//! 2. the in-process cost of an SVSM call dispatch (criterion).
use criterion::{black_box, Criterion};
use monitor::addr::{Gpa, PageSize};
use monitor::platform::{PscOp, PscRequest};
use monitor::sim::vm::{SimConfig, LIST_PAGE};
use monitor::sim::SimVm;
use std::time::{Duration, Instant};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::call;
use svsm_abi::pvalidate::{PvalidateEntry, MAX_ENTRIES};

const BASE: u64 = 4 << 20;
const GIB: u64 = 1 << 30;

fn entries(kind: &str) -> Vec<(Gpa, PageSize)> {
    let mut v = Vec::new();
    for r in 0..GIB >> 21 {
        let base = BASE + (r << 21);
        let as_2m = match kind {
            "4k" => false,
            "2m" => true,
            _ => r % 2 == 0,
        };
        if as_2m {
            v.push((Gpa(base), PageSize::Size2M));
        } else {
            for i in 0..512 {
                v.push((Gpa(base + i * 4096), PageSize::Size4K));
            }
        }
    }
    v
}

fn validate_gib(kind: &str) {
    let mut vm = SimVm::new(SimConfig::gib(1));
    let list = entries(kind);
    let t = Instant::now();
    let before = vm.mach().exits;
    let psc: Vec<PscRequest> = list
        .iter()
        .map(|(g, s)| PscRequest {
            gpa: *g,
            size: *s,
            op: PscOp::Private,
        })
        .collect();
    vm.guest_psc(&psc).expect("honest host");
    let after_psc = vm.mach().exits;
    let mut calls = 0u64;
    for chunk in list.chunks(MAX_ENTRIES) {
        let e: Vec<PvalidateEntry> = chunk
            .iter()
            .map(|(g, s)| PvalidateEntry::new(g.gfn(), *s == PageSize::Size2M, true, false))
            .collect();
        let (rax, next) = vm.list_call(call::PVALIDATE, LIST_PAGE, &e, 0);
        assert_eq!((rax, next as usize), (0, e.len()), "PVALIDATE failed");
        calls += 1;
    }
    let end = vm.mach().exits;
    let n = list.len() as u64;
    let psc_exits = after_psc.psc - before.psc;
    let pval_exits = end.total() - after_psc.total() - (end.run_vmpl - after_psc.run_vmpl);
    let run_vmpl = end.run_vmpl - after_psc.run_vmpl;
    println!(
        "validate 1 GiB as {kind:>5}: {n:>6} entries | page-state-change exits {psc_exits:>5} (minimum {:>5}) | \
         exits during PVALIDATE {pval_exits} (minimum 0) | SVSM calls {calls} = {run_vmpl} run-VMPL exits (minimum {}) | {:.2} s",
        n.div_ceil(253),
        2 * n.div_ceil(MAX_ENTRIES as u64),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        vm.m.pages().get(Gpa(BASE + GIB - 4096)),
        Some(monitor::pages::PageState::Validated)
    );
}

fn main() {
    println!("== host exits while validating 1 GiB (simulated SNP machine, honest host)");
    for kind in ["4k", "2m", "mixed"] {
        validate_gib(kind);
    }

    // Every dispatched call appends a record to the event log, so each sample runs on
    // a fresh VM (iter_custom) to keep the log's memory bounded; the append is part of
    // the measured cost, as it is in Vigil.
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let calls: [(&str, u64, u64); 2] = [
        (
            "dispatch QUERY_PROTOCOL (handle_call)",
            SvsmRegs::rax_for(0, call::QUERY_PROTOCOL),
            1 << 32 | 1,
        ),
        (
            "dispatch unknown protocol (handle_call)",
            SvsmRegs::rax_for(7, 0),
            0,
        ),
    ];
    for (name, rax, rcx) in calls {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut vm = SimVm::new(SimConfig::small(1));
                let t = Instant::now();
                for _ in 0..iters {
                    let mut r = SvsmRegs {
                        rax,
                        rcx,
                        ..Default::default()
                    };
                    black_box(vm.m.handle_call(0, &mut r));
                }
                t.elapsed()
            })
        });
    }
    c.bench_function("call with calling-area handshake (handle_request)", |b| {
        b.iter_custom(|iters| {
            let mut vm = SimVm::new(SimConfig::small(1));
            let t = Instant::now();
            for _ in 0..iters {
                let mut r = SvsmRegs {
                    rax: SvsmRegs::rax_for(0, call::QUERY_PROTOCOL),
                    rcx: 1 << 32 | 1,
                    ..Default::default()
                };
                let _ = vm
                    .mach_mut()
                    .guest_write(2, monitor::sim::vm::BOOT_CAA, &[1]);
                black_box(vm.m.handle_request(0, &mut r));
            }
            t.elapsed()
        })
    });
    c.final_summary();
}
