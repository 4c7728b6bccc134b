//! The pinned toolchain and its bare-metal target, installed and then checked.
//!
//! Why this is not just `rustup toolchain install`: inside `cargo xtask`, cargo has set
//! `RUSTUP_TOOLCHAIN` to the toolchain it runs on. A `rustup toolchain install` started
//! from here then installs (or finds) that toolchain by name and ignores
//! rust-toolchain.toml's `targets` and `components`, so on a fresh machine it returned at
//! once and the kernel build failed with "can't find crate for `core`". So this module
//! reads the pin itself, asks rustup for each target and component by name, with
//! `RUSTUP_TOOLCHAIN` removed from rustup's environment, and then checks the result where
//! the compiler will look for it (the sysroot's `lib/rustlib/<target>/lib`), rather than
//! taking rustup's exit status as proof.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Result, XtaskError};

/// What rust-toolchain.toml pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The channel (`1.95.0`).
    pub channel: String,
    /// Targets to install besides the host's.
    pub targets: Vec<String>,
    /// Components to install besides the profile's.
    pub components: Vec<String>,
}

/// Reads the `[toolchain]` table of rust-toolchain.toml.
pub fn parse_pin(text: &str) -> std::result::Result<Pin, String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let t = doc
        .get("toolchain")
        .and_then(|v| v.as_table())
        .ok_or("no [toolchain] table")?;
    let channel = t
        .get("channel")
        .and_then(|v| v.as_str())
        .ok_or("[toolchain] has no channel string")?
        .to_string();
    let list = |key: &str| -> std::result::Result<Vec<String>, String> {
        match t.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .ok_or(format!("[toolchain].{key} is not an array"))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or(format!("[toolchain].{key} holds a non-string"))
                })
                .collect(),
        }
    };
    Ok(Pin {
        channel,
        targets: list("targets")?,
        components: list("components")?,
    })
}

/// Runs `program args` with `RUSTUP_TOOLCHAIN` (and cargo's own toolchain variables)
/// removed, so that rustup acts on the toolchain named in `args` alone.
fn run_clean(program: &str, args: &[&str], dir: &Path) -> Result<(bool, String)> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| XtaskError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// The sysroot of `channel` (`rustc --print sysroot` run through rustup).
fn sysroot(channel: &str, dir: &Path) -> Result<PathBuf> {
    let (ok, out) = run_clean(
        "rustup",
        &["run", channel, "rustc", "--print", "sysroot"],
        dir,
    )?;
    if !ok {
        return Err(XtaskError::Check(format!(
            "`rustup run {channel} rustc --print sysroot` failed:\n{}",
            crate::cargo::tail(&out, 10)
        )));
    }
    Ok(PathBuf::from(out.trim()))
}

/// True when the sysroot holds a `core` library for `target`: what the compiler needs,
/// and what was missing on the fresh machine.
pub fn target_in_sysroot(sysroot: &Path, target: &str) -> bool {
    let lib = sysroot.join("lib").join("rustlib").join(target).join("lib");
    std::fs::read_dir(&lib)
        .map(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("libcore-") && n.ends_with(".rlib")
            })
        })
        .unwrap_or(false)
}

