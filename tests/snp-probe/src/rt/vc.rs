//! The #VC handler (vector 29; the error code is the exit code, APM vol. 2 §15.35.5).
//! CPUID (0x72) is answered from the CPUID page, never by the host; IOIO (0x7B) is
//! decoded at RIP and forwarded through the GHCB; anything else ends the probe with a
//! named failure.

use core::sync::atomic::{AtomicU64, Ordering};

use snp_probe::cpuid_page;
use snp_probe::io_insn::{self, Port};
use svsm_abi::ghcb::exit;

use super::console;

/// The registers the stub saved, then the CPU's frame (all of it is laid out so that
/// the stub's pushes match; the handler reads only some of it).
#[repr(C)]
#[allow(dead_code)]
pub struct Frame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// GPA of the CPUID page (from BootParams).
pub static CPUID_PAGE: AtomicU64 = AtomicU64::new(0);
/// #VC events handled, by kind.
pub static CPUID_EVENTS: AtomicU64 = AtomicU64::new(0);
/// See [`CPUID_EVENTS`].
pub static IOIO_EVENTS: AtomicU64 = AtomicU64::new(0);

fn cpuid_page() -> Option<&'static [u8; 4096]> {
    let gpa = CPUID_PAGE.load(Ordering::Relaxed);
    if gpa == 0 {
        return None;
    }
    // SAFETY: the CPUID page is a measured, validated page of the launch, identity-mapped
    // private and never written by the probe.
    Some(unsafe { &*(gpa as *const [u8; 4096]) })
}

fn fail(what: &str, f: &Frame) -> ! {
    crate::say!(
        "probe-step vc fail {what} exit={:#x} rip={:#x}",
        f.error_code,
        f.rip
    );
    super::msr_protocol::terminate(0x30)
}

/// Called by the stub with the saved frame.
pub extern "C" fn probe_vc(f: &mut Frame) {
    match f.error_code {
        exit::CPUID => {
            let Some(page) = cpuid_page() else {
                fail("no CPUID page", f)
            };
            let r = cpuid_page::lookup(page, f.rax as u32, f.rcx as u32).unwrap_or([0; 4]);
            f.rax = u64::from(r[0]);
            f.rbx = u64::from(r[1]);
            f.rcx = u64::from(r[2]);
            f.rdx = u64::from(r[3]);
            f.rip += 2;
            CPUID_EVENTS.fetch_add(1, Ordering::Relaxed);
        }
        exit::IOIO => {
            // SAFETY: RIP points into the probe's own code, identity-mapped and readable.
            let bytes = unsafe { core::slice::from_raw_parts(f.rip as *const u8, 3) };
            let Some(io) = io_insn::decode(bytes) else {
                fail("undecoded I/O instruction", f)
            };
            let port = match io.port {
                Port::Dx => f.rdx as u16,
                Port::Imm(p) => u16::from(p),
            };
            let mask = (1u64 << (8 * u32::from(io.size))) - 1;
            if io.is_in {
                let Some(v) = console::inp(port, io.size) else {
                    fail("IN refused by the host", f)
                };
                f.rax = (f.rax & !mask) | (u64::from(v) & mask);
            } else if !console::out(port, io.size, (f.rax & mask) as u32) {
                fail("OUT refused by the host", f);
            }
            f.rip += io.len as u64;
            IOIO_EVENTS.fetch_add(1, Ordering::Relaxed);
        }
        _ => fail("unexpected exit code", f),
    }
}
