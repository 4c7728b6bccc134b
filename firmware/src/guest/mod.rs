//! The test guest's program: the scripted session, the attacks, the summary.

mod arch;
mod snp;

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use arch::{probe, read_bytes, write_bytes, Fault, Vmgexit};
use svsm_abi::attest_protocol::report_data;
use svsm_abi::core_protocol::{result, SVSM_ATTEST_PROTOCOL, SVSM_CORE_PROTOCOL};
use svsm_abi::ghcb::{psc_op, PscEntry, PSC_MAX_ENTRIES};
use svsm_abi::pvalidate::{PvalidateEntry, NEXT_OFFSET};
use vigil_firmware::snp::{
    list_capacity, psc_entry_of, svsm_pval_pages, PscError, PvalDone, PvalError,
};
use vigil_firmware::{
    ap_create_ghcb, ap_vmsa, attest_request, entry, ghcb_answer, pvalidate_list, regs, result_name,
    svsm_info, ApState, Svsm, SNP_ACTIVE,
};
use zerocopy::IntoBytes;

const MIB: u64 = 1 << 20;
// Scratch pages in the launch region (validated at launch, after Vigil's pages).
const LIST: u64 = 17 * MIB + 0x2_0000;
const NONCE: u64 = LIST + 0x2000;
const REPORT: u64 = LIST + 0x3000;
const MANIFEST: u64 = LIST + 0x4000;
const CERTS: u64 = LIST + 0x5000;
const AP_STACK_TOP: u64 = 17 * MIB + 0x4_0000;
// Pages the guest validates itself.
const PAGE_4K: u64 = 18 * MIB;
const PAGE_2M: u64 = 20 * MIB;
const LIST_BASE: u64 = 24 * MIB;
const LIST_PAGES: u64 = 16;
const NEW_CAA: u64 = LIST_BASE;
const VMSA: u64 = LIST_BASE + 0x1000;
const AP_CAA: u64 = LIST_BASE + 0x2000;
const BAD_VMSA: u64 = LIST_BASE + 0x3000;
// The guest's own GHCB page (requests to the host: AP creation).
const GHCB_PAGE: u64 = LIST_BASE + 0x9000;
// The client-shaped sessions' pages: VMSAs, a calling area, pages validated through a
// list in the calling area (one 2 MiB page, four 4 KiB pages used as AP stacks).
const VMSA_2: u64 = LIST_BASE + 0xa000;
const VMSA_3: u64 = LIST_BASE + 0xb000;
const VMSA_4: u64 = LIST_BASE + 0xc000;
const CAA_4: u64 = VMSA_4 + 0x1000;
const CA_LIST_2M: u64 = 26 * MIB;
const CA_LIST_4K: u64 = 28 * MIB;
// Vigil's memory: its image starts at 1 MiB, its heap above.
const VIGIL_IMAGE: u64 = MIB;
const VIGIL_HEAP: u64 = 3 * MIB;

struct Serial;
impl Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            while arch::inb(0x3fd) & 0x20 == 0 {}
            arch::outb(0x3f8, b);
        }
        Ok(())
    }
}

macro_rules! say {
    ($($a:tt)*) => {{ let _ = writeln!(Serial, $($a)*); }};
}

/// Ends the run with a failure report.
pub fn fatal(why: core::fmt::Arguments<'_>) -> ! {
    say!("guest: FATAL: {why}");
    arch::outl(0xf4, 0x12);
    loop {
        arch::hlt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal(format_args!("panic: {}", info.message()))
}

// Entry: RSI = secrets, RDI = bench iterations, RDX = RAM end, RCX = first unvalidated.
core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global guest_entry",
    "guest_entry:",
    "mov r8, rdi",
    "mov rdi, rsi",
    "mov rsi, r8",
    "call guest_main",
    "ud2",
    ".global guest_ap_entry",
    "guest_ap_entry:",
    "call guest_ap_main",
    "ud2",
    ".text",
);

extern "C" {
    fn guest_ap_entry();
}

/// Set by the second vCPU when it has made its call.
static AP_DONE: AtomicU64 = AtomicU64::new(0);
/// The calling area the next vCPU started calls through (set before it starts).
static AP_CAA_NEXT: AtomicU64 = AtomicU64::new(AP_CAA);

#[no_mangle]
extern "C" fn guest_ap_main() -> ! {
    arch::init_tables();
    let mut s = Svsm::new(Vmgexit, AP_CAA_NEXT.load(Ordering::SeqCst));
    let r = s.query(SVSM_CORE_PROTOCOL, 1);
    AP_DONE.store(if r == Ok((1, 1)) { 1 } else { 2 }, Ordering::SeqCst);
    if snp::active() {
        snp::park();
    }
    loop {
        arch::hlt();
    }
}

struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Tally {
    fn step(&mut self, name: &str, r: Result<(), &str>) {
        match r {
            Ok(()) => {
                self.passed += 1;
                say!("guest: {name} ... ok");
            }
            Err(why) => {
                self.failed += 1;
                say!("guest: {name} ... FAILED ({why})");
            }
        }
    }
    /// A step or attack not run on this platform: counted as skipped, not passed.
    fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        say!("guest: {name} ... skipped on SNP ({why})");
    }
    /// An attack: `Ok(how)` when refused.
    fn attack(&mut self, name: &str, r: Result<&str, &str>) {
        match r {
            Ok(how) => {
                self.passed += 1;
                say!("guest: attack {name} ... refused ({how})");
            }
            Err(why) => {
                self.failed += 1;
                say!("guest: attack {name} ... NOT REFUSED ({why})");
            }
        }
    }
}

/// Why the guest's memory did not reach the state asked for.
#[derive(Clone, Copy, Debug)]
enum MemFail {
    /// The SVSM's PVALIDATE result.
    Svsm(u64),
    /// The SVSM's `next` contradicted the list, or it never finished.
    SvsmInconsistent(PvalError),
    /// The host refused the page-state change, or answered it inconsistently.
    Psc(PscError),
    /// A list that mixes validations and rescinds (the guest's own bug).
    Mixed,
}

impl MemFail {
    fn name(self) -> &'static str {
        match self {
            MemFail::Svsm(rax) => result_name(rax),
            MemFail::SvsmInconsistent(PvalError::BadNext(_)) => "the SVSM's `next` out of place",
            MemFail::SvsmInconsistent(PvalError::NoProgress) => "the SVSM never finished the list",
            MemFail::SvsmInconsistent(_) => "the list does not fit",
            MemFail::Psc(PscError::Refused(..)) => "the host refused the page-state change",
            MemFail::Psc(PscError::NoProgress) => "the host made no page-state change progress",
            MemFail::Psc(PscError::Inconsistent(_)) => {
                "the host's page-state change answer contradicts the request"
            }
            MemFail::Psc(PscError::BadRequest) => "no page-state change could be made",
            MemFail::Mixed => "a list mixing validate and rescind",
        }
    }
    /// RAX as the SVSM answered (SUCCESS never; u64::MAX when the SVSM did not fail).
    fn rax(self) -> u64 {
        match self {
            MemFail::Svsm(rax) => rax,
            _ => u64::MAX,
        }
    }
}

/// The SVSM PVALIDATE of `entries` through a list at `list_gpa`, as Linux's
/// `svsm_pval_pages` makes it (`vigil_firmware::snp::svsm_pval_pages`: INCOMPLETE asked
/// again, a 2 MiB entry answered FAIL_SIZEMISMATCH redone as 512 4 KiB entries). No
/// page-state change: see [`make_private`] and [`make_shared`].
fn pval(
    s: &mut Svsm<Vmgexit>,
    list_gpa: u64,
    entries: &[PvalidateEntry],
) -> Result<PvalDone, MemFail> {
    let mut buf = [0u8; 4096];
    svsm_pval_pages(entries, list_capacity(list_gpa), &mut |list, next| {
        let Ok(n) = pvalidate_list(&mut buf, list) else {
            return (u64::MAX, next);
        };
        // #58019 6.2: the SVSM starts at `next` and writes it back as it goes.
        buf[NEXT_OFFSET as usize..NEXT_OFFSET as usize + 2].copy_from_slice(&next.to_le_bytes());
        write_bytes(list_gpa, &buf[..n]);
        let rax = s.call(regs::pvalidate(list_gpa)).rax;
        let mut back = [0u8; 2];
        read_bytes(list_gpa + NEXT_OFFSET, &mut back);
        (rax, u16::from_le_bytes(back))
    })
    .map_err(|e| match e {
        PvalError::Svsm { rax, .. } => MemFail::Svsm(rax),
        e => MemFail::SvsmInconsistent(e),
    })
}

/// On SNP, the host's page-state change of the pages `entries` name to `op`
/// (`svsm_abi::ghcb::psc_op`), one PSC entry per PVALIDATE entry and of its size (a
/// 2 MiB entry for a 2 MiB validation), through the guest's GHCB page (#56421 4.1.6).
/// On `emulated` nothing: the host there is Vigil, and it has no page-state change.
fn psc_for(entries: &[PvalidateEntry], op: u64) -> Result<(), MemFail> {
    if !snp::active() {
        return Ok(());
    }
    let mut es = [PscEntry(0); PSC_MAX_ENTRIES];
    if entries.len() > es.len() {
        return Err(MemFail::Psc(PscError::BadRequest));
    }
    for (slot, e) in es.iter_mut().zip(entries) {
        *slot = psc_entry_of(*e, op);
    }
    snp::page_state_change(&es[..entries.len()]).map_err(MemFail::Psc)
}

