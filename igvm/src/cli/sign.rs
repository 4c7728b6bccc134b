//! `vigil-igvm sign`: one step with keys, two steps with external signatures, or
//! `--verify`. The three flows take disjoint flags; clap refuses a mix (a flag of one flow
//! given to another would be silently ignored).

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use vigil_igvm::limits;
use vigil_igvm::sign::{self, IdFields, SignedIdBlock};
use vigil_igvm::Error;

use super::output::{self, Fail};
use super::{parse_u64, LoaderArgs};

pub const SIGN_HELP: &str = "\
Keys are P-384, PEM (PKCS#8 or SEC1) or PKCS#8 DER. Signatures are deterministic (RFC 6979).

One step:
  vigil-igvm sign vigil.igvm --id-key id.pem --author-key author.pem \\
      --family-id 00112233445566778899aabbccddeeff --guest-svn 3 -o signed.igvm
Two steps (keys kept elsewhere, e.g. in an HSM):
  vigil-igvm sign vigil.igvm --emit-tbs tbs/ --id-pubkey id.pub.pem
      (writes tbs/id_block.bin to sign with the ID key, tbs/id_key.bin to sign with
       the author key; ECDSA P-384 with SHA-384)
  vigil-igvm sign vigil.igvm --id-pubkey id.pub.pem --id-sig id.sig \\
      --author-pubkey author.pub.pem --author-sig author.sig -o signed.igvm
      (signatures DER or raw r||s; the same ID fields and loader flags as in step 1)
Verify:
  vigil-igvm sign signed.igvm --verify

Exit codes: 0 signed or verified, 1 the file, a key or a signature is bad (or does not
verify), 2 usage, 3 a file cannot be read or written.";

/// Flags of the signing flows, refused with --verify.
const SIGNING: [&str; 13] = [
    "output",
    "id_key",
    "author_key",
    "emit_tbs",
    "id_pubkey",
    "id_sig",
    "author_pubkey",
    "author_sig",
    "family_id",
    "image_id",
    "guest_svn",
    "id_version",
    "qemu_options",
];

#[derive(Args)]
pub struct SignArgs {
    /// IGVM file.
    igvm: PathBuf,
    /// Output file.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// ID private key (P-384).
    #[arg(long, conflicts_with_all = ["id_pubkey", "id_sig", "author_pubkey", "author_sig", "emit_tbs"])]
    id_key: Option<PathBuf>,
    /// Author private key (P-384), optional (with --id-key).
    #[arg(long, requires = "id_key")]
    author_key: Option<PathBuf>,
    /// Two-step flow, step 1: write the bytes to sign into this directory.
    #[arg(long, conflicts_with_all = ["id_sig", "author_pubkey", "author_sig", "output", "qemu_options"])]
    emit_tbs: Option<PathBuf>,
    /// Two-step flow: ID public key (PEM/DER SPKI).
    #[arg(long)]
    id_pubkey: Option<PathBuf>,
    /// Two-step flow, step 2: signature of id_block.bin by the ID key (DER or r||s).
    #[arg(long, requires = "id_pubkey")]
    id_sig: Option<PathBuf>,
    /// Two-step flow: author public key (with --author-sig).
    #[arg(long, requires_all = ["author_sig", "id_sig"])]
    author_pubkey: Option<PathBuf>,
    /// Two-step flow, step 2: signature of id_key.bin by the author key.
    #[arg(long, requires = "author_pubkey")]
    author_sig: Option<PathBuf>,
    /// Family ID (up to 32 hex digits).
    #[arg(long)]
    family_id: Option<String>,
    /// Image ID (up to 32 hex digits).
    #[arg(long)]
    image_id: Option<String>,
    /// Guest SVN.
    #[arg(long)]
    guest_svn: Option<u32>,
    /// ID block version field (default 1).
    #[arg(long)]
    id_version: Option<u32>,
    /// Replace the file's SNP guest policy.
    #[arg(long, value_parser = parse_u64)]
    policy: Option<u64>,
    /// Verify the file's existing ID block instead of signing (exit 1 if it fails).
    #[arg(long, conflicts_with_all = SIGNING, conflicts_with = "policy")]
    verify: bool,
    /// Also print QEMU's id-block=...,id-auth=... options (base64).
    #[arg(long)]
    qemu_options: bool,
    #[command(flatten)]
    loader: LoaderArgs,
}

fn emit_tbs(a: &SignArgs, dir: &Path, unsigned: &sign::Unsigned, json: bool) -> Result<(), Fail> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let p = dir.join("id_block.bin");
    std::fs::write(&p, zerocopy::IntoBytes::as_bytes(&unsigned.block))
        .map_err(|e| Error::io(&p, e))?;
    output::note(&format!(
        "wrote {} (sign with the ID key: ECDSA P-384, SHA-384)",
        p.display()
    ));
    if let Some(pk) = &a.id_pubkey {
        let k = sign::load_verifying_key(&limits::read(pk, limits::KEY)?, "--id-pubkey")?;
        let p = dir.join("id_key.bin");
        std::fs::write(
            &p,
            zerocopy::IntoBytes::as_bytes(&sign::PubKey::from_key(&k)),
        )
        .map_err(|e| Error::io(&p, e))?;
        output::note(&format!("wrote {} (sign with the author key)", p.display()));
    }
    let ld = hex::encode(unsigned.block.ld);
    if json {
        output::json(&serde_json::json!({
            "launch_digest": ld,
            "vcpus": unsigned.vcpus,
            "tbs_dir": dir.display().to_string(),
        }))
    } else {
        output::note(&format!(
            "launch digest in the ID block, for {} vCPU(s):",
            unsigned.vcpus
        ));
        output::out(&ld)
    }
}

