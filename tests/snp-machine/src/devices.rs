//! The host's devices as the guest reaches them through the GHCB (IOIO and MMIO exits
//! that the machine forwards to `snp_model::host::Devices`).
//!
//! - COM1 (ports 0x3F8..0x3FF): bytes written to THR go to the model's own COM1, so the
//!   guest's console appears in the same serial stream as the model's log (not while
//!   LCR.DLAB is set: +0 is then the divisor latch); LSR (0x3FD) reads "transmitter
//!   empty" (0x60) so a polling writer never waits.
//! - isa-debug-exit (port 0xF4): the value the guest writes is kept; the run loop ends
//!   the run with it (`run::run_machine`).
//! - Everything else: writes are dropped, reads return all ones (an absent ISA device)
//!   and MMIO reads return zeros.

use bare::console::serial;

/// COM1's base port (PC16550D: THR at +0, LSR at +5).
const COM1: u16 = 0x3f8;
/// isa-debug-exit.
const DEBUG_EXIT: u16 = 0xf4;
/// LCR bit 7: divisor latch access.
const DLAB: u8 = 1 << 7;

/// The model's devices.
#[derive(Debug, Default)]
pub struct ModelDevices {
    /// The value the guest wrote to isa-debug-exit, if any.
    pub debug_exit: Option<u32>,
    /// Bytes the guest wrote to COM1.
    pub console_bytes: u64,
    /// COM1's line control register (bit 7, DLAB, turns +0 into the divisor latch).
    lcr: u8,
}

impl snp_model::host::Devices for ModelDevices {
    fn io_in(&mut self, port: u16, size: u8) -> u32 {
        match port {
            p if p == COM1 + 5 => 0x60,
            p if (COM1..COM1 + 8).contains(&p) => 0,
            _ => match size {
                1 => 0xff,
                2 => 0xffff,
                _ => 0xffff_ffff,
            },
        }
    }

    fn io_out(&mut self, port: u16, _size: u8, value: u32) {
        if port == COM1 && self.lcr & DLAB == 0 {
            self.console_bytes += 1;
            serial::write_bytes(&[value as u8]);
        } else if port == COM1 + 3 {
            self.lcr = value as u8;
        } else if port == DEBUG_EXIT {
            self.debug_exit = Some(value);
        }
    }

    fn mmio_read(&mut self, _gpa: u64, out: &mut [u8]) {
        out.fill(0);
    }

    fn mmio_write(&mut self, _gpa: u64, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use snp_model::host::Devices;

    #[test]
    fn debug_exit_is_kept_and_the_uart_is_always_ready() {
        let mut d = ModelDevices::default();
        assert_eq!(d.io_in(COM1 + 5, 1), 0x60);
        assert_eq!(d.io_in(0x60, 1), 0xff);
        assert_eq!(d.io_in(0x60, 4), 0xffff_ffff);
        // A divisor written with DLAB set is not console output.
        d.io_out(COM1 + 3, 1, 0x80);
        d.io_out(COM1, 1, 0x01);
        d.io_out(COM1 + 3, 1, 0x03);
        assert_eq!(d.console_bytes, 0);
        d.io_out(DEBUG_EXIT, 4, 0x10);
        assert_eq!(d.debug_exit, Some(0x10));
        let mut b = [1u8; 4];
        d.mmio_read(0xfee0_0000, &mut b);
        assert_eq!(b, [0; 4]);
    }
}