/// Makes memory private as Linux's `__set_pages_state` does for
/// `SNP_PAGE_STATE_PRIVATE`: the host's page-state change to private first (on SNP),
/// then the validation ("Page validation must be performed after changing to
/// private"), through the SVSM at VMPL2 (`pvalidate_pages` -> `svsm_pval_pages`).
fn make_private(
    s: &mut Svsm<Vmgexit>,
    list_gpa: u64,
    entries: &[PvalidateEntry],
) -> Result<PvalDone, MemFail> {
    if !entries.iter().all(|e| e.validate()) {
        return Err(MemFail::Mixed);
    }
    psc_for(entries, psc_op::PRIVATE)?;
    pval(s, list_gpa, entries)
}

/// What a [`make_private`] or [`pval`] came to, for the console.
fn name_of(r: Result<PvalDone, MemFail>) -> &'static str {
    match r {
        Ok(_) => "SUCCESS",
        Err(f) => f.name(),
    }
}

/// The SVSM result of a [`make_private`] or [`pval`], as RAX.
fn rax_of(r: Result<PvalDone, MemFail>) -> u64 {
    match r {
        Ok(_) => result::SUCCESS,
        Err(f) => f.rax(),
    }
}

/// One raw SVSM PVALIDATE call over a list written at `list_gpa`, no page-state change
/// and no fallback: the GHCB page's own rescind at setup (before the GHCB exists) and
/// the attacks whose list or pages are wrong on purpose.
fn pvalidate(
    s: &mut Svsm<Vmgexit>,
    list_gpa: u64,
    entries: &[svsm_abi::pvalidate::PvalidateEntry],
) -> u64 {
    let mut buf = [0u8; 8 + 8 * 32];
    let Ok(n) = pvalidate_list(&mut buf, entries) else {
        return u64::MAX;
    };
    write_bytes(list_gpa, &buf[..n]);
    s.call(regs::pvalidate(list_gpa)).rax
}

/// Lets the other vCPU run while this one waits for it. On `emulated` HLT does (Vigil
/// intercepts it and switches vCPUs); on SNP HLT is an automatic exit that halts the
/// vCPU until an interrupt this guest never gets, so [`snp::yield_vcpu`] makes an exit
/// that returns instead.
fn yield_vcpu() {
    if snp::active() {
        snp::yield_vcpu();
    } else {
        arch::hlt();
    }
}

/// Starts vCPU `apic_id` from a fresh VMSA at `vmsa` that calls through `caa`, on the
/// stack ending at `rsp`: CREATE_VCPU, then the guest's own AP creation (Linux
/// `wakeup_cpu_via_vmgexit`), then waits for its QUERY_PROTOCOL.
fn start_ap(
    s: &mut Svsm<Vmgexit>,
    vmpl: u8,
    apic_id: u32,
    vmsa: u64,
    caa: u64,
    rsp: u64,
) -> Result<(), &'static str> {
    let v = ap_vmsa(&ApState {
        vmpl,
        sev_features: SNP_ACTIVE,
        cr0: arch::cr0(),
        cr3: arch::cr3(),
        cr4: arch::cr4(),
        efer: 0xd01,
        rip: guest_ap_entry as *const () as u64,
        rsp,
    });
    write_bytes(vmsa, v.as_bytes());
    AP_CAA_NEXT.store(caa, Ordering::SeqCst);
    AP_DONE.store(0, Ordering::SeqCst);
    let rax = s.call(regs::create_vcpu(vmsa, caa, apic_id)).rax;
    if rax != result::SUCCESS {
        return Err(result_name(rax));
    }
    if ap_create(apic_id, vmpl, vmsa).is_err() {
        return Err("the host refused the AP creation");
    }
    let mut spins = 0;
    while AP_DONE.load(Ordering::SeqCst) == 0 && spins < 1000 {
        yield_vcpu();
        spins += 1;
    }
    match AP_DONE.load(Ordering::SeqCst) {
        1 => Ok(()),
        0 => Err("the vCPU never ran"),
        _ => Err("the vCPU's call failed"),
    }
}

