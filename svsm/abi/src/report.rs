//! The SNP attestation report (SNP firmware ABI #56860, table "ATTESTATION_REPORT"),
//! versions 2 to 5.
//!
//! One fixed layout of 0x4A0 bytes serves every version; later versions only give
//! meaning to bytes that earlier versions left reserved:
//! - v3 added CPUID_FAM_ID, CPUID_MOD_ID and CPUID_STEP at 0x188..0x18B (reserved in v2);
//! - v4 changed no layout;
//! - v5 added LAUNCH_MIT_VECTOR (0x1F8) and CURRENT_MIT_VECTOR (0x200).
//!
//! The signature (ECDSA P-384 with SHA-384, SIG_ALGO = 1) covers bytes 0x000..0x2A0
//! ([`SIGNED_LEN`]) exactly as the firmware wrote them. R and S are stored
//! little-endian, each in a 72-byte field (the P-384 value in the low 48 bytes).
//!
//! The monitor builds reports with [`AttestationReport`] (its simulated security
//! processor) and the verifier reads them; both use the accessors below rather than
//! open-coded offsets. Integers are little-endian.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the report in bytes.
pub const REPORT_SIZE: usize = 0x4A0;
/// Number of bytes the signature covers (0x000..0x2A0).
pub const SIGNED_LEN: usize = 0x2A0;
/// Lowest report version this layout describes.
pub const MIN_VERSION: u32 = 2;
/// Highest report version this layout describes.
pub const MAX_VERSION: u32 = 5;

/// SIG_ALGO value of ECDSA P-384 with SHA-384, the only algorithm defined.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// SIGNING_KEY (bits 4:2 of the key-info word at 0x48): the VCEK signed the report.
pub const SIGNING_KEY_VCEK: u32 = 0;
/// SIGNING_KEY: the VLEK signed the report.
pub const SIGNING_KEY_VLEK: u32 = 1;
/// SIGNING_KEY: the report is not signed.
pub const SIGNING_KEY_NONE: u32 = 7;

/// Guest POLICY bits (#56860, table "Guest Policy Structure").
pub mod policy {
    /// Bits 7:0, minimum ABI minor version.
    pub const ABI_MINOR_MASK: u64 = 0xFF;
    /// Bits 15:8, minimum ABI major version.
    pub const ABI_MAJOR_SHIFT: u32 = 8;
    /// Bit 16: SMT allowed.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_MBO: u64 = 1 << 17;
    /// Bit 18: association with a migration agent allowed.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: debugging allowed.
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: single socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;
    /// Bit 21: CXL may be populated with guest memory.
    pub const CXL_ALLOW: u64 = 1 << 21;
    /// Bit 22: AES-256-XTS memory encryption required.
    pub const MEM_AES_256_XTS: u64 = 1 << 22;
    /// Bit 23: running power limit (RAPL) must be disabled.
    pub const RAPL_DIS: u64 = 1 << 23;
    /// Bit 24: ciphertext hiding must be enabled.
    pub const CIPHERTEXT_HIDING: u64 = 1 << 24;
    /// Bit 25: guest page swapping (SNP_PAGE_MOVE etc.) disabled.
    pub const PAGE_SWAP_DISABLE: u64 = 1 << 25;
    /// Bits 63:26 are reserved (must be zero).
    pub const RESERVED_MASK: u64 = !((1 << 26) - 1);
}

/// PLATFORM_INFO bits (#56860).
pub mod platform_info {
    /// Bit 0: SMT enabled.
    pub const SMT_EN: u64 = 1 << 0;
    /// Bit 1: TSME enabled.
    pub const TSME_EN: u64 = 1 << 1;
    /// Bit 2: ECC memory in use.
    pub const ECC_EN: u64 = 1 << 2;
    /// Bit 3: RAPL disabled.
    pub const RAPL_DIS: u64 = 1 << 3;
    /// Bit 4: ciphertext hiding enabled (DRAM).
    pub const CIPHERTEXT_HIDING_EN: u64 = 1 << 4;
    /// Bit 5: alias check complete.
    pub const ALIAS_CHECK_COMPLETE: u64 = 1 << 5;
    /// Bit 6: IOMMU write-safe (Turin).
    pub const IOMMU_WRITE_SAFE: u64 = 1 << 6;
}

