//! Finding QEMU, choosing the accelerator, booting an image with a timeout.
//!
//! The machine is always `-machine q35 -cpu max -m 256M` with no default devices, COM1 on
//! stdout and the isa-debug-exit device at 0xf4, the kernel given with `-kernel` (QEMU's
//! PVH loader). The kernel ends a run by writing to isa-debug-exit; a run that does not
//! end within its timeout is killed and reported with its last output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::cargo::{capture, capture_env, stream_lines};
use crate::error::{Result, XtaskError};

/// Kernel exit statuses (the contract with svsm/kernel/src/exit.rs).
pub const STATUS_SUCCESS: i32 = 33;
/// At least one in-kernel test failed.
pub const STATUS_TESTS_FAILED: i32 = 35;
/// Panic or unexpected exception.
pub const STATUS_FATAL: i32 = 37;

/// What a QEMU status means.
pub fn describe_status(status: Option<i32>) -> String {
    match status {
        Some(STATUS_SUCCESS) => "33 (kernel: success)".into(),
        Some(STATUS_TESTS_FAILED) => "35 (kernel: tests failed)".into(),
        Some(STATUS_FATAL) => "37 (kernel: panic or unexpected exception)".into(),
        Some(0) => {
            "0 (QEMU shut down without the kernel's exit device: reset or triple fault)".into()
        }
        Some(s) => format!("{s} (QEMU error)"),
        None => "killed by a signal".into(),
    }
}

/// The accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation (TCG): works everywhere.
    Tcg,
    /// KVM: needs a usable /dev/kvm.
    Kvm,
}

impl Accel {
    /// The `-accel` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "TCG (software emulation)",
            Accel::Kvm => "KVM",
        }
    }
}

/// A usable QEMU.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// The binary.
    pub binary: PathBuf,
    /// Its `-version` first line.
    pub version: String,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Finds `qemu-system-x86_64` on PATH. If it is missing on Debian and we are root,
/// installs it with apt-get (and says so); elsewhere fails with the command to run.
pub fn find_or_install(log: &mut dyn FnMut(&str)) -> Result<Qemu> {
    let name = "qemu-system-x86_64";
    let binary = match on_path(name) {
        Some(b) => b,
        None => {
            let debian = Path::new("/etc/debian_version").exists();
            if debian && is_root() {
                log("qemu-system-x86_64 missing: running `apt-get update`, `apt-get install -y qemu-system-x86` and `apt-get clean` (Debian, root)");
                let root = Path::new("/");
                // `clean` drops the downloaded packages: disk is short on some machines.
                for args in [
                    &["update"][..],
                    &["install", "-y", "qemu-system-x86"][..],
                    &["clean"][..],
                ] {
                    let c = capture_env(
                        "apt-get",
                        args,
                        root,
                        &[("DEBIAN_FRONTEND", "noninteractive")],
                    )?;
                    if !c.success {
                        return Err(XtaskError::CommandFailed {
                            command: format!("apt-get {}", args.join(" ")),
                            status: format!("{}\n{}", c.status, crate::cargo::tail(&c.output, 20)),
                        });
                    }
                }
                on_path(name).ok_or(XtaskError::NoQemu {
                    install_hint: "apt-get install -y qemu-system-x86".into(),
                })?
            } else {
                let hint = if debian {
                    "sudo apt-get update && sudo apt-get install -y qemu-system-x86"
                } else {
                    "your distribution's QEMU package for x86 (e.g. `dnf install qemu-system-x86` or `brew install qemu`)"
                };
                return Err(XtaskError::NoQemu {
                    install_hint: hint.into(),
                });
            }
        }
    };
    let v = capture(&binary.to_string_lossy(), &["-version"], Path::new("/"))?;
    let version = v
        .output
        .lines()
        .next()
        .unwrap_or("unknown version")
        .to_string();
    Ok(Qemu { binary, version })
}

