//! Running cargo (and other tools) with captured output.
//!
//! Output is captured rather than streamed so that each step prints one progress line;
//! the captured text is shown when the step fails. Lines cargo prints when it compiles
//! or checks a crate (`Compiling x`, `Checking x`) are counted: a run where every step
//! counts zero rebuilt nothing, which is how `cargo xtask test` proves its caching.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use crate::error::{Result, XtaskError};

/// What a captured command did.
#[derive(Debug, Default)]
pub struct Captured {
    /// Exit status was success.
    pub success: bool,
    /// Exit status as text.
    pub status: String,
    /// stdout then stderr, as text.
    pub output: String,
    /// Crates cargo compiled or checked (from its `Compiling`/`Checking` lines).
    pub compiled: Vec<String>,
}

/// The crates named by cargo's `Compiling x v1` / `Checking x v1` lines in `text`.
pub fn compiled_crates(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("Compiling ")
                .or_else(|| l.strip_prefix("Checking "))
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        })
        .collect()
}

fn read_all(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let mut buf = Vec::new();
        if r.read_to_end(&mut buf).is_ok() {
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

/// Runs `program args...` in `dir`, capturing its output.
pub fn capture(program: &str, args: &[&str], dir: &Path) -> Result<Captured> {
    capture_env(program, args, dir, &[])
}

/// [`capture`] with extra environment variables.
pub fn capture_env(
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
) -> Result<Captured> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| XtaskError::Spawn {
            program: program.to_string(),
            source,
        })?;
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let status = child.wait().map_err(|source| XtaskError::Spawn {
        program: program.to_string(),
        source,
    })?;
    let mut output = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    output.push_str(&stderr);
    Ok(Captured {
        success: status.success(),
        status: status.to_string(),
        compiled: compiled_crates(&stderr),
        output,
    })
}

/// Runs cargo with `args` in the repository root, capturing its output.
pub fn cargo(args: &[&str], root: &Path) -> Result<Captured> {
    capture("cargo", args, root)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Streams a command's output lines to a callback (used for long runs shown live).
pub fn stream_lines(r: impl Read, mut f: impl FnMut(&str)) {
    for line in BufReader::new(r).split(b'\n').map_while(|l| l.ok()) {
        f(&String::from_utf8_lossy(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_compiling_and_checking_lines() {
        let text = "   Compiling log v0.4.28\n    Checking svsm v0.1.0 (/w/svsm/kernel)\n    Finished `dev` profile\n   Fresh x\n";
        assert_eq!(compiled_crates(text), vec!["log", "svsm"]);
        assert!(compiled_crates("    Finished `release` profile [optimized]\n").is_empty());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
