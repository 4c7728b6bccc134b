//! The VMSA of the probe's application processor (vCPU 1, VMPL0, step `ap-run`): the
//! same flat 32-bit protected-mode state as the VMPL2 context ([`crate::vmpl2::vmsa`]),
//! at VMPL0, with SNP active only (what the host expects of a VMPL0 VMSA; the
//! AP-creation exit passes the same value in RAX).

use svsm_abi::vmsa::Vmsa;

/// The APIC ID of the AP.
pub const APIC_ID: u32 = 1;
/// The value the AP writes for the boot vCPU to see ("AP01" in ASCII, little-endian).
pub const MARKER: u32 = 0x3130_5041;
/// Rounds the boot vCPU waits for the marker, each with one MSR-protocol exit (a host
/// that runs both vCPUs on one physical CPU switches at exits).
pub const WAIT_ROUNDS: u32 = 100_000;

/// The AP's VMSA, starting at `entry` (a GPA below 4 GiB).
pub fn vmsa(entry: u64) -> Vmsa {
    let mut v = crate::vmpl2::vmsa(entry);
    v.vmpl = 0;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn vmpl0_and_the_entry() {
        let v = vmsa(0x10_2000);
        let b = v.as_bytes();
        assert_eq!(b[0xca], 0, "VMPL");
        assert_eq!(
            u64::from_le_bytes(b[0x178..0x180].try_into().unwrap()),
            0x10_2000
        );
        assert_eq!(v.sev_features, crate::vmpl2::SEV_FEATURES);
    }
}
