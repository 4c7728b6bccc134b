//! OVMF (and pre-IGVM SVSM) firmware images: the GUIDed footer table at the end of the
//! image and the SEV metadata it points to.
//!
//! Layout (edk2 OvmfPkg/ResetVector): the last 32 bytes of the image hold the reset
//! vector; just below them sits the footer entry `{u16 size, GUID}` (18 bytes) with the
//! table-footer GUID, whose `size` covers the whole table. The table's entries are stored
//! backwards from there, each ending with its own `{u16 size, GUID}` header and its data
//! in front of it. One entry (SEV metadata GUID) holds a u32 offset *from the end of the
//! image* to an `ASEV` header `{sig[4], u32 size, u32 version=1, u32 num_items}` followed
//! by `num_items` descriptors `{u32 gpa, u32 size, u32 type}`.
//!
//! Written by hand: no crate parses this edk2-specific table. The parser treats the image
//! as hostile input (it may come from anyone who wants a digest computed): every length
//! is bounds-checked and every error names the structure, the field and its byte offset.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::{Error, Result};

/// Size of the footer entry header: u16 size + 16-byte GUID.
pub const ENTRY_HEADER_SIZE: usize = 18;

/// The table footer GUID.
pub const TABLE_FOOTER_GUID: &str = "96b582de-1fb2-45f7-baea-a366c55a082d";
/// The SEV hash table entry (u32 GPA, u32 size of the kernel hashes area).
pub const SEV_HASH_TABLE_RV_GUID: &str = "7255371f-3a3b-4b04-927b-1da6efa8d454";
/// The SEV-ES AP reset block entry (u32 reset EIP).
pub const SEV_ES_RESET_BLOCK_GUID: &str = "00f771de-1a7e-4fcb-890e-68c77e2fb44e";
/// The SEV metadata entry (u32 offset of the ASEV header from the end of the image).
pub const SEV_META_DATA_GUID: &str = "dc886566-984a-4798-a75e-5585a7bf67cc";
/// The SVSM info entry of a pre-IGVM COCONUT SVSM image (u32 entry offset in the image).
pub const SVSM_INFO_GUID: &str = "a789a612-0597-4c4b-a49f-cbb1fe9d1ddd";

/// Parse a GUID string into its little-endian ("mixed-endian", as stored by edk2) bytes.
pub fn guid_le(s: &str) -> [u8; 16] {
    let hexs: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hexs.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Format little-endian GUID bytes as a string.
pub fn guid_str(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        hex::encode(&b[10..16])
    )
}

/// Types of SEV metadata sections (edk2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SectionType {
    /// Memory the guest expects pre-validated and zeroed (SEC memory).
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The CPUID page.
    Cpuid,
    /// The SVSM calling area page.
    SvsmCaa,
    /// The page holding the kernel/initrd/cmdline hash table (measured direct boot).
    SnpKernelHashes,
}

impl SectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            _ => return None,
        })
    }
}

/// One SEV metadata section descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MetadataSection {
    /// Start GPA.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// Section type.
    pub section_type: SectionType,
}

/// A parsed firmware image.
#[derive(Clone, Debug)]
pub struct Ovmf<'a> {
    data: Cow<'a, [u8]>,
    gpa: u64,
    table: BTreeMap<[u8; 16], (usize, Vec<u8>)>,
    metadata: Vec<MetadataSection>,
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    data.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

impl<'a> Ovmf<'a> {
    /// Parse `data` as a firmware image loaded so that it ends at `end_gpa`
    /// (4 GiB for OVMF). `name` prefixes error messages ("OVMF", "SVSM").
    pub fn parse(name: &str, data: impl Into<Cow<'a, [u8]>>, end_gpa: u64) -> Result<Self> {
        let data = data.into();
        if data.is_empty() || !data.len().is_multiple_of(4096) {
            return Err(Error::format(
                format!("{name} image: file size"),
                0,
                format!("size {:#x} is not a non-zero multiple of 4 KiB", data.len()),
            ));
        }
        let len = data.len() as u64;
        let gpa = end_gpa.checked_sub(len).ok_or_else(|| {
            Error::format(
                format!("{name} image: file size"),
                0,
                format!("image of {len:#x} bytes does not fit below {end_gpa:#x}"),
            )
        })?;
        let table = parse_footer_table(name, &data)?;
        let mut me = Self {
            data,
            gpa,
            table,
            metadata: Vec::new(),
        };
        me.metadata = me.parse_metadata(name)?;
        Ok(me)
    }

