//! What the Linux guest's init does that can be tested on the host: the modules it loads
//! and in which order, the nonce it reads from the console, and the framing of what it
//! prints. `src/main.rs` does the system calls.
//!
//! The init runs as PID 1 of an unmodified Debian trixie kernel (6.12) below Vigil. Its
//! attestation path is Linux's own: `sev-guest` registers an SNP provider with the TSM
//! report interface (`tsm`, on `configfs`), and a report entry with
//! `service_provider=svsm` makes the driver ask the SVSM (Vigil) through the SVSM
//! attestation protocol (Linux `drivers/virt/coco/sev-guest/sev-guest.c`,
//! `Documentation/ABI/testing/configfs-tsm`).
#![forbid(unsafe_code)]

use std::fmt::Write;

/// The modules, in load order: `tsm` needs `configfs`, `sev-guest` needs `tsm` (their
/// `depends=` in Debian's 6.12.117 build). Paths inside the initramfs.
pub const MODULES: [(&str, &str); 3] = [
    ("configfs", "/lib/modules/vigil/configfs.ko.xz"),
    ("tsm", "/lib/modules/vigil/tsm.ko.xz"),
    ("sev-guest", "/lib/modules/vigil/sev-guest.ko.xz"),
];

/// Where configfs is mounted and the report entry the init makes.
pub const TSM_REPORT: &str = "/sys/kernel/config/tsm/report/vigil0";

/// The report data length that configfs-tsm takes (`inblob`, at most 64 bytes).
pub const NONCE_LEN: usize = 64;

/// Line prefix of everything the init prints.
pub const PREFIX: &str = "vigil-init:";

/// What the init prints to ask for the nonce (xtask answers on the console).
pub const NONCE_PROMPT: &str = "vigil-init: nonce?";

/// Bytes per hex line in a blob frame.
pub const HEX_LINE: usize = 64;

/// Exit status through QEMU's debug-exit port: every step done.
pub const EXIT_OK: u8 = 0x10;
/// Exit status through QEMU's debug-exit port: some step failed.
pub const EXIT_FAILED: u8 = 0x11;

/// A nonce line that is not 128 hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceError {
    /// The line has this many characters (after trimming), not 128.
    Length(usize),
    /// The character at this offset is not a hex digit.
    NotHex(usize),
}

/// Parses the nonce xtask writes on the console: exactly 128 hex digits.
pub fn parse_nonce(line: &str) -> Result<[u8; NONCE_LEN], NonceError> {
    let t = line.trim();
    if t.len() != 2 * NONCE_LEN {
        return Err(NonceError::Length(t.len()));
    }
    let mut out = [0u8; NONCE_LEN];
    for (i, c) in t.bytes().enumerate() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(NonceError::NotHex(i)),
        };
        out[i / 2] |= if i.is_multiple_of(2) { v << 4 } else { v };
    }
    Ok(out)
}

/// The frame of one blob: `vigil-init: blob <name> <len>`, hex lines of
/// [`HEX_LINE`] bytes, `vigil-init: blob-end <name>`.
pub fn frame(name: &str, data: &[u8]) -> String {
    let mut s = format!("{PREFIX} blob {name} {}\n", data.len());
    for chunk in data.chunks(HEX_LINE) {
        for b in chunk {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{PREFIX} blob-end {name}");
    s
}

/// A frame that does not read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

/// Reads every blob frame in `lines` (the harness's side): (name, bytes).
pub fn read_frames(lines: &[String]) -> Result<Vec<(String, Vec<u8>)>, FrameError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(head) = lines[i].trim().strip_prefix("vigil-init: blob ") else {
            i += 1;
            continue;
        };
        let mut w = head.split(' ');
        let (Some(name), Some(len), None) = (w.next(), w.next(), w.next()) else {
            return Err(FrameError(format!(
                "line {}: bad blob header {head:?}",
                i + 1
            )));
        };
        let len: usize = len
            .parse()
            .map_err(|_| FrameError(format!("line {}: blob {name}: bad length {len:?}", i + 1)))?;
        let end = format!("vigil-init: blob-end {name}");
        let mut hex = String::new();
        i += 1;
        loop {
            let Some(l) = lines.get(i) else {
                return Err(FrameError(format!("blob {name}: no end line")));
            };
            i += 1;
            if l.trim() == end {
                break;
            }
            hex.push_str(l.trim());
        }
        let bytes = decode_hex(&hex).map_err(|e| FrameError(format!("blob {name}: {e}")))?;
        if bytes.len() != len {
            return Err(FrameError(format!(
                "blob {name}: {} bytes, header says {len}",
                bytes.len()
            )));
        }
        out.push((name.to_string(), bytes));
    }
    Ok(out)
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at digit {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_128_hex_digits_and_anything_else_is_named() {
        let n = parse_nonce(&format!("{}\n", "a5".repeat(64))).unwrap();
        assert_eq!(n, [0xa5; 64]);
        assert_eq!(parse_nonce("abcd"), Err(NonceError::Length(4)));
        let mut bad = "00".repeat(64);
        bad.replace_range(17..18, "g");
        assert_eq!(parse_nonce(&bad), Err(NonceError::NotHex(17)));
    }

    #[test]
    fn frames_read_back_and_damage_is_named() {
        let data: Vec<u8> = (0..=200u8).collect();
        let text = format!("noise\n{}{}", frame("report", &data), frame("empty", &[]));
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let f = read_frames(&lines).unwrap();
        assert_eq!(
            f,
            vec![("report".into(), data.clone()), ("empty".into(), vec![])]
        );
        // One hex line lost: the length no longer matches.
        let mut cut = lines.clone();
        cut.remove(2);
        let e = read_frames(&cut).unwrap_err();
        assert!(e.0.contains("header says 201"), "{e:?}");
        // No end line.
        let e = read_frames(&lines[..3]).unwrap_err();
        assert!(e.0.contains("no end line"), "{e:?}");
    }

    #[test]
    fn modules_load_in_dependency_order() {
        let names: Vec<&str> = MODULES.iter().map(|m| m.0).collect();
        assert_eq!(names, ["configfs", "tsm", "sev-guest"]);
    }
}
