//! Property tests: random sequences of guest calls and host behaviours; after every
//! step every invariant of DESIGN.md is checked against the simulated RMP
//! (`monitor::sim::invariants::check`). The default run is a few thousand cases;
//! `cargo run --release -p monitor --features sim --example soak -- --steps N` runs
//! as many steps as asked.
use monitor::sim::invariants::check;
use monitor::sim::random::{apply, Step};
use monitor::sim::vm::SimConfig;
use monitor::sim::SimVm;
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(op, a, b, c)| Step {
        op,
        a,
        b,
        c,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_every_invariant(seed in any::<u64>(), steps in prop::collection::vec(step(), 1..32)) {
        let mut vm = SimVm::new(SimConfig::small(seed));
        check(&vm).map_err(TestCaseError::fail)?;
        for (i, s) in steps.iter().enumerate() {
            apply(&mut vm, *s);
            check(&vm).map_err(|e| TestCaseError::fail(format!("step {i} {s:?}: {e}")))?;
        }
    }
}

#[test]
fn seeded_random_run_keeps_every_invariant() {
    let s = monitor::sim::random::run(42, 5_000, 500).unwrap();
    assert_eq!(s.steps, 5_000);
    assert!(
        s.calls > 2_000,
        "the run must exercise the dispatcher: {s:?}"
    );
    // Every kind of state change happened at least once, so the invariants were
    // checked on states that matter, not only on refusals.
    assert!(s.ok.iter().all(|n| *n > 0), "{s:?}");
    assert!(s.refused > 0 && s.terminations > 0, "{s:?}");
    // The protection protocol was locked in some VMs, so the protection invariants were
    // checked on locked states too.
    assert!(s.locks > 0, "{s:?}");
}

/// The checker is not vacuous: states that break an invariant are reported.
#[test]
fn the_checker_catches_broken_states() {
    use monitor::addr::{Gpa, PageSize};
    use monitor::platform::{Perms, Platform};
    // Invariant 1: Vigil's page made accessible to the guest behind Vigil's back.
    let mut vm = SimVm::new(SimConfig::small(1));
    let vigil = Gpa(4 << 20);
    vm.mach_mut()
        .rmpadjust(
            vigil,
            PageSize::Size4K,
            monitor::addr::Vmpl::new(2).unwrap(),
            Perms::READ,
            false,
        )
        .unwrap();
    assert!(check(&vm).unwrap_err().starts_with("inv1"));
    // Invariant 2: a page validated without the monitor.
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.make_private(Gpa(2 << 20), PageSize::Size4K, 1).unwrap();
    vm.mach_mut()
        .pvalidate(Gpa(2 << 20), PageSize::Size4K, true)
        .unwrap();
    assert!(check(&vm).unwrap_err().starts_with("inv2"));
    // Invariant 3: access granted before zeroing.
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.make_private(Gpa(2 << 20), PageSize::Size4K, 1).unwrap();
    vm.mach_mut()
        .pvalidate(Gpa(2 << 20), PageSize::Size4K, true)
        .unwrap();
    vm.mach_mut()
        .rmpadjust(
            Gpa(2 << 20),
            PageSize::Size4K,
            monitor::addr::Vmpl::new(2).unwrap(),
            Perms::all(),
            false,
        )
        .unwrap();
    assert!(check(&vm).unwrap_err().starts_with("inv3"));
    // Invariant 8: a call not logged.
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.dispatched += 1;
    assert!(check(&vm).unwrap_err().starts_with("inv8"));
}

/// Invariant 4, broken on purpose: a handler that reads the same guest bytes twice in
/// one call (check, then use a second copy: the TOCTOU the invariant forbids). The
/// machine sees every read Vigil makes; the checker refuses the second one.
#[test]
fn the_checker_catches_a_handler_that_reads_guest_data_twice() {
    use monitor::addr::Gpa;
    use monitor::memory::GuestMemory;
    use monitor::CallOutcome;
    let mut vm = SimVm::new(SimConfig::small(1));
    let list = Gpa(0x2000);
    // A correct handler reads the list once: fine.
    vm.observe(|m| {
        let mut b = [0u8; 64];
        m.platform_mut().read(list, &mut b).unwrap();
        (CallOutcome::Handled, 0)
    });
    check(&vm).unwrap();
    // Reads of different bytes in one call are fine too.
    vm.observe(|m| {
        let mut b = [0u8; 8];
        m.platform_mut().read(list, &mut b).unwrap();
        m.platform_mut().read(Gpa(list.0 + 8), &mut b).unwrap();
        (CallOutcome::Handled, 0)
    });
    check(&vm).unwrap();
    // The broken handler: header checked from one read, entries used from another.
    vm.observe(|m| {
        let mut hdr = [0u8; 8];
        let mut all = [0u8; 64];
        m.platform_mut().read(list, &mut hdr).unwrap();
        m.platform_mut().read(list, &mut all).unwrap();
        (CallOutcome::Handled, 0)
    });
    let e = check(&vm).unwrap_err();
    assert!(e.starts_with("inv4"), "{e}");
}

