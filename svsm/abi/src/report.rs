//! The SNP attestation report (SNP firmware ABI #56860, MSG_REPORT_RSP), versions 2 to 5.
