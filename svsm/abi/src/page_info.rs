//! PAGE_INFO, the 112-byte record chained into the SNP launch digest (SNP firmware ABI #56860, SNP_LAUNCH_UPDATE).