/// True when /dev/kvm can be opened read-write.
pub fn kvm_device_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// One boot.
#[derive(Clone, Debug)]
pub struct BootSpec<'a> {
    /// The ELF given to `-kernel`.
    pub image: &'a Path,
    /// The kernel command line (`-append`).
    pub append: &'a str,
    /// Accelerator.
    pub accel: Accel,
    /// Wall-time limit.
    pub timeout: Duration,
    /// Print serial lines as they arrive (escape sequences removed).
    pub echo: bool,
}

/// What a boot did.
#[derive(Clone, Debug)]
pub struct BootOutcome {
    /// QEMU's exit status (None: signal, or killed after the timeout).
    pub status: Option<i32>,
    /// True when the run was killed after the timeout.
    pub timed_out: bool,
    /// Serial output lines (escape sequences removed).
    pub lines: Vec<String>,
    /// QEMU's stderr.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Wall time from spawn to the first line containing the kernel banner.
    pub banner_at: Option<Duration>,
}

impl BootOutcome {
    /// The last `n` serial lines, for reports, followed by QEMU's stderr (its own
    /// errors, e.g. a KVM internal error, appear only there).
    pub fn last_lines(&self, n: usize) -> String {
        let mut s = self.lines[self.lines.len().saturating_sub(n)..].join("\n");
        let err: Vec<&str> = self.stderr.lines().take(6).collect();
        if !err.is_empty() {
            s.push_str("\nQEMU stderr:\n");
            s.push_str(&err.join("\n"));
        }
        s
    }

    /// True when some line contains `needle`.
    pub fn has_line(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }
}

/// Marker of the kernel's banner line (svsm/kernel/src/lib.rs `BANNER`).
pub const BANNER_MARKER: &str = "Vigil SVSM";