/// The attestation report, byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AttestationReport {
    /// 0x000: report version (2..5).
    pub version: u32,
    /// 0x004: guest SVN from the ID block.
    pub guest_svn: u32,
    /// 0x008: guest policy.
    pub policy: u64,
    /// 0x010: family ID from the ID block.
    pub family_id: [u8; 16],
    /// 0x020: image ID from the ID block.
    pub image_id: [u8; 16],
    /// 0x030: VMPL of the request.
    pub vmpl: u32,
    /// 0x034: signature algorithm.
    pub signature_algo: u32,
    /// 0x038: CURRENT_TCB.
    pub current_tcb: u64,
    /// 0x040: PLATFORM_INFO.
    pub platform_info: u64,
    /// 0x048: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY, rest reserved.
    pub key_info: u32,
    /// 0x04C: reserved.
    pub reserved_0x4c: u32,
    /// 0x050: REPORT_DATA supplied by the guest.
    pub report_data: [u8; 64],
    /// 0x090: launch MEASUREMENT.
    pub measurement: [u8; 48],
    /// 0x0C0: HOST_DATA.
    pub host_data: [u8; 32],
    /// 0x0E0: SHA-384 of the ID key.
    pub id_key_digest: [u8; 48],
    /// 0x110: SHA-384 of the author key.
    pub author_key_digest: [u8; 48],
    /// 0x140: REPORT_ID.
    pub report_id: [u8; 32],
    /// 0x160: REPORT_ID of the migration agent.
    pub report_id_ma: [u8; 32],
    /// 0x180: REPORTED_TCB (the TCB the report's key was derived from).
    pub reported_tcb: u64,
    /// 0x188: CPUID family (v3+).
    pub cpuid_fam_id: u8,
    /// 0x189: CPUID model (v3+).
    pub cpuid_mod_id: u8,
    /// 0x18A: CPUID stepping (v3+).
    pub cpuid_step: u8,
    /// 0x18B: reserved.
    pub reserved_0x18b: [u8; 21],
    /// 0x1A0: CHIP_ID (zero when MASK_CHIP_ID is set; 8 significant bytes on Turin).
    pub chip_id: [u8; 64],
    /// 0x1E0: COMMITTED_TCB.
    pub committed_tcb: u64,
    /// 0x1E8: CURRENT_BUILD.
    pub current_build: u8,
    /// 0x1E9: CURRENT_MINOR.
    pub current_minor: u8,
    /// 0x1EA: CURRENT_MAJOR.
    pub current_major: u8,
    /// 0x1EB: reserved.
    pub reserved_0x1eb: u8,
    /// 0x1EC: COMMITTED_BUILD.
    pub committed_build: u8,
    /// 0x1ED: COMMITTED_MINOR.
    pub committed_minor: u8,
    /// 0x1EE: COMMITTED_MAJOR.
    pub committed_major: u8,
    /// 0x1EF: reserved.
    pub reserved_0x1ef: u8,
    /// 0x1F0: LAUNCH_TCB.
    pub launch_tcb: u64,
    /// 0x1F8: LAUNCH_MIT_VECTOR (v5+).
    pub launch_mit_vector: u64,
    /// 0x200: CURRENT_MIT_VECTOR (v5+).
    pub current_mit_vector: u64,
    /// 0x208: reserved.
    pub reserved_0x208: [u8; 0x98],
    /// 0x2A0: signature R, little-endian, 72 bytes.
    pub signature_r: [u8; 72],
    /// 0x2E8: signature S, little-endian, 72 bytes.
    pub signature_s: [u8; 72],
    /// 0x330: reserved part of the signature field.
    pub signature_reserved: [u8; 0x170],
}

