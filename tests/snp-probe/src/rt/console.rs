//! The probe's log: bytes to COM1 (port 0x3F8) through GHCB IOIO exits (exit code 0x7B,
//! SW_EXITINFO1 = port << 16 | operand size | 64-bit address, RAX = the value; GHCB spec
//! #56421 "IOIO", `svsm_abi::ghcb::ioio::info1`).

use core::fmt;

use svsm_abi::ghcb::{exit, ioio};

use super::ghcb::{call, Regs};

/// COM1's data port.
pub const COM1: u16 = 0x3f8;

/// One port write of `size` bytes through the GHCB; false if the host refused it.
pub fn out(port: u16, size: u8, value: u32) -> bool {
    let Some(info1) = ioio::info1(port, size, false) else {
        return false;
    };
    let regs = Regs {
        rax: Some(u64::from(value)),
        ..Regs::default()
    };
    matches!(call(exit::IOIO, info1, 0, regs), Some(a) if a.info1 as u32 == 0)
}

/// One port read of `size` bytes through the GHCB.
pub fn inp(port: u16, size: u8) -> Option<u32> {
    let info1 = ioio::info1(port, size, true)?;
    let regs = Regs {
        rax: Some(0),
        ..Regs::default()
    };
    let a = call(exit::IOIO, info1, 0, regs)?;
    (a.info1 as u32 == 0).then_some(a.regs[0] as u32)
}

/// The console as a `fmt::Write`.
pub struct Com1;

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if !out(COM1, 1, u32::from(b)) {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

/// Print one line.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::rt::console::Com1, $($arg)*);
    }};
}
