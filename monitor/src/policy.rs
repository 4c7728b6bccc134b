//! The monitor's policy: what it allows the guest to ask for.
use svsm_abi::vmsa::SevFeatures;

/// The policy, fixed at launch (and recorded in the LAUNCH event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The VMPL the guest runs at (1 to 3; 2 by default).
    pub guest_vmpl: u8,
    /// SEV features every guest VMSA must have (SNP_ACTIVE at least).
    pub required_sev_features: u64,
    /// SEV features a guest VMSA may have in addition.
    pub allowed_sev_features: u64,
    /// Most PVALIDATE entries handled in one call before returning INCOMPLETE
    /// (0 = no limit).
    pub pvalidate_batch: u16,
    /// Whether CONFIGURE_VTOM may set a vTOM.
    pub allow_vtom: bool,
    /// Largest nonce accepted by the attestation calls.
    pub max_nonce: u16,
}

impl Default for Policy {
    fn default() -> Self {
        let required = SevFeatures::SNP_ACTIVE.bits();
        let allowed = SevFeatures::SNP_ACTIVE.bits()
            | SevFeatures::ALTERNATE_INJECTION.bits()
            | SevFeatures::SECURE_AVIC.bits()
            | SevFeatures::DEBUG_SWAP.bits()
            | SevFeatures::PREVENT_HOST_IBS.bits()
            | SevFeatures::BTB_ISOLATION.bits()
            | SevFeatures::SECURE_TSC.bits()
            | SevFeatures::VMSA_REG_PROT.bits()
            | SevFeatures::SMT_PROTECTION.bits()
            | SevFeatures::REFLECT_VC.bits();
        Self {
            guest_vmpl: 2,
            required_sev_features: required,
            allowed_sev_features: allowed,
            pvalidate_batch: 0,
            allow_vtom: false,
            max_nonce: 4096,
        }
    }
}

impl Policy {
    /// Checks a guest VMSA's SEV_FEATURES: every required bit present, nothing outside
    /// the allowed set (unknown bits included) - invariant 6.
    pub fn sev_features_ok(&self, f: u64) -> bool {
        f & self.required_sev_features == self.required_sev_features
            && f & !(self.allowed_sev_features | self.required_sev_features) == 0
    }
}
