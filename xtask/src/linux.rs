//! The Linux guest (issue 15): Debian trixie's distribution kernel, fetched with apt from
//! Debian's archive (the trixie suite in a sources list of xtask's own, cached under
//! `target/vigil-linux/`), its bzImage and the three modules of the attestation path,
//! and an initramfs (newc cpio, `src/cpio.rs`) whose init is the project's own
//! (`tests/linux-guest`, a static binary).
//!
//! What runs today (`cargo xtask linux`, and the `linux-smoke` test step): that kernel
//! boots under QEMU (software emulation) as a plain VM, without SNP and without Vigil,
//! to the project's init, which loads configfs and tsm and is refused sev-guest (no SNP
//! platform device), and ends the VM through the debug-exit port. Linux at VMPL2 below
//! Vigil in the SNP machine model is not done yet: it needs the model and the snp
//! backend to run a guest with interrupts and two vCPUs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cpio::{archive, Entry};
use crate::error::{Result, XtaskError};
use crate::qemu::{self, Accel};
use crate::steps::Ctx;

/// The metapackage whose dependency names the current trixie kernel.
const META: &str = "linux-image-amd64";

/// The modules the init loads, by file name in the package (see
/// tests/linux-guest/src/lib.rs for their order).
const MODULE_FILES: [&str; 3] = ["configfs.ko.xz", "tsm.ko.xz", "sev-guest.ko.xz"];

/// The sources list xtask gives apt: Debian's archive, trixie, signed by the archive
/// keys that Debian 12's `debian-archive-keyring` already carries.
const SOURCES: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// The fetched kernel.
pub struct Kernel {
    /// The package, e.g. `linux-image-6.12.117+deb13-amd64`.
    pub package: String,
    /// The bzImage.
    pub bzimage: PathBuf,
    /// The modules, as [`MODULE_FILES`].
    pub modules: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> XtaskError + '_ {
    move |source| XtaskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let o = cmd.output().map_err(|source| XtaskError::Spawn {
        program: what.to_string(),
        source,
    })?;
    if !o.status.success() {
        return Err(XtaskError::CommandFailed {
            command: what.to_string(),
            status: format!(
                "{}\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// apt's options that keep every file of this fetch under `dir` (never the machine's
/// own sources, lists or package state).
fn apt_options(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "-o".into(),
        "Dir::Etc::SourceList=/dev/null".into(),
        "-o".into(),
        format!("Dir::Etc::SourceParts={d}/etc"),
        "-o".into(),
        format!("Dir::State::Lists={d}/lists"),
        "-o".into(),
        format!("Dir::Cache={d}/cache"),
        "-o".into(),
        "Dir::State::status=/dev/null".into(),
        "-o".into(),
        "APT::Architecture=amd64".into(),
        "-o".into(),
        "Acquire::Languages=none".into(),
    ]
}

/// The versioned kernel package that `linux-image-amd64` depends on, from `apt-cache
/// show`'s first `Depends:` line.
pub fn kernel_package(show: &str) -> Option<String> {
    show.lines()
        .find_map(|l| l.strip_prefix("Depends:"))
        .and_then(|d| d.split(',').next())
        .and_then(|first| first.split_whitespace().next())
        .filter(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(String::from)
}

fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
    }
    None
}

/// Fetches (or finds in the cache) the current trixie kernel.
pub fn fetch(ctx: &mut Ctx) -> Result<Kernel> {
    let base = ctx.ws.target.join("vigil-linux");
    let apt = base.join("apt");
    for d in ["etc", "lists/partial", "cache/archives/partial"] {
        let p = apt.join(d);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let src = apt.join("etc").join("vigil-trixie.sources");
    std::fs::write(&src, SOURCES).map_err(io(&src))?;
    let opts = apt_options(&apt);
    let lists_present = std::fs::read_dir(apt.join("lists"))
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains("trixie_main_binary-amd64_Packages")
            })
        })
        .unwrap_or(false);
    if !lists_present {
        println!(
            "    apt-get update (trixie, xtask's own sources list and lists under {})",
            apt.display()
        );
        run(
            Command::new("apt-get").args(&opts).arg("update"),
            "apt-get update (trixie)",
        )?;
    }
    let show = run(
        Command::new("apt-cache").args(&opts).args(["show", META]),
        "apt-cache show linux-image-amd64",
    )?;
    let package = kernel_package(&show).ok_or_else(|| {
        XtaskError::Check(format!(
            "{META}: no linux-image-*-amd64 in its Depends line"
        ))
    })?;
    let out = base.join(&package);
    let bzimage = out.join("bzImage");
    let modules: Vec<PathBuf> = MODULE_FILES.iter().map(|m| out.join(m)).collect();
    if bzimage.is_file() && modules.iter().all(|m| m.is_file()) {
        return Ok(Kernel {
            package,
            bzimage,
            modules,
        });
    }
    println!("    apt-get download {package}");
    let dl = base.join("download");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl).map_err(io(&dl))?;
    run(
        Command::new("apt-get")
            .args(&opts)
            .args(["download", &package])
            .current_dir(&dl),
        &format!("apt-get download {package}"),
    )?;
    let deb = std::fs::read_dir(&dl)
        .map_err(io(&dl))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            XtaskError::Check(format!(
                "apt-get download {package}: no .deb in {}",
                dl.display()
            ))
        })?;
    let x = dl.join("x");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x),
        "dpkg-deb -x",
    )?;
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let vmlinuz_name = format!("vmlinuz-{}", package.trim_start_matches("linux-image-"));
    let pairs = std::iter::once((vmlinuz_name.as_str(), &bzimage))
        .chain(MODULE_FILES.iter().copied().zip(modules.iter()));
    for (name, to) in pairs {
        let from = find_file(&x, name).ok_or_else(|| {
            XtaskError::Check(format!("{package}: {name} not found in the package"))
        })?;
        std::fs::copy(&from, to).map_err(io(&from))?;
    }
    let _ = std::fs::remove_dir_all(&dl);
    Ok(Kernel {
        package,
        bzimage,
        modules,
    })
}