/// Installs the pinned toolchain, its targets and its components, then checks that each
/// target's `core` is in the sysroot. Returns the step's one-line detail.
pub fn ensure(root: &Path) -> Result<String> {
    let file = root.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file).map_err(|source| XtaskError::Io {
        path: file.clone(),
        source,
    })?;
    let pin =
        parse_pin(&text).map_err(|e| XtaskError::Check(format!("{}: {e}", file.display())))?;
    if which("rustup").is_none() {
        return without_rustup(&pin);
    }
    let ch = pin.channel.as_str();
    let mut did = Vec::new();
    let before = sysroot(ch, root).ok();
    let missing: Vec<&str> = pin
        .targets
        .iter()
        .map(String::as_str)
        .filter(|t| before.as_deref().is_none_or(|s| !target_in_sysroot(s, t)))
        .collect();
    if before.is_none() {
        let (ok, out) = run_clean(
            "rustup",
            &["toolchain", "install", ch, "--profile", "minimal"],
            root,
        )?;
        if !ok {
            return Err(failed(
                &format!("rustup toolchain install {ch} --profile minimal"),
                &out,
            ));
        }
        did.push(format!("installed toolchain {ch}"));
    }
    if !missing.is_empty() {
        let mut args = vec!["target", "add", "--toolchain", ch];
        args.extend(missing.iter().copied());
        let (ok, out) = run_clean("rustup", &args, root)?;
        if !ok {
            return Err(failed(&format!("rustup {}", args.join(" ")), &out));
        }
        did.push(format!("added target {}", missing.join(", ")));
    }
    if !pin.components.is_empty() {
        // Idempotent: rustup says "is up to date" for what is there.
        let mut args = vec!["component", "add", "--toolchain", ch];
        args.extend(pin.components.iter().map(String::as_str));
        let (ok, out) = run_clean("rustup", &args, root)?;
        if !ok {
            return Err(failed(&format!("rustup {}", args.join(" ")), &out));
        }
    }
    // The check that counts: the compiler's sysroot, after the installs.
    let sys = sysroot(ch, root)?;
    for t in &pin.targets {
        if !target_in_sysroot(&sys, t) {
            return Err(XtaskError::Check(format!(
                "target {t} is still missing from {} after `rustup target add`; install it with: rustup target add --toolchain {ch} {t}",
                sys.join("lib/rustlib").join(t).join("lib").display()
            )));
        }
    }
    let what = if did.is_empty() {
        "already present".to_string()
    } else {
        did.join("; ")
    };
    Ok(format!(
        "toolchain {ch} with {} ({what}; checked in {})",
        pin.targets.join(", "),
        sys.display()
    ))
}

/// Without rustup the compiler on PATH must already have the targets: checked, not
/// assumed.
fn without_rustup(pin: &Pin) -> Result<String> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|source| XtaskError::Spawn {
            program: "rustc".into(),
            source,
        })?;
    let sys = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for t in &pin.targets {
        if !target_in_sysroot(&sys, t) {
            return Err(XtaskError::Check(format!(
                "rustup is not on PATH and the rustc on PATH has no {t} target (no libcore in {}); install rustup (https://rustup.rs) or a Rust {} with the {t} target",
                sys.join("lib/rustlib").join(t).join("lib").display(),
                pin.channel
            )));
        }
    }
    Ok(format!(
        "rustup not found: the rustc on PATH has {} (checked in {})",
        pin.targets.join(", "),
        sys.display()
    ))
}

fn failed(command: &str, out: &str) -> XtaskError {
    XtaskError::CommandFailed {
        command: command.to_string(),
        status: crate::cargo::tail(out, 20),
    }
}

/// The first `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_of_the_repository_names_the_bare_metal_target() {
        let text = include_str!("../../rust-toolchain.toml");
        let pin = parse_pin(text).expect("the repository's pin parses");
        assert!(pin.targets.iter().any(|t| t == "x86_64-unknown-none"));
        assert!(pin.components.iter().any(|c| c == "clippy"));
        assert!(!pin.channel.is_empty());
    }

    #[test]
    fn pin_errors_name_what_is_wrong() {
        assert!(parse_pin("[other]\n").unwrap_err().contains("[toolchain]"));
        assert!(parse_pin("[toolchain]\ntargets = []\n")
            .unwrap_err()
            .contains("channel"));
        assert!(parse_pin("[toolchain]\nchannel = \"1\"\ntargets = \"x\"\n")
            .unwrap_err()
            .contains("targets"));
    }

    #[test]
    fn target_check_requires_libcore_in_the_sysroot() {
        let dir = std::env::temp_dir().join(format!("xtask-sysroot-{}", std::process::id()));
        let lib = dir.join("lib/rustlib/x86_64-unknown-none/lib");
        std::fs::create_dir_all(&lib).expect("temp dir");
        // An empty target folder (what a half-removed target leaves) is not enough.
        assert!(!target_in_sysroot(&dir, "x86_64-unknown-none"));
        std::fs::write(lib.join("libcore-0123.rlib"), b"").expect("write");
        assert!(target_in_sysroot(&dir, "x86_64-unknown-none"));
        assert!(!target_in_sysroot(&dir, "aarch64-unknown-none"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
