//! vigil-verify: verifies SEV-SNP attestation evidence. A thin layer over the
//! `attestation` library's `app` module (command line, inputs, KDS, output).
//!
//! Exit codes: 0 verified, 1 rejected, 2 usage, 3 environment (docs/verifier.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(attestation::app::main(std::env::args_os().collect()))
}
