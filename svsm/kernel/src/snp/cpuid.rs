//! CPUID answers from the SNP CPUID page, the only source Vigil trusts on SNP.
//!
//! The host proposes CPUID values at launch; the security processor checks them against
//! the CPU's capabilities and places them in the CPUID page (#56860, SNP_LAUNCH_UPDATE,
//! page type CPUID; layout `svsm_abi::cpuid::CpuidPage`). Under SNP the CPUID
//! instruction raises #VC (#56421, "CPUID": NAE 0x72), and asking the host through the
//! GHCB would take the host's word; so every CPUID Vigil answers, for itself or in its
//! #VC handler, comes from this page.
//!
//! Lookup rule (the rule Linux applies to the same page, `snp_cpuid_get_validated_func`
//! in arch/x86/coco/sev/shared.c, written here from the spec): an entry matches on EAX
//! in; for the sub-leaf-indexed leaves ([`is_indexed`]) also on ECX in. A leaf not in
//! the page answers all zeros (no host fallback). XCR0/XSS inputs are not matched: Vigil
//! enables no XSAVE feature, and leaf 0xD answers are reported as the page holds them.

use core::fmt;

use svsm_abi::cpuid::{CpuidFunction, CpuidPage, CPUID_MAX_ENTRIES};

/// Leaf 0x8000_001F (AMD memory encryption): EBX bits 5:0 hold the C-bit position
/// (APM vol. 3, CPUID Fn8000_001F_EBX).
pub const LEAF_MEM_ENCRYPTION: u32 = 0x8000_001f;

/// The lowest C-bit position Vigil accepts: the bootstrap page tables put the C-bit in
/// the high dword of each entry (bits 63:32), and a position below 32 would alias a
/// physical address bit Vigil's 1 GiB identity map uses.
pub const C_BIT_MIN: u8 = 32;
/// The highest: bit 51 is the top physical-address bit of a 4-level entry (APM vol. 2,
/// 5.3.3); above it the bit is reserved or NX.
pub const C_BIT_MAX: u8 = 51;

/// Leaves whose answer depends on ECX (the sub-leaf): APM vol. 3, appendix E, "CPUID
/// functions" that take ECX as input.
pub const fn is_indexed(leaf: u32) -> bool {
    matches!(
        leaf,
        0x4 | 0x7
            | 0xb
            | 0xd
            | 0xf
            | 0x10
            | 0x12
            | 0x14
            | 0x17
            | 0x1f
            | 0x8000_001d
            | 0x8000_0020
            | 0x8000_0026
    )
}

/// Why the CPUID page was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidPageError {
    /// `count` (offset 0) is 0 or above [`CPUID_MAX_ENTRIES`].
    BadCount {
        /// The value found.
        count: u32,
    },
    /// No entry for leaf 0x8000_001F: the C-bit position is unknown.
    NoMemEncryptionLeaf,
    /// The C-bit position is outside [`C_BIT_MIN`]..=[`C_BIT_MAX`].
    CBitOutOfRange {
        /// EBX bits 5:0 of leaf 0x8000_001F.
        position: u8,
    },
}

impl fmt::Display for CpuidPageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CpuidPageError::BadCount { count } => write!(
                f,
                "CPUID page count (offset 0) is {count}, allowed 1..={CPUID_MAX_ENTRIES}"
            ),
            CpuidPageError::NoMemEncryptionLeaf => {
                write!(f, "CPUID page has no leaf 0x8000001f (C-bit position)")
            }
            CpuidPageError::CBitOutOfRange { position } => write!(
                f,
                "CPUID 0x8000001f EBX[5:0] = {position}: C-bit outside {C_BIT_MIN}..={C_BIT_MAX}"
            ),
        }
    }
}

/// A CPUID page whose count was checked: every lookup stays within its entries.
#[derive(Clone, Copy, Debug)]
pub struct CpuidTable<'a> {
    entries: &'a [CpuidFunction],
}

impl<'a> CpuidTable<'a> {
    /// Checks `page.count` and wraps the page.
    pub fn new(page: &'a CpuidPage) -> Result<Self, CpuidPageError> {
        let count = page.count;
        if count == 0 || count as usize > CPUID_MAX_ENTRIES {
            return Err(CpuidPageError::BadCount { count });
        }
        Ok(Self {
            entries: &page.functions[..count as usize],
        })
    }

    /// The answer (eax, ebx, ecx, edx) for `leaf`/`subleaf`; `None` if the page holds
    /// no such entry (the caller answers zeros, see the module comment).
    pub fn lookup(&self, leaf: u32, subleaf: u32) -> Option<(u32, u32, u32, u32)> {
        self.entries
            .iter()
            .find(|e| e.eax_in == leaf && (!is_indexed(leaf) || e.ecx_in == subleaf))
            .map(|e| (e.eax, e.ebx, e.ecx, e.edx))
    }

