//! Policy checks on the report's fields (each a named check in the output).

use svsm_abi::report::{policy as pol, AttestationReport, TcbLayout};

use crate::catalog::{self as cat, CheckDef};
use crate::policy::{hex_field, u64_field, version_field, Policy, PLATFORM_BITS};
use crate::product::Product;
use crate::verify::Ctx;

/// Runs every policy check that the policy (with its safe defaults) asks for.
pub(crate) fn policy_checks(
    cx: &mut Ctx,
    r: &AttestationReport,
    product: Option<Product>,
    layout: TcbLayout,
    p: &Policy,
) {
    values(cx, r, product, p);
    guest_policy(cx, r.policy, p);
    if let Some(prod) = product {
        tcb_minimums(cx, r, prod, layout, p);
    }
    firmware(cx, r, layout, p);
    platform(cx, r, p);
    keys(cx, r, p);
}

/// Decodes a hex policy field of `n` bytes. Fields were validated when the policy was
/// loaded; a failure here can only come from a policy built in code, and it fails the
/// check rather than skipping it.
fn h(name: &str, s: &str, n: usize) -> Result<Vec<u8>, String> {
    hex_field(name, s, n).map_err(|e| e.to_string())
}

/// The policy's exact values and allow-lists of report fields.
fn values(cx: &mut Ctx, r: &AttestationReport, product: Option<Product>, p: &Policy) {
    if let Some(list) = &p.measurements {
        let ok = list.iter().any(|m| {
            h("measurements", m, 48)
                .map(|v| v == r.measurement)
                .unwrap_or(false)
        });
        cx.cond(
            cat::POLICY_MEASUREMENT,
            ok,
            "MEASUREMENT is allowed".to_string(),
            format!(
                "MEASUREMENT {} (offset 0x090) is not in the policy's list",
                hex::encode(r.measurement)
            ),
        );
    }
    let fields: [(&'static CheckDef, _, &[u8], u32); 7] = [
        (cat::POLICY_HOST_DATA, &p.host_data, &r.host_data[..], 0xC0),
        (
            cat::POLICY_REPORT_DATA,
            &p.report_data,
            &r.report_data[..],
            0x50,
        ),
        (cat::POLICY_FAMILY_ID, &p.family_id, &r.family_id[..], 0x10),
        (cat::POLICY_IMAGE_ID, &p.image_id, &r.image_id[..], 0x20),
        (cat::POLICY_REPORT_ID, &p.report_id, &r.report_id[..], 0x140),
        (
            cat::POLICY_REPORT_ID_MA,
            &p.report_id_ma,
            &r.report_id_ma[..],
            0x160,
        ),
        (cat::POLICY_CHIP_ID, &p.chip_id, &r.chip_id[..], 0x1A0),
    ];
    for (name, want, got, off) in fields {
        if let Some(w) = want {
            match h(name.name, w, got.len()) {
                Ok(v) => cx.cond(
                    name,
                    v == got,
                    "matches".to_string(),
                    format!("{} (offset 0x{off:03X}) != policy {w}", hex::encode(got)),
                ),
                Err(e) => cx.fail(name, e),
            }
        }
    }
    if let Some(min) = p.min_guest_svn {
        cx.cond(
            cat::POLICY_GUEST_SVN,
            r.guest_svn >= min,
            format!("GUEST_SVN {} >= {min}", r.guest_svn),
            format!("GUEST_SVN {} < {min} (offset 0x004)", r.guest_svn),
        );
    }
    if let Some(v) = &p.vmpl {
        cx.cond(
            cat::POLICY_VMPL,
            v.contains(&r.vmpl),
            format!("VMPL {}", r.vmpl),
            format!("VMPL {} (offset 0x030) not in {v:?}", r.vmpl),
        );
    }
    if let Some(products) = &p.products {
        let ok = product
            .map(|pr| products.iter().any(|x| Product::parse(x) == Some(pr)))
            .unwrap_or(false);
        cx.cond(
            cat::POLICY_PRODUCT,
            ok,
            format!("{:?} allowed", product),
            format!("product {:?} not in {products:?}", product),
        );
    }
}

/// Guest POLICY bits (#56860, guest policy structure). Debug and migration agent are
/// refused unless allowed: either lets the host read or move the guest's memory.
fn guest_policy(cx: &mut Ctx, gp: u64, p: &Policy) {
    let allow_debug = p.allow_debug.unwrap_or(false);
    cx.cond(
        cat::POLICY_DEBUG,
        allow_debug || gp & pol::DEBUG == 0,
        format!(
            "DEBUG {}",
            if gp & pol::DEBUG != 0 {
                "set (allowed)"
            } else {
                "clear"
            }
        ),
        "guest POLICY allows debugging (bit 19) and the policy does not (allow_debug)".to_string(),
    );
    let allow_ma = p.allow_migration_agent.unwrap_or(false);
    cx.cond(cat::POLICY_MIGRATION_AGENT, allow_ma || gp & pol::MIGRATE_MA == 0, format!("MIGRATE_MA {}", if gp & pol::MIGRATE_MA != 0 { "set (allowed)" } else { "clear" }), "guest POLICY allows a migration agent (bit 18) and the policy does not (allow_migration_agent)".to_string());
    cx.cond(
        cat::POLICY_RESERVED_BITS,
        gp & pol::RESERVED_MBO != 0 && gp & pol::RESERVED_MASK == 0,
        "bit 17 set, bits 63:26 clear".to_string(),
        format!("guest POLICY 0x{gp:x}: bit 17 must be one and bits 63:26 zero"),
    );
    if let Some(false) = p.allow_smt {
        cx.cond(
            cat::POLICY_SMT,
            gp & pol::SMT == 0,
            "SMT not allowed by the guest policy".to_string(),
            "guest POLICY allows SMT (bit 16); the policy does not".to_string(),
        );
    }
    if let Some(false) = p.allow_cxl {
        cx.cond(
            cat::POLICY_CXL,
            gp & pol::CXL_ALLOW == 0,
            "CXL_ALLOW clear".to_string(),
            "guest POLICY sets CXL_ALLOW (bit 21); the policy does not allow it".to_string(),
        );
    }
    for (name, flag, bit, label) in [
        (
            cat::POLICY_SINGLE_SOCKET,
            p.require_single_socket,
            pol::SINGLE_SOCKET,
            "SINGLE_SOCKET (bit 20)",
        ),
        (
            cat::POLICY_AES_256_XTS,
            p.require_aes_256_xts,
            pol::MEM_AES_256_XTS,
            "MEM_AES_256_XTS (bit 22)",
        ),
        (
            cat::POLICY_RAPL_DISABLED,
            p.require_rapl_disabled,
            pol::RAPL_DIS,
            "RAPL_DIS (bit 23)",
        ),
        (
            cat::POLICY_CIPHERTEXT_HIDING,
            p.require_ciphertext_hiding,
            pol::CIPHERTEXT_HIDING,
            "CIPHERTEXT_HIDING (bit 24)",
        ),
        (
            cat::POLICY_PAGE_SWAP_DISABLED,
            p.require_page_swap_disabled,
            pol::PAGE_SWAP_DISABLE,
            "PAGE_SWAP_DISABLE (bit 25)",
        ),
    ] {
        if flag == Some(true) {
            cx.cond(
                name,
                gp & bit != 0,
                format!("{label} set"),
                format!("guest POLICY lacks {label}"),
            );
        }
    }
    if let Some(v) = &p.min_policy_abi {
        match version_field("min_policy_abi", v) {
            Ok((maj, min)) => {
                let got = (
                    ((gp >> pol::ABI_MAJOR_SHIFT) & 0xFF) as u8,
                    (gp & pol::ABI_MINOR_MASK) as u8,
                );
                cx.cond(
                    cat::POLICY_ABI_MINIMUM,
                    got >= (maj, min),
                    format!("guest demands ABI >= {}.{}", got.0, got.1),
                    format!(
                        "guest policy's ABI minimum {}.{} < {maj}.{min}",
                        got.0, got.1
                    ),
                );
            }
            Err(e) => cx.fail(cat::POLICY_ABI_MINIMUM, e.to_string()),
        }
    }
    if let Some(v) = &p.policy_exact {
        match u64_field("policy_exact", v) {
            Ok(x) => cx.cond(
                cat::POLICY_EXACT,
                x == gp,
                format!("POLICY 0x{gp:x}"),
                format!("POLICY 0x{gp:x} != 0x{x:x}"),
            ),
            Err(e) => cx.fail(cat::POLICY_EXACT, e.to_string()),
        }
    }
}

/// TCB minimums per product, on each of the four TCBs.
fn tcb_minimums(cx: &mut Ctx, r: &AttestationReport, prod: Product, layout: TcbLayout, p: &Policy) {
    if let Some(map) = &p.min_tcb {
        if let Some(min) = map
            .iter()
            .find(|(k, _)| Product::parse(k) == Some(prod))
            .map(|x| x.1)
        {
            for (def, name, v) in [
                (cat::POLICY_TCB_REPORTED, "reported", r.reported_tcb),
                (cat::POLICY_TCB_COMMITTED, "committed", r.committed_tcb),
                (cat::POLICY_TCB_LAUNCH, "launch", r.launch_tcb),
                (cat::POLICY_TCB_CURRENT, "current", r.current_tcb),
            ] {
                let t = layout.decode(v);
                let mut low = Vec::new();
                for (n, want, got) in [
                    ("fmc", min.fmc, t.fmc.unwrap_or(0)),
                    ("bl", min.bl, t.bl),
                    ("tee", min.tee, t.tee),
                    ("snp", min.snp, t.snp),
                    ("ucode", min.ucode, t.ucode),
                ] {
                    if let Some(w) = want {
                        if got < w {
                            low.push(format!("{n} {got} < {w}"));
                        }
                    }
                }
                cx.cond(
                    def,
                    low.is_empty(),
                    format!("{name} TCB meets the {} minimum", prod.name()),
                    format!("{name} TCB below minimum: {}", low.join(", ")),
                );
            }
        }
    }
}

/// Committed firmware, minimum build and version.
fn firmware(cx: &mut Ctx, r: &AttestationReport, layout: TcbLayout, p: &Policy) {
    // Provisional firmware: CURRENT must equal COMMITTED (firmware version and the
    // firmware SPLs). The microcode SPL may differ: microcode is loaded by the host OS
    // and is not committed through SNP_COMMIT.
    let allow_prov = p.allow_provisional_firmware.unwrap_or(false);
    let cur = layout.decode(r.current_tcb);
    let com = layout.decode(r.committed_tcb);
    let same_fw = (r.current_major, r.current_minor, r.current_build)
        == (r.committed_major, r.committed_minor, r.committed_build)
        && (cur.fmc, cur.bl, cur.tee, cur.snp) == (com.fmc, com.bl, com.tee, com.snp);
    cx.cond(cat::POLICY_COMMITTED_FIRMWARE, allow_prov || same_fw,
        if same_fw { format!("current firmware {}.{}.{} is committed", r.current_major, r.current_minor, r.current_build) } else { "provisional firmware allowed by policy".into() },
        format!("current firmware {}.{}.{} / TCB differs from committed {}.{}.{} (provisional firmware; allow_provisional_firmware)", r.current_major, r.current_minor, r.current_build, r.committed_major, r.committed_minor, r.committed_build));
    if let Some(b) = p.min_build {
        cx.cond(
            cat::POLICY_MIN_BUILD,
            r.current_build >= b,
            format!("CURRENT_BUILD {} >= {b}", r.current_build),
            format!("CURRENT_BUILD {} < {b} (offset 0x1E8)", r.current_build),
        );
    }
    if let Some(v) = &p.min_version {
        match version_field("min_version", v) {
            Ok(w) => cx.cond(
                cat::POLICY_MIN_VERSION,
                (r.current_major, r.current_minor) >= w,
                format!("firmware {}.{}", r.current_major, r.current_minor),
                format!(
                    "firmware {}.{} < {}.{}",
                    r.current_major, r.current_minor, w.0, w.1
                ),
            ),
            Err(e) => cx.fail(cat::POLICY_MIN_VERSION, e.to_string()),
        }
    }
}

/// PLATFORM_INFO bits and the v5 mitigation vectors.
fn platform(cx: &mut Ctx, r: &AttestationReport, p: &Policy) {
    for (list, must_set, name) in [
        (&p.platform_required, true, cat::POLICY_PLATFORM_REQUIRED),
        (&p.platform_forbidden, false, cat::POLICY_PLATFORM_FORBIDDEN),
    ] {
        if let Some(list) = list {
            let bad: Vec<&str> = PLATFORM_BITS
                .iter()
                .filter(|(n, _)| list.iter().any(|x| x == n))
                .filter(|(_, b)| (r.platform_info & b != 0) != must_set)
                .map(|(n, _)| *n)
                .collect();
            cx.cond(
                name,
                bad.is_empty(),
                format!("PLATFORM_INFO 0x{:x}", r.platform_info),
                format!(
                    "PLATFORM_INFO 0x{:x}: {} {}",
                    r.platform_info,
                    bad.join(", "),
                    if must_set { "not set" } else { "set" }
                ),
            );
        }
    }
    for (want, got, name) in [
        (
            &p.launch_mit_vector_required,
            r.launch_mit_vector,
            cat::POLICY_LAUNCH_MIT_VECTOR,
        ),
        (
            &p.current_mit_vector_required,
            r.current_mit_vector,
            cat::POLICY_CURRENT_MIT_VECTOR,
        ),
    ] {
        if let Some(w) = want {
            match u64_field(name.name, w) {
                Ok(_) if !r.has_mit_vectors() => cx.fail(
                    name,
                    format!("report version {} carries no mitigation vector", r.version),
                ),
                Ok(w) => cx.cond(
                    name,
                    got & w == w,
                    format!("0x{got:x} has 0x{w:x}"),
                    format!("0x{got:x} lacks bits 0x{:x}", w & !got),
                ),
                Err(e) => cx.fail(name, e.to_string()),
            }
        }
    }
}

/// ID block, ID and author keys, and the signing key kind.
fn keys(cx: &mut Ctx, r: &AttestationReport, p: &Policy) {
    let has_id = r.id_key_digest.iter().any(|b| *b != 0);
    if p.require_id_block == Some(true) {
        cx.cond(
            cat::POLICY_ID_BLOCK,
            has_id,
            "ID block present".to_string(),
            "no ID block (ID_KEY_DIGEST is zero)".to_string(),
        );
    }
    if let Some(list) = &p.id_key_digests {
        let ok = list.iter().any(|d| {
            h("id_key_digests", d, 48)
                .map(|v| v == r.id_key_digest)
                .unwrap_or(false)
        });
        cx.cond(
            cat::POLICY_ID_KEY_DIGEST,
            ok,
            "ID key allowed".to_string(),
            format!(
                "ID_KEY_DIGEST {} (offset 0x0E0) not allowed",
                hex::encode(r.id_key_digest)
            ),
        );
    }
    if let Some(list) = &p.author_key_digests {
        let ok = r.author_key_en()
            && list.iter().any(|d| {
                h("author_key_digests", d, 48)
                    .map(|v| v == r.author_key_digest)
                    .unwrap_or(false)
            });
        cx.cond(
            cat::POLICY_AUTHOR_KEY_DIGEST,
            ok,
            "author key allowed".to_string(),
            format!(
                "AUTHOR_KEY_EN {} / AUTHOR_KEY_DIGEST {} (offset 0x110) not allowed",
                r.author_key_en(),
                hex::encode(r.author_key_digest)
            ),
        );
    }
    if let Some(keys) = &p.signing_keys {
        let k = match r.signing_key() {
            0 => "vcek",
            1 => "vlek",
            _ => "other",
        };
        cx.cond(
            cat::POLICY_SIGNING_KEY,
            keys.iter().any(|x| x == k),
            format!("{k} allowed"),
            format!("{k} not in {keys:?}"),
        );
    }
}
