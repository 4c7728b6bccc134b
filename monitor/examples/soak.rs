//! Soak run: N random steps of guest calls and host behaviours on the simulated SNP
//! machine, every invariant checked after every step.
//!
//! ```text
//! cargo run --release -p monitor --features sim --example soak -- --steps 1000000
//! cargo run --release -p monitor --features sim --example soak -- --steps 50000 --seed 7
//! ```
//! Exit status: 0 if no invariant broke, 1 (with the step and the invariant) if one did.
use clap::Parser;
use std::time::Instant;

/// Random steps with invariant checks after each.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// Number of steps.
    #[arg(long, default_value_t = 1_000_000)]
    steps: u64,
    /// Seed of the random sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Steps per VM before a fresh one is launched.
    #[arg(long, default_value_t = 1000)]
    episode: u64,
}

fn main() {
    let a = Args::parse();
    let t = Instant::now();
    // Progress every tenth of the run, on stderr.
    let chunk = (a.steps / 10).max(1);
    let mut done = 0u64;
    let mut total = monitor::sim::random::RunSummary::default();
    let mut part = 0u64;
    while done < a.steps {
        let n = chunk.min(a.steps - done);
        match monitor::sim::random::run(a.seed.wrapping_add(part), n, a.episode) {
            Ok(s) => {
                total.steps += s.steps;
                total.vms += s.vms;
                total.terminations += s.terminations;
                for (x, y) in total.reasons.iter_mut().zip(s.reasons) {
                    *x += y;
                }
                total.calls += s.calls;
                total.refused += s.refused;
                total.locks += s.locks;
                for (x, y) in total.ok.iter_mut().zip(s.ok) {
                    *x += y;
                }
            }
            Err(e) => {
                eprintln!(
                    "INVARIANT BROKEN after {done} earlier steps (seed {}): {e}",
                    a.seed.wrapping_add(part)
                );
                std::process::exit(1);
            }
        }
        done += n;
        part += 1;
        eprintln!(
            "soak: {done}/{} steps, {:.1} s",
            a.steps,
            t.elapsed().as_secs_f64()
        );
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "soak: {} steps, {} VMs, {} calls ({} refused), {} terminations, 0 invariants broken, {:.1} s",
        total.steps, total.vms, total.calls, total.refused, total.terminations, secs
    );
    println!(
        "soak: successful PVALIDATE {} CREATE_VCPU {} DELETE_VCPU {} DEPOSIT_MEM {} WITHDRAW_MEM {} REMAP_CA {} ATTEST {} PROTECT_LOCK {}",
        total.ok[0], total.ok[1], total.ok[2], total.ok[3], total.ok[4], total.ok[5], total.ok[6], total.locks
    );
    println!(
        "soak: terminations: host inconsistent {} host refused {} guest request failed {} Vigil memory lost {}",
        total.reasons[0], total.reasons[1], total.reasons[2], total.reasons[3]
    );
}
