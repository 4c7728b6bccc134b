//! Reading the in-kernel test output (the contract of svsm/kernel/src/ktest/mod.rs) and
//! judging runs.

use std::time::Duration;

use crate::qemu::{
    describe_status, BootOutcome, STATUS_FATAL, STATUS_SUCCESS, STATUS_TESTS_FAILED,
};

/// One test's result line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestLine {
    /// Test name.
    pub name: String,
    /// Passed?
    pub ok: bool,
}

/// The parsed test output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Result lines in order.
    pub results: Vec<TestLine>,
    /// `ktest-detail:` lines.
    pub details: Vec<String>,
    /// The summary line's (passed, failed), if printed.
    pub summary: Option<(usize, usize)>,
}

impl Report {
    /// Names of failed tests.
    pub fn failed(&self) -> Vec<&str> {
        self.results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// Number of passed tests.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.ok).count()
    }
}

/// Parses serial lines. Lines may carry firmware noise before the marker.
pub fn parse<S: AsRef<str>>(lines: &[S]) -> Report {
    let mut r = Report::default();
    for l in lines {
        let l = l.as_ref();
        if let Some(i) = l.find("ktest-detail: ") {
            r.details.push(l[i + "ktest-detail: ".len()..].to_string());
            continue;
        }
        let Some(i) = l.find("ktest: ") else { continue };
        let body = l[i + "ktest: ".len()..].trim_end();
        if let Some((name, verdict)) = body.split_once(" ... ") {
            if verdict == "ok" {
                r.results.push(TestLine {
                    name: name.to_string(),
                    ok: true,
                });
            } else if verdict.starts_with("FAILED") {
                r.results.push(TestLine {
                    name: name.to_string(),
                    ok: false,
                });
            }
        } else if let Some((p, f)) = body.split_once(" passed, ") {
            if let (Ok(p), Some(Ok(f))) = (
                p.parse::<usize>(),
                f.strip_suffix(" failed").map(str::parse::<usize>),
            ) {
                r.summary = Some((p, f));
            }
        }
    }
    r
}

/// Judges a `ktest=all` run: Ok(report) only if QEMU exited 33, the summary is present,
/// agrees with the result lines, and nothing failed. The error names every failed test.
pub fn judge_suite(o: &BootOutcome) -> Result<Report, String> {
    let r = parse(&o.lines);
    let failed = r.failed();
    if o.timed_out {
        return Err(format!(
            "kernel hung (killed after the timeout); {} test(s) reported; last output:\n{}",
            r.results.len(),
            o.last_lines(15)
        ));
    }
    if !failed.is_empty() {
        let details: Vec<&str> = r.details.iter().map(String::as_str).collect();
        return Err(format!(
            "in-kernel test(s) failed: {} (status {})\n{}",
            failed.join(", "),
            describe_status(o.status),
            details.join("\n")
        ));
    }
    match (o.status, r.summary) {
        (Some(STATUS_SUCCESS), Some((p, 0))) if p == r.results.len() && p > 0 => Ok(r),
        (Some(STATUS_SUCCESS), Some(s)) => Err(format!(
            "summary {s:?} disagrees with {} result lines",
            r.results.len()
        )),
        (status, _) => Err(format!(
            "kernel exited with {} without a complete test summary; last output:\n{}",
            describe_status(status),
            o.last_lines(15)
        )),
    }
}

/// What a solo test must produce.
pub struct SoloExpectation {
    /// The `ktest=` name.
    pub name: &'static str,
    /// Required QEMU status; `None`: the run must hang and be killed after `timeout`.
    pub status: Option<i32>,
    /// Wall-time limit for this boot.
    pub timeout: Duration,
    /// Substrings that must each appear in some serial line.
    pub must_show: &'static [&'static str],
}

/// Timeout of a solo boot that is expected to end by itself.
pub const SOLO_TIMEOUT: Duration = Duration::from_secs(60);

