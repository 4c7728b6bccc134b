//! The GHCB page and the GHCB MSR protocol (GHCB spec #56421).
