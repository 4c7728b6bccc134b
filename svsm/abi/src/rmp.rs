//! RMP permission bits (RMPADJUST) and page sizes (APM vol. 2, SEV-SNP).
