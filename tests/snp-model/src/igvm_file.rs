//! The model's own IGVM reader (`no_std`): from the bytes of an IGVM file to the
//! directives that [`crate::host_loader`] loads, for the bare-metal model, which cannot
//! use the `igvm` crate.
//!
//! The format, as documented in the `igvm_defs` crate (0.5, the IGVM specification's
//! Rust definitions; offsets and sizes below are that crate's `#[repr(C)]` layouts):
//! - a fixed header (`IGVM_FIXED_HEADER`, 24 bytes): magic `IGVM`, format version 1,
//!   the variable header's offset (at least 24, 8-aligned) and size, the total file size
//!   and a CRC-32 over the fixed header (checksum field as zero) and the variable header;
//! - the variable header: type/length records (`IGVM_VHS_VARIABLE_HEADER`), each at an
//!   8-byte aligned offset, `length` counting the body only; platform headers first,
//!   then initialization headers, then directives, never back to an earlier section;
//! - file data, referred to by `file_offset` fields (0 meaning "no data").
//!
//! What the reader accepts is what the `igvm` crate (the library QEMU's loader links)
//! accepts, for the headers the qemu-kvm profile uses: the same length rules, reserved
//! fields, alignment, parameter-area order, platform rules; where the crate ignores a
//! field the spec calls padding, so does this reader. Every other header is refused by
//! name, with its file offset, in [`LoadError::Format`]. `tests/igvm_readers.rs` runs
//! both readers on the same (also mutated) files.

use alloc::vec::Vec;

use crate::host_loader::{plan_directives, snp_mask, snp_policy, Directive, HostConfig, LoadError};
use crate::launch::Plan;

/// `IGVM_MAGIC_VALUE`: ASCII `IGVM`, little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"IGVM");
/// `IGVM_FORMAT_VERSION_1`.
pub const FORMAT_VERSION_1: u32 = 1;
/// `size_of::<IGVM_FIXED_HEADER>()`.
pub const FIXED_HEADER_LEN: usize = 24;
/// Offset of `checksum` in the fixed header.
const CHECKSUM_AT: usize = 20;
/// `size_of::<IGVM_VHS_VARIABLE_HEADER>()`.
const VH_LEN: usize = 8;
/// IGVM page size (4 KiB in format version 1).
const PAGE: u64 = 4096;

/// Variable header types (`IgvmVariableHeaderType`).
pub mod vht {
    /// IGVM_VHT_SUPPORTED_PLATFORM.
    pub const SUPPORTED_PLATFORM: u32 = 0x1;
    /// IGVM_VHT_GUEST_POLICY.
    pub const GUEST_POLICY: u32 = 0x101;
    /// IGVM_VHT_RELOCATABLE_REGION.
    pub const RELOCATABLE_REGION: u32 = 0x102;
    /// IGVM_VHT_PAGE_TABLE_RELOCATION_REGION.
    pub const PAGE_TABLE_RELOCATION_REGION: u32 = 0x103;
    /// IGVM_VHT_CORIM_DOCUMENT.
    pub const CORIM_DOCUMENT: u32 = 0x104;
    /// IGVM_VHT_CORIM_SIGNATURE.
    pub const CORIM_SIGNATURE: u32 = 0x105;
    /// IGVM_VHT_PARAMETER_AREA.
    pub const PARAMETER_AREA: u32 = 0x301;
    /// IGVM_VHT_PAGE_DATA.
    pub const PAGE_DATA: u32 = 0x302;
    /// IGVM_VHT_PARAMETER_INSERT.
    pub const PARAMETER_INSERT: u32 = 0x303;
    /// IGVM_VHT_VP_CONTEXT.
    pub const VP_CONTEXT: u32 = 0x304;
    /// IGVM_VHT_REQUIRED_MEMORY.
    pub const REQUIRED_MEMORY: u32 = 0x305;
    /// IGVM_VHT_VP_COUNT_PARAMETER.
    pub const VP_COUNT_PARAMETER: u32 = 0x307;
    /// IGVM_VHT_SRAT.
    pub const SRAT: u32 = 0x308;
    /// IGVM_VHT_MADT.
    pub const MADT: u32 = 0x309;
    /// IGVM_VHT_MMIO_RANGES.
    pub const MMIO_RANGES: u32 = 0x30A;
    /// IGVM_VHT_SNP_ID_BLOCK.
    pub const SNP_ID_BLOCK: u32 = 0x30B;
    /// IGVM_VHT_MEMORY_MAP.
    pub const MEMORY_MAP: u32 = 0x30C;
    /// IGVM_VHT_ERROR_RANGE.
    pub const ERROR_RANGE: u32 = 0x30D;
    /// IGVM_VHT_COMMAND_LINE.
    pub const COMMAND_LINE: u32 = 0x30E;
    /// IGVM_VHT_SLIT.
    pub const SLIT: u32 = 0x30F;
    /// IGVM_VHT_PPTT.
    pub const PPTT: u32 = 0x310;
    /// IGVM_VHT_VBS_MEASUREMENT.
    pub const VBS_MEASUREMENT: u32 = 0x311;
    /// IGVM_VHT_DEVICE_TREE.
    pub const DEVICE_TREE: u32 = 0x312;
    /// IGVM_VHT_ENVIRONMENT_INFO_PARAMETER.
    pub const ENVIRONMENT_INFO_PARAMETER: u32 = 0x313;
}