const _: () = assert!(core::mem::size_of::<AttestationReport>() == REPORT_SIZE);
const _: () = assert!(core::mem::offset_of!(AttestationReport, guest_svn) == 0x04);
const _: () = assert!(core::mem::offset_of!(AttestationReport, policy) == 0x08);
const _: () = assert!(core::mem::offset_of!(AttestationReport, family_id) == 0x10);
const _: () = assert!(core::mem::offset_of!(AttestationReport, image_id) == 0x20);
const _: () = assert!(core::mem::offset_of!(AttestationReport, vmpl) == 0x30);
const _: () = assert!(core::mem::offset_of!(AttestationReport, signature_algo) == 0x34);
const _: () = assert!(core::mem::offset_of!(AttestationReport, current_tcb) == 0x38);
const _: () = assert!(core::mem::offset_of!(AttestationReport, platform_info) == 0x40);
const _: () = assert!(core::mem::offset_of!(AttestationReport, key_info) == 0x48);
const _: () = assert!(core::mem::offset_of!(AttestationReport, report_data) == 0x50);
const _: () = assert!(core::mem::offset_of!(AttestationReport, measurement) == 0x90);
const _: () = assert!(core::mem::offset_of!(AttestationReport, host_data) == 0xC0);
const _: () = assert!(core::mem::offset_of!(AttestationReport, id_key_digest) == 0xE0);
const _: () = assert!(core::mem::offset_of!(AttestationReport, author_key_digest) == 0x110);
const _: () = assert!(core::mem::offset_of!(AttestationReport, report_id) == 0x140);
const _: () = assert!(core::mem::offset_of!(AttestationReport, report_id_ma) == 0x160);
const _: () = assert!(core::mem::offset_of!(AttestationReport, reported_tcb) == 0x180);
const _: () = assert!(core::mem::offset_of!(AttestationReport, cpuid_fam_id) == 0x188);
const _: () = assert!(core::mem::offset_of!(AttestationReport, reserved_0x18b) == 0x18B);
const _: () = assert!(core::mem::offset_of!(AttestationReport, chip_id) == 0x1A0);
const _: () = assert!(core::mem::offset_of!(AttestationReport, committed_tcb) == 0x1E0);
const _: () = assert!(core::mem::offset_of!(AttestationReport, current_build) == 0x1E8);
const _: () = assert!(core::mem::offset_of!(AttestationReport, committed_build) == 0x1EC);
const _: () = assert!(core::mem::offset_of!(AttestationReport, launch_tcb) == 0x1F0);
const _: () = assert!(core::mem::offset_of!(AttestationReport, launch_mit_vector) == 0x1F8);
const _: () = assert!(core::mem::offset_of!(AttestationReport, current_mit_vector) == 0x200);
const _: () = assert!(core::mem::offset_of!(AttestationReport, reserved_0x208) == 0x208);
const _: () = assert!(core::mem::offset_of!(AttestationReport, signature_r) == SIGNED_LEN);
const _: () = assert!(core::mem::offset_of!(AttestationReport, signature_s) == 0x2E8);
const _: () = assert!(core::mem::offset_of!(AttestationReport, signature_reserved) == 0x330);

/// A reserved byte range that holds a non-zero byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedNonZero {
    /// Name of the field.
    pub field: &'static str,
    /// Offset of the first non-zero byte within the report.
    pub offset: usize,
}

impl AttestationReport {
    /// Bit 0 of the key-info word: the author key digest is present.
    pub fn author_key_en(&self) -> bool {
        self.key_info & 1 != 0
    }

    /// Bit 1 of the key-info word: CHIP_ID was masked (zeroed) by policy.
    pub fn mask_chip_key(&self) -> bool {
        self.key_info & 2 != 0
    }

    /// SIGNING_KEY, bits 4:2 of the key-info word.
    pub fn signing_key(&self) -> u32 {
        (self.key_info >> 2) & 7
    }

    /// Sets SIGNING_KEY (for report builders).
    pub fn set_signing_key(&mut self, key: u32) {
        self.key_info = (self.key_info & !(7 << 2)) | ((key & 7) << 2);
    }

    /// Whether the report carries the CPUID fields (version 3 and later).
    pub fn has_cpuid(&self) -> bool {
        self.version >= 3
    }

    /// Whether the report carries the mitigation vectors (version 5 and later).
    pub fn has_mit_vectors(&self) -> bool {
        self.version >= 5
    }

    /// The first reserved field of this report's version that is not zero, if any.
    /// Covers the reserved bits of the key-info word, every reserved byte range of the
    /// signed area (including fields that are reserved only in older versions) and the
    /// unused part of the signature field.
    pub fn first_nonzero_reserved(&self) -> Option<ReservedNonZero> {
        let bytes = self.as_bytes();
        if self.key_info >> 5 != 0 {
            return Some(ReservedNonZero {
                field: "KEY_INFO bits 31:5",
                offset: 0x48,
            });
        }
        let mut ranges: [(&'static str, usize, usize); 8] = [
            ("reserved 0x04C", 0x4C, 0x50),
            ("reserved 0x18B", 0x18B, 0x1A0),
            ("reserved 0x1EB", 0x1EB, 0x1EC),
            ("reserved 0x1EF", 0x1EF, 0x1F0),
            ("reserved 0x208", 0x208, 0x2A0),
            ("signature reserved 0x330", 0x330, REPORT_SIZE),
            ("", 0, 0),
            ("", 0, 0),
        ];
        if !self.has_cpuid() {
            ranges[6] = ("CPUID fields (reserved before v3)", 0x188, 0x18B);
        }
        if !self.has_mit_vectors() {
            ranges[7] = ("mitigation vectors (reserved before v5)", 0x1F8, 0x208);
        }
        for (field, start, end) in ranges {
            if let Some(i) = bytes[start..end].iter().position(|b| *b != 0) {
                return Some(ReservedNonZero {
                    field,
                    offset: start + i,
                });
            }
        }
        // The high 24 bytes of each 72-byte R and S field must be zero too.
        for (field, start) in [
            ("signature R high bytes", 0x2A0 + 48),
            ("signature S high bytes", 0x2E8 + 48),
        ] {
            if let Some(i) = bytes[start..start + 24].iter().position(|b| *b != 0) {
                return Some(ReservedNonZero {
                    field,
                    offset: start + i,
                });
            }
        }
        None
    }
}

/// How a product lays out the eight bytes of a TCB_VERSION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcbLayout {
    /// Milan and Genoa: byte 0 boot loader, 1 TEE, 2-5 reserved, 6 SNP, 7 microcode.
    MilanGenoa,
    /// Turin: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 4-6 reserved, 7 microcode.
    Turin,
}

