//! Text and JSON output.
//!
//! JSON schema "vigil-verify/1" (stable; fields are only ever added):
//! `{"schema": "vigil-verify/1", "verdict": "verified"|"rejected", "policy": {..},
//!   "results": [{"input": str, "verdict": str, "test_root": bool, "product": str|null,
//!   "claims": {..}, "checks": [{"name": str, "status": "pass"|"fail"|"skip",
//!   "detail": str}]}]}`

use crate::policy::Policy;
use crate::verify::{Outcome, Status};

/// The loud line printed when the chain ends in Vigil's test root.
pub const TEST_ROOT_WARNING: &str = "WARNING: this evidence is signed by Vigil's TEST root (simulated or emulated security processor). It does NOT come from AMD hardware and proves nothing about a real SEV-SNP machine.";

/// Text for one outcome.
pub fn text(input: &str, o: &Outcome) -> String {
    let mut s = format!("== {input}\n");
    if o.test_root {
        s.push_str(TEST_ROOT_WARNING);
        s.push('\n');
    }
    let w = o.checks.iter().map(|c| c.name.len()).max().unwrap_or(10);
    for c in &o.checks {
        let st = match c.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        s.push_str(&format!("{st}  {:w$}  {}\n", c.name, c.detail));
    }
    let fails = o.checks.iter().filter(|c| c.status == Status::Fail).count();
    if o.verified() {
        s.push_str(&format!(
            "verdict: VERIFIED{}\n",
            if o.test_root {
                " (TEST root, not AMD hardware)"
            } else {
                ""
            }
        ));
    } else {
        s.push_str(&format!("verdict: REJECTED ({fails} check(s) failed)\n"));
    }
    s
}

/// The JSON document for a run.
pub fn json(policy: &Policy, results: &[(String, Outcome)]) -> serde_json::Value {
    let all = results.iter().all(|r| r.1.verified());
    serde_json::json!({
        "schema": "vigil-verify/1",
        "verdict": if all { "verified" } else { "rejected" },
        "policy": policy,
        "results": results.iter().map(|(input, o)| serde_json::json!({
            "input": input,
            "verdict": o.verdict,
            "test_root": o.test_root,
            "warning": if o.test_root { Some(TEST_ROOT_WARNING) } else { None },
            "product": o.product.map(|p| p.name()),
            "claims": o.claims,
            "checks": o.checks,
        })).collect::<Vec<_>>(),
    })
}

/// Echo of the effective policy in text form.
pub fn policy_text(p: &Policy) -> String {
    let t = toml::to_string(p).unwrap_or_default();
    let mut s = String::from("policy (effective; absent fields unchecked, defaults: allow_debug=false, allow_migration_agent=false, allow_provisional_firmware=false, allow_masked_chip_id=false):\n");
    if t.trim().is_empty() {
        s.push_str("  (no policy file)\n");
    }
    for l in t.lines() {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    s
}
