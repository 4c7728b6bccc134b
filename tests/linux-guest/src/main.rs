//! PID 1 of the Linux guest's initramfs (see `src/lib.rs` for what it is for).
//!
//! Steps, each printed as `vigil-init: <step> ok|FAILED <detail>`:
//! 1. mount devtmpfs, proc and sysfs; print the kernel's version and command line;
//! 2. load configfs, tsm and sev-guest (`finit_module` with the compressed-file flag:
//!    Debian's modules are xz files and the kernel decompresses them,
//!    CONFIG_MODULE_DECOMPRESS=y); mount configfs;
//! 3. print `vigil-init: nonce?` and read the nonce (128 hex digits) from the console,
//!    so that the harness chooses it after boot;
//! 4. make a TSM report entry, set `service_provider` to `svsm`, write the nonce to
//!    `inblob`, read `outblob` (the report), `manifestblob` (the SVSM's services
//!    manifest) and `auxblob` (the certificates), and print each framed;
//! 5. end the VM through QEMU's debug-exit port (0x10 when every step worked, else
//!    0x11), through `/dev/port`, or power off if that fails.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};

use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{mount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};

use vigil_linux_init::{
    frame, parse_nonce, EXIT_FAILED, EXIT_OK, MODULES, NONCE_PROMPT, PREFIX, TSM_REPORT,
};

/// `MODULE_INIT_COMPRESSED_FILE` (include/uapi/linux/module.h, Linux 6.4 and later).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// QEMU's isa-debug-exit port (the harness's `-device isa-debug-exit,iobase=0xf4`).
const DEBUG_EXIT_PORT: u64 = 0xf4;

fn say(step: &str, r: &Result<String, String>) {
    match r {
        Ok(d) => println!("{PREFIX} {step} ok {d}"),
        Err(e) => println!("{PREFIX} {step} FAILED {e}"),
    }
}

fn mount_fs(fstype: &str, target: &str) -> Result<String, String> {
    let _ = fs::create_dir_all(target);
    mount(
        Some(fstype),
        target,
        Some(fstype),
        MsFlags::empty(),
        None::<&str>,
    )
    .map(|()| target.to_string())
    .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

fn load_module(path: &str) -> Result<String, String> {
    let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let flags = ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE as _);
    let params = CString::default();
    match finit_module(&f, &params, flags) {
        Ok(()) => Ok(path.to_string()),
        Err(nix::errno::Errno::EEXIST) => Ok(format!("{path} (already loaded)")),
        Err(e) => Err(format!("{path}: finit_module: {e}")),
    }
}

fn read_nonce() -> Result<[u8; 64], String> {
    println!("{NONCE_PROMPT}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("console: {e}"))?;
    parse_nonce(&line).map_err(|e| format!("nonce line: {e:?}"))
}

fn read_attr(name: &str) -> Result<Vec<u8>, String> {
    let p = format!("{TSM_REPORT}/{name}");
    let mut v = Vec::new();
    File::open(&p)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| format!("{p}: {e}"))?;
    Ok(v)
}

fn write_attr(name: &str, data: &[u8]) -> Result<(), String> {
    let p = format!("{TSM_REPORT}/{name}");
    OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("{p}: {e}"))
}

/// Steps 3 and 4; returns how many blobs were printed.
fn attest() -> Result<String, String> {
    fs::create_dir(TSM_REPORT).map_err(|e| format!("mkdir {TSM_REPORT}: {e}"))?;
    let provider = read_attr("provider")?;
    write_attr("service_provider", b"svsm")?;
    let nonce = read_nonce()?;
    write_attr("inblob", &nonce)?;
    print!("{}", frame("nonce", &nonce));
    let mut n = 1;
    for (attr, name) in [
        ("outblob", "report"),
        ("manifestblob", "manifest"),
        ("auxblob", "certs"),
    ] {
        let b = read_attr(attr)?;
        print!("{}", frame(name, &b));
        n += 1;
    }
    let generation = read_attr("generation").unwrap_or_default();
    Ok(format!(
        "provider {} generation {}: {n} blobs",
        String::from_utf8_lossy(&provider).trim(),
        String::from_utf8_lossy(&generation).trim()
    ))
}

fn exit_vm(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    let r = OpenOptions::new()
        .write(true)
        .open("/dev/port")
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(DEBUG_EXIT_PORT))?;
            f.write_all(&[code])
        });
    if let Err(e) = r {
        println!("{PREFIX} debug-exit through /dev/port: {e}; powering off");
    }
    let _ = reboot(RebootMode::RB_POWER_OFF);
    loop {
        std::thread::park();
    }
}

fn main() {
    let mut ok = true;
    for (fstype, target) in [("devtmpfs", "/dev"), ("proc", "/proc"), ("sysfs", "/sys")] {
        let r = mount_fs(fstype, target);
        ok &= r.is_ok();
        say(&format!("mount-{fstype}"), &r);
    }
    let version = fs::read_to_string("/proc/version").unwrap_or_default();
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    println!("{PREFIX} kernel {}", version.trim());
    println!("{PREFIX} cmdline {}", cmdline.trim());
    for (name, path) in MODULES {
        let r = load_module(path);
        ok &= r.is_ok();
        say(&format!("module-{name}"), &r);
    }
    let r = mount_fs("configfs", "/sys/kernel/config");
    ok &= r.is_ok();
    say("mount-configfs", &r);
    let r = attest();
    ok &= r.is_ok();
    say("attest", &r);
    exit_vm(if ok { EXIT_OK } else { EXIT_FAILED });
}
