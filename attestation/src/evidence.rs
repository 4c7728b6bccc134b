//! SVSM evidence: REPORT_DATA = SHA-512(nonce || manifest), the services manifest (the
//! SVSM spec's GUID table, parsed with the ABI's own parser plus a strict layout check),
//! Vigil's event log (replayed with the ABI's `replay`, head compared with the manifest's
//! Vigil entry), and the reference values that `vigil-igvm refs` writes.
//!
//! Attack reasoning: the manifest and the log come from the guest (the SVSM builds them,
//! but they travel through the untrusted guest OS). They are bound by REPORT_DATA, which
//! the signature covers; so the verifier first recomputes REPORT_DATA, then reads the
//! manifest strictly (a lenient reader could be shown a second, different reading of the
//! same bytes), then replays the log and requires the head the manifest carries.

use serde::Deserialize;
use svsm_abi::attest_protocol::{
    self as ap, parse_manifest, ManifestHeader, VigilServiceData, VIGIL_SERVICE_DATA_VERSION,
    VIGIL_SERVICE_GUID,
};
use svsm_abi::event_log::{self, kind, AttestPayload, LaunchPayload};
use svsm_abi::report::AttestationReport;
use zerocopy::{FromBytes, IntoBytes};

use crate::verify::{Evidence, Status};

/// Reference values written by `vigil-igvm refs` (schema "vigil-refs/1"); unknown
/// fields are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct Refs {
    /// Must be "vigil-refs/1".
    pub schema: String,
    /// Launch digest, 96 hex.
    pub launch_digest: String,
    /// Guest policy, "0x30000".
    pub policy: String,
    /// SEV features of the boot VMSA.
    pub sev_features: Option<String>,
    /// vCPU count.
    pub vcpus: Option<u32>,
    /// VMPL of the guest.
    pub guest_vmpl: Option<u32>,
    /// Digest of the monitor policy.
    pub monitor_policy_digest: Option<String>,
    /// "snp" or "native".
    pub platform: Option<String>,
    /// SHA-256 of the IGVM file.
    pub igvm_sha256: Option<String>,
}

impl Refs {
    /// Parses and validates the JSON.
    pub fn from_json(text: &str) -> Result<Refs, String> {
        let r: Refs = serde_json::from_str(text).map_err(|e| format!("refs: {e}"))?;
        if r.schema != "vigil-refs/1" {
            return Err(format!(
                "refs: schema {:?} is not \"vigil-refs/1\"",
                r.schema
            ));
        }
        // The native (emulated) platform has no SNP launch digest: vigil-igvm writes "".
        if !(r.launch_digest.is_empty() && r.platform.as_deref() == Some("native")) {
            crate::policy::hex_field("refs launch_digest", &r.launch_digest, 48)
                .map_err(|e| e.to_string())?;
        }
        crate::policy::u64_field("refs policy", &r.policy).map_err(|e| e.to_string())?;
        Ok(r)
    }
}

/// The Vigil entry of a strictly parsed manifest.
#[derive(Clone, Debug)]
pub struct ParsedManifest {
    /// Header.
    pub header: ManifestHeader,
    /// Vigil's service data, if present.
    pub vigil: Option<VigilServiceData>,
    /// Number of entries.
    pub entries: usize,
}

/// Parses a manifest strictly: the ABI parser's checks (GUID, total size, bounds), then
/// entries must have distinct GUIDs, their data must not overlap and must tile the bytes
/// after the table with nothing left over, and Vigil's entry must be exactly a
/// version-1 [`VigilServiceData`].
pub fn parse_manifest_strict(m: &[u8]) -> Result<ParsedManifest, String> {
    let mut entries: Vec<(ap::Guid, usize, usize)> = Vec::new();
    let base = m.as_ptr() as usize;
    let hdr = parse_manifest(m, |g, d| {
        entries.push((g, (d.as_ptr() as usize).wrapping_sub(base), d.len()));
    })
    .map_err(|e| format!("manifest: {e:?}"))?;
    let table_end = 24 + 24 * entries.len();
    let mut spans: Vec<(usize, usize)> = entries.iter().map(|e| (e.1, e.1 + e.2)).collect();
    spans.sort();
    let mut pos = table_end;
    for (s, e) in &spans {
        if *s != pos {
            return Err(format!(
                "manifest: data at byte offset {s} does not follow the previous data (expected offset {pos}): gap or overlap"
            ));
        }
        pos = *e;
    }
    if pos != m.len() {
        return Err(format!(
            "manifest: {} trailing bytes from offset {pos}",
            m.len() - pos
        ));
    }
    for (i, a) in entries.iter().enumerate() {
        if entries[..i].iter().any(|b| b.0 == a.0) {
            return Err(format!("manifest: entry {i} repeats a GUID"));
        }
    }
    let mut vigil = None;
    if let Some(e) = entries.iter().find(|e| e.0 == VIGIL_SERVICE_GUID) {
        let d = &m[e.1..e.1 + e.2];
        let v = VigilServiceData::read_from_bytes(d).map_err(|_| {
            format!(
                "manifest: Vigil entry at offset {} is {} bytes, expected 64",
                e.1,
                d.len()
            )
        })?;
        if v.version != VIGIL_SERVICE_DATA_VERSION {
            return Err(format!(
                "manifest: Vigil entry version {} at offset {} is not 1",
                v.version, e.1
            ));
        }
        vigil = Some(v);
    }
    Ok(ParsedManifest {
        header: hdr,
        vigil,
        entries: entries.len(),
    })
}

