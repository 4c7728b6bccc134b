//! The run itself (bare metal only): setup, the VMRUN loop, exits, the evidence.

use alloc::boxed::Box;
use alloc::vec::Vec;

use bare::svm::vmcb::{eventinj, exit, ioio, npf, Vmcb, TLB_FLUSH_ALL};
use monitor::access::Access;
use monitor::addr::{Gpa, PageSize};
use monitor::memory::GuestMemory;
use monitor::platform::ApOp;
use monitor::policy::Policy;
use monitor::{CallOutcome, Monitor, MonitorConfig};
use svsm_abi::attest_protocol::{AttestServicesRequest, ATTEST_SERVICES};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{result, SVSM_ATTEST_PROTOCOL};
use svsm_abi::evidence;
use svsm_abi::guest_request::REPORT_SIZE;
use svsm_abi::secrets::SecretsPage;
use svsm_abi::vmsa::Vmsa;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::loader::{self, GUEST_BASE, GUEST_END, LAUNCH_END, VIGIL_END};
use super::platform::{EmuPlatform, RawMem};
use super::policy::{self, MsrAction};
use super::psp;
use super::vcpu::{self, GuestVcpu};
use super::ExitStats;
use crate::boot::pvh::BootInfo;
use crate::console::hex::Hex;
use crate::cpu::instr::{cpuid, outl};
use crate::exit::{exit as end_run, ExitCode};
use crate::kprintln;
use crate::mm::address::{PhysAddr, VirtAddr};
use crate::mm::paging::{MapError, Perm};
use crate::mm::{with_page_tables, MemoryInfo};
use bare::svm;

/// Guest RAM through Vigil's own identity map of `[GUEST_BASE, GUEST_END)`.
struct KernelMem;

impl RawMem for KernelMem {
    fn read(&mut self, pa: u64, buf: &mut [u8]) {
        // SAFETY: EmuPlatform checked `[pa, pa + len)` lies in guest RAM, which `setup`
        // mapped read+write at the same address and which holds no Rust object; the
        // guest may change it concurrently only from another vCPU, which on this
        // single-CPU hypervisor is never running while Vigil is.
        unsafe {
            core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len());
        }
    }
    fn write(&mut self, pa: u64, buf: &[u8]) {
        // SAFETY: as for `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(buf.as_ptr(), pa as *mut u8, buf.len());
        }
    }
}

type Mon = Monitor<EmuPlatform<KernelMem>>;

/// The I/O permission map (12 KiB) and MSR permission map (8 KiB), page aligned.
#[repr(C, align(4096))]
struct Iopm([u8; 12288]);
#[repr(C, align(4096))]
struct Msrpm([u8; 8192]);

/// What the last successful ATTEST_SERVICES produced (the evidence Vigil sends out).
struct Captured {
    nonce: Vec<u8>,
    report: Vec<u8>,
    manifest: Vec<u8>,
    log: Vec<u8>,
}

struct Runner {
    m: Mon,
    vcpus: Vec<GuestVcpu>,
    cur: usize,
    host_save: Box<Vmcb>,
    iopm_pa: u64,
    msrpm_pa: u64,
    stats: ExitStats,
    mediated: u64,
    evidence: Option<Captured>,
    idle_halts: u64,
    launch_tsc: u64,
}

fn fail(what: core::fmt::Arguments<'_>) -> ! {
    log::error!("emulated: {what}");
    end_run(ExitCode::Fatal);
}

fn map_ident(start: u64, end: u64, perm: Perm) -> Result<(), MapError> {
    with_page_tables(|pt| {
        let mut a = start & !0xfff;
        while a < end {
            match pt.map_page(VirtAddr(a), PhysAddr(a), perm) {
                Ok(()) | Err(MapError::AlreadyMapped(_)) => {}
                Err(e) => return Err(e),
            }
            a += 4096;
        }
        Ok(())
    })
    .unwrap_or(Err(MapError::OutOfTables))
}

