//! The model's out-of-band record: what happened in the machine, kept by the model where
//! neither Vigil nor the guest can write, and written as text to the model's own port
//! for the test harness (issue 9, item 7). This module is the record and its text form;
//! the bare-metal model fills it.
//!
//! Text form, one fact per line, `key=value` fields separated by spaces, lines in this
//! order: `launch digest=<96 hex>`, then `exit code=<hex> vmpl=<n> count=<n>` per (exit
//! code, VMPL) in ascending order, then `rmp-fault gpa=<hex> vmpl=<n> access=<r|w|ux|sx>
//! error=<hex>` per fault kept (the first 256) and `rmp-faults total=<n>`, then
//! `terminate vcpu=<n> vmpl=<n> set=<n> code=<n>` per termination request, then `stop
//! vcpu=<n> reason=<name> count=<n>` per (vCPU, reason) a vCPU stopped for
//! (`machine::Stop::reason`).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::access::Kind;

/// RMP faults kept in full (later ones are only counted).
pub const MAX_FAULTS: usize = 256;

/// One refused access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmpFault {
    /// GPA.
    pub gpa: u64,
    /// VMPL.
    pub vmpl: u8,
    /// Kind of access.
    pub access: Kind,
    /// The nested page fault's EXITINFO1.
    pub error_code: u64,
}

/// One termination request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termination {
    /// vCPU.
    pub vcpu: u32,
    /// VMPL.
    pub vmpl: u8,
    /// Reason code set.
    pub set: u8,
    /// Reason code.
    pub code: u8,
}

/// The record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The launch digest.
    pub launch_digest: Option<[u8; 48]>,
    /// Exits by (exit code, VMPL).
    pub exits: BTreeMap<(u64, u8), u64>,
    /// The first [`MAX_FAULTS`] RMP faults.
    pub faults: Vec<RmpFault>,
    /// All RMP faults.
    pub faults_total: u64,
    /// Termination requests.
    pub terminations: Vec<Termination>,
    /// Why vCPUs stopped: (vCPU, reason) -> count.
    pub stops: BTreeMap<(u32, String), u64>,
}

/// A line of the text form that does not parse: its number (from 1) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line number.
    pub line: usize,
    /// What is wrong.
    pub what: &'static str,
}

fn access_name(k: Kind) -> &'static str {
    match k {
        Kind::Read => "r",
        Kind::Write => "w",
        Kind::UserExec => "ux",
        Kind::SuperExec => "sx",
    }
}

impl Record {
    /// Count one exit.
    pub fn exit(&mut self, code: u64, vmpl: u8) {
        *self.exits.entry((code, vmpl)).or_insert(0) += 1;
    }

    /// Count one stop of `vcpu` for `reason` (a name without spaces or '=').
    pub fn stop(&mut self, vcpu: u32, reason: &str) {
        *self.stops.entry((vcpu, String::from(reason))).or_insert(0) += 1;
    }

    /// Note one RMP fault.
    pub fn rmp_fault(&mut self, f: RmpFault) {
        self.faults_total += 1;
        if self.faults.len() < MAX_FAULTS {
            self.faults.push(f);
        }
    }

