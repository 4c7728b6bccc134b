//! Links the probe with linker.ld (at 1 MiB, inside the qemu-kvm profile's kernel area),
//! as a static non-PIE executable. Only for the bare-metal target.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=linker.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default() != "none" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-znoexecstack");
    println!("cargo:rustc-link-arg-bins=--gc-sections");
}
