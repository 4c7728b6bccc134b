//! Bounded reading of every input file, and the bounds of every count a user passes.
//!
//! Attack: any path given to the tool may name `/dev/zero`, a FIFO or a file of many
//! gigabytes. Reading it whole (`std::fs::read`) grows memory until the machine runs out.
//! So each input kind has a size limit fitted to its format, a regular file above the
//! limit is refused from its metadata before a byte is read, and anything else (devices,
//! pipes) is read at most `limit + 1` bytes. Kinds with a magic number are refused after
//! reading that many bytes, so `/dev/zero` costs almost nothing for them. Kernel and
//! initrd of a measured direct boot are hashed while they are read (never held whole).
//! The figures of `/usr/bin/time -v` on `/dev/zero` for each option are in docs/igvm.md.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Most vCPUs a count flag accepts: KVM's x86 limit (KVM_MAX_VCPUS, 4096 in Linux 6.x)
/// and QEMU's q35 maximum. Each vCPU adds one measured 4 KiB VMSA.
pub const MAX_VCPUS: u32 = 4096;

/// One kind of input file: its name in messages, its size limit and its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// Name in messages ("OVMF image").
    pub name: &'static str,
    /// Largest accepted size in bytes.
    pub limit: u64,
    /// Bytes the file must start with, if the format has a magic number.
    pub magic: Option<&'static [u8]>,
}

/// An OVMF (or pre-IGVM SVSM) flash image: 2 to 4 MiB in practice; QEMU maps it below
/// 4 GiB in the 16 MiB-aligned flash window, so 64 MiB is generous.
pub const OVMF: Kind = Kind {
    name: "OVMF image",
    limit: 64 << 20,
    magic: None,
};
/// A pre-IGVM COCONUT SVSM image (`--svsm`).
pub const SVSM: Kind = Kind {
    name: "SVSM image",
    limit: 64 << 20,
    magic: None,
};
/// The Vigil kernel ELF or the test guest ELF: loaded into the 7 MiB kernel area or guest
/// RAM; 64 MiB leaves room for symbols.
pub const ELF: Kind = Kind {
    name: "ELF file",
    limit: 64 << 20,
    magic: Some(b"\x7fELF"),
};
/// A firmware given to `build` (ELF or OVMF, told apart after reading).
pub const FIRMWARE: Kind = Kind {
    name: "firmware",
    limit: 64 << 20,
    magic: None,
};
/// An IGVM file. Its page data is what a guest loads at launch (Vigil's files are under
/// 16 MiB: the 8 MiB Vigil region plus a 4 MiB OVMF); 256 MiB bounds any launch image.
pub const IGVM: Kind = Kind {
    name: "IGVM file",
    limit: 256 << 20,
    magic: Some(b"IGVM"),
};
/// A P-384 key (PEM or DER): a few hundred bytes.
pub const KEY: Kind = Kind {
    name: "key file",
    limit: 64 << 10,
    magic: None,
};
/// An ECDSA P-384 signature (DER or raw r||s): at most about 104 bytes.
pub const SIGNATURE: Kind = Kind {
    name: "signature file",
    limit: 4 << 10,
    magic: None,
};
/// The monitor policy: stored in the BootParams page (at most 0xC00 bytes).
pub const POLICY: Kind = Kind {
    name: "monitor policy",
    limit: crate::boot_params::POLICY_MAX as u64,
    magic: None,
};
/// An OVMF_VARS file (`--vars-file`, only its size is used): 64 MiB like OVMF.
pub const VARS: Kind = Kind {
    name: "OVMF vars file",
    limit: 64 << 20,
    magic: None,
};
/// A kernel for measured direct boot (hashed while read): Linux bzImages are 10-20 MiB.
pub const DIRECT_KERNEL: Kind = Kind {
    name: "kernel",
    limit: 512 << 20,
    magic: None,
};
/// An initrd for measured direct boot (hashed while read).
pub const INITRD: Kind = Kind {
    name: "initrd",
    limit: 1 << 30,
    magic: None,
};