    /// Parse `data` as an OVMF image ending at 4 GiB and check that it is one a VMM
    /// would launch: a size within [`crate::limits::OVMF`], the footer table (checked by
    /// [`Ovmf::parse`]), a reset vector, and for SNP (`snp` true) the SEV metadata.
    pub fn parse_ovmf(data: impl Into<Cow<'a, [u8]>>, snp: bool) -> Result<Self> {
        let data = data.into();
        let limit = crate::limits::OVMF.limit;
        if data.len() as u64 > limit {
            return Err(Error::format(
                "OVMF image: file size",
                limit,
                format!(
                    "{:#x} bytes is larger than the {limit:#x}-byte limit",
                    data.len()
                ),
            ));
        }
        check_reset_vector(&data)?;
        let me = Self::parse("OVMF", data, 1 << 32)?;
        // QEMU's SNP launch (target/i386/sev.c, snp_launch_finish) stops when the image
        // has no SEV metadata: OVMF's SEC code needs the pre-validated SEC memory, secrets
        // and CPUID pages that the metadata places (#56860 SNP_LAUNCH_UPDATE page types).
        if snp && me.table_entry(SEV_META_DATA_GUID).is_none() {
            let (footer, _) = me
                .table
                .values()
                .map(|(o, d)| (*o, d.len()))
                .min()
                .unwrap_or((me.data.len() - 32 - ENTRY_HEADER_SIZE, 0));
            return Err(Error::format(
                "OVMF footer table: SEV metadata entry",
                footer as u64,
                format!(
                    "missing ({SEV_META_DATA_GUID}): the image is not built for SEV-SNP \
                     (QEMU refuses to launch it as an SNP guest)"
                ),
            ));
        }
        Ok(me)
    }

    /// The image bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// The GPA of the first byte.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }
    /// The SEV metadata sections, in table order.
    pub fn metadata(&self) -> &[MetadataSection] {
        &self.metadata
    }
    /// True if the image has a footer table at all.
    pub fn has_footer_table(&self) -> bool {
        !self.table.is_empty()
    }
    /// The data of a footer table entry and its file offset.
    pub fn table_entry(&self, guid: &str) -> Option<(usize, &[u8])> {
        self.table
            .get(&guid_le(guid))
            .map(|(o, d)| (*o, d.as_slice()))
    }
    /// Every footer table entry: GUID string, file offset of its data, data length.
    pub fn table_entries(&self) -> Vec<(String, usize, usize)> {
        self.table
            .iter()
            .map(|(g, (o, d))| (guid_str(g), *o, d.len()))
            .collect()
    }

    fn entry_u32(&self, name: &str, guid: &str, what: &str) -> Result<u32> {
        let (off, d) = self.table_entry(guid).ok_or_else(|| {
            Error::Invalid(format!("{name}: footer table has no {what} entry ({guid})"))
        })?;
        u32_at(d, 0).ok_or_else(|| {
            Error::format(
                format!("{name} footer table: {what} entry"),
                off as u64,
                format!("data length {} < 4", d.len()),
            )
        })
    }

