//! The SEV_STATUS MSR (APM vol. 2).