fn too_large(path: &Path, kind: Kind) -> Error {
    Error::format(
        format!("{} {}: file size", kind.name, path.display()),
        kind.limit,
        format!(
            "larger than the {:#x}-byte limit for this input (is it the right file?)",
            kind.limit
        ),
    )
}

fn open(path: &Path, kind: Kind) -> Result<std::fs::File> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory"),
        ));
    }
    // A regular file's size is known: refuse it before reading anything.
    if meta.is_file() && meta.len() > kind.limit {
        return Err(too_large(path, kind));
    }
    Ok(f)
}

/// Read `path` as an input of `kind`: at most `kind.limit` bytes, refusing a larger file
/// or a stream that does not end, and a file without the kind's magic bytes.
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>> {
    let f = open(path, kind)?;
    let mut out = Vec::new();
    let mut r = f.take(kind.limit + 1);
    if let Some(m) = kind.magic {
        let mut head = vec![0u8; m.len()];
        let n = read_full(&mut r, &mut head).map_err(|e| Error::io(path, e))?;
        head.truncate(n);
        if n < m.len() {
            return Err(Error::format(
                format!("{} {}: magic", kind.name, path.display()),
                0,
                format!(
                    "file of {n} bytes is shorter than its magic {}",
                    hex::encode(m)
                ),
            ));
        }
        if head != m {
            return Err(Error::format(
                format!("{} {}: magic", kind.name, path.display()),
                0,
                format!("{} is not {}", hex::encode(&head), hex::encode(m)),
            ));
        }
        out.extend_from_slice(&head);
    }
    r.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > kind.limit {
        return Err(too_large(path, kind));
    }
    Ok(out)
}

/// The size of `path` read as `kind` (for `--vars-file`, whose contents do not matter),
/// counted while reading so that a device or pipe cannot pass for a small file.
pub fn size(path: &Path, kind: Kind) -> Result<u64> {
    let f = open(path, kind)?;
    let n = std::io::copy(&mut f.take(kind.limit + 1), &mut std::io::sink())
        .map_err(|e| Error::io(path, e))?;
    if n > kind.limit {
        return Err(too_large(path, kind));
    }
    Ok(n)
}

/// SHA-256 of `path` read as `kind`, hashed while read (constant memory).
pub fn sha256(path: &Path, kind: Kind) -> Result<[u8; 32]> {
    let f = open(path, kind)?;
    let mut h = Sha256::new();
    let mut r = f.take(kind.limit + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total > kind.limit {
        return Err(too_large(path, kind));
    }
    Ok(h.finalize().into())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Kind = Kind {
        name: "test input",
        limit: 16,
        magic: Some(b"AB"),
    };

    #[test]
    fn dev_zero_refused_by_magic_without_reading_on() {
        let e = read(Path::new("/dev/zero"), IGVM).unwrap_err().to_string();
        assert!(
            e.contains("IGVM file /dev/zero: magic at offset 0x0"),
            "{e}"
        );
    }

    #[test]
    fn dev_zero_refused_at_the_limit() {
        let k = Kind {
            magic: None,
            ..SMALL
        };
        let e = read(Path::new("/dev/zero"), k).unwrap_err().to_string();
        assert!(e.contains("file size at offset 0x10: larger than"), "{e}");
        assert!(size(Path::new("/dev/zero"), k).is_err());
        assert!(sha256(Path::new("/dev/zero"), k).is_err());
    }

    #[test]
    fn regular_file_limits_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let ok = d.path().join("ok");
        std::fs::write(&ok, b"AB0123456789abcd").unwrap();
        assert_eq!(read(&ok, SMALL).unwrap().len(), 16);
        let big = d.path().join("big");
        std::fs::write(&big, b"AB0123456789abcde").unwrap();
        assert!(read(&big, SMALL)
            .unwrap_err()
            .to_string()
            .contains("larger"));
        let e = read(&d.path().join("none"), SMALL).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        let e = read(d.path(), SMALL).unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
    }
}
