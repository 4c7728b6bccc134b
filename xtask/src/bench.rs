//! `cargo xtask bench boot`: wall time of kernel boots under QEMU.
//!
//! Three measurements, each `runs` times, in one invocation so that they share the
//! machine's conditions: `qemu-system-x86_64 -version` (process start-up), a trivial PVH
//! image that exits at once (QEMU + firmware + PVH loading: the floor any `-kernel` boot
//! pays), and the Vigil kernel (time to its banner line on the serial port, and to its
//! exit). Reported as median, min and max, and as ratios to the baseline.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cargo::capture;
use crate::error::{Result, XtaskError};
use crate::paths::Flavour;
use crate::qemu::{boot, describe_status, Accel, BootSpec, STATUS_SUCCESS};
use crate::steps::{build_kernel, Ctx};

/// Median, min, max of durations (in seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

/// Statistics of `samples` (None when empty).
pub fn stats(samples: &[Duration]) -> Option<Stats> {
    let mut v: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

fn row(name: &str, s: &Stats) {
    println!(
        "  {name:<28} {:>9.1} ms {:>9.1} ms {:>9.1} ms",
        s.median * 1e3,
        s.min * 1e3,
        s.max * 1e3
    );
}

/// Runs the benchmark.
pub fn run(ctx: &mut Ctx, runs: usize, accel: Accel, json: bool) -> Result<()> {
    if runs == 0 {
        return Err(XtaskError::Check("-n must be at least 1".into()));
    }
    let (image, facts, _) = build_kernel(ctx, Flavour::Release)?;
    let q = ctx.qemu()?;
    let baseline = ctx.baseline_image()?;
    if !json {
        println!("QEMU: {} ({})", q.binary.display(), q.version);
        println!(
            "accelerator: {}; {runs} run(s) each; kernel image {} bytes",
            accel.name(),
            facts.size
        );
    }

    let mut version = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let c = capture(&q.binary.to_string_lossy(), &["-version"], Path::new("/"))?;
        if !c.success {
            return Err(XtaskError::Check(format!(
                "qemu -version failed: {}",
                c.status
            )));
        }
        version.push(t.elapsed());
    }

    let spec = |image| BootSpec {
        image,
        append: "",
        accel,
        timeout: Duration::from_secs(60),
        echo: false,
    };
    let mut base = Vec::new();
    for _ in 0..runs {
        let o = boot(&q, &spec(&baseline))?;
        if o.status != Some(STATUS_SUCCESS) {
            return Err(XtaskError::Check(format!(
                "baseline image exited with {}: {}",
                describe_status(o.status),
                o.stderr.trim()
            )));
        }
        base.push(o.elapsed);
    }

    let (mut banner, mut exit) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let o = boot(&q, &spec(&image))?;
        if o.status != Some(STATUS_SUCCESS) {
            return Err(XtaskError::Check(format!(
                "run {}: kernel exited with {}; last output:\n{}",
                i + 1,
                describe_status(o.status),
                o.last_lines(10)
            )));
        }
        let b = o
            .banner_at
            .ok_or_else(|| XtaskError::Check(format!("run {}: no banner", i + 1)))?;
        banner.push(b);
        exit.push(o.elapsed);
    }

    let none = || XtaskError::Check("no samples".into());
    let sv = stats(&version).ok_or_else(none)?;
    let sb = stats(&base).ok_or_else(none)?;
    let sk = stats(&banner).ok_or_else(none)?;
    let se = stats(&exit).ok_or_else(none)?;
    if json {
        let j = |s: &Stats| {
            format!(
                "{{\"median_ms\":{:.3},\"min_ms\":{:.3},\"max_ms\":{:.3}}}",
                s.median * 1e3,
                s.min * 1e3,
                s.max * 1e3
            )
        };
        println!(
            "{{\"schema\":\"vigil-bench-boot/1\",\"accel\":\"{}\",\"runs\":{runs},\"image_bytes\":{},\"qemu_version\":{},\"baseline_exit\":{},\"vigil_banner\":{},\"vigil_exit\":{},\"ratio_banner_to_baseline\":{:.3},\"ratio_exit_to_baseline\":{:.3}}}",
            accel.arg(),
            facts.size,
            j(&sv),
            j(&sb),
            j(&sk),
            j(&se),
            sk.median / sb.median,
            se.median / sb.median
        );
        return Ok(());
    }
    println!("  {:<28} {:>12} {:>12} {:>12}", "", "median", "min", "max");
    row("qemu -version", &sv);
    row("baseline PVH image: exit", &sb);
    row("vigil: banner", &sk);
    row("vigil: exit", &se);
    println!(
        "  ratio to baseline (medians): banner {:.2}x, exit {:.2}x; vigil's own share of the exit time: {:.1} ms",
        sk.median / sb.median,
        se.median / sb.median,
        (se.median - sb.median) * 1e3
    );
    println!(
        "  target banner < 1 s: {}",
        if sk.median < 1.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let s = stats(&ms(&[30, 10, 20])).unwrap();
        assert_eq!((s.median, s.min, s.max), (0.02, 0.01, 0.03));
        let s = stats(&ms(&[40, 10, 20, 30])).unwrap();
        assert!((s.median - 0.025).abs() < 1e-12);
        assert!(stats(&[]).is_none());
    }
}
