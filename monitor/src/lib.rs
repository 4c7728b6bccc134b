//! Vigil's reference monitor.
//!
//! Mediates the guest that runs at a lower VMPL: SVSM protocol dispatch, guest memory
//! state per 4 KiB page, vCPU/VMSA management, the policy, the event log and
//! attestation assembly. It talks to hardware only through the `Platform` trait; its
//! `sim` feature holds a software SNP machine for host tests.
#![no_std]
#![forbid(unsafe_code)]
