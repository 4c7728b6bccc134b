//! The probe's steps, in order. Each prints `probe-step <name> ok|fail <detail>`; a
//! failed step terminates the probe with its number as the reason code (set 1).

use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::Ordering;

use snp_probe::{guest_request, hex, vmpl2};
use svsm_abi::boot_params::{self, BootParams};
use svsm_abi::ghcb::{ap_create, exit, psc_op};
use svsm_abi::guest_request::REPORT_SIZE;
use zerocopy::{FromBytes, IntoBytes};

use crate::rt::console::COM1;
use crate::rt::ghcb::{call, Regs};
use crate::rt::instr::{pvalidate, rmpadjust};
use crate::rt::msr_protocol::{self as msrp, terminate};
use crate::rt::{idt, paging, vc};
use crate::say;

global_asm!(
    r#"
    .section .vmpl2, "ax"
    .code32
    .global probe_vmpl2_entry
probe_vmpl2_entry:
    mov ebx, {marker}
    mov ecx, 0xc0010130
    mov eax, 0x016
    xor edx, edx
    wrmsr
    .byte 0xf3, 0x0f, 0x01, 0xd9
    .global probe_vmpl2_exit
probe_vmpl2_exit:
    jmp probe_vmpl2_entry
    .code64
    "#,
    marker = const vmpl2::MARKER,
);

