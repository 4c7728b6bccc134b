//! SVSM attestation protocol (1): ATTEST_SERVICES and ATTEST_SINGLE_SERVICE.
//!
//! The manifest holds one service, Vigil's, whose data binds the event log
//! (`VigilServiceData`: record count and chain head). REPORT_DATA =
//! SHA-512(nonce || manifest); the report is requested at VMPL0 through the
//! guest-request channel with VMPCK0, so that a guest cannot forge a report that looks
//! like Vigil's (it holds no VMPCK0 and can only ask for reports at its own VMPL).
use super::core::FATAL_RESULT;
use super::{range_to_code, Ret};
use crate::addr::Gpa;
use crate::event_log::Caller;
use crate::pages::PageState;
use crate::platform::{Platform, TermReason};
use crate::Monitor;
use alloc::vec;
use alloc::vec::Vec;
use svsm_abi::attest_protocol::{
    report_data, write_manifest, AttestServicesRequest, AttestSingleServiceRequest,
    VigilServiceData, ATTEST_SERVICES, ATTEST_SINGLE_SERVICE, VIGIL_SERVICE_DATA_VERSION,
    VIGIL_SERVICE_GUID,
};
use svsm_abi::calling_area::SvsmRegs;
use svsm_abi::core_protocol::result;
use svsm_abi::event_log::{kind, AttestPayload};
use svsm_abi::guest_request::{
    ReportReq, ReportRsp, HEADER_SIZE, MSG_REPORT_REQ, MSG_REPORT_RSP, MSG_REPORT_VERSION,
    REPORT_SIZE, REPORT_STATUS_SUCCESS,
};
use zerocopy::{FromBytes, IntoBytes};

/// Offset of REPORT_DATA in a report.
const REPORT_DATA_OFFSET: usize = 0x50;
/// Offset of VMPL in a report.
const REPORT_VMPL_OFFSET: usize = 0x30;

pub(crate) fn handle<P: Platform>(
    m: &mut Monitor<P>,
    caller: Caller,
    c: u32,
    regs: &mut SvsmRegs,
) -> Option<Ret> {
    match c {
        ATTEST_SERVICES | ATTEST_SINGLE_SERVICE => Some(attest(m, caller, c, regs)),
        _ => None,
    }
}

/// Reads `len` bytes of guest memory the guest owns (validated, not Vigil's).
fn copy_in<P: Platform>(m: &mut Monitor<P>, gpa: u64, len: usize) -> Result<Vec<u8>, u64> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    m.pages
        .check_range(Gpa(gpa), len as u64, PageState::Validated)
        .map_err(range_to_code)?;
    if super::core::overlaps_caa_head(m, Gpa(gpa), len as u64) {
        return Err(result::ERR_INVALID_ADDRESS);
    }
    m.p.read(Gpa(gpa), &mut buf)
        .map_err(|_| result::ERR_INVALID_ADDRESS)?;
    Ok(buf)
}

fn attest<P: Platform>(m: &mut Monitor<P>, caller: Caller, c: u32, regs: &mut SvsmRegs) -> Ret {
    let mut payload = AttestPayload {
        call: c,
        nonce_size: 0,
        service_guid: [0; 16],
        report_data: [0; 64],
    };
    let ret = attest_inner(m, c, regs, &mut payload);
    let code = match ret {
        Ret::Code(x) => x,
        Ret::Fatal(_) => FATAL_RESULT,
    };
    m.log.append(kind::ATTEST, caller, code, &payload);
    ret
}

