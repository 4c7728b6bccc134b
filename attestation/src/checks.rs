//! Policy checks on the report's fields (each a named check in the output).

use svsm_abi::report::{policy as pol, AttestationReport, TcbLayout};

use crate::policy::{hex_field, u64_field, version_field, Policy, PLATFORM_BITS};
use crate::product::Product;
use crate::verify::Status;

type Add<'a> = dyn FnMut(&str, Status, String) + 'a;

fn yes(add: &mut Add<'_>, name: &str, ok: bool, pass: String, fail: String) {
    if ok {
        add(name, Status::Pass, pass)
    } else {
        add(name, Status::Fail, fail)
    }
}

/// Runs every policy check that the policy (with its safe defaults) asks for.
pub fn policy_checks(
    add: &mut Add<'_>,
    r: &AttestationReport,
    product: Option<Product>,
    layout: TcbLayout,
    p: &Policy,
) {
    // Fields were validated when the policy was loaded; a decoding failure here can only
    // come from a policy built in code, and it fails the check rather than skipping it.
    let h = |name: &str, s: &str, n: usize| hex_field(name, s, n).map_err(|e| e.to_string());

    if let Some(list) = &p.measurements {
        let ok = list.iter().any(|m| {
            h("measurements", m, 48)
                .map(|v| v == r.measurement)
                .unwrap_or(false)
        });
        yes(
            add,
            "policy.measurement",
            ok,
            "MEASUREMENT is allowed".into(),
            format!(
                "MEASUREMENT {} (offset 0x090) is not in the policy's list",
                hex::encode(r.measurement)
            ),
        );
    }
    for (name, want, got, off) in [
        ("policy.host_data", &p.host_data, &r.host_data[..], 0xC0),
        (
            "policy.report_data",
            &p.report_data,
            &r.report_data[..],
            0x50,
        ),
        ("policy.family_id", &p.family_id, &r.family_id[..], 0x10),
        ("policy.image_id", &p.image_id, &r.image_id[..], 0x20),
        ("policy.report_id", &p.report_id, &r.report_id[..], 0x140),
        (
            "policy.report_id_ma",
            &p.report_id_ma,
            &r.report_id_ma[..],
            0x160,
        ),
        ("policy.chip_id", &p.chip_id, &r.chip_id[..], 0x1A0),
    ] {
        if let Some(w) = want {
            match h(name, w, got.len()) {
                Ok(v) => yes(
                    add,
                    name,
                    v == got,
                    "matches".into(),
                    format!("{} (offset 0x{off:03X}) != policy {w}", hex::encode(got)),
                ),
                Err(e) => add(name, Status::Fail, e),
            }
        }
    }
    if let Some(min) = p.min_guest_svn {
        yes(
            add,
            "policy.guest_svn",
            r.guest_svn >= min,
            format!("GUEST_SVN {} >= {min}", r.guest_svn),
            format!("GUEST_SVN {} < {min} (offset 0x004)", r.guest_svn),
        );
    }
    if let Some(v) = &p.vmpl {
        yes(
            add,
            "policy.vmpl",
            v.contains(&r.vmpl),
            format!("VMPL {}", r.vmpl),
            format!("VMPL {} (offset 0x030) not in {v:?}", r.vmpl),
        );
    }
    if let Some(products) = &p.products {
        let ok = product
            .map(|pr| products.iter().any(|x| Product::parse(x) == Some(pr)))
            .unwrap_or(false);
        yes(
            add,
            "policy.product",
            ok,
            format!("{:?} allowed", product),
            format!("product {:?} not in {products:?}", product),
        );
    }
    // Guest policy bits. Debug and migration agent are refused unless allowed.
    let gp = r.policy;
    let allow_debug = p.allow_debug.unwrap_or(false);
    yes(
        add,
        "policy.debug",
        allow_debug || gp & pol::DEBUG == 0,
        format!(
            "DEBUG {}",
            if gp & pol::DEBUG != 0 {
                "set (allowed)"
            } else {
                "clear"
            }
        ),
        "guest POLICY allows debugging (bit 19) and the policy does not (allow_debug)".into(),
    );
    let allow_ma = p.allow_migration_agent.unwrap_or(false);
    yes(add, "policy.migration_agent", allow_ma || gp & pol::MIGRATE_MA == 0, format!("MIGRATE_MA {}", if gp & pol::MIGRATE_MA != 0 { "set (allowed)" } else { "clear" }), "guest POLICY allows a migration agent (bit 18) and the policy does not (allow_migration_agent)".into());
    yes(
        add,
        "policy.reserved_bits",
        gp & pol::RESERVED_MBO != 0 && gp & pol::RESERVED_MASK == 0,
        "bit 17 set, bits 63:26 clear".into(),
        format!("guest POLICY 0x{gp:x}: bit 17 must be one and bits 63:26 zero"),
    );
    if let Some(false) = p.allow_smt {
        yes(
            add,
            "policy.smt",
            gp & pol::SMT == 0,
            "SMT not allowed by the guest policy".into(),
            "guest POLICY allows SMT (bit 16); the policy does not".into(),
        );
    }
    if let Some(false) = p.allow_cxl {
        yes(
            add,
            "policy.cxl",
            gp & pol::CXL_ALLOW == 0,
            "CXL_ALLOW clear".into(),
            "guest POLICY sets CXL_ALLOW (bit 21); the policy does not allow it".into(),
        );
    }
    for (name, flag, bit, label) in [
        (
            "policy.single_socket",
            p.require_single_socket,
            pol::SINGLE_SOCKET,
            "SINGLE_SOCKET (bit 20)",
        ),
        (
            "policy.aes_256_xts",
            p.require_aes_256_xts,
            pol::MEM_AES_256_XTS,
            "MEM_AES_256_XTS (bit 22)",
        ),
        (
            "policy.rapl_disabled",
            p.require_rapl_disabled,
            pol::RAPL_DIS,
            "RAPL_DIS (bit 23)",
        ),
        (
            "policy.ciphertext_hiding",
            p.require_ciphertext_hiding,
            pol::CIPHERTEXT_HIDING,
            "CIPHERTEXT_HIDING (bit 24)",
        ),
        (
            "policy.page_swap_disabled",
            p.require_page_swap_disabled,
            pol::PAGE_SWAP_DISABLE,
            "PAGE_SWAP_DISABLE (bit 25)",
        ),
    ] {
        if flag == Some(true) {
            yes(
                add,
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
                yes(
                    add,
                    "policy.abi_minimum",
                    got >= (maj, min),
                    format!("guest demands ABI >= {}.{}", got.0, got.1),
                    format!(
                        "guest policy's ABI minimum {}.{} < {maj}.{min}",
                        got.0, got.1
                    ),
                );
            }
            Err(e) => add("policy.abi_minimum", Status::Fail, e.to_string()),
        }
    }
    if let Some(v) = &p.policy_exact {
        match u64_field("policy_exact", v) {
            Ok(x) => yes(
                add,
                "policy.exact",
                x == gp,
                format!("POLICY 0x{gp:x}"),
                format!("POLICY 0x{gp:x} != 0x{x:x}"),
            ),
            Err(e) => add("policy.exact", Status::Fail, e.to_string()),
        }
    }
    // TCB minimums per product, on each of the four TCBs.
    if let (Some(map), Some(prod)) = (&p.min_tcb, product) {
        if let Some(min) = map
            .iter()
            .find(|(k, _)| Product::parse(k) == Some(prod))
            .map(|x| x.1)
        {
            for (name, v) in [
                ("reported", r.reported_tcb),
                ("committed", r.committed_tcb),
                ("launch", r.launch_tcb),
                ("current", r.current_tcb),
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
                yes(
                    add,
                    &format!("policy.tcb.{name}"),
                    low.is_empty(),
                    format!("{name} TCB meets the {} minimum", prod.name()),
                    format!("{name} TCB below minimum: {}", low.join(", ")),
                );
            }
        }
    }
    // Provisional firmware: CURRENT must equal COMMITTED (firmware version and the
    // firmware SPLs). The microcode SPL may differ: microcode is loaded by the host OS
    // and is not committed through SNP_COMMIT.
    let allow_prov = p.allow_provisional_firmware.unwrap_or(false);
    let cur = layout.decode(r.current_tcb);
    let com = layout.decode(r.committed_tcb);
    let same_fw = (r.current_major, r.current_minor, r.current_build)
        == (r.committed_major, r.committed_minor, r.committed_build)
        && (cur.fmc, cur.bl, cur.tee, cur.snp) == (com.fmc, com.bl, com.tee, com.snp);
    yes(add, "policy.committed_firmware", allow_prov || same_fw,
        if same_fw { format!("current firmware {}.{}.{} is committed", r.current_major, r.current_minor, r.current_build) } else { "provisional firmware allowed by policy".into() },
        format!("current firmware {}.{}.{} / TCB differs from committed {}.{}.{} (provisional firmware; allow_provisional_firmware)", r.current_major, r.current_minor, r.current_build, r.committed_major, r.committed_minor, r.committed_build));
    if let Some(b) = p.min_build {
        yes(
            add,
            "policy.min_build",
            r.current_build >= b,
            format!("CURRENT_BUILD {} >= {b}", r.current_build),
            format!("CURRENT_BUILD {} < {b} (offset 0x1E8)", r.current_build),
        );
    }
    if let Some(v) = &p.min_version {
        match version_field("min_version", v) {
            Ok(w) => yes(
                add,
                "policy.min_version",
                (r.current_major, r.current_minor) >= w,
                format!("firmware {}.{}", r.current_major, r.current_minor),
                format!(
                    "firmware {}.{} < {}.{}",
                    r.current_major, r.current_minor, w.0, w.1
                ),
            ),
            Err(e) => add("policy.min_version", Status::Fail, e.to_string()),
        }
    }
    for (list, must_set, name) in [
        (&p.platform_required, true, "policy.platform_required"),
        (&p.platform_forbidden, false, "policy.platform_forbidden"),
    ] {
        if let Some(list) = list {
            let bad: Vec<&str> = PLATFORM_BITS
                .iter()
                .filter(|(n, _)| list.iter().any(|x| x == n))
                .filter(|(_, b)| (r.platform_info & b != 0) != must_set)
                .map(|(n, _)| *n)
                .collect();
            yes(
                add,
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
            "policy.launch_mit_vector",
        ),
        (
            &p.current_mit_vector_required,
            r.current_mit_vector,
            "policy.current_mit_vector",
        ),
    ] {
        if let Some(w) = want {
            match u64_field(name, w) {
                Ok(_) if !r.has_mit_vectors() => add(
                    name,
                    Status::Fail,
                    format!("report version {} carries no mitigation vector", r.version),
                ),
                Ok(w) => yes(
                    add,
                    name,
                    got & w == w,
                    format!("0x{got:x} has 0x{w:x}"),
                    format!("0x{got:x} lacks bits 0x{:x}", w & !got),
                ),
                Err(e) => add(name, Status::Fail, e.to_string()),
            }
        }
    }
    let has_id = r.id_key_digest.iter().any(|b| *b != 0);
    if p.require_id_block == Some(true) {
        yes(
            add,
            "policy.id_block",
            has_id,
            "ID block present".into(),
            "no ID block (ID_KEY_DIGEST is zero)".into(),
        );
    }
    if let Some(list) = &p.id_key_digests {
        let ok = list.iter().any(|d| {
            h("id_key_digests", d, 48)
                .map(|v| v == r.id_key_digest)
                .unwrap_or(false)
        });
        yes(
            add,
            "policy.id_key_digest",
            ok,
            "ID key allowed".into(),
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
        yes(
            add,
            "policy.author_key_digest",
            ok,
            "author key allowed".into(),
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
        yes(
            add,
            "policy.signing_key",
            keys.iter().any(|x| x == k),
            format!("{k} allowed"),
            format!("{k} not in {keys:?}"),
        );
    }
}
