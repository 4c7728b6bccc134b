//! A newc ("070701") cpio writer for the Linux guest's initramfs: directories, regular
//! files and character devices, nothing else.
//!
//! Written here because it is about sixty lines and the format is fixed (Linux
//! `Documentation/driver-api/early-userspace/buffer-format.rst`, `init/initramfs.c`):
//! a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded
//! to 4 bytes, the data padded to 4 bytes, and a `TRAILER!!!` entry at the end.

/// One entry of the archive.
pub enum Entry<'a> {
    /// A directory (mode 0755).
    Dir(&'a str),
    /// A regular file with its mode bits.
    File(&'a str, u32, &'a [u8]),
    /// A character device (mode 0600) with its major and minor numbers.
    CharDev(&'a str, u32, u32),
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, so that the archive is reproducible
        size as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// The archive of `entries`, in order, with the trailer.
pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir(n) => header(&mut out, ino, S_IFDIR | 0o755, 0, (0, 0), n),
            Entry::CharDev(n, ma, mi) => header(&mut out, ino, S_IFCHR | 0o600, 0, (*ma, *mi), n),
            Entry::File(n, mode, data) => {
                header(&mut out, ino, S_IFREG | mode, data.len(), (0, 0), n);
                out.extend_from_slice(data);
                pad4(&mut out);
            }
        }
    }
    header(&mut out, 0, 0, 0, (0, 0), "TRAILER!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_the_newc_layout() {
        let a = archive(&[Entry::Dir("dev"), Entry::File("init", 0o755, b"hello")]);
        // First header: magic, inode 1, mode 040755, name "dev" at offset 110.
        assert_eq!(&a[0..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000041ed");
        assert_eq!(&a[110..114], b"dev\0");
        // 110 + 4 = 114 -> padded to 116; the second header starts there.
        assert_eq!(&a[116..122], b"070701");
        assert_eq!(&a[116 + 54..116 + 62], b"00000005", "file size");
        let name_at = 116 + 110;
        assert_eq!(&a[name_at..name_at + 5], b"init\0");
        let data_at = (name_at + 5 + 3) & !3;
        assert_eq!(&a[data_at..data_at + 5], b"hello");
        assert!(a.windows(11).any(|w| w == b"TRAILER!!!\0"));
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn gnu_cpio_lists_what_was_written() {
        use std::io::Write;
        // An independent reader, where installed (Debian's cpio package).
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            // The project's oracle rule (igvm/tests/common/oracle.rs): a missing oracle
            // fails under CI or with VIGIL_REQUIRE_ORACLES=1, else the test says so.
            let set = |k: &str| std::env::var(k).is_ok_and(|v| v == "true" || v == "1");
            let line = "cpio::tests::gnu_cpio_lists_what_was_written: cpio missing (apt-get install -y cpio)";
            assert!(
                !(set("CI") || set("VIGIL_REQUIRE_ORACLES")),
                "oracle missing: {line}"
            );
            eprintln!("SKIPPED: {line}");
            // Listed above `cargo xtask test`'s closing line, as the other oracles' skips.
            if let Some(path) = std::env::var_os("VIGIL_SKIP_LOG") {
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                {
                    let _ = writeln!(f, "{line}");
                }
            }
            return;
        };
        let a = archive(&[
            Entry::Dir("dev"),
            Entry::CharDev("dev/console", 5, 1),
            Entry::File("init", 0o755, &[1, 2, 3]),
        ]);
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&a).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "dev\ndev/console\ninit\n"
        );
    }
}
