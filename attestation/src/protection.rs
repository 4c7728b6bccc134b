//! The guest's protection as the attested event log records it (Vigil protection
//! protocol, docs/protocols.md): which kernel text the guest locked, its SHA-384, and
//! the protection requests Vigil refused. Only records the manifest's head binds count;
//! only a PROTECT_LOCK record with result 0 means locked.
//!
//! Attack reasoning: the log travels through the untrusted guest, but the head the
//! report binds fixes every byte of the bound records, so what is read here is what
//! Vigil wrote. Vigil never writes two successful locks, nor a lock record whose ranges
//! disagree with its own counts; such a log is refused with the record and field named
//! (it could only come from a Vigil other than the measured one).
use svsm_abi::event_log::{self, kind, ProtectLockPayload, RecordHeader};
use svsm_abi::protect_protocol::{range_kind, RangeEntry, MAX_RANGES};
use zerocopy::FromBytes;

use crate::catalog as cat;
use crate::policy::Policy;
use crate::verify::Ctx;

/// A successful lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Its record number.
    pub record: u64,
    /// The ranges, sorted by GPA.
    pub ranges: Vec<RangeEntry>,
    /// SHA-384 of the text pages.
    pub text_digest: [u8; 48],
}

/// The protection records among the bound ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    /// The successful lock, if any.
    pub lock: Option<Lock>,
    /// PROTECT_REFUSED records.
    pub refused: u64,
    /// PROTECT_LOCK records with a non-zero result (the lock did not happen).
    pub failed_locks: u64,
}

