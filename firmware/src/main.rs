//! The test guest: a bare-metal program that runs below Vigil at VMPL2 and drives the
//! SVSM the way Linux and OVMF do, then attacks it. Built for `x86_64-unknown-none` by
//! `cargo xtask` and handed to QEMU as `-initrd`; on the host this is a stub.
//!
//! Boot protocol (emulated platform, docs/emulated.md): 64-bit mode on identity page
//! tables, RSI = the secrets page, RDI = benchmark iterations (0 = none), RDX = end of
//! guest RAM, RCX = first GPA not validated at launch. On SEV-SNP (Vigil booted from
//! IGVM) the same, with the C-bit in CR3 and every table entry; the guest tells the two
//! apart by SEV_STATUS and on SNP first makes a GHCB page of its own and a #VC gate for
//! its port I/O (`guest/snp.rs`, the pure parts in `vigil_firmware::snp`), before it
//! prints anything.
//!
//! Output: one line per step, `guest: <step> ... ok` / `... FAILED (<why>)`, attacks as
//! `guest: attack <name> ... refused (<how>)` / `... NOT REFUSED`, then exactly
//! `guest: N passed, N failed`; the run ends by writing the debug-exit port (0x10 when
//! every step passed, 0x11 otherwise). On SNP the steps that need Vigil to serve a
//! second vCPU, and those whose fault would go to the host, say `... skipped on SNP
//! (<why>)` and the tally is `guest: N passed, N failed, N skipped`; every SVSM
//! PVALIDATE there follows Linux's page-state order (the host's page-state change to
//! private before a validation, to shared after a rescind) with its FAIL_SIZEMISMATCH
//! fallback.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![allow(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the test guest runs only on x86_64-unknown-none below Vigil: use `cargo xtask run`");
    std::process::exit(2);
}