/// Reads the first PVH boot module (the guest ELF). The start info and module list are
/// host data: bounds and overlap with Vigil's and the guest's memory are checked.
fn read_module(boot: &BootInfo) -> Vec<u8> {
    let si = boot.start_info_paddr;
    if map_ident(si, si + 56, Perm::Read).is_err() {
        fail(format_args!("cannot map the PVH start info"));
    }
    // SAFETY: the 56-byte start info page was just mapped read-only; it is host data,
    // read with volatile loads and copied.
    let (nr, list) = unsafe {
        (
            core::ptr::read_volatile((si + 12) as *const u32),
            core::ptr::read_volatile((si + 16) as *const u64),
        )
    };
    if nr == 0 {
        fail(format_args!(
            "no boot module: pass the guest ELF with -initrd"
        ));
    }
    // Loader data lives in low memory or high RAM: anywhere but Vigil's image and heap
    // and the guest's RAM, [1 MiB, 48 MiB).
    let clear = |a: u64, e: u64| a != 0 && (e <= 0x10_0000 || a >= GUEST_END);
    if !clear(list, list.saturating_add(32)) || map_ident(list, list + 32, Perm::Read).is_err() {
        fail(format_args!(
            "hvm_start_info.modlist_paddr (offset 16) = {list:#x} refused"
        ));
    }
    // SAFETY: the first 32-byte hvm_modlist_entry was just mapped read-only.
    let (paddr, size) = unsafe {
        (
            core::ptr::read_volatile(list as *const u64),
            core::ptr::read_volatile((list + 8) as *const u64),
        )
    };
    let end = paddr.saturating_add(size);
    // The module must lie outside Vigil's and the guest's memory and be of a sane size.
    if !clear(paddr, end) || size == 0 || size > 4 << 20 || end > 1 << 30 {
        fail(format_args!(
            "boot module 0 (modlist offset 0) at {paddr:#x}, {size} bytes refused"
        ));
    }
    if map_ident(paddr, end, Perm::Read).is_err() {
        fail(format_args!("cannot map the boot module"));
    }
    let mut v = alloc::vec![0u8; size as usize];
    // SAFETY: [paddr, end) was just mapped read-only and is host RAM outside every Rust
    // object; copied once, then only the copy is used (invariant 4).
    unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, v.as_mut_ptr(), v.len()) };
    v
}

/// Whether the PVH start info names at least one boot module (a guest to run).
pub fn boot_module_present(boot: &BootInfo) -> bool {
    let si = boot.start_info_paddr;
    if map_ident(si, si + 56, Perm::Read).is_err() {
        return false;
    }
    // SAFETY: the start info page was just mapped read-only.
    let nr = unsafe { core::ptr::read_volatile((si + 12) as *const u32) };
    nr > 0
}

fn rdrand64() -> u64 {
    let mut v: u64 = 0;
    for _ in 0..16 {
        let ok: u8;
        // SAFETY: RDRAND writes only its output register and CF; CPUID was not checked
        // for it, but QEMU's -cpu max and every SVM-capable AMD CPU since 2015 have it;
        // a failure (CF=0) is retried and then falls back to the TSC below.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack));
        }
        if ok != 0 {
            return v;
        }
    }
    v ^ svm::rdtsc()
}

/// Refuse to start unless Vigil's memory (image, heap, tables) ends below `VIGIL_END`
/// and the guest RAM `[GUEST_BASE, GUEST_END)` is RAM in the PVH memory map.
fn check_memory(boot: &BootInfo, mem: &MemoryInfo) {
    if mem.image.image.end > VIGIL_END || mem.heap.end > VIGIL_END {
        fail(format_args!(
            "Vigil's memory ends above {VIGIL_END:#x} (image to {:#x}, heap to {:#x})",
            mem.image.image.end, mem.heap.end
        ));
    }
    if !boot.memory_map().iter().any(|r| {
        r.kind == crate::boot::pvh::MemKind::Ram && r.start <= GUEST_BASE && r.end >= GUEST_END
    }) {
        fail(format_args!(
            "guest RAM {GUEST_BASE:#x}-{GUEST_END:#x} is not RAM in the memory map"
        ));
    }
}

/// The guest ELF of the boot module with its entry and segments, and guest RAM mapped
/// read+write for Vigil.
fn load_guest(boot: &BootInfo) -> (Vec<u8>, u64, Vec<loader::Segment>) {
    let elf = read_module(boot);
    let (entry, segs) = match loader::parse_elf(&elf) {
        Ok(x) => x,
        Err(e) => fail(format_args!("guest ELF refused: {e:?}")),
    };
    if let Err(e) = map_ident(GUEST_BASE, GUEST_END, Perm::ReadWrite) {
        fail(format_args!("cannot map guest RAM for Vigil: {e:?}"));
    }
    if let Some((used, total)) = with_page_tables(|pt| pt.usage()) {
        log::info!("emulated: Vigil's page tables use {used} of {total} table pages");
    }
    (elf, entry, segs)
}

