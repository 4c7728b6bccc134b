//! End-to-end tests: boots of the real images under QEMU and checks of the evidence they
//! produce. The QEMU runner lives in `xtask`; this crate holds the assertions that need
//! the host tools (verifier, IGVM measurement) together.
#![forbid(unsafe_code)]
