//! Vigil's own vCPUs for the guest's APs on SNP (issue 10, "APs on SNP").
//!
//! The host runs the most privileged VMSA a vCPU has, so a guest AP below Vigil needs a
//! VMPL0 VMSA of Vigil's on the same vCPU, as the boot vCPU has from the launch: the
//! guest's VMPL2 VMSA runs only when that VMPL0 asks for it (run VMPL), and each of the
//! guest's SVSM calls comes back to it. COCONUT-SVSM does the same (`start_secondary_cpus`
//! in kernel/src/cpu/smp.rs: a per-CPU area, page table, GHCB and VMSA of the SVSM's own
//! for every AP, started through the platform's AP creation; each AP then runs its
//! `request_loop`).
//!
//! For an APIC ID, Vigil makes:
//! * a VMSA in one of its 4 KiB frames (never 2 MiB aligned: KVM `sev_snp_ap_creation`
//!   refuses those, an SNP erratum): 64-bit mode on Vigil's own CR0/CR3/CR4, EFER
//!   (SVME, LME, LMA, NXE), GDT and IDT, TR loaded straight from the VMSA with a TSS of
//!   the AP's own (its IST stacks; its selector names the CPU, [`tr_selector`]), RSP at
//!   its own stack, RIP at [`vigil_ap_main`], the arguments in RDI/RSI/RDX/RCX;
//! * RMPADJUST of that page with the VMSA bit, target VMPL1 and no rights: the VMSA bit
//!   belongs to the page and only VMPL0 may set it, and RMPADJUST must name a VMPL less
//!   privileged than its own (APM vol. 3, RMPADJUST; Linux `snp_set_vmsa` uses VMPL1 for
//!   the same reason);
//! * GHCB AP creation for (APIC ID, VMPL0) with Vigil's own SEV features (the GHCB
//!   spec's VMPL field, #56421 v2.03; KVM `sev_snp_ap_creation`);
//! * a GHCB page (one of its frames made shared by the CPU that starts the AP), which
//!   the AP registers itself with the MSR protocol (registration is per vCPU).
//!
//! **When** (the decision, docs/kernel.md "APs on SNP"): when the guest's CREATE_VCPU
//! first names an APIC ID (checked after every served call, [`start_named`]), not at
//! boot for every vCPU the BootParams count. Reasons: the guest decides which APIC IDs
//! it brings up, and an AP Vigil starts before the guest wants it has nothing to run
//! but must stay ready for the guest's AP creation, which reaches the host and not
//! Vigil: with no interrupt to wake it (restricted injection leaves the host only #HV,
//! not written yet), such an AP could only poll with exits for the whole run. Started
//! on CREATE_VCPU, it waits only between that call and the guest's AP creation, which
//! Linux and OVMF make right after it. An APIC ID the host refuses (a vCPU the VM does
//! not have) is recorded and not tried again; the guest's own AP creation for it is
//! refused by the host as well.
//!
//! The AP ([`vigil_ap_main`]) registers its GHCB, then runs the loop every CPU of
//! Vigil's runs (`snp::serve::on_snp::vcpu_loop`): run VMPL into the guest's VMSA for
//! its APIC ID, and on each return to VMPL0 `Monitor::serve(apic_id)` under the lock
//! that the monitor shares between the CPUs.

use svsm_abi::vmsa::{VmcbSegment, Vmsa};
use zerocopy::FromZeros;

use crate::cpu::gdt::{KERNEL_CS, KERNEL_DS, TSS_SEL};

/// EFER of Vigil's APs: SVME (an SNP VMSA keeps it set), LME, LMA (long mode is active
/// from the first instruction), NXE (Vigil's tables use NX). The boot CPU has the same
/// (`boot::entry` writes SVME, LME, NXE; the CPU sets LMA with paging).
pub const AP_EFER: u64 = (1 << 12) | (1 << 11) | (1 << 10) | (1 << 8);

/// What an AP's VMSA is built from.
#[derive(Clone, Copy, Debug)]
pub struct ApContext {
    /// CR0, CR3, CR4 of the boot CPU (the same page tables).
    pub cr: [u64; 3],
    /// GDT base and limit (the boot CPU's).
    pub gdt: (u64, u16),
    /// IDT base and limit (the boot CPU's).
    pub idt: (u64, u16),
    /// The AP's own TSS and the selector its TR carries.
    pub tss: (u64, u16),
    /// Entry point.
    pub rip: u64,
    /// The AP's stack top (16-byte aligned).
    pub stack_top: u64,
    /// RDI, RSI, RDX, RCX at entry.
    pub args: [u64; 4],
    /// SEV features (Vigil's own VMSA's).
    pub sev_features: u64,
}

