//! The SNP CPUID page (SNP firmware ABI #56860).