    /// The text form.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(d) = self.launch_digest {
            s.push_str("launch digest=");
            for b in d {
                let _ = write!(s, "{b:02x}");
            }
            s.push('\n');
        }
        for ((code, vmpl), n) in &self.exits {
            let _ = writeln!(s, "exit code={code:#x} vmpl={vmpl} count={n}");
        }
        for f in &self.faults {
            let _ = writeln!(
                s,
                "rmp-fault gpa={:#x} vmpl={} access={} error={:#x}",
                f.gpa,
                f.vmpl,
                access_name(f.access),
                f.error_code
            );
        }
        let _ = writeln!(s, "rmp-faults total={}", self.faults_total);
        for t in &self.terminations {
            let _ = writeln!(
                s,
                "terminate vcpu={} vmpl={} set={} code={}",
                t.vcpu, t.vmpl, t.set, t.code
            );
        }
        for ((vcpu, reason), n) in &self.stops {
            let _ = writeln!(s, "stop vcpu={vcpu} reason={reason} count={n}");
        }
        s
    }

    /// Read the text form back (the harness's side).
    pub fn parse(text: &str) -> Result<Record, ParseError> {
        let mut r = Record::default();
        for (i, line) in text.lines().enumerate() {
            let err = |what| ParseError { line: i + 1, what };
            let mut words = line.split(' ');
            let kind = words.next().unwrap_or("");
            let fields: Vec<(&str, &str)> = words
                .map(|w| w.split_once('=').ok_or(err("field without '='")))
                .collect::<Result<_, _>>()?;
            let get = |k: &'static str| -> Result<&str, ParseError> {
                fields
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| *v)
                    .ok_or(err(k))
            };
            let num = |k: &'static str| -> Result<u64, ParseError> {
                let v = get(k)?;
                let p = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => v.parse(),
                };
                p.map_err(|_| err(k))
            };
            let small = |k: &'static str| -> Result<u8, ParseError> {
                u8::try_from(num(k)?).map_err(|_| err(k))
            };
            match kind {
                "launch" => r.launch_digest = Some(digest(get("digest")?).ok_or(err("digest"))?),
                "exit" => {
                    r.exits
                        .insert((num("code")?, small("vmpl")?), num("count")?);
                }
                "rmp-fault" => r.faults.push(RmpFault {
                    gpa: num("gpa")?,
                    vmpl: small("vmpl")?,
                    access: match get("access")? {
                        "r" => Kind::Read,
                        "w" => Kind::Write,
                        "ux" => Kind::UserExec,
                        "sx" => Kind::SuperExec,
                        _ => return Err(err("access")),
                    },
                    error_code: num("error")?,
                }),
                "rmp-faults" => r.faults_total = num("total")?,
                "terminate" => r.terminations.push(Termination {
                    vcpu: u32::try_from(num("vcpu")?).map_err(|_| err("vcpu"))?,
                    vmpl: small("vmpl")?,
                    set: small("set")?,
                    code: small("code")?,
                }),
                "stop" => {
                    let vcpu = u32::try_from(num("vcpu")?).map_err(|_| err("vcpu"))?;
                    let reason = String::from(get("reason")?);
                    r.stops.insert((vcpu, reason), num("count")?);
                }
                _ => return Err(err("unknown record kind")),
            }
        }
        Ok(r)
    }
}

fn digest(hex: &str) -> Option<[u8; 48]> {
    if hex.len() != 96 || !hex.is_ascii() {
        return None;
    }
    let mut d = [0u8; 48];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut r = Record {
            launch_digest: Some([0xab; 48]),
            ..Record::default()
        };
        r.exit(0x72, 0);
        r.exit(0x72, 0);
        r.exit(0x8000_0018, 2);
        r.rmp_fault(RmpFault {
            gpa: 0x10_0000,
            vmpl: 2,
            access: Kind::Write,
            error_code: 0x1_8000_0007,
        });
        r.terminations.push(Termination {
            vcpu: 1,
            vmpl: 0,
            set: 1,
            code: 0x12,
        });
        r.stop(1, "terminated");
        r.stop(0, "halted");
        r.stop(0, "halted");
        r
    }

    #[test]
    fn render_then_parse_round_trips() {
        let r = sample();
        let text = r.render();
        assert!(text.contains("exit code=0x72 vmpl=0 count=2\n"));
        assert!(text.contains("rmp-fault gpa=0x100000 vmpl=2 access=w error=0x180000007\n"));
        assert!(text.contains("stop vcpu=0 reason=halted count=2\n"));
        assert_eq!(Record::parse(&text), Ok(r));
    }

    #[test]
    fn faults_beyond_the_cap_are_counted_not_kept() {
        let mut r = Record::default();
        for i in 0..300 {
            r.rmp_fault(RmpFault {
                gpa: i,
                vmpl: 0,
                access: Kind::Read,
                error_code: 0,
            });
        }
        assert_eq!((r.faults.len(), r.faults_total), (MAX_FAULTS, 300));
    }

    #[test]
    fn bad_lines_are_named_with_their_number() {
        let bad = [
            ("exit code=0x72 vmpl=0\n", "count"),
            ("rmp-faults total=1\nexit code=zz vmpl=0 count=1\n", "code"),
            ("launch digest=00\n", "digest"),
            ("terminate vcpu=1 vmpl=300 set=1 code=1\n", "vmpl"),
            ("rmp-fault gpa=0 vmpl=0 access=x error=0\n", "access"),
            ("whatever\n", "unknown record kind"),
            ("stop vcpu=0 count=1\n", "reason"),
            ("exit code\n", "field without '='"),
        ];
        for (text, what) in bad {
            let e = Record::parse(text).unwrap_err();
            assert_eq!(e.what, what, "{text}");
        }
        assert_eq!(
            Record::parse("rmp-faults total=1\nexit code=zz vmpl=0 count=1\n")
                .unwrap_err()
                .line,
            2
        );
    }
}