/// Body sizes of the headers read here (`size_of` of the igvm_defs structures; a test
/// compares them with the crate).
pub mod len {
    /// IGVM_VHS_SUPPORTED_PLATFORM.
    pub const SUPPORTED_PLATFORM: usize = 16;
    /// IGVM_VHS_GUEST_POLICY.
    pub const GUEST_POLICY: usize = 16;
    /// IGVM_VHS_CORIM_DATA.
    pub const CORIM_DATA: usize = 16;
    /// IGVM_VHS_PARAMETER_AREA.
    pub const PARAMETER_AREA: usize = 16;
    /// IGVM_VHS_PAGE_DATA.
    pub const PAGE_DATA: usize = 24;
    /// IGVM_VHS_PARAMETER_INSERT.
    pub const PARAMETER_INSERT: usize = 16;
    /// IGVM_VHS_VP_CONTEXT (20 bytes; the next header starts 8-aligned, at 24).
    pub const VP_CONTEXT: usize = 20;
    /// IGVM_VHS_REQUIRED_MEMORY.
    pub const REQUIRED_MEMORY: usize = 24;
    /// IGVM_VHS_PARAMETER.
    pub const PARAMETER: usize = 8;
    /// IGVM_VHS_SNP_ID_BLOCK.
    pub const SNP_ID_BLOCK: usize = 696;
    /// IGVM_VHS_ERROR_RANGE.
    pub const ERROR_RANGE: usize = 16;
    /// IGVM_VHS_VBS_MEASUREMENT.
    pub const VBS_MEASUREMENT: usize = 864;
    /// IgvmNativeVpContextX64 (the rest of its 4 KiB page must be zero).
    pub const NATIVE_VP_CONTEXT: usize = 232;
}

/// Platform types (`IgvmPlatformType`).
mod platform {
    pub const NATIVE: u8 = 0;
    pub const VSM_ISOLATION: u8 = 1;
    pub const SEV_SNP: u8 = 2;
    pub const SEV: u8 = 4;
    pub const SEV_ES: u8 = 5;
    pub const CCA: u8 = 6;
}

/// A parsed file: what the loader needs of each section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// SUPPORTED_PLATFORM headers: (platform type, compatibility mask), in file order.
    pub platforms: Vec<(u8, u32)>,
    /// GUEST_POLICY headers: (policy, compatibility mask), in file order.
    pub policies: Vec<(u64, u32)>,
    /// The directives, in file order.
    pub directives: Vec<Directive<'a>>,
}

