//! docs/verifier.md draws its table of checks from the code: the section between its
//! `checks:begin` and `checks:end` markers must be exactly `catalog::markdown_table()`
//! (which `vigil-verify --list-checks` prints), so a check added, renamed or removed in
//! the code without the docs fails here.

use attestation::catalog::{markdown_table, CHECKS};

const DOC: &str = include_str!("../../docs/verifier.md");

fn section() -> &'static str {
    let begin = DOC.find("<!-- checks:begin").expect("checks:begin marker");
    let body = &DOC[begin..];
    let start = body.find('\n').expect("line after the marker") + 1;
    let end = body.find("<!-- checks:end -->").expect("checks:end marker");
    &body[start..end]
}

#[test]
fn docs_table_is_the_catalog() {
    assert_eq!(
        section(),
        markdown_table(),
        "docs/verifier.md's check table differs from attestation::catalog::CHECKS; \
         paste `vigil-verify --list-checks` between the markers"
    );
}

#[test]
fn docs_list_exactly_the_catalog_names() {
    let names: Vec<&str> = section()
        .lines()
        .skip(2)
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim)
        .collect();
    let want: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
    assert_eq!(names, want);
}

#[test]
fn list_checks_prints_the_catalog() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-verify"))
        .arg("--list-checks")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), markdown_table());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-verify"))
        .args(["--list-checks", "--json"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["checks"].as_array().unwrap().len(), CHECKS.len());
    assert_eq!(j["checks"][0]["name"], CHECKS[0].name);
}
