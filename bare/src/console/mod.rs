//! Output: the 16550 UART at COM1 ([`serial`]), a `log` backend on it ([`logger`]), and
//! QEMU's debug console port ([`debugcon`]).

pub mod debugcon;
pub mod logger;
pub mod serial;