/// The launch: zero the launch region, load the image, and measure Vigil's text+rodata,
/// then the guest image pages. Returns the launch digest.
fn launch(km: &mut KernelMem, mem: &MemoryInfo, elf: &[u8], segs: &[loader::Segment]) -> [u8; 48] {
    let zero = [0u8; 4096];
    for a in (GUEST_BASE..LAUNCH_END).step_by(4096) {
        km.write(a, &zero);
    }
    for s in segs {
        let data = &elf[s.offset as usize..(s.offset + s.filesz) as usize];
        km.write(s.paddr, data);
    }
    // Measurement: Vigil's text+rodata, then the guest image pages.
    let mut digest = [0u8; 48];
    let mut page = [0u8; 4096];
    let (t0, t1) = (mem.image.text.start, mem.image.rodata.end);
    let mut image = alloc::vec![0u8; (t1 - t0) as usize];
    // SAFETY: Vigil's own text and rodata are mapped readable for its whole life and
    // never written by Rust code; copied once for the measurement.
    unsafe { core::ptr::copy_nonoverlapping(t0 as *const u8, image.as_mut_ptr(), image.len()) };
    let mut kpages = 0u64;
    for (i, chunk) in image.chunks(4096).enumerate() {
        page.fill(0);
        page[..chunk.len()].copy_from_slice(chunk);
        digest = loader::extend_normal(&digest, t0 + i as u64 * 4096, &page);
        kpages += 1;
    }
    log::info!(
        "emulated: launch digest after Vigil's pages {}",
        Hex(&digest)
    );
    let gpages = loader::image_pages(segs);
    for &a in &gpages {
        km.read(a, &mut page);
        digest = loader::extend_normal(&digest, a, &page);
    }
    kprintln!(
        "vigil: launch digest {} ({} Vigil pages, {} guest pages)",
        Hex(&digest),
        kpages,
        gpages.len()
    );
    digest
}

/// The guest's page tables and secrets page, with fresh VMPCKs (returned, all four).
fn write_guest_pages(km: &mut KernelMem, guest_vmpl: u8) -> [[u8; 32]; 4] {
    for (i, t) in loader::guest_page_tables().iter().enumerate() {
        km.write(loader::GUEST_PML4 + i as u64 * 4096, t.as_bytes());
    }
    let mut vmpck = [[0u8; 32]; 4];
    for k in vmpck.iter_mut() {
        for c in k.chunks_mut(8) {
            c.copy_from_slice(&rdrand64().to_le_bytes());
        }
    }
    let mut secrets = SecretsPage::new_zeroed();
    secrets.version = 3;
    // The guest's copy: VMPCK0 stays zero (it never leaves VMPL0, invariant 7); the
    // guest's own VMPCK (VMPL2's) is there as on SNP.
    secrets.vmpck1 = vmpck[1];
    secrets.vmpck2 = vmpck[2];
    secrets.vmpck3 = vmpck[3];
    secrets.svsm_base = 0;
    secrets.svsm_size = VIGIL_END;
    secrets.svsm_caa = loader::GUEST_CAA;
    secrets.svsm_max_version = 1;
    secrets.svsm_guest_vmpl = guest_vmpl;
    km.write(loader::GUEST_SECRETS, secrets.as_bytes());
    vmpck
}

/// The emulated platform (PSP with the launch digest, nested tables, the launch
/// region validated) and the monitor over it. Returns the monitor and the nested CR3.
fn new_monitor(vmpck: [[u8; 32]; 4], digest: [u8; 48], policy: Policy) -> (Mon, u64) {
    let psp = match psp::new_psp(vmpck, digest) {
        Ok(p) => p,
        Err(e) => fail(format_args!("emulated PSP: {e:?}")),
    };
    let mut plat = EmuPlatform::new(
        KernelMem,
        GUEST_BASE,
        GUEST_END,
        (0, VIGIL_END),
        policy.guest_vmpl,
        psp,
    );
    if let Err(e) = plat.launch_validate(GUEST_BASE, LAUNCH_END) {
        fail(format_args!("launch validation: {e:?}"));
    }
    let prevalidated = (GUEST_BASE..LAUNCH_END)
        .step_by(4096)
        .map(|a| (Gpa(a), PageSize::Size4K))
        .collect();
    let n_cr3 = plat.npt.root();
    let m = match Monitor::new(
        plat,
        MonitorConfig {
            ram_size: GUEST_END,
            vigil_base: Gpa(0),
            vigil_size: VIGIL_END,
            boot_apic_id: 0,
            boot_caa: Gpa(loader::GUEST_CAA),
            prevalidated,
            // The boot vCPU runs with SNP_ACTIVE only; every VMSA the guest makes must
            // carry the same (#58019 6.3).
            boot_sev_features: policy.required_sev_features,
            vmpck0: vmpck[0],
            policy,
        },
    ) {
        Ok(m) => m,
        Err(e) => fail(format_args!("monitor configuration refused: {e:?}")),
    };
    (m, n_cr3)
}

/// SVM on, with a host save area leaked for the life of the kernel.
fn enable_svm() {
    let hsave = Box::new(Vmcb::new_zeroed());
    let hsave_pa = &*hsave as *const Vmcb as u64;
    // SAFETY: the platform is emulated-capable (the caller checked CPUID); `hsave` is a
    // heap page leaked below for the life of the kernel and used for nothing else.
    if let Err(e) = unsafe { svm::enable(hsave_pa) } {
        fail(format_args!("SVM: {e:?}"));
    }
    core::mem::forget(hsave);
}

