//! Starting the test guest below Vigil on SNP (issue 10, second part).
//!
//! The launch already placed the guest's ELF pages (validated, VMPL0 rights only). As
//! on `emulated` (docs/emulated.md, "Boot protocol of the guest"; the layout is
//! `emulated::loader`'s), Vigil adds the launch region's other pages (the guest's page
//! tables, its copy of the secrets page, the boot calling area, the stack), opens them
//! all to the guest's VMPL, builds the boot vCPU's VMSA (64-bit, those page tables) and
//! runs it at the guest's VMPL:
//!
//! 1. `[IMAGE_END, LAUNCH_END)`: page-state change to private, PVALIDATE (the monitor's
//!    platform), then written (tables with the C-bit, secrets copy with VMPCK0 zero,
//!    calling area zeroed);
//! 2. RMPADJUST of every launch-region page: guest VMPL, all four rights;
//! 3. the VMSA in one of Vigil's 4 KiB frames; RMPADJUST with the VMSA bit (target the
//!    guest's VMPL, no rights: the guest never reads its own VMSA);
//! 4. AP creation for (APIC ID 0, guest VMPL) with that VMSA, then the run-VMPL exit.
//!
//! Everything that fails ends the boot with `GUEST_START` (0x23), naming the step.

use svsm_abi::vmsa::{VmcbSegment, Vmsa};
use zerocopy::FromZeros;

use crate::emulated::loader::{guest_page_tables, GUEST_PML4};
use crate::emulated::vcpu::{GUEST_CR0, GUEST_CR4, GUEST_EFER};

/// The guest's three page tables (PML4, PDPT, PD at `GUEST_PML4` + 0/0x1000/0x2000) as
/// on `emulated`, with the C-bit in every present entry: every guest access is private
/// (APM vol. 2 15.34.5).
pub fn page_tables(c_bit_mask: u64) -> [[u64; 512]; 3] {
    let mut t = guest_page_tables();
    for e in t.iter_mut().flatten() {
        if *e & 1 != 0 {
            *e |= c_bit_mask;
        }
    }
    t
}

/// The boot vCPU's VMSA: 64-bit mode (CS L=1, CR0.PG, CR4.PAE, EFER.LME/LMA/NXE/SVME),
/// CR3 = the guest's PML4 with the C-bit, RIP = entry, RSP = stack, RSI/RDI/RDX/RCX =
/// `args` (docs/emulated.md's boot protocol), VMPL and SEV features as given, XCR0 = 1
/// (x87, the reset value).
pub fn boot_vmsa(
    vmpl: u8,
    sev_features: u64,
    c_bit_mask: u64,
    rip: u64,
    rsp: u64,
    args: [u64; 4],
) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    // Selector 0x08; P, S, type 0xB (execute/read, accessed), L.
    v.cs = VmcbSegment::new(0x08, 0x029b, 0xffff_ffff, 0);
    // Selector 0x10; P, S, type 0x3 (read/write, accessed), D/B, G.
    let data = VmcbSegment::new(0x10, 0x0c93, 0xffff_ffff, 0);
    v.ds = data;
    v.es = data;
    v.ss = data;
    v.fs = data;
    v.gs = data;
    v.ldtr = VmcbSegment::new(0, 0x0082, 0xffff, 0);
    v.tr = VmcbSegment::new(0, 0x008b, 0xffff, 0);
    v.gdtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.idtr = VmcbSegment::new(0, 0, 0xffff, 0);
    v.cr0 = GUEST_CR0;
    v.cr3 = GUEST_PML4 | c_bit_mask;
    v.cr4 = GUEST_CR4;
    v.efer = GUEST_EFER;
    v.rflags = 0x2;
    v.rip = rip;
    v.rsp = rsp;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.g_pat = 0x0007_0406_0007_0406;
    v.xcr0 = 1;
    v.vmpl = vmpl;
    v.cpl = 0;
    v.sev_features = sev_features;
    v.rsi = args[0];
    v.rdi = args[1];
    v.rdx = args[2];
    v.rcx = args[3];
    v
}

/// The bare-metal steps.
#[cfg(target_os = "none")]
pub mod make {
    use monitor::addr::{Gpa, PageSize, Vmpl};
    use monitor::memory::GuestMemory;
    use monitor::platform::{ApOp, Perms, Platform};
    use monitor::policy::Policy;
    use svsm_abi::ghcb::term;
    use svsm_abi::ghcb::PSC_MAX_ENTRIES;
    use svsm_abi::secrets::SecretsPage;
    use zerocopy::{FromZeros, IntoBytes};

    use super::{boot_vmsa, page_tables};
    use crate::emulated::loader::{
        GUEST_BASE, GUEST_CAA, GUEST_END, GUEST_PML4, GUEST_SECRETS, GUEST_STACK_TOP, IMAGE_END,
        LAUNCH_END, VIGIL_END,
    };
    use crate::snp::boot_params::SnpLayout;
    use crate::snp::fail;
    use crate::snp::memory::{frames, private_requests};
    use crate::snp::platform::SnpPlatform;

