//! The machine's CPU core: everything between "the CPU exited" and "run it again"
//! (issue 9). This first part: the VMSA page as typed state, the decoder for the bytes
//! at RIP, and the guest page walk.

pub mod decode;
pub mod vmsa;
pub mod walk;
