//! xtask's error type.

use std::path::PathBuf;

/// Everything that can stop an xtask command.
#[derive(Debug, thiserror::Error)]
pub enum XtaskError {
    /// A program could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status})")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status, as text.
        status: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel image breaks a rule (names the ELF field and its offset).
    #[error("kernel image {path}: {what}")]
    BadImage {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// QEMU is missing and could not be installed here.
    #[error("qemu-system-x86_64 not found on PATH; install it with: {install_hint}")]
    NoQemu {
        /// The exact command to run.
        install_hint: String,
    },
    /// A run or check produced the wrong result.
    #[error("{0}")]
    Check(String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, XtaskError>;