    /// Ends the boot with `GUEST_START`, naming the step and the address or value.
    #[inline(never)]
    fn stop(step: &'static str, value: u64) -> ! {
        fail(term::GUEST_START, format_args!("{step} ({value:#x})"))
    }

    /// What the boot hands over: the layout, the C-bit, the guest's ELF span and entry
    /// (BootParams fw_start/fw_size/fw_entry), SEV features of Vigil's own VMSA.
    pub struct GuestStart<'a> {
        /// The checked BootParams layout.
        pub layout: &'a SnpLayout,
        /// The C-bit mask.
        pub c_bit_mask: u64,
        /// The guest ELF's first and last byte + 1, and entry.
        pub fw: (u64, u64, u64),
        /// SEV features for the guest's VMSA (Vigil's own: SEV_STATUS >> 2).
        pub sev_features: u64,
    }

    /// One of Vigil's frames made shared with the host: PVALIDATE rescind (so the host
    /// never flips a page Vigil still holds private), page-state change to shared, the
    /// identity leaf re-pointed without the C-bit, INVLPG (this CPU; no other CPU has
    /// touched a frame before it is handed out). The guest-request pages and each AP's
    /// GHCB (`snp::ap`) are made so. `Err` names the step and the frame.
    pub fn shared_frame(plat: &mut SnpPlatform) -> Result<u64, (&'static str, u64)> {
        use crate::mm::address::{PhysAddr, VirtAddr};
        let f = frames::alloc().ok_or(("no frame left", 0))?;
        // SAFETY: a frame of Vigil's pool, just handed out, referenced by nothing.
        let out = unsafe { crate::cpu::instr::pvalidate(f, false, false) };
        let shared = out.ret == 0
            && !out.unchanged
            && plat
                .page_state_change(&[monitor::platform::PscRequest {
                    gpa: Gpa(f),
                    size: PageSize::Size4K,
                    op: monitor::platform::PscOp::Shared,
                }])
                .is_ok();
        let mapped = shared
            && crate::mm::with_page_tables(|pt| {
                pt.remap_page(
                    VirtAddr(f),
                    PhysAddr(f),
                    crate::mm::paging::Perm::ReadWrite,
                    false,
                )
            }) == Some(Ok(true));
        if !mapped {
            return Err(("frame not made shared", f));
        }
        crate::cpu::instr::invlpg(f);
        Ok(f)
    }

    /// Two shared frames for the guest-request pages (request, response).
    fn message_pages(plat: &mut SnpPlatform) -> (u64, u64) {
        let mut pair = [0u64; 2];
        for p in pair.iter_mut() {
            *p = shared_frame(plat).unwrap_or_else(|(step, f)| stop(step, f));
        }
        (pair[0], pair[1])
    }

    /// The secrets page the PSP wrote (mapped read-only at its GPA by Vigil's tables).
    pub fn secrets(layout: &SnpLayout) -> SecretsPage {
        // SAFETY: the secrets page is a launched page of the Vigil region, mapped
        // read-only and private by Vigil's tables; the PSP wrote it, nothing else does.
        unsafe { core::ptr::read(layout.secrets_gpa as *const SecretsPage) }
    }

    /// Step 1: the launch region's pages beyond the ELF made private, validated and
    /// written.
    fn launch_region(plat: &mut SnpPlatform, g: &GuestStart<'_>, secrets: &SecretsPage) {
        // [IMAGE_END, LAUNCH_END) is 4 KiB entries only (1 MiB, not 2 MiB aligned).
        let _ = private_requests(IMAGE_END, LAUNCH_END, PSC_MAX_ENTRIES, |reqs| {
            if plat.page_state_change(reqs).is_err() {
                stop("launch region private", IMAGE_END);
            }
            for r in reqs {
                let ok = plat.pvalidate(r.gpa, PageSize::Size4K, true)
                    == Ok(monitor::platform::PvalidateOutcome::Changed);
                if !ok || plat.write(r.gpa, &[0u8; 4096]).is_err() {
                    stop("PVALIDATE", r.gpa.0);
                }
            }
            Ok(())
        });
        for (i, t) in page_tables(g.c_bit_mask).iter().enumerate() {
            plat.write(Gpa(GUEST_PML4 + i as u64 * 4096), t.as_bytes())
                .unwrap_or_else(|_| stop("guest tables", GUEST_PML4));
        }
        let mut copy = SecretsPage::new_zeroed();
        copy.version = secrets.version;
        copy.vmpck1 = secrets.vmpck1;
        copy.vmpck2 = secrets.vmpck2;
        copy.vmpck3 = secrets.vmpck3;
        copy.svsm_base = 0;
        copy.svsm_size = VIGIL_END;
        copy.svsm_caa = GUEST_CAA;
        copy.svsm_max_version = 1;
        copy.svsm_guest_vmpl = g.layout.guest_vmpl as u8;
        plat.write(Gpa(GUEST_SECRETS), copy.as_bytes())
            .unwrap_or_else(|_| stop("guest secrets copy", GUEST_SECRETS));
    }

    /// Prepares the guest's launch region, its VMSA and the AP creation; returns the
    /// platform (with its two shared guest-request frames), over which `snp::serve`
    /// builds the monitor.
    pub fn start(g: &GuestStart<'_>) -> SnpPlatform {
        let (fw_start, fw_end, entry) = g.fw;
        if fw_start < GUEST_BASE || fw_end > IMAGE_END || fw_start >= fw_end {
            stop("guest ELF outside 16-17 MiB (start)", fw_start);
        }
        let secrets = secrets(g.layout);
        let guest_vmpl = g.layout.guest_vmpl as u8;
        let vmpl =
            Vmpl::new(guest_vmpl).unwrap_or_else(|| stop("guest VMPL", u64::from(guest_vmpl)));
        let mut plat = SnpPlatform::new((0, VIGIL_END), GUEST_END, guest_vmpl, (0, 0));
        let msg = message_pages(&mut plat);
        let mut plat = SnpPlatform::new((0, VIGIL_END), GUEST_END, guest_vmpl, msg);
        launch_region(&mut plat, g, &secrets);
        // Step 2: every launch-region page open to the guest.
        let first = fw_start & !0xfff;
        let mut opened = 0;
        let mut a = first;
        while a < LAUNCH_END {
            if a < fw_end.next_multiple_of(4096) || a >= IMAGE_END {
                plat.rmpadjust(Gpa(a), PageSize::Size4K, vmpl, Perms::all(), false)
                    .unwrap_or_else(|e| stop("RMPADJUST", a | (u64::from(e.code()) << 56)));
                opened += 1;
            }
            a += 4096;
        }
        // Step 3: the VMSA.
        let vmsa_gpa = frames::alloc().unwrap_or_else(|| stop("no VMSA frame", 0));
        let v = boot_vmsa(
            guest_vmpl,
            g.sev_features,
            g.c_bit_mask,
            entry,
            GUEST_STACK_TOP,
            [GUEST_SECRETS, 0, GUEST_END, LAUNCH_END],
        );
        // SAFETY: a frame of Vigil's pool, identity-mapped private read+write, not yet a
        // VMSA (the RMPADJUST below makes it one).
        unsafe {
            core::ptr::copy_nonoverlapping(
                v.as_bytes().as_ptr(),
                vmsa_gpa as *mut u8,
                core::mem::size_of_val(&v),
            )
        };
        plat.rmpadjust(Gpa(vmsa_gpa), PageSize::Size4K, vmpl, Perms::empty(), true)
            .unwrap_or_else(|e| stop("RMPADJUST VMSA", vmsa_gpa | (u64::from(e.code()) << 56)));
        plat.set_vmsa(0, vmsa_gpa);
        plat.ap_create(ApOp::Create, 0, vmpl, Gpa(vmsa_gpa), g.sev_features)
            .unwrap_or_else(|_| stop("AP creation", vmsa_gpa));
        if Policy::default().guest_vmpl != guest_vmpl {
            stop(
                "BootParams guest VMPL is not the policy's",
                u64::from(guest_vmpl),
            );
        }
        log::info!(
            "guest: ELF {fw_start:#x}-{fw_end:#x}, {} pages to VMPL{guest_vmpl}, VMSA {vmsa_gpa:#x}",
            opened
        );
        plat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C51: u64 = 1 << 51;

    #[test]
    fn guest_tables_are_private_and_keep_the_emulated_layout() {
        let plain = guest_page_tables();
        let t = page_tables(C51);
        for (a, b) in plain.iter().flatten().zip(t.iter().flatten()) {
            if *a & 1 != 0 {
                assert_eq!(*b, *a | C51);
            } else {
                assert_eq!(*b, *a);
            }
        }
        assert_eq!(t[0][0] & !C51, (GUEST_PML4 + 0x1000) | 3);
    }

    #[test]
    fn the_boot_vmsa_is_64_bit_at_the_guest_vmpl() {
        let v = boot_vmsa(2, 1, C51, 0x100_0000, 0x112_0000, [1, 2, 3, 4]);
        assert_eq!(v.vmpl, 2);
        assert_eq!(v.sev_features, 1);
        assert_eq!(v.cs.attrib & 0x200, 0x200, "CS.L");
        assert_eq!(
            v.efer & (1 << 12 | 1 << 10 | 1 << 8),
            1 << 12 | 1 << 10 | 1 << 8
        );
        assert_eq!(v.cr0 >> 31, 1, "paging");
        assert_eq!(v.cr3, GUEST_PML4 | C51);
        assert_eq!((v.rip, v.rsp), (0x100_0000, 0x112_0000));
        assert_eq!((v.rsi, v.rdi, v.rdx, v.rcx), (1, 2, 3, 4));
        assert_eq!(v.xcr0, 1);
    }
}
