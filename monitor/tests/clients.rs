//! Sessions shaped like the two SVSM clients that run unmodified below Vigil (issue 11):
//! the same calls, in the same order, with the same encodings, on the simulated
//! machine. Each step names the client function it copies:
//! Linux 6.12 `arch/x86/coco/sev/core.c` (and `drivers/virt/coco/sev-guest/` for the
//! configfs-tsm attestation), edk2 `OvmfPkg/Library/AmdSvsmLib/AmdSvsmLib.c`.
//! Both clients check after every call that `call_pending` is 0 again and retry while
//! the answer is INCOMPLETE or BUSY; [`Client::call`] does the same.
use monitor::addr::{Gpa, PageSize};
use monitor::pages::PageState;
use monitor::platform::{PscOp, PscRequest};
use monitor::sim::invariants::check;
use monitor::sim::vm::{SimConfig, BOOT_APIC, BOOT_CAA};
use monitor::sim::SimVm;
use monitor::CallOutcome;
use svsm_abi::attest_protocol as ap;
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result::*};
use svsm_abi::pvalidate::PvalidateEntry;
use svsm_abi::vmsa::SevFeatures;
use zerocopy::IntoBytes;

const EFER_SVME: u64 = 1 << 12;
/// Linux `SVSM_PVALIDATE_MAX_COUNT`: entries that fit after the list header in the
/// calling area's buffer at offset 8.
const LINUX_MAX_ENTRIES: usize = (4096 - 8 - 8) / 8;
/// edk2 `SvsmPvalidate` sends a list once `Entry > EntryLimit`, EntryLimit being one
/// less than the entries that fit after the header in the 4088-byte buffer: 510.
const OVMF_MAX_ENTRIES: usize = (4096 - 8 - 8) / 8;

struct Client {
    v: SimVm,
    apic: u32,
    caa: Gpa,
}

impl Client {
    fn new(v: SimVm) -> Self {
        Self {
            v,
            apic: BOOT_APIC,
            caa: BOOT_CAA,
        }
    }

    /// Linux `svsm_perform_call_protocol` / edk2 `SvsmMsrProtocol`: the call, retried
    /// while INCOMPLETE or BUSY; `call_pending` must read 0 afterwards.
    fn call(&mut self, rax: u64, rcx: u64, rdx: u64, r8: u64) -> SvsmRegs {
        loop {
            let (o, r) = self.v.call_from(
                self.apic,
                SvsmRegs {
                    rax,
                    rcx,
                    rdx,
                    r8,
                    r9: 0,
                },
            );
            assert_eq!(o, CallOutcome::Handled);
            let mut pending = [9u8];
            self.v.guest_read(self.caa, &mut pending).unwrap();
            assert_eq!(
                pending[0], 0,
                "call_pending left set: the client would stop"
            );
            if r.rax != ERR_INCOMPLETE && r.rax != ERR_BUSY {
                return r;
            }
        }
    }

    /// The page-state change to private through the guest's own GHCB.
    fn psc_private(&mut self, gpa: Gpa, size: PageSize, n: u64) {
        let req: Vec<PscRequest> = (0..n)
            .map(|i| PscRequest {
                gpa: Gpa(gpa.0 + i * size.bytes()),
                size,
                op: PscOp::Private,
            })
            .collect();
        self.v.guest_psc(&req).unwrap();
    }