/// The I/O permission map (every port intercepted but COM1) and the MSR permission map
/// (every MSR intercepted), leaked; returns their addresses.
fn permission_maps() -> (u64, u64) {
    let mut iopm = Box::new(Iopm([0xff; 12288]));
    for p in policy::COM1 {
        iopm.0[p as usize / 8] &= !(1 << (p % 8));
    }
    let msrpm = Box::new(Msrpm([0xff; 8192]));
    let iopm_pa = Box::leak(iopm) as *const Iopm as u64;
    let msrpm_pa = Box::leak(msrpm) as *const Msrpm as u64;
    (iopm_pa, msrpm_pa)
}

/// Entry from `kernel_main`: check the memory, load and measure the guest, write its
/// pages, make the monitor, turn SVM on and run the boot vCPU on the run loop's stack.
pub fn run(boot: &BootInfo, mem: &MemoryInfo) -> ! {
    let launch_tsc = svm::rdtsc();
    check_memory(boot, mem);
    let (elf, entry, segs) = load_guest(boot);
    let mut km = KernelMem;
    let digest = launch(&mut km, mem, &elf, &segs);
    let policy = Policy::default();
    let vmpck = write_guest_pages(&mut km, policy.guest_vmpl);
    let (m, n_cr3) = new_monitor(vmpck, digest, policy);
    enable_svm();
    let (iopm_pa, msrpm_pa) = permission_maps();

    let bench = boot
        .option("bench")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut vmcb = vcpu::new_vmcb();
    vcpu::init_control(&mut vmcb, iopm_pa, msrpm_pa, n_cr3);
    let gprs = vcpu::boot_vcpu(
        &mut vmcb,
        loader::GUEST_PML4,
        entry,
        loader::GUEST_STACK_TOP,
        [loader::GUEST_SECRETS, bench, GUEST_END, LAUNCH_END],
    );
    let r = Runner {
        m,
        vcpus: alloc::vec![GuestVcpu {
            apic_id: 0,
            vmcb,
            gprs,
            ghcb_msr: 0,
            vmsa: None,
        }],
        cur: 0,
        host_save: Box::new(Vmcb::new_zeroed()),
        iopm_pa,
        msrpm_pa,
        stats: ExitStats::default(),
        mediated: 0,
        evidence: None,
        idle_halts: 0,
        launch_tsc,
    };
    kprintln!(
        "vigil: guest entry {entry:#x} at VMPL{} (nested paging, ASID {}), {} launch pages validated",
        r.m.guest_vmpl().get(),
        vcpu::GUEST_ASID,
        (LAUNCH_END - GUEST_BASE) / 4096
    );
    switch_stack(Box::new(r))
}

/// The run loop's own stack: the security processor's P-384 signing and the monitor's
/// page-sized buffers need more than the 64 KiB boot stack. Taken from the heap, with
/// its lowest page unmapped as a guard (an overflow faults instead of corrupting the
/// heap below it).
const RUN_STACK: usize = 512 * 1024;

#[repr(C, align(4096))]
struct StackPage([u8; 4096]);

fn switch_stack(r: Box<Runner>) -> ! {
    let pages: Vec<StackPage> = (0..RUN_STACK / 4096)
        .map(|_| StackPage([0; 4096]))
        .collect();
    let pages = pages.leak();
    let base = pages.as_ptr() as u64;
    let top = base + RUN_STACK as u64;
    match with_page_tables(|pt| pt.unmap_page(VirtAddr(base))) {
        Some(Ok(true)) => crate::cpu::instr::invlpg(base),
        _ => fail(format_args!("cannot make the run stack's guard page")),
    }
    log::info!(
        "emulated: run loop stack {:#x}-{top:#x} (guard page at {base:#x})",
        base + 4096
    );
    let arg = Box::into_raw(r);
    // SAFETY: `top` is the end of a leaked, page-aligned heap area mapped read+write
    // (but its guard page) that nothing else uses; `runner_entry` never returns, so the
    // old stack is abandoned, and `arg` is a leaked Box it takes over.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "call {f}",
            top = in(reg) top,
            f = sym runner_entry,
            in("rdi") arg,
            options(noreturn)
        )
    }
}

extern "C" fn runner_entry(r: *mut Runner) -> ! {
    // SAFETY: `r` came from Box::into_raw in `switch_stack` and is used only here.
    let r = unsafe { &mut *r };
    r.run()
}

fn inject(v: &mut Vmcb, vector: u8, error: Option<u32>) {
    let mut e = eventinj::VALID | eventinj::TYPE_EXCEPTION | u64::from(vector);
    if let Some(code) = error {
        e |= eventinj::ERROR_VALID | (u64::from(code) << 32);
    }
    v.control.event_inj = e;
}

