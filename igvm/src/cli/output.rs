//! How the binary ends and writes: the exit-code scheme shared with vigil-verify, output
//! that survives a closed pipe, and a JSON document on every exit under `--json`.
//!
//! Exit codes (docs/igvm.md "Exit codes"): 0 success; 1 the input was examined and is
//! bad (not well-formed, lint errors, a signature that does not verify); 2 usage (bad or
//! conflicting flags, clap's own errors); 3 environment (a file cannot be opened, read or
//! written). A closed stdout (`vigil-igvm ... --json | head`) stops the output quietly,
//! as vigil-verify does: a reader that has seen enough is not an error, and the exit
//! code still says how the command went.

use std::io::Write;

use vigil_igvm::Error;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout turned out to be a closed pipe: later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Fail {
    /// Usage: bad or conflicting flags (exit 2).
    Usage(String),
    /// The input was examined and is bad (exit 1).
    Check(String),
    /// The environment: a file could not be read or written (exit 3).
    Env(String),
    /// Already reported (a batch with per-input results); exit with this code.
    Reported(u8),
}

impl Fail {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Fail::Check(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Env(_) => 3,
            Fail::Reported(c) => *c,
        }
    }
    /// The class named in JSON error documents (vigil-verify's names).
    pub fn class(&self) -> &'static str {
        match self {
            Fail::Check(_) => "rejected",
            Fail::Usage(_) => "usage",
            Fail::Env(_) => "environment",
            Fail::Reported(_) => "reported",
        }
    }
    /// Rank for a batch's exit code, most severe first as in vigil-verify: usage (2),
    /// then environment (3), then rejected (1), then success.
    pub fn severity(code: u8) -> u8 {
        match code {
            2 => 3,
            3 => 2,
            1 => 1,
            _ => 0,
        }
    }
    /// The message.
    pub fn message(&self) -> String {
        match self {
            Fail::Usage(m) | Fail::Check(m) | Fail::Env(m) => m.clone(),
            Fail::Reported(c) => format!("exit code {c}"),
        }
    }
    /// The JSON error object `{exit_code, kind, message}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "exit_code": self.code(),
            "class": self.class(),
            "message": self.message(),
        })
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e.exit_code() {
            3 => Fail::Env(e.to_string()),
            2 => Fail::Usage(e.to_string()),
            _ => Fail::Check(e.to_string()),
        }
    }
}

/// Write `s` and a newline to stdout. A closed pipe ends the output quietly (later
/// writes are dropped); another write error is an environment failure.
pub fn out(s: &str) -> Result<(), Fail> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    let r = o.write_all(s.as_bytes()).and_then(|()| {
        if s.ends_with('\n') {
            Ok(())
        } else {
            o.write_all(b"\n")
        }
    });
    match r.and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(Fail::Env(format!("stdout: {e}"))),
    }
}

/// Pretty JSON of `v` on stdout.
pub fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<(), Fail> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Fail::Env(format!("JSON: {e}")))?;
    out(&s)
}

/// A line on stderr; a closed stderr is ignored (nothing else could report it).
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}

/// End the process for `r`: the message on stderr, and under `--json` the error
/// document `{"error": {...}}` on stdout.
pub fn finish(r: Result<(), Fail>, json_mode: bool) -> std::process::ExitCode {
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Fail::Reported(c)) => std::process::ExitCode::from(c),
        Err(f) => {
            let label = if f.code() == 1 {
                "check failed"
            } else {
                "error"
            };
            note(&format!("vigil-igvm: {label}: {}", f.message()));
            if json_mode {
                let _ = json(&serde_json::json!({ "error": f.to_json() }));
            }
            std::process::ExitCode::from(f.code())
        }
    }
}