/// Invariant 5, broken on purpose: a handler that takes a hostile host's answer and
/// carries on (returns SUCCESS, or refuses but has changed state). The host's deviation
/// is counted by the simulated hypervisor; the checker refuses both outcomes and
/// accepts a clean termination or a refusal that changed nothing.
#[test]
fn the_checker_catches_a_handler_that_trusts_a_hostile_host() {
    use monitor::addr::{Gpa, PageSize, Vmpl};
    use monitor::platform::{Perms, Platform, TermReason};
    use monitor::sim::HostMode;
    use monitor::CallOutcome;
    let hostile_answer = |m: &mut monitor::Monitor<monitor::sim::SimMachine>| {
        m.platform_mut().hv.mode = HostMode::RefuseAll;
        let r = m.platform_mut().guest_request(&[0u8; 4096]);
        m.platform_mut().hv.mode = HostMode::Honest;
        r
    };
    // 1. Ignores the answer and reports success.
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.mach_mut().hv.mode = HostMode::RefuseAll;
    vm.observe(|m| {
        let _ = hostile_answer(m);
        (CallOutcome::Handled, 0)
    });
    let e = check(&vm).unwrap_err();
    assert!(e.starts_with("inv5"), "{e}");
    // 2. Refuses, but only after changing protected state (a page's rights).
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.mach_mut().hv.mode = HostMode::RefuseAll;
    vm.observe(|m| {
        let _ = hostile_answer(m);
        let _ = m.platform_mut().rmpadjust(
            Gpa(0x5000),
            PageSize::Size4K,
            Vmpl::new(2).unwrap(),
            Perms::READ,
            false,
        );
        (CallOutcome::Handled, 0x8000_0005)
    });
    let e = check(&vm).unwrap_err();
    assert!(e.starts_with("inv5") || e.starts_with("state"), "{e}");
    // 3. The correct handlers: a refusal that changed nothing, or a termination.
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.mach_mut().hv.mode = HostMode::RefuseAll;
    vm.observe(|m| {
        let _ = hostile_answer(m);
        (CallOutcome::Handled, 0x8000_0005)
    });
    check(&vm).unwrap();
    let mut vm = SimVm::new(SimConfig::small(1));
    vm.mach_mut().hv.mode = HostMode::RefuseAll;
    vm.observe(|m| {
        let _ = hostile_answer(m);
        let o = m.vigil_fault();
        (o, 0)
    });
    assert!(matches!(
        vm.hostile_calls[0].outcome,
        CallOutcome::Terminated(TermReason::VigilMemoryLost)
    ));
    check(&vm).unwrap();
    // 4. The real monitor under every hostile guest-request mode passes.
    for mode in [
        HostMode::GuestRequestCorrupt,
        HostMode::GuestRequestForge,
        HostMode::RefuseAll,
        HostMode::Garbage,
    ] {
        let mut vm = SimVm::new(SimConfig::small(1));
        let req = svsm_abi::attest_protocol::AttestServicesRequest {
            report_gpa: 0x23000,
            report_size: 4096,
            nonce_gpa: 0x21000,
            nonce_size: 8,
            manifest_gpa: 0x22000,
            manifest_size: 4096,
            ..Default::default()
        };
        use zerocopy::IntoBytes;
        vm.guest_write(Gpa(0x20000), req.as_bytes()).unwrap();
        vm.mach_mut().hv.mode = mode;
        vm.call(
            svsm_abi::calling_area::SvsmRegs::rax_for(1, 0),
            0x20000,
            0,
            0,
        );
        assert!(!vm.hostile_calls.is_empty(), "{mode:?} deviated");
        check(&vm).unwrap();
    }
}