impl Runner {
    fn run(&mut self) -> ! {
        loop {
            let host_save_pa = &*self.host_save as *const Vmcb as u64;
            let dirty = core::mem::take(&mut self.m.platform_mut().npt_dirty);
            let v = &mut self.vcpus[self.cur];
            v.vmcb.control.tlb_control = if dirty { TLB_FLUSH_ALL } else { 0 };
            let pa = &*v.vmcb as *const Vmcb as u64;
            // SAFETY: SVM was enabled in `run`; the VMCB is a page-aligned heap page
            // owned by this vCPU, filled by `init_control` (VMRUN intercepted, ASID 1,
            // nested paging on tables that never map Vigil's memory); `host_save` is
            // Vigil's own VMLOAD/VMSAVE page.
            unsafe { svm::vmrun(pa, &mut v.gprs, host_save_pa) };
            self.handle_exit();
        }
    }

    fn handle_exit(&mut self) {
        let code = self.vcpus[self.cur].vmcb.control.exit_code;
        if code != exit::HLT {
            self.idle_halts = 0;
        }
        match code {
            exit::VMMCALL => {
                self.stats.vmmcall += 1;
                self.vmmcall();
            }
            exit::CPUID => {
                self.stats.cpuid += 1;
                let v = &mut self.vcpus[self.cur];
                let (leaf, sub) = (v.vmcb.save.rax as u32, v.gprs.rcx as u32);
                let (a, b, c, d) = policy::cpuid_for_guest(leaf, sub, cpuid(leaf, sub));
                v.vmcb.save.rax = a.into();
                v.gprs.rbx = b.into();
                v.gprs.rcx = c.into();
                v.gprs.rdx = d.into();
                v.vmcb.save.rip += 2;
            }
            exit::MSR => {
                self.stats.msr += 1;
                self.msr();
            }
            exit::IOIO => {
                self.stats.ioio += 1;
                self.ioio();
            }
            exit::HLT => {
                self.stats.hlt += 1;
                self.vcpus[self.cur].vmcb.save.rip += 1;
                self.idle_halts += 1;
                if self.idle_halts > 1_000_000 {
                    fail(format_args!(
                        "every guest vCPU halts and nothing can wake it"
                    ));
                }
                // HLT yields: the next vCPU runs (round robin on one physical CPU).
                self.cur = (self.cur + 1) % self.vcpus.len();
            }
            exit::NPF => {
                self.stats.npf += 1;
                self.npf();
            }
            exit::SHUTDOWN => {
                let v = &self.vcpus[self.cur];
                fail(format_args!(
                    "guest vCPU {} shut down (triple fault) at RIP {:#x}",
                    v.apic_id, v.vmcb.save.rip
                ));
            }
            other => {
                self.stats.other += 1;
                let v = &self.vcpus[self.cur];
                if other == exit::VMRUN || (0x82..=0x88).contains(&other) || other == 0x8d {
                    // SVM instructions inside the guest: #UD, as on a CPU without SVM.
                    let v = &mut self.vcpus[self.cur];
                    inject(&mut v.vmcb, 6, None);
                    return;
                }
                fail(format_args!(
                    "unexpected #VMEXIT {other:#x} (info1 {:#x}, info2 {:#x}) of vCPU {} at RIP {:#x}",
                    v.vmcb.control.exit_info1,
                    v.vmcb.control.exit_info2,
                    v.apic_id,
                    v.vmcb.save.rip
                ));
            }
        }
    }

    /// The length of the VMMCALL at RIP: 4 for `rep vmmcall` (VMGEXIT), else 3. Read
    /// through the guest's page tables (there is no next-RIP save under QEMU).
    fn vmmcall_len(&mut self) -> u64 {
        let (cr3, rip) = {
            let v = &self.vcpus[self.cur];
            (v.vmcb.save.cr3, v.vmcb.save.rip)
        };
        let p = self.m.platform_mut();
        let mut rd = |a: u64| {
            let mut b = [0u8; 8];
            p.read(Gpa(a), &mut b).ok().map(|_| u64::from_le_bytes(b))
        };
        let first = vcpu::guest_virt_to_phys(cr3, rip, &mut rd).and_then(|pa| {
            let mut b = [0u8; 1];
            p.read(Gpa(pa), &mut b).ok().map(|_| b[0])
        });
        if first == Some(0xf3) {
            4
        } else {
            3
        }
    }

