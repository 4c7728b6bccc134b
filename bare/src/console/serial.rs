//! The 16550 UART at COM1 (I/O port 0x3f8), polled, output only.
//!
//! Register layout: the PC16550D data sheet (THR at +0, IER +1, FCR +2, LCR +3, MCR +4,
//! LSR +5; LSR bit 5 = transmit holding register empty). No lock of its own: the logger
//! serialises normal output, and fault reports write directly so that a fault while the
//! logger's lock is held still gets reported.

use x86_64::instructions::port::Port;

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
const LSR_THR_EMPTY: u8 = 1 << 5;

fn outb(port: u16, value: u8) {
    // SAFETY: an I/O write to the UART touches no memory and no register state Rust
    // relies on.
    unsafe { Port::<u8>::new(port).write(value) }
}

fn inb(port: u16) -> u8 {
    // SAFETY: reading the UART's status register touches no memory.
    unsafe { Port::<u8>::new(port).read() }
}

/// Programs COM1 for 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    outb(COM1 + 1, 0x00); // no interrupts
    outb(COM1 + 3, 0x80); // DLAB on
    outb(COM1, 0x01); // divisor 1 = 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1, DLAB off
    outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
    outb(COM1 + 4, 0x03); // DTR, RTS
}

fn put_byte(b: u8) {
    // Bounded wait: a host that never drains the UART must not hang a fault report
    // forever; after the bound the byte is written anyway.
    let mut spins = 0u32;
    while inb(COM1 + 5) & LSR_THR_EMPTY == 0 && spins < 100_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    outb(COM1, b);
}

/// Writes bytes to COM1 (`\n` becomes `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put_byte(b'\r');
        }
        put_byte(b);
    }
}

/// A zero-sized `fmt::Write` to COM1 (no lock: see the module docs).
pub struct Serial;

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}
