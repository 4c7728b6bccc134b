//! What instruction the bytes at RIP are, as far as the machine needs to know: the
//! SEV-SNP instructions QEMU's SVM does not have (they raise #UD there), VMGEXIT vs
//! VMMCALL (both exit with code 0x81 there), RDMSR/WRMSR and HLT (their exits carry no
//! next RIP: QEMU has no next-RIP save), and their length.
//!
//! Encodings (APM vol. 3, each instruction's page): PVALIDATE F2 0F 01 FF; RMPADJUST
//! F3 0F 01 FE; RMPQUERY F3 0F 01 FD; VMGEXIT F3 0F 01 D9 (F2 0F 01 D9 too: APM vol. 3
//! VMGEXIT lists both); VMMCALL 0F 01 D9; INVLPGB 0F 01 FE; TLBSYNC 0F 01 FF; RDMSR
//! 0F 32; WRMSR 0F 30; HLT F4. Legacy prefixes (APM vol. 3 §1.2) and a REX prefix may
//! come first; of F2 and F3 the last one counts.

/// The longest x86 instruction (APM vol. 3 §1.1).
pub const MAX_LEN: usize = 15;

/// An instruction the machine handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// PVALIDATE.
    Pvalidate,
    /// RMPADJUST.
    Rmpadjust,
    /// RMPQUERY.
    Rmpquery,
    /// VMGEXIT.
    Vmgexit,
    /// VMMCALL.
    Vmmcall,
    /// INVLPGB.
    Invlpgb,
    /// TLBSYNC.
    Tlbsync,
    /// RDMSR.
    Rdmsr,
    /// WRMSR.
    Wrmsr,
    /// HLT.
    Hlt,
    /// Anything else (or too few bytes to tell).
    Other,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// What it is.
    pub insn: Insn,
    /// Its length in bytes, prefixes included (0 for `Insn::Other`).
    pub len: usize,
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65
    )
}

/// Decode the instruction at the start of `bytes` (the bytes at RIP; fewer than 15 when
/// the rest could not be read). `long_mode`: 64-bit code, where 0x40..0x4F are REX.
pub fn decode(bytes: &[u8], long_mode: bool) -> Decoded {
    let other = Decoded {
        insn: Insn::Other,
        len: 0,
    };
    let bytes = &bytes[..bytes.len().min(MAX_LEN)];
    let mut i = 0;
    // The last of F2/F3 is the mandatory prefix (APM vol. 3 §1.2, "Repeat Prefixes").
    let mut rep = None;
    while let Some(&b) = bytes.get(i) {
        if !is_legacy_prefix(b) {
            break;
        }
        if b == 0xf2 || b == 0xf3 {
            rep = Some(b);
        }
        i += 1;
    }
    if long_mode && bytes.get(i).is_some_and(|b| b & 0xf0 == 0x40) {
        i += 1;
    }
    let Some(rest) = bytes.get(i..) else {
        return other;
    };
    let (insn, n) = match (rep, rest) {
        (_, [0xf4, ..]) => (Insn::Hlt, 1),
        (_, [0x0f, 0x32, ..]) => (Insn::Rdmsr, 2),
        (_, [0x0f, 0x30, ..]) => (Insn::Wrmsr, 2),
        (Some(0xf2), [0x0f, 0x01, 0xff, ..]) => (Insn::Pvalidate, 3),
        (Some(0xf3), [0x0f, 0x01, 0xfe, ..]) => (Insn::Rmpadjust, 3),
        (Some(0xf3), [0x0f, 0x01, 0xfd, ..]) => (Insn::Rmpquery, 3),
        (Some(_), [0x0f, 0x01, 0xd9, ..]) => (Insn::Vmgexit, 3),
        (None, [0x0f, 0x01, 0xd9, ..]) => (Insn::Vmmcall, 3),
        (None, [0x0f, 0x01, 0xfe, ..]) => (Insn::Invlpgb, 3),
        (None, [0x0f, 0x01, 0xff, ..]) => (Insn::Tlbsync, 3),
        _ => return other,
    };
    Decoded { insn, len: i + n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> (Insn, usize) {
        let x = decode(b, true);
        (x.insn, x.len)
    }

    #[test]
    fn snp_instructions_and_their_lengths() {
        assert_eq!(d(&[0xf2, 0x0f, 0x01, 0xff]), (Insn::Pvalidate, 4));
        assert_eq!(d(&[0xf3, 0x0f, 0x01, 0xfe]), (Insn::Rmpadjust, 4));
        assert_eq!(d(&[0xf3, 0x0f, 0x01, 0xfd]), (Insn::Rmpquery, 4));
        assert_eq!(d(&[0x0f, 0x01, 0xfe]), (Insn::Invlpgb, 3));
        assert_eq!(d(&[0x0f, 0x01, 0xff]), (Insn::Tlbsync, 3));
    }

    #[test]
    fn vmgexit_is_told_from_vmmcall_by_its_prefix() {
        assert_eq!(d(&[0xf3, 0x0f, 0x01, 0xd9]), (Insn::Vmgexit, 4));
        assert_eq!(d(&[0xf2, 0x0f, 0x01, 0xd9]), (Insn::Vmgexit, 4));
        assert_eq!(d(&[0x0f, 0x01, 0xd9, 0x90]), (Insn::Vmmcall, 3));
        // An operand-size prefix is not a REP prefix.
        assert_eq!(d(&[0x66, 0x0f, 0x01, 0xd9]), (Insn::Vmmcall, 4));
    }

    #[test]
    fn the_last_rep_prefix_counts_and_rex_is_skipped_in_long_mode() {
        // F3 then F2: the F2 wins, so F2 0F 01 FE is not RMPADJUST.
        assert_eq!(d(&[0xf3, 0xf2, 0x0f, 0x01, 0xfe]), (Insn::Other, 0));
        assert_eq!(d(&[0xf3, 0xf2, 0x0f, 0x01, 0xff]), (Insn::Pvalidate, 5));
        assert_eq!(d(&[0xf2, 0x48, 0x0f, 0x01, 0xff]), (Insn::Pvalidate, 5));
        // Outside 64-bit mode 0x48 is DEC EAX, not a prefix.
        assert_eq!(decode(&[0x48, 0x0f, 0x30], false).insn, Insn::Other);
        assert_eq!(d(&[0x48, 0x0f, 0x30]), (Insn::Wrmsr, 3));
    }

    #[test]
    fn msr_hlt_and_unknown_bytes() {
        assert_eq!(d(&[0x0f, 0x32]), (Insn::Rdmsr, 2));
        assert_eq!(d(&[0xf4]), (Insn::Hlt, 1));
        assert_eq!(d(&[0x0f, 0x0b]), (Insn::Other, 0));
        assert_eq!(d(&[]), (Insn::Other, 0));
        // Cut short: the bytes after the prefix could not be read.
        assert_eq!(d(&[0xf2, 0x0f, 0x01]), (Insn::Other, 0));
        // Fifteen prefixes and no opcode.
        assert_eq!(d(&[0x66; 20]), (Insn::Other, 0));
    }
}
