//! The in-kernel test runner (cargo feature `ktest`).
//!
//! Stable Rust has no custom test frameworks, so the tests are a static list
//! ([`tests::TESTS`]) of plain functions. The kernel command line selects what runs:
//! `ktest=all` (the default) runs the whole list in one boot; `ktest=<name>` runs one test,
//! including the *solo* tests ([`tests::SOLO`]) that end their boot on purpose (stack
//! overflow into the #DF handler, an unhandled #GP, a panic) and that xtask runs one
//! boot each; `ktest=list` prints every name.
//!
//! Output contract with xtask (one line each, on COM1):
//!
//! ```text
//! ktest: <name> ... ok
//! ktest: <name> ... FAILED
//! ktest-detail: <name>: <file>:<line>: <message>
//! ktest: <passed> passed, <failed> failed
//! ```
//!
//! then an isa-debug-exit status: 33 when every test passed, 35 when one failed, 37 on a
//! panic or an unexpected exception (a test that panics is named first:
//! `ktest: <name> ... FAILED (panicked)`).

use alloc::string::String;
use core::fmt::Write;

use spin::Mutex;

use crate::boot::pvh::BootInfo;
use crate::exit::{exit, ExitCode};
use crate::kprintln;
use crate::mm::MemoryInfo;

pub mod tests;

/// What every test gets.
pub struct Ctx<'a> {
    /// The checked boot information.
    pub boot: &'a BootInfo,
    /// What memory setup did.
    pub mem: &'a MemoryInfo,
}

/// A failed check: where and why.
#[derive(Debug)]
pub struct Failure {
    /// Source file of the failed check.
    pub file: &'static str,
    /// Line of the failed check.
    pub line: u32,
    /// What was wrong.
    pub message: String,
}

/// The result of one test.
pub type TestResult = Result<(), Failure>;

/// One test.
pub struct KTest {
    /// Unique name (the `ktest=` selector and the report line).
    pub name: &'static str,
    /// The test.
    pub run: fn(&Ctx<'_>) -> TestResult,
}

/// Fails the test with a message unless the condition holds.
#[macro_export]
macro_rules! kassert {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::ktest::Failure {
                file: file!(),
                line: line!(),
                message: alloc::format!($($arg)+),
            });
        }
    };
}

static CURRENT: Mutex<Option<&'static str>> = Mutex::new(None);

/// Called by the panic handler: names the test that was running, if any.
pub fn note_panic(w: &mut impl Write) {
    if let Some(guard) = CURRENT.try_lock() {
        if let Some(name) = *guard {
            let _ = writeln!(w, "\nktest: {name} ... FAILED (panicked)");
        }
    }
}

/// Runs one test and prints its result line; true if it passed.
pub(crate) fn run_one(t: &KTest, ctx: &Ctx<'_>) -> bool {
    *CURRENT.lock() = Some(t.name);
    let r = (t.run)(ctx);
    *CURRENT.lock() = None;
    match r {
        Ok(()) => {
            kprintln!("ktest: {} ... ok", t.name);
            true
        }
        Err(f) => {
            kprintln!("ktest: {} ... FAILED", t.name);
            kprintln!(
                "ktest-detail: {}: {}:{}: {}",
                t.name,
                f.file,
                f.line,
                f.message
            );
            false
        }
    }
}

/// Prints the summary line and exits with the matching status.
pub(crate) fn finish(passed: usize, failed: usize) -> ! {
    kprintln!("ktest: {} passed, {} failed", passed, failed);
    exit(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::TestsFailed
    })
}

/// Runs the tests the command line selects, then ends the run.
pub fn run(boot: &BootInfo, mem: &MemoryInfo) -> ! {
    let ctx = Ctx { boot, mem };
    let selector = boot.option("ktest").unwrap_or("all");
    match selector {
        "list" => {
            for t in tests::TESTS {
                kprintln!("ktest-list: {}", t.name);
            }
            for s in tests::SOLO {
                kprintln!("ktest-list: {} (solo)", s.name);
            }
            exit(ExitCode::Success);
        }
        "all" => {
            kprintln!("ktest: running {} tests", tests::TESTS.len());
            let mut passed = 0;
            for t in tests::TESTS {
                if run_one(t, &ctx) {
                    passed += 1;
                }
            }
            finish(passed, tests::TESTS.len() - passed)
        }
        name => {
            if let Some(t) = tests::TESTS.iter().find(|t| t.name == name) {
                let ok = run_one(t, &ctx);
                finish(usize::from(ok), usize::from(!ok))
            } else if let Some(s) = tests::SOLO.iter().find(|s| s.name == name) {
                kprintln!("ktest: {} ... (solo test: {})", s.name, s.expect);
                (s.run)(&ctx)
            } else {
                kprintln!("ktest: no test named {name:?} (ktest=list lists them)");
                exit(ExitCode::Fatal)
            }
        }
    }
}
