//! Reading evidence from files: certificate folders (found by content), the extended
//! report's certificate table, and Linux configfs-tsm output folders.

use std::path::Path;

use crate::certs::{parse_blob, Cert, CertError};
use crate::limits::{self, Input, ReadError, MAX_CERT_DIR_FILES};

/// An input problem, naming the file and, where it applies, the offset.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read, or is larger than its format allows.
    #[error("{path}: {err}")]
    Read {
        /// Path.
        path: String,
        /// What went wrong.
        err: ReadError,
    },
    /// A folder could not be listed.
    #[error("{path}: cannot list the folder: {err}")]
    Dir {
        /// Path.
        path: String,
        /// OS error.
        err: std::io::Error,
    },
    /// A certificate folder with too many files.
    #[error("{path}: more than {MAX_CERT_DIR_FILES} files; a certificate folder holds a handful")]
    TooManyFiles {
        /// Path.
        path: String,
    },
    /// A certificate table without its terminating entry.
    #[error("{table}: certificate table entry at byte offset {off} is truncated (no terminating zero entry)")]
    TableTruncated {
        /// Which table.
        table: String,
        /// Offset of the entry.
        off: usize,
    },
    /// A table entry pointing outside the table.
    #[error(
        "{table}: {name} (table byte offset {off}) points to {at}+{len}, beyond the {size} bytes"
    )]
    TableBounds {
        /// Which table.
        table: String,
        /// Entry name (GUID's name or number).
        name: String,
        /// Offset of the entry.
        off: usize,
        /// Its data offset.
        at: usize,
        /// Its data length.
        len: usize,
        /// Table size.
        size: usize,
    },
    /// A table entry pointing into the entries.
    #[error("{table}: {name} (table byte offset {off}) points into the table")]
    TableOverlap {
        /// Which table.
        table: String,
        /// Entry name.
        name: String,
        /// Offset of the entry.
        off: usize,
    },
    /// A certificate that does not parse.
    #[error(transparent)]
    Cert(#[from] CertError),
}

impl InputError {
    /// Whether the failure is the environment's (the file could not be read at all),
    /// rather than the content's.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            InputError::Read {
                err: ReadError::Io(_),
                ..
            } | InputError::Dir { .. }
        )
    }
}

/// Reads a file with the limit of its kind, naming it in the error.
pub fn read(path: &Path, kind: Input) -> Result<Vec<u8>, InputError> {
    limits::read(path, kind).map_err(|err| InputError::Read {
        path: path.display().to_string(),
        err,
    })
}

/// GUIDs of the extended report's certificate table (EFI byte order), for naming.
pub const TABLE_GUIDS: [(&str, [u8; 16]); 4] = [
    ("VCEK", guid("63da758d-e664-4564-adc5-f4b93be8accd")),
    ("VLEK", guid("a8074bc2-a25a-483e-aae6-39c045a0b8a1")),
    ("ASK", guid("4ab7b379-bbac-4fe4-a02f-05aef327c782")),
    ("ARK", guid("c0b406a4-a803-4952-9743-3fb6014cd0ae")),
];

const fn hexv(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => 0,
    }
}

const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    // Hex digit positions in the canonical form, then EFI byte order for the first
    // three fields.
    let mut raw = [0u8; 16];
    let mut i = 0;
    let mut j = 0;
    while i < b.len() {
        if b[i] == b'-' {
            i += 1;
            continue;
        }
        raw[j] = hexv(b[i]) << 4 | hexv(b[i + 1]);
        j += 1;
        i += 2;
    }
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

/// Parses an extended-report certificate table (GUID, offset, length entries ending with
/// an all-zero entry; offsets from the start of the table). Certificates are classified
/// by content; the GUID only names the entry in messages.
pub fn parse_cert_table(t: &[u8], source: &str) -> Result<Vec<Cert>, InputError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let e = t
            .get(off..off + 24)
            .ok_or_else(|| InputError::TableTruncated {
                table: source.to_string(),
                off,
            })?;
        if e.iter().all(|b| *b == 0) {
            break;
        }
        let mut g = [0u8; 16];
        g.copy_from_slice(&e[..16]);
        let o = u32::from_le_bytes([e[16], e[17], e[18], e[19]]) as usize;
        let n = u32::from_le_bytes([e[20], e[21], e[22], e[23]]) as usize;
        let name = TABLE_GUIDS
            .iter()
            .find(|x| x.1 == g)
            .map(|x| x.0.to_string())
            .unwrap_or_else(|| format!("entry {}", off / 24));
        let data = o
            .checked_add(n)
            .and_then(|end| t.get(o..end))
            .ok_or_else(|| InputError::TableBounds {
                table: source.to_string(),
                name: name.clone(),
                off,
                at: o,
                len: n,
                size: t.len(),
            })?;
        if o < off + 24 {
            return Err(InputError::TableOverlap {
                table: source.to_string(),
                name,
                off,
            });
        }
        out.extend(parse_blob(data, &format!("{source}:{name}"))?);
        off += 24;
    }
    Ok(out)
}