/// Build the launch plan of `data` for `cfg`: the same plan as
/// `igvm_loader::plan` (feature `host`), read without the igvm crate.
pub fn plan(data: &[u8], cfg: HostConfig) -> Result<Plan, LoadError> {
    let f = parse(data)?;
    let mask = snp_mask(&f.platforms)?;
    let policy = snp_policy(&f.policies, mask)?;
    plan_directives(f.directives, mask, policy, cfg)
}

fn err<T>(offset: usize, what: &'static str) -> Result<T, LoadError> {
    Err(LoadError::Format { offset, what })
}

/// Little-endian reads at absolute file offsets, refused past the end.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn get(&self, at: usize, n: usize) -> Result<&'a [u8], LoadError> {
        match at.checked_add(n).and_then(|end| self.0.get(at..end)) {
            Some(s) => Ok(s),
            None => err(at, "field beyond the end of the file"),
        }
    }
    fn u16(&self, at: usize) -> Result<u16, LoadError> {
        let s = self.get(at, 2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&self, at: usize) -> Result<u32, LoadError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.get(at, 4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&self, at: usize) -> Result<u64, LoadError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.get(at, 8)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// The CRC-32 the fixed header's checksum uses (IEEE 802.3, reflected polynomial
/// 0xEDB88320, initial value and final XOR all ones: the `crc32fast` crate's, which
/// the igvm crate uses).
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
    }
    !crc
}

/// Check the fixed header; returns (variable header start, file data start).
fn fixed_header(b: &Bytes<'_>) -> Result<(usize, usize), LoadError> {
    if b.0.len() < FIXED_HEADER_LEN {
        return err(0, "shorter than the fixed header");
    }
    if b.u32(0)? != MAGIC {
        return err(0, "magic is not IGVM");
    }
    match b.u32(4)? {
        FORMAT_VERSION_1 => {}
        2 => return err(4, "format version 2 (unstable in igvm_defs) is not loaded"),
        _ => return err(4, "unknown format version"),
    }
    let vh_off = b.u32(8)? as usize;
    let vh_size = b.u32(12)? as usize;
    if b.u32(16)? as usize != b.0.len() {
        return err(16, "total_file_size is not the file's size");
    }
    if vh_off < FIXED_HEADER_LEN || !vh_off.is_multiple_of(8) {
        return err(
            8,
            "variable header offset inside the fixed header or not 8-aligned",
        );
    }
    // The igvm crate also refuses a file whose file data section is empty.
    let data_start = vh_off.checked_add(vh_size);
    let Some(data_start) = data_start.filter(|d| *d < b.0.len()) else {
        return err(12, "variable header reaches the end of the file");
    };
    let mut fixed = [0u8; FIXED_HEADER_LEN];
    fixed.copy_from_slice(b.get(0, FIXED_HEADER_LEN)?);
    fixed[CHECKSUM_AT..CHECKSUM_AT + 4].fill(0);
    if crc32(&[&fixed, b.get(vh_off, vh_size)?]) != b.u32(CHECKSUM_AT)? {
        return err(CHECKSUM_AT, "checksum does not match");
    }
    Ok((vh_off, data_start))
}

/// Where the parser is: sections only move forward.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Platform,
    Initialization,
    Directive,
}

/// State of a parameter area (igvm crate: allocated, then inserted once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Allocated,
    Inserted,
}

struct Parser<'a> {
    b: Bytes<'a>,
    data_start: usize,
    out: Parsed<'a>,
    areas: alloc::collections::BTreeMap<u32, Area>,
    corim_docs: u32,
    corim_sigs: u32,
}

