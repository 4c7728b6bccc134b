//! What runs below Vigil: the guest-side SVSM call library (this library, host-tested)
//! and the bare-metal test guest (`src/main.rs`, built for `x86_64-unknown-none`).
//!
//! The library does what Linux's and OVMF's SVSM code does, minus the instructions:
//! finding the SVSM through the secrets page (SVSM fields at 0x140), encoding each
//! call's registers (RAX = protocol << 32 | call, arguments in RCX/RDX/R8/R9), building
//! PVALIDATE lists, the AP's VMSA for CREATE_VCPU and the ATTEST_SERVICES request, and
//! naming result codes. The instructions themselves (set `call_pending`, write the GHCB
//! MSR with "run VMPL 0", VMGEXIT) are the guest binary's [`Transport`]. Every layout
//! comes from `svsm-abi`, the same definitions Vigil's monitor decodes with.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod evidence;
pub mod snp;

use svsm_abi::attest_protocol::{AttestServicesRequest, ATTEST_SERVICES};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::{call, result, SVSM_ATTEST_PROTOCOL, SVSM_CORE_PROTOCOL};
use svsm_abi::ghcb::{self, Ghcb};
use svsm_abi::pvalidate::{PvalidateEntry, HEADER_SIZE, MAX_ENTRIES};
use svsm_abi::secrets::SecretsPage;
use svsm_abi::vmsa::{SevFeatures, VmcbSegment, Vmsa};
use zerocopy::{FromBytes, FromZeros};

/// The GHCB MSR (defined once in `svsm-abi`).
pub use svsm_abi::ghcb::MSR_GHCB;

/// The GHCB MSR value asking the host to run `vmpl` (GHCB spec, SNP "run VMPL" request,
/// target VMPL in bits 39:32): what a guest writes before the VMGEXIT of an SVSM call.
pub const fn ghcb_run_vmpl(vmpl: u8) -> u64 {
    ghcb::msr::run_vmpl_request(vmpl)
}

/// Where the SVSM is, from the secrets page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvsmInfo {
    /// SVSM base GPA.
    pub base: u64,
    /// SVSM size.
    pub size: u64,
    /// Boot calling area.
    pub caa: u64,
    /// Highest protocol version.
    pub max_version: u32,
    /// The VMPL this guest runs at.
    pub guest_vmpl: u8,
}

/// Why the secrets page does not describe an SVSM (field and offset named).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsError {
    /// `svsm_size` (0x148) is 0: no SVSM.
    NoSvsm,
    /// `svsm_caa` (0x150) is 0 or not page aligned.
    BadCallingArea(u64),
    /// `svsm_guest_vmpl` (0x15C) is 0 or above 3.
    BadVmpl(u8),
}

/// Reads the SVSM fields of a secrets page (how Linux's `snp_setup_svsm` finds it).
pub fn svsm_info(page: &[u8; 4096]) -> Result<SvsmInfo, SecretsError> {
    let s = SecretsPage::read_from_bytes(page).map_err(|_| SecretsError::NoSvsm)?;
    if s.svsm_size == 0 {
        return Err(SecretsError::NoSvsm);
    }
    if s.svsm_caa == 0 || s.svsm_caa & 0xfff != 0 {
        return Err(SecretsError::BadCallingArea(s.svsm_caa));
    }
    if s.svsm_guest_vmpl == 0 || s.svsm_guest_vmpl > 3 {
        return Err(SecretsError::BadVmpl(s.svsm_guest_vmpl));
    }
    Ok(SvsmInfo {
        base: s.svsm_base,
        size: s.svsm_size,
        caa: s.svsm_caa,
        max_version: s.svsm_max_version,
        guest_vmpl: s.svsm_guest_vmpl,
    })
}

/// The registers of each call.
pub mod regs {
    use super::*;