    fn vmmcall(&mut self) {
        let len = self.vmmcall_len();
        let (apic, ghcb) = {
            let v = &self.vcpus[self.cur];
            (v.apic_id, v.ghcb_msr)
        };
        if ghcb != 0 && ghcb & 0xfff == 0 {
            // The GHCB MSR holds a GHCB page: a request to the host, which Vigil plays.
            self.ghcb_request(apic, ghcb, len);
            return;
        }
        if !policy::is_svsm_request(ghcb) {
            // A VMGEXIT that is not an SVSM request would go to the host on SNP; there is
            // no host here. #UD, as for an unsupported instruction.
            log::warn!(
                "emulated: vCPU {apic}: VMGEXIT without an SVSM request (GHCB MSR {ghcb:#x}): #UD"
            );
            inject(&mut self.vcpus[self.cur].vmcb, 6, None);
            return;
        }
        let mut regs = {
            let v = &self.vcpus[self.cur];
            SvsmRegs {
                rax: v.vmcb.save.rax,
                rcx: v.gprs.rcx,
                rdx: v.gprs.rdx,
                r8: v.gprs.r8,
                r9: v.gprs.r9,
            }
        };
        // Attestation: keep what the evidence needs. The log is taken before the call:
        // the manifest binds the records before the ATTEST record itself.
        let attest = regs.protocol() == SVSM_ATTEST_PROTOCOL && regs.call() == ATTEST_SERVICES;
        let log_before = attest.then(|| self.m.event_log().bytes().to_vec());
        let req_gpa = regs.rcx;
        let out = self.m.handle_request(apic, &mut regs);
        match out {
            CallOutcome::Handled => {
                let v = &mut self.vcpus[self.cur];
                v.vmcb.save.rax = regs.rax;
                v.gprs.rcx = regs.rcx;
                v.gprs.rdx = regs.rdx;
                v.gprs.r8 = regs.r8;
                v.gprs.r9 = regs.r9;
            }
            CallOutcome::NotPending => {}
            // DELETE_VCPU of its own VMSA: the call does not return; clearing the VMSA
            // bit queued the vCPU's removal, done in `ap_requests` below.
            CallOutcome::VcpuDeleted => {}
            CallOutcome::Terminated(r) => {
                fail(format_args!("the monitor terminated the VM: {r:?}"));
            }
        }
        if let (Some(log), true) = (log_before, regs.rax == result::SUCCESS) {
            self.capture(req_gpa, regs.rcx as usize, log);
        }
        self.vcpus[self.cur].vmcb.save.rip += len;
        self.ap_requests();
    }

    /// A GHCB page request of the guest (the GHCB MSR holds the page's GPA). Vigil is
    /// the host here and serves one: SNP AP Creation, which the guest sends after
    /// CREATE_VCPU to start the vCPU (Linux `vmgexit_ap_control`). The page is guest
    /// memory: it is copied in once, the answer (SW_EXITINFO1/2) written back.
    fn ghcb_request(&mut self, apic: u32, gpa: u64, len: u64) {
        use svsm_abi::ghcb::{exit as gexit, Ghcb};
        let p = self.m.platform_mut();
        let mut page = alloc::vec![0u8; 4096];
        let ghcb = match p.read(Gpa(gpa), &mut page) {
            Ok(()) => Ghcb::read_from_bytes(&page).ok(),
            Err(_) => None,
        };
        let Some(ghcb) = ghcb else {
            inject(&mut self.vcpus[self.cur].vmcb, 13, Some(0));
            return;
        };
        let (info1, info2) = if ghcb.sw_exit_code != gexit::SNP_AP_CREATION {
            log::warn!(
                "emulated: vCPU {apic}: GHCB request {:#x} not served",
                ghcb.sw_exit_code
            );
            (1, 0)
        } else {
            match p.guest_ap_creation(ghcb.sw_exit_info_1, ghcb.sw_exit_info_2) {
                Ok(()) => (0, 0),
                Err(e) => {
                    log::warn!("emulated: vCPU {apic}: AP creation refused: {e:?}");
                    (1, 0)
                }
            }
        };
        let mut answer = [0u8; 16];
        answer[..8].copy_from_slice(&u64::to_le_bytes(info1));
        answer[8..].copy_from_slice(&u64::to_le_bytes(info2));
        // SW_EXITINFO1 at 0x398, SW_EXITINFO2 right after it.
        if p.write(Gpa(gpa + 0x398), &answer).is_err() {
            inject(&mut self.vcpus[self.cur].vmcb, 13, Some(0));
            return;
        }
        self.vcpus[self.cur].vmcb.save.rip += len;
        self.ap_requests();
    }

    fn capture(&mut self, req_gpa: u64, manifest_len: usize, log: Vec<u8>) {
        let p = self.m.platform_mut();
        let mut raw = [0u8; core::mem::size_of::<AttestServicesRequest>()];
        if p.read(Gpa(req_gpa), &mut raw).is_err() {
            return;
        }
        let Ok(req) = AttestServicesRequest::read_from_bytes(&raw) else {
            return;
        };
        let mut nonce = alloc::vec![0u8; req.nonce_size as usize];
        let mut report = alloc::vec![0u8; REPORT_SIZE];
        let mut manifest = alloc::vec![0u8; manifest_len.min(4096)];
        // The guest may have changed these buffers since the call; the verifier's
        // checks (signature over REPORT_DATA = SHA-512(nonce || manifest)) catch that.
        if p.read(Gpa(req.nonce_gpa), &mut nonce).is_ok()
            && p.read(Gpa(req.report_gpa), &mut report).is_ok()
            && p.read(Gpa(req.manifest_gpa), &mut manifest).is_ok()
        {
            self.evidence = Some(Captured {
                nonce,
                report,
                manifest,
                log,
            });
        }
    }