/// The solo tests xtask runs, one boot each.
pub const SOLO: &[SoloExpectation] = &[
    SoloExpectation {
        name: "hang",
        status: None,
        // Proves the hang path: the kernel halts forever; xtask kills it after this
        // timeout and must still have its last output.
        timeout: Duration::from_secs(3),
        must_show: &["ktest-detail: hang: halting with interrupts off, on purpose"],
    },
    SoloExpectation {
        name: "software_interrupt_caught",
        status: Some(STATUS_SUCCESS),
        timeout: SOLO_TIMEOUT,
        must_show: &[
            "ktest: software_interrupt_caught ... ok",
            "ktest: 1 passed, 0 failed",
        ],
    },
    SoloExpectation {
        name: "stack_overflow",
        status: Some(STATUS_SUCCESS),
        timeout: SOLO_TIMEOUT,
        must_show: &[
            "EXCEPTION: vector 8 (#DF double fault)",
            "CR2 is in the guard page of the main kernel stack",
            "ktest: stack_overflow ... ok",
        ],
    },
    SoloExpectation {
        name: "unhandled_gp",
        status: Some(STATUS_FATAL),
        timeout: SOLO_TIMEOUT,
        must_show: &[
            "EXCEPTION: vector 13 (#GP general protection)",
            "error code: 0x0",
            "RIP 0x",
            "CR2 0x",
            "RAX 0x",
            "R15 0x",
        ],
    },
    SoloExpectation {
        name: "panic",
        status: Some(STATUS_FATAL),
        timeout: SOLO_TIMEOUT,
        must_show: &[
            "*** PANIC at svsm/kernel/src/ktest/tests.rs:",
            "deliberate panic",
        ],
    },
];

/// Judges a solo run against its expectation.
pub fn judge_solo(e: &SoloExpectation, o: &BootOutcome) -> Result<(), String> {
    match (e.status, o.timed_out) {
        (None, true) => {}
        (None, false) => {
            return Err(format!(
                "{}: expected a hang killed after {:?}, but QEMU exited with {}",
                e.name,
                e.timeout,
                describe_status(o.status)
            ))
        }
        (Some(_), true) => {
            return Err(format!(
                "{}: hung; last output:\n{}",
                e.name,
                o.last_lines(15)
            ))
        }
        (Some(want), false) if o.status != Some(want) => {
            return Err(format!(
                "{}: exit {} (expected {}); last output:\n{}",
                e.name,
                describe_status(o.status),
                describe_status(Some(want)),
                o.last_lines(15)
            ))
        }
        (Some(_), false) => {}
    }
    let missing: Vec<&str> = e
        .must_show
        .iter()
        .copied()
        .filter(|s| !o.has_line(s))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: output lacks {:?}; last output:\n{}",
            e.name,
            missing,
            o.last_lines(15)
        ));
    }
    Ok(())
}

/// The test compiled in only with `ktest-selftest-fail`.
pub const SELFTEST_FAILING: &str = "selftest_deliberate_failure";

