//! The x87/SSE register state of a guest context, switched around VMRUN.
//!
//! VMRUN and #VMEXIT do not switch the x87, MMX and SSE registers (APM vol. 2, 15.5.1:
//! only the state in the VMCB save area is loaded), so a hypervisor that runs several
//! guest contexts on one CPU (the SNP model: one per vCPU and VMPL, where SNP hardware
//! keeps each VMSA's registers apart) must save and restore them itself. FXSAVE64 /
//! FXRSTOR64 move the 512-byte legacy area (APM vol. 4, "FXSAVE", table "FXSAVE format
//! in 64-bit mode"): x87, MXCSR, XMM0-15. XCR0 is never changed here, so the state the
//! guest can reach is exactly this area (with the boot XCR0 of x87 only, AVX faults).

use core::arch::asm;

use x86_64::registers::control::{Cr4, Cr4Flags};

/// One 512-byte FXSAVE area. Built only as the reset state or by [`save`], so that
/// [`restore`] never meets reserved MXCSR bits (which would raise #GP).
#[derive(Clone)]
#[repr(C, align(16))]
pub struct FxArea([u8; 512]);

const _: () = assert!(core::mem::size_of::<FxArea>() == 512);

/// FCW at reset (APM vol. 2, table 14-1 "Initial processor state"): 0x037F.
const FCW_RESET: u16 = 0x037f;
/// MXCSR at reset: 0x1F80 (all exceptions masked).
const MXCSR_RESET: u32 = 0x1f80;

impl FxArea {
    /// The processor's reset state: FCW 0x037F, MXCSR 0x1F80, everything else zero.
    pub fn reset() -> Self {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&FCW_RESET.to_le_bytes());
        a[24..28].copy_from_slice(&MXCSR_RESET.to_le_bytes());
        FxArea(a)
    }

    /// The saved MXCSR (bytes 24..28).
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }
}

/// Sets CR4.OSFXSR, so that FXSAVE/FXRSTOR include the XMM registers and MXCSR (APM
/// vol. 2, 3.1.3 "CR4 Register"), and CR4.OSXMMEXCPT. Call once before the first run.
pub fn enable() {
    // SAFETY: setting OSFXSR and OSXMMEXCPT changes only how FXSAVE/FXRSTOR and SIMD
    // exceptions behave; the host (soft-float, no SSE) never uses the registers.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE)) };
}

/// Saves the current x87/SSE state into `area`.
pub fn save(area: &mut FxArea) {
    // SAFETY: FXSAVE64 writes exactly 512 bytes at a 16-byte aligned address, which
    // `FxArea` is (repr align 16, size 512); it changes no register.
    unsafe {
        asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Loads the x87/SSE state from `area`.
pub fn restore(area: &FxArea) {
    // SAFETY: FXRSTOR64 reads 512 bytes at a 16-byte aligned address; an `FxArea` holds
    // either the reset state or what FXSAVE64 wrote, so its MXCSR has no reserved bit
    // set. It changes only x87/SSE registers, which the host does not use.
    unsafe {
        asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags, readonly))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_area_has_the_reset_control_words() {
        let a = FxArea::reset();
        assert_eq!(u16::from_le_bytes([a.0[0], a.0[1]]), FCW_RESET);
        assert_eq!(a.mxcsr(), MXCSR_RESET);
        assert!(a.0[28..].iter().all(|&b| b == 0));
    }

    #[test]
    fn save_then_restore_keeps_the_state() {
        // On the host the test process owns its x87/SSE state: save it, restore it,
        // save again, and the two images agree.
        let mut a = FxArea::reset();
        save(&mut a);
        restore(&a);
        let mut b = FxArea::reset();
        save(&mut b);
        assert_eq!(a.mxcsr(), b.mxcsr());
        assert_eq!(a.0[160..416], b.0[160..416], "XMM0-15 unchanged");
    }
}
