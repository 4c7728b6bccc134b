//! The test guest on SEV-SNP at VMPL2: platform detection, its GHCB, and the #VC handler
//! for its port I/O (the pure parts and their tests are `vigil_firmware::snp`).
//!
//! On `emulated` Vigil intercepts the guest's ports; on SNP every IN/OUT raises #VC
//! (vector 29, error code = exit code 0x7B) and the guest must forward it to the host
//! through a GHCB page of its own, as Linux does (`arch/x86/boot/compressed/sev.c`,
//! `arch/x86/coco/sev/`). [`setup`] makes that page; nothing may be printed before it
//! returns, since the first COM1 write would #VC with no GHCB to forward it through.
//! Failures before then end the VM with a GHCB MSR protocol termination request
//! (reason set 1, `vigil_firmware::snp::term`), which the run's record names.
//!
//! The GHCB MSR is shared by three users: the MSR protocol requests here (before the
//! GHCB is registered), the SVSM calls (`arch::Vmgexit` writes the run-VMPL request
//! into it before each call, and the answer leaves it holding whatever VMPL0 and the
//! host left), and GHCB-page exits (#VC, AP creation). So every GHCB-page exit writes
//! the GHCB's GPA into the MSR right before its VMGEXIT instead of trusting what the
//! MSR holds; the SVSM call path likewise writes its request each time.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use svsm_abi::core_protocol::result;
use svsm_abi::ghcb::{msr, psc_op, Ghcb, PscEntry};
use svsm_abi::sev_status::MSR_SEV_STATUS;
use vigil_firmware::snp::{
    c_bit_from_tables, check_c_bit, check_cpuid, check_psc, check_register, decode_io,
    entry_address, ghcb_result, hlt_ghcb, in_result, ioio_ghcb, is_snp, psc, split_2m, term,
    PscError,
};
use vigil_firmware::{entry, Svsm, MSR_GHCB};
use zerocopy::IntoBytes;

use super::arch::{self, read_bytes, write_bytes, Vmgexit};

/// A page of the guest's own image (page-aligned, in .bss).
#[repr(C, align(4096))]
struct Page([AtomicU64; 512]);

/// The GHCB page: shared with the host once [`setup`] is done.
static GHCB: Page = Page([const { AtomicU64::new(0) }; 512]);
/// The 4 KiB page table that replaces the 2 MiB mapping holding [`GHCB`].
static GHCB_PT: Page = Page([const { AtomicU64::new(0) }; 512]);

/// Whether SEV_STATUS says SNP (set once by [`detect`]).
static SNP: AtomicBool = AtomicBool::new(false);
/// The registered GHCB's GPA (0 until registered).
static GHCB_GPA: AtomicU64 = AtomicU64::new(0);
/// Set while the GHCB page holds an exit in flight: a #VC then is a bug.
static GHCB_BUSY: AtomicBool = AtomicBool::new(false);
/// Port I/O events forwarded (for the first line's count).
pub static IOIO_EVENTS: AtomicU64 = AtomicU64::new(0);

/// Reads SEV_STATUS (as Linux's `sev_enable`): on SNP the CPU answers it without a #VC;
/// on `emulated` Vigil answers 0. A #GP (an older Vigil) counts as no SEV.
pub fn detect() -> bool {
    let status = arch::probe_rdmsr(MSR_SEV_STATUS).unwrap_or(0);
    let snp = is_snp(status);
    SNP.store(snp, Ordering::SeqCst);
    snp
}

/// Whether the guest runs on SNP.
pub fn active() -> bool {
    SNP.load(Ordering::Relaxed)
}

/// The registered GHCB's GPA, once [`setup`] is done.
pub fn ghcb_gpa() -> Option<u64> {
    match GHCB_GPA.load(Ordering::SeqCst) {
        0 => None,
        g => Some(g),
    }
}

/// Ends the VM through the GHCB MSR protocol: termination request, reason set 1,
/// `code` (`vigil_firmware::snp::term`).
pub fn terminate(code: u64) -> ! {
    arch::wrmsr(
        MSR_GHCB,
        msr::terminate(svsm_abi::ghcb::term::SET_SVSM, code),
    );
    arch::vmgexit_bare();
    loop {
        arch::hlt();
    }
}

/// One GHCB MSR protocol request; returns the MSR's value after the VMGEXIT.
fn msr_request(value: u64) -> u64 {
    arch::wrmsr(MSR_GHCB, value);
    arch::vmgexit_bare();
    arch::rdmsr(MSR_GHCB)
}

/// Parks this AP for good, as Linux parks an offline AP on SEV-ES/SNP
/// (`sev_es_play_dead`: AP reset hold): HLT would be an automatic exit that halts the
/// vCPU with no interrupt ever to wake it. On SNP the hold lasts until the next AP
/// creation for this vCPU, which starts a new VMSA (or, below an SVSM, Vigil's VMPL0
/// one); should this VMSA ever run again it parks again.
pub fn park() -> ! {
    loop {
        let _ = msr_request(msr::AP_RESET_HOLD_REQ);
    }
}

