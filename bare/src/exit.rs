//! Ending a QEMU run with a status through the isa-debug-exit device.
//!
//! QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=4`. Writing `v` to
//! port 0xf4 makes QEMU exit with status `(v << 1) | 1` (QEMU hw/misc/debugexit.c), so
//! every status is odd and none can be confused with QEMU's own 0 or 1.

use x86_64::instructions::port::Port;

/// The isa-debug-exit port.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The process status QEMU exits with after `value` is written to the port.
pub const fn qemu_status(value: u32) -> i32 {
    ((value as i32) << 1) | 1
}

/// Writes `value` to isa-debug-exit; without the device, halts forever.
pub fn qemu_exit(value: u32) -> ! {
    // SAFETY: a port write touches no memory; QEMU ends the process on it.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_odd_and_shifted() {
        assert_eq!(qemu_status(0x10), 33);
        assert_eq!(qemu_status(0x12), 37);
    }
}