fn attest_inner<P: Platform>(
    m: &mut Monitor<P>,
    c: u32,
    regs: &mut SvsmRegs,
    payload: &mut AttestPayload,
) -> Ret {
    // Copy the request in once.
    let req_len = if c == ATTEST_SINGLE_SERVICE {
        core::mem::size_of::<AttestSingleServiceRequest>()
    } else {
        core::mem::size_of::<AttestServicesRequest>()
    };
    // Section 5: a misaligned address is INVALID_PARAMETER.
    if !regs.rcx.is_multiple_of(8) {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let raw = match copy_in(m, regs.rcx, req_len) {
        Ok(r) => r,
        Err(code) => return Ret::Code(code),
    };
    let Ok((req, _)) = AttestServicesRequest::read_from_prefix(&raw) else {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    };
    payload.nonce_size = req.nonce_size as u32;
    if req.nonce_size > m.policy.max_nonce {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    // *Vigil*: a nonce that overlaps the request it is named in is refused, so that no
    // guest byte is read twice in one call (invariant 4: the request was copied in, its
    // bytes are not read again as nonce).
    let (n0, n1) = (
        req.nonce_gpa,
        req.nonce_gpa.saturating_add(req.nonce_size as u64),
    );
    if req.nonce_size != 0 && n0 < regs.rcx.saturating_add(req_len as u64) && regs.rcx < n1 {
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    let nonce = match copy_in(m, req.nonce_gpa, req.nonce_size as usize) {
        Ok(n) => n,
        Err(code) => return Ret::Code(code),
    };

    // The Vigil service's data: the log as it stands before this call's own record.
    let data = VigilServiceData {
        version: VIGIL_SERVICE_DATA_VERSION,
        guest_vmpl: m.guest_vmpl.get() as u32,
        record_count: m.log.count(),
        log_head: m.log.head(),
    };
    let manifest: Vec<u8> = if c == ATTEST_SINGLE_SERVICE {
        let Ok((single, _)) = AttestSingleServiceRequest::read_from_prefix(&raw) else {
            return Ret::Code(result::ERR_INVALID_ADDRESS);
        };
        payload.service_guid = single.service_guid;
        if single.service_guid != VIGIL_SERVICE_GUID {
            return Ret::Code(result::ERR_UNSUPPORTED_PROTOCOL);
        }
        if single.manifest_version > 1 {
            return Ret::Code(result::ERR_INVALID_PARAMETER);
        }
        // A single service's manifest is that service's own data.
        data.as_bytes().to_vec()
    } else {
        let mut out = vec![0u8; 24 + 24 + 64];
        match write_manifest(&[(VIGIL_SERVICE_GUID, data.as_bytes())], &mut out) {
            Ok(n) => out.truncate(n),
            Err(_) => return Ret::Code(result::ERR_INVALID_PARAMETER),
        }
        out
    };

    // Size negotiation: a buffer that is too small gets the sizes needed, nothing else.
    let certs_len = 0u64;
    if (req.manifest_size as usize) < manifest.len()
        || (req.report_size as usize) < REPORT_SIZE
        || (req.certificates_gpa != 0 && (req.certificates_size as u64) < certs_len)
    {
        regs.rcx = manifest.len() as u64;
        regs.rdx = certs_len;
        regs.r8 = REPORT_SIZE as u64;
        return Ret::Code(result::ERR_INVALID_PARAMETER);
    }
    // The output buffers must be the guest's own memory.
    for (gpa, len) in [
        (req.report_gpa, REPORT_SIZE as u64),
        (req.manifest_gpa, manifest.len() as u64),
    ] {
        if let Err(e) = m.pages.check_range(Gpa(gpa), len, PageState::Validated) {
            return Ret::Code(range_to_code(e));
        }
    }

    let rd = report_data(&nonce, &manifest);
    payload.report_data = rd;
    let report = match request_report(m, &rd) {
        Ok(r) => r,
        Err(reason) => return Ret::Fatal(reason),
    };
    if m.p.write(Gpa(req.report_gpa), &report).is_err()
        || m.p.write(Gpa(req.manifest_gpa), &manifest).is_err()
    {
        return Ret::Code(result::ERR_INVALID_ADDRESS);
    }
    regs.rcx = manifest.len() as u64;
    regs.rdx = certs_len;
    regs.r8 = REPORT_SIZE as u64;
    Ret::Code(result::SUCCESS)
}

/// Asks the security processor for a VMPL0 report over `rd` and checks the answer.
/// Attack: the host relays the messages; it can drop, replay or alter them, or the
/// response may carry a report for other data or another VMPL. Every such answer ends
/// the VM with VMPCK0 wiped (see `guest_request`).
pub(crate) fn request_report<P: Platform>(
    m: &mut Monitor<P>,
    rd: &[u8; 64],
) -> Result<[u8; REPORT_SIZE], TermReason> {
    let req = ReportReq {
        report_data: *rd,
        vmpl: 0,
        key_sel: 0,
        reserved: [0; 24],
    };
    let page = m
        .channel
        .request(MSG_REPORT_REQ, MSG_REPORT_VERSION, req.as_bytes())
        .map_err(|_| TermReason::GuestRequestFailed)?;
    let answer = match m.p.guest_request(&page) {
        Ok(a) => a,
        Err(_) => return Err(TermReason::HostRefused),
    };
    let (hdr, plain) = m
        .channel
        .response(&answer, MSG_REPORT_RSP)
        .map_err(|_| TermReason::GuestRequestFailed)?;
    if (hdr.msg_size as usize) < core::mem::size_of::<ReportRsp>() {
        return Err(TermReason::GuestRequestFailed);
    }
    let Ok((rsp, _)) = ReportRsp::read_from_prefix(&plain[HEADER_SIZE..]) else {
        return Err(TermReason::GuestRequestFailed);
    };
    if rsp.status != REPORT_STATUS_SUCCESS || rsp.report_size as usize != REPORT_SIZE {
        return Err(TermReason::GuestRequestFailed);
    }
    let r = rsp.report;
    if r[REPORT_DATA_OFFSET..REPORT_DATA_OFFSET + 64] != rd[..]
        || r[REPORT_VMPL_OFFSET..REPORT_VMPL_OFFSET + 4] != [0; 4]
    {
        return Err(TermReason::GuestRequestFailed);
    }
    Ok(r)
}
