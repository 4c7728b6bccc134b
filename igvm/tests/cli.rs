//! The `vigil-igvm` binary end to end: build -> inspect -> lint -> refs -> qemu-args ->
//! sign (one step and two steps) -> verify, exit codes (0 ok, 1 bad input or failed
//! check, 2 usage, 3 environment) and errors that name the field and offset.
#![warn(clippy::too_many_lines)]

mod common;

use std::path::Path;
use std::process::Command;

use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-igvm"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = bin().args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernel.elf"), common::test_kernel()).unwrap();
        std::fs::write(dir.path().join("guest.elf"), common::test_guest()).unwrap();
        std::fs::write(dir.path().join("policy.json"), b"{\"v\":1}").unwrap();
        let s = Self { dir };
        let (rc, _, err) = run(&[
            "build",
            "--kernel",
            p(&s.path("kernel.elf")),
            "--firmware",
            p(&s.path("guest.elf")),
            "--vcpus",
            "2",
            "--policy",
            p(&s.path("policy.json")),
            "-o",
            p(&s.path("v.igvm")),
        ]);
        assert_eq!(rc, 0, "{err}");
        s
    }
    fn path(&self, f: &str) -> std::path::PathBuf {
        self.dir.path().join(f)
    }
}

#[test]
fn build_inspect_lint_refs_qemu_args() {
    let s = Setup::new();
    let v = s.path("v.igvm");
    let (rc, out, _) = run(&["inspect", p(&v), "--json"]);
    assert_eq!(rc, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["boot_params"]["vcpus"], 2);
    assert_eq!(j["vp_contexts"][0]["gpa"], "0xfffffffff000");
    let (rc, out, _) = run(&["lint", p(&v)]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("ok: no errors"));
    // refs: the agreed schema, and the digest equals `measure` with the same rules.
    let (rc, out, err) = run(&["refs", p(&v), "--vcpu-type", "EPYC-Milan"]);
    assert_eq!(rc, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in [
        "schema",
        "launch_digest",
        "policy",
        "sev_features",
        "vcpus",
        "guest_vmpl",
        "monitor_policy_digest",
        "platform",
        "igvm_sha256",
    ] {
        assert!(!r[k].is_null(), "refs lacks {k}");
    }
    assert_eq!(r["schema"], "vigil-refs/1");
    assert_eq!(r["policy"], "0x30000");
    assert_eq!(r["sev_features"], "0x1");
    assert_eq!(
        (r["vcpus"].as_u64(), r["guest_vmpl"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["platform"], "snp");
    assert_eq!(
        r["monitor_policy_digest"],
        hex::encode(vigil_igvm::builder::policy_digest(b"{\"v\":1}"))
    );
    use sha2::Digest;
    assert_eq!(
        r["igvm_sha256"],
        hex::encode(sha2::Sha256::digest(std::fs::read(&v).unwrap()))
    );
    let (rc, m, _) = run(&[
        "measure",
        p(&v),
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
    ]);
    assert_eq!(rc, 0);
    assert_eq!(r["launch_digest"].as_str().unwrap(), m.trim());
    assert_eq!(m.trim().len(), 96);
    // The per-page log ends with the digest.
    let (rc, out, _) = run(&[
        "measure",
        p(&v),
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
        "--log",
        "json",
    ]);
    assert_eq!(rc, 0);
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    let log = l["log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["digest"], m.trim());
    assert_eq!(log.last().unwrap()["page_type"], "VMSA");
    // qemu-args.
    let (rc, out, _) = run(&["qemu-args", p(&v), "--platform", "snp", "--json"]);
    assert_eq!(rc, 0);
    let a: Vec<String> = serde_json::from_str(&out).unwrap();
    assert!(a.contains(&"-smp".to_string()) && a.contains(&"2".to_string()));
    assert!(a
        .iter()
        .any(|x| x.starts_with("sev-snp-guest,id=sev0") && x.contains("policy=0x30000")));
    assert!(a
        .iter()
        .any(|x| x == &format!("igvm-cfg,id=igvm0,file={}", p(&v))));
    let (rc, out, _) = run(&["qemu-args", p(&v), "--platform", "native"]);
    assert_eq!(rc, 0);
    assert!(out.contains("-accel tcg -cpu max") && !out.contains("sev-snp-guest"));
}

#[test]
fn sign_one_step_verify_and_tamper() {
    let s = Setup::new();
    let v = s.path("v.igvm");
    let id = SigningKey::from_slice(&[0x11; 48]).unwrap();
    let author = SigningKey::from_slice(&[0x22; 48]).unwrap();
    std::fs::write(
        s.path("id.pem"),
        id.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(s.path("author.der"), id_der(&author)).unwrap();
    let signed = s.path("signed.igvm");
    let (rc, out, err) = run(&[
        "sign",
        p(&v),
        "--id-key",
        p(&s.path("id.pem")),
        "--author-key",
        p(&s.path("author.der")),
        "--family-id",
        "00112233",
        "--guest-svn",
        "7",
        "-o",
        p(&signed),
        "--qemu-options",
    ]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("id-block=") && out.contains(",id-auth="));
    let (rc, out, err) = run(&["sign", p(&signed), "--verify"]);
    assert_eq!(rc, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["guest_svn"], 7);
    assert!(j["family_id"].as_str().unwrap().starts_with("00112233"));
    assert_eq!(
        j["id_key_digest"],
        hex::encode(vigil_igvm::sign::PubKey::from_key(id.verifying_key()).digest())
    );
    // Signing is deterministic: the same inputs give the same file.
    let again = s.path("again.igvm");
    let (rc, _, _) = run(&[
        "sign",
        p(&v),
        "--id-key",
        p(&s.path("id.pem")),
        "--author-key",
        p(&s.path("author.der")),
        "--family-id",
        "00112233",
        "--guest-svn",
        "7",
        "-o",
        p(&again),
    ]);
    assert_eq!(rc, 0);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&signed).unwrap()
    );
    // Verified under other loader rules (3 vCPUs) the digest no longer matches: exit 1.
    let (rc, _, err) = run(&["sign", p(&signed), "--verify", "--vcpus", "3"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("launch digest"), "{err}");
    // An unsigned file has no block: bad input, exit 1.
    let (rc, _, err) = run(&["sign", p(&v), "--verify"]);
    assert_eq!(rc, 1);
    assert!(err.contains("no SNP ID block"));
    // A file whose signature bytes were changed fails verification (exit 1 or a parse error).
    let mut bytes = std::fs::read(&signed).unwrap();
    let i = find(
        &bytes,
        &vigil_igvm::sign::PubKey::from_key(id.verifying_key()).qx[..16],
    )
    .unwrap();
    bytes[i] ^= 1;
    std::fs::write(s.path("bad.igvm"), &bytes).unwrap();
    let (rc, _, err) = run(&["sign", p(&s.path("bad.igvm")), "--verify"]);
    assert_ne!(rc, 0, "tampered ID key accepted");
    let _ = err;
}

fn id_der(k: &SigningKey) -> Vec<u8> {
    k.to_pkcs8_der().unwrap().as_bytes().to_vec()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[test]
fn sign_two_step_with_external_signatures() {
    let s = Setup::new();
    let v = s.path("v.igvm");
    let id = SigningKey::from_slice(&[0x33; 48]).unwrap();
    let author = SigningKey::from_slice(&[0x44; 48]).unwrap();
    let pem = |k: &SigningKey| k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    std::fs::write(s.path("id.pub"), pem(&id)).unwrap();
    std::fs::write(s.path("author.pub"), pem(&author)).unwrap();
    let tbs = s.path("tbs");
    let (rc, out, err) = run(&[
        "sign",
        p(&v),
        "--emit-tbs",
        p(&tbs),
        "--id-pubkey",
        p(&s.path("id.pub")),
        "--image-id",
        "ab",
    ]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out.trim().len(), 96);
    // "External" signer: the bytes are signed elsewhere.
    let block = std::fs::read(tbs.join("id_block.bin")).unwrap();
    assert_eq!(block.len(), 96);
    assert_eq!(hex::encode(&block[..48]), out.trim());
    let key = std::fs::read(tbs.join("id_key.bin")).unwrap();
    assert_eq!(key.len(), 0x404);
    let s1: Signature = id.sign(&block);
    let s2: Signature = author.sign(&key);
    std::fs::write(s.path("id.sig"), s1.to_der().as_bytes()).unwrap();
    std::fs::write(s.path("author.sig"), s2.to_bytes()).unwrap(); // raw r||s
    let out_file = s.path("signed.igvm");
    let import = |id_sig: &str| {
        run(&[
            "sign",
            p(&v),
            "--id-pubkey",
            p(&s.path("id.pub")),
            "--id-sig",
            id_sig,
            "--author-pubkey",
            p(&s.path("author.pub")),
            "--author-sig",
            p(&s.path("author.sig")),
            "--image-id",
            "ab",
            "-o",
            p(&out_file),
        ])
    };
    let (rc, _, err) = import(p(&s.path("id.sig")));
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = run(&["sign", p(&out_file), "--verify"]);
    assert_eq!(rc, 0, "{err}");
    // A signature over other bytes is refused at import.
    let wrong: Signature = id.sign(b"something else");
    std::fs::write(s.path("wrong.sig"), wrong.to_der().as_bytes()).unwrap();
    let (rc, _, err) = import(p(&s.path("wrong.sig")));
    assert_eq!(rc, 1);
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn malformed_inputs_exit_1_with_field_and_offset() {
    let s = Setup::new();
    let mut b = std::fs::read(s.path("v.igvm")).unwrap();
    b[16] ^= 0xff; // total_file_size
    std::fs::write(s.path("bad.igvm"), &b).unwrap();
    let (rc, _, err) = run(&["inspect", p(&s.path("bad.igvm"))]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("IGVM fixed header: total_file_size at offset 0x10"),
        "{err}"
    );
    let mut b = std::fs::read(s.path("v.igvm")).unwrap();
    b[20] ^= 0xff; // checksum
    std::fs::write(s.path("bad.igvm"), &b).unwrap();
    let (rc, _, err) = run(&["measure", p(&s.path("bad.igvm"))]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("IGVM fixed header: checksum at offset 0x14"),
        "{err}"
    );
    // OVMF with a broken footer entry.
    let mut o = common::fixture("ovmf_AmdSev_suffix.bin");
    let hdr = 4096 - 32 - 18 - 18;
    o[hdr] = 2;
    o[hdr + 1] = 0;
    std::fs::write(s.path("bad.fd"), &o).unwrap();
    let (rc, _, err) = run(&[
        "measure",
        "--mode",
        "snp",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        p(&s.path("bad.fd")),
    ]);
    assert_eq!(rc, 1);
    assert!(
        err.contains(&format!(
            "OVMF footer table: entry at offset {hdr:#x}: length 0x2 < 18"
        )),
        "{err}"
    );
    // Usage errors.
    let (rc, _, err) = run(&["measure", "--mode", "snp", "--ovmf", p(&s.path("bad.fd"))]);
    assert_eq!(rc, 2);
    assert!(err.contains("missing --vcpus"), "{err}");
    let (rc, _, _) = run(&["measure", "--mode", "bogus"]);
    assert_eq!(rc, 2);
}

#[test]
fn lint_reports_qemu_refusals_with_exit_1() {
    // Re-sign the built file's VMSA at a wrong GPA with a field QEMU does not pass on.
    use igvm::IgvmDirectiveHeader;
    let s = Setup::new();
    let (f, _) = vigil_igvm::reader::parse(&std::fs::read(s.path("v.igvm")).unwrap()).unwrap();
    let mut dirs = f.directives().to_vec();
    for d in dirs.iter_mut() {
        if let IgvmDirectiveHeader::SnpVpContext { gpa, vmsa, .. } = d {
            *gpa = 0x9000;
            let mut v = vigil_igvm::igvm_measure::vmsa_of(vmsa).unwrap();
            v.lstar = 0xdead_beef;
            **vmsa =
                zerocopy::FromBytes::read_from_bytes(zerocopy::IntoBytes::as_bytes(&v)).unwrap();
        }
    }
    dirs.push(IgvmDirectiveHeader::PageData {
        gpa: 0x100000,
        compatibility_mask: 1,
        flags: Default::default(),
        data_type: igvm_defs::IgvmPageDataType::NORMAL,
        data: vec![],
    });
    for k in 0..3u64 {
        dirs.push(IgvmDirectiveHeader::PageData {
            gpa: 0x2000_0000 + k * 4096,
            compatibility_mask: 3,
            flags: Default::default(),
            data_type: igvm_defs::IgvmPageDataType::NORMAL,
            data: vec![1; 4096],
        });
    }
    let nf = igvm::IgvmFile::new(
        igvm::IgvmRevision::V1,
        f.platforms().to_vec(),
        f.initializations().to_vec(),
        dirs,
    )
    .unwrap();
    let mut out = Vec::new();
    nf.serialize(&mut out).unwrap();
    std::fs::write(s.path("l.igvm"), &out).unwrap();
    let (rc, out, _) = run(&["lint", p(&s.path("l.igvm")), "--json"]);
    assert_eq!(rc, 1);
    let findings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let codes: Vec<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"vmsa-gpa"), "{codes:?}");
    assert!(codes.contains(&"vmsa-whitelist"), "{codes:?}");
    assert!(codes.contains(&"overlap"), "{codes:?}");
    // The extra page comes after the VMSA: KVM and the igvm crate would measure differently.
    assert!(codes.contains(&"vmsa-order"), "{codes:?}");
    // Three pages outside REQUIRED_MEMORY for two platforms: one warning for the run.
    let outside: Vec<_> = findings
        .iter()
        .filter(|f| f["code"] == "outside-required-memory")
        .collect();
    assert_eq!(outside.len(), 1, "{outside:?}");
    assert!(outside[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("3 page(s) from 0x20000000"));
    let wl = findings
        .iter()
        .find(|f| f["code"] == "vmsa-whitelist")
        .unwrap();
    assert!(wl["message"].as_str().unwrap().contains("0x208"), "{wl}");
    assert!(wl["offset"].as_str().unwrap().starts_with("0x"));
}
