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

use crate::catalog as cat;
use crate::policy::Policy;
use crate::verify::{Ctx, Evidence};

/// Reference values written by `vigil-igvm refs` (schema "vigil-refs/1"); unknown
/// fields are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct Refs {
    /// Must be "vigil-refs/1".
    pub schema: String,
    /// Launch digest, 96 hex.
    pub launch_digest: String,
    /// Guest policy, "0x30000". Required for SNP refs; absent for the native and
    /// emulated platforms, whose security processor reports a fixed POLICY of the
    /// project's own (nothing a launch chose), so comparing it would prove nothing.
    pub policy: Option<String>,
    /// SEV features of the boot VMSA.
    pub sev_features: Option<String>,
    /// vCPU count.
    pub vcpus: Option<u32>,
    /// VMPL of the guest.
    pub guest_vmpl: Option<u32>,
    /// Digest of the monitor policy.
    pub monitor_policy_digest: Option<String>,
    /// "snp", "native" or "emulated" (absent: SNP).
    pub platform: Option<String>,
    /// SHA-256 of the IGVM file.
    pub igvm_sha256: Option<String>,
}

/// A reference-values file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefsError {
    /// Not JSON of the expected shape (names line and column).
    #[error("refs: {0}")]
    Json(String),
    /// Another schema.
    #[error("refs: schema {0:?} is not \"vigil-refs/1\"")]
    Schema(String),
    /// A field that does not decode (names it).
    #[error("refs: {0}")]
    Field(#[from] crate::policy::PolicyError),
    /// A field that SNP refs must have.
    #[error("refs: field {0:?} is missing (refs for an SNP launch must give it)")]
    Missing(&'static str),
    /// A field that decodes to a value no launch can have (names it and the range).
    #[error("refs: {field} = {value} is outside {range}")]
    Range {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The values it may take.
        range: &'static str,
    },
}

/// Most vCPUs a launch of `vigil-igvm` can describe (its `--vcpus` bound).
pub const MAX_REFS_VCPUS: u32 = 4096;

impl Refs {
    /// Refs for a platform whose security processor is the project's software (the
    /// kernel's `native`/`emulated` platform), not an SNP launch.
    pub fn is_soft_platform(&self) -> bool {
        matches!(self.platform.as_deref(), Some("native" | "emulated"))
    }

    /// Parses and validates the JSON.
    pub fn from_json(text: &str) -> Result<Refs, RefsError> {
        let r: Refs = serde_json::from_str(text).map_err(|e| RefsError::Json(e.to_string()))?;
        if r.schema != "vigil-refs/1" {
            return Err(RefsError::Schema(r.schema));
        }
        // The native (emulated) platform has no SNP launch digest: vigil-igvm writes "".
        if !(r.launch_digest.is_empty() && r.platform.as_deref() == Some("native")) {
            crate::policy::hex_field("refs launch_digest", &r.launch_digest, 48)?;
        }
        match &r.policy {
            Some(p) => crate::policy::u64_field("refs policy", p).map(drop)?,
            None if !r.is_soft_platform() => return Err(RefsError::Missing("policy")),
            None => {}
        }
        // Every field that is parsed is validated here, so that a refs file with a
        // malformed value is refused as a whole instead of half-used.
        if let Some(f) = &r.sev_features {
            crate::policy::u64_field("refs sev_features", f)?;
        }
        if let Some(v) = r.vcpus {
            if !(1..=MAX_REFS_VCPUS).contains(&v) {
                return Err(RefsError::Range {
                    field: "vcpus",
                    value: v.to_string(),
                    range: "1..=4096",
                });
            }
        }
        if let Some(g) = r.guest_vmpl {
            if !(1..=3).contains(&g) {
                return Err(RefsError::Range {
                    field: "guest_vmpl",
                    value: g.to_string(),
                    range: "1..=3",
                });
            }
        }
        if let Some(d) = &r.monitor_policy_digest {
            crate::policy::hex_field("refs monitor_policy_digest", d, 48)?;
        }
        if let Some(d) = &r.igvm_sha256 {
            crate::policy::hex_field("refs igvm_sha256", d, 32)?;
        }
        if let Some(p) = &r.platform {
            if !["snp", "native", "emulated"].contains(&p.as_str()) {
                return Err(RefsError::Range {
                    field: "platform",
                    value: format!("{p:?}"),
                    range: "\"snp\", \"native\", \"emulated\"",
                });
            }
        }
        Ok(r)
    }
}

/// Why a services manifest is refused (#58019, attestation protocol: services manifest
/// layout), with the byte offset where one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The ABI parser's refusal (GUID, size, bounds).
    #[error("manifest: {0:?}")]
    Abi(ap::ManifestError),
    /// A region does not start where the previous one ended.
    #[error("manifest: data at byte offset {at} does not follow the previous data (expected offset {expected}): gap or overlap")]
    Gap {
        /// Where the region starts.
        at: usize,
        /// Where it should.
        expected: usize,
    },
    /// Bytes after the last region.
    #[error("manifest: {count} trailing bytes from offset {at}")]
    Trailing {
        /// How many.
        count: usize,
        /// From where.
        at: usize,
    },
    /// Two entries with one GUID.
    #[error("manifest: entry {0} repeats a GUID")]
    DuplicateGuid(usize),
    /// Vigil's entry is not 64 bytes.
    #[error("manifest: Vigil entry at offset {at} is {len} bytes, expected 64")]
    VigilSize {
        /// Offset of its data.
        at: usize,
        /// Its length.
        len: usize,
    },
    /// Vigil's entry has another version.
    #[error("manifest: Vigil entry version {version} at offset {at} is not 1")]
    VigilVersion {
        /// Offset of its data.
        at: usize,
        /// The version found.
        version: u32,
    },
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
pub fn parse_manifest_strict(m: &[u8]) -> Result<ParsedManifest, ManifestError> {
    let mut entries: Vec<(ap::Guid, usize, usize)> = Vec::new();
    let base = m.as_ptr() as usize;
    let hdr = parse_manifest(m, |g, d| {
        entries.push((g, (d.as_ptr() as usize).wrapping_sub(base), d.len()));
    })
    .map_err(ManifestError::Abi)?;
    let table_end = 24 + 24 * entries.len();
    let mut spans: Vec<(usize, usize)> = entries.iter().map(|e| (e.1, e.1 + e.2)).collect();
    spans.sort();
    let mut pos = table_end;
    for (s, e) in &spans {
        if *s != pos {
            return Err(ManifestError::Gap {
                at: *s,
                expected: pos,
            });
        }
        pos = *e;
    }
    if pos != m.len() {
        return Err(ManifestError::Trailing {
            count: m.len() - pos,
            at: pos,
        });
    }
    for (i, a) in entries.iter().enumerate() {
        if entries[..i].iter().any(|b| b.0 == a.0) {
            return Err(ManifestError::DuplicateGuid(i));
        }
    }
    let mut vigil = None;
    if let Some(e) = entries.iter().find(|e| e.0 == VIGIL_SERVICE_GUID) {
        let d = &m[e.1..e.1 + e.2];
        let v = VigilServiceData::read_from_bytes(d).map_err(|_| ManifestError::VigilSize {
            at: e.1,
            len: d.len(),
        })?;
        if v.version != VIGIL_SERVICE_DATA_VERSION {
            return Err(ManifestError::VigilVersion {
                at: e.1,
                version: v.version,
            });
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
pub(crate) fn checks(cx: &mut Ctx, r: &AttestationReport, ev: &Evidence, policy: &Policy) {
    let manifest = binding(cx, r, ev);
    let vigil = manifest.as_ref().and_then(|p| p.vigil);
    let (log_ok, launch) = event_log_check(cx, r, ev.event_log.as_deref(), vigil);
    let bound = vigil.filter(|_| log_ok).map(|v| v.record_count);
    crate::protection::checks(cx, ev.event_log.as_deref(), bound, policy);
    match &ev.refs {
        Some(refs) => refs_checks(cx, r, refs, vigil, launch),
        None => cx.skip(cat::REFS, "no --refs given"),
    }
}

/// `svsm.report_data`, `svsm.vmpl`, `svsm.manifest`: the nonce and manifest are bound
/// by REPORT_DATA (#58019, SVSM_ATTEST_SERVICES: REPORT_DATA = SHA-512(nonce ||
/// manifest)), the report comes from VMPL0, and the manifest reads strictly.
fn binding(cx: &mut Ctx, r: &AttestationReport, ev: &Evidence) -> Option<ParsedManifest> {
    let defs = [cat::SVSM_REPORT_DATA, cat::SVSM_VMPL, cat::SVSM_MANIFEST];
    let (n, m) = match (&ev.nonce, &ev.manifest) {
        (Some(n), Some(m)) => (n, m),
        (None, None) => {
            for d in defs {
                cx.skip(d, "no --nonce/--manifest given");
            }
            return None;
        }
        _ => {
            for d in defs {
                cx.fail(d, "--nonce and --manifest must be given together");
            }
            return None;
        }
    };
    let want = ap::report_data(n, m);
    cx.cond(
        cat::SVSM_REPORT_DATA,
        want == r.report_data,
        "REPORT_DATA = SHA-512(nonce || manifest)",
        format!(
            "REPORT_DATA (offset 0x050) is not SHA-512(nonce || manifest) = {}",
            hex::encode(want)
        ),
    );
    cx.cond(
        cat::SVSM_VMPL,
        r.vmpl == 0,
        "report requested at VMPL0 (by the SVSM)",
        format!(
            "VMPL {} (offset 0x030): an SVSM report must come from VMPL0",
            r.vmpl
        ),
    );
    match parse_manifest_strict(m) {
        Ok(p) => {
            cx.pass(
                cat::SVSM_MANIFEST,
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
            Some(p)
        }
        Err(e) => {
            cx.fail(cat::SVSM_MANIFEST, e.to_string());
            None
        }
    }
}

/// What replaying a log against the manifest's Vigil entry found.
struct Replay {
    /// Records in the log.
    records: u64,
    /// Head after the manifest's record_count records (None: the log is shorter).
    bound_head: Option<[u8; event_log::HEAD_SIZE]>,
    /// Kind and payload of record number record_count, if present.
    attest: Option<(u16, Option<AttestPayload>)>,
    /// ACCESS_REFUSED records among the bound ones.
    refused: u64,
    /// Payload of a LAUNCH record 0.
    launch: Option<LaunchPayload>,
}

/// Replays `log` with the ABI's `replay` (which checks every record's framing and
/// sequence) and notes what the head binds.
fn replay(log: &[u8], v: &VigilServiceData) -> Result<Replay, event_log::LogError> {
    let mut idx = 0u64;
    let mut head = event_log::H0;
    let mut out = Replay {
        records: 0,
        bound_head: (v.record_count == 0).then_some(event_log::H0),
        attest: None,
        refused: 0,
        launch: None,
    };
    let (n, _) = event_log::replay(log, |h, p| {
        if idx == 0 && h.kind == kind::LAUNCH {
            out.launch = LaunchPayload::read_from_bytes(p).ok();
        }
        // Guest accesses Vigil refused (ACCESS_REFUSED, docs/protocols.md) among the
        // records the head binds are reported, so that a relying party sees that the
        // guest touched memory it may not.
        if h.kind == kind::ACCESS_REFUSED && idx < v.record_count {
            out.refused += 1;
        }
        let mut rec = h.as_bytes().to_vec();
        rec.extend_from_slice(p);
        head = event_log::extend(&head, &rec);
        idx += 1;
        if idx == v.record_count {
            out.bound_head = Some(head);
        }
        if idx == v.record_count + 1 {
            out.attest = Some((h.kind, AttestPayload::read_from_bytes(p).ok()));
        }
    })?;
    out.records = n;
    Ok(out)
}

/// `svsm.event_log`: the head covers records 0..record_count-1; record number
/// record_count, if present, is the ATTEST call's own record (docs/protocols.md), which
/// must carry this report's REPORT_DATA; later records are not bound. Returns whether
/// the log passed and the launch record's payload, if it did.
fn event_log_check(
    cx: &mut Ctx,
    r: &AttestationReport,
    log: Option<&[u8]>,
    vigil: Option<VigilServiceData>,
) -> (bool, Option<LaunchPayload>) {
    let d = cat::SVSM_EVENT_LOG;
    let (log, v) = match (log, vigil) {
        (Some(l), Some(v)) => (l, v),
        (Some(_), None) => {
            cx.fail(
                d,
                "event log given but no valid manifest with a Vigil entry to compare it with",
            );
            return (false, None);
        }
        (None, Some(_)) => {
            cx.skip(
                d,
                "manifest has a Vigil entry; no --event-log given to replay",
            );
            return (false, None);
        }
        (None, None) => {
            cx.skip(d, "no --event-log given");
            return (false, None);
        }
    };
    let rp = match replay(log, &v) {
        Ok(rp) => rp,
        Err(e) => {
            cx.fail(d, format!("event log: {e:?}"));
            return (false, None);
        }
    };
    let (n, refused) = (rp.records, rp.refused);
    let Some(h) = rp.bound_head else {
        cx.fail(
            d,
            format!("log has {n} records, the manifest binds {}", v.record_count),
        );
        return (false, None);
    };
    if h != v.log_head {
        cx.fail(
            d,
            format!(
                "head after {} records is {}, the manifest says {}",
                v.record_count,
                hex::encode(h),
                hex::encode(v.log_head)
            ),
        );
        return (false, None);
    }
    match rp.attest {
        None => cx.pass(d, format!("replayed {n} records; head {} = manifest; {refused} refused guest access(es) bound", hex::encode(&h[..8]))),
        Some((kind::ATTEST, Some(a))) if a.report_data == r.report_data => cx.pass(d, format!(
            "replayed {n} records; head after {} = manifest ({}); {refused} refused guest access(es) bound; record {} is this ATTEST call with the report's REPORT_DATA; {} later record(s) not bound by this report",
            v.record_count, hex::encode(&h[..8]), v.record_count, n - v.record_count - 1
        )),
        Some(_) => {
            cx.fail(d, format!("record {} (after the bound head) is not an ATTEST record carrying this report's REPORT_DATA", v.record_count));
            return (false, None);
        }
    }
    (true, rp.launch)
}

/// `refs.*`: the reference values of `vigil-igvm refs` against the report, the
/// manifest and the launch record.
fn refs_checks(
    cx: &mut Ctx,
    r: &AttestationReport,
    refs: &Refs,
    vigil: Option<VigilServiceData>,
    launch: Option<LaunchPayload>,
) {
    if refs.launch_digest.is_empty() {
        cx.skip(
            cat::REFS_MEASUREMENT,
            "refs are for the native (emulated) platform, which has no SNP launch digest",
        );
    } else {
        // Validated by Refs::from_json; a refs value built in code that does not decode
        // fails the comparison.
        let want = crate::policy::hex_field("launch_digest", &refs.launch_digest, 48);
        cx.cond(
            cat::REFS_MEASUREMENT,
            want.as_deref().ok() == Some(&r.measurement[..]),
            "MEASUREMENT = launch_digest",
            format!(
                "MEASUREMENT {} (offset 0x090) != launch_digest {}",
                hex::encode(r.measurement),
                refs.launch_digest
            ),
        );
    }
    // On the native and emulated platforms POLICY is a constant of the project's own
    // software security processor: equal to the refs' value by construction, so the
    // comparison is not made (and not counted as a pass). On SNP the security processor
    // reports the policy the launch used, which `vigil-igvm refs` read from the file.
    match (&refs.policy, refs.is_soft_platform()) {
        (_, true) => cx.skip(
            cat::REFS_POLICY,
            format!(
                "platform {}: its software security processor reports a fixed POLICY (0x{:x}), not one a launch chose; compared on SNP only",
                refs.platform.as_deref().unwrap_or_default(),
                r.policy
            ),
        ),
        (Some(p), false) => match crate::policy::u64_field("policy", p) {
            Ok(p) => cx.cond(
                cat::REFS_POLICY,
                p == r.policy,
                format!("POLICY 0x{p:x}"),
                format!("POLICY 0x{:x} (offset 0x008) != refs 0x{p:x}", r.policy),
            ),
            Err(e) => cx.fail(cat::REFS_POLICY, e.to_string()),
        },
        (None, false) => cx.fail(cat::REFS_POLICY, "the refs give no policy"),
    }
    match (refs.guest_vmpl, vigil) {
        (Some(g), Some(v)) => {
            let launch_ok = launch.map(|l| l.guest_vmpl == g).unwrap_or(true);
            cx.cond(
                cat::REFS_GUEST_VMPL,
                v.guest_vmpl == g && launch_ok,
                format!(
                    "guest VMPL {g} (manifest{})",
                    if launch.is_some() {
                        ", launch record"
                    } else {
                        ""
                    }
                ),
                format!(
                    "refs guest_vmpl {g}, manifest {}, launch record {:?}",
                    v.guest_vmpl,
                    launch.map(|l| l.guest_vmpl)
                ),
            );
        }
        _ => cx.skip(
            cat::REFS_GUEST_VMPL,
            "needs refs guest_vmpl and a manifest with a Vigil entry",
        ),
    }
    cx.skip(cat::REFS_SEV_FEATURES, "the report does not carry the boot VMSA's SEV features; they are covered by the launch measurement");
    // The evidence carries none of these three: each is bound only through MEASUREMENT
    // (the VMSAs of the launch vCPUs, the monitor policy page and every page of the IGVM
    // file are measured). They are named here so that a relying party sees they were
    // not compared one by one, and with which value the MEASUREMENT match holds.
    let bound = |v: Option<String>| match v {
        Some(v) => format!("{v}: not carried in the evidence; bound only through MEASUREMENT"),
        None => "not in the refs".to_string(),
    };
    cx.skip(
        cat::REFS_VCPUS,
        bound(refs.vcpus.map(|v| format!("{v} vCPU(s)"))),
    );
    cx.skip(
        cat::REFS_MONITOR_POLICY,
        bound(
            refs.monitor_policy_digest
                .clone()
                .map(|d| format!("monitor policy digest {d}")),
        ),
    );
    cx.skip(
        cat::REFS_IGVM_FILE,
        bound(
            refs.igvm_sha256
                .clone()
                .map(|d| format!("IGVM file SHA-256 {d}")),
        ),
    );
}