/// Parse `data` into its sections. Refuses what the igvm crate refuses, and every
/// header kind this reader does not load, by name and offset.
pub fn parse(data: &[u8]) -> Result<Parsed<'_>, LoadError> {
    let b = Bytes(data);
    let (vh_off, data_start) = fixed_header(&b)?;
    let mut p = Parser {
        b,
        data_start,
        out: Parsed::default(),
        areas: alloc::collections::BTreeMap::new(),
        corim_docs: 0,
        corim_sigs: 0,
    };
    let mut section = Section::Platform;
    let mut at = vh_off;
    while at < data_start {
        if data_start - at < VH_LEN {
            return err(at, "truncated variable header record");
        }
        let typ = p.b.u32(at)?;
        let length = p.b.u32(at + 4)? as usize;
        let next = match typ {
            0x1..=0x100 => Section::Platform,
            0x101..=0x200 => Section::Initialization,
            0x301..=0x400 => Section::Directive,
            _ => return err(at, "variable header type outside the three sections"),
        };
        if next < section {
            return err(at, "header of an earlier section after a later one");
        }
        section = next;
        // Body length as consumed: the exact structure size, 8-aligned.
        let consumed = if typ == vht::VP_CONTEXT { 24 } else { length };
        let body = at + VH_LEN;
        if body.checked_add(consumed).is_none_or(|e| e > data_start) {
            return err(at, "header body beyond the variable header section");
        }
        match section {
            Section::Platform => p.platform(at, typ, length)?,
            Section::Initialization => p.initialization(at, typ, length)?,
            Section::Directive => p.directive(at, typ, length)?,
        }
        at = body + consumed;
    }
    p.finish()
}

impl<'a> Parser<'a> {
    fn expect_len(
        at: usize,
        length: usize,
        want: usize,
        what: &'static str,
    ) -> Result<(), LoadError> {
        if length == want {
            Ok(())
        } else {
            err(at + 4, what)
        }
    }

