//! Reading IGVM files: a structural pre-check that names the field and byte offset of
//! every defect, then the `igvm` crate's parser.
//!
//! The `igvm` crate parses the format completely, but its errors do not say where in
//! the file a problem is ("invalid binary directive header"). A file given to `measure`
//! or `lint` may be hostile or just broken, and its author needs the offset. So before
//! handing the bytes to the crate, [`scan`] walks the fixed header and every variable
//! header itself (only the framing: type, length, alignment, the file-data references
//! of PAGE_DATA, PARAMETER_AREA and VP_CONTEXT) and reports what is wrong and where.
//! This walker is small and written by hand because no crate offers it; the semantic
//! checks stay with the `igvm` crate.

use igvm::{IgvmFile, IsolationType};
use igvm_defs::IgvmVariableHeaderType as T;

use crate::{Error, Result};

/// IGVM magic, "IGVM" little-endian.
pub const IGVM_MAGIC: u32 = 0x4D56_4749;

/// One variable header found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeaderLoc {
    /// Position among all variable headers.
    pub index: usize,
    /// File offset of its {type, length} header.
    pub offset: usize,
    /// Header type value.
    pub typ: u32,
    /// Body length.
    pub length: u32,
}

fn u32_at(d: &[u8], o: usize) -> u32 {
    d.get(o..o + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn u64_at(d: &[u8], o: usize) -> u64 {
    d.get(o..o + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The minimum body length of the header types this tool knows.
fn min_len(typ: u32) -> Option<u32> {
    Some(match T(typ) {
        T::IGVM_VHT_SUPPORTED_PLATFORM => 16,
        T::IGVM_VHT_GUEST_POLICY => 16,
        T::IGVM_VHT_PARAMETER_AREA => 16,
        T::IGVM_VHT_PAGE_DATA => 24,
        T::IGVM_VHT_PARAMETER_INSERT => 16,
        T::IGVM_VHT_VP_CONTEXT => 20,
        T::IGVM_VHT_REQUIRED_MEMORY => 24,
        T::IGVM_VHT_SNP_ID_BLOCK => 0x2b8,
        T::IGVM_VHT_VP_COUNT_PARAMETER
        | T::IGVM_VHT_MEMORY_MAP
        | T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER
        | T::IGVM_VHT_SRAT
        | T::IGVM_VHT_MADT
        | T::IGVM_VHT_MMIO_RANGES
        | T::IGVM_VHT_COMMAND_LINE
        | T::IGVM_VHT_DEVICE_TREE
        | T::IGVM_VHT_SLIT
        | T::IGVM_VHT_PPTT => 8,
        _ => return None,
    })
}

/// The version-2 fields of the fixed header: architecture X64 and 4 KiB pages, the only
/// ones the `igvm` crate and QEMU's loader handle.
fn check_v2_fields(d: &[u8]) -> Result<()> {
    let arch = u32_at(d, 24);
    if arch != 0 {
        return Err(Error::format(
            "IGVM fixed header: architecture",
            24,
            format!("{arch:#x} is not X64 (0)"),
        ));
    }
    let ps = u32_at(d, 28);
    if ps != 4096 {
        return Err(Error::format(
            "IGVM fixed header: page_size",
            28,
            format!("{ps:#x} is not 0x1000"),
        ));
    }
    Ok(())
}

/// The fixed header: magic, version, and a variable header section `[start, end)` that
/// lies inside the file, with `total_file_size` equal to the file size. Returns
/// `(start, end)`.
fn fixed_header(d: &[u8]) -> Result<(usize, usize)> {
    let len = d.len();
    if len < 24 {
        return Err(Error::format(
            "IGVM fixed header",
            0,
            format!("file of {len} bytes is shorter than 24"),
        ));
    }
    if u32_at(d, 0) != IGVM_MAGIC {
        return Err(Error::format(
            "IGVM fixed header: magic",
            0,
            format!("{:#x} is not \"IGVM\"", u32_at(d, 0)),
        ));
    }
    let version = u32_at(d, 4);
    let fixed = match version {
        1 => 24,
        2 => 32,
        v => {
            return Err(Error::format(
                "IGVM fixed header: format_version",
                4,
                format!("{v} is not 1 or 2"),
            ))
        }
    };
    if len < fixed {
        return Err(Error::format(
            "IGVM fixed header",
            0,
            format!("file of {len} bytes is shorter than {fixed}"),
        ));
    }
    if version == 2 {
        check_v2_fields(d)?;
    }
    let vh_off = u32_at(d, 8) as usize;
    let vh_size = u32_at(d, 12) as usize;
    let total = u32_at(d, 16) as usize;
    if vh_off < fixed || !vh_off.is_multiple_of(8) || vh_off > len {
        return Err(Error::format(
            "IGVM fixed header: variable_header_offset",
            8,
            format!("{vh_off:#x} is below the fixed header, unaligned or past the end ({len:#x})"),
        ));
    }
    if vh_off + vh_size > len {
        return Err(Error::format(
            "IGVM fixed header: variable_header_size",
            12,
            format!("{vh_off:#x}+{vh_size:#x} runs past the end of the file ({len:#x})"),
        ));
    }
    if total != len {
        return Err(Error::format(
            "IGVM fixed header: total_file_size",
            16,
            format!("{total:#x} != file size {len:#x}"),
        ));
    }
    Ok((vh_off, vh_off + vh_size))
}

/// One variable header being checked: its position, type (with and without the
/// optional bit) and body.
struct Vh {
    index: usize,
    off: usize,
    typ: u32,
    base: u32,
    length: u32,
    body: usize,
}

/// The section of a header type: 0 platform, 1 initialization, 2 directive. A type in
/// no range is refused: the `igvm` crate would reject it without an offset.
fn header_section(h: &Vh) -> Result<u8> {
    if igvm_defs::IGVM_VHT_RANGE_PLATFORM.contains(&h.base) {
        Ok(0)
    } else if igvm_defs::IGVM_VHT_RANGE_INIT.contains(&h.base) {
        Ok(1)
    } else if igvm_defs::IGVM_VHT_RANGE_DIRECTIVE.contains(&h.base) {
        Ok(2)
    } else {
        Err(Error::format(
            format!("IGVM variable header {}: type", h.index),
            h.off as u64,
            format!("{:#x} is in no header range", h.typ),
        ))
    }
}

/// Where a header refers to file data: the offset of its `file_offset` field and the
/// number of data bytes it names, or `None` for headers without file data.
fn data_reference(d: &[u8], h: &Vh) -> (Option<usize>, usize) {
    let body = h.body;
    match T(h.base) {
        T::IGVM_VHT_PAGE_DATA => {
            let flags = u32_at(d, body + 16);
            (
                Some(body + 12),
                if flags & 1 != 0 { 0x20_0000 } else { 0x1000 },
            )
        }
        T::IGVM_VHT_PARAMETER_AREA => (Some(body + 12), u64_at(d, body) as usize),
        T::IGVM_VHT_VP_CONTEXT => (Some(body + 12), 0x1000),
        // CoRIM document/signature: {mask, reserved, file_offset, size_bytes}.
        T::IGVM_VHT_CORIM_DOCUMENT | T::IGVM_VHT_CORIM_SIGNATURE if h.length >= 16 => {
            (Some(body + 8), u32_at(d, body + 12) as usize)
        }
        _ => (None, 0),
    }
}

/// The file-data reference of a header lies in the file data section `[end, len)`.
fn check_file_data(d: &[u8], h: &Vh, end: usize) -> Result<()> {
    let (typ, len) = (h.typ, d.len());
    let (data_off_at, data_len) = data_reference(d, h);
    // A VP context always has data: the igvm crate subtracts the data-section start
    // from its offset even when it is 0 (found by the igvm_reader fuzz target).
    if T(h.base) == T::IGVM_VHT_VP_CONTEXT && u32_at(d, h.body + 12) == 0 {
        return Err(Error::format(
            format!(
                "IGVM variable header {} (type {typ:#x}): file_offset",
                h.index
            ),
            (h.body + 12) as u64,
            "0: a VP context needs its register data",
        ));
    }
    if let Some(at) = data_off_at {
        let fo = u32_at(d, at) as usize;
        // The igvm crate reads a whole 4 KiB page (also for 2 MiB pages) or the whole
        // parameter area; it subtracts the data-section start from the offset, so an
        // offset below it must be refused here.
        let whole = matches!(
            T(h.base),
            T::IGVM_VHT_PARAMETER_AREA | T::IGVM_VHT_CORIM_DOCUMENT | T::IGVM_VHT_CORIM_SIGNATURE
        );
        let need = if whole {
            data_len
        } else {
            data_len.min(0x1000)
        };
        if fo != 0 && (fo < end || fo.checked_add(need).is_none_or(|e| e > len)) {
            return Err(Error::format(
                format!("IGVM variable header {} (type {typ:#x}): file_offset", h.index),
                at as u64,
                format!("{fo:#x} is not inside the file data section [{end:#x}, {len:#x}) ({data_len:#x} bytes)"),
            ));
        }
    }
    Ok(())
}

/// Read the {type, length} of the header at `off` and check that its body ends inside
/// the variable header section ending at `end`.
fn header_at(d: &[u8], index: usize, off: usize, end: usize) -> Result<Vh> {
    if off + 8 > end {
        return Err(Error::format(
            "IGVM variable header",
            off as u64,
            "truncated {type, length}",
        ));
    }
    let typ = u32_at(d, off);
    let length = u32_at(d, off + 4);
    let body = off + 8;
    if body + length as usize > end {
        return Err(Error::format(
            format!("IGVM variable header {index} (type {typ:#x}): length"),
            (off + 4) as u64,
            format!("{length:#x} runs past the variable header section end {end:#x}"),
        ));
    }
    Ok(Vh {
        index,
        off,
        typ,
        base: typ & !igvm_defs::IGVM_VHT_OPTIONAL_BIT,
        length,
        body,
    })
}

/// Walk the framing of an IGVM file and return where each variable header is: the
/// fixed header, then per variable header its framing, its section (platform,
/// initialization and directive headers in that order), its minimum length and its
/// file-data reference.
pub fn scan(d: &[u8]) -> Result<Vec<HeaderLoc>> {
    let (vh_off, end) = fixed_header(d)?;
    let mut out = Vec::new();
    let mut off = vh_off;
    let mut section = 0u8; // 0 platform, 1 initialization, 2 directive
    while off < end {
        let h = header_at(d, out.len(), off, end)?;
        let sec = header_section(&h)?;
        if sec < section {
            return Err(Error::format(
                format!("IGVM variable header {}: type", h.index),
                off as u64,
                format!("{:#x} comes after a header of a later section", h.typ),
            ));
        }
        section = sec;
        if let Some(min) = min_len(h.base) {
            if h.length < min {
                return Err(Error::format(
                    format!(
                        "IGVM variable header {} (type {:#x}): length",
                        h.index, h.typ
                    ),
                    (off + 4) as u64,
                    format!("{:#x} < {min:#x}", h.length),
                ));
            }
        }
        check_file_data(d, &h, end)?;
        out.push(HeaderLoc {
            index: h.index,
            offset: off,
            typ: h.typ,
            length: h.length,
        });
        off = (h.body + h.length as usize).next_multiple_of(8);
    }
    Ok(out)
}

/// Recompute the fixed header's CRC32 in place (over the fixed header with the checksum
/// field zeroed, then the variable headers), for tools and fuzzers that edit a file's
/// headers. Does nothing if the header fields do not describe a header section inside
/// `d`.
pub fn recompute_checksum(d: &mut [u8]) {
    if d.len() < 24 {
        return;
    }
    let off = u32_at(d, 8) as usize;
    let size = u32_at(d, 12) as usize;
    let Some(end) = off.checked_add(size).filter(|e| *e <= d.len() && off >= 24) else {
        return;
    };
    d[20..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&d[..24]);
    h.update(&d[off..end]);
    let c = h.finalize();
    d[20..24].copy_from_slice(&c.to_le_bytes());
}

/// Parse an IGVM file: [`scan`] first, then the `igvm` crate (all platforms).
pub fn parse(d: &[u8]) -> Result<(IgvmFile, Vec<HeaderLoc>)> {
    let locs = scan(d)?;
    let f = IgvmFile::new_from_binary(d, None).map_err(|e| crate_error(d, &locs, &e))?;
    Ok((f, locs))
}

/// The file cut after its first `n` variable headers (header size and CRC fixed up), so
/// that the `igvm` crate can be asked about a prefix.
fn prefix(d: &[u8], locs: &[HeaderLoc], n: usize) -> Vec<u8> {
    let vh_off = u32_at(d, 8) as usize;
    let mut p = d.to_vec();
    if let Some(next) = locs.get(n) {
        let size = (next.offset - vh_off) as u32;
        p[12..16].copy_from_slice(&size.to_le_bytes());
        recompute_checksum(&mut p);
    }
    p
}

/// The `igvm` crate's errors name no offset ("invalid page data type"). The crate
/// checks headers in order, so the first prefix of the headers it refuses ends at the
/// culprit: found by bisection (about log2(headers) parses, only on this error path).
fn crate_error(d: &[u8], locs: &[HeaderLoc], e: &igvm::Error) -> Error {
    if let igvm::Error::InvalidChecksum {
        expected,
        header_value,
    } = e
    {
        return Error::format(
            "IGVM fixed header: checksum",
            20,
            format!("{header_value:#x} != CRC32 {expected:#x} of the headers"),
        );
    }
    let msg = format!("{e} ({})", error_chain(e));
    let refused = |n: usize| IgvmFile::new_from_binary(&prefix(d, locs, n), None).is_err();
    // Invariant: the prefix of `hi` headers is refused; find the smallest such prefix.
    let (mut lo, mut hi) = (0usize, locs.len());
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if refused(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    match hi.checked_sub(1).and_then(|i| locs.get(i)) {
        Some(h) => Error::format(
            format!(
                "IGVM variable header {} (type {:#x}): refused by the igvm crate",
                h.index, h.typ
            ),
            h.offset as u64,
            msg,
        ),
        None => Error::Igvm(msg),
    }
}

/// Parse with only the headers of `isolation` kept.
pub fn parse_for(d: &[u8], isolation: IsolationType) -> Result<IgvmFile> {
    let locs = scan(d)?;
    IgvmFile::new_from_binary(d, Some(isolation)).map_err(|e| crate_error(d, &locs, &e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push(c.to_string());
        cur = c.source();
    }
    if s.is_empty() {
        "no further detail".into()
    } else {
        s.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Vec<u8> {
        // Fixed header v1 (24 bytes) + one SUPPORTED_PLATFORM header (8+16).
        let mut d = Vec::new();
        d.extend_from_slice(&IGVM_MAGIC.to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&24u32.to_le_bytes());
        d.extend_from_slice(&24u32.to_le_bytes());
        d.extend_from_slice(&48u32.to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&16u32.to_le_bytes());
        d.extend_from_slice(&[1, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        d
    }

    #[test]
    fn scan_finds_headers() {
        let l = scan(&minimal()).unwrap();
        assert_eq!(
            l,
            vec![HeaderLoc {
                index: 0,
                offset: 24,
                typ: 1,
                length: 16
            }]
        );
    }

    #[test]
    fn errors_name_field_and_offset() {
        let mut d = minimal();
        d[0] = b'X';
        assert!(scan(&d)
            .unwrap_err()
            .to_string()
            .starts_with("IGVM fixed header: magic at offset 0x0"));
        let mut d = minimal();
        d[16] = 47;
        assert!(scan(&d)
            .unwrap_err()
            .to_string()
            .starts_with("IGVM fixed header: total_file_size at offset 0x10"));
        let mut d = minimal();
        d[28] = 0x40;
        let e = scan(&d).unwrap_err().to_string();
        assert!(
            e.starts_with("IGVM variable header 0 (type 0x1): length at offset 0x1c"),
            "{e}"
        );
        let mut d = minimal();
        d[28] = 8;
        let e = scan(&d).unwrap_err().to_string();
        assert!(e.contains("0x8 < 0x10"), "{e}");
    }
}