    /// The SEV-ES reset EIP of the APs (SEV_ES_RESET_BLOCK entry).
    pub fn sev_es_reset_eip(&self, name: &str) -> Result<u32> {
        self.entry_u32(name, SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block")
    }
    /// The GPA of the SEV kernel hashes table.
    pub fn sev_hashes_table_gpa(&self, name: &str) -> Result<u32> {
        self.entry_u32(name, SEV_HASH_TABLE_RV_GUID, "SEV hash table")
    }
    /// The entry point of a pre-IGVM SVSM image: the SVSM_INFO offset plus the image GPA.
    pub fn svsm_entry(&self, name: &str) -> Result<u64> {
        Ok(u64::from(self.entry_u32(name, SVSM_INFO_GUID, "SVSM info")?) + self.gpa)
    }
    /// True if the image supports measured direct boot (hash table entry present, GPA != 0).
    pub fn supports_kernel_hashes(&self) -> bool {
        self.table_entry(SEV_HASH_TABLE_RV_GUID)
            .and_then(|(_, d)| u32_at(d, 0))
            .is_some_and(|g| g != 0)
    }

    fn parse_metadata(&self, name: &str) -> Result<Vec<MetadataSection>> {
        let Some((entry_off, entry)) = self.table_entry(SEV_META_DATA_GUID) else {
            return Ok(Vec::new());
        };
        let what = format!("{name} SEV metadata");
        let from_end = u32_at(entry, 0).ok_or_else(|| {
            Error::format(
                format!("{name} footer table: SEV metadata entry"),
                entry_off as u64,
                "data length < 4",
            )
        })? as usize;
        let len = self.data.len();
        let start = len
            .checked_sub(from_end)
            .filter(|s| s + 16 <= len)
            .ok_or_else(|| {
                Error::format(
                    format!("{name} footer table: SEV metadata offset"),
                    entry_off as u64,
                    format!("offset from end {from_end:#x} points outside the {len:#x}-byte image"),
                )
            })?;
        let d = &self.data;
        if &d[start..start + 4] != b"ASEV" {
            return Err(Error::format(
                format!("{what}: signature"),
                start as u64,
                format!("{:02x?} is not \"ASEV\"", &d[start..start + 4]),
            ));
        }
        let size = u32_at(d, start + 4).unwrap_or(0) as usize;
        let version = u32_at(d, start + 8).unwrap_or(0);
        let num = u32_at(d, start + 12).unwrap_or(0) as usize;
        if version != 1 {
            return Err(Error::format(
                format!("{what}: version"),
                (start + 8) as u64,
                format!("{version} != 1"),
            ));
        }
        if size < 16 || start + size > len {
            return Err(Error::format(
                format!("{what}: size"),
                (start + 4) as u64,
                format!("{size:#x} is below 16 or runs past the end of the image"),
            ));
        }
        if num.checked_mul(12).is_none_or(|n| 16 + n > size) {
            return Err(Error::format(
                format!("{what}: num_items"),
                (start + 12) as u64,
                format!("{num} items of 12 bytes do not fit in size {size:#x}"),
            ));
        }
        let mut out = Vec::with_capacity(num);
        for i in 0..num {
            let o = start + 16 + 12 * i;
            let gpa = u32_at(d, o).unwrap_or(0);
            let sz = u32_at(d, o + 4).unwrap_or(0);
            let ty = u32_at(d, o + 8).unwrap_or(0);
            let section_type = SectionType::from_u32(ty).ok_or_else(|| {
                Error::format(
                    format!("{what}: item {i} type"),
                    (o + 8) as u64,
                    format!("unknown section type {ty:#x}"),
                )
            })?;
            if !gpa.is_multiple_of(4096) || !sz.is_multiple_of(4096) || sz == 0 {
                return Err(Error::format(
                    format!("{what}: item {i} gpa/size"),
                    o as u64,
                    format!("gpa {gpa:#x} size {sz:#x}: not whole 4 KiB pages"),
                ));
            }
            if u64::from(gpa) + u64::from(sz) > 1 << 32 {
                return Err(Error::format(
                    format!("{what}: item {i} size"),
                    (o + 4) as u64,
                    format!("section {gpa:#x}+{sz:#x} runs past 4 GiB"),
                ));
            }
            out.push(MetadataSection {
                gpa,
                size: sz,
                section_type,
            });
        }
        Ok(out)
    }
}

/// The reset vector: the CPU starts at 0xFFFFFFF0, the last 16 bytes of an image that
/// ends at 4 GiB (APM vol 2, 14.1.5 "Fetching the First Instruction"). Sixteen bytes hold
/// no firmware, so edk2's reset vector (OvmfPkg ResetVector, "Vtf0") jumps away from
/// there: a near (E9) or short (EB) JMP must be among them. Erased flash (all 0x00 or
/// all 0xFF) and data files have none.
fn check_reset_vector(data: &[u8]) -> Result<()> {
    let Some(at) = data.len().checked_sub(16) else {
        return Err(Error::format(
            "OVMF image: reset vector",
            0,
            format!(
                "image of {:#x} bytes is shorter than the 16-byte reset vector",
                data.len()
            ),
        ));
    };
    let rv = &data[at..];
    let uniform = rv.iter().all(|b| *b == rv[0]);
    if uniform || !rv.iter().any(|b| *b == 0xE9 || *b == 0xEB) {
        return Err(Error::format(
            "OVMF image: reset vector (GPA 0xfffffff0)",
            at as u64,
            format!(
                "{} holds no jump instruction: not a firmware image",
                hex::encode(rv)
            ),
        ));
    }
    Ok(())
}

type Table = BTreeMap<[u8; 16], (usize, Vec<u8>)>;

fn parse_footer_table(name: &str, data: &[u8]) -> Result<Table> {
    let mut table = BTreeMap::new();
    let len = data.len();
    let what = format!("{name} footer table");
    if len < 32 + ENTRY_HEADER_SIZE {
        return Err(Error::format(
            format!("{what}: footer"),
            0,
            format!("image of {len:#x} bytes has no room for the table footer"),
        ));
    }
    let footer = len - 32 - ENTRY_HEADER_SIZE;
    if data[footer + 2..footer + 18] != guid_le(TABLE_FOOTER_GUID) {
        // Attack/mistake: OVMF_VARS, random bytes, a truncated image or zeros have no
        // table here. sev-snp-measure refuses them too; measuring them would give a
        // digest of the wrong file.
        return Err(Error::format(
            format!("{what}: footer GUID"),
            (footer + 2) as u64,
            format!(
                "{} is not the table footer GUID {TABLE_FOOTER_GUID}: not an OVMF image \
                 (OVMF_VARS, a truncated image or other data?)",
                hex::encode(&data[footer + 2..footer + 18])
            ),
        ));
    }
    let total = u16::from_le_bytes([data[footer], data[footer + 1]]) as usize;
    let table_size = total.checked_sub(ENTRY_HEADER_SIZE).ok_or_else(|| {
        Error::format(
            format!("{what}: footer length"),
            footer as u64,
            format!("length {total:#x} < {ENTRY_HEADER_SIZE}"),
        )
    })?;
    let table_start = footer.checked_sub(table_size).ok_or_else(|| {
        Error::format(
            format!("{what}: footer length"),
            footer as u64,
            format!("length {total:#x} runs past the image start"),
        )
    })?;
    let mut end = footer; // entries end here and are read backwards
    while end - table_start >= ENTRY_HEADER_SIZE {
        let hdr = end - ENTRY_HEADER_SIZE;
        let size = u16::from_le_bytes([data[hdr], data[hdr + 1]]) as usize;
        if size < ENTRY_HEADER_SIZE {
            return Err(Error::format(
                format!("{what}: entry"),
                hdr as u64,
                format!("length {size:#x} < {ENTRY_HEADER_SIZE}"),
            ));
        }
        if size > end - table_start {
            return Err(Error::format(
                format!("{what}: entry"),
                hdr as u64,
                format!("length {size:#x} runs past the table start at {table_start:#x}"),
            ));
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&data[hdr + 2..hdr + 18]);
        let data_start = end - size;
        // First occurrence wins when read from the end, as in edk2 and sev-snp-measure
        // (which overwrites; a duplicate GUID is refused here as ambiguous instead).
        if table.contains_key(&guid) {
            return Err(Error::format(
                format!("{what}: entry"),
                hdr as u64,
                format!("duplicate GUID {}", guid_str(&guid)),
            ));
        }
        table.insert(guid, (data_start, data[data_start..hdr].to_vec()));
        end = data_start;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip() {
        let g = guid_le(TABLE_FOOTER_GUID);
        assert_eq!(g[0], 0xde);
        assert_eq!(g[3], 0x96);
        assert_eq!(guid_str(&g), TABLE_FOOTER_GUID);
    }

    fn image_with_table(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut table = Vec::new();
        for (g, d) in entries.iter().rev() {
            table.extend_from_slice(d);
            table.extend_from_slice(&((d.len() + 18) as u16).to_le_bytes());
            table.extend_from_slice(&guid_le(g));
        }
        table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(&guid_le(TABLE_FOOTER_GUID));
        let mut img = vec![0u8; 4096];
        let end = 4096 - 32;
        img[end - table.len()..end].copy_from_slice(&table);
        img
    }

    #[test]
    fn entry_length_below_header_names_offset() {
        let mut img = image_with_table(&[(SEV_ES_RESET_BLOCK_GUID, vec![0, 0, 0x80, 0])]);
        // Corrupt the entry's length field: it sits 18+18 bytes below the footer header end.
        let hdr = 4096 - 32 - 18 - 18;
        img[hdr] = 2;
        img[hdr + 1] = 0;
        let e = Ovmf::parse("OVMF", img, 1 << 32).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("OVMF footer table: entry at offset {hdr:#x}: length 0x2 < 18")
        );
    }

    #[test]
    fn reset_eip_read_and_missing_entries_named() {
        let img =
            image_with_table(&[(SEV_ES_RESET_BLOCK_GUID, 0x80_b004u32.to_le_bytes().to_vec())]);
        let o = Ovmf::parse("OVMF", img, 1 << 32).unwrap();
        assert_eq!(o.sev_es_reset_eip("OVMF").unwrap(), 0x80_b004);
        assert_eq!(o.gpa(), 0xFFFF_F000);
        let e = o.sev_hashes_table_gpa("OVMF").unwrap_err().to_string();
        assert!(e.contains("no SEV hash table entry"), "{e}");
    }

    #[test]
    fn metadata_bad_signature_and_bad_type() {
        let mut img = image_with_table(&[(SEV_META_DATA_GUID, 0x800u32.to_le_bytes().to_vec())]);
        let start = 4096 - 0x800;
        img[start..start + 4].copy_from_slice(b"ASEX");
        let e = Ovmf::parse("OVMF", img.clone(), 1 << 32)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "OVMF SEV metadata: signature at offset {start:#x}"
            )),
            "{e}"
        );
        img[start..start + 4].copy_from_slice(b"ASEV");
        img[start + 4..start + 8].copy_from_slice(&28u32.to_le_bytes());
        img[start + 8..start + 12].copy_from_slice(&1u32.to_le_bytes());
        img[start + 12..start + 16].copy_from_slice(&1u32.to_le_bytes());
        img[start + 16..start + 20].copy_from_slice(&0x80_0000u32.to_le_bytes());
        img[start + 20..start + 24].copy_from_slice(&0x1000u32.to_le_bytes());
        img[start + 24..start + 28].copy_from_slice(&9u32.to_le_bytes());
        let e = Ovmf::parse("OVMF", img.clone(), 1 << 32)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "OVMF SEV metadata: item 0 type at offset {:#x}: unknown section type 0x9",
                start + 24
            )
        );
        img[start + 24..start + 28].copy_from_slice(&3u32.to_le_bytes());
        let o = Ovmf::parse("OVMF", img, 1 << 32).unwrap();
        assert_eq!(o.metadata()[0].section_type, SectionType::Cpuid);
    }

    fn with_reset_vector(mut img: Vec<u8>) -> Vec<u8> {
        let n = img.len();
        // edk2's Vtf0 start: mov eax, cr0; test al, 1; jz; jmp near ...
        img[n - 16..].copy_from_slice(&[
            0x0f, 0x20, 0xc0, 0xa8, 0x01, 0x74, 0x05, 0xe9, 0x2c, 0xff, 0xff, 0xff, 0xe9, 0x11,
            0xff, 0x90,
        ]);
        img
    }

    #[test]
    fn parse_ovmf_refuses_images_without_reset_vector_footer_or_metadata() {
        let table = image_with_table(&[(SEV_ES_RESET_BLOCK_GUID, vec![0, 0, 0x80, 0])]);
        // Erased flash where the reset vector belongs.
        let e = Ovmf::parse_ovmf(table.clone(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("OVMF image: reset vector (GPA 0xfffffff0) at offset 0xff0"),
            "{e}"
        );
        // A reset vector but no footer table: zeros with a jump at the end.
        let e = Ovmf::parse_ovmf(with_reset_vector(vec![0; 8192]), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("OVMF footer table: footer GUID at offset 0x1fd0"),
            "{e}"
        );
        // Footer and reset vector, no SEV metadata: fine for SEV, refused for SNP.
        let img = with_reset_vector(table);
        assert!(Ovmf::parse_ovmf(img.clone(), false).is_ok());
        let e = Ovmf::parse_ovmf(img, true).unwrap_err().to_string();
        assert!(e.contains("SEV metadata entry at offset"), "{e}");
        assert!(e.contains("not built for SEV-SNP"), "{e}");
        // The AmdSev build's last 4 KiB passes every check.
        let fx = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/measure/ovmf_AmdSev_suffix.bin"
        ))
        .unwrap();
        assert!(Ovmf::parse_ovmf(fx, true).is_ok());
    }

    #[test]
    fn size_not_page_multiple() {
        let e = Ovmf::parse("OVMF", vec![0; 100], 1 << 32)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("OVMF image: file size at offset 0x0"), "{e}");
    }
}