    /// File data at `file_offset` (absolute; 0 means none), `n` bytes, inside the
    /// file data section.
    fn file_data(&self, at: usize, file_offset: u32, n: u64) -> Result<&'a [u8], LoadError> {
        let start = file_offset as usize;
        if start < self.data_start {
            return err(at, "file_offset before the file data section");
        }
        match usize::try_from(n) {
            Ok(n) => self
                .b
                .get(start, n)
                .or(err(at, "file data beyond the end of the file")),
            Err(_) => err(at, "file data larger than the address space"),
        }
    }

    /// SUPPORTED_PLATFORM (igvm crate `IgvmPlatformHeader::validate`).
    fn platform(&mut self, at: usize, typ: u32, length: usize) -> Result<(), LoadError> {
        if typ != vht::SUPPORTED_PLATFORM {
            return err(at, "unknown platform header type");
        }
        Self::expect_len(
            at,
            length,
            len::SUPPORTED_PLATFORM,
            "SUPPORTED_PLATFORM length",
        )?;
        let body = at + VH_LEN;
        let mask = self.b.u32(body)?;
        let vtl = self.b.get(body + 4, 1)?[0];
        let ptype = self.b.get(body + 5, 1)?[0];
        let version = self.b.u16(body + 6)?;
        let shared_boundary = self.b.u64(body + 8)?;
        if mask.count_ones() != 1 {
            return err(body, "platform compatibility mask without exactly one bit");
        }
        if vtl != 0 && vtl != 2 {
            return err(body + 4, "highest VTL is neither 0 nor 2");
        }
        if ptype == platform::CCA {
            return err(body + 5, "CCA platform in an x86-64 (version 1) file");
        }
        if ptype > platform::CCA {
            return err(body + 5, "unknown platform type");
        }
        if version != 1 {
            return err(body + 6, "platform version is not 1");
        }
        if matches!(ptype, platform::NATIVE | platform::VSM_ISOLATION) && shared_boundary != 0 {
            return err(body + 8, "shared GPA boundary on a platform without one");
        }
        if self.out.platforms.iter().any(|(t, _)| *t == ptype) {
            return err(body + 5, "second platform header of one platform type");
        }
        self.out.platforms.push((ptype, mask));
        Ok(())
    }

    /// GUEST_POLICY is loaded; CoRIM headers are checked and ignored (they do not
    /// change the launch); relocation and every other initialization header are refused.
    fn initialization(&mut self, at: usize, typ: u32, length: usize) -> Result<(), LoadError> {
        let body = at + VH_LEN;
        match typ {
            vht::GUEST_POLICY => {
                Self::expect_len(at, length, len::GUEST_POLICY, "GUEST_POLICY length")?;
                if self.b.u32(body + 12)? != 0 {
                    return err(body + 12, "GUEST_POLICY reserved field is not zero");
                }
                let policy = self.b.u64(body)?;
                let mask = self.b.u32(body + 8)?;
                self.out.policies.push((policy, mask));
                Ok(())
            }
            vht::CORIM_DOCUMENT | vht::CORIM_SIGNATURE => self.corim(at, typ, length),
            vht::RELOCATABLE_REGION => err(at, "RELOCATABLE_REGION (relocation is not loaded)"),
            vht::PAGE_TABLE_RELOCATION_REGION => err(
                at,
                "PAGE_TABLE_RELOCATION_REGION (relocation is not loaded)",
            ),
            _ => err(
                at,
                "initialization header the qemu-kvm profile does not use",
            ),
        }
    }

    /// CORIM_DOCUMENT / CORIM_SIGNATURE: at most one of each per platform, a signature
    /// only after its document (igvm crate `validate_initialization_headers`).
    fn corim(&mut self, at: usize, typ: u32, length: usize) -> Result<(), LoadError> {
        Self::expect_len(at, length, len::CORIM_DATA, "CORIM header length")?;
        let body = at + VH_LEN;
        let mask = self.b.u32(body)?;
        let file_offset = self.b.u32(body + 4)?;
        let size = self.b.u32(body + 8)?;
        if self.b.u32(body + 12)? != 0 {
            return err(body + 12, "CORIM header reserved field is not zero");
        }
        if file_offset != 0 {
            self.file_data(body + 4, file_offset, u64::from(size))?;
        }
        if typ == vht::CORIM_DOCUMENT {
            if self.corim_docs & mask != 0 {
                return err(at, "second CORIM_DOCUMENT for a platform");
            }
            self.corim_docs |= mask;
        } else {
            if self.corim_sigs & mask != 0 {
                return err(at, "second CORIM_SIGNATURE for a platform");
            }
            if self.corim_docs & mask != mask {
                return err(at, "CORIM_SIGNATURE before its CORIM_DOCUMENT");
            }
            self.corim_sigs |= mask;
        }
        Ok(())
    }

    /// The platform type a compatibility mask names (the last platform header with
    /// exactly that mask, as the igvm crate's map keeps it).
    fn platform_of(&self, mask: u32) -> Option<u8> {
        self.out
            .platforms
            .iter()
            .rev()
            .find(|(_, m)| *m == mask)
            .map(|(t, _)| *t)
    }

    fn finish(self) -> Result<Parsed<'a>, LoadError> {
        if self.out.platforms.is_empty() {
            return err(FIXED_HEADER_LEN, "no platform header");
        }
        Ok(self.out)
    }
}

fn aligned(at: usize, gpa: u64) -> Result<(), LoadError> {
    if gpa.is_multiple_of(PAGE) {
        Ok(())
    } else {
        err(at, "GPA is not 4 KiB aligned")
    }
}

