//! The host's side of the GHCB page protocol: one VMGEXIT with a GHCB GPA in the GHCB
//! MSR, checked and answered as KVM's `sev_handle_vmgexit` and
//! `sev_es_validate_vmgexit` do.
//!
//! Order (KVM): the GHCB GPA must be set and (SNP) registered, else KVM fails KVM_RUN;
//! the host copies the page once; GHCB usage 0 and valid SW_EXITCODE/EXITINFO1/EXITINFO2
//! and the exit's own inputs are required, else the guest gets SW_EXITINFO1 = 2 and a
//! reason in SW_EXITINFO2; then SW_EXITINFO1/2 are zeroed and the exit is handled; RAX,
//! RBX, RCX and RDX go back into the GHCB (KVM `sev_es_sync_to_ghcb`).

use crate::exit_codes::{self as ec, err};
use crate::ghcb_io::{self, ExitResult};
use crate::ghcb_page::{off, Ghcb};
use crate::host::{is_shared, read_guest, Action, Devices, Fault, Host, VmsaRef};
use crate::memory::Memory;
use crate::psc::{self, PSC_BUFFER_LEN};
use crate::rmp::{Rmp, PAGE_SIZE, PAGE_SIZE_2M};

/// The security processor as the host reaches it (SNP_GUEST_REQUEST): a request page
/// in, a response page out, or the firmware's error code.
pub trait SecurityProcessor {
    /// One guest request.
    fn guest_request(&mut self, req: &[u8; 4096]) -> Result<[u8; 4096], u32>;
}

/// The guest-message header's MSG_TYPE offset (SNP ABI "Message header"); MSG_REPORT_REQ.
const MSG_TYPE_OFFSET: u64 = 0x34;
const MSG_REPORT_REQ: u8 = 5;

/// Everything an exit may touch.
pub struct Ctx<'a> {
    /// The host.
    pub host: &'a mut Host,
    /// Guest memory.
    pub mem: &'a mut Memory,
    /// The RMP.
    pub rmp: &'a mut Rmp,
    /// The devices.
    pub dev: &'a mut dyn Devices,
    /// The security processor.
    pub psp: &'a mut dyn SecurityProcessor,
}

/// The vCPU that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exiting {
    /// APIC ID.
    pub vcpu: u32,
    /// VMPL.
    pub vmpl: u8,
    /// The GHCB MSR value (the GHCB GPA).
    pub ghcb_gpa: u64,
}

/// Handle one GHCB-page VMGEXIT.
pub fn handle(cx: &mut Ctx<'_>, x: Exiting) -> Action {
    let gpa = x.ghcb_gpa;
    if gpa == 0 {
        return Action::Fatal(Fault::GhcbNotSet);
    }
    // SNP: only the registered GHCB is used (KVM `ghcb_gpa_is_registered`); a guest
    // cannot point the host at another page of its memory.
    let registered = cx
        .host
        .vcpu(x.vcpu)
        .and_then(|c| c.ghcb[usize::from(x.vmpl & 3)]);
    if registered != Some(gpa) {
        return Action::Fatal(Fault::GhcbNotRegistered { gpa });
    }
    // The host can only use a shared page (a private one is ciphertext to it).
    if !gpa.is_multiple_of(PAGE_SIZE) || !is_shared(cx.mem, cx.rmp, gpa, PAGE_SIZE) {
        return Action::Fatal(Fault::GuestMemory { gpa });
    }
    let mut g = Ghcb::new();
    if read_guest(cx.mem, cx.rmp, gpa, &mut g.0).is_err() {
        return Action::Fatal(Fault::GuestMemory { gpa });
    }
    // SNP speaks GHCB protocol version 2 (GHCB spec §2.2).
    let version = g.version();
    if !(2..=crate::msr_protocol::GHCB_VERSION_MAX as u16).contains(&version) {
        return Action::Fatal(Fault::GhcbVersion { version });
    }
    let action = match validate(&g) {
        Err(reason) => {
            g.clear_valid();
            answer_error(&mut g, reason);
            Action::Resume
        }
        Ok(code) => dispatch(cx, x, &mut g, code),
    };
    if matches!(action, Action::Fatal(_)) {
        return action;
    }
    match cx.host.write_guest(cx.mem, cx.rmp, gpa, &g.0) {
        Ok(()) => action,
        Err(f) => Action::Fatal(f),
    }
}

fn answer_error(g: &mut Ghcb, reason: u64) {
    g.set(off::SW_EXIT_INFO_1, 2);
    g.set(off::SW_EXIT_INFO_2, reason);
}

