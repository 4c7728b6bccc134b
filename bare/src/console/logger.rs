//! The `log` backend: every record goes to COM1 as `[LEVEL] target: message`.
//!
//! One spin lock serialises whole lines (so that lines of different contexts never
//! interleave). Exception reports do not take it (they write to [`Serial`] directly).

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};
use spin::Mutex;

use super::serial::Serial;

static LOCK: Mutex<()> = Mutex::new(());

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let _guard = LOCK.lock();
        // A serial write cannot fail; the Result is only fmt's plumbing.
        let _ = writeln!(
            Serial,
            "[{:<5}] {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the logger with the given maximum level (COM1 must be initialised first:
/// [`super::serial::init`]).
pub fn init(level: LevelFilter) {
    // `set_logger` fails only when called twice; the second call then keeps the first
    // logger, which is the same object, so the error carries no information.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Parses a level name as given on a command line (`log=debug`).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_parse_and_unknown_is_refused() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("trace"), Some(LevelFilter::Trace));
        assert_eq!(parse_level("loud"), None);
    }
}
