//! CPUID answers from the SNP CPUID page (SNP firmware ABI #56860, "CPUID page": a
//! count, then 0x30-byte entries of inputs EAX/ECX/XCR0/XSS and outputs EAX..EDX), the
//! way Linux's `snp_cpuid` looks them up: the leaf, and the subleaf for the leaves whose
//! answer depends on ECX. The layout is `svsm_abi::cpuid::CpuidPage`.

use svsm_abi::cpuid::{CpuidPage, CPUID_MAX_ENTRIES};
use zerocopy::FromBytes;

/// Leaves whose answer depends on the subleaf in ECX (Linux `snp_cpuid_get_validated_func`
/// callers: 0x4, 0x7, 0xB, 0xD, 0xF, 0x10, 0x14, 0x8000001D, 0x80000020, 0x80000026).
pub const INDEXED: [u32; 10] = [
    0x4,
    0x7,
    0xb,
    0xd,
    0xf,
    0x10,
    0x14,
    0x8000_001d,
    0x8000_0020,
    0x8000_0026,
];

/// The leaf with the memory encryption facts (EBX bits 5:0: the C-bit position).
pub const LEAF_SEV: u32 = 0x8000_001f;

/// EAX, EBX, ECX, EDX for `cpuid(eax, ecx)`, or `None` when the page has no entry (or
/// is not a CPUID page: a count above 64).
pub fn lookup(page: &[u8; 4096], eax: u32, ecx: u32) -> Option<[u32; 4]> {
    let p = CpuidPage::ref_from_bytes(page.as_slice()).ok()?;
    let count = usize::try_from(p.count).ok()?;
    if count > CPUID_MAX_ENTRIES {
        return None;
    }
    let indexed = INDEXED.contains(&eax);
    p.functions[..count]
        .iter()
        .find(|f| f.eax_in == eax && (!indexed || f.ecx_in == ecx))
        .map(|f| [f.eax, f.ebx, f.ecx, f.edx])
}

/// The C-bit position the CPUID page gives (leaf 0x8000001F, EBX bits 5:0).
pub fn c_bit(page: &[u8; 4096]) -> Option<u8> {
    lookup(page, LEAF_SEV, 0).map(|r| (r[1] & 0x3f) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_model_cpus_answers() {
        let page = snp_model::cpuid::cpuid_page();
        for leaf in snp_model::cpuid::leaves() {
            let want = snp_model::cpuid::cpuid(leaf.eax_in, leaf.ecx_in);
            assert_eq!(lookup(&page, leaf.eax_in, leaf.ecx_in), Some(want));
        }
        assert_eq!(c_bit(&page), Some(snp_model::cpuid::C_BIT as u8));
        assert_eq!(lookup(&page, 0x4000_0000, 0), None);
    }

    #[test]
    fn a_page_with_a_count_above_64_answers_nothing() {
        let mut page = snp_model::cpuid::cpuid_page();
        page[0] = 65;
        assert_eq!(c_bit(&page), None);
    }
}
