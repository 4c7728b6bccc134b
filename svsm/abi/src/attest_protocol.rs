//! SVSM attestation protocol (1): call arguments and the services manifest (SVSM spec #58019).
