//! The guest-request channel's check of the security processor's answer as the host
//! may edit it (SNP firmware ABI #56860: the message header, AES-256-GCM with VMPCK0,
//! the sequence number as the IV). Regression tests from the `guest_request_response`
//! fuzz target's first campaign: its input `[93, 36, 0, 38]` edits byte 0x24, inside
//! MSG_SEQNO, which the AAD does not cover but the IV does.

use monitor::guest_request::{seal, Channel, GuestRequestError};
use svsm_abi::guest_request::{MSG_REPORT_REQ, MSG_REPORT_RSP};

const KEY: [u8; 32] = [0x5c; 32];

fn channel_after_request() -> Channel {
    let mut ch = Channel::new(KEY);
    ch.request(MSG_REPORT_REQ, 1, &[0u8; 96])
        .expect("first request");
    ch
}

#[test]
fn an_edited_sequence_number_is_refused_and_the_channel_does_not_advance() {
    let honest = seal(&KEY, 2, MSG_REPORT_RSP, 1, 0, &[0xa5; 372]).expect("seal");
    let mut ch = channel_after_request();
    let mut edited = honest;
    edited[0x24] ^= 38; // the fuzz input's edit: MSG_SEQNO byte 4
    assert!(ch.response(&edited, MSG_REPORT_RSP).is_err());
    let (hdr, out) = ch
        .response(&honest, MSG_REPORT_RSP)
        .expect("the honest answer still opens after a refused one");
    assert_eq!(hdr.msg_seqno, 2);
    assert_eq!(&out[0x60..0x60 + 372], &[0xa5; 372][..]);
}

#[test]
fn a_replayed_answer_is_refused_by_its_sequence_number() {
    let honest = seal(&KEY, 2, MSG_REPORT_RSP, 1, 0, &[1; 32]).expect("seal");
    let mut ch = channel_after_request();
    ch.response(&honest, MSG_REPORT_RSP).expect("first answer");
    ch.request(MSG_REPORT_REQ, 1, &[0u8; 96])
        .expect("second request");
    assert_eq!(
        ch.response(&honest, MSG_REPORT_RSP).unwrap_err(),
        GuestRequestError::BadSequence
    );
}

#[test]
fn an_answer_sealed_with_another_key_fails_authentication() {
    let forged = seal(&[0x11; 32], 2, MSG_REPORT_RSP, 1, 0, &[1; 32]).expect("seal");
    let mut ch = channel_after_request();
    assert_eq!(
        ch.response(&forged, MSG_REPORT_RSP).unwrap_err(),
        GuestRequestError::AuthFailed
    );
}