/// One harmless exit to the host (the MSR protocol's SEV information request, its
/// answer ignored) while this vCPU waits for another: on real hardware the vCPUs run in
/// parallel and this is only a pause, in the SNP machine model (which runs one vCPU at
/// a time, exit to exit) it lets the other vCPU run. The GHCB MSR is left holding the
/// answer, which is fine: every GHCB-page exit and SVSM call writes it first.
pub fn yield_vcpu() {
    let _ = msr_request(msr::SEV_INFO_REQ);
}

/// Makes the GHCB page and registers it; every failure terminates (nothing can be
/// printed before this returns). `s` is the session on the boot calling area, `list`
/// a scratch page for the PVALIDATE list, `ram_end` the end of guest RAM (RDX at
/// entry).
pub fn setup(s: &mut Svsm<Vmgexit>, list: u64, ram_end: u64) {
    let gpa = &GHCB as *const Page as u64;
    // 1. The C-bit, from the guest's own PML4 entry (Vigil sets it in CR3 and every
    //    present entry), against CPUID 0x8000_001F EBX[5:0] asked through the MSR
    //    protocol (a CPUID instruction would #VC, and the host's word alone is not
    //    trusted for it either).
    let cr3 = arch::cr3();
    let low = ram_end
        .checked_next_power_of_two()
        .unwrap_or(0)
        .wrapping_sub(1);
    let pml4 = cr3 & low & !0xfff;
    // Every table must lie in guest RAM (above the 16 MiB of Vigil's region, which the
    // guest cannot read): else the boot state is not the one documented, stop here.
    let in_ram = |a: u64| (16 * super::MIB..ram_end).contains(&a);
    if !in_ram(pml4) {
        terminate(term::C_BIT);
    }
    let pml4e = read_u64(pml4 + ((gpa >> 39) & 511) * 8);
    let Ok(tables) = c_bit_from_tables(cr3, pml4e, ram_end) else {
        terminate(term::C_BIT)
    };
    let Ok(ebx) = check_cpuid(msr_request(msr::cpuid_request(0x8000_001f, 1)), 1) else {
        terminate(term::C_BIT)
    };
    let Ok(c_bit) = check_c_bit(tables, ebx) else {
        terminate(term::C_BIT)
    };
    let c = 1u64 << c_bit;
    // The 2 MiB leaf that maps the GHCB page (PML4 -> PDPT -> PD, the guest's tables).
    let pdpt = entry_address(pml4e, c);
    if !in_ram(pdpt) {
        terminate(term::GHCB_MAPPING);
    }
    let pdpte = read_u64(pdpt + ((gpa >> 30) & 511) * 8);
    let pd = entry_address(pdpte, c);
    if !in_ram(pd) {
        terminate(term::GHCB_MAPPING);
    }
    let pde_at = pd + ((gpa >> 21) & 511) * 8;
    let pde = read_u64(pde_at);
    let Some(pt) = split_2m(pde, c, gpa) else {
        terminate(term::GHCB_MAPPING)
    };
    // 2. Validation rescinded through the SVSM (at VMPL2 PVALIDATE is the SVSM's), so
    //    the host never flips a page the guest still holds validated. From here the
    //    page is not touched until it is mapped shared.
    let rax = super::pvalidate(s, list, &[entry(gpa, false, false)]);
    if rax != result::SUCCESS {
        terminate(term::GHCB_RESCIND);
    }
    // 3. Page-state change to shared (MSR protocol 0x014, answer 0x015 with no error).
    if check_psc(msr_request(msr::psc_request(gpa >> 12, psc_op::SHARED))).is_err() {
        terminate(term::GHCB_PSC);
    }
    // 4. The guest's own mapping without the C-bit: the 2 MiB leaf split into a 4 KiB
    //    table of the guest's (every other page keeps the C-bit), then INVLPG (which
    //    drops the whole 2 MiB translation).
    for (e, v) in GHCB_PT.0.iter().zip(pt) {
        e.store(v, Ordering::SeqCst);
    }
    let pt_gpa = &GHCB_PT as *const Page as u64;
    write_bytes(pde_at, &(pt_gpa | 0x3 | c).to_le_bytes());
    arch::invlpg(gpa);
    // 5. Registered (MSR protocol 0x012, the GFN echoed in 0x013).
    if check_register(
        msr_request(msr::register_ghcb_request(gpa >> 12)),
        gpa >> 12,
    )
    .is_err()
    {
        terminate(term::GHCB_REGISTER);
    }
    write_bytes(gpa, Ghcb::new_zeroed_v2().as_bytes());
    arch::wrmsr(MSR_GHCB, gpa);
    GHCB_GPA.store(gpa, Ordering::SeqCst);
}

fn read_u64(addr: u64) -> u64 {
    let mut b = [0u8; 8];
    read_bytes(addr, &mut b);
    u64::from_le_bytes(b)
}