    /// Starts and stops the vCPUs the monitor asked for.
    fn ap_requests(&mut self) {
        let reqs = core::mem::take(&mut self.m.platform_mut().ap_requests);
        for r in reqs {
            match r.op {
                ApOp::Create => {
                    let mut raw = alloc::vec![0u8; 4096];
                    if self.m.platform_mut().read(r.vmsa, &mut raw).is_err() {
                        fail(format_args!("VMSA {:#x} unreadable", r.vmsa.0));
                    }
                    let Ok(vmsa) = Vmsa::read_from_bytes(&raw) else {
                        fail(format_args!("VMSA {:#x} unreadable", r.vmsa.0));
                    };
                    let mut vmcb = vcpu::new_vmcb();
                    let n_cr3 = self.m.platform_mut().npt.root();
                    vcpu::init_control(&mut vmcb, self.iopm_pa, self.msrpm_pa, n_cr3);
                    let gprs = vcpu::from_vmsa(&mut vmcb, &vmsa);
                    kprintln!(
                        "vigil: vCPU {} created from VMSA {:#x} (VMPL{}, SEV features {:#x}), RIP {:#x}",
                        r.apic_id,
                        r.vmsa.0,
                        vmsa.vmpl,
                        vmsa.sev_features,
                        vmsa.rip
                    );
                    self.vcpus.push(GuestVcpu {
                        apic_id: r.apic_id,
                        vmcb,
                        gprs,
                        ghcb_msr: 0,
                        vmsa: Some(r.vmsa.0),
                    });
                }
                ApOp::Destroy => {
                    // By VMSA: the VMSA bit was cleared (DELETE_VCPU), or the guest's
                    // AP destroy named it.
                    let Some(gone) = self.vcpus.iter().position(|v| v.vmsa == Some(r.vmsa.0))
                    else {
                        continue;
                    };
                    let apic = self.vcpus[gone].apic_id;
                    let cur_vmsa = self.vcpus[self.cur].vmsa;
                    self.vcpus.remove(gone);
                    self.cur = self
                        .vcpus
                        .iter()
                        .position(|v| v.vmsa == cur_vmsa && cur_vmsa != Some(r.vmsa.0))
                        .unwrap_or(0);
                    kprintln!(
                        "vigil: vCPU {apic} stopped (VMSA {:#x} no longer runs)",
                        r.vmsa.0
                    );
                }
            }
        }
    }

    fn msr(&mut self) {
        let v = &mut self.vcpus[self.cur];
        let msr = v.gprs.rcx as u32;
        let write = v.vmcb.control.exit_info1 == 1;
        let value = (v.gprs.rdx << 32) | (v.vmcb.save.rax & 0xffff_ffff);
        let action = match (msr, write) {
            (policy::MSR_GHCB, true) => {
                v.ghcb_msr = value;
                MsrAction::Ok(0)
            }
            (policy::MSR_GHCB, false) => MsrAction::Ok(v.ghcb_msr),
            (policy::MSR_EFER, false) => MsrAction::Ok(v.vmcb.save.efer),
            (policy::MSR_TSC, false) => MsrAction::Ok(svm::rdtsc()),
            (m, false) => policy::fixed_msr_read(m).map_or(MsrAction::Gp, MsrAction::Ok),
            _ => MsrAction::Gp,
        };
        match action {
            MsrAction::Ok(x) => {
                if !write {
                    v.vmcb.save.rax = x & 0xffff_ffff;
                    v.gprs.rdx = x >> 32;
                }
                v.vmcb.save.rip += 2;
            }
            MsrAction::Gp => {
                log::debug!(
                    "emulated: vCPU {}: {} of MSR {msr:#x} refused: #GP",
                    v.apic_id,
                    if write { "WRMSR" } else { "RDMSR" }
                );
                inject(&mut v.vmcb, 13, Some(0));
            }
        }
    }

    fn ioio(&mut self) {
        let v = &mut self.vcpus[self.cur];
        let info = v.vmcb.control.exit_info1;
        let port = (info >> 16) as u16;
        let mask: u64 = if info & ioio::SZ8 != 0 {
            0xff
        } else if info & ioio::SZ16 != 0 {
            0xffff
        } else {
            0xffff_ffff
        };
        if info & (ioio::STRING | ioio::REP) != 0 {
            inject(&mut v.vmcb, 13, Some(0));
            return;
        }
        if info & ioio::TYPE_IN != 0 {
            v.vmcb.save.rax = (v.vmcb.save.rax & !mask) | mask;
        } else if port == policy::PORT_DEBUG_EXIT {
            let value = (v.vmcb.save.rax & mask) as u32;
            self.finish(value);
        }
        let v = &mut self.vcpus[self.cur];
        v.vmcb.save.rip = v.vmcb.control.exit_info2;
    }

