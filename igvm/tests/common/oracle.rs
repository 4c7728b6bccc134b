//! What a test does when an independent oracle it compares against (sev-snp-measure,
//! Debian's OVMF images) is missing from the machine.
//!
//! A differential test that passes without its oracle proves nothing, so a missing
//! oracle is never a silent pass:
//! - under CI (`CI=true`, as `.ci/run` runs) or with `VIGIL_REQUIRE_ORACLES=1`, the test
//!   fails and says what to install;
//! - otherwise it prints a `SKIPPED:` line and, when `cargo xtask test` runs it, appends
//!   one line to the file named by `VIGIL_SKIP_LOG`, which xtask prints in its summary.

use std::io::Write;

/// True when a missing oracle must fail the test.
pub fn required() -> bool {
    let set = |k: &str, yes: &[&str]| std::env::var(k).is_ok_and(|v| yes.contains(&v.as_str()));
    set("CI", &["true", "1"]) || set("VIGIL_REQUIRE_ORACLES", &["1", "true"])
}

/// Reports that `test` cannot run because `what` is missing (`install` says how to get
/// it). Panics when oracles are required; the caller returns otherwise.
pub fn missing(test: &str, what: &str, install: &str) {
    let line = format!("{test}: {what} missing ({install})");
    assert!(
        !required(),
        "oracle missing, and oracles are required here (CI or VIGIL_REQUIRE_ORACLES=1): {line}"
    );
    println!("SKIPPED: {line}");
    if let Some(path) = std::env::var_os("VIGIL_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            // One line per skipped test; a failed write only loses the summary line, and
            // the SKIPPED line above still says it.
            let _ = writeln!(f, "{line}");
        }
    }
}
