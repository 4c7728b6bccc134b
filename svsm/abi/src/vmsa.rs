//! The VMSA (VM save area) page of an SEV-ES/SNP vCPU, APM vol. 2 appendix B, with SEV_FEATURES.