/// Checks the self-test run: the suite must be judged failed, with status 35, and the
/// failure message must name exactly the deliberately failing test.
pub fn judge_selftest(o: &BootOutcome) -> Result<String, String> {
    let err = match judge_suite(o) {
        Ok(_) => return Err("a suite with a deliberately failing test was judged passing".into()),
        Err(e) => e,
    };
    if o.status != Some(STATUS_TESTS_FAILED) {
        return Err(format!(
            "expected status 35, got {}",
            describe_status(o.status)
        ));
    }
    let r = parse(&o.lines);
    if r.failed() != [SELFTEST_FAILING] {
        return Err(format!(
            "failed tests {:?}, expected [{SELFTEST_FAILING}]",
            r.failed()
        ));
    }
    if r.summary != Some((r.passed(), 1)) || r.passed() == 0 {
        return Err(format!(
            "summary {:?} does not show the other tests passing",
            r.summary
        ));
    }
    if !err.contains(SELFTEST_FAILING) {
        return Err(format!("the failure report does not name the test: {err}"));
    }
    Ok(err.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<i32>, text: &str) -> BootOutcome {
        BootOutcome {
            status,
            timed_out: false,
            lines: text.lines().map(String::from).collect(),
            stderr: String::new(),
            elapsed: Duration::from_millis(300),
            banner_at: None,
        }
    }

    const PASSING: &str = "SeaBIOS\nBooting from ROM..Vigil SVSM 0.1.0\nktest: running 2 tests\nktest: a ... ok\nktest: b ... ok\nktest: 2 passed, 0 failed\n";

    #[test]
    fn parses_results_and_summary() {
        let r = parse(&PASSING.lines().collect::<Vec<_>>());
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.summary, Some((2, 0)));
        assert!(r.failed().is_empty());
    }

    #[test]
    fn passing_suite_is_accepted() {
        assert!(judge_suite(&outcome(Some(33), PASSING)).is_ok());
    }

    #[test]
    fn failure_is_named() {
        let text = "ktest: a ... ok\nktest: broken_thing ... FAILED\nktest-detail: broken_thing: x.rs:1: no\nktest: 1 passed, 1 failed\n";
        let e = judge_suite(&outcome(Some(35), text)).unwrap_err();
        assert!(e.contains("broken_thing"), "{e}");
        assert!(e.contains("x.rs:1: no"), "{e}");
    }

    #[test]
    fn panicking_test_is_named() {
        let text =
            "ktest: a ... ok\nktest: boom ... FAILED (panicked)\n*** PANIC at x.rs:3:1: oops ***\n";
        let e = judge_suite(&outcome(Some(37), text)).unwrap_err();
        assert!(e.contains("boom"), "{e}");
    }

    #[test]
    fn missing_summary_or_wrong_status_is_refused() {
        let text = "ktest: a ... ok\n";
        assert!(judge_suite(&outcome(Some(33), text)).is_err());
        assert!(judge_suite(&outcome(Some(37), PASSING)).is_err());
        assert!(judge_suite(&outcome(Some(0), PASSING)).is_err());
        // Summary that disagrees with the lines.
        let text = "ktest: a ... ok\nktest: 2 passed, 0 failed\n";
        assert!(judge_suite(&outcome(Some(33), text)).is_err());
        // Zero tests is not a pass.
        assert!(judge_suite(&outcome(Some(33), "ktest: 0 passed, 0 failed\n")).is_err());
    }

    #[test]
    fn hang_is_reported_with_last_output() {
        let mut o = outcome(None, "ktest: a ... ok\nstuck here\n");
        o.timed_out = true;
        let e = judge_suite(&o).unwrap_err();
        assert!(e.contains("hung") && e.contains("stuck here"), "{e}");
    }

    #[test]
    fn selftest_judgement_requires_the_named_failure() {
        let good = format!(
            "ktest: a ... ok\nktest: {SELFTEST_FAILING} ... FAILED\nktest-detail: {SELFTEST_FAILING}: t.rs:9: 2 != 3\nktest: 1 passed, 1 failed\n"
        );
        assert!(judge_selftest(&outcome(Some(35), &good)).is_ok());
        // A passing run, or a different failing test, or the wrong status: refused.
        assert!(judge_selftest(&outcome(Some(33), PASSING)).is_err());
        let other = "ktest: a ... ok\nktest: other ... FAILED\nktest: 1 passed, 1 failed\n";
        assert!(judge_selftest(&outcome(Some(35), other)).is_err());
        assert!(judge_selftest(&outcome(Some(37), &good)).is_err());
    }

    #[test]
    fn solo_judgement_checks_status_and_text() {
        let e = SOLO.iter().find(|e| e.name == "stack_overflow").unwrap();
        let good = "EXCEPTION: vector 8 (#DF double fault)\nCR2 is in the guard page of the main kernel stack: stack overflow\nktest: stack_overflow ... ok\n";
        assert!(judge_solo(e, &outcome(Some(33), good)).is_ok());
        assert!(judge_solo(e, &outcome(Some(37), good)).is_err());
        assert!(judge_solo(e, &outcome(Some(33), "ktest: stack_overflow ... ok\n")).is_err());
    }

    #[test]
    fn hang_expectation_requires_a_kill_and_the_last_output() {
        let e = SOLO.iter().find(|e| e.name == "hang").unwrap();
        let line = "ktest-detail: hang: halting with interrupts off, on purpose";
        let mut o = outcome(None, line);
        o.timed_out = true;
        assert!(judge_solo(e, &o).is_ok());
        // Exiting instead of hanging, or losing the output, is a failure.
        assert!(judge_solo(e, &outcome(Some(33), line)).is_err());
        let mut lost = outcome(None, "");
        lost.timed_out = true;
        assert!(judge_solo(e, &lost).is_err());
    }
}