/// KVM `sev_es_validate_vmgexit`: usage, the three exit fields, then each exit's inputs.
pub fn validate(g: &Ghcb) -> Result<u64, u64> {
    if g.usage() != 0 {
        return Err(err::INVALID_USAGE);
    }
    let (Some(code), Some(info1), Some(_)) = (
        g.get(off::SW_EXIT_CODE),
        g.get(off::SW_EXIT_INFO_1),
        g.get(off::SW_EXIT_INFO_2),
    ) else {
        return Err(err::MISSING_INPUT);
    };
    let has = |o| g.valid(o);
    let ok = match code {
        ec::READ_DR7 | ec::RDTSC | ec::RDTSCP | ec::INVD | ec::WBINVD => true,
        ec::WRITE_DR7 => has(off::RAX),
        ec::RDPMC => has(off::RCX),
        ec::CPUID => has(off::RAX) && (g.get_or_zero(off::RAX) != 0xd || has(off::XCR0)),
        // String I/O needs the scratch GPA; OUT needs RAX (bit 0 = IN, bit 2 = string).
        ec::IOIO => {
            if info1 & 4 != 0 {
                has(off::SW_SCRATCH)
            } else {
                info1 & 1 != 0 || has(off::RAX)
            }
        }
        ec::MSR => has(off::RCX) && (info1 == 0 || (has(off::RAX) && has(off::RDX))),
        ec::VMMCALL => has(off::RAX) && has(off::CPL),
        ec::MONITOR => has(off::RAX) && has(off::RCX) && has(off::RDX),
        ec::MWAIT => has(off::RAX) && has(off::RCX),
        ec::MMIO_READ | ec::MMIO_WRITE | ec::PSC => has(off::SW_SCRATCH),
        ec::AP_CREATION => info1 & 0xffff == 2 || has(off::RAX),
        ec::GUEST_REQUEST
        | ec::EXT_GUEST_REQUEST
        | ec::SNP_RUN_VMPL
        | ec::HV_FEATURES
        | ec::TERM_REQUEST
        | ec::UNSUPPORTED => true,
        _ => return Err(err::INVALID_EVENT),
    };
    if ok {
        Ok(code)
    } else {
        Err(err::MISSING_INPUT)
    }
}

/// RAX, RBX, RCX, RDX as KVM loads them: the GHCB's value if valid, else 0.
fn regs_in(g: &Ghcb) -> [u64; 4] {
    [off::RAX, off::RBX, off::RCX, off::RDX].map(|o| g.get_or_zero(o))
}

fn regs_out(g: &mut Ghcb, r: &[u64; 4]) {
    for (o, v) in [off::RAX, off::RBX, off::RCX, off::RDX].iter().zip(r) {
        g.set(*o, *v);
    }
}

fn dispatch(cx: &mut Ctx<'_>, x: Exiting, g: &mut Ghcb, code: u64) -> Action {
    let info1 = g.get_or_zero(off::SW_EXIT_INFO_1);
    let info2 = g.get_or_zero(off::SW_EXIT_INFO_2);
    let mut regs = regs_in(g);
    let ab_valid = g.valid(off::RAX) && g.valid(off::RBX);
    // The host's copy of the inputs; the answer is built in `g`.
    let inp = g.clone();
    g.clear_valid();
    g.set(off::SW_EXIT_INFO_1, 0);
    g.set(off::SW_EXIT_INFO_2, 0);
    let r: Result<Action, Result<u64, Fault>> = match code {
        ec::IOIO => ghcb_io::ioio(
            &inp,
            g,
            x.ghcb_gpa,
            &mut regs,
            (cx.host, cx.mem, cx.rmp, cx.dev),
        )
        .map(|()| Action::Resume),
        ec::MMIO_READ | ec::MMIO_WRITE => ghcb_io::mmio(
            &inp,
            g,
            x.ghcb_gpa,
            code == ec::MMIO_WRITE,
            (cx.host, cx.mem, cx.rmp, cx.dev),
        )
        .map(|()| Action::Resume),
        // CPUID from the model's CPU (XCR0 is not used: its leaf 0xD is fixed).
        ec::CPUID => {
            let out = crate::cpuid::cpuid(regs[0] as u32, regs[2] as u32);
            regs = [out[0], out[1], out[2], out[3]].map(u64::from);
            Ok(Action::Resume)
        }
        ec::MSR => msr(g, info1, &mut regs).map(|()| Action::Resume),
        ec::PSC => psc_exit(cx, x, &inp, g).map(|()| Action::Resume),
        ec::GUEST_REQUEST => guest_request(cx, g, info1, info2).map(|()| Action::Resume),
        ec::EXT_GUEST_REQUEST => {
            let certs = ab_valid.then_some((regs[0], regs[1]));
            ext_guest_request(cx, g, info1, info2, certs).map(|()| Action::Resume)
        }
        ec::AP_CREATION => ap_creation(cx.host, x, info1, info2, regs[0]),
        ec::SNP_RUN_VMPL => Ok(run_vmpl(cx.host, x, g, info1)),
        ec::HV_FEATURES => {
            g.set(off::SW_EXIT_INFO_2, cx.host.profile.hv_features);
            Ok(Action::Resume)
        }
        // GHCB spec "Termination Request": SW_EXITINFO1[3:0] reason set, [11:4] code.
        ec::TERM_REQUEST => Ok(Action::Terminate {
            set: (info1 & 0xf) as u8,
            code: ((info1 >> 4) & 0xff) as u8,
        }),
        ec::UNSUPPORTED => Err(Err(Fault::UnsupportedEvent)),
        _ => simple(code, &mut regs).map(|()| Action::Resume),
    };
    match r {
        Ok(a) => {
            regs_out(g, &regs);
            a
        }
        Err(Ok(reason)) => {
            answer_error(g, reason);
            Action::Resume
        }
        Err(Err(f)) => Action::Fatal(f),
    }
}

