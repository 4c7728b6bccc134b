//! Text and JSON output.
//!
//! JSON schema "vigil-verify/1" (stable; fields are only ever added):
//! `{"schema": "vigil-verify/1", "verdict": "verified"|"rejected"|"error",
//!   "exit_code": n, "error": null|{"class": str, "message": str}, "policy": {..}|null,
//!   "results": [{"input": str, "verdict": str, "test_root": bool, "product": str|null,
//!   "claims": {..}|null, "checks": [{"name": str, "status": "pass"|"fail"|"skip",
//!   "detail": str, "proves": str}], "error": null|{..}}]}`

use crate::policy::Policy;
use crate::verify::{Outcome, Status};

/// The loud line printed when the chain ends in Vigil's test root.
pub const TEST_ROOT_WARNING: &str = "WARNING: this evidence is signed by Vigil's TEST root (simulated or emulated security processor). It does NOT come from AMD hardware and proves nothing about a real SEV-SNP machine.";

/// The measured values a first policy is written from: MEASUREMENT, REPORT_DATA,
/// HOST_DATA, the guest POLICY, the TCBs, CHIP_ID (empty when the report did not
/// decode).
pub fn values_text(claims: &serde_json::Value) -> String {
    if claims.is_null() {
        return String::new();
    }
    let f = |k: &str| match &claims[k] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let tcb = |k: &str| {
        let t = &claims[k];
        let fmc = match &t["fmc"] {
            serde_json::Value::Null => String::new(),
            v => format!("fmc={v} "),
        };
        format!(
            "{} ({fmc}bl={} tee={} snp={} ucode={})",
            f_raw(t),
            t["bl"],
            t["tee"],
            t["snp"],
            t["ucode"]
        )
    };
    let mut s = format!(
        "report: version {}, VMPL {}, GUEST_SVN {}, signed by {}, firmware {}\n",
        f("version"),
        f("vmpl"),
        f("guest_svn"),
        f("signing_key").to_uppercase(),
        f("current_version")
    );
    for (label, v) in [
        ("MEASUREMENT", f("measurement")),
        ("REPORT_DATA", f("report_data")),
        ("HOST_DATA", f("host_data")),
        ("POLICY", policy_bits(&f("policy"))),
        ("REPORTED_TCB", tcb("reported_tcb")),
        ("CURRENT_TCB", tcb("current_tcb")),
        ("COMMITTED_TCB", tcb("committed_tcb")),
        ("LAUNCH_TCB", tcb("launch_tcb")),
        ("CHIP_ID", f("chip_id")),
    ] {
        s.push_str(&format!("  {label:13} {v}\n"));
    }
    s
}

fn f_raw(t: &serde_json::Value) -> String {
    t["raw"].as_str().unwrap_or("").to_string()
}

/// The guest POLICY value with its named bits (#56860, guest policy structure).
fn policy_bits(hex: &str) -> String {
    use svsm_abi::report::policy as pol;
    let Ok(v) = u64::from_str_radix(hex.trim_start_matches("0x"), 16) else {
        return hex.to_string();
    };
    let mut names = vec![format!(
        "ABI>={}.{}",
        (v >> pol::ABI_MAJOR_SHIFT) & 0xFF,
        v & pol::ABI_MINOR_MASK
    )];
    for (bit, name) in [
        (pol::SMT, "SMT"),
        (pol::MIGRATE_MA, "MIGRATE_MA"),
        (pol::DEBUG, "DEBUG"),
        (pol::SINGLE_SOCKET, "SINGLE_SOCKET"),
        (pol::CXL_ALLOW, "CXL_ALLOW"),
        (pol::MEM_AES_256_XTS, "MEM_AES_256_XTS"),
        (pol::RAPL_DIS, "RAPL_DIS"),
        (pol::CIPHERTEXT_HIDING, "CIPHERTEXT_HIDING"),
        (pol::PAGE_SWAP_DISABLE, "PAGE_SWAP_DISABLE"),
    ] {
        if v & bit != 0 {
            names.push(name.to_string());
        }
    }
    format!("{hex} ({})", names.join(" "))
}

/// Text for one outcome.
pub fn text(input: &str, o: &Outcome) -> String {
    let mut s = format!("== {input}\n");
    if o.test_root {
        s.push_str(TEST_ROOT_WARNING);
        s.push('\n');
    }
    s.push_str(&values_text(&o.claims));
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

/// One element of the JSON document's `results`.
pub fn result_json(input: &str, o: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "input": input,
        "verdict": o.verdict,
        "test_root": o.test_root,
        "warning": if o.test_root { Some(TEST_ROOT_WARNING) } else { None },
        "product": o.product.map(|p| p.name()),
        "claims": o.claims,
        "checks": o.checks,
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
