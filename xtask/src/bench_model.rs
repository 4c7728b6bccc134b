//! `cargo xtask bench model`: figures from the SNP machine model's record (issue 9,
//! "Must show"), with the model's hand-made guest (`-append probe=demo`) as the baseline
//! measured in the same invocation.
//!
//! - Boot: the model's TSC at VMPL0's first entry and at the lower VMPL's first entry
//!   (record lines `mark name=first-entry`), in seconds with the record's `tsc hz=` (CPUID
//!   0x15/0x16, else a PIT calibration: `bare::cpu::tsc`). Under QEMU TCG the guest TSC
//!   starts near 0 when the VM starts (QEMU's tick offset is taken at VM start), so a
//!   stamp is the time since QEMU started running the machine (after QEMU's own process
//!   start-up, which `bench boot` measures). Baseline: the demo guest's first entry,
//!   which pays the same QEMU start, PVH boot, heap and TSC calibration but no IGVM
//!   launch. Reported as seconds and as ratios to the baseline.
//! - VMPL round trip (the probe's run-VMPL step): the host exits from VMPL0's run-VMPL
//!   request to VMPL2's request to return, both counted, and the TSC cycles between them
//!   (record lines `round-trip`). Baseline: the demo guest's cycles per exit (its cycles
//!   from first entry to last exit over its exits); the trip is reported as cycles and
//!   as a ratio to that.

use std::time::Duration;

use snp_model::record::Record;

use crate::error::{Result, XtaskError};
use crate::model;
use crate::steps::Ctx;

/// The bench's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// TSC frequency (Hz) of the probe run.
    pub hz: f64,
    /// Seconds from VM start to VMPL0's first entry (probe).
    pub vmpl0_s: f64,
    /// Seconds from VM start to the lower VMPL's first entry (probe).
    pub lower_s: f64,
    /// Seconds from VM start to the demo guest's first entry (baseline).
    pub demo_s: f64,
    /// Host exits of each VMPL round trip.
    pub trip_exits: Vec<u64>,
    /// TSC cycles of each round trip.
    pub trip_cycles: Vec<u64>,
    /// The demo guest's TSC cycles per exit (baseline).
    pub demo_cycles_per_exit: f64,
}

fn mark(r: &Record, name: &str, vmpl: Option<u8>) -> Option<u64> {
    r.marks
        .iter()
        .find(|m| m.name == name && vmpl.is_none_or(|v| m.vmpl == v))
        .map(|m| m.tsc)
}

/// The figures from the probe's record and the demo's; `Err` names what is missing.
pub fn figures(probe: &Record, demo: &Record) -> std::result::Result<Figures, String> {
    let hz = probe.tsc_hz.ok_or("probe record: no tsc hz")? as f64;
    let demo_hz = demo.tsc_hz.ok_or("demo record: no tsc hz")? as f64;
    let v0 = mark(probe, "first-entry", Some(0)).ok_or("probe record: no VMPL0 first entry")?;
    let lower = probe
        .marks
        .iter()
        .find(|m| m.name == "first-entry" && m.vmpl > 0)
        .ok_or("probe record: no lower-VMPL first entry")?
        .tsc;
    let d0 = mark(demo, "first-entry", None).ok_or("demo record: no first entry")?;
    let d1 = mark(demo, "last-exit", None).ok_or("demo record: no last exit")?;
    let demo_exits: u64 = demo.exits.values().sum();
    if probe.round_trips.is_empty() {
        return Err("probe record: no VMPL round trip".into());
    }
    if demo_exits == 0 || d1 < d0 {
        return Err("demo record: no exits".into());
    }
    Ok(Figures {
        hz,
        vmpl0_s: v0 as f64 / hz,
        lower_s: lower as f64 / hz,
        demo_s: d0 as f64 / demo_hz,
        trip_exits: probe.round_trips.iter().map(|t| t.exits).collect(),
        trip_cycles: probe.round_trips.iter().map(|t| t.cycles).collect(),
        demo_cycles_per_exit: (d1 - d0) as f64 / demo_exits as f64,
    })
}

