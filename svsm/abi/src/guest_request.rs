//! SNP guest-request messages: the message header and MSG_REPORT_REQ (SNP firmware ABI #56860).
