//! ID block interoperability with sev-snp-measure's `snp-create-id-block` (Python,
//! `cryptography`): its ID block bytes equal ours for the same inputs, its ID auth
//! structure parses with our layout, its signatures verify with our verifier, its key
//! digests equal ours, and the unsigned parts of the two ID auth structures are equal.
//! (ECDSA in Python uses random nonces, so signature bytes differ by design.)
//! Without the tool it fails under CI and prints "SKIPPED: ..." elsewhere (common/oracle.rs).
#![warn(clippy::too_many_lines)]

#[path = "common/oracle.rs"]
mod oracle;

use std::process::Command;

use base64::Engine;
use p384::ecdsa::SigningKey;
use p384::pkcs8::{EncodePrivateKey, LineEnding};
use vigil_igvm::sign::{id_auth_bytes, parse_id_auth, IdBlock, PubKey, SignedIdBlock};
use zerocopy::IntoBytes;

#[test]
fn snp_create_id_block_agrees() {
    if !Command::new("snp-create-id-block")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        oracle::missing(
            "snp_create_id_block_agrees",
            "snp-create-id-block",
            "pip install sev-snp-measure",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = SigningKey::from_slice(&[0x5e; 48]).unwrap();
    let author = SigningKey::from_slice(&[0x6f; 48]).unwrap();
    let idp = dir.path().join("id.pem");
    let ap = dir.path().join("author.pem");
    std::fs::write(&idp, id.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(&ap, author.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let ld: [u8; 48] = core::array::from_fn(|i| i as u8 * 3);
    let b64 = base64::engine::general_purpose::STANDARD;
    let o = Command::new("snp-create-id-block")
        .args([
            "--measurement",
            &b64.encode(ld),
            "--idkey",
            idp.to_str().unwrap(),
            "--authorkey",
            ap.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    let (blk, auth) = first.split_once(",id-auth=").unwrap();
    let blk = b64.decode(blk.trim_start_matches("id-block=")).unwrap();
    let auth = b64.decode(auth).unwrap();
    let id_hash = b64
        .decode(lines.next().unwrap().trim_start_matches("id_key_hash: "))
        .unwrap();
    let author_hash = b64
        .decode(lines.next().unwrap().trim_start_matches("author_key: "))
        .unwrap();

    // sev-snp-measure's defaults: zero IDs, version 1, SVN 0, policy 0x30000.
    let ours = IdBlock {
        ld,
        family_id: [0; 16],
        image_id: [0; 16],
        version: 1,
        guest_svn: 0,
        policy: 0x30000,
    };
    assert_eq!(blk, ours.as_bytes());
    let theirs = parse_id_auth(ours.clone(), &auth).unwrap();
    assert!(theirs.verify().is_empty(), "{:?}", theirs.verify());
    assert_eq!(theirs.id_key, PubKey::from_key(id.verifying_key()));
    assert_eq!(id_hash, PubKey::from_key(id.verifying_key()).digest());
    assert_eq!(
        author_hash,
        PubKey::from_key(author.verifying_key()).digest()
    );
    let mine = id_auth_bytes(&SignedIdBlock::sign(ours, &id, Some(&author)));
    for (a, b) in [(0, 0x40), (0x240, 0x680), (0x880, 0x1000)] {
        assert_eq!(
            mine[a..b],
            auth[a..b],
            "ID auth bytes {a:#x}..{b:#x} differ"
        );
    }
    // Their structure, re-serialized by us, is byte-identical.
    assert_eq!(id_auth_bytes(&theirs), auth);
}
