//! SEV_STATUS (MSR C001_0131) as the CPU answers it from the running VMSA (APM vol. 2
//! §15.34.10, "SEV_STATUS MSR"): bit 0 SEV, bit 1 SEV-ES, bit 2 SNP, and from bit 3 on
//! the VMSA's SEV_FEATURES bits 1 and up, shifted by two (vTOM at 3, ReflectVC 4,
//! RestrictedInjection 5, AlternateInjection 6, DebugSwap 7, PreventHostIBS 8,
//! BTBIsolation 9, VmplSSS 10, SecureTSC 11, ..., VmsaRegProt 16, SmtProtection 17,
//! SecureAVIC 18; Linux `MSR_AMD64_SNP_*_BIT` against `SVM_SEV_FEAT_*`). A guest reads it
//! without a #VC, per VMSA: VMPL0 and VMPL2 of one vCPU may see different values.

/// SEV_FEATURES bit 0: SNPActive.
pub const SNP_ACTIVE: u64 = 1;

/// SEV_STATUS for a VMSA with `sev_features`: SEV, SEV-ES and SNP set (the model runs
/// only SNP guests; SNPActive must be set in a VMSA, or VMRUN fails), the other features
/// two bits up.
pub fn sev_status(sev_features: u64) -> u64 {
    0b111 | ((sev_features & !SNP_ACTIVE) << 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_move_two_bits_up() {
        assert_eq!(sev_status(SNP_ACTIVE), 0b111);
        // RestrictedInjection (feature bit 3) is SEV_STATUS bit 5.
        assert_eq!(sev_status(SNP_ACTIVE | 1 << 3), 0b111 | 1 << 5);
        // DebugSwap (5) -> 7, VmsaRegProt (14) -> 16, SecureAVIC (16) -> 18.
        assert_eq!(
            sev_status(1 | 1 << 5 | 1 << 14 | 1 << 16),
            0b111 | 1 << 7 | 1 << 16 | 1 << 18
        );
    }
}
