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
//! - Vigil's own IGVM file with the test guest (the `model-vigil` run): the time to
//!   Vigil's first instruction and to the guest's, as ratios to the same baseline, and
//!   the host exits of every recorded SVSM call round trip (fewest, median, most) with
//!   the cheapest trip's cycles as a ratio to a baseline exit.

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

/// The TSC of the first entry at a VMPL below 0.
fn lower_first_entry(r: &Record) -> Option<u64> {
    r.marks
        .iter()
        .find(|m| m.name == "first-entry" && m.vmpl > 0)
        .map(|m| m.tsc)
}

/// The figures from the probe's record and the demo's; `Err` names what is missing.
pub fn figures(probe: &Record, demo: &Record) -> std::result::Result<Figures, String> {
    let hz = probe.tsc_hz.ok_or("probe record: no tsc hz")? as f64;
    let demo_hz = demo.tsc_hz.ok_or("demo record: no tsc hz")? as f64;
    let v0 = mark(probe, "first-entry", Some(0)).ok_or("probe record: no VMPL0 first entry")?;
    let lower = lower_first_entry(probe).ok_or("probe record: no lower-VMPL first entry")?;
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

/// Figures of Vigil's own IGVM file in the model (the `model-vigil` run: Vigil at VMPL0
/// serving the test guest at VMPL2).
#[derive(Clone, Debug, PartialEq)]
pub struct VigilFigures {
    /// Seconds from VM start to Vigil's first instruction (VMPL0).
    pub vmpl0_s: f64,
    /// Seconds from VM start to the guest's first instruction (VMPL2).
    pub guest_s: f64,
    /// Host exits of each recorded SVSM call round trip (VMPL2 -> VMPL0 -> VMPL2).
    pub trip_exits: Vec<u64>,
    /// TSC cycles of the cheapest round trip (fewest exits, then fewest cycles).
    pub cheapest_cycles: u64,
    /// Host exits of the whole run.
    pub total_exits: u64,
}

/// The figures from Vigil's record; `Err` names what is missing.
pub fn vigil_figures(r: &Record) -> std::result::Result<VigilFigures, String> {
    let hz = r.tsc_hz.ok_or("Vigil's record: no tsc hz")? as f64;
    let v0 = mark(r, "first-entry", Some(0)).ok_or("Vigil's record: no VMPL0 first entry")?;
    let g = lower_first_entry(r).ok_or("Vigil's record: no guest first entry")?;
    let cheapest = r
        .round_trips
        .iter()
        .min_by_key(|t| (t.exits, t.cycles))
        .ok_or("Vigil's record: no SVSM call round trip")?;
    Ok(VigilFigures {
        vmpl0_s: v0 as f64 / hz,
        guest_s: g as f64 / hz,
        trip_exits: r.round_trips.iter().map(|t| t.exits).collect(),
        cheapest_cycles: cheapest.cycles,
        total_exits: r.exits.values().sum(),
    })
}

/// Runs the probe in the model (the `model` step: build, package, run, judge), Vigil's
/// own IGVM file with the test guest (the `model-vigil` step), then the demo guest, and
/// prints the figures.
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
    let summary = model::step_model_vigil(ctx)?;
    println!("Vigil run: {summary}");
    let vigil = read(&out.join("record.txt"))?;
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
    let v = vigil_figures(&vigil).map_err(XtaskError::Check)?;
    print_figures(&f, p.elapsed);
    print_vigil(&v, &f);
    Ok(())
}

fn print_vigil(v: &VigilFigures, f: &Figures) {
    let mut sorted = v.trip_exits.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    println!(
        "  Vigil: VMPL0 first instruction           {:.3} s  ({:.2}x baseline)",
        v.vmpl0_s,
        v.vmpl0_s / f.demo_s
    );
    println!(
        "  Vigil: guest (VMPL2) first instruction   {:.3} s  ({:.2}x baseline)",
        v.guest_s,
        v.guest_s / f.demo_s
    );
    println!(
        "  Vigil: {} SVSM call round trips recorded: fewest {} host exits ({} cycles, {:.1}x a baseline exit), median {}, most {}",
        sorted.len(),
        sorted.first().copied().unwrap_or(0),
        v.cheapest_cycles,
        v.cheapest_cycles as f64 / f.demo_cycles_per_exit,
        median,
        sorted.last().copied().unwrap_or(0)
    );
    println!(
        "  Vigil: host exits of the whole run       {}",
        v.total_exits
    );
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

    const VIGIL: &str = "exit code=0x81 vmpl=2 count=5\nexit code=0x81 vmpl=0 count=4\n\
        tsc hz=2000000000\nmark name=first-entry vcpu=0 vmpl=0 tsc=2000000000\n\
        mark name=first-entry vcpu=0 vmpl=2 tsc=3000000000\n\
        round-trip vcpu=0 vmpl=2 exits=400 cycles=9000000\n\
        round-trip vcpu=0 vmpl=2 exits=3 cycles=900000\n\
        round-trip vcpu=0 vmpl=2 exits=3 cycles=800000\n";

    #[test]
    fn vigils_figures_come_from_its_record() {
        let v = vigil_figures(&Record::parse(VIGIL).unwrap()).unwrap();
        assert_eq!((v.vmpl0_s, v.guest_s), (1.0, 1.5));
        assert_eq!(v.trip_exits, vec![400, 3, 3]);
        assert_eq!(v.cheapest_cycles, 800000);
        assert_eq!(v.total_exits, 9);
        let no_trip = VIGIL
            .lines()
            .filter(|l| !l.starts_with("round-trip"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(vigil_figures(&Record::parse(&no_trip).unwrap())
            .unwrap_err()
            .contains("round trip"));
        let no_guest = VIGIL.replace("vmpl=2 tsc", "vmpl=0 tsc");
        assert!(vigil_figures(&Record::parse(&no_guest).unwrap())
            .unwrap_err()
            .contains("guest first entry"));
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
