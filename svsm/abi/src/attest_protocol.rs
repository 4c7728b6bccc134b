//! SVSM attestation protocol (1): call arguments and the services manifest (SVSM spec #58019).
//!
//! ATTEST_SERVICES (call 0) and ATTEST_SINGLE_SERVICE (call 1) take in RCX the GPA of a
//! request structure that names, for the report, the nonce, the manifest and the
//! certificates, a guest buffer each (GPA + size). The SVSM builds the services manifest,
//! sets REPORT_DATA = SHA-512(nonce || manifest), asks the security processor for a
//! report at VMPL0 and writes report, manifest and certificates into the buffers. It
//! returns the sizes written in RCX (manifest), RDX (certificates) and R8 (report). When
//! a buffer is too small it returns SVSM_ERR_INVALID_PARAMETER with the sizes needed in
//! the same registers (size negotiation), writing nothing.
//!
//! The manifest is the spec's GUID table: a header (the services-manifest GUID, the
//! total size, the number of entries), then one entry per service (its GUID, the offset
//! of its data from the start of the manifest, the data's length), then the data.
//! GUIDs are stored in the EFI/Microsoft byte order (the first three fields
//! little-endian), as Linux's `guid_t` does.
use sha2::{Digest, Sha512};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// ATTEST_SERVICES call number.
pub const ATTEST_SERVICES: u32 = 0;
/// ATTEST_SINGLE_SERVICE call number.
pub const ATTEST_SINGLE_SERVICE: u32 = 1;

/// The ATTEST_SERVICES request structure.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct AttestServicesRequest {
    /// 0x00: GPA of the report buffer.
    pub report_gpa: u64,
    /// 0x08: size of the report buffer.
    pub report_size: u32,
    /// 0x0C: reserved.
    pub reserved_0x0c: u32,
    /// 0x10: GPA of the nonce.
    pub nonce_gpa: u64,
    /// 0x18: size of the nonce.
    pub nonce_size: u16,
    /// 0x1A: reserved.
    pub reserved_0x1a: [u8; 6],
    /// 0x20: GPA of the manifest buffer.
    pub manifest_gpa: u64,
    /// 0x28: size of the manifest buffer.
    pub manifest_size: u32,
    /// 0x2C: reserved.
    pub reserved_0x2c: u32,
    /// 0x30: GPA of the certificates buffer (0 = none wanted).
    pub certificates_gpa: u64,
    /// 0x38: size of the certificates buffer.
    pub certificates_size: u32,
    /// 0x3C: reserved.
    pub reserved_0x3c: u32,
}
const _: () = assert!(core::mem::size_of::<AttestServicesRequest>() == 0x40);
const _: () = assert!(core::mem::offset_of!(AttestServicesRequest, nonce_gpa) == 0x10);
const _: () = assert!(core::mem::offset_of!(AttestServicesRequest, nonce_size) == 0x18);
const _: () = assert!(core::mem::offset_of!(AttestServicesRequest, manifest_gpa) == 0x20);
const _: () = assert!(core::mem::offset_of!(AttestServicesRequest, certificates_gpa) == 0x30);

/// The ATTEST_SINGLE_SERVICE request structure: the services request plus the GUID of
/// the one service and the manifest version asked for.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct AttestSingleServiceRequest {
    /// 0x00: the common part.
    pub base: AttestServicesRequest,
    /// 0x40: GUID of the service.
    pub service_guid: [u8; 16],
    /// 0x50: manifest version wanted (0 = the newest).
    pub manifest_version: u32,
    /// 0x54: reserved.
    pub reserved_0x54: u32,
}
const _: () = assert!(core::mem::size_of::<AttestSingleServiceRequest>() == 0x58);
const _: () = assert!(core::mem::offset_of!(AttestSingleServiceRequest, service_guid) == 0x40);

/// A GUID as 16 bytes in EFI byte order.
pub type Guid = [u8; 16];