impl<'a> Parser<'a> {
    /// One directive header.
    fn directive(&mut self, at: usize, typ: u32, length: usize) -> Result<(), LoadError> {
        let body = at + VH_LEN;
        let want = match typ {
            vht::PARAMETER_AREA => len::PARAMETER_AREA,
            vht::PAGE_DATA => len::PAGE_DATA,
            vht::PARAMETER_INSERT => len::PARAMETER_INSERT,
            vht::VP_CONTEXT => len::VP_CONTEXT,
            vht::REQUIRED_MEMORY => len::REQUIRED_MEMORY,
            vht::VP_COUNT_PARAMETER
            | vht::SRAT
            | vht::MADT
            | vht::MMIO_RANGES
            | vht::MEMORY_MAP
            | vht::COMMAND_LINE
            | vht::SLIT
            | vht::PPTT
            | vht::DEVICE_TREE
            | vht::ENVIRONMENT_INFO_PARAMETER => len::PARAMETER,
            vht::SNP_ID_BLOCK => len::SNP_ID_BLOCK,
            vht::ERROR_RANGE => len::ERROR_RANGE,
            vht::VBS_MEASUREMENT => len::VBS_MEASUREMENT,
            _ => return err(at, "unknown directive type"),
        };
        Self::expect_len(
            at,
            length,
            want,
            "directive length is not its structure's size",
        )?;
        let d = match typ {
            vht::PARAMETER_AREA => self.parameter_area(body)?,
            vht::PAGE_DATA => self.page_data(body)?,
            vht::PARAMETER_INSERT => {
                let gpa = self.b.u64(body)?;
                aligned(body, gpa)?;
                let area = self.b.u32(body + 12)?;
                match self.areas.get_mut(&area) {
                    Some(s @ Area::Allocated) => *s = Area::Inserted,
                    _ => {
                        return err(
                            body + 12,
                            "PARAMETER_INSERT of an area not allocated or inserted already",
                        )
                    }
                }
                Directive::ParameterInsert {
                    gpa,
                    mask: self.b.u32(body + 8)?,
                    area,
                }
            }
            vht::VP_CONTEXT => self.vp_context(body)?,
            vht::REQUIRED_MEMORY => {
                let gpa = self.b.u64(body)?;
                let bytes = self.b.u32(body + 12)?;
                if self.b.u32(body + 20)? != 0 {
                    return err(body + 20, "REQUIRED_MEMORY reserved field is not zero");
                }
                aligned(body, gpa)?;
                if !u64::from(bytes).is_multiple_of(PAGE) {
                    return err(body + 12, "REQUIRED_MEMORY size is not a multiple of 4 KiB");
                }
                Directive::RequiredMemory {
                    gpa,
                    mask: self.b.u32(body + 8)?,
                    bytes,
                }
            }
            vht::SNP_ID_BLOCK => Directive::SnpIdBlock {
                mask: self.b.u32(body)?,
            },
            vht::ERROR_RANGE => {
                aligned(body, self.b.u64(body)?)?;
                Directive::ErrorRange {
                    mask: self.b.u32(body + 8)?,
                }
            }
            vht::VBS_MEASUREMENT => Directive::Other {
                mask: Some(self.b.u32(body)?),
            },
            _ => self.parameter_use(body, typ)?,
        };
        self.out.directives.push(d);
        Ok(())
    }

