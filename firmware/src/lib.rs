//! What runs below Vigil: the guest-side SVSM call library and the bare-metal test guest
//! that drives every protocol the way Linux and OVMF do. Not filled in yet: the guest
//! and its call library arrive with the emulated platform.
#![no_std]
#![forbid(unsafe_code)]
