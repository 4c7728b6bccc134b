//! A small SNP guest program of the tests' own (issue 9): not written yet.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("snp-probe runs only on x86_64-unknown-none, at VMPL0 in the SNP machine model");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