    /// Writes a PVALIDATE list into the calling area's buffer (offset 8) with
    /// `cur_index` = `next`, as Linux `svsm_build_ca_from_psc_desc` and edk2
    /// `SvsmPvalidate` do, and calls PVALIDATE on it.
    fn pvalidate_in_ca(&mut self, entries: &[PvalidateEntry], next: u16) -> (u64, u16) {
        let mut b = Vec::with_capacity(8 + 8 * entries.len());
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        b.extend_from_slice(&next.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for e in entries {
            b.extend_from_slice(&e.0.to_le_bytes());
        }
        let list = Gpa(self.caa.0 + 8);
        self.v.guest_write(list, &b).unwrap();
        let rax = self
            .call(SvsmRegs::rax_for(0, call::PVALIDATE), list.0, 0, 0)
            .rax;
        let mut n = [0u8; 2];
        self.v.guest_read(Gpa(list.0 + 2), &mut n).unwrap();
        (rax, u16::from_le_bytes(n))
    }

    /// Linux `wakeup_cpu_via_vmgexit`: a VMSA with the boot vCPU's SEV features at the
    /// guest's VMPL, `snp_set_vmsa` (CREATE_VCPU), then `vmgexit_ap_control` (the
    /// guest's own AP creation). Returns CREATE_VCPU's result.
    fn start_cpu(&mut self, apic: u32, vmsa: Gpa, caa: Gpa) -> u64 {
        let gv = self.v.m.guest_vmpl().get();
        let f = self.v.m.boot_sev_features();
        self.v.write_vmsa(vmsa, gv, f, EFER_SVME).unwrap();
        let rax = self
            .call(
                SvsmRegs::rax_for(0, call::CREATE_VCPU),
                vmsa.0,
                caa.0,
                apic as u64,
            )
            .rax;
        if rax == SUCCESS {
            self.v.guest_ap_create(apic, vmsa).unwrap();
        }
        rax
    }
}

/// Linux `svsm_pval_pages`: lists of at most 510 entries in the calling area; an entry
/// that fails with SIZEMISMATCH at 2 MiB is kept aside, the call resumes at the next
/// entry (`cur_index + 1`, unless it was the last), and the kept entries are validated
/// afterwards as 4 KiB pages.
fn linux_pval_pages(c: &mut Client, entries: &[PvalidateEntry]) {
    for chunk in entries.chunks(LINUX_MAX_ENTRIES) {
        let mut kept = Vec::new();
        let mut next = 0u16;
        loop {
            let (rax, cur) = c.pvalidate_in_ca(chunk, next);
            if rax == SUCCESS {
                break;
            }
            let e = chunk[cur as usize];
            assert_eq!(
                (rax, e.size_field()),
                (ERR_PVALIDATE_FAIL_SIZEMISMATCH, 1),
                "svsm_pval_terminate would stop the guest"
            );
            kept.push(e);
            if cur as usize + 1 == chunk.len() {
                break;
            }
            next = cur + 1;
        }
        for e in kept {
            let four_k: Vec<PvalidateEntry> = (0..512)
                .map(|i| PvalidateEntry::new((e.gpa() >> 12) + i, false, e.validate(), false))
                .collect();
            for part in four_k.chunks(LINUX_MAX_ENTRIES) {
                assert_eq!(c.pvalidate_in_ca(part, 0).0, SUCCESS);
            }
        }
    }
}

#[test]
fn linux_6_12_session() {
    let mut c = Client::new(SimVm::new(SimConfig::small(21)));
    // 1. `snp_remap_svsm_ca`, early in boot: from the secrets page's calling area to
    //    the kernel's own (per-CPU from then on).
    let kernel_caa = Gpa(0x30000);
    let r = c.call(SvsmRegs::rax_for(0, call::REMAP_CA), kernel_caa.0, 0, 0);
    assert_eq!(r.rax, SUCCESS);
    c.caa = kernel_caa;
    // 2. `snp_accept_memory` -> `set_pages_state` -> `svsm_pval_pages`: the host makes
    //    the pages private (`vmgexit_psc`), then PVALIDATE lists in the calling area.
    //    [2, 4) MiB as 4 KiB RMP entries but asked as one 2 MiB page: SIZEMISMATCH,
    //    kept aside and validated as 512 pages; [6, 8) MiB as a 2 MiB page.
    c.psc_private(Gpa(2 << 20), PageSize::Size4K, 512);
    c.psc_private(Gpa(6 << 20), PageSize::Size2M, 1);
    let list = [
        PvalidateEntry::new(0x200, true, true, false),
        PvalidateEntry::new(0x600, true, true, false),
    ];
    linux_pval_pages(&mut c, &list);
    for g in [2u64 << 20, (4 << 20) - 4096, 6 << 20, (8 << 20) - 4096] {
        assert_eq!(
            c.v.m.pages().get(Gpa(g)),
            Some(PageState::Validated),
            "{g:#x}"
        );
    }
    // 3. Bring up CPU 1: per-CPU calling area, VMSA, CREATE_VCPU, AP creation.
    let (caa1, vmsa_a, vmsa_b) = (Gpa(0x31000), Gpa(0x32000), Gpa(0x33000));
    assert_eq!(c.start_cpu(1, vmsa_a, caa1), SUCCESS);
    // CPU 1 runs and calls through its calling area.
    let (o, r) = c.v.call_from(
        1,
        SvsmRegs {
            rax: SvsmRegs::rax_for(0, call::QUERY_PROTOCOL),
            rcx: 1 << 32 | 1,
            ..Default::default()
        },
    );
    assert_eq!(
        (o, r.rax, r.rcx),
        (CallOutcome::Handled, SUCCESS, 1 << 32 | 1)
    );
    // 4. CPU 1 offline, then online again: a new VMSA for APIC 1 with the same calling
    //    area first, then `snp_cleanup_vmsa` deletes the old one (DELETE_VCPU).
    assert_eq!(c.start_cpu(1, vmsa_b, caa1), SUCCESS);
    let r = c.call(SvsmRegs::rax_for(0, call::DELETE_VCPU), vmsa_a.0, 0, 0);
    assert_eq!(r.rax, SUCCESS);
    assert_eq!(c.v.m.vcpus().by_apic(1).map(|v| v.vmsa), Some(Some(vmsa_b)));
    // 5. Attestation as configfs-tsm asks with `service_provider=svsm`
    //    (`snp_issue_svsm_attest_req`): the request in the calling area's buffer, a
    //    64-byte nonce, manifest and report buffers of a page, a certificates buffer.
    let (nonce, manifest, report, certs) = (0x34000u64, 0x35000u64, 0x36000u64, 0x37000u64);
    let inblob = [0x5a_u8; 64];
    c.v.guest_write(Gpa(nonce), &inblob).unwrap();
    let req = ap::AttestServicesRequest {
        report_gpa: report,
        report_size: 4096,
        nonce_gpa: nonce,
        nonce_size: 64,
        manifest_gpa: manifest,
        manifest_size: 4096,
        certificates_gpa: certs,
        certificates_size: 4096,
        ..Default::default()
    };
    let at = c.caa.0 + 8;
    c.v.guest_write(Gpa(at), req.as_bytes()).unwrap();
    let r = c.call(SvsmRegs::rax_for(1, ap::ATTEST_SERVICES), at, 0, 0);
    assert_eq!((r.rax, r.rdx, r.r8), (SUCCESS, 0, 0x4a0));
    let mut m = vec![0u8; r.rcx as usize];
    c.v.guest_read(Gpa(manifest), &mut m).unwrap();
    let mut rep = vec![0u8; 0x4a0];
    c.v.guest_read(Gpa(report), &mut rep).unwrap();
    assert_eq!(rep[0x50..0x90], ap::report_data(&inblob, &m));
    // The single-service form with the manifest GUID and version configfs-tsm passes.
    let mut single = [0u8; 0x58];
    single[..0x40].copy_from_slice(req.as_bytes());
    single[0x40..0x50].copy_from_slice(&ap::VIGIL_SERVICE_GUID);
    single[0x50..0x54].copy_from_slice(&1u32.to_le_bytes());
    c.v.guest_write(Gpa(at), &single).unwrap();
    let r = c.call(SvsmRegs::rax_for(1, ap::ATTEST_SINGLE_SERVICE), at, 0, 0);
    assert_eq!((r.rax, r.rcx), (SUCCESS, 64));
    check(&c.v).unwrap();
}

#[test]
fn ovmf_session() {
    let mut c = Client::new(SimVm::new(SimConfig::small(22)));
    // 1. `AmdSvsmSnpGetCaa`: the secrets page's calling area; OVMF never remaps it.
    // 2. `AmdSvsmSnpPvalidate` -> `SvsmPvalidate`: lists of up to 510 entries in the
    //    calling area's buffer; on SIZEMISMATCH of a 2 MiB entry at `Next`, that entry
    //    is re-issued as 512 4 KiB entries in a new list, then the rest continues.
    c.psc_private(Gpa(2 << 20), PageSize::Size4K, 512);
    c.psc_private(Gpa(6 << 20), PageSize::Size4K, 600 - 512);
    let mut work: Vec<PvalidateEntry> = vec![PvalidateEntry::new(0x200, true, true, false)];
    work.extend((0..(600 - 512)).map(|i| PvalidateEntry::new(0x600 + i, false, true, false)));
    let mut i = 0;
    while i < work.len() {
        let chunk: Vec<_> = work[i..].iter().take(OVMF_MAX_ENTRIES).copied().collect();
        let (rax, next) = c.pvalidate_in_ca(&chunk, 0);
        if rax == ERR_PVALIDATE_FAIL_SIZEMISMATCH && chunk[next as usize].size_field() == 1 {
            let gfn = chunk[next as usize].gpa() >> 12;
            let small: Vec<_> = (0..512)
                .map(|k| PvalidateEntry::new(gfn + k, false, true, false))
                .collect();
            for part in small.chunks(OVMF_MAX_ENTRIES) {
                assert_eq!(c.pvalidate_in_ca(part, 0).0, SUCCESS, "SnpTerminate");
            }
            i += next as usize + 1;
            continue;
        }
        assert_eq!(rax, SUCCESS, "SnpTerminate");
        i += chunk.len();
    }
    assert_eq!(
        c.v.m.pages().get(Gpa((4 << 20) - 4096)),
        Some(PageState::Validated)
    );
    assert_eq!(
        c.v.m.pages().get(Gpa((6 << 20) + 87 * 4096)),
        Some(PageState::Validated)
    );
    // 3. `AmdSvsmSnpVmsaRmpAdjust` -> `SvsmVmsaRmpAdjust`: CREATE_VCPU with the calling
    //    area on the page right after the VMSA; MpLib then sends AP creation.
    let vmsa = Gpa(0x40000);
    let caa = Gpa(vmsa.0 + 4096);
    assert_eq!(c.start_cpu(3, vmsa, caa), SUCCESS);
    assert_eq!(c.v.mach().hv.aps, vec![(3, vmsa)]);
    // ... and DELETE_VCPU through the same function when the AP is parked for good.
    let r = c.call(SvsmRegs::rax_for(0, call::DELETE_VCPU), vmsa.0, 0, 0);
    assert_eq!(r.rax, SUCCESS);
    // The boot vCPU's SEV features (what OVMF copies into every AP's VMSA) are the
    // only ones accepted.
    assert_eq!(c.v.m.boot_sev_features(), SevFeatures::SNP_ACTIVE.bits());
    check(&c.v).unwrap();
}