/// Runs the SVSM-evidence and reference-value checks.
pub fn checks(add: &mut dyn FnMut(&str, Status, String), r: &AttestationReport, ev: &Evidence) {
    let mut manifest_parsed = None;
    match (&ev.nonce, &ev.manifest) {
        (Some(n), Some(m)) => {
            let want = ap::report_data(n, m);
            if want == r.report_data {
                add(
                    "svsm.report_data",
                    Status::Pass,
                    "REPORT_DATA = SHA-512(nonce || manifest)".into(),
                );
            } else {
                add(
                    "svsm.report_data",
                    Status::Fail,
                    format!(
                        "REPORT_DATA (offset 0x050) is not SHA-512(nonce || manifest) = {}",
                        hex::encode(want)
                    ),
                );
            }
            if r.vmpl == 0 {
                add(
                    "svsm.vmpl",
                    Status::Pass,
                    "report requested at VMPL0 (by the SVSM)".into(),
                );
            } else {
                add(
                    "svsm.vmpl",
                    Status::Fail,
                    format!(
                        "VMPL {} (offset 0x030): an SVSM report must come from VMPL0",
                        r.vmpl
                    ),
                );
            }
            match parse_manifest_strict(m) {
                Ok(p) => {
                    add(
                        "svsm.manifest",
                        Status::Pass,
                        format!(
                            "{} entries, {} bytes, Vigil entry {}",
                            p.entries,
                            p.header.size,
                            if p.vigil.is_some() {
                                "present"
                            } else {
                                "absent"
                            }
                        ),
                    );
                    manifest_parsed = Some(p);
                }
                Err(e) => add("svsm.manifest", Status::Fail, e),
            }
        }
        (None, None) => {
            for n in ["svsm.report_data", "svsm.vmpl", "svsm.manifest"] {
                add(n, Status::Skip, "no --nonce/--manifest given".into());
            }
        }
        _ => {
            for n in ["svsm.report_data", "svsm.vmpl", "svsm.manifest"] {
                add(
                    n,
                    Status::Fail,
                    "--nonce and --manifest must be given together".into(),
                );
            }
        }
    }
    let mut launch: Option<LaunchPayload> = None;
    match (
        &ev.event_log,
        manifest_parsed.as_ref().and_then(|p| p.vigil),
    ) {
        (Some(log), Some(v)) => {
            // The head covers records 0..record_count-1; record number record_count,
            // if present, is the ATTEST call's own record (docs/protocols.md), which
            // must carry this report's REPORT_DATA; later records are not bound.
            let mut idx = 0u64;
            let mut head = event_log::H0;
            let mut bound_head = (v.record_count == 0).then_some(event_log::H0);
            let mut attest: Option<(u16, Option<AttestPayload>)> = None;
            // Guest accesses Vigil refused (ACCESS_REFUSED, docs/protocols.md) among
            // the records the head binds: reported, so that a relying party sees that
            // the guest touched memory it may not (the replay itself checks their
            // framing like any other kind's).
            let mut refused = 0u64;
            let res = event_log::replay(log, |h, p| {
                if idx == 0 && h.kind == kind::LAUNCH {
                    launch = LaunchPayload::read_from_bytes(p).ok();
                }
                if h.kind == kind::ACCESS_REFUSED && idx < v.record_count {
                    refused += 1;
                }
                let mut rec = h.as_bytes().to_vec();
                rec.extend_from_slice(p);
                head = event_log::extend(&head, &rec);
                idx += 1;
                if idx == v.record_count {
                    bound_head = Some(head);
                }
                if idx == v.record_count + 1 {
                    attest = Some((h.kind, AttestPayload::read_from_bytes(p).ok()));
                }
            });
            match (res, bound_head) {
                (Err(e), _) => add("svsm.event_log", Status::Fail, format!("event log: {e:?}")),
                (Ok((n, _)), None) => add(
                    "svsm.event_log",
                    Status::Fail,
                    format!("log has {n} records, the manifest binds {}", v.record_count),
                ),
                (Ok(_), Some(h)) if h != v.log_head => add(
                    "svsm.event_log",
                    Status::Fail,
                    format!(
                        "head after {} records is {}, the manifest says {}",
                        v.record_count,
                        hex::encode(h),
                        hex::encode(v.log_head)
                    ),
                ),
                (Ok((n, _)), Some(h)) => match attest {
                    None => add(
                        "svsm.event_log",
                        Status::Pass,
                        format!(
                            "replayed {n} records; head {} = manifest; {refused} refused guest access(es) bound",
                            hex::encode(&h[..8])
                        ),
                    ),
                    Some((kind::ATTEST, Some(a))) if a.report_data == r.report_data => add(
                        "svsm.event_log",
                        Status::Pass,
                        format!(
                            "replayed {n} records; head after {} = manifest ({}); {refused} refused guest access(es) bound; record {} is this ATTEST call with the report's REPORT_DATA; {} later record(s) not bound by this report",
                            v.record_count,
                            hex::encode(&h[..8]),
                            v.record_count,
                            n - v.record_count - 1
                        ),
                    ),
                    Some(_) => add(
                        "svsm.event_log",
                        Status::Fail,
                        format!(
                            "record {} (after the bound head) is not an ATTEST record carrying this report's REPORT_DATA",
                            v.record_count
                        ),
                    ),
                },
            }
        }
        (Some(_), None) => add(
            "svsm.event_log",
            Status::Fail,
            "event log given but no valid manifest with a Vigil entry to compare it with".into(),
        ),
        (None, Some(_)) => add(
            "svsm.event_log",
            Status::Skip,
            "manifest has a Vigil entry; no --event-log given to replay".into(),
        ),
        (None, None) => add(
            "svsm.event_log",
            Status::Skip,
            "no --event-log given".into(),
        ),
    }
    let Some(refs) = &ev.refs else {
        add("refs", Status::Skip, "no --refs given".into());
        return;
    };
    let want_m =
        crate::policy::hex_field("launch_digest", &refs.launch_digest, 48).unwrap_or_default();
    if refs.launch_digest.is_empty() {
        add(
            "refs.measurement",
            Status::Skip,
            "refs are for the native (emulated) platform, which has no SNP launch digest".into(),
        );
    } else if want_m == r.measurement {
        add(
            "refs.measurement",
            Status::Pass,
            "MEASUREMENT = launch_digest".into(),
        );
    } else {
        add(
            "refs.measurement",
            Status::Fail,
            format!(
                "MEASUREMENT {} (offset 0x090) != launch_digest {}",
                hex::encode(r.measurement),
                refs.launch_digest
            ),
        );
    }
    match crate::policy::u64_field("policy", &refs.policy) {
        Ok(p) if p == r.policy => add("refs.policy", Status::Pass, format!("POLICY 0x{p:x}")),
        Ok(p) => add(
            "refs.policy",
            Status::Fail,
            format!("POLICY 0x{:x} (offset 0x008) != refs 0x{p:x}", r.policy),
        ),
        Err(e) => add("refs.policy", Status::Fail, e.to_string()),
    }
    match (
        refs.guest_vmpl,
        manifest_parsed.as_ref().and_then(|p| p.vigil),
    ) {
        (Some(g), Some(v)) => {
            let launch_ok = launch.map(|l| l.guest_vmpl == g).unwrap_or(true);
            if v.guest_vmpl == g && launch_ok {
                add(
                    "refs.guest_vmpl",
                    Status::Pass,
                    format!(
                        "guest VMPL {g} (manifest{})",
                        if launch.is_some() {
                            ", launch record"
                        } else {
                            ""
                        }
                    ),
                );
            } else {
                add(
                    "refs.guest_vmpl",
                    Status::Fail,
                    format!(
                        "refs guest_vmpl {g}, manifest {}, launch record {:?}",
                        v.guest_vmpl,
                        launch.map(|l| l.guest_vmpl)
                    ),
                );
            }
        }
        _ => add(
            "refs.guest_vmpl",
            Status::Skip,
            "needs refs guest_vmpl and a manifest with a Vigil entry".into(),
        ),
    }
    add("refs.sev_features", Status::Skip, "the report does not carry the boot VMSA's SEV features; they are covered by the launch measurement".into());
}
