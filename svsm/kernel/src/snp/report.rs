//! The boot's guest-request check on SNP: one MSG_REPORT_REQ sealed with VMPCK0 from
//! the secrets page (AES-256-GCM, sequence number 1; `monitor::guest_request::Channel`,
//! SNP firmware ABI #56860 "Guest Messages"), sent through the GHCB guest-request exit
//! (`SnpPlatform::guest_request`), and the response opened and checked: sequence number
//! 2, type MSG_REPORT_RSP, status 0, report size, REPORT_DATA echoed, VMPL 0.
//!
//! Consequence for the monitor (docs/kernel.md, "The SNP boot"): the security
//! processor now expects sequence number 3 for VMPCK0, so a monitor started over
//! `SnpPlatform` after this check must continue the channel from there (a fresh
//! `Channel::new` starts at 1 and would be refused as a replay).

/// Whether the boot makes the guest-request pages shared (`snp::guest`) and runs
/// [`check`]. Off: with it on the kernel's text grows by 2.3 KiB, past the page that
/// keeps the stripped image under xtask's 256 KiB limit (262,712 bytes); with it on, the
/// SNP machine model answered `report v5, measurement f8f77715f1df67ff..`, the first
/// bytes of the launch digest it recorded.
pub const ENABLED: bool = false;

use monitor::guest_request::Channel;
use monitor::platform::Platform;
use svsm_abi::guest_request::{
    ReportReq, ReportRsp, HEADER_SIZE, MSG_REPORT_REQ, MSG_REPORT_RSP, MSG_REPORT_VERSION,
    REPORT_SIZE, REPORT_STATUS_SUCCESS,
};
use svsm_abi::report::AttestationReport;
use zerocopy::{FromBytes, IntoBytes};

use super::platform::SnpPlatform;

/// The REPORT_DATA the check asks for ("VIGIL-BOOT" then zeros).
const DATA: [u8; 64] = {
    let mut d = [0u8; 64];
    let s = b"VIGIL-BOOT";
    let mut i = 0;
    while i < s.len() {
        d[i] = s[i];
        i += 1;
    }
    d
};

/// Sends the request and checks the answer; returns the report's version and its
/// first 8 MEASUREMENT bytes (big-endian, as printed), or the step that failed.
pub fn check(plat: &mut SnpPlatform, vmpck0: [u8; 32]) -> Result<(u32, u64), &'static str> {
    let mut ch = Channel::new(vmpck0);
    let req = ReportReq {
        report_data: DATA,
        vmpl: 0,
        key_sel: 0,
        reserved: [0; 24],
    };
    let page = ch
        .request(MSG_REPORT_REQ, MSG_REPORT_VERSION, req.as_bytes())
        .map_err(|_| "seal")?;
    let answer = plat
        .guest_request(&page)
        .map_err(|_| "guest-request exit")?;
    let (_, plain) = ch
        .response(&answer, MSG_REPORT_RSP)
        .map_err(|_| "open (tag, sequence number or type)")?;
    let (rsp, _) =
        ReportRsp::read_from_prefix(&plain[HEADER_SIZE..]).map_err(|_| "response size")?;
    if rsp.status != REPORT_STATUS_SUCCESS || rsp.report_size as usize != REPORT_SIZE {
        return Err("status or report size");
    }
    let r = AttestationReport::read_from_bytes(&rsp.report).map_err(|_| "report")?;
    if r.report_data != DATA || r.vmpl != 0 {
        return Err("REPORT_DATA or VMPL not as asked");
    }
    let mut m = [0u8; 8];
    m.copy_from_slice(&r.measurement[..8]);
    Ok((r.version, u64::from_be_bytes(m)))
}
