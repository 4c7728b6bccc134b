//! Links the model with bare's PVH linker script, as a static non-PIE executable at
//! 1 MiB (see bare/pvh.ld). On the host the program is a stub and needs no arguments.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../bare/pvh.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-link-arg-bins=-T{dir}/../../bare/pvh.ld");
    // x86_64-unknown-none links static-pie by default, and QEMU's ELF loader applies no
    // dynamic relocations: link a plain static executable (as the kernel does).
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-znoexecstack");
    println!("cargo:rustc-link-arg-bins=--gc-sections");
}
