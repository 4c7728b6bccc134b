//! Ending a QEMU run with a status through the isa-debug-exit device.
//!
//! QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`. Writing `v` to
//! port 0xf4 makes QEMU exit with status `(v << 1) | 1`, so every status below is odd and
//! none can be confused with QEMU's own 0 (clean shutdown) or 1 (error). The host side
//! (xtask) maps them back; the numbers are part of the contract with xtask.
//!
//! The exit itself goes through the kernel's platform (`platform::KernelPlatform::exit`):
//! the native platform writes the port (on a machine without the device the write does
//! nothing and the CPU halts forever instead); SNP ends through the GHCB MSR protocol.

/// The isa-debug-exit port QEMU is started with.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the kernel ends the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Normal end of a run, or every in-kernel test passed. QEMU status 33.
    Success = 0x10,
    /// At least one in-kernel test failed. QEMU status 35.
    TestsFailed = 0x11,
    /// A panic or an unexpected exception. QEMU status 37.
    Fatal = 0x12,
}

impl ExitCode {
    /// The process status QEMU exits with for this code.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }
}

/// Ends the run through the chosen platform (before one is chosen: halts forever).
#[cfg(target_os = "none")]
pub fn exit(code: ExitCode) -> ! {
    crate::platform::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_xtask_contract() {
        assert_eq!(ExitCode::Success.qemu_status(), 33);
        assert_eq!(ExitCode::TestsFailed.qemu_status(), 35);
        assert_eq!(ExitCode::Fatal.qemu_status(), 37);
    }
}
