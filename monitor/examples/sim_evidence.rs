//! Writes the evidence of a simulated run for `vigil-verify`: the guest validates
//! memory, starts a vCPU and asks for attestation with a nonce; the report (signed by
//! the TEST VCEK), the services manifest, the nonce and the event log go to a folder.
//! With `--protect` the guest first declares 4 pages of text at 0x30000 (each page
//! filled with its page number and the text "vigil sim kernel text") and 2 pages of
//! read-only data at 0x40000, and locks them (Vigil protection protocol).
//!
//! ```text
//! cargo run -p monitor --example sim_evidence -- --out /tmp/ev
//! vigil-verify /tmp/ev/report.bin --certs attestation/testdata/test-root --allow-test-root \
//!     --offline --nonce $(cat /tmp/ev/nonce.hex) --manifest /tmp/ev/manifest.bin \
//!     --event-log /tmp/ev/log.bin
//! ```
use clap::Parser;
use monitor::addr::{Gpa, PageSize};
use monitor::sim::vm::SimConfig;
use monitor::sim::SimVm;
use std::path::PathBuf;
use svsm_abi::attest_protocol::AttestServicesRequest;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::IntoBytes;

/// Simulated evidence for vigil-verify.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Nonce, as text.
    #[arg(long, default_value = "vigil sim evidence nonce")]
    nonce: String,
    /// Declare and lock a kernel text and read-only range before attesting.
    #[arg(long)]
    protect: bool,
}

/// The `--protect` session: text pages with known contents, declared and locked.
fn protect(vm: &mut SimVm) -> Result<(), Box<dyn std::error::Error>> {
    use monitor::sim::protect_calls::range;
    use svsm_abi::protect_protocol::range_kind;
    for i in 0..4u64 {
        let mut page = [0u8; 4096];
        for (j, chunk) in page.chunks_mut(32).enumerate() {
            chunk[..21].copy_from_slice(b"vigil sim kernel text");
            chunk[21] = i as u8;
            chunk[22] = j as u8;
        }
        vm.guest_write(Gpa(0x30000 + i * 4096), &page)
            .map_err(|e| format!("{e:?}"))?;
    }
    let ranges = [
        range(0x30000, 4, range_kind::TEXT),
        range(0x40000, 2, range_kind::RODATA),
    ];
    let rax = vm.protect_declare(&ranges);
    if rax != 0 {
        return Err(format!("DECLARE: {rax:#x}").into());
    }
    let rax = vm.protect_lock();
    if rax != 0 {
        return Err(format!("LOCK: {rax:#x}").into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let mut vm = SimVm::new(SimConfig::small(1));
    if vm.accept(Gpa(2 << 20), PageSize::Size4K, 16) != 0 {
        return Err("PVALIDATE failed".into());
    }
    vm.write_vmsa(Gpa(0x10000), 2, SevFeatures::SNP_ACTIVE.bits(), 1 << 12)
        .map_err(|e| format!("{e:?}"))?;
    let (_, r) = vm.call(SvsmRegs::rax_for(0, 2), 0x10000, 0x11000, 1);
    if r.rax != 0 {
        return Err(format!("CREATE_VCPU: {:#x}", r.rax).into());
    }
    if a.protect {
        protect(&mut vm)?;
    }
    let nonce = a.nonce.as_bytes();
    vm.guest_write(Gpa(0x21000), nonce)
        .map_err(|e| format!("{e:?}"))?;
    let req = AttestServicesRequest {
        report_gpa: 0x23000,
        report_size: 4096,
        nonce_gpa: 0x21000,
        nonce_size: nonce.len() as u16,
        manifest_gpa: 0x22000,
        manifest_size: 4096,
        ..Default::default()
    };
    vm.guest_write(Gpa(0x20000), req.as_bytes())
        .map_err(|e| format!("{e:?}"))?;
    let (_, r) = vm.call(SvsmRegs::rax_for(1, 0), 0x20000, 0, 0);
    if r.rax != 0 {
        return Err(format!("ATTEST_SERVICES: {:#x}", r.rax).into());
    }
    let mut manifest = vec![0u8; r.rcx as usize];
    vm.guest_read(Gpa(0x22000), &mut manifest)
        .map_err(|e| format!("{e:?}"))?;
    let mut report = vec![0u8; r.r8 as usize];
    vm.guest_read(Gpa(0x23000), &mut report)
        .map_err(|e| format!("{e:?}"))?;
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("report.bin"), &report)?;
    std::fs::write(a.out.join("manifest.bin"), &manifest)?;
    // The manifest binds the records before the ATTEST call's own record; log.bin is
    // that prefix, log-full.bin the whole log.
    let count = vm.m.event_log().count() - 1;
    std::fs::write(a.out.join("log.bin"), vm.m.event_log().prefix(count))?;
    std::fs::write(a.out.join("log-full.bin"), vm.m.event_log().bytes())?;
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(a.out.join("nonce.hex"), &hex)?;
    println!(
        "wrote {} (report {} bytes, manifest {} bytes, log {} records)",
        a.out.display(),
        report.len(),
        manifest.len(),
        vm.m.event_log().count()
    );
    Ok(())
}