/// Builds the init, statically linked (the initramfs has no C library).
pub fn build_init(ctx: &mut Ctx) -> Result<PathBuf> {
    let dir = ctx.ws.target.join("vigil-linux-init");
    let d = dir.to_string_lossy().into_owned();
    let host = "x86_64-unknown-linux-gnu";
    ctx.cargo_output_env(
        &[
            "build",
            "-p",
            "vigil-linux-init",
            "--bin",
            "vigil-linux-init",
            "--release",
            "--target",
            host,
            "--target-dir",
            &d,
        ],
        &[("RUSTFLAGS", "-C target-feature=+crt-static")],
    )?;
    Ok(dir.join(host).join("release").join("vigil-linux-init"))
}

/// Writes the initramfs: /init, /dev/console (the kernel opens it for init's standard
/// streams before anything is mounted), the mount points, and the modules under
/// /lib/modules/vigil.
pub fn initramfs(ctx: &Ctx, k: &Kernel, init: &Path) -> Result<PathBuf> {
    let init_b = std::fs::read(init).map_err(io(init))?;
    let mods: Vec<(String, Vec<u8>)> = k
        .modules
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::read(p)
                .map(|b| (format!("lib/modules/vigil/{name}"), b))
                .map_err(io(p))
        })
        .collect::<Result<_>>()?;
    let mut entries = vec![
        Entry::Dir("dev"),
        Entry::CharDev("dev/console", 5, 1),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::Dir("lib"),
        Entry::Dir("lib/modules"),
        Entry::Dir("lib/modules/vigil"),
        Entry::File("init", 0o755, &init_b),
    ];
    for (n, b) in &mods {
        entries.push(Entry::File(n, 0o644, b));
    }
    let out = ctx.ws.target.join("vigil-linux").join("initramfs.cpio");
    std::fs::write(&out, archive(&entries)).map_err(io(&out))?;
    Ok(out)
}

/// One boot of the kernel with the initramfs: the console lines, the status, when the
/// init's first line came, and the nonce given.
pub struct LinuxRun {
    /// Console lines.
    pub lines: Vec<String>,
    /// QEMU's exit status.
    pub status: Option<i32>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// Wall time from QEMU's start to the init's first line.
    pub init_at: Option<Duration>,
    /// Wall time to QEMU's exit.
    pub elapsed: Duration,
}