unsafe extern "C" {
    static probe_vmpl2_entry: u8;
    static probe_vmpl2_exit: u8;
    static __vmpl2_start: u8;
    static __vmpl2_end: u8;
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The GHCB, the guest-request page and the response page: made shared.
static mut SHARED: [Page; 3] = [const { Page([0; 4096]) }; 3];
/// Two candidate VMSA pages (a VMSA must not be 2 MiB aligned).
static mut VMSA: [Page; 2] = [const { Page([0; 4096]) }; 2];

/// The page the launch did not validate that the probe validates (inside the profile's
/// REQUIRED_MEMORY, above the probe's image).
const UNLAUNCHED: u64 = 0x70_0000;

fn fail(step: u64, name: &str, detail: core::fmt::Arguments<'_>) -> ! {
    say!("probe-step {name} fail {detail}");
    terminate(step)
}

fn shared_gpa(i: usize) -> u64 {
    // SAFETY: only the address is taken.
    unsafe { addr_of!(SHARED[i]) as u64 }
}

/// Run every step; never returns.
pub fn run(bp_gpa: u64, c_bit: u32) -> ! {
    paging::C_BIT.store(1 << c_bit, Ordering::Relaxed);
    // SAFETY: BootParams is a measured page of the launch at the GPA the boot VMSA
    // gives; identity-mapped private; copied once.
    let page = unsafe { &*(bp_gpa as *const [u8; 4096]) };
    let Ok(bp) = BootParams::read_from_bytes(page.as_slice()) else {
        terminate(2)
    };
    if bp.magic != boot_params::MAGIC || bp.version != boot_params::VERSION {
        terminate(2);
    }
    vc::CPUID_PAGE.store(bp.cpuid_gpa, Ordering::Relaxed);
    idt::load();
    let (versions, hv) = ghcb_setup();
    say!(
        "probe-step entry ok c_bit={c_bit} boot_params={bp_gpa:#x} cpuid_page={:#x}",
        bp.cpuid_gpa
    );
    say!(
        "probe-step ghcb ok gpa={:#x} versions={}..{} host_c_bit={} hv_features={hv:#x}",
        shared_gpa(0),
        versions.0,
        versions.1,
        versions.2
    );
    vc_cpuid(5);
    vc_ioio(6);
    validate_unlaunched(7);
    let vmsa_gpa = vmpl2_vmsa(8);
    ap_create_vmpl2(9, vmsa_gpa);
    run_vmpl2(10, vmsa_gpa);
    report(11, bp.secrets_gpa);
    if let Err(what) = crate::ap_run::run() {
        fail(12, "ap-run", format_args!("{what}"));
    }
    say!("probe-done ok");
    terminate(0)
}

/// SEV information, hypervisor features, the GHCB page rescinded, made shared and
/// registered; the guest-request pages made shared. No console yet: failures terminate
/// with codes 3 and 4.
fn ghcb_setup() -> ((u16, u16, u8), u64) {
    let Some(info) = msrp::sev_info() else {
        terminate(3)
    };
    if info.1 < 2 || info.0 > 2 {
        terminate(3);
    }
    let hv = msrp::hv_features().unwrap_or(0);
    for i in 0..3 {
        let gpa = shared_gpa(i);
        // SAFETY: the page is the probe's own static, mapped private until the PSC below;
        // it is not touched between the rescind and the shared mapping.
        let (rc, _) = unsafe { pvalidate(gpa, false) };
        if rc != 0 || msrp::page_state(gpa, psc_op::SHARED) != 0 || !paging::set_shared(gpa, true) {
            terminate(4);
        }
    }
    if !msrp::register_ghcb(shared_gpa(0)) {
        terminate(4);
    }
    (info, hv)
}

/// CPUID 0x8000001F executed: a #VC answered from the CPUID page.
fn vc_cpuid(step: u64) {
    let before = vc::CPUID_EVENTS.load(Ordering::Relaxed);
    // CPUID is an ordinary instruction; under SNP it raises #VC.
    let r = core::arch::x86_64::__cpuid_count(0x8000_001f, 0);
    let events = vc::CPUID_EVENTS.load(Ordering::Relaxed) - before;
    // SAFETY: the CPUID page is measured, validated and identity-mapped.
    let page = unsafe { &*(vc::CPUID_PAGE.load(Ordering::Relaxed) as *const [u8; 4096]) };
    let want = snp_probe::cpuid_page::lookup(page, 0x8000_001f, 0);
    if events != 1 || want != Some([r.eax, r.ebx, r.ecx, r.edx]) {
        fail(
            step,
            "vc-cpuid",
            format_args!("events={events} ebx={:#x}", r.ebx),
        );
    }
    say!(
        "probe-step vc-cpuid ok leaf=0x8000001f eax={:#x} ebx={:#x} events={events}",
        r.eax,
        r.ebx
    );
}

/// OUT and IN executed: each a #VC forwarded through the GHCB.
fn vc_ioio(step: u64) {
    let before = vc::IOIO_EVENTS.load(Ordering::Relaxed);
    for b in b"probe-out\n" {
        // SAFETY: a port write to COM1; under SNP it raises #VC, handled by the probe.
        unsafe { core::arch::asm!("out dx, al", in("dx") COM1, in("al") *b, options(nostack)) };
    }
    let lsr: u8;
    // SAFETY: a port read of COM1's line status; raises #VC.
    unsafe { core::arch::asm!("in al, dx", in("dx") COM1 + 5, out("al") lsr, options(nostack)) };
    let events = vc::IOIO_EVENTS.load(Ordering::Relaxed) - before;
    if events != 11 {
        fail(step, "vc-ioio", format_args!("events={events}"));
    }
    say!("probe-step vc-ioio ok events={events} com1_lsr={lsr:#x}");
}

/// A page the launch did not validate: made private by a page-state change, validated,
/// written and read back; a second PVALIDATE reports no change (CF=1).
fn validate_unlaunched(step: u64) {
    let gpa = UNLAUNCHED;
    let psc = msrp::page_state(gpa, psc_op::PRIVATE);
    if psc != 0 {
        fail(step, "pvalidate", format_args!("psc={psc:#x}"));
    }
    // SAFETY: the page is private now and the probe's own; mapped (first 1 GiB).
    let (rc, cf) = unsafe { pvalidate(gpa, true) };
    if rc != 0 || cf {
        fail(step, "pvalidate", format_args!("rc={rc} cf={cf}"));
    }
    let p = gpa as *mut u64;
    // SAFETY: validated private page, identity-mapped, used by nothing else.
    let back = unsafe {
        p.write_volatile(0x5a5a_0000 | gpa);
        p.read_volatile()
    };
    // SAFETY: as above.
    let (rc2, cf2) = unsafe { pvalidate(gpa, true) };
    if back != 0x5a5a_0000 | gpa || rc2 != 0 || !cf2 {
        fail(
            step,
            "pvalidate",
            format_args!("readback={back:#x} again rc={rc2} cf={cf2}"),
        );
    }
    say!("probe-step pvalidate ok gpa={gpa:#x} rc=0 again_cf=1");
}

/// The VMPL2 VMSA written and marked with RMPADJUST (VMSA bit); VMPL2's code pages
/// opened to it (read + supervisor execute). Returns the VMSA's GPA.
fn vmpl2_vmsa(step: u64) -> u64 {
    // SAFETY: only addresses are taken.
    let (cands, entry, start, end) = unsafe {
        (
            [addr_of_mut!(VMSA[0]) as u64, addr_of_mut!(VMSA[1]) as u64],
            addr_of!(probe_vmpl2_entry) as u64,
            addr_of!(__vmpl2_start) as u64,
            addr_of!(__vmpl2_end) as u64,
        )
    };
    let gpa = if cands[0] % (2 << 20) == 0 {
        cands[1]
    } else {
        cands[0]
    };
    let v = vmpl2::vmsa(entry);
    // SAFETY: the probe's own private page, not yet a VMSA.
    unsafe {
        (gpa as *mut [u8; 4096]).write_volatile(v.as_bytes().try_into().unwrap_or([0; 4096]))
    };
    // RDX: target VMPL 2, no permissions, VMSA bit (APM vol. 3 RMPADJUST).
    // SAFETY: the probe's own private page.
    let rc = unsafe { rmpadjust(gpa, u64::from(vmpl2::VMPL) | 1 << 16) };
    if rc != 0 {
        fail(step, "vmpl2-vmsa", format_args!("rmpadjust vmsa rc={rc}"));
    }
    let mut page = start;
    while page < end {
        // Read (bit 8) and supervisor execute (bit 11) for VMPL2.
        // SAFETY: the probe's own private code page.
        let rc = unsafe { rmpadjust(page, u64::from(vmpl2::VMPL) | 0x9 << 8) };
        if rc != 0 {
            fail(
                step,
                "vmpl2-vmsa",
                format_args!("rmpadjust code {page:#x} rc={rc}"),
            );
        }
        page += 4096;
    }
    say!(
        "probe-step vmpl2-vmsa ok vmsa={gpa:#x} entry={entry:#x} code_pages={}",
        (end - start) / 4096
    );
    gpa
}

/// The VMPL2 context of this vCPU (APIC ID 0) created through the AP-creation exit.
fn ap_create_vmpl2(step: u64, vmsa_gpa: u64) {
    let info1 = ap_create::info1(0, vmpl2::VMPL, ap_create::CREATE);
    let regs = Regs {
        rax: Some(vmpl2::SEV_FEATURES),
        ..Regs::default()
    };
    match call(exit::SNP_AP_CREATION, info1, vmsa_gpa, regs) {
        Some(a) if a.info1 as u32 == 0 => {
            say!("probe-step ap-create ok vmpl=2 vmsa={vmsa_gpa:#x}")
        }
        a => fail(
            step,
            "ap-create",
            format_args!("answer={:?}", a.map(|a| (a.info1, a.info2))),
        ),
    }
}

/// VMPL2 run through the run-VMPL exit; it exits back with the MSR-protocol VMPL
/// request, leaving its marker in RBX and its RIP after the VMGEXIT in its VMSA.
fn run_vmpl2(step: u64, vmsa_gpa: u64) {
    let a = call(
        exit::SNP_RUN_VMPL,
        u64::from(vmpl2::VMPL),
        0,
        Regs::default(),
    );
    if !matches!(a, Some(a) if a.info1 as u32 == 0) {
        fail(
            step,
            "run-vmpl",
            format_args!("answer={:?}", a.map(|a| (a.info1, a.info2))),
        );
    }
    // SAFETY: the VMSA page is the probe's own (VMPL0 may read it; VMPL2 is not running).
    let page = unsafe { (vmsa_gpa as *const [u8; 4096]).read_volatile() };
    let Ok(v) = svsm_abi::vmsa::Vmsa::read_from_bytes(page.as_slice()) else {
        fail(step, "run-vmpl", format_args!("vmsa unreadable"))
    };
    let exit_rip = addr_of!(probe_vmpl2_exit) as u64;
    if v.rbx as u32 != vmpl2::MARKER || v.rip != exit_rip {
        fail(
            step,
            "run-vmpl",
            format_args!("rbx={:#x} rip={:#x}", v.rbx, v.rip),
        );
    }
    say!(
        "probe-step run-vmpl ok vmpl2_rbx={:#x} vmpl2_rip={:#x}",
        v.rbx,
        v.rip
    );
}

/// An attestation report through the SNP guest request (VMPCK0, sequence number 1).
fn report(step: u64, secrets_gpa: u64) {
    // SAFETY: the secrets page is a launch page, identity-mapped private; VMPCK0 is at
    // 0x20 (svsm_abi::secrets).
    let mut key: [u8; 32] = unsafe { ((secrets_gpa + 0x20) as *const [u8; 32]).read_volatile() };
    let (req, rsp) = (shared_gpa(1), shared_gpa(2));
    let mut data = [0u8; 64];
    data[..9].copy_from_slice(b"snp-probe");
    let mut msg = [0u8; 4096];
    if guest_request::seal_report_request(&key, 1, &data, 0, &mut msg).is_err() {
        fail(step, "report", format_args!("seal"));
    }
    // SAFETY: the probe's shared request page.
    unsafe { (req as *mut [u8; 4096]).write_volatile(msg) };
    let a = call(exit::SNP_GUEST_REQUEST, req, rsp, Regs::default());
    let Some(a) = a.filter(|a| a.info2 == 0) else {
        fail(
            step,
            "report",
            format_args!("answer={:?}", a.map(|a| (a.info1, a.info2))),
        )
    };
    let _ = a;
    // Copied once from the shared page, then used only from the copy.
    // SAFETY: the probe's shared response page.
    let copy = unsafe { (rsp as *const [u8; 4096]).read_volatile() };
    let mut rep = [0u8; REPORT_SIZE];
    let r = guest_request::open_report_response(&key, 2, &copy, &mut rep);
    key.fill(0);
    match r {
        Ok(0) => {}
        other => fail(step, "report", format_args!("{other:?}")),
    }
    say!("probe-step report ok bytes={REPORT_SIZE}");
    say!("probe-report-begin");
    let mut buf = [0u8; 128];
    for chunk in rep.chunks(64) {
        let h = hex::encode(chunk, &mut buf);
        say!("{}", core::str::from_utf8(h).unwrap_or(""));
    }
    say!("probe-report-end");
}