/// A bound protection record Vigil could not have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// The log does not replay (framing, sequence, kind).
    #[error("event log: {0:?}")]
    Log(event_log::LogError),
    /// A second successful lock.
    #[error("record {record} at log offset {offset}: a second successful PROTECT_LOCK (the first is record {first})")]
    SecondLock {
        /// The record.
        record: u64,
        /// Its byte offset in the log.
        offset: usize,
        /// The first lock's record.
        first: u64,
    },
    /// A lock record field that contradicts the protocol's rules.
    #[error("record {record} at log offset {offset}: PROTECT_LOCK {field}: {why}")]
    BadLock {
        /// The record.
        record: u64,
        /// Its byte offset in the log.
        offset: usize,
        /// The payload field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Reads the protection records among the first `bound` records of `log`.
pub fn replay(log: &[u8], bound: u64) -> Result<Protection, ProtectionError> {
    let mut out = Protection::default();
    let mut err = None;
    let (mut idx, mut offset) = (0u64, 0usize);
    event_log::replay(log, |h: &RecordHeader, p| {
        if idx < bound && err.is_none() {
            if let Err(e) = record(&mut out, h, p, idx, offset) {
                err = Some(e);
            }
        }
        idx += 1;
        offset += event_log::RECORD_HEADER_SIZE + p.len();
    })
    .map_err(ProtectionError::Log)?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn record(
    out: &mut Protection,
    h: &RecordHeader,
    p: &[u8],
    record: u64,
    offset: usize,
) -> Result<(), ProtectionError> {
    match h.kind {
        kind::PROTECT_REFUSED => out.refused += 1,
        kind::PROTECT_LOCK if h.result != 0 => out.failed_locks += 1,
        kind::PROTECT_LOCK => {
            if let Some(l) = &out.lock {
                return Err(ProtectionError::SecondLock {
                    record,
                    offset,
                    first: l.record,
                });
            }
            // The length was checked by the replay; the read cannot fail.
            let pl = ProtectLockPayload::read_from_bytes(p)
                .map_err(|_| bad(record, offset, "payload", "wrong length".into()))?;
            out.lock = Some(check_lock(&pl, record, offset)?);
        }
        _ => {}
    }
    Ok(())
}

fn bad(record: u64, offset: usize, field: &'static str, why: String) -> ProtectionError {
    ProtectionError::BadLock {
        record,
        offset,
        field,
        why,
    }
}

/// The rules Vigil's LOCK keeps (docs/protocols.md): 1 to 16 ranges, the rest zero;
/// each a known kind, at least one page, 4 KiB aligned; sorted by GPA without overlap;
/// at least one text range; the page counts equal the ranges'.
fn check_lock(p: &ProtectLockPayload, record: u64, offset: usize) -> Result<Lock, ProtectionError> {
    let n = p.range_count as usize;
    let e = |f, w: String| bad(record, offset, f, w);
    if n == 0 || n > MAX_RANGES {
        return Err(e("range_count", format!("{n} is outside 1..=16")));
    }
    if p.ranges[n..].iter().any(|r| *r != RangeEntry::default()) {
        return Err(e(
            "ranges",
            format!("entries after range_count {n} are not zero"),
        ));
    }
    let ranges = p.ranges[..n].to_vec();
    let mut end = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let bad_kind = r.kind != range_kind::TEXT && r.kind != range_kind::RODATA;
        if bad_kind || r.pages == 0 || r.gpa % 4096 != 0 || r.gpa < end {
            return Err(e(
                "ranges",
                format!(
                    "range {i} ({}) is malformed, unsorted or overlapping",
                    describe_range(r)
                ),
            ));
        }
        end = r.gpa.saturating_add(r.pages as u64 * 4096);
    }
    let sum = |k| {
        ranges
            .iter()
            .filter(|r| r.kind == k)
            .map(|r| r.pages)
            .sum::<u32>()
    };
    if sum(range_kind::TEXT) == 0 || sum(range_kind::TEXT) != p.text_pages {
        return Err(e(
            "text_pages",
            format!(
                "{} for ranges holding {} text pages",
                p.text_pages,
                sum(range_kind::TEXT)
            ),
        ));
    }
    if sum(range_kind::RODATA) != p.rodata_pages {
        return Err(e(
            "rodata_pages",
            format!(
                "{} for ranges holding {} read-only pages",
                p.rodata_pages,
                sum(range_kind::RODATA)
            ),
        ));
    }
    Ok(Lock {
        record,
        ranges,
        text_digest: p.text_digest,
    })
}

fn describe_range(r: &RangeEntry) -> String {
    let name = match r.kind {
        range_kind::TEXT => "text",
        range_kind::RODATA => "rodata",
        _ => "kind?",
    };
    let end = r.gpa.saturating_add(r.pages as u64 * 4096);
    format!("{name} 0x{:x}-0x{end:x}, {} page(s)", r.gpa, r.pages)
}

/// One line: the locked ranges and the text digest, or that the guest never locked.
pub fn describe(p: &Protection) -> String {
    let tail = format!(
        "{} refused protection request(s), {} failed lock(s) bound",
        p.refused, p.failed_locks
    );
    match &p.lock {
        None => format!("the guest never locked its text; {tail}"),
        Some(l) => format!(
            "locked at record {}: {}; text SHA-384 {}; {tail}",
            l.record,
            l.ranges
                .iter()
                .map(describe_range)
                .collect::<Vec<_>>()
                .join("; "),
            hex::encode(l.text_digest)
        ),
    }
}

/// `svsm.protection`, `policy.locked_text`, `policy.text_digest`. `bound` is the
/// manifest's record count when `svsm.event_log` passed, else None.
pub(crate) fn checks(cx: &mut Ctx, log: Option<&[u8]>, bound: Option<u64>, policy: &Policy) {
    let seen = match (log, bound) {
        (Some(l), Some(b)) => match replay(l, b) {
            Ok(p) => {
                cx.pass(cat::SVSM_PROTECTION, describe(&p));
                Some(p)
            }
            Err(e) => {
                cx.fail(cat::SVSM_PROTECTION, e.to_string());
                None
            }
        },
        _ => {
            cx.skip(
                cat::SVSM_PROTECTION,
                "no event log whose head the manifest binds",
            );
            None
        }
    };
    policy_checks(cx, seen.as_ref(), policy);
}

/// A requirement without evidence fails: a relying party that asks for a locked guest
/// must not accept a report whose log could not be read.
fn policy_checks(cx: &mut Ctx, seen: Option<&Protection>, policy: &Policy) {
    let lock = seen.and_then(|p| p.lock.as_ref());
    let why_not = match seen {
        None => "no bound event log to read the protection from",
        Some(_) => {
            "the bound event log has no successful PROTECT_LOCK: the guest never locked its text"
        }
    };
    if policy.require_locked_text == Some(true) {
        match lock {
            Some(l) => cx.pass(
                cat::POLICY_LOCKED_TEXT,
                format!("locked at record {}", l.record),
            ),
            None => cx.fail(cat::POLICY_LOCKED_TEXT, why_not),
        }
    }
    if let Some(allowed) = &policy.text_digests {
        match lock {
            Some(l) => {
                let d = hex::encode(l.text_digest);
                cx.cond(
                    cat::POLICY_TEXT_DIGEST,
                    allowed.iter().any(|a| a.eq_ignore_ascii_case(&d)),
                    format!("text SHA-384 {d} is allowed"),
                    format!("text SHA-384 {d} is not in text_digests"),
                );
            }
            None => cx.fail(cat::POLICY_TEXT_DIGEST, why_not),
        }
    }
}