/// Exits with no data but registers: DR7, RDTSC(P), RDPMC, INVD, WBINVD, VMMCALL,
/// MONITOR, MWAIT.
fn simple(code: u64, regs: &mut [u64; 4]) -> ExitResult {
    match code {
        // KVM keeps DR7 per vCPU; the model answers the architectural reset value.
        ec::READ_DR7 => regs[0] = 0x400,
        // The model's TSC does not run; RDTSCP's TSC_AUX (RCX) is 0.
        ec::RDTSC | ec::RDTSCP => {
            regs[0] = 0;
            regs[3] = 0;
            if code == ec::RDTSCP {
                regs[2] = 0;
            }
        }
        ec::RDPMC => {
            regs[0] = 0;
            regs[3] = 0;
        }
        // KVM answers an unknown hypercall with -KVM_ENOSYS (1000).
        ec::VMMCALL => regs[0] = (-1000i64) as u64,
        _ => {}
    }
    Ok(())
}

/// MSR (SW_EXITINFO1 0 = RDMSR, 1 = WRMSR). The model's host knows no MSR: as KVM for
/// an MSR it refuses, the guest gets SW_EXITINFO1 = 1 and SW_EXITINFO2 = a #GP event
/// (vector 13, type exception, valid: `svm_complete_emulated_msr`).
fn msr(g: &mut Ghcb, _info1: u64, _regs: &mut [u64; 4]) -> ExitResult {
    g.set(off::SW_EXIT_INFO_1, 1);
    g.set(off::SW_EXIT_INFO_2, GP_EVENT);
    Ok(())
}

/// #GP as an event injection value: vector 13 | type 3 (exception) << 8 | valid (31).
pub const GP_EVENT: u64 = 13 | (3 << 8) | (1 << 31);

fn psc_exit(cx: &mut Ctx<'_>, x: Exiting, inp: &Ghcb, g: &mut Ghcb) -> ExitResult {
    let s = ghcb_io::scratch(inp, x.ghcb_gpa, PSC_BUFFER_LEN as u64).map_err(Ok)?;
    let mut buf = [0u8; PSC_BUFFER_LEN];
    ghcb_io::scratch_read(inp, s, cx.mem, cx.rmp, &mut buf).map_err(Err)?;
    let ret = psc::descriptor(cx.mem, cx.rmp, &mut buf);
    ghcb_io::scratch_write(g, s, cx.host, cx.mem, cx.rmp, &buf).map_err(Err)?;
    g.set(off::SW_EXIT_INFO_2, ret);
    Ok(())
}

/// SNP guest request (KVM `snp_handle_guest_req`): SW_EXITINFO1 the request page,
/// SW_EXITINFO2 the response page. A firmware error goes to the guest in SW_EXITINFO2
/// bits 31:0 (the VMM error bits 63:32 stay 0); an unreadable page fails KVM_RUN (-EIO).
fn guest_request(cx: &mut Ctx<'_>, g: &mut Ghcb, req: u64, resp: u64) -> ExitResult {
    let mut page = [0u8; 4096];
    read_guest(cx.mem, cx.rmp, req, &mut page).map_err(Err)?;
    let (out, fw_err) = match cx.psp.guest_request(&page) {
        Ok(r) => (r, 0),
        Err(e) => ([0u8; 4096], e),
    };
    cx.host
        .write_guest(cx.mem, cx.rmp, resp, &out)
        .map_err(Err)?;
    g.set(off::SW_EXIT_INFO_2, u64::from(fw_err));
    Ok(())
}