fn signed_block(a: &SignArgs, block: sign::IdBlock) -> Result<SignedIdBlock, Fail> {
    if let Some(k) = &a.id_key {
        let id = sign::load_signing_key(&limits::read(k, limits::KEY)?, "--id-key")?;
        let author = a
            .author_key
            .as_deref()
            .map(|p| {
                limits::read(p, limits::KEY)
                    .and_then(|d| sign::load_signing_key(&d, "--author-key"))
            })
            .transpose()?;
        return Ok(SignedIdBlock::sign(block, &id, author.as_ref()));
    }
    let (Some(sig), Some(pk)) = (&a.id_sig, &a.id_pubkey) else {
        return Err(Fail::Usage(
            "give --id-key, or --id-pubkey with --id-sig, or --emit-tbs, or --verify".into(),
        ));
    };
    let id_key = sign::PubKey::from_key(&sign::load_verifying_key(
        &limits::read(pk, limits::KEY)?,
        "--id-pubkey",
    )?);
    let id_sig = sign::load_signature(&limits::read(sig, limits::SIGNATURE)?, "--id-sig")?;
    let author = match (&a.author_pubkey, &a.author_sig) {
        (Some(p), Some(s)) => Some((
            sign::PubKey::from_key(&sign::load_verifying_key(
                &limits::read(p, limits::KEY)?,
                "--author-pubkey",
            )?),
            sign::load_signature(&limits::read(s, limits::SIGNATURE)?, "--author-sig")?,
        )),
        _ => None,
    };
    Ok(SignedIdBlock {
        block,
        id_key,
        id_sig,
        author,
    })
}

pub fn cmd_sign(a: SignArgs, json: bool) -> Result<(), Fail> {
    let data = limits::read(&a.igvm, limits::IGVM)?;
    let rules = a.loader.rules()?;
    if a.verify {
        let (blk, bad) = sign::verify_file(&data, &rules)?;
        output::json(&blk.summary())?;
        if !bad.is_empty() {
            // The summary above is the JSON document; the reasons go to stderr.
            output::note(&format!("vigil-igvm: check failed: {}", bad.join("; ")));
            return Err(Fail::Reported(1));
        }
        output::note("ok: ID block signatures verify and its launch digest matches");
        return Ok(());
    }
    if let Some(p) = a.policy {
        vigil_igvm::builder::check_guest_policy(p)?;
    }
    let fields = IdFields {
        family_id: sign::parse_id(a.family_id.as_deref().unwrap_or(""), "--family-id")?,
        image_id: sign::parse_id(a.image_id.as_deref().unwrap_or(""), "--image-id")?,
        guest_svn: a.guest_svn.unwrap_or(0),
        version: a.id_version.unwrap_or(1),
        policy: a.policy,
    };
    let unsigned = sign::prepare(&data, &rules, &fields)?;
    if let Some(dir) = &a.emit_tbs {
        return emit_tbs(&a, dir, &unsigned, json);
    }
    if a.id_key.is_none() && a.id_sig.is_none() {
        return Err(Fail::Usage(
            "give --id-key, or --id-pubkey with --id-sig, or --emit-tbs, or --verify".into(),
        ));
    }
    let out = a
        .output
        .as_ref()
        .ok_or_else(|| Fail::Usage("sign needs -o OUTPUT".into()))?;
    let signed = signed_block(&a, unsigned.block.clone())?;
    let vcpus = unsigned.vcpus;
    let bytes = unsigned.finish(&signed)?;
    std::fs::write(out, &bytes).map_err(|e| Error::io(out, e))?;
    output::note(&format!(
        "wrote {} (ID block launch digest for {vcpus} vCPU(s))",
        out.display()
    ));
    let b64 = base64::engine::general_purpose::STANDARD;
    let qemu = format!(
        "id-block={},id-auth={}",
        b64.encode(zerocopy::IntoBytes::as_bytes(&signed.block)),
        b64.encode(sign::id_auth_bytes(&signed))
    );
    match (json, a.qemu_options) {
        // One JSON document under --json: the QEMU options go inside it.
        (true, true) => {
            let mut doc = serde_json::to_value(signed.summary())
                .map_err(|e| Fail::Env(format!("JSON: {e}")))?;
            doc["qemu_options"] = qemu.into();
            output::json(&doc)
        }
        (_, false) => output::json(&signed.summary()),
        (false, true) => {
            output::json(&signed.summary())?;
            output::out(&qemu)
        }
    }
}