    fn r(protocol: u32, c: u32, rcx: u64, rdx: u64, r8: u64) -> SvsmRegs {
        SvsmRegs {
            rax: SvsmRegs::rax_for(protocol, c),
            rcx,
            rdx,
            r8,
            r9: 0,
        }
    }
    /// QUERY_PROTOCOL: RCX = protocol << 32 | version.
    pub fn query_protocol(protocol: u32, version: u32) -> SvsmRegs {
        r(
            SVSM_CORE_PROTOCOL,
            call::QUERY_PROTOCOL,
            (u64::from(protocol) << 32) | u64::from(version),
            0,
            0,
        )
    }
    /// REMAP_CA: RCX = new calling area.
    pub fn remap_ca(gpa: u64) -> SvsmRegs {
        r(SVSM_CORE_PROTOCOL, call::REMAP_CA, gpa, 0, 0)
    }
    /// PVALIDATE: RCX = list.
    pub fn pvalidate(list_gpa: u64) -> SvsmRegs {
        r(SVSM_CORE_PROTOCOL, call::PVALIDATE, list_gpa, 0, 0)
    }
    /// CREATE_VCPU: RCX = VMSA, RDX = calling area, R8 = APIC ID.
    pub fn create_vcpu(vmsa: u64, caa: u64, apic_id: u32) -> SvsmRegs {
        r(
            SVSM_CORE_PROTOCOL,
            call::CREATE_VCPU,
            vmsa,
            caa,
            u64::from(apic_id),
        )
    }
    /// DELETE_VCPU: RCX = VMSA.
    pub fn delete_vcpu(vmsa: u64) -> SvsmRegs {
        r(SVSM_CORE_PROTOCOL, call::DELETE_VCPU, vmsa, 0, 0)
    }
    /// ATTEST_SERVICES: RCX = request.
    pub fn attest_services(req_gpa: u64) -> SvsmRegs {
        r(SVSM_ATTEST_PROTOCOL, ATTEST_SERVICES, req_gpa, 0, 0)
    }
}

/// A list that does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListTooLong;

/// Writes a PVALIDATE list (header: entries, next = 0; then the entries) into `buf`;
/// returns its length.
pub fn pvalidate_list(buf: &mut [u8], entries: &[PvalidateEntry]) -> Result<usize, ListTooLong> {
    let len = HEADER_SIZE + entries.len() * 8;
    if entries.len() > MAX_ENTRIES || buf.len() < len {
        return Err(ListTooLong);
    }
    buf[..HEADER_SIZE].fill(0);
    buf[0..2].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let o = HEADER_SIZE + i * 8;
        buf[o..o + 8].copy_from_slice(&e.0.to_le_bytes());
    }
    Ok(len)
}

/// One entry: validate (or rescind) the page at `gpa`, 4 KiB or 2 MiB.
pub fn entry(gpa: u64, size_2m: bool, validate: bool) -> PvalidateEntry {
    PvalidateEntry::new(gpa >> 12, size_2m, validate, false)
}

/// The ATTEST_SERVICES request (no certificates buffer).
pub fn attest_request(
    report_gpa: u64,
    nonce_gpa: u64,
    nonce_len: u16,
    manifest_gpa: u64,
    manifest_size: u32,
) -> AttestServicesRequest {
    let mut r = AttestServicesRequest::new_zeroed();
    r.report_gpa = report_gpa;
    r.report_size = 4096;
    r.nonce_gpa = nonce_gpa;
    r.nonce_size = nonce_len;
    r.manifest_gpa = manifest_gpa;
    r.manifest_size = manifest_size;
    r
}

/// The register state of an AP's VMSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApState {
    /// The VMPL it runs at.
    pub vmpl: u8,
    /// SEV_FEATURES.
    pub sev_features: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER (SVME is added).
    pub efer: u64,
    /// Entry point.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
}

/// The VMSA of an application processor in 64-bit mode at `vmpl`, as Linux builds one
/// for CREATE_VCPU (`snp_set_vmsa` path): flat segments, the BSP's CR0/CR3/CR4/EFER
/// (EFER.SVME set, which SEV-SNP requires of a VMSA), RIP and RSP, and `sev_features`.
pub fn ap_vmsa(a: &ApState) -> Vmsa {
    let ApState {
        vmpl,
        sev_features,
        cr0,
        cr3,
        cr4,
        efer,
        rip,
        rsp,
    } = *a;
    let mut v = Vmsa::new_zeroed();
    v.cs = VmcbSegment::new(0x08, 0x029b, 0xffff_ffff, 0);
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
    v.vmpl = vmpl;
    v.sev_features = sev_features;
    v.cr0 = cr0;
    v.cr3 = cr3;
    v.cr4 = cr4;
    v.efer = efer | (1 << 12);
    v.rflags = 2;
    v.rip = rip;
    v.rsp = rsp;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.g_pat = 0x0007_0406_0007_0406;
    v
}

/// SEV_FEATURES with only SNP_ACTIVE: what Vigil's default policy requires and allows.
pub const SNP_ACTIVE: u64 = SevFeatures::SNP_ACTIVE.bits();

/// The GHCB page of the guest's own AP creation request, sent after CREATE_VCPU to
/// start the new vCPU (Linux `vmgexit_ap_control`): SW_EXITCODE SNP AP Creation,
/// SW_EXITINFO1 = APIC ID (63:32) | the guest's VMPL (19:16) | CREATE (15:0),
/// SW_EXITINFO2 = the VMSA, RAX = its SEV_FEATURES.
pub fn ap_create_ghcb(apic_id: u32, vmpl: u8, vmsa: u64, sev_features: u64) -> Ghcb {
    let mut g = Ghcb::new_zeroed_v2();
    g.sw_exit_code = ghcb::exit::SNP_AP_CREATION;
    g.sw_exit_info_1 = ghcb::ap_create::info1(apic_id, vmpl, ghcb::ap_create::CREATE);
    g.sw_exit_info_2 = vmsa;
    g.rax = sev_features;
    for o in [
        ghcb::offset::SW_EXIT_CODE,
        ghcb::offset::SW_EXIT_INFO_1,
        ghcb::offset::SW_EXIT_INFO_2,
        ghcb::offset::RAX,
    ] {
        g.set_valid(o);
    }
    g
}