/// Extended guest request (KVM `snp_handle_ext_guest_req`): for MSG_REPORT_REQ, RAX
/// (certificate buffer GPA, page aligned) and RBX (its pages) must be valid; KVM has no
/// certificates and writes the 24-byte zero terminator of an empty table.
fn ext_guest_request(
    cx: &mut Ctx<'_>,
    g: &mut Ghcb,
    req: u64,
    resp: u64,
    certs: Option<(u64, u64)>,
) -> ExitResult {
    let mut t = [0u8; 1];
    read_guest(cx.mem, cx.rmp, req.wrapping_add(MSG_TYPE_OFFSET), &mut t).map_err(Err)?;
    if t[0] == MSG_REPORT_REQ {
        let (data_gpa, npages) = certs.ok_or(Ok(err::INVALID_INPUT))?;
        if !data_gpa.is_multiple_of(PAGE_SIZE) {
            return Err(Ok(err::INVALID_INPUT));
        }
        if npages != 0 {
            cx.host
                .write_guest(cx.mem, cx.rmp, data_gpa, &[0; 24])
                .map_err(Err)?;
        }
    }
    guest_request(cx, g, req, resp)
}

/// AP creation (KVM `sev_snp_ap_creation`; the VMPL field from the GHCB spec v2.03+):
/// SW_EXITINFO1 bits 15:0 the request (0 create on INIT, 1 create, 2 destroy), bits
/// 19:16 the VMPL, 63:32 the APIC ID; SW_EXITINFO2 the VMSA GPA; RAX the SEV features.
/// KVM answers every request `sev_snp_ap_creation` refuses (an APIC ID the VM does not
/// have, features other than the VMPL's, a bad VMSA address, an unknown request) with
/// SW_EXITINFO1 = 2 and SW_EXITINFO2 = GHCB_ERR_INVALID_INPUT, and the requester runs
/// on (`sev_handle_vmgexit`, case SVM_VMGEXIT_AP_CREATION, Linux 6.11 on); the model
/// does the same, also for the VMPL checks of the spec's VMPL field.
fn ap_creation(
    host: &mut Host,
    x: Exiting,
    info1: u64,
    info2: u64,
    rax: u64,
) -> Result<Action, Result<u64, Fault>> {
    let request = info1 & 0xffff;
    let vmpl = ((info1 >> 16) & 0xf) as u8;
    let apic_id = (info1 >> 32) as u32;
    let refuse = || Err(Ok(err::INVALID_INPUT));
    if host.vcpu(apic_id).is_none() {
        return refuse();
    }
    // Reserved bits 31:20, a VMPL above 3 or more privileged than the requester: a
    // VMPL must not get the host to run a VMSA at a level above its own (the RMP's
    // VMSA bit rule already binds the guest; this is the host's own check).
    if info1 & 0xfff0_0000 != 0 || vmpl > 3 || vmpl < x.vmpl {
        return refuse();
    }
    match request {
        0 | 1 => {
            if rax != host.profile.vmsa_features[usize::from(vmpl)] {
                return refuse();
            }
            // The 2 MiB check avoids the SNP erratum where a 2 MiB-aligned VMSA page
            // collides with a huge page's RMP entry (KVM comment in the same function).
            // KVM `page_address_valid`: page aligned and below MAXPHYADDR (52 on the
            // model's CPU, CPUID 0x80000008).
            if !info2.is_multiple_of(PAGE_SIZE)
                || info2.is_multiple_of(PAGE_SIZE_2M)
                || info2 >> 52 != 0
            {
                return refuse();
            }
            if let Some(c) = host.vcpu_mut(apic_id) {
                c.vmsa[usize::from(vmpl)] = Some(VmsaRef::Gpa(info2));
                c.waiting_for_reset = true;
            }
        }
        2 => {
            if let Some(c) = host.vcpu_mut(apic_id) {
                c.vmsa[usize::from(vmpl)] = None;
                c.waiting_for_reset = true;
            }
        }
        _ => return refuse(),
    }
    Ok(Action::Resume)
}

/// Run VMPL (GHCB spec v2.03+, "SNP Run VMPL"): SW_EXITINFO1 bits 31:0 the VMPL (the
/// planes KVM branch's `sev_snp_run_vmpl` reads `lower_32_bits`). On success the
/// requester later resumes with SW_EXITINFO1 = SW_EXITINFO2 = 0. A VMPL above 3 gets
/// SW_EXITINFO1 = 2, SW_EXITINFO2 = GHCB_ERR_INVALID_INPUT (as the planes branch); so does,
/// in the model, a VMPL without a VMSA on this vCPU and the requester's own VMPL (the
/// planes branch returns the same error for a missing plane and does not refuse the own
/// VMPL).
fn run_vmpl(host: &Host, x: Exiting, g: &mut Ghcb, info1: u64) -> Action {
    let vmpl = info1 & 0xffff_ffff;
    if !host.has_vmsa(x.vcpu, vmpl) || vmpl == u64::from(x.vmpl) {
        answer_error(g, err::INVALID_INPUT);
        return Action::Resume;
    }
    Action::RunVmpl(vmpl as u8)
}
