//! The kernel binary: everything is in the `svsm` library (src/lib.rs); this file only
//! makes the linker pull it in (the entry point `vigil_pvh_entry` is named by linker.ld).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use svsm as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the svsm kernel runs only on x86_64-unknown-none: use `cargo xtask run`");
    std::process::exit(2);
}