/// The host's answer in a GHCB page: `Ok` when SW_EXITINFO1 bits 31:0 are 0, else the
/// SW_EXITINFO1/2 pair (Linux checks the same after `vmgexit_ap_control`).
pub fn ghcb_answer(page: &[u8; 4096]) -> Result<(), (u64, u64)> {
    match Ghcb::read_from_bytes(page) {
        Ok(g) if g.sw_exit_info_1 & 0xffff_ffff == 0 => Ok(()),
        Ok(g) => Err((g.sw_exit_info_1, g.sw_exit_info_2)),
        Err(_) => Err((u64::MAX, 0)),
    }
}

/// The spec's name of an SVSM result code.
pub fn result_name(rax: u64) -> &'static str {
    match rax {
        result::SUCCESS => "SUCCESS",
        result::ERR_INCOMPLETE => "INCOMPLETE",
        result::ERR_UNSUPPORTED_PROTOCOL => "UNSUPPORTED_PROTOCOL",
        result::ERR_UNSUPPORTED_CALL => "UNSUPPORTED_CALL",
        result::ERR_INVALID_ADDRESS => "INVALID_ADDRESS",
        result::ERR_INVALID_FORMAT => "INVALID_FORMAT",
        result::ERR_INVALID_PARAMETER => "INVALID_PARAMETER",
        result::ERR_INVALID_REQUEST => "INVALID_REQUEST",
        result::ERR_BUSY => "BUSY",
        result::ERR_FAIL_INUSE => "FAIL_INUSE",
        result::ERR_PVALIDATE_FAIL_INPUT => "PVALIDATE_FAIL_INPUT",
        result::ERR_PVALIDATE_FAIL_SIZEMISMATCH => "PVALIDATE_FAIL_SIZEMISMATCH",
        result::ERR_PVALIDATE_FAIL_UNCHANGED => "PVALIDATE_FAIL_UNCHANGED",
        _ => "unknown",
    }
}

/// How the guest makes a call: sets `call_pending`, asks for VMPL 0, VMGEXIT, and
/// returns the registers. Implemented by the guest binary (instructions) and by tests.
pub trait Transport {
    /// Makes one call with `regs` through the calling area `caa`.
    fn call(&mut self, caa: u64, regs: SvsmRegs) -> SvsmRegs;
}

/// An SVSM session: the transport and the current calling area.
pub struct Svsm<T: Transport> {
    /// The transport.
    pub t: T,
    /// The calling area in use.
    pub caa: u64,
}

