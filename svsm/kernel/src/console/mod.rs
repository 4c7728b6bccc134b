//! The serial console: raw output, the `log` backend, and the lock-free emergency path.

pub mod logger;
pub mod serial;

/// Prints to the console under its lock, like `print!`.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::logger::print(format_args!($($arg)*)) };
}

/// Prints a line to the console under its lock, like `println!`.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::logger::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A writer for fault and panic reports that ignores the console lock: the interrupted
/// code may hold it, and a report that deadlocks is worse than one that interleaves.
pub fn emergency() -> serial::SerialWriter {
    serial::SerialWriter
}