/// The calls of Linux 6.12 and OVMF in their shapes (issue 11), each step citing the
/// client function it copies.
fn client_sessions(s: &mut Svsm<Vmgexit>, t: &mut Tally, vmpl: u8) {
    // Linux `svsm_pval_pages`: the PVALIDATE list in the calling area's buffer at
    // offset 8 (`svsm_build_ca_from_psc_desc`), a 2 MiB entry and 4 KiB entries.
    let list = s.caa + 8;
    let mut es = [entry(CA_LIST_2M, true, true); 5];
    for (i, e) in es.iter_mut().enumerate().skip(1) {
        *e = entry(CA_LIST_4K + (i as u64 - 1) * 4096, false, true);
    }
    // Linux's order (`__set_pages_state`): on SNP the PSC to private first (one 2 MiB
    // and four 4 KiB PSC entries), then `svsm_pval_pages`, whose FAIL_SIZEMISMATCH
    // fallback redoes the 2 MiB entry at 4 KiB when the host backs it with 4 KiB pages.
    let r = make_private(s, list, &es);
    if let Ok(d) = r {
        if d.fallback_2m != 0 {
            say!(
                "guest:   linux-pvalidate-in-ca: the 2 MiB entry answered PVALIDATE_FAIL_SIZEMISMATCH, redone as 512 4 KiB entries ({} calls)",
                d.calls
            );
        }
    }
    let (rax, why) = (rax_of(r), name_of(r));
    let all = probe(CA_LIST_2M, true).is_none()
        && probe(CA_LIST_2M + 2 * MIB - 8, true).is_none()
        && (0..4).all(|i| probe(CA_LIST_4K + i * 4096, true).is_none());
    t.step(
        "linux-pvalidate-in-ca",
        match (rax, all) {
            (result::SUCCESS, true) => Ok(()),
            (result::SUCCESS, false) => Err("validated pages not usable"),
            _ => Err(why),
        },
    );
    // Linux CPU offline/online (`wakeup_cpu_via_vmgexit`, then `snp_cleanup_vmsa`): a
    // VMSA for APIC 1, then a new VMSA for the same APIC ID and calling area, and only
    // then DELETE_VCPU of the old one.
    let r = start_ap(s, vmpl, 1, VMSA_2, AP_CAA, CA_LIST_4K + 0x1000)
        .and_then(|_| start_ap(s, vmpl, 1, VMSA_3, AP_CAA, CA_LIST_4K + 0x2000))
        .and_then(|_| match s.call(regs::delete_vcpu(VMSA_2)).rax {
            result::SUCCESS => Ok(()),
            rax => Err(result_name(rax)),
        });
    t.step("linux-cpu-online", r);
    if snp::active() {
        t.skip("ovmf-create-vcpu", APIC2_SKIP);
        return;
    }
    // OVMF `SvsmVmsaRmpAdjust`: CREATE_VCPU with the calling area on the page after the
    // VMSA, then (MpLib) AP creation; DELETE_VCPU through the same function.
    let r = start_ap(s, vmpl, 2, VMSA_4, CAA_4, CA_LIST_4K + 0x3000).and_then(|_| {
        match s.call(regs::delete_vcpu(VMSA_4)).rax {
            result::SUCCESS => Ok(()),
            rax => Err(result_name(rax)),
        }
    });
    t.step("ovmf-create-vcpu", r);
}

/// `ovmf-create-vcpu` starts APIC ID 2: the SNP machine model's VM has two vCPUs
/// (`vcpus=` 1..=2), so its host refuses that AP creation.
const APIC2_SKIP: &str = "APIC ID 2: the SNP machine model's VM has two vCPUs";

/// Step 8: CREATE_VCPU for a second vCPU at LIST_BASE + 0x1000, started by the guest's
/// AP creation; it must make its QUERY_PROTOCOL call. On SNP the CREATE_VCPU is its
/// own step (`create-vcpu-vmsa`) and `created` its result; on `emulated` it is made
/// here.
fn create_vcpu_and_run(s: &mut Svsm<Vmgexit>, t: &mut Tally, vmpl: u8, created: Option<u64>) {
    // As Linux's `wakeup_cpu_via_vmgexit`: CREATE_VCPU makes the VMSA (#58019 6.3),
    // then the guest's own GHCB AP creation, at its VMPL, starts it.
    let mut rax = created.unwrap_or_else(|| s.call(regs::create_vcpu(VMSA, AP_CAA, 1)).rax);
    if rax == result::SUCCESS && ap_create(1, vmpl, VMSA).is_err() {
        rax = u64::MAX;
    }
    let mut spins = 0;
    while rax == result::SUCCESS && AP_DONE.load(Ordering::SeqCst) == 0 && spins < 1000 {
        yield_vcpu();
        spins += 1;
    }
    t.step(
        "create-vcpu",
        match (rax, AP_DONE.load(Ordering::SeqCst)) {
            (result::SUCCESS, 1) => Ok(()),
            (result::SUCCESS, 0) => Err("the second vCPU never ran"),
            (result::SUCCESS, _) => Err("the second vCPU's call failed"),
            (u64::MAX, _) => Err("the host refused the AP creation"),
            _ => Err(result_name(rax)),
        },
    );
}

/// The guest's own SNP AP Creation request through its GHCB page (Linux
/// `vmgexit_ap_control`); `Err` holds the host's SW_EXITINFO1/2.
fn ap_create(apic_id: u32, vmpl: u8, vmsa: u64) -> Result<(), (u64, u64)> {
    // On SNP the host takes only the registered (shared) GHCB page.
    if snp::active() {
        return snp::ghcb_exit(&ap_create_ghcb(apic_id, vmpl, vmsa, SNP_ACTIVE)).map(|_| ());
    }
    write_bytes(
        GHCB_PAGE,
        ap_create_ghcb(apic_id, vmpl, vmsa, SNP_ACTIVE).as_bytes(),
    );
    arch::wrmsr(vigil_firmware::MSR_GHCB, GHCB_PAGE);
    let _ = arch::vmgexit(svsm_abi::calling_area::SvsmRegs::default());
    let mut page = [0u8; 4096];
    read_bytes(GHCB_PAGE, &mut page);
    ghcb_answer(&page)
}