/// A TCB_VERSION split into its security patch levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcb {
    /// FMC SPL (Turin only; `None` on Milan/Genoa).
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bl: u8,
    /// TEE (PSP OS) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub ucode: u8,
    /// Reserved bytes, which must be zero.
    pub reserved_nonzero: bool,
}

impl TcbLayout {
    /// Splits a TCB_VERSION.
    pub fn decode(self, v: u64) -> Tcb {
        let b = v.to_le_bytes();
        match self {
            TcbLayout::MilanGenoa => Tcb {
                fmc: None,
                bl: b[0],
                tee: b[1],
                snp: b[6],
                ucode: b[7],
                reserved_nonzero: b[2..6].iter().any(|x| *x != 0),
            },
            TcbLayout::Turin => Tcb {
                fmc: Some(b[0]),
                bl: b[1],
                tee: b[2],
                snp: b[3],
                ucode: b[7],
                reserved_nonzero: b[4..7].iter().any(|x| *x != 0),
            },
        }
    }

    /// Builds a TCB_VERSION from its parts (reserved bytes zero).
    pub fn encode(self, t: &Tcb) -> u64 {
        let b = match self {
            TcbLayout::MilanGenoa => [t.bl, t.tee, 0, 0, 0, 0, t.snp, t.ucode],
            TcbLayout::Turin => [t.fmc.unwrap_or(0), t.bl, t.tee, t.snp, 0, 0, 0, t.ucode],
        };
        u64::from_le_bytes(b)
    }
}

impl Tcb {
    /// Whether every SPL of `self` is at least the one of `min` (component-wise; a
    /// TCB is not a single number).
    pub fn at_least(&self, min: &Tcb) -> bool {
        self.fmc.unwrap_or(0) >= min.fmc.unwrap_or(0)
            && self.bl >= min.bl
            && self.tee >= min.tee
            && self.snp >= min.snp
            && self.ucode >= min.ucode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn signing_key_bits() {
        let mut r = AttestationReport::new_zeroed();
        r.key_info = 0b11;
        r.set_signing_key(SIGNING_KEY_VLEK);
        assert_eq!(r.key_info, 0b111);
        assert_eq!(r.signing_key(), 1);
        assert!(r.author_key_en() && r.mask_chip_key());
    }

    #[test]
    fn reserved_fields_by_version() {
        let mut r = AttestationReport::new_zeroed();
        r.version = 2;
        r.cpuid_fam_id = 0x19;
        assert_eq!(r.first_nonzero_reserved().map(|x| x.offset), Some(0x188));
        r.version = 3;
        assert_eq!(r.first_nonzero_reserved(), None);
        r.launch_mit_vector = 1;
        assert_eq!(r.first_nonzero_reserved().map(|x| x.offset), Some(0x1F8));
        r.version = 5;
        assert_eq!(r.first_nonzero_reserved(), None);
        r.signature_reserved[5] = 1;
        assert_eq!(r.first_nonzero_reserved().map(|x| x.offset), Some(0x335));
        r.signature_reserved[5] = 0;
        r.key_info = 1 << 5;
        assert_eq!(r.first_nonzero_reserved().map(|x| x.offset), Some(0x48));
    }

    #[test]
    fn tcb_layouts() {
        let v = u64::from_le_bytes([1, 2, 3, 4, 0, 0, 0, 5]);
        let t = TcbLayout::Turin.decode(v);
        assert_eq!((t.fmc, t.bl, t.tee, t.snp, t.ucode), (Some(1), 2, 3, 4, 5));
        assert_eq!(TcbLayout::Turin.encode(&t), v);
        let m = TcbLayout::MilanGenoa.decode(v);
        assert_eq!((m.bl, m.tee, m.snp, m.ucode), (1, 2, 0, 5));
        assert!(m.reserved_nonzero);
        let lo = Tcb {
            bl: 1,
            ..Tcb::default()
        };
        assert!(t.at_least(&lo));
        assert!(!lo.at_least(&t));
    }
}