/// One exit through the registered GHCB page: the page written, the GHCB MSR set to its
/// GPA (an SVSM call may have left the run-VMPL request there), VMGEXIT, the page read
/// back into `answer`.
fn ghcb_exchange(g: &Ghcb, answer: &mut [u8; 4096]) {
    let Some(gpa) = ghcb_gpa() else {
        terminate(term::VC_NO_GHCB)
    };
    if GHCB_BUSY.swap(true, Ordering::SeqCst) {
        terminate(term::VC_NESTED);
    }
    write_bytes(gpa, g.as_bytes());
    arch::wrmsr(MSR_GHCB, gpa);
    arch::vmgexit_bare();
    read_bytes(gpa, answer);
    GHCB_BUSY.store(false, Ordering::SeqCst);
}

/// One exit through the registered GHCB page ([`ghcb_exchange`]): `Ok(RAX)` when the
/// host's SW_EXITINFO1 is 0. Used by the #VC handler and the guest's AP creation.
pub fn ghcb_exit(g: &Ghcb) -> Result<u64, (u64, u64)> {
    let mut page = [0u8; 4096];
    ghcb_exchange(g, &mut page);
    ghcb_result(&page)
}

/// A page-state change of `entries` through the registered GHCB page (#56421 4.1.6,
/// Linux `vmgexit_psc`; `vigil_firmware::snp::psc` checks every answer).
pub fn page_state_change(entries: &[PscEntry]) -> Result<(), PscError> {
    let Some(gpa) = ghcb_gpa() else {
        return Err(PscError::BadRequest);
    };
    psc(gpa, entries, &mut |g, answer| ghcb_exchange(g, answer))
}

/// The registers the #VC stub saved (lowest address first), then the CPU's frame (laid
/// out whole so that the stub's pushes match; the handler reads only some of it).
#[repr(C)]
#[allow(dead_code)]
pub struct VcFrame {
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

/// The #VC handler (APM vol. 2 15.35.5: the error code is the exit code). IOIO is
/// decoded at RIP and forwarded through the GHCB; HLT (which the APM makes an automatic
/// exit, so it should not arrive here) is forwarded as exit 0x78; anything else, or a
/// refusal by the host, terminates.
#[no_mangle]
extern "C" fn guest_vc(f: &mut VcFrame) {
    match f.error_code {
        svsm_abi::ghcb::exit::IOIO => {
            let mut bytes = [0u8; 3];
            read_bytes(f.rip, &mut bytes);
            let Ok(insn) = decode_io(&bytes) else {
                terminate(term::VC_IOIO_DECODE)
            };
            let port = insn.port(f.rdx);
            let Some(g) = ioio_ghcb(port, insn.size, insn.is_in, f.rax) else {
                terminate(term::VC_IOIO_DECODE)
            };
            match ghcb_exit(&g) {
                Ok(rax) if insn.is_in => f.rax = in_result(&insn, f.rax, rax),
                Ok(_) => {}
                Err(_) => terminate(term::VC_GHCB_REFUSED),
            }
            f.rip += u64::from(insn.len);
            IOIO_EVENTS.fetch_add(1, Ordering::Relaxed);
        }
        svsm_abi::ghcb::exit::HLT => {
            if ghcb_exit(&hlt_ghcb()).is_err() {
                terminate(term::VC_GHCB_REFUSED);
            }
            f.rip += 1;
        }
        // Inside a probe (`arch::probe`, `probe_wrmsr`: a recovery point armed) any
        // other #VC is the probe's result, reported like the other faults (vector 29,
        // the exit code as error; #VC has no CR2) and the probe resumes there with
        // RAX = 1: e.g. 0x404, a private access to a page that is not validated (on
        // `emulated` Vigil injects #PF with the RMP bit instead), or 0x7C for a WRMSR.
        // Otherwise it is fatal below.
        code if arch::GUEST_RECOVER.load(Ordering::SeqCst) != 0 => {
            arch::FAULT_VECTOR.store(29, Ordering::SeqCst);
            arch::FAULT_ERROR.store(code, Ordering::SeqCst);
            arch::FAULT_CR2.store(0, Ordering::SeqCst);
            f.rip = arch::GUEST_RECOVER.swap(0, Ordering::SeqCst);
            f.rax = 1;
        }
        code => {
            // The console works once the GHCB is registered and not in use: name the
            // exit code there (these writes #VC again, handled above), then terminate.
            if ghcb_gpa().is_some() && !GHCB_BUSY.load(Ordering::SeqCst) {
                let _ = writeln!(
                    super::Serial,
                    "guest: FATAL: #VC with exit code {code:#x} at RIP {:#x}",
                    f.rip
                );
            }
            terminate(term::VC_UNEXPECTED)
        }
    }
}

// The #VC gate's stub: every general register saved (the handler reads and writes RAX,
// RDX and RIP in the frame), the handler called on a 16-byte aligned stack with DF
// clear, the registers restored, the error code dropped, IRETQ.
core::arch::global_asm!(
    ".global guest_vc_entry",
    "guest_vc_entry:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdi, rsp",
    "mov rbx, rsp",
    "and rsp, -16",
    "cld",
    "call guest_vc",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "add rsp, 8",
    "iretq",
);
