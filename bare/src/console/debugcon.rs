//! QEMU's debug console: every byte written to I/O port 0xE9 goes to the file or chardev
//! of `-debugcon` (QEMU hw/char/debugcon.c, default iobase 0xe9). A channel out of the
//! machine that a guest under SVM never reaches when its I/O is intercepted.

use x86_64::instructions::port::Port;

/// The debugcon port.
pub const DEBUGCON_PORT: u16 = 0xe9;

/// Writes `bytes` to the debug console, unchanged.
pub fn write_bytes(bytes: &[u8]) {
    let mut port = Port::<u8>::new(DEBUGCON_PORT);
    for &b in bytes {
        // SAFETY: a write to QEMU's debugcon port touches no memory; without the device
        // the write goes nowhere.
        unsafe { port.write(b) }
    }
}