    /// PARAMETER_AREA: page-multiple size, a new index, initial data from the file.
    fn parameter_area(&mut self, body: usize) -> Result<Directive<'a>, LoadError> {
        let bytes = self.b.u64(body)?;
        let area = self.b.u32(body + 8)?;
        let file_offset = self.b.u32(body + 12)?;
        let initial = if file_offset == 0 {
            &[][..]
        } else {
            self.file_data(body + 12, file_offset, bytes)?
        };
        if !bytes.is_multiple_of(PAGE) {
            return err(body, "PARAMETER_AREA size is not a multiple of 4 KiB");
        }
        if self.areas.insert(area, Area::Allocated).is_some() {
            return err(body + 8, "PARAMETER_AREA index used before");
        }
        Ok(Directive::ParameterArea {
            bytes,
            area,
            initial,
        })
    }

    /// PAGE_DATA: 4 KiB of file data or none, zero reserved field, aligned GPA, a known
    /// data type.
    fn page_data(&mut self, body: usize) -> Result<Directive<'a>, LoadError> {
        let gpa = self.b.u64(body)?;
        let file_offset = self.b.u32(body + 12)?;
        let data = if file_offset == 0 {
            &[][..]
        } else {
            self.file_data(body + 12, file_offset, PAGE)?
        };
        if self.b.u16(body + 22)? != 0 {
            return err(body + 22, "PAGE_DATA reserved field is not zero");
        }
        aligned(body, gpa)?;
        let data_type = self.b.u16(body + 20)?;
        if data_type > crate::host_loader::PAGE_TYPE_CPUID_XF {
            return err(body + 20, "PAGE_DATA of an unknown data type");
        }
        Ok(Directive::PageData {
            gpa,
            mask: self.b.u32(body + 8)?,
            flags: self.b.u32(body + 16)?,
            data_type,
            data,
        })
    }

    /// VP_CONTEXT: its platform is the one whose mask equals the header's; SNP and
    /// SEV-ES hold a VMSA page at a 4 KiB aligned GPA, native and SEV a native context
    /// (the rest of its page zero; the GPA is not used, and the igvm crate does not
    /// check it); VBS register lists are refused.
    fn vp_context(&mut self, body: usize) -> Result<Directive<'a>, LoadError> {
        let gpa = self.b.u64(body)?;
        let mask = self.b.u32(body + 8)?;
        let file_offset = self.b.u32(body + 12)?;
        let vp = self.b.u16(body + 16)?;
        let d = match self.platform_of(mask) {
            Some(platform::SEV_SNP | platform::SEV_ES) => {
                let vmsa = self.file_data(body + 12, file_offset, PAGE)?;
                aligned(body, gpa)?;
                Directive::SnpVpContext { vp, mask, vmsa }
            }
            Some(platform::NATIVE | platform::SEV) => {
                let page = self.file_data(body + 12, file_offset, PAGE)?;
                if page[len::NATIVE_VP_CONTEXT..].iter().any(|b| *b != 0) {
                    return err(body + 12, "native VP context with bytes past its structure");
                }
                Directive::Other { mask: Some(mask) }
            }
            Some(platform::VSM_ISOLATION) => return err(body + 8, "VBS VP context"),
            _ => {
                return err(
                    body + 8,
                    "VP_CONTEXT mask names no platform with a VP context",
                )
            }
        };
        Ok(d)
    }

    /// Parameter usage headers: the area must be allocated and not inserted yet.
    fn parameter_use(&mut self, body: usize, typ: u32) -> Result<Directive<'a>, LoadError> {
        let area = self.b.u32(body)?;
        let offset = self.b.u32(body + 4)?;
        if self.areas.get(&area) != Some(&Area::Allocated) {
            return err(
                body,
                "parameter of an area not allocated or inserted already",
            );
        }
        Ok(match typ {
            vht::VP_COUNT_PARAMETER => Directive::VpCount { area, offset },
            vht::MEMORY_MAP => Directive::MemoryMap { area, offset },
            _ => Directive::Other { mask: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The CRC-32/ISO-HDLC check value of "123456789".
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
    }

    #[test]
    fn short_and_foreign_bytes_are_refused_by_offset() {
        assert_eq!(
            parse(b"IGVM").unwrap_err(),
            LoadError::Format {
                offset: 0,
                what: "shorter than the fixed header"
            }
        );
        let mut f = [0u8; 32];
        f[..4].copy_from_slice(b"MVGI");
        assert!(matches!(
            parse(&f),
            Err(LoadError::Format { offset: 0, .. })
        ));
        f[..4].copy_from_slice(b"IGVM");
        f[4] = 3;
        assert!(matches!(
            parse(&f),
            Err(LoadError::Format { offset: 4, .. })
        ));
    }
}