/// Converts a GUID given as (u32, u16, u16, [u8; 8]) into EFI byte order.
pub const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

/// The services manifest GUID (63849ebb-3d92-4670-a1ff-58f9c94b87bb), from the SVSM spec.
pub const SERVICES_MANIFEST_GUID: Guid = guid(
    0x63849ebb,
    0x3d92,
    0x4670,
    [0xa1, 0xff, 0x58, 0xf9, 0xc9, 0x4b, 0x87, 0xbb],
);

/// Vigil's monitor service (5384c440-3169-4216-883f-187b52de41ba): its data is a
/// [`VigilServiceData`] that binds the event log.
pub const VIGIL_SERVICE_GUID: Guid = guid(
    0x5384c440,
    0x3169,
    0x4216,
    [0x88, 0x3f, 0x18, 0x7b, 0x52, 0xde, 0x41, 0xba],
);

/// Manifest header.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ManifestHeader {
    /// 0x00: [`SERVICES_MANIFEST_GUID`].
    pub guid: Guid,
    /// 0x10: total size of the manifest in bytes (header, entries and data).
    pub size: u32,
    /// 0x14: number of entries.
    pub count: u32,
}
const _: () = assert!(core::mem::size_of::<ManifestHeader>() == 24);

/// One manifest entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ManifestEntry {
    /// 0x00: GUID of the service.
    pub guid: Guid,
    /// 0x10: offset of the service's data from the start of the manifest.
    pub offset: u32,
    /// 0x14: length of the service's data.
    pub len: u32,
}
const _: () = assert!(core::mem::size_of::<ManifestEntry>() == 24);

/// Version of [`VigilServiceData`].
pub const VIGIL_SERVICE_DATA_VERSION: u32 = 1;

/// The data of Vigil's manifest entry: the event log's length and head when the
/// manifest was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VigilServiceData {
    /// 0x00: [`VIGIL_SERVICE_DATA_VERSION`].
    pub version: u32,
    /// 0x04: the guest's VMPL.
    pub guest_vmpl: u32,
    /// 0x08: number of event log records the head covers.
    pub record_count: u64,
    /// 0x10: the SHA-384 chain head over those records (see [`crate::event_log`]).
    pub log_head: [u8; 48],
}
const _: () = assert!(core::mem::size_of::<VigilServiceData>() == 64);

/// REPORT_DATA = SHA-512(nonce || manifest).
pub fn report_data(nonce: &[u8], manifest: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(nonce);
    h.update(manifest);
    h.finalize().into()
}

