//! The time-stamp counter's frequency, for turning TSC stamps into time.
//!
//! In order: CPUID 0x15 (TSC/crystal ratio EBX/EAX times the crystal frequency ECX,
//! Intel SDM vol. 2A CPUID leaf 15H), CPUID 0x16 EAX (base frequency in MHz, leaf 16H),
//! else a calibration against the PIT: channel 2 counts down a 50 ms latch in mode 0
//! with its gate on and the speaker off, and the TSC cycles until its output (port
//! 0x61 bit 5) goes high give the rate. This is Linux's `pit_calibrate_tsc`
//! (arch/x86/kernel/tsc.c) without its retries; the PIT runs at 1 193 182 Hz (Intel
//! 8254 data sheet, the PC's input clock). Under QEMU TCG neither CPUID leaf is filled
//! (`-cpu max` reports zeros), so the PIT is what counts there; QEMU's PIT follows the
//! host's clock, so the result is the guest TSC's rate in host time.

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// The calibration's latch: 50 ms of PIT ticks (Linux uses 10 ms with retries; the
/// longer count smooths QEMU TCG's jitter on a loaded host).
pub const CALIBRATION_LATCH: u16 = (PIT_HZ / 20) as u16;

/// The TSC frequency from CPUID leaves 0x15 and 0x16 (`max_leaf` = CPUID 0 EAX), given
/// their registers as (EAX, EBX, ECX); None if neither names it.
pub fn from_cpuid(max_leaf: u32, leaf15: (u32, u32, u32), leaf16_eax: u32) -> Option<u64> {
    let (den, num, crystal) = leaf15;
    if max_leaf >= 0x15 && den != 0 && num != 0 && crystal != 0 {
        return Some(u64::from(crystal) * u64::from(num) / u64::from(den));
    }
    (max_leaf >= 0x16 && leaf16_eax != 0).then(|| u64::from(leaf16_eax) * 1_000_000)
}

/// The TSC rate from `cycles` TSC cycles over a PIT countdown of `latch` ticks.
pub fn from_pit(cycles: u64, latch: u16) -> Option<u64> {
    (latch != 0).then(|| cycles.saturating_mul(PIT_HZ) / u64::from(latch))
}

/// The TSC frequency in Hz (CPUID, else the PIT; None if the PIT never fired).
#[cfg(target_os = "none")]
pub fn hz() -> Option<u64> {
    use core::arch::x86_64::__cpuid;
    let max = __cpuid(0).eax;
    let l15 = if max >= 0x15 {
        let r = __cpuid(0x15);
        (r.eax, r.ebx, r.ecx)
    } else {
        (0, 0, 0)
    };
    let l16 = if max >= 0x16 { __cpuid(0x16).eax } else { 0 };
    from_cpuid(max, l15, l16).or_else(pit_calibrate)
}

#[cfg(target_os = "none")]
fn pit_calibrate() -> Option<u64> {
    use x86_64::instructions::port::Port;
    let mut ctl = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: the PC's PIT channel 2 and its gate (port 0x61 bits 0-1) are used by
    // nothing else in the model; programming them touches no memory.
    let t0 = unsafe {
        let v = ctl.read();
        ctl.write((v & !0x02) | 0x01);
        cmd.write(0xb0); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(CALIBRATION_LATCH as u8);
        ch2.write((CALIBRATION_LATCH >> 8) as u8);
        core::arch::x86_64::_rdtsc()
    };
    // Bounded: a PIT that never fires must not hang the model.
    for _ in 0..100_000_000u64 {
        // SAFETY: reading port 0x61 touches no memory.
        if unsafe { ctl.read() } & 0x20 != 0 {
            // SAFETY: RDTSC has no side effect.
            let t1 = unsafe { core::arch::x86_64::_rdtsc() };
            return from_pit(t1.wrapping_sub(t0), CALIBRATION_LATCH);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaf_15_then_16_then_none() {
        // 25 MHz crystal, ratio 104/2: 1.3 GHz.
        assert_eq!(
            from_cpuid(0x16, (2, 104, 25_000_000), 2100),
            Some(1_300_000_000)
        );
        assert_eq!(from_cpuid(0x16, (2, 104, 0), 2100), Some(2_100_000_000));
        assert_eq!(
            from_cpuid(0x15, (0, 0, 0), 2100),
            None,
            "leaf 0x16 beyond max"
        );
        assert_eq!(from_cpuid(0xd, (2, 104, 25_000_000), 0), None);
    }

    #[test]
    fn pit_rate_scales_by_the_latch() {
        // 10 ms of PIT ticks took 20 million cycles: 2 GHz (to within the latch's rounding).
        let hz = from_pit(20_000_000, 11_932).unwrap();
        assert!((1_999_000_000..2_001_000_000).contains(&hz), "{hz}");
        assert_eq!(from_pit(1, 0), None);
    }
}
