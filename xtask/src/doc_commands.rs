//! The commands the README and docs/ tell people to run must keep working: every line
//! of a code block that starts with `cargo ` is checked here (test only). `cargo xtask`
//! lines must parse with xtask's own command line and name real steps and fuzz targets;
//! `cargo run|bench|test -p PKG [--bin B] [--example E] [--bench B]` lines must name a
//! workspace package and a target it has (from `cargo metadata`). A figure in the docs
//! is only reproducible while the command that made it still exists.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use clap::Parser;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `(file, line number, words)` of every `cargo ...` line inside a code block.
    fn doc_commands() -> Vec<(String, usize, Vec<String>)> {
        let mut files = vec![root().join("README.md")];
        let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
            .expect("docs/")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable doc");
            let mut in_block = false;
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("```") {
                    in_block = !in_block;
                    continue;
                }
                let l = line.trim();
                if in_block && l.starts_with("cargo ") {
                    let cmd = l.split(" #").next().unwrap_or(l);
                    let words = cmd.split_whitespace().map(str::to_string).collect();
                    out.push((f.display().to_string(), i + 1, words));
                }
            }
        }
        out
    }

    struct Pkg {
        name: String,
        targets: Vec<(String, String)>, // (kind, name)
    }

    fn packages() -> Vec<Pkg> {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(root())
            .output()
            .expect("cargo metadata runs");
        assert!(out.status.success(), "cargo metadata failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
        v["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| Pkg {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                targets: p["targets"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .flat_map(|t| {
                                let name = t["name"].as_str().unwrap_or_default().to_string();
                                t["kind"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|k| k.as_str())
                                    .map(move |k| (k.to_string(), name.clone()))
                                    .collect::<Vec<_>>()
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn value_of<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
        let stop = words.iter().position(|w| w == "--").unwrap_or(words.len());
        words[..stop]
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
            .map(String::as_str)
    }

    fn check_xtask(words: &[String]) -> Result<(), String> {
        let mut argv = vec!["cargo xtask".to_string()];
        argv.extend(words[2..].iter().cloned());
        let cli = crate::Cli::try_parse_from(&argv).map_err(|e| e.to_string())?;
        match cli.cmd {
            crate::Cmd::Test { only, skip, .. } => {
                for s in only.iter().chain(&skip) {
                    if !crate::TEST_STEPS.iter().any(|t| t.name == s) {
                        return Err(format!("no test step `{s}`"));
                    }
                }
            }
            crate::Cmd::Fuzz { targets, .. } => {
                let all = crate::fuzz::targets(&root()).map_err(|e| e.to_string())?;
                for t in targets {
                    if !all.contains(&t) {
                        return Err(format!("no fuzz target `{t}`"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_cargo(words: &[String], pkgs: &[Pkg]) -> Result<(), String> {
        let Some(p) = value_of(words, "-p") else {
            return Ok(()); // workspace-wide commands (`cargo test`) need no lookup
        };
        let pkg = pkgs
            .iter()
            .find(|k| k.name == p)
            .ok_or(format!("no workspace package `{p}`"))?;
        for (flag, kind) in [
            ("--bin", "bin"),
            ("--example", "example"),
            ("--bench", "bench"),
        ] {
            if let Some(n) = value_of(words, flag) {
                if !pkg.targets.iter().any(|(k, t)| k == kind && t == n) {
                    return Err(format!("package `{p}` has no {kind} `{n}`"));
                }
            }
        }
        if words[1] == "bench" && !pkg.targets.iter().any(|(k, _)| k == "bench") {
            return Err(format!("package `{p}` has no benchmark"));
        }
        if words[1] == "run"
            && value_of(words, "--bin").is_none()
            && value_of(words, "--example").is_none()
            && !pkg.targets.iter().any(|(k, _)| k == "bin")
        {
            return Err(format!("package `{p}` has no binary to run"));
        }
        Ok(())
    }

    #[test]
    fn every_documented_cargo_command_still_exists() {
        let cmds = doc_commands();
        assert!(
            cmds.iter()
                .any(|(f, _, w)| f.ends_with("README.md") && w[1] == "xtask"),
            "the README's commands were not found: the scan is broken"
        );
        let pkgs = packages();
        let mut bad = Vec::new();
        for (file, line, words) in &cmds {
            let r = match words.get(1).map(String::as_str) {
                Some("xtask") => check_xtask(words),
                Some("run" | "bench" | "test" | "build") => check_cargo(words, &pkgs),
                _ => Ok(()),
            };
            if let Err(e) = r {
                bad.push(format!("{file}:{line}: `{}`: {e}", words.join(" ")));
            }
        }
        assert!(
            bad.is_empty(),
            "documented commands that no longer work:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn the_check_catches_a_stale_command() {
        let pkgs = packages();
        let w = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert!(check_xtask(&w("cargo xtask test --only no-such-step")).is_err());
        assert!(check_xtask(&w("cargo xtask frobnicate")).is_err());
        assert!(check_xtask(&w("cargo xtask fuzz no_such_target")).is_err());
        assert!(check_cargo(&w("cargo run -p monitor --example no_such_example"), &pkgs).is_err());
        assert!(check_cargo(&w("cargo run -p no-such-package"), &pkgs).is_err());
        assert!(check_xtask(&w("cargo xtask test --only fmt")).is_ok());
    }
}