/// Boots `bzimage` with `initrd` as a plain VM (q35, TCG, the project's machine) and
/// answers the init's nonce prompt with `nonce_hex`.
pub fn boot_plain(
    ctx: &mut Ctx,
    bzimage: &Path,
    initrd: &Path,
    nonce_hex: &str,
    timeout: Duration,
) -> Result<LinuxRun> {
    let q = ctx.qemu()?;
    let mut a = qemu::machine_args(Accel::Tcg);
    a.extend(
        [
            "-kernel",
            &bzimage.to_string_lossy(),
            "-initrd",
            &initrd.to_string_lossy(),
            "-append",
            "console=ttyS0 quiet panic=-1 rdinit=/init",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let init_at = Arc::new(Mutex::new(None::<Duration>));
    let seen = Arc::clone(&init_at);
    let answer = format!("{nonce_hex}\n");
    let p = qemu::run(&q, &a, timeout, move |l, at, stdin| {
        if l.starts_with("vigil-init:") {
            if let Ok(mut t) = seen.lock() {
                t.get_or_insert(at);
            }
            println!("    | {l}");
        }
        if l.contains(vigil_linux_init::NONCE_PROMPT) {
            let _ = stdin.write_all(answer.as_bytes());
            let _ = stdin.flush();
        }
    })?;
    let init_at = init_at.lock().ok().and_then(|t| *t);
    Ok(LinuxRun {
        lines: p.lines,
        status: p.status,
        timed_out: p.timed_out,
        init_at,
        elapsed: p.elapsed,
    })
}

/// What the init must say on a plain (non-SNP) VM: every mount and the two generic
/// modules work; the SNP guest driver finds no SNP platform device; so there is no TSM
/// provider; the VM ends with the init's failure status (0x11, QEMU status 35).
pub fn judge_plain(run: &LinuxRun) -> std::result::Result<String, String> {
    let tail = || run.lines[run.lines.len().saturating_sub(15)..].join("\n");
    if run.timed_out {
        return Err(format!(
            "Linux killed after the timeout; last lines:\n{}",
            tail()
        ));
    }
    let has = |p: &str| run.lines.iter().any(|l| l.starts_with(p));
    for want in [
        "vigil-init: mount-devtmpfs ok",
        "vigil-init: mount-proc ok",
        "vigil-init: mount-sysfs ok",
        "vigil-init: module-configfs ok",
        "vigil-init: module-tsm ok",
        "vigil-init: module-sev-guest FAILED",
        "vigil-init: mount-configfs ok",
        "vigil-init: attest FAILED",
    ] {
        if !has(want) {
            return Err(format!("no line {want:?}; last lines:\n{}", tail()));
        }
    }
    if run.status != Some(35) {
        return Err(format!(
            "QEMU exited with {:?}, want 35 (the init's 0x11 through debug-exit); last lines:\n{}",
            run.status,
            tail()
        ));
    }
    let kernel = run
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("vigil-init: kernel "))
        .unwrap_or("?");
    Ok(format!(
        "{}; init after {:.1} s, exit after {:.1} s (TCG, plain VM: sev-guest refused as expected without SNP)",
        kernel.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        run.init_at.map_or(f64::NAN, |d| d.as_secs_f64()),
        run.elapsed.as_secs_f64()
    ))
}

/// Fetch, build and boot on a plain VM; the `linux-smoke` step and `cargo xtask linux`.
pub fn step_smoke(ctx: &mut Ctx) -> Result<String> {
    println!();
    let k = fetch(ctx)?;
    let init = build_init(ctx)?;
    let initrd = initramfs(ctx, &k, &init)?;
    let size = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
    println!(
        "    {} -> {} ({} KiB initramfs)",
        k.package,
        initrd.display(),
        size / 1024
    );
    let run = boot_plain(
        ctx,
        &k.bzimage,
        &initrd,
        &"00".repeat(64),
        Duration::from_secs(300),
    )?;
    judge_plain(&run).map_err(XtaskError::Check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_package_comes_from_the_metapackage_dependency() {
        let show = "Package: linux-image-amd64\nVersion: 6.12.117-1\nDepends: linux-image-6.12.117+deb13-amd64 (= 6.12.117-1)\n";
        assert_eq!(
            kernel_package(show).as_deref(),
            Some("linux-image-6.12.117+deb13-amd64")
        );
        assert_eq!(kernel_package("Depends: libc6 (>= 2.36)\n"), None);
        assert_eq!(kernel_package("Version: 1\n"), None);
    }

    fn run_with(lines: &[&str], status: Option<i32>) -> LinuxRun {
        LinuxRun {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            status,
            timed_out: false,
            init_at: Some(Duration::from_secs(9)),
            elapsed: Duration::from_secs(10),
        }
    }

    const PLAIN: [&str; 9] = [
        "vigil-init: mount-devtmpfs ok /dev",
        "vigil-init: mount-proc ok /proc",
        "vigil-init: mount-sysfs ok /sys",
        "vigil-init: kernel Linux version 6.12.117+deb13-amd64 (x)",
        "vigil-init: module-configfs ok /lib/modules/vigil/configfs.ko.xz",
        "vigil-init: module-tsm ok /lib/modules/vigil/tsm.ko.xz",
        "vigil-init: module-sev-guest FAILED finit_module: ENODEV",
        "vigil-init: mount-configfs ok /sys/kernel/config",
        "vigil-init: attest FAILED mkdir: ENXIO",
    ];

    #[test]
    fn a_plain_vm_run_is_judged_on_every_line_and_the_status() {
        assert!(judge_plain(&run_with(&PLAIN, Some(35))).is_ok());
        assert!(judge_plain(&run_with(&PLAIN, Some(33)))
            .unwrap_err()
            .contains("want 35"));
        let e = judge_plain(&run_with(&PLAIN[1..], Some(35))).unwrap_err();
        assert!(e.contains("mount-devtmpfs"), "{e}");
    }
}
