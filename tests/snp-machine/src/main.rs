//! The SNP machine model's bare-metal program (issue 9): not written yet.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("snp-machine runs only on x86_64-unknown-none under QEMU");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