impl<T: Transport> Svsm<T> {
    /// A session on the boot calling area.
    pub fn new(t: T, caa: u64) -> Self {
        Self { t, caa }
    }
    /// One call; returns all result registers.
    pub fn call(&mut self, regs: SvsmRegs) -> SvsmRegs {
        self.t.call(self.caa, regs)
    }
    /// QUERY_PROTOCOL: `Ok((min, max))`, or `Err(rax)`.
    pub fn query(&mut self, protocol: u32, version: u32) -> Result<(u32, u32), u64> {
        let out = self.call(regs::query_protocol(protocol, version));
        if out.rax != result::SUCCESS {
            return Err(out.rax);
        }
        Ok((out.rcx as u32, (out.rcx >> 32) as u32))
    }
    /// REMAP_CA; on success later calls use the new area.
    pub fn remap_ca(&mut self, gpa: u64) -> u64 {
        let rax = self.call(regs::remap_ca(gpa)).rax;
        if rax == result::SUCCESS {
            self.caa = gpa;
        }
        rax
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn call_encodings_match_the_abi() {
        let q = regs::query_protocol(1, 1);
        assert_eq!(q.rax, 6);
        assert_eq!(q.rcx, (1 << 32) | 1);
        let a = regs::attest_services(0x1234_0000);
        assert_eq!(a.rax, 1 << 32);
        assert_eq!(a.protocol(), SVSM_ATTEST_PROTOCOL);
        let c = regs::create_vcpu(0x1000, 0x2000, 7);
        assert_eq!(
            (c.call(), c.rcx, c.rdx, c.r8),
            (call::CREATE_VCPU, 0x1000, 0x2000, 7)
        );
        assert_eq!(ghcb_run_vmpl(0), 0x16);
    }

    #[test]
    fn ap_creation_carries_the_vmpl_like_linux() {
        use zerocopy::IntoBytes;
        let g = ap_create_ghcb(1, 2, 0x0180_1000, SNP_ACTIVE);
        assert_eq!(g.sw_exit_code, 0x8000_0013);
        assert_eq!(g.sw_exit_info_1, (1 << 32) | (2 << 16) | 1);
        assert_eq!((g.sw_exit_info_2, g.rax), (0x0180_1000, SNP_ACTIVE));
        let mut page: [u8; 4096] = g.as_bytes().try_into().unwrap();
        assert_eq!(
            ghcb_answer(&page),
            Err(((1 << 32) | (2 << 16) | 1, 0x0180_1000))
        );
        page[0x398..0x3a8].fill(0);
        assert_eq!(ghcb_answer(&page), Ok(()));
    }

    #[test]
    fn pvalidate_lists_decode_with_the_abi() {
        let mut buf = [0xffu8; 64];
        let n = pvalidate_list(
            &mut buf,
            &[
                entry(0x120_0000, false, true),
                entry(0x140_0000, true, true),
            ],
        )
        .unwrap();
        assert_eq!(n, 24);
        let (h, _) = svsm_abi::pvalidate::PvalidateListHeader::read_from_prefix(&buf[..]).unwrap();
        assert_eq!((h.entries, h.next, h.reserved), (2, 0, 0));
        let e = PvalidateEntry(u64::from_le_bytes(buf[16..24].try_into().unwrap()));
        assert_eq!(
            (e.gpa(), e.size_field(), e.validate()),
            (0x140_0000, 1, true)
        );
        assert_eq!(
            pvalidate_list(&mut [0u8; 15], &[entry(0, false, true)]),
            Err(ListTooLong)
        );
    }

    #[test]
    fn secrets_page_is_read_like_linux() {
        let mut s = SecretsPage::new_zeroed();
        s.svsm_base = 0;
        s.svsm_size = 16 << 20;
        s.svsm_caa = 0x110_4000;
        s.svsm_max_version = 1;
        s.svsm_guest_vmpl = 2;
        let page: [u8; 4096] = s.as_bytes().try_into().unwrap();
        let i = svsm_info(&page).unwrap();
        assert_eq!((i.caa, i.guest_vmpl, i.size), (0x110_4000, 2, 16 << 20));
        s.svsm_guest_vmpl = 0;
        let page: [u8; 4096] = s.as_bytes().try_into().unwrap();
        assert_eq!(svsm_info(&page), Err(SecretsError::BadVmpl(0)));
        s.svsm_size = 0;
        let page: [u8; 4096] = s.as_bytes().try_into().unwrap();
        assert_eq!(svsm_info(&page), Err(SecretsError::NoSvsm));
    }

    #[test]
    fn ap_vmsa_has_what_the_monitor_checks() {
        let v = ap_vmsa(&ApState {
            vmpl: 2,
            sev_features: SNP_ACTIVE,
            cr0: 0x8001_0033,
            cr3: 0x110_0000,
            cr4: 0x620,
            efer: 0xd01,
            rip: 0x100_1000,
            rsp: 0x120_0000,
        });
        assert_eq!(v.vmpl, 2);
        assert_ne!(v.efer & (1 << 12), 0);
        assert_eq!(v.sev_features, SNP_ACTIVE);
        let raw = v.as_bytes();
        assert_eq!(raw.len(), 4096);
        assert_eq!(raw[0x0cb], 0); // CPL
    }

    struct Fake(Vec<(u64, SvsmRegs)>);
    impl Transport for Fake {
        fn call(&mut self, caa: u64, regs: SvsmRegs) -> SvsmRegs {
            self.0.push((caa, regs));
            SvsmRegs {
                rax: if regs.call() == call::REMAP_CA && regs.rcx & 0xfff != 0 {
                    result::ERR_INVALID_ADDRESS
                } else {
                    0
                },
                rcx: (1 << 32) | 1,
                ..regs
            }
        }
    }

    #[test]
    fn session_follows_remap_ca() {
        let mut s = Svsm::new(Fake(Vec::new()), 0x1000);
        assert_eq!(s.query(0, 1), Ok((1, 1)));
        assert_eq!(s.remap_ca(0x2800), result::ERR_INVALID_ADDRESS);
        assert_eq!(s.caa, 0x1000);
        assert_eq!(s.remap_ca(0x3000), 0);
        s.query(1, 1).unwrap();
        assert_eq!(s.t.0.last().unwrap().0, 0x3000);
        assert_eq!(result_name(0x8000_1010), "PVALIDATE_FAIL_UNCHANGED");
    }
}
