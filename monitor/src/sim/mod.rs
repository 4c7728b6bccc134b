//! A software SNP machine for host tests: guest memory, an RMP entry per 4 KiB page,
//! PVALIDATE and RMPADJUST with the APM's semantics, a scriptable (and hostile)
//! hypervisor that answers the GHCB protocol, and a security processor.
//!
//! Nothing here runs on hardware; it models what the monitor relies on, so that every
//! protocol path and hostile answer can be driven from `cargo test`, property tests and
//! fuzzers. docs/monitor.md lists what the model leaves out.
pub mod hypervisor;
pub mod invariants;
pub mod machine;
pub mod protect_calls;
pub mod protect_invariants;
pub mod psp;
pub mod random;
pub mod rmp;
pub mod vm;

pub use hypervisor::HostMode;
pub use machine::SimMachine;
pub use vm::SimVm;
