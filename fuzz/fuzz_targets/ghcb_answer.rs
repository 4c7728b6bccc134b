//! Fuzzes the checks of the host's answers: an arbitrary GHCB page as the answer to a
//! page-state change, to AP creation and to a guest request, and an arbitrary page as
//! the security processor's encrypted response. None may panic; a page-state answer
//! accepted as progress must stay within the request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use monitor::addr::{Gpa, PageSize};
use monitor::ghcb::{check_psc_answer, check_simple_answer, psc_request, PscProgress};
use monitor::guest_request::Channel;
use monitor::platform::{PscOp, PscRequest};

fuzz_target!(|data: &[u8]| {
    let mut page = [0u8; 4096];
    let n = data.len().min(4096);
    page[..n].copy_from_slice(&data[..n]);
    let req: Vec<PscRequest> = (0..(1 + data.first().copied().unwrap_or(0) as u64 % 253))
        .map(|i| PscRequest { gpa: Gpa(i << 12), size: PageSize::Size4K, op: PscOp::Private })
        .collect();
    let sent = psc_request(Gpa(0x10_0000), &req).expect("1..=253 entries");
    if let Ok(PscProgress::Partial(k)) = check_psc_answer(&sent, &page) {
        assert!((k as usize) < req.len() && k > 0);
    }
    let _ = check_simple_answer(&page);
    let mut ch = Channel::new([0xa0; 32]);
    let _ = ch.request(svsm_abi::guest_request::MSG_REPORT_REQ, 1, &[0u8; 96]);
    let _ = ch.response(&page, svsm_abi::guest_request::MSG_REPORT_RSP);
});
