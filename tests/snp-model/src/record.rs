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
//! (`machine::Stop::reason`), then `injection-refused vcpu=<n> vmpl=<n> eventinj=<hex>`
//! per host injection RestrictedInjection refused (`machine::host_inject`), then the
//! timing facts for the bench: `tsc hz=<n>` (the model's TSC frequency, if it knows it),
//! `mark name=<name> vcpu=<n> vmpl=<n> tsc=<n>` per first entry of a VMPL (names
//! `first-entry`), and `round-trip vcpu=<n> vmpl=<n> exits=<n> cycles=<n>` per trip
//! from VMPL0 to a lower VMPL and back (the first [`MAX_TRIPS`] kept): the host exits
//! from VMPL0's switch request to the lower VMPL's request to return, both counted,
//! and the TSC cycles between those two exits.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::access::Kind;

/// RMP faults kept in full (later ones are only counted).
pub const MAX_FAULTS: usize = 256;

/// Round trips kept in full.
pub const MAX_TRIPS: usize = 64;

/// A host injection RestrictedInjection refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedInjection {
    /// vCPU.
    pub vcpu: u32,
    /// VMPL of the VMSA.
    pub vmpl: u8,
    /// The EVENTINJ the host asked for.
    pub event_inj: u64,
}

/// A timed event (the first entry of a VMPL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// What happened (no spaces or '=').
    pub name: String,
    /// vCPU.
    pub vcpu: u32,
    /// VMPL.
    pub vmpl: u8,
    /// The model's TSC at the event.
    pub tsc: u64,
}

/// One trip from VMPL0 to a lower VMPL and back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    /// vCPU.
    pub vcpu: u32,
    /// The lower VMPL.
    pub vmpl: u8,
    /// Host exits from VMPL0's request to the lower VMPL's return request, both counted.
    pub exits: u64,
    /// TSC cycles between those two exits.
    pub cycles: u64,
}

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
    /// Host injections refused by RestrictedInjection.
    pub injections_refused: Vec<RefusedInjection>,
    /// The model's TSC frequency in Hz, if known.
    pub tsc_hz: Option<u64>,
    /// Timed events.
    pub marks: Vec<Mark>,
    /// The first [`MAX_TRIPS`] VMPL round trips.
    pub round_trips: Vec<RoundTrip>,
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

    /// Note one VMPL round trip (kept if fewer than [`MAX_TRIPS`] are).
    pub fn round_trip(&mut self, t: RoundTrip) {
        if self.round_trips.len() < MAX_TRIPS {
            self.round_trips.push(t);
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
        for i in &self.injections_refused {
            let _ = writeln!(
                s,
                "injection-refused vcpu={} vmpl={} eventinj={:#x}",
                i.vcpu, i.vmpl, i.event_inj
            );
        }
        if let Some(hz) = self.tsc_hz {
            let _ = writeln!(s, "tsc hz={hz}");
        }
        for m in &self.marks {
            let _ = writeln!(
                s,
                "mark name={} vcpu={} vmpl={} tsc={}",
                m.name, m.vcpu, m.vmpl, m.tsc
            );
        }
        for t in &self.round_trips {
            let _ = writeln!(
                s,
                "round-trip vcpu={} vmpl={} exits={} cycles={}",
                t.vcpu, t.vmpl, t.exits, t.cycles
            );
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
                "injection-refused" => r.injections_refused.push(RefusedInjection {
                    vcpu: u32::try_from(num("vcpu")?).map_err(|_| err("vcpu"))?,
                    vmpl: small("vmpl")?,
                    event_inj: num("eventinj")?,
                }),
                "tsc" => r.tsc_hz = Some(num("hz")?),
                "mark" => r.marks.push(Mark {
                    name: String::from(get("name")?),
                    vcpu: u32::try_from(num("vcpu")?).map_err(|_| err("vcpu"))?,
                    vmpl: small("vmpl")?,
                    tsc: num("tsc")?,
                }),
                "round-trip" => r.round_trips.push(RoundTrip {
                    vcpu: u32::try_from(num("vcpu")?).map_err(|_| err("vcpu"))?,
                    vmpl: small("vmpl")?,
                    exits: num("exits")?,
                    cycles: num("cycles")?,
                }),
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
        r.injections_refused.push(RefusedInjection {
            vcpu: 0,
            vmpl: 2,
            event_inj: 0x8000_0020,
        });
        r.tsc_hz = Some(2_000_000_000);
        r.marks.push(Mark {
            name: String::from("first-entry"),
            vcpu: 0,
            vmpl: 2,
            tsc: 123_456,
        });
        r.round_trip(RoundTrip {
            vcpu: 0,
            vmpl: 2,
            exits: 4,
            cycles: 9_000,
        });
        r
    }

    #[test]
    fn timing_and_injection_lines_render_and_parse() {
        let text = sample().render();
        assert!(text.contains("injection-refused vcpu=0 vmpl=2 eventinj=0x80000020\n"));
        assert!(text.contains("tsc hz=2000000000\n"));
        assert!(text.contains("mark name=first-entry vcpu=0 vmpl=2 tsc=123456\n"));
        assert!(text.contains("round-trip vcpu=0 vmpl=2 exits=4 cycles=9000\n"));
        let r = Record::parse("round-trip vcpu=0 vmpl=2 exits=4 cycles=9000\ntsc hz=5\n").unwrap();
        assert_eq!(r.round_trips[0].exits, 4);
        assert_eq!(r.tsc_hz, Some(5));
        let e = Record::parse("round-trip vcpu=0 vmpl=2 cycles=1\n").unwrap_err();
        assert_eq!(e.what, "exits");
        let e = Record::parse("mark vcpu=0 vmpl=0 tsc=1\n").unwrap_err();
        assert_eq!(e.what, "name");
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
