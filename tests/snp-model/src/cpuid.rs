//! The model's CPU, as CPUID answers it, and the SNP CPUID page the host fills from it.
//!
//! CPUID page layout (SNP firmware ABI #56860, SNP_LAUNCH_UPDATE page type CPUID, table
//! "CPUID_FUNCTION"; Linux `struct snp_cpuid_table`): COUNT (u32) at 0x0, two
//! reserved fields to 0x10, then up to 64 entries of 0x30 bytes: EAX_IN, ECX_IN (u32),
//! XCR0_IN, XSS_IN (u64), EAX, EBX, ECX, EDX (u32), reserved (u64).
//!
//! The CPU is the model's own: an AMD family 19h part with SEV, SEV-ES, SNP and four
//! VMPLs, C-bit 51 (as Milan and Genoa), no physical-address reduction.

use alloc::vec::Vec;

/// Most entries of a CPUID page.
pub const CPUID_PAGE_MAX: usize = 64;
/// Size of one entry.
pub const CPUID_ENTRY_LEN: usize = 0x30;
/// Offset of the first entry.
pub const CPUID_ENTRIES_OFFSET: usize = 0x10;
/// The model's C-bit position (CPUID 0x8000001F EBX bits 5:0).
pub const C_BIT: u32 = 51;

/// One CPUID function as the CPU answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// EAX in.
    pub eax_in: u32,
    /// ECX in (subleaf; 0 where the leaf has none).
    pub ecx_in: u32,
    /// EAX, EBX, ECX, EDX out.
    pub out: [u32; 4],
}

/// The model's CPU: the leaves it answers, in ascending order.
pub fn leaves() -> Vec<Leaf> {
    let l = |eax_in, ecx_in, out| Leaf {
        eax_in,
        ecx_in,
        out,
    };
    alloc::vec![
        // Max basic leaf 0xD, "AuthenticAMD".
        l(0x0, 0, [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65]),
        // Family 19h model 01h stepping 1 (0x00A00F11); ECX: SSE3, PCLMUL, SSSE3, FMA,
        // CX16, SSE4.1/4.2, MOVBE, POPCNT, AES, XSAVE, OSXSAVE(0: the guest sets CR4),
        // AVX, F16C, RDRAND, HYPERVISOR (bit 31); EDX: the base set.
        l(0x1, 0, [0x00a0_0f11, 0x0000_0800, 0xf6d8_3203, 0x178b_fbff]),
        // Structured features: FSGSBASE, BMI1, AVX2, SMEP, BMI2, ERMS, INVPCID, RDSEED,
        // ADX, SMAP, CLFLUSHOPT, CLWB, SHA.
        l(0x7, 0, [0, 0x219c_07a9, 0, 0]),
        // XSAVE: x87, SSE, AVX (XCR0 bits 0-2), 0x340 bytes for all.
        l(0xd, 0, [0x7, 0x340, 0x340, 0]),
        l(0xd, 1, [0x1, 0x340, 0, 0]),
        // Max extended leaf 0x8000001F.
        l(
            0x8000_0000,
            0,
            [0x8000_001f, 0x6874_7541, 0x444d_4163, 0x6974_6e65]
        ),
        // LAHF, CMPLEGACY, SVM, ABM, SSE4A, ...; EDX: SYSCALL, NX, PDPE1GB, RDTSCP, LM.
        l(0x8000_0001, 0, [0x00a0_0f11, 0, 0x0000_07f3, 0x2fd3_fbff]),
        // 52 physical-address bits (room for C-bit 51), 48 virtual-address bits.
        l(0x8000_0008, 0, [0x0000_3034, 0, 0, 0]),
        // SME (0), SEV (1), SEV-ES (3), SEV-SNP (4), VMPL (5); EBX: C-bit 51, no
        // reduction, 4 VMPLs (bits 15:12); ECX: 509 ASIDs; EDX: min SEV ASID 1.
        l(0x8000_001f, 0, [0x0000_003b, (4 << 12) | C_BIT, 509, 1]),
    ]
}

/// The answer of the model's CPU to CPUID(eax, ecx); all zeros for a leaf it lacks.
pub fn cpuid(eax: u32, ecx: u32) -> [u32; 4] {
    let subleafed = matches!(eax, 0x7 | 0xd);
    leaves()
        .into_iter()
        .find(|l| l.eax_in == eax && (!subleafed || l.ecx_in == ecx))
        .map_or([0; 4], |l| l.out)
}

/// The CPUID page the host fills (XCR0_IN = 1 and XSS_IN = 0 on every entry, as
/// QEMU+KVM fill it for a guest that has not changed XCR0).
pub fn cpuid_page() -> [u8; 4096] {
    let mut p = [0u8; 4096];
    let ls = leaves();
    p[0..4].copy_from_slice(&(ls.len() as u32).to_le_bytes());
    for (i, l) in ls.iter().take(CPUID_PAGE_MAX).enumerate() {
        let o = CPUID_ENTRIES_OFFSET + i * CPUID_ENTRY_LEN;
        p[o..o + 4].copy_from_slice(&l.eax_in.to_le_bytes());
        p[o + 4..o + 8].copy_from_slice(&l.ecx_in.to_le_bytes());
        p[o + 8..o + 16].copy_from_slice(&1u64.to_le_bytes());
        for (j, r) in l.out.iter().enumerate() {
            let q = o + 0x18 + 4 * j;
            p[q..q + 4].copy_from_slice(&r.to_le_bytes());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sev_leaf_says_snp_vmpls_and_c_bit() {
        let [eax, ebx, _, _] = cpuid(0x8000_001f, 0);
        assert_ne!(eax & (1 << 4), 0, "SNP");
        assert_ne!(eax & (1 << 5), 0, "VMPL");
        assert_eq!(ebx & 0x3f, 51);
        assert_eq!((ebx >> 12) & 0xf, 4);
        assert_eq!(cpuid(0x4000_0000, 0), [0; 4]);
        assert_eq!(cpuid(0xd, 1)[0], 1);
        assert_eq!(cpuid(0xd, 7), [0; 4]);
    }

    #[test]
    fn cpuid_page_layout() {
        let p = cpuid_page();
        let n = u32::from_le_bytes(p[0..4].try_into().unwrap()) as usize;
        assert_eq!(n, leaves().len());
        // The last entry is 0x8000001F with its EBX.
        let o = 0x10 + (n - 1) * 0x30;
        assert_eq!(&p[o..o + 4], &0x8000_001fu32.to_le_bytes());
        assert_eq!(&p[o + 8..o + 16], &1u64.to_le_bytes());
        let ebx = u32::from_le_bytes(p[o + 0x1c..o + 0x20].try_into().unwrap());
        assert_eq!(ebx, (4 << 12) | 51);
        assert!(p[0x10 + n * 0x30..].iter().all(|&b| b == 0));
    }
}
