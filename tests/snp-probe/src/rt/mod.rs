//! The probe's runtime: entry, instructions, the GHCB MSR protocol and page, the console,
//! shared-page mapping, the IDT and the #VC handler.

pub mod console;
pub mod entry;
pub mod ghcb;
pub mod idt;
pub mod instr;
pub mod msr_protocol;
pub mod paging;
pub mod vc;