/// Why a manifest could not be built or read. Offsets are byte offsets in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// The buffer is shorter than the header or the entries.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The header GUID (offset 0) is not the services-manifest GUID.
    BadGuid,
    /// The header's size (offset 0x10) does not match the buffer's length.
    SizeMismatch {
        /// Size in the header.
        header: u32,
        /// Buffer length.
        actual: usize,
    },
    /// An entry's data (entry at `entry_offset`) lies outside the manifest or overlaps
    /// the header/entry table.
    EntryOutOfBounds {
        /// Byte offset of the faulty entry.
        entry_offset: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

/// Size of a manifest holding entries with these data lengths.
pub fn manifest_size(data_lens: impl Iterator<Item = usize>) -> usize {
    let mut n = core::mem::size_of::<ManifestHeader>();
    for l in data_lens {
        n += core::mem::size_of::<ManifestEntry>() + l;
    }
    n
}

/// Writes a manifest of `services` (GUID, data) into `out`; returns its size.
pub fn write_manifest(services: &[(Guid, &[u8])], out: &mut [u8]) -> Result<usize, ManifestError> {
    let size = manifest_size(services.iter().map(|(_, d)| d.len()));
    if out.len() < size {
        return Err(ManifestError::BufferTooSmall { needed: size });
    }
    let hdr = ManifestHeader {
        guid: SERVICES_MANIFEST_GUID,
        size: size as u32,
        count: services.len() as u32,
    };
    out[..24].copy_from_slice(hdr.as_bytes());
    let mut data_off = 24 + 24 * services.len();
    for (i, (g, d)) in services.iter().enumerate() {
        let e = ManifestEntry {
            guid: *g,
            offset: data_off as u32,
            len: d.len() as u32,
        };
        out[24 + 24 * i..48 + 24 * i].copy_from_slice(e.as_bytes());
        out[data_off..data_off + d.len()].copy_from_slice(d);
        data_off += d.len();
    }
    Ok(size)
}

/// Reads a manifest and returns its entries' (GUID, data) in table order through `f`.
/// Every offset and length is checked against the buffer.
pub fn parse_manifest<'a>(
    m: &'a [u8],
    mut f: impl FnMut(Guid, &'a [u8]),
) -> Result<ManifestHeader, ManifestError> {
    let (hdr, _) = ManifestHeader::read_from_prefix(m).map_err(|_| ManifestError::Truncated {
        needed: 24,
        have: m.len(),
    })?;
    if hdr.guid != SERVICES_MANIFEST_GUID {
        return Err(ManifestError::BadGuid);
    }
    if hdr.size as usize != m.len() {
        return Err(ManifestError::SizeMismatch {
            header: hdr.size,
            actual: m.len(),
        });
    }
    let table_end = 24usize.saturating_add((hdr.count as usize).saturating_mul(24));
    if table_end > m.len() {
        return Err(ManifestError::Truncated {
            needed: table_end,
            have: m.len(),
        });
    }
    for i in 0..hdr.count as usize {
        let off = 24 + 24 * i;
        let (e, _) =
            ManifestEntry::read_from_prefix(&m[off..]).map_err(|_| ManifestError::Truncated {
                needed: off + 24,
                have: m.len(),
            })?;
        let start = e.offset as usize;
        let end = start.checked_add(e.len as usize);
        match end {
            Some(end) if start >= table_end && end <= m.len() => f(e.guid, &m[start..end]),
            _ => return Err(ManifestError::EntryOutOfBounds { entry_offset: off }),
        }
    }
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn guid_byte_order_is_efi() {
        assert_eq!(
            SERVICES_MANIFEST_GUID[..8],
            [0xbb, 0x9e, 0x84, 0x63, 0x92, 0x3d, 0x70, 0x46]
        );
    }
    #[test]
    fn manifest_round_trip_and_bounds() {
        let mut buf = [0u8; 256];
        let n = write_manifest(
            &[(VIGIL_SERVICE_GUID, &[1, 2, 3]), ([7; 16], &[9])],
            &mut buf,
        )
        .unwrap();
        assert_eq!(n, 24 + 48 + 4);
        let mut seen = [([0u8; 16], 0usize); 2];
        let mut i = 0;
        parse_manifest(&buf[..n], |g, d| {
            seen[i] = (g, d.len());
            i += 1;
        })
        .unwrap();
        assert_eq!(seen, [(VIGIL_SERVICE_GUID, 3), ([7; 16], 1)]);
        // Corrupt the first entry's offset: it must be refused, naming the entry.
        buf[24 + 16] = 0xff;
        assert_eq!(
            parse_manifest(&buf[..n], |_, _| {}),
            Err(ManifestError::EntryOutOfBounds { entry_offset: 24 })
        );
        assert_eq!(
            write_manifest(&[(VIGIL_SERVICE_GUID, &[0; 300])], &mut buf),
            Err(ManifestError::BufferTooSmall { needed: 348 })
        );
    }
    #[test]
    fn report_data_is_sha512_of_concatenation() {
        let a = report_data(b"nonce", b"manifest");
        let b = report_data(b"noncemanifest", b"");
        assert_eq!(a, b);
        assert_ne!(a, report_data(b"nonce", b"manifesT"));
    }
}
