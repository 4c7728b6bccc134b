//! Printing: text as results come, JSON once at the end, and a JSON document on every
//! exit when `--json` is given (also for a refused command line). Output that goes to
//! a closed pipe (`vigil-verify --json | head -1`) stops quietly: a reader that has
//! seen enough is not an error, and the exit code still says what was verified.

use std::io::Write;

use super::{AppError, Class, InputResult, Run};
use crate::output;
use crate::policy::Policy;

/// Writes to stdout; a broken pipe ends output silently, other write errors are named
/// once on stderr.
pub fn out(s: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static CLOSED: AtomicBool = AtomicBool::new(false);
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|()| o.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("vigil-verify: cannot write the output: {e}");
        }
    }
}

fn error_json(e: &AppError) -> serde_json::Value {
    serde_json::json!({"class": e.class(), "message": e.to_string()})
}

/// The JSON of a run that stopped before any input (or of a refused command line).
pub fn fatal(json: bool, policy: Option<&Policy>, e: &AppError) {
    if json {
        let doc = serde_json::json!({
            "schema": "vigil-verify/1",
            "verdict": "error",
            "exit_code": e.class().exit_code(),
            "error": error_json(e),
            "policy": policy,
            "results": [],
        });
        out(&format!("{doc:#}\n"));
    }
    eprintln!("vigil-verify: error: {e}");
}

/// Text for one input of a batch.
pub fn text_result(r: &InputResult) {
    match &r.outcome {
        Ok(o) => {
            if o.test_root {
                eprintln!("{}", output::TEST_ROOT_WARNING);
            }
            out(&output::text(&r.input, o));
        }
        Err(e) => {
            out(&format!(
                "== {}\nerror ({}): {e}\nverdict: {}\n",
                r.input,
                e.class().name(),
                verdict(r.class()).to_uppercase()
            ));
            eprintln!("vigil-verify: error: {e}");
        }
    }
}

fn verdict(c: Class) -> &'static str {
    match c {
        Class::Verified => "verified",
        Class::Rejected => "rejected",
        Class::Usage | Class::Environment => "error",
    }
}

/// One element of `results` in the JSON.
fn result_json(r: &InputResult) -> serde_json::Value {
    match &r.outcome {
        Ok(o) => {
            let mut v = output::result_json(&r.input, o);
            v["error"] = serde_json::Value::Null;
            v
        }
        Err(e) => serde_json::json!({
            "input": r.input,
            "verdict": verdict(r.class()),
            "test_root": false,
            "warning": null,
            "product": null,
            "claims": null,
            "checks": [],
            "error": error_json(e),
        }),
    }
}

/// Prints what remains after the inputs: the fatal error, or the JSON document, or the
/// batch line.
pub fn finish(cli: &super::Cli, run: &Run) {
    if let Some(e) = &run.fatal {
        return fatal(cli.json, run.policy.as_ref(), e);
    }
    let class = run.class();
    if cli.json {
        let doc = serde_json::json!({
            "schema": "vigil-verify/1",
            "verdict": verdict(class),
            "exit_code": class.exit_code(),
            "error": null,
            "policy": run.policy,
            "results": run.results.iter().map(result_json).collect::<Vec<_>>(),
        });
        out(&format!("{doc:#}\n"));
    } else if run.results.len() > 1 {
        let ok = run
            .results
            .iter()
            .filter(|r| r.class() == Class::Verified)
            .count();
        out(&format!("batch: {ok} of {} verified\n", run.results.len()));
    }
}

/// `--list-checks`: the catalog as a Markdown table, or as JSON.
pub fn list_checks(json: bool) {
    if json {
        let doc = serde_json::json!({
            "schema": "vigil-verify/1",
            "checks": crate::catalog::CHECKS,
        });
        out(&format!("{doc:#}\n"));
    } else {
        out(&crate::catalog::markdown_table());
    }
}