fn rmp_fault(f: Option<Fault>, addr: u64) -> Result<&'static str, &'static str> {
    match f {
        Some(f) if f.vector == 14 && f.error & (1 << 31) != 0 && f.cr2 == addr => {
            Ok("#PF with the RMP bit")
        }
        Some(_) => Err("a fault, but not #PF(RMP) at the address"),
        None => Err("the access succeeded"),
    }
}

/// On SNP: the #VC of a private access to a page that is not validated (`snp`'s
/// handler reports it to a probe as vector 29, error 0x404).
fn not_validated(f: Option<Fault>) -> Result<&'static str, &'static str> {
    match f {
        Some(f) if f.vector == 29 && f.error == svsm_abi::ghcb::exit::NOT_VALIDATED => {
            Ok("#VC not validated")
        }
        Some(_) => Err("a fault, but not #VC(not validated)"),
        None => Err("the access succeeded"),
    }
}

fn refused_with(rax: u64, want: u64) -> Result<&'static str, &'static str> {
    if rax == want {
        Ok(result_name(want))
    } else if rax == result::SUCCESS {
        Err("SUCCESS")
    } else {
        Err("wrong error")
    }
}

#[no_mangle]
extern "C" fn guest_main(secrets: u64, bench: u64, ram_end: u64, first_free: u64) -> ! {
    arch::init_tables();
    // On SNP nothing may be printed before `snp::setup` has made and registered the
    // GHCB: the first COM1 write raises a #VC that only the GHCB can forward.
    if snp::detect() {
        let mut page = [0u8; 4096];
        read_bytes(secrets, &mut page);
        let Ok(info) = svsm_info(&page) else {
            snp::terminate(vigil_firmware::snp::term::NO_SVSM)
        };
        snp::setup(&mut Svsm::new(Vmgexit, info.caa), LIST, ram_end);
    }
    say!("guest: test guest at VMPL2: secrets page {secrets:#x}, RAM to {ram_end:#x}, unvalidated from {first_free:#x}");
    if let Some(gpa) = snp::ghcb_gpa() {
        say!(
            "guest:   SEV-SNP: GHCB {gpa:#x} shared and registered, port I/O through #VC ({} so far)",
            snp::IOIO_EVENTS.load(Ordering::Relaxed)
        );
    }
    let mut t = Tally {
        passed: 0,
        failed: 0,
        skipped: 0,
    };

    // 1. Find the SVSM through the secrets page.
    let mut page = [0u8; 4096];
    read_bytes(secrets, &mut page);
    let info = match svsm_info(&page) {
        Ok(i) => i,
        Err(e) => fatal(format_args!("no SVSM in the secrets page: {e:?}")),
    };
    t.step(
        "secrets-page",
        if info.guest_vmpl == 2 && info.max_version >= 1 {
            say!(
                "guest:   SVSM at {:#x}+{:#x}, calling area {:#x}, VMPL{}",
                info.base,
                info.size,
                info.caa,
                info.guest_vmpl
            );
            Ok(())
        } else {
            Err("unexpected SVSM fields")
        },
    );
    let mut s = Svsm::new(Vmgexit, info.caa);

    // 2. QUERY_PROTOCOL.
    let core = s.query(SVSM_CORE_PROTOCOL, 1);
    let att = s.query(SVSM_ATTEST_PROTOCOL, 1);
    let none = s.query(0x4242, 1);
    t.step(
        "query-protocol",
        if core == Ok((1, 1)) && att == Ok((1, 1)) && none == Ok((0, 0)) {
            Ok(())
        } else {
            Err("unexpected versions")
        },
    );

    // 3. PVALIDATE one 4 KiB page; it must arrive zeroed and be usable. Every
    // validation from here is Linux's order (`make_private`): on SNP the host makes the
    // pages private first, then the SVSM validates them.
    let r = make_private(&mut s, LIST, &[entry(PAGE_4K, false, true)]);
    let (rax, why) = (rax_of(r), name_of(r));
    let mut b = [0xffu8; 16];
    if rax == result::SUCCESS {
        read_bytes(PAGE_4K, &mut b);
        write_bytes(PAGE_4K + 8, &[0xab]);
    }
    let mut back = [0u8; 1];
    if rax == result::SUCCESS {
        read_bytes(PAGE_4K + 8, &mut back);
    }
    t.step(
        "pvalidate-4k",
        if rax != result::SUCCESS {
            Err(why)
        } else if b != [0; 16] || back[0] != 0xab {
            Err("page not zeroed or not writable")
        } else {
            Ok(())
        },
    );

    // 4. PVALIDATE a 2 MiB page (a 2 MiB PSC entry first on SNP). On SNP the host may
    // back it with 4 KiB RMP entries (KVM does): the 2 MiB call is then answered
    // FAIL_SIZEMISMATCH and redone as 512 4 KiB pages, as Linux's `svsm_pval_pages`
    // does; either passes there, and the line below says which. On `emulated` Vigil
    // validates 2 MiB pages whole, so the fallback there is a failure.
    let r = make_private(&mut s, LIST, &[entry(PAGE_2M, true, true)]);
    if let Ok(d) = r {
        if d.fallback_2m == 0 {
            say!("guest:   pvalidate-2m: the 2 MiB call succeeded");
        } else {
            say!(
                "guest:   pvalidate-2m: the 2 MiB call answered PVALIDATE_FAIL_SIZEMISMATCH, the 512 4 KiB pages succeeded ({} calls)",
                d.calls
            );
        }
    }
    let usable =
        r.is_ok() && probe(PAGE_2M, true).is_none() && probe(PAGE_2M + 2 * MIB - 1, true).is_none();
    t.step(
        "pvalidate-2m",
        match r {
            Err(f) => Err(f.name()),
            Ok(d) if d.fallback_2m != 0 && !snp::active() => {
                Err("PVALIDATE_FAIL_SIZEMISMATCH on emulated")
            }
            Ok(_) if !usable => Err("validated page not usable"),
            Ok(_) => Ok(()),
        },
    );

    // 5. PVALIDATE a list of 16 pages.
    let mut es = [entry(0, false, true); 16];
    for (i, e) in es.iter_mut().enumerate() {
        *e = entry(LIST_BASE + i as u64 * 4096, false, true);
    }
    let r = make_private(&mut s, LIST, &es);
    let (rax, why) = (rax_of(r), name_of(r));
    let all = (0..LIST_PAGES).all(|i| probe(LIST_BASE + i * 4096, true).is_none());
    t.step(
        "pvalidate-list",
        if rax == result::SUCCESS && all {
            Ok(())
        } else {
            Err(why)
        },
    );

    // 6. Rescind the 4 KiB page: the guest loses it. Linux's order for shared memory
    // (`__set_pages_state`: "Page validation must be rescinded before changing to
    // shared"): the SVSM rescind, then on SNP the host's page-state change to shared.
    // The probe sits between the two, while the page is private and not validated (after
    // the change a private access would be the host's nested page fault).
    let rescind = [entry(PAGE_4K, false, false)];
    let r = pval(&mut s, LIST, &rescind);
    let f = probe(PAGE_4K, false);
    let r = r.and_then(|d| psc_for(&rescind, psc_op::SHARED).map(|()| d));
    let (rax, why) = (rax_of(r), name_of(r));
    // On SNP the CPU itself refuses it: #VC "not validated" (0x404), not a #PF.
    let lost = if snp::active() {
        not_validated(f)
    } else {
        rmp_fault(f, PAGE_4K)
    };
    t.step(
        "pvalidate-rescind",
        match (rax, lost) {
            (result::SUCCESS, Ok(_)) => Ok(()),
            (result::SUCCESS, Err(_)) => Err("rescinded page still accessible"),
            _ => Err(why),
        },
    );

    // 6b. Validate it again: it must come back zeroed, not with the 0xab written before
    // (invariant 3, the remap attack on earlier SVSMs).
    let r = make_private(&mut s, LIST, &[entry(PAGE_4K, false, true)]);
    let (rax, why) = (rax_of(r), name_of(r));
    let mut again = [0xffu8; 16];
    if rax == result::SUCCESS {
        read_bytes(PAGE_4K, &mut again);
    }
    t.step(
        "revalidate-zeroed",
        if rax != result::SUCCESS {
            Err(why)
        } else if again != [0; 16] {
            Err("old contents visible after re-validation")
        } else {
            Ok(())
        },
    );

    // 7. REMAP_CA to a page of the list; later calls use it.
    let rax = s.remap_ca(NEW_CAA);
    let q = s.query(SVSM_CORE_PROTOCOL, 1);
    t.step(
        "remap-ca",
        if rax == result::SUCCESS && q == Ok((1, 1)) {
            Ok(())
        } else {
            Err(result_name(rax))
        },
    );

    // 8. CREATE_VCPU for a second vCPU, and run it.
    let vmsa = ap_vmsa(&ApState {
        vmpl: 2,
        sev_features: SNP_ACTIVE,
        cr0: arch::cr0(),
        cr3: arch::cr3(),
        cr4: arch::cr4(),
        efer: 0xd01,
        rip: guest_ap_entry as *const () as u64,
        rsp: AP_STACK_TOP,
    });
    write_bytes(VMSA, vmsa.as_bytes());
    // As Linux's `wakeup_cpu_via_vmgexit`: CREATE_VCPU makes the VMSA (#58019 6.3),
    // then the guest's own GHCB AP creation, at its VMPL, starts it. On SNP the
    // CREATE_VCPU is reported on its own (`create-vcpu-vmsa`), then the same VMSA is
    // started; DELETE_VCPU below removes it.
    let created = snp::active().then(|| {
        let rax = s.call(regs::create_vcpu(VMSA, AP_CAA, 1)).rax;
        t.step(
            "create-vcpu-vmsa",
            if rax == result::SUCCESS {
                Ok(())
            } else {
                Err(result_name(rax))
            },
        );
        rax
    });
    create_vcpu_and_run(&mut s, &mut t, info.guest_vmpl, created);

    // 9. CPUID as the policy says: no SVM, no SEV for the guest. Emulated only: on SNP
    // CPUID raises #VC and its answer is the CPUID page's (SEV shown), not Vigil's
    // policy; the guest has no CPUID-page lookup yet.
    if snp::active() {
        t.skip("cpuid-policy", "CPUID is the CPUID page's there");
    } else {
        let svm = arch::cpuid(0x8000_0001).2 & (1 << 2);
        let sev = arch::cpuid(0x8000_001f);
        t.step(
            "cpuid-policy",
            if svm == 0 && sev == (0, 0, 0, 0) {
                Ok(())
            } else {
                Err("SVM or SEV visible to the guest")
            },
        );
    }

    // Attacks. The three RMP ones only on emulated: on SNP a VMPL permission fault is a
    // nested page fault to the host, not a #PF to the guest, and KVM would refault for
    // ever (the SNP machine model stops the vCPU); the guest cannot observe them.
    if snp::active() {
        for a in [
            "attack touch-vigil-image",
            "attack write-vigil-heap",
            "attack write-own-vmsa",
        ] {
            t.skip(a, "the fault goes to the host");
        }
    } else {
        t.attack(
            "touch-vigil-image",
            rmp_fault(probe(VIGIL_IMAGE, false), VIGIL_IMAGE),
        );
        t.attack(
            "write-vigil-heap",
            rmp_fault(probe(VIGIL_HEAP, true), VIGIL_HEAP),
        );
        t.attack(
            "write-own-vmsa",
            rmp_fault(probe(VMSA + 0x178, true), VMSA + 0x178),
        );
    }
    t.attack(
        "validate-twice",
        refused_with(
            rax_of(make_private(
                &mut s,
                LIST,
                &[entry(LIST_BASE + 0x5000, false, true)],
            )),
            result::ERR_PVALIDATE_FAIL_UNCHANGED,
        ),
    );
    // Raw (no page-state change): the SVSM must refuse Vigil's pages whatever the host
    // was asked; the guest does not ask the host to change the state of Vigil's memory.
    t.attack(
        "validate-vigil-memory",
        refused_with(
            pvalidate(&mut s, LIST, &[entry(VIGIL_HEAP, false, true)]),
            result::ERR_INVALID_ADDRESS,
        ),
    );
    // A list whose header is at the end of a page: its entry crosses into the next page.
    t.attack(
        "list-crosses-page",
        refused_with(
            pvalidate(
                &mut s,
                LIST + 0xff8,
                &[entry(LIST_BASE + 0x6000, false, false)],
            ),
            result::ERR_INVALID_PARAMETER,
        ),
    );
    t.attack(
        "list-in-vigil-memory",
        refused_with(
            s.call(regs::pvalidate(VIGIL_HEAP)).rax,
            result::ERR_INVALID_ADDRESS,
        ),
    );
    t.attack(
        "calling-area-crosses-page",
        // Misaligned: INVALID_PARAMETER (#58019 section 5).
        refused_with(
            s.remap_ca(LIST_BASE + 0x7800),
            result::ERR_INVALID_PARAMETER,
        ),
    );
    t.attack(
        "calling-area-in-vigil-memory",
        refused_with(s.remap_ca(VIGIL_HEAP), result::ERR_INVALID_ADDRESS),
    );
    let bad = |vmpl: u8, feat: u64| {
        ap_vmsa(&ApState {
            vmpl,
            sev_features: feat,
            cr0: arch::cr0(),
            cr3: arch::cr3(),
            cr4: arch::cr4(),
            efer: 0xd01,
            rip: guest_ap_entry as *const () as u64,
            rsp: AP_STACK_TOP,
        })
    };
    write_bytes(BAD_VMSA, bad(0, SNP_ACTIVE).as_bytes());
    t.attack(
        "vmsa-vmpl0",
        refused_with(
            s.call(regs::create_vcpu(BAD_VMSA, LIST_BASE + 0x4000, 2))
                .rax,
            result::ERR_INVALID_PARAMETER,
        ),
    );
    write_bytes(
        BAD_VMSA,
        bad(2, SNP_ACTIVE | (1 << 1) | (1 << 40)).as_bytes(),
    );
    t.attack(
        "vmsa-forbidden-sev-features",
        refused_with(
            s.call(regs::create_vcpu(BAD_VMSA, LIST_BASE + 0x4000, 3))
                .rax,
            result::ERR_INVALID_PARAMETER,
        ),
    );
    t.attack(
        "vmsa-in-vigil-memory",
        refused_with(
            s.call(regs::create_vcpu(VIGIL_HEAP, LIST_BASE + 0x4000, 4))
                .rax,
            result::ERR_INVALID_ADDRESS,
        ),
    );

    t.attack(
        "wrmsr-vm-hsave-pa",
        match arch::probe_wrmsr(0xc001_0117, VIGIL_HEAP) {
            Some(f) if f.vector == 13 => Ok("#GP"),
            // On SNP the CPU turns it into #VC (MSR, 0x7C) and the guest forwards none.
            Some(f) if snp::active() && f.vector == 29 && f.error == svsm_abi::ghcb::exit::MSR => {
                Ok("#VC, not forwarded")
            }
            Some(_) => Err("a fault, but not #GP"),
            None => Err("the write succeeded"),
        },
    );

    // DELETE_VCPU: the second vCPU goes, its VMSA page comes back to the guest.
    let rax = s.call(regs::delete_vcpu(VMSA)).rax;
    let back = probe(VMSA, true);
    t.step(
        "delete-vcpu",
        match (rax, back) {
            (result::SUCCESS, None) => Ok(()),
            (result::SUCCESS, Some(_)) => Err("the VMSA page did not come back"),
            _ => Err(result_name(rax)),
        },
    );

    client_sessions(&mut s, &mut t, info.guest_vmpl);

    // Attestation with a fresh nonce, last, so that the log it binds holds the attacks.
    let mut nonce = [0u8; 64];
    for c in nonce.chunks_mut(8) {
        c.copy_from_slice(&arch::rdrand().to_le_bytes());
    }
    write_bytes(NONCE, &nonce);
    // As configfs-tsm with `service_provider=svsm` asks (Linux
    // `snp_issue_svsm_attest_req`): the request in the calling area's buffer (offset
    // 8), a 64-byte nonce, manifest, report and certificates buffers of their own.
    let mut req = attest_request(REPORT, NONCE, 64, MANIFEST, 4096);
    req.certificates_gpa = CERTS;
    req.certificates_size = 4096;
    let req_at = s.caa + 8;
    write_bytes(req_at, req.as_bytes());
    let out = s.call(regs::attest_services(req_at));
    let mut report = [0u8; 0x4a0];
    let mut manifest = [0u8; 512];
    let mlen = (out.rcx as usize).min(manifest.len());
    read_bytes(REPORT, &mut report);
    read_bytes(MANIFEST, &mut manifest[..mlen]);
    let rd = report_data(&nonce, &manifest[..mlen]);
    let attested = out.rax == result::SUCCESS && report[0x50..0x90] == rd[..];
    t.step(
        "attest",
        if out.rax != result::SUCCESS {
            Err(result_name(out.rax))
        } else if report[0x50..0x90] != rd[..] {
            Err("REPORT_DATA is not SHA-512(nonce || manifest)")
        } else if report[0x30..0x34] != [0; 4] {
            Err("report not at VMPL0")
        } else {
            say!(
                "guest:   report {} bytes, manifest {} bytes, nonce {:02x}{:02x}{:02x}{:02x}...",
                out.r8,
                mlen,
                nonce[0],
                nonce[1],
                nonce[2],
                nonce[3]
            );
            Ok(())
        },
    );

    // On SNP the evidence leaves the VM on the guest's console (on emulated Vigil prints
    // the frame itself, from what it saw of the call: the guest must not print a second).
    if snp::active() && attested {
        let mut rec = [0u8; vigil_firmware::evidence::RECORD_MAX];
        match vigil_firmware::evidence::record(&report, &manifest[..mlen], &nonce, &mut rec) {
            Ok(n) => vigil_firmware::evidence::frame(&rec[..n], |l| say!("{l}")),
            Err(e) => say!("guest: no evidence frame: {e}"),
        }
    }

    if bench > 0 {
        bench_calls(&mut s, bench);
    }

    // The tally; skipped steps (only on SNP) are named apart, never counted as passed.
    if t.skipped == 0 {
        say!("guest: {} passed, {} failed", t.passed, t.failed);
    } else {
        say!(
            "guest: {} passed, {} failed, {} skipped",
            t.passed,
            t.failed,
            t.skipped
        );
    }
    arch::outl(0xf4, if t.failed == 0 { 0x10 } else { 0x11 });
    loop {
        arch::hlt();
    }
}

/// The round trip of a trivial SVSM call (QUERY_PROTOCOL), VMGEXIT to return, in TSC
/// cycles as the guest sees them; median, min and max of `n`.
fn bench_calls(s: &mut Svsm<Vmgexit>, n: u64) {
    let n = n.min(4096) as usize;
    let mut v = [0u64; 4096];
    arch::wrmsr(vigil_firmware::MSR_GHCB, vigil_firmware::ghcb_run_vmpl(0));
    for x in v.iter_mut().take(n) {
        write_bytes(s.caa, &[1]);
        let t0 = arch::rdtsc();
        let _ = arch::vmgexit(regs::query_protocol(SVSM_CORE_PROTOCOL, 1));
        *x = arch::rdtsc().wrapping_sub(t0);
    }
    let v = &mut v[..n];
    v.sort_unstable();
    say!(
        "guest: bench vmgexit-round-trip n={} median={} min={} max={} (TSC cycles)",
        n,
        v[n / 2],
        v[0],
        v[n - 1]
    );
}