/// The task-register selector of Vigil's CPU `cpu` (0: the boot CPU's, the GDT's TSS).
/// An AP's TR is loaded from its VMSA with its own TSS; nothing ever reloads TR (no
/// LTR, no task switch in long mode), so the selector needs no descriptor and serves
/// as the CPU's number (`snp::ghcb::page::current`).
pub const fn tr_selector(cpu: usize) -> u16 {
    TSS_SEL + 0x10 * cpu as u16
}

/// The VMSA of one of Vigil's APs at VMPL0 (module docs).
pub fn ap_vmsa(c: &ApContext) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    // P, S, type 0xB (execute/read, accessed), L; the GDT's KERNEL_CS is this segment.
    v.cs = VmcbSegment::new(KERNEL_CS, 0x029b, 0xffff_ffff, 0);
    // P, S, type 0x3 (read/write, accessed), D/B, G: the GDT's KERNEL_DS.
    let data = VmcbSegment::new(KERNEL_DS, 0x0c93, 0xffff_ffff, 0);
    v.ds = data;
    v.es = data;
    v.ss = data;
    v.fs = data;
    v.gs = data;
    v.ldtr = VmcbSegment::new(0, 0x0082, 0xffff, 0);
    // P, type 0xB: a busy 64-bit TSS, as LTR would have left it.
    v.tr = VmcbSegment::new(c.tss.1, 0x008b, crate::cpu::tss::TSS_LIMIT, c.tss.0);
    v.gdtr = VmcbSegment::new(0, 0, u32::from(c.gdt.1), c.gdt.0);
    v.idtr = VmcbSegment::new(0, 0, u32::from(c.idt.1), c.idt.0);
    v.cr0 = c.cr[0];
    v.cr3 = c.cr[1];
    v.cr4 = c.cr[2];
    v.efer = AP_EFER;
    // Interrupts off, as on the boot CPU.
    v.rflags = 0x2;
    v.rip = c.rip;
    // At a function's first instruction RSP + 8 is 16-byte aligned (the CALL pushed
    // the return address; SysV ABI 3.2.2): the entry is a Rust function.
    v.rsp = c.stack_top - 8;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.g_pat = 0x0007_0406_0007_0406;
    v.xcr0 = 1;
    v.vmpl = 0;
    v.cpl = 0;
    v.sev_features = c.sev_features;
    v.rdi = c.args[0];
    v.rsi = c.args[1];
    v.rdx = c.args[2];
    v.rcx = c.args[3];
    v
}

#[cfg(target_os = "none")]
pub use run::{start_named, Aps};

/// The bare-metal part.
#[cfg(target_os = "none")]
pub mod run {
    use monitor::addr::{Gpa, PageSize, Vmpl};
    use monitor::platform::{ApOp, Perms, Platform};
    use svsm_abi::ghcb::msr;
    use zerocopy::IntoBytes;

    use super::{ap_vmsa, tr_selector, ApContext};
    use crate::snp::fail;
    use crate::snp::ghcb::page::MAX_CPUS;
    use crate::snp::memory::frames;
    use crate::snp::msr_protocol::{check_register, exchange};
    use crate::snp::platform::SnpPlatform;
    use crate::snp::serve::on_snp::{vcpu_loop, Shared, BOOT_APIC_ID};

    /// The AP's main stack.
    const STACK_SIZE: usize = 32 * 1024;
    /// Each IST stack (#DF, NMI, #MC, #VC: the TSS's four slots, as the boot CPU's).
    const IST_SIZE: usize = 16 * 1024;