    /// A nested page fault: the guest touched a page it has no right to. A mediated
    /// event (issue 5, invariant 8): the monitor classifies the page by its own page
    /// state and appends an ACCESS_REFUSED record to the event log, the fault is
    /// reported and counted, and the guest gets the fault SNP gives a guest for an RMP
    /// violation, a #PF with the RMP bit (31) set in the error code (which the monitor
    /// computes).
    fn npf(&mut self) {
        let v = &self.vcpus[self.cur];
        let info = v.vmcb.control.exit_info1;
        let gpa = v.vmcb.control.exit_info2;
        let apic_id = v.apic_id;
        let mut acc = if info & npf::FETCH != 0 {
            Access::FETCH
        } else if info & npf::WRITE != 0 {
            Access::WRITE
        } else {
            Access::READ
        };
        if info & npf::TABLE_WALK != 0 {
            acc |= Access::TABLE_WALK;
        }
        let r = self.m.record_refused_access(apic_id, Gpa(gpa), acc);
        self.mediated += 1;
        kprintln!(
            "vigil: mediated: vCPU {apic_id} {} at GPA {gpa:#x} ({}){} refused: #PF({:#x}) injected, logged as record {}",
            if acc.contains(Access::FETCH) {
                "fetch"
            } else if acc.contains(Access::WRITE) {
                "write"
            } else {
                "read"
            },
            r.reason.describe(),
            if acc.contains(Access::TABLE_WALK) {
                " during its page walk"
            } else {
                ""
            },
            r.error_code,
            self.m.event_log().count().wrapping_sub(1)
        );
        if self.mediated > 64 {
            fail(format_args!(
                "more than 64 refused accesses: stopping the guest"
            ));
        }
        let v = &mut self.vcpus[self.cur];
        v.vmcb.save.cr2 = gpa;
        inject(&mut v.vmcb, 14, Some(r.error_code));
    }

    /// The guest wrote the debug-exit port: statistics, evidence, then the guest's value
    /// goes to the device (which ends QEMU with status `value << 1 | 1`).
    fn finish(&mut self, value: u32) -> ! {
        let s = self.stats;
        let elapsed = svm::rdtsc().wrapping_sub(self.launch_tsc);
        kprintln!(
            "vigil: exits: {} total (vmmcall {}, cpuid {}, msr {}, ioio {}, hlt {}, npf {}, other {})",
            s.total(),
            s.vmmcall,
            s.cpuid,
            s.msr,
            s.ioio,
            s.hlt,
            s.npf,
            s.other
        );
        kprintln!(
            "vigil: events: {} log records, {} mediated faults, {} reports signed, {} vCPUs, {} nested pages mapped; {} TSC cycles since launch",
            self.m.event_log().count(),
            self.mediated,
            self.m.platform().psp.reports_signed,
            self.vcpus.len(),
            self.m.platform().npt.mapped(),
            elapsed
        );
        if let Some(c) = &self.evidence {
            emit_evidence(c);
        } else {
            kprintln!("vigil: no attestation happened: no evidence");
        }
        kprintln!("vigil: guest ended with debug-exit value {value:#x}");
        outl(policy::PORT_DEBUG_EXIT, value);
        end_run(ExitCode::Fatal);
    }
}

fn emit_evidence(c: &Captured) {
    let items: [(u16, &[u8]); 7] = [
        (evidence::item::REPORT, &c.report),
        (evidence::item::ARK_PEM, psp::TEST_ARK_PEM),
        (evidence::item::ASK_PEM, psp::TEST_ASK_PEM),
        (evidence::item::VCEK_PEM, psp::TEST_VCEK_PEM),
        (evidence::item::MANIFEST, &c.manifest),
        (evidence::item::EVENT_LOG, &c.log),
        (evidence::item::NONCE, &c.nonce),
    ];
    let mut rec = alloc::vec![0u8; evidence::encoded_len(items.iter().map(|(_, b)| b.len()))];
    let n = match evidence::encode(&items, &mut rec) {
        Ok(n) => n,
        Err(e) => {
            log::error!("emulated: evidence: {e}");
            return;
        }
    };
    rec.truncate(n);
    let sha = evidence::record_sha256(&rec);
    kprintln!("{} {} {}", evidence::FRAME_BEGIN, rec.len(), Hex(&sha));
    let mut line = [0u8; evidence::B64_LINE];
    let mut fill = 0usize;
    evidence::base64_encode(&rec, |q| {
        for &ch in q {
            line[fill] = ch;
            fill += 1;
            if fill == evidence::B64_LINE {
                kprintln!("{}", core::str::from_utf8(&line).unwrap_or(""));
                fill = 0;
            }
        }
    });
    if fill > 0 {
        kprintln!("{}", core::str::from_utf8(&line[..fill]).unwrap_or(""));
    }
    kprintln!("{}", evidence::FRAME_END);
}