/// Removes ANSI escape sequences and carriage returns (the firmware's serial console
/// clears the screen; echoing that would wipe the progress lines above).
pub fn sanitize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The machine every Vigil boot uses (q35, `-cpu max`, 256 MiB, COM1 on stdio, the
/// debug-exit device), without the images: the one definition that the kernel-test
/// boots and the end-to-end run share.
pub fn machine_args(accel: Accel) -> Vec<String> {
    [
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        "256M",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-accel",
        accel.arg(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The QEMU arguments for a boot.
pub fn args(spec: &BootSpec<'_>) -> Vec<String> {
    let mut a = machine_args(spec.accel);
    a.push("-kernel".into());
    a.push(spec.image.to_string_lossy().into_owned());
    if !spec.append.is_empty() {
        a.push("-append".into());
        a.push(spec.append.to_string());
    }
    a
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What one QEMU process did.
#[derive(Clone, Debug)]
pub struct Process {
    /// COM1 lines (escape sequences removed).
    pub lines: Vec<String>,
    /// QEMU's exit status (None: signal, or killed after the timeout).
    pub status: Option<i32>,
    /// True when the run was killed after the timeout.
    pub timed_out: bool,
    /// QEMU's stderr.
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs QEMU with `args` until it exits or `timeout` passes (then it is killed). Every
/// COM1 line, sanitized, goes to `on_line` as it arrives, with the time since the spawn
/// and QEMU's stdin (COM1's input), on which the caller may answer.
pub fn run(
    q: &Qemu,
    args: &[String],
    timeout: Duration,
    mut on_line: impl FnMut(&str, Duration, &mut dyn Write) + Send + 'static,
) -> Result<Process> {
    let start = Instant::now();
    let mut child = Command::new(&q.binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| XtaskError::Spawn {
            program: q.binary.to_string_lossy().into_owned(),
            source,
        })?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut stdin = child.stdin.take();
    let reader = child.stdout.take().map(|out| {
        let lines = Arc::clone(&lines);
        thread::spawn(move || {
            stream_lines(out, |raw| {
                let l = sanitize(raw);
                let mut sink = std::io::sink();
                let input: &mut dyn Write = match stdin.as_mut() {
                    Some(s) => s,
                    None => &mut sink,
                };
                on_line(&l, start.elapsed(), input);
                if let Ok(mut v) = lines.lock() {
                    v.push(l);
                }
            })
        })
    });
    let err_reader = child.stderr.take().map(|mut e| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code(),
            Ok(None) => {
                if start.elapsed() >= timeout {
                    kill(&mut child);
                    timed_out = true;
                    break None;
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(source) => {
                kill(&mut child);
                return Err(XtaskError::Spawn {
                    program: q.binary.to_string_lossy().into_owned(),
                    source,
                });
            }
        }
    };
    let elapsed = start.elapsed();
    if let Some(r) = reader {
        let _ = r.join();
    }
    let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let lines = lines.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(Process {
        lines,
        status,
        timed_out,
        stderr,
        elapsed,
    })
}

/// Boots `spec.image` and waits for QEMU to exit or the timeout to pass.
pub fn boot(q: &Qemu, spec: &BootSpec<'_>) -> Result<BootOutcome> {
    let banner = Arc::new(Mutex::new(None::<Duration>));
    let seen = Arc::clone(&banner);
    let echo = spec.echo;
    let p = run(q, &args(spec), spec.timeout, move |l, at, _| {
        if l.contains(BANNER_MARKER) {
            if let Ok(mut b) = seen.lock() {
                b.get_or_insert(at);
            }
        }
        if echo {
            println!("    | {l}");
        }
    })?;
    let banner_at = banner.lock().ok().and_then(|b| *b);
    Ok(BootOutcome {
        status: p.status,
        timed_out: p.timed_out,
        lines: p.lines,
        stderr: p.stderr,
        elapsed: p.elapsed,
        banner_at,
    })
}

/// Chooses the accelerator for `auto`: KVM only if /dev/kvm opens read-write and a
/// probe boot of `probe_image` under KVM exits with the success status; else TCG. Returns
/// the choice and the reason.
pub fn choose_auto(q: &Qemu, probe_image: &Path) -> (Accel, String) {
    if !kvm_device_opens() {
        return (Accel::Tcg, "/dev/kvm cannot be opened read-write".into());
    }
    let spec = BootSpec {
        image: probe_image,
        append: "",
        accel: Accel::Kvm,
        timeout: Duration::from_secs(20),
        echo: false,
    };
    match boot(q, &spec) {
        Ok(o) if o.status == Some(STATUS_SUCCESS) => {
            (Accel::Kvm, "a probe boot with -accel kvm succeeded".into())
        }
        Ok(o) => (
            Accel::Tcg,
            format!(
                "a probe boot with -accel kvm ended with {}{}",
                describe_status(o.status),
                o.stderr
                    .lines()
                    .next()
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => (Accel::Tcg, format!("the KVM probe boot could not run: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_drops_escapes_and_cr() {
        assert_eq!(
            sanitize("\x1bc\x1b[?7l\x1b[2JSeaBIOS (version 1.16)\r"),
            "SeaBIOS (version 1.16)"
        );
        assert_eq!(sanitize("plain"), "plain");
    }

    #[test]
    fn qemu_line_has_the_contract_devices() {
        let spec = BootSpec {
            image: Path::new("/k.elf"),
            append: "ktest=all",
            accel: Accel::Tcg,
            timeout: Duration::from_secs(1),
            echo: false,
        };
        let a = args(&spec).join(" ");
        assert!(a.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.contains("-machine q35 -cpu max -m 256M"));
        assert!(a.contains("-accel tcg"));
        assert!(a.ends_with("-kernel /k.elf -append ktest=all"));
    }

    #[test]
    fn statuses_are_described() {
        assert!(describe_status(Some(35)).contains("tests failed"));
        assert!(describe_status(Some(37)).contains("panic"));
        assert!(describe_status(None).contains("signal"));
    }
}
