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