    /// What became of an APIC ID the guest named.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum State {
        /// Vigil's VMPL0 vCPU was created (CPU number).
        Started(usize),
        /// Not started: no CPU slot, no frame, or the host refused (named in the log).
        Refused,
    }

    /// Vigil's APs, by the APIC IDs the guest named (kept with the monitor, under its
    /// lock: `snp::serve::on_snp::Shared`).
    pub struct Aps {
        list: alloc::vec::Vec<(u32, State)>,
        sev_features: u64,
        guest_vmpl: u8,
    }

    impl Aps {
        /// None yet; `sev_features` are Vigil's own VMSA's.
        pub fn new(sev_features: u64, guest_vmpl: u8) -> Self {
            Self {
                list: alloc::vec::Vec::new(),
                sev_features,
                guest_vmpl,
            }
        }

        fn known(&self, apic_id: u32) -> bool {
            apic_id == BOOT_APIC_ID || self.list.iter().any(|a| a.0 == apic_id)
        }

        fn next_cpu(&self) -> Option<usize> {
            let used = self
                .list
                .iter()
                .filter(|a| matches!(a.1, State::Started(_)))
                .count();
            (used + 1 < MAX_CPUS).then_some(used + 1)
        }
    }

    /// Starts Vigil's VMPL0 vCPU for every APIC ID that the monitor has a guest VMSA
    /// for and that has none yet (the module's "When"). Called with the lock held after
    /// every served call.
    pub fn start_named(s: &mut Shared) {
        loop {
            let aps = &s.aps;
            let next =
                s.m.vcpus()
                    .iter()
                    .find(|v| v.vmsa.is_some() && !aps.known(v.apic_id))
                    .map(|v| v.apic_id);
            let Some(apic_id) = next else {
                return;
            };
            let state = match s.aps.next_cpu() {
                None => {
                    log::warn!("vigil: no CPU slot left for APIC ID {apic_id}");
                    State::Refused
                }
                Some(cpu) => match start(s.m.platform_mut(), &s.aps, cpu, apic_id) {
                    Ok(vmsa) => {
                        log::info!(
                            "vigil: VMPL0 vCPU for APIC ID {apic_id} created (CPU {cpu}, VMSA {vmsa:#x})"
                        );
                        State::Started(cpu)
                    }
                    Err((step, v)) => {
                        log::warn!("vigil: no VMPL0 vCPU for APIC ID {apic_id}: {step} ({v:#x})");
                        State::Refused
                    }
                },
            };
            s.aps.list.push((apic_id, state));
        }
    }

    /// A zeroed, page-aligned block of the heap that lives forever (the AP's stacks).
    fn leak_block(size: usize) -> Option<u64> {
        let layout = core::alloc::Layout::from_size_align(size, 4096).ok()?;
        // SAFETY: a non-zero size; the block is never freed (the AP runs for good).
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as u64)
    }

    /// A VMSA frame: one of Vigil's 4 KiB frames that is not 2 MiB aligned.
    fn vmsa_frame() -> Option<u64> {
        let f = frames::alloc()?;
        if f.is_multiple_of(2 << 20) {
            // Left unused: the next frame is not 2 MiB aligned.
            return frames::alloc();
        }
        Some(f)
    }

    /// Makes CPU `cpu`'s stacks, TSS, GHCB and VMSA for `apic_id` and asks the host to
    /// create the vCPU at VMPL0. Returns the VMSA's GPA; `Err` names the step.
    fn start(
        plat: &mut SnpPlatform,
        aps: &Aps,
        cpu: usize,
        apic_id: u32,
    ) -> Result<u64, (&'static str, u64)> {
        use x86_64::instructions::tables::{sgdt, sidt};
        let stacks = leak_block(STACK_SIZE + 4 * IST_SIZE).ok_or(("no stack", 0))?;
        let mut tss = crate::cpu::tss::Tss::new();
        for i in 0..4 {
            let top = stacks + (STACK_SIZE + (i + 1) * IST_SIZE) as u64;
            tss.interrupt_stack_table[i] = x86_64::VirtAddr::new(top);
        }
        let tss = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss)) as *const _ as u64;
        let ghcb = crate::snp::guest::make::shared_frame(plat)?;
        let vmsa_gpa = vmsa_frame().ok_or(("no VMSA frame", 0))?;
        let (gdt, idt) = (sgdt(), sidt());
        let v = ap_vmsa(&ApContext {
            cr: [
                crate::cpu::instr::read_cr0(),
                crate::cpu::instr::read_cr3(),
                crate::cpu::instr::read_cr4(),
            ],
            gdt: (gdt.base.as_u64(), gdt.limit),
            idt: (idt.base.as_u64(), idt.limit),
            tss: (tss, tr_selector(cpu)),
            rip: vigil_ap_main as *const () as u64,
            stack_top: stacks + STACK_SIZE as u64,
            args: [
                cpu as u64,
                u64::from(apic_id),
                u64::from(aps.guest_vmpl),
                ghcb,
            ],
            sev_features: aps.sev_features,
        });
        // SAFETY: a frame of Vigil's pool, identity-mapped private read+write, not yet
        // a VMSA (the RMPADJUST below makes it one).
        unsafe {
            core::ptr::copy_nonoverlapping(
                v.as_bytes().as_ptr(),
                vmsa_gpa as *mut u8,
                core::mem::size_of_val(&v),
            )
        };
        let vmpl1 = Vmpl::new(1).ok_or(("VMPL1", 1))?;
        plat.rmpadjust(Gpa(vmsa_gpa), PageSize::Size4K, vmpl1, Perms::empty(), true)
            .map_err(|e| ("RMPADJUST VMSA", vmsa_gpa | (u64::from(e.code()) << 56)))?;
        let vmpl0 = Vmpl::new(0).ok_or(("VMPL0", 0))?;
        plat.ap_create(
            ApOp::Create,
            apic_id,
            vmpl0,
            Gpa(vmsa_gpa),
            aps.sev_features,
        )
        .map_err(|_| ("AP creation refused by the host", vmsa_gpa))?;
        Ok(vmsa_gpa)
    }

    /// An AP of Vigil's, from its VMSA (`ap_vmsa`): CPU number, APIC ID, the guest's
    /// VMPL and the GHCB page's GPA in the first four argument registers, all written
    /// by Vigil into a VMSA only VMPL0 can reach. It registers its GHCB (MSR protocol,
    /// from this vCPU: the host ties the page to the vCPU that registers it), then serves
    /// the guest's vCPU for `apic_id` for good.
    extern "C" fn vigil_ap_main(cpu: u64, apic_id: u64, guest_vmpl: u64, ghcb: u64) -> ! {
        // The task register names the CPU (`tr_selector`); the per-CPU GHCB and #VC
        // state are found through it, so it must agree with the number Vigil gave.
        if crate::snp::ghcb::page::current() != usize::try_from(cpu).ok() {
            fail(
                svsm_abi::ghcb::term::GUEST_START,
                format_args!("AP {apic_id}: task register is not CPU {cpu}'s"),
            );
        }
        let gfn = ghcb >> 12;
        if let Err(e) = check_register(exchange(msr::register_ghcb_request(gfn)), gfn) {
            fail(e.reason(), format_args!("AP {apic_id}: {e}"));
        }
        crate::snp::ghcb::page::install(ghcb);
        let (Ok(apic_id), Ok(vmpl)) = (u32::try_from(apic_id), u8::try_from(guest_vmpl)) else {
            fail(
                svsm_abi::ghcb::term::GUEST_START,
                format_args!("AP arguments"),
            )
        };
        // Nothing is printed from here on: the guest's other vCPUs may be printing on
        // the same serial port meanwhile, and bytes of two CPUs would interleave.
        vcpu_loop(apic_id, vmpl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ap_vmsa_is_vmpl0_long_mode_on_the_given_tables_and_tss() {
        let v = ap_vmsa(&ApContext {
            cr: [0x8001_0033, 0x8_0000_0000_1000, 0x20],
            gdt: (0x13_0000, 39),
            idt: (0x13_1000, 4095),
            tss: (0x40_0000, tr_selector(1)),
            rip: 0x10_2000,
            stack_top: 0x50_0000,
            args: [1, 2, 3, 4],
            sev_features: 1,
        });
        assert_eq!((v.vmpl, v.cpl, v.sev_features), (0, 0, 1));
        assert_eq!(
            (v.cr0, v.cr3, v.cr4),
            (0x8001_0033, 0x8_0000_0000_1000, 0x20)
        );
        assert_eq!(v.efer, 0x1d00, "SVME, NXE, LMA, LME");
        assert_eq!(v.cs.attrib & 0x200, 0x200, "CS.L");
        assert_eq!(v.cs.selector, KERNEL_CS);
        assert_eq!(
            (v.tr.selector, v.tr.base, v.tr.attrib),
            (0x28, 0x40_0000, 0x8b)
        );
        assert_eq!((v.gdtr.base, v.gdtr.limit), (0x13_0000, 39));
        assert_eq!((v.idtr.base, v.idtr.limit), (0x13_1000, 4095));
        assert_eq!(v.rsp % 16, 8, "as at a function's first instruction");
        assert_eq!((v.rdi, v.rsi, v.rdx, v.rcx), (1, 2, 3, 4));
        assert_eq!(v.rflags & (1 << 9), 0, "interrupts off");
    }

    #[test]
    fn tr_selectors_number_the_cpus_from_the_gdt_tss() {
        assert_eq!(tr_selector(0), TSS_SEL);
        assert_eq!(tr_selector(3), TSS_SEL + 0x30);
    }
}
