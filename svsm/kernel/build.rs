//! Links the kernel with its own linker script, as a static non-PIE executable at 1 MiB.
//!
//! Only for the bare-metal target: on the host this crate builds as a stub (so that
//! `cargo test --workspace` can run the kernel's pure, host-testable modules) and needs no
//! linker arguments.

fn main() {
    // Rerun only when the build script or the linker script changes (not on every source
    // change, which would make every `cargo xtask test` relink the kernel).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=linker.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    // x86_64-unknown-none links static-pie by default. A PIE loaded by QEMU's ELF loader
    // would run without its dynamic relocations applied (lld leaves the relocated words
    // zero), so absolute pointers in data would be wrong. Link a plain static executable.
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-znoexecstack");
    println!("cargo:rustc-link-arg-bins=--gc-sections");
}
