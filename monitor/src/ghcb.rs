//! The GHCB protocol from the guest side: building requests in the GHCB page and
//! checking the host's answers. no_std; the `snp` backend and the sim share it.
//!
//! Attack reasoning: the GHCB is shared memory the host writes while Vigil may be
//! reading it. Vigil copies the answer page once (`answer` is that copy) and checks
//! only the copy. Every field the host returns is checked against the request: a page
//! state change may only move `cur_entry` forward, within the request, and must not
//! alter the entries; an error code ends in [`HostError::Refused`], a contradiction in
//! [`HostError::Inconsistent`], and the caller terminates.
use crate::addr::{Gpa, PageSize};
use crate::platform::{ApOp, HostError, PscOp, PscRequest};
use svsm_abi::ghcb::{
    ap_create, exit, offset, psc_op, Ghcb, PscDesc, PscEntry, PscHeader, PSC_MAX_ENTRIES,
    SHARED_BUFFER_OFFSET,
};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Builds a page-state-change GHCB for at most 253 requests (more are refused).
pub fn psc_request(ghcb_gpa: Gpa, req: &[PscRequest]) -> Option<Ghcb> {
    if req.is_empty() || req.len() > PSC_MAX_ENTRIES {
        return None;
    }
    let mut desc = PscDesc::new_zeroed();
    desc.header = PscHeader {
        cur_entry: 0,
        end_entry: (req.len() - 1) as u16,
        reserved: 0,
    };
    for (slot, r) in desc.entries.iter_mut().zip(req) {
        let op = match r.op {
            PscOp::Private => psc_op::PRIVATE,
            PscOp::Shared => psc_op::SHARED,
        };
        *slot = PscEntry::new(r.gpa.gfn(), op, r.size == PageSize::Size2M).0;
    }
    let mut g = Ghcb::new_zeroed_v2();
    g.shared_buffer.copy_from_slice(desc.as_bytes());
    set_exit(&mut g, exit::SNP_PSC, 0, 0);
    g.sw_scratch = ghcb_gpa.0 + SHARED_BUFFER_OFFSET;
    g.set_valid(offset::SW_SCRATCH);
    Some(g)
}

/// Progress of a page-state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscProgress {
    /// All entries done.
    Done,
    /// The host stopped at this entry; re-issue from there.
    Partial(u16),
}

/// Checks the host's answer to a page-state change (`sent` is the GHCB Vigil wrote).
pub fn check_psc_answer(sent: &Ghcb, answer: &[u8; 4096]) -> Result<PscProgress, HostError> {
    let a = Ghcb::read_from_bytes(answer).map_err(|_| HostError::Inconsistent("ghcb"))?;
    if a.sw_exit_info_2 != 0 {
        return Err(HostError::Refused(a.sw_exit_info_2));
    }
    let s = PscDesc::read_from_bytes(&sent.shared_buffer)
        .map_err(|_| HostError::Inconsistent("psc"))?;
    let d =
        PscDesc::read_from_bytes(&a.shared_buffer).map_err(|_| HostError::Inconsistent("psc"))?;
    if d.header.end_entry != s.header.end_entry {
        return Err(HostError::Inconsistent(
            "psc end_entry (shared buffer offset 0x2)",
        ));
    }
    let n = s.header.end_entry as usize + 1;
    for i in 0..n {
        // The host may record progress inside a 2 MiB entry in cur_page (bits 11:0);
        // nothing else of an entry may change.
        if d.entries[i] & !0xfff != s.entries[i] & !0xfff {
            return Err(HostError::Inconsistent(
                "psc entry (shared buffer offset 0x8 + 8 i)",
            ));
        }
    }
    if d.header.cur_entry < s.header.cur_entry || d.header.cur_entry as usize > n {
        return Err(HostError::Inconsistent(
            "psc cur_entry (shared buffer offset 0x0)",
        ));
    }
    if d.header.cur_entry as usize == n {
        Ok(PscProgress::Done)
    } else if d.header.cur_entry == s.header.cur_entry {
        // No progress at all: the host declines to do the work.
        Err(HostError::Refused(0))
    } else {
        Ok(PscProgress::Partial(d.header.cur_entry))
    }
}

/// Re-issues a partial page-state change from entry `from`.
pub fn psc_continue(sent: &mut Ghcb, from: u16) {
    sent.shared_buffer[0..2].copy_from_slice(&from.to_le_bytes());
}

fn set_exit(g: &mut Ghcb, code: u64, info1: u64, info2: u64) {
    g.sw_exit_code = code;
    g.sw_exit_info_1 = info1;
    g.sw_exit_info_2 = info2;
    g.set_valid(offset::SW_EXIT_CODE);
    g.set_valid(offset::SW_EXIT_INFO_1);
    g.set_valid(offset::SW_EXIT_INFO_2);
}

/// Builds an AP-creation GHCB: SW_EXITINFO1 = APIC ID (63:32) | VMPL of the VMSA
/// (19:16) | request (15:0), as Linux's `vmgexit_ap_control` does. Attack reasoning: a
/// VMPL field of 0 would have a real host install the VMSA as the vCPU's VMPL0 VMSA.
pub fn ap_create_request(
    op: ApOp,
    apic_id: u32,
    vmpl: crate::addr::Vmpl,
    vmsa: Gpa,
    sev_features: u64,
) -> Ghcb {
    let mut g = Ghcb::new_zeroed_v2();
    let kind = match op {
        ApOp::Create => ap_create::CREATE,
        ApOp::Destroy => ap_create::DESTROY,
    };
    set_exit(
        &mut g,
        exit::SNP_AP_CREATION,
        ap_create::info1(apic_id, vmpl.get(), kind),
        vmsa.0,
    );
    g.rax = sev_features;
    g.set_valid(offset::RAX);
    g
}

/// Builds a guest-request GHCB (request and response pages are shared pages).
pub fn guest_request_request(req_page: Gpa, resp_page: Gpa) -> Ghcb {
    let mut g = Ghcb::new_zeroed_v2();
    set_exit(&mut g, exit::SNP_GUEST_REQUEST, req_page.0, resp_page.0);
    g
}

/// Checks the answer to a request whose result is only SW_EXITINFO1/2 (AP creation,
/// guest request): SW_EXITINFO1 bits 31:0 = 0 and SW_EXITINFO2 = 0 mean success.
pub fn check_simple_answer(answer: &[u8; 4096]) -> Result<(), HostError> {
    let a = Ghcb::read_from_bytes(answer).map_err(|_| HostError::Inconsistent("ghcb"))?;
    if a.sw_exit_info_1 & 0xffff_ffff != 0 {
        return Err(HostError::Refused(a.sw_exit_info_1));
    }
    if a.sw_exit_info_2 != 0 {
        return Err(HostError::Refused(a.sw_exit_info_2));
    }
    Ok(())
}
