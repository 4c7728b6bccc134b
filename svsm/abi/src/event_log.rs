//! Vigil's event log record format: the hash chain that the attestation manifest binds.
