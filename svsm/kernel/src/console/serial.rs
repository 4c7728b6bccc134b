//! The 16550 UART at COM1 (I/O port 0x3f8), polled, output only.
//!
//! Used by the native platform (`platform::native`). Under SNP a port access raises #VC:
//! the SNP boot programs COM1 with [`init`] through the #VC handler, and its console
//! (`platform::snp`) writes [`COM1`] through the GHCB IOIO exit itself. Under QEMU without SEV a plain
//! port write reaches QEMU's serial device. No lock of its own: the logger serialises
//! normal output, and the fault and panic reporters write directly so that a fault
//! while the logger lock is held still gets reported.

use crate::cpu::instr::{inb, outb};

/// COM1's base port (the transmit register).
pub const COM1: u16 = 0x3f8;
const LSR_THR_EMPTY: u8 = 1 << 5;

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
    // Bounded wait: a host that never drains the UART must not hang the kernel forever
    // inside a fault report; after the bound the byte is written anyway.
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