/// Runs the probe in the model (the `model` step: build, package, run, judge), then the
/// demo guest, and prints the figures.
pub fn run(ctx: &mut Ctx) -> Result<()> {
    let summary = model::step_model(ctx)?;
    println!("probe run: {summary}");
    let out = ctx.ws.target.join("vigil-model-run");
    let read = |p: &std::path::Path| -> Result<Record> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| XtaskError::Check(format!("{}: {e}", p.display())))?;
        Record::parse(&text).map_err(|e| XtaskError::Check(format!("{}: {e:?}", p.display())))
    };
    let probe = read(&out.join("record.txt"))?;
    let machine = model::build_bare(ctx, "snp-machine")?;
    let demo_record = out.join("record-demo.txt");
    let _ = std::fs::remove_file(&demo_record);
    let mut args = model::qemu_args(&machine, &out.join("probe.igvm"), &demo_record);
    args.extend(["-append".to_string(), "probe=demo".to_string()]);
    let q = ctx.qemu()?;
    let p = crate::qemu::run(&q, &args, Duration::from_secs(60), |_, _, _| {})?;
    if p.status != Some(33) {
        return Err(XtaskError::Check(format!(
            "demo guest: QEMU status {:?}, expected 33",
            p.status
        )));
    }
    let demo = read(&demo_record)?;
    let f = figures(&probe, &demo).map_err(XtaskError::Check)?;
    print_figures(&f, p.elapsed);
    Ok(())
}

fn print_figures(f: &Figures, demo_wall: Duration) {
    println!(
        "SNP machine model bench (QEMU TCG; TSC {:.3} GHz)",
        f.hz / 1e9
    );
    println!(
        "  baseline: demo guest first instruction   {:.3} s after VM start (QEMU wall {:.2} s)",
        f.demo_s,
        demo_wall.as_secs_f64()
    );
    println!(
        "  probe: VMPL0 first instruction           {:.3} s  ({:.2}x baseline)",
        f.vmpl0_s,
        f.vmpl0_s / f.demo_s
    );
    println!(
        "  probe: VMPL2 first instruction           {:.3} s  ({:.2}x baseline)",
        f.lower_s,
        f.lower_s / f.demo_s
    );
    println!(
        "  baseline: demo cycles per exit           {:.0}",
        f.demo_cycles_per_exit
    );
    for (i, (e, c)) in f.trip_exits.iter().zip(&f.trip_cycles).enumerate() {
        println!(
            "  probe: VMPL round trip {i}: {e} host exits, {c} cycles ({:.1}x a baseline exit)",
            *c as f64 / f.demo_cycles_per_exit
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "tsc hz=1000000000\nmark name=first-entry vcpu=0 vmpl=0 tsc=2000000000\n\
        mark name=first-entry vcpu=0 vmpl=2 tsc=2500000000\n\
        round-trip vcpu=0 vmpl=2 exits=4 cycles=400000\n";
    const DEMO: &str = "exit code=0x400 vmpl=0 count=2\nexit code=0x72 vmpl=0 count=2\n\
        tsc hz=1000000000\nmark name=first-entry vcpu=0 vmpl=0 tsc=1000000000\n\
        mark name=last-exit vcpu=0 vmpl=0 tsc=1000040000\n";

    #[test]
    fn figures_come_from_the_two_records() {
        let f = figures(
            &Record::parse(PROBE).unwrap(),
            &Record::parse(DEMO).unwrap(),
        )
        .unwrap();
        assert_eq!((f.vmpl0_s, f.lower_s, f.demo_s), (2.0, 2.5, 1.0));
        assert_eq!(
            (f.trip_exits.clone(), f.trip_cycles.clone()),
            (vec![4], vec![400000])
        );
        assert_eq!(f.demo_cycles_per_exit, 10000.0);
    }

    #[test]
    fn a_record_without_a_round_trip_or_marks_is_refused_by_name() {
        let demo = Record::parse(DEMO).unwrap();
        let no_trip =
            Record::parse(&PROBE.replace("round-trip vcpu=0 vmpl=2 exits=4 cycles=400000\n", ""))
                .unwrap();
        assert!(figures(&no_trip, &demo).unwrap_err().contains("round trip"));
        let no_lower = Record::parse(&PROBE.replace("vmpl=2 tsc", "vmpl=0 tsc")).unwrap();
        assert!(figures(&no_lower, &demo)
            .unwrap_err()
            .contains("lower-VMPL"));
        assert!(figures(&Record::parse(PROBE).unwrap(), &Record::default())
            .unwrap_err()
            .contains("demo"));
    }
}
