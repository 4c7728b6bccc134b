//! Fuzzes Vigil's check of the security processor's answer to a guest request (SNP
//! firmware ABI #56860, the guest message header and AES-256-GCM with VMPCK0), as it
//! arrives through the host, who can change any byte of it: a response that the real
//! key sealed for the right sequence number, with fuzzed edits at fuzzed offsets. Only
//! an unedited response (or one edited only where the ABI authenticates and uses
//! nothing) may be accepted; a refused one must leave the sequence number where it was,
//! so that the honest answer is still accepted after it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use monitor::guest_request::{seal, Channel};
use svsm_abi::guest_request::{AAD_OFFSET, HEADER_SIZE, MSG_REPORT_REQ, MSG_REPORT_RSP};

const KEY: [u8; 32] = [0x5c; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&n_payload, edits)) = data.split_first() else {
        return;
    };
    let mut ch = Channel::new(KEY);
    // Sequence number 1 for the request; the PSP answers with 2.
    if ch.request(MSG_REPORT_REQ, 1, &[0u8; 96]).is_err() {
        return;
    }
    let payload = vec![0xa5u8; usize::from(n_payload) * 4];
    let Ok(honest) = seal(&KEY, 2, MSG_REPORT_RSP, 1, 0, &payload) else {
        return;
    };
    let mut page = honest;
    // Edits: (offset lo, offset hi, xor byte) triples.
    for e in edits.chunks_exact(3) {
        let off = usize::from(u16::from_le_bytes([e[0], e[1]])) % 4096;
        page[off] ^= e[2];
    }
    // The bytes that matter: the 16-byte GCM tag, MSG_SEQNO (0x20..0x28: the IV, so
    // bound by the tag although not in the AAD), the authenticated header from
    // AAD_OFFSET on, and the payload. The rest of the tag field, the reserved bytes and
    // the page after the payload are not authenticated by the ABI, and not used. (The
    // first campaign's one crash was this harness leaving MSG_SEQNO out of this list;
    // monitor/tests/guest_request.rs keeps its input as a regression test.)
    let used = |p: &[u8; 4096]| {
        let mut v = p[..16].to_vec();
        v.extend_from_slice(&p[0x20..0x28]);
        v.extend_from_slice(&p[AAD_OFFSET..HEADER_SIZE + payload.len()]);
        v
    };
    let changed_used = used(&page) != used(&honest);
    match ch.response(&page, MSG_REPORT_RSP) {
        Ok((hdr, out)) => {
            assert!(!changed_used, "an edited response was accepted");
            assert_eq!(usize::from(hdr.msg_size), payload.len());
            assert_eq!(&out[HEADER_SIZE..HEADER_SIZE + payload.len()], &payload[..]);
        }
        Err(_) => {
            assert!(changed_used, "the honest response was refused");
            // A refusal must not advance the channel: the honest answer still opens.
            assert!(ch.response(&honest, MSG_REPORT_RSP).is_ok());
        }
    }
});
