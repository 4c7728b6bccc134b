//! The console: raw output through the chosen platform (`platform::KernelPlatform`),
//! the `log` backend, and the lock-free emergency path.

pub mod hex;
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

/// A zero-sized writer to the platform's console. Before the platform is chosen its
/// output is dropped (`platform::console_write`).
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        #[cfg(target_os = "none")]
        crate::platform::console_write(s.as_bytes());
        #[cfg(not(target_os = "none"))]
        let _ = s;
        Ok(())
    }
}

/// A writer for fault and panic reports that ignores the console lock: the interrupted
/// code may hold it, and a report that deadlocks is worse than one that interleaves.
pub fn emergency() -> Console {
    Console
}
