//! The crate's error type. Every error that comes from a malformed input file names the
//! file part, the field and the byte offset, so that a user can find the bad byte with a
//! hex editor (e.g. "OVMF footer table: entry at offset 0x3fd0: length 0x2 < 18").

use std::path::PathBuf;

/// Errors of every `vigil-igvm` operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A malformed input file: `what` names the structure and field, `offset` is the
    /// byte offset in the file.
    #[error("{what} at offset {offset:#x}: {msg}")]
    Format {
        /// Structure and field ("OVMF footer table: entry length").
        what: String,
        /// Byte offset of the field in the input file.
        offset: u64,
        /// What is wrong with it.
        msg: String,
    },
    /// A request the inputs cannot satisfy (missing table entry, unsupported mode, ...).
    #[error("{0}")]
    Invalid(String),
    /// The `igvm` crate refused a file or a header.
    #[error("IGVM: {0}")]
    Igvm(String),
    /// A key or signature could not be used.
    #[error("key/signature: {0}")]
    Crypto(String),
    /// The request itself is wrong (flags that contradict each other or the input):
    /// exit code 2, like a command-line usage error.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A format error.
    pub fn format(what: impl Into<String>, offset: u64, msg: impl Into<String>) -> Self {
        Self::Format {
            what: what.into(),
            offset,
            msg: msg.into(),
        }
    }
    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl Error {
    /// The process exit code for this error under the scheme shared with vigil-verify
    /// (docs/igvm.md, "Exit codes"): 1 the input was examined and is bad, 2 usage,
    /// 3 environment (a file cannot be opened, read or written).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } => 3,
            Error::Usage(_) => 2,
            Error::Format { .. } | Error::Invalid(_) | Error::Igvm(_) | Error::Crypto(_) => 1,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