/// Everything found in a certificate folder.
#[derive(Default)]
pub struct Found {
    /// Certificates.
    pub certs: Vec<Cert>,
    /// A CRL, if a file held one.
    pub crl: Option<Vec<u8>>,
    /// Files skipped, with the reason (documentation, private keys, reports).
    pub skipped: Vec<String>,
}

fn looks_like_crl(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"-----BEGIN X509 CRL") {
        return true;
    }
    use der::Decode;
    x509_cert::crl::CertificateList::from_der(bytes).is_ok()
}

/// Loads every certificate in a folder (PEM or DER, any file name; a KDS `cert_chain`
/// holds two). A CRL in the folder is taken as the CRL; a raw report (0x4A0 bytes),
/// `.md`/`.txt` files and PKCS#8 private keys are skipped and listed. Any other file is an
/// error, so
/// that garbage is named rather than skipped.
pub fn load_cert_dir(dir: &Path) -> Result<Found, InputError> {
    let mut found = Found::default();
    let rd = std::fs::read_dir(dir).map_err(|err| InputError::Dir {
        path: dir.display().to_string(),
        err,
    })?;
    // The listing is bounded too: a folder of a million files is not a certificate
    // folder, and is refused before any file is read.
    let mut paths = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if !p.is_file() {
            continue;
        }
        if paths.len() == MAX_CERT_DIR_FILES {
            return Err(InputError::TooManyFiles {
                path: dir.display().to_string(),
            });
        }
        paths.push(p);
    }
    paths.sort();
    for p in paths {
        let bytes = read(&p, Input::Cert)?;
        if looks_like_crl(&bytes) {
            found.crl = Some(bytes);
            continue;
        }
        // A report kept beside its certificates (as in testdata) is not a certificate.
        if bytes.len() == svsm_abi::report::REPORT_SIZE && !bytes.starts_with(&[0x30]) {
            found
                .skipped
                .push(format!("{}: attestation report", p.display()));
            continue;
        }
        // Documentation and private keys (the test-root folder holds both) are named
        // and skipped; anything else that is not a certificate is an error.
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "md" | "txt") {
            found
                .skipped
                .push(format!("{}: documentation", p.display()));
            continue;
        }
        {
            use der::Decode;
            if pkcs8::PrivateKeyInfo::from_der(&bytes).is_ok() {
                found.skipped.push(format!("{}: private key", p.display()));
                continue;
            }
        }
        found
            .certs
            .extend(parse_blob(&bytes, &p.display().to_string())?);
    }
    Ok(found)
}

/// A configfs-tsm report folder: `outblob` (report), `auxblob` (certificate table, may
/// be empty), `manifestblob` (SVSM services manifest, may be absent).
pub struct Tsm {
    /// Report bytes.
    pub report: Vec<u8>,
    /// Certificates from auxblob.
    pub certs: Vec<Cert>,
    /// Manifest.
    pub manifest: Option<Vec<u8>>,
}

/// Reads a configfs-tsm folder.
pub fn load_tsm(dir: &Path) -> Result<Tsm, InputError> {
    let report = read(&dir.join("outblob"), Input::Report)?;
    let aux = dir.join("auxblob");
    let certs = if aux.exists() {
        let b = read(&aux, Input::CertTable)?;
        if b.is_empty() {
            Vec::new()
        } else {
            parse_cert_table(&b, &aux.display().to_string())?
        }
    } else {
        Vec::new()
    };
    let m = dir.join("manifestblob");
    let manifest = if m.exists() {
        let b = read(&m, Input::Manifest)?;
        (!b.is_empty()).then_some(b)
    } else {
        None
    };
    Ok(Tsm {
        report,
        certs,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn table_guid_byte_order() {
        assert_eq!(TABLE_GUIDS[0].1[..4], [0x8d, 0x75, 0xda, 0x63]);
        assert_eq!(
            TABLE_GUIDS[0].1[8..],
            [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd]
        );
    }
    #[test]
    fn table_bounds_are_checked() {
        let mut t = vec![0u8; 48];
        t[..16].copy_from_slice(&TABLE_GUIDS[0].1);
        t[16..20].copy_from_slice(&1000u32.to_le_bytes());
        t[20..24].copy_from_slice(&10u32.to_le_bytes());
        let e = parse_cert_table(&t, "t").unwrap_err().to_string();
        assert!(e.contains("VCEK") && e.contains("beyond"), "{e}");
        let e = parse_cert_table(&[0u8; 10], "t").unwrap_err().to_string();
        assert!(e.contains("byte offset 0 is truncated"), "{e}");
    }
}