    /// The answer, zeros for a leaf the page does not hold.
    pub fn answer(&self, leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
        self.lookup(leaf, subleaf).unwrap_or((0, 0, 0, 0))
    }

    /// The C-bit position: leaf 0x8000_001F EBX bits 5:0, checked against
    /// [`C_BIT_MIN`]..=[`C_BIT_MAX`].
    pub fn c_bit(&self) -> Result<u8, CpuidPageError> {
        let (_, ebx, _, _) = self
            .lookup(LEAF_MEM_ENCRYPTION, 0)
            .ok_or(CpuidPageError::NoMemEncryptionLeaf)?;
        let position = (ebx & 0x3f) as u8;
        if !(C_BIT_MIN..=C_BIT_MAX).contains(&position) {
            return Err(CpuidPageError::CBitOutOfRange { position });
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    /// (EAX in, ECX in, (EAX, EBX, ECX, EDX) out).
    type Entry = (u32, u32, (u32, u32, u32, u32));

    fn page(entries: &[Entry]) -> CpuidPage {
        let mut p = CpuidPage::new_zeroed();
        p.count = entries.len() as u32;
        for (slot, &(leaf, sub, (a, b, c, d))) in p.functions.iter_mut().zip(entries) {
            *slot = CpuidFunction {
                eax_in: leaf,
                ecx_in: sub,
                eax: a,
                ebx: b,
                ecx: c,
                edx: d,
                ..Default::default()
            };
        }
        p
    }

    #[test]
    fn plain_leaves_match_on_eax_only_and_indexed_ones_on_ecx_too() {
        let p = page(&[
            (1, 0, (0xa00f11, 0x800, 0x1, 0x2)),
            (7, 0, (1, 2, 3, 4)),
            (7, 1, (5, 6, 7, 8)),
        ]);
        let t = CpuidTable::new(&p).unwrap();
        // Leaf 1 is not indexed: any sub-leaf gets its one entry.
        assert_eq!(t.lookup(1, 9), Some((0xa00f11, 0x800, 0x1, 0x2)));
        assert_eq!(t.lookup(7, 1), Some((5, 6, 7, 8)));
        assert_eq!(t.lookup(7, 0), Some((1, 2, 3, 4)));
        assert_eq!(t.lookup(7, 2), None);
        assert_eq!(t.answer(0x4000_0000, 0), (0, 0, 0, 0));
    }

    #[test]
    fn entries_beyond_count_are_never_answered() {
        let mut p = page(&[(1, 0, (1, 1, 1, 1)), (2, 0, (2, 2, 2, 2))]);
        p.count = 1;
        let t = CpuidTable::new(&p).unwrap();
        assert_eq!(t.lookup(2, 0), None);
    }

    #[test]
    fn bad_counts_are_refused_by_name() {
        let mut p = page(&[]);
        assert_eq!(
            CpuidTable::new(&p).unwrap_err(),
            CpuidPageError::BadCount { count: 0 }
        );
        p.count = 65;
        let e = CpuidTable::new(&p).unwrap_err();
        assert_eq!(e, CpuidPageError::BadCount { count: 65 });
        assert!(std::format!("{e}").contains("offset 0"));
    }

    #[test]
    fn c_bit_comes_from_leaf_8000001f_ebx_and_is_range_checked() {
        let p = page(&[(LEAF_MEM_ENCRYPTION, 0, (0x1_001f, 0x0000_1173, 0, 0))]);
        assert_eq!(CpuidTable::new(&p).unwrap().c_bit(), Ok(51));
        let p = page(&[(LEAF_MEM_ENCRYPTION, 0, (0, 0x2f, 0, 0))]);
        assert_eq!(CpuidTable::new(&p).unwrap().c_bit(), Ok(47));
        let p = page(&[(LEAF_MEM_ENCRYPTION, 0, (0, 0x1f, 0, 0))]);
        assert_eq!(
            CpuidTable::new(&p).unwrap().c_bit(),
            Err(CpuidPageError::CBitOutOfRange { position: 31 })
        );
        let p = page(&[(LEAF_MEM_ENCRYPTION, 0, (0, 0x34, 0, 0))]);
        assert_eq!(
            CpuidTable::new(&p).unwrap().c_bit(),
            Err(CpuidPageError::CBitOutOfRange { position: 52 })
        );
        let p = page(&[(1, 0, (0, 0, 0, 0))]);
        assert_eq!(
            CpuidTable::new(&p).unwrap().c_bit(),
            Err(CpuidPageError::NoMemEncryptionLeaf)
        );
    }
}
