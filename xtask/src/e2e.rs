//! The end-to-end run of the emulated platform (issue 5): build the test guest, compute
//! the reference values from the image files, boot Vigil with the guest below it, show
//! each step as it happens, collect the evidence record from the serial port, and run
//! `vigil-verify` on it.
//!
//! Reference values: the launch digest is computed here, from the ELF files, by the rule
//! of docs/emulated.md (Vigil's non-writable PT_LOAD pages, then the guest's PT_LOAD
//! pages, each a NORMAL page of the SNP PAGE_INFO chain at its address) - never copied
//! from the VM's output. The kernel computes the same from what it loaded; the verifier
//! compares the report's MEASUREMENT with this file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use object::elf::{FileHeader64, PF_W, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;
use sha2::{Digest, Sha256, Sha384};
use svsm_abi::event_log::{self, access, refusal, AccessRefusedPayload};
use svsm_abi::evidence;
use svsm_abi::page_info::{self, PageType};
use zerocopy::FromBytes;

use crate::error::{Result, XtaskError};
use crate::paths::{Flavour, KERNEL_TARGET};
use crate::qemu::{self, Accel, Qemu};
use crate::steps::{build_kernel, Ctx};

/// The guest steps every run must report `ok`.
pub const STEPS: [&str; 15] = [
    "secrets-page",
    "query-protocol",
    "pvalidate-4k",
    "pvalidate-2m",
    "pvalidate-list",
    "pvalidate-rescind",
    "revalidate-zeroed",
    "remap-ca",
    "create-vcpu",
    "cpuid-policy",
    "delete-vcpu",
    // The calls of Linux 6.12 and OVMF in their own shapes (#58019 as those clients
    // call it; `client_sessions` in firmware/src/guest/mod.rs).
    "linux-pvalidate-in-ca",
    "linux-cpu-online",
    "ovmf-create-vcpu",
    "attest",
];
/// The attacks every run must report `refused`.
pub const ATTACKS: [&str; 13] = [
    "touch-vigil-image",
    "write-vigil-heap",
    "write-own-vmsa",
    "validate-twice",
    "validate-vigil-memory",
    "list-crosses-page",
    "list-in-vigil-memory",
    "calling-area-crosses-page",
    "calling-area-in-vigil-memory",
    "vmsa-vmpl0",
    "vmsa-forbidden-sev-features",
    "vmsa-in-vigil-memory",
    "wrmsr-vm-hsave-pa",
];

/// The guest's probes whose refusal is a nested page fault (three attacks, and the
/// rescind step, which reads the page it gave up): each must leave an ACCESS_REFUSED
/// record (issue 5: a refused access is a mediated event, logged) with this reason and
/// access bit in the event log the attestation binds (the guest attests last).
pub const FAULTING_PROBES: [(&str, u32, u32); 4] = [
    (
        "step pvalidate-rescind",
        refusal::NOT_VALIDATED,
        access::READ,
    ),
    (
        "attack touch-vigil-image",
        refusal::VIGIL_MEMORY,
        access::READ,
    ),
    (
        "attack write-vigil-heap",
        refusal::VIGIL_MEMORY,
        access::WRITE,
    ),
    ("attack write-own-vmsa", refusal::VMSA, access::WRITE),
];

/// Checks that the evidence's event log holds one ACCESS_REFUSED record per faulting
/// probe (a distinct record each, matched by reason and access bit). Returns the number
/// of ACCESS_REFUSED records.
pub fn check_refused_accesses(log: &[u8]) -> std::result::Result<usize, String> {
    let mut recs: Vec<AccessRefusedPayload> = Vec::new();
    let mut bad = None;
    event_log::replay(log, |h, p| {
        if h.kind == event_log::kind::ACCESS_REFUSED {
            match AccessRefusedPayload::read_from_bytes(p) {
                Ok(r) => recs.push(r),
                Err(_) => bad = Some(h.sequence),
            }
        }
    })
    .map_err(|e| format!("event log: {e:?}"))?;
    if let Some(seq) = bad {
        return Err(format!(
            "event log: record {seq}: bad ACCESS_REFUSED payload"
        ));
    }
    let n = recs.len();
    let mut missing = Vec::new();
    for (name, reason, acc) in FAULTING_PROBES {
        match recs
            .iter()
            .position(|r| r.reason == reason && r.access & acc != 0)
        {
            Some(i) => {
                recs.remove(i);
            }
            None => missing.push(name),
        }
    }
    if missing.is_empty() {
        Ok(n)
    } else {
        Err(format!(
            "event log: {n} ACCESS_REFUSED record(s); none left for {}",
            missing.join(", ")
        ))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> XtaskError + '_ {
    move |source| XtaskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds the test guest; returns the ELF's path.
pub fn build_guest(ctx: &mut Ctx) -> Result<PathBuf> {
    let dir = ctx.ws.target.join("vigil-guest");
    let d = dir.to_string_lossy().into_owned();
    ctx.cargo(&[
        "build",
        "-p",
        "vigil-firmware",
        "--bin",
        "vigil-test-guest",
        "--target",
        KERNEL_TARGET,
        "--release",
        "--target-dir",
        &d,
    ])?;
    Ok(dir
        .join(KERNEL_TARGET)
        .join("release")
        .join("vigil-test-guest"))
}

/// The loaded pages of an ELF: (page address -> 4 KiB contents), from the PT_LOAD
/// segments that `want(flags)` selects, loaded into zeroed memory.
pub fn loaded_pages(
    data: &[u8],
    want: impl Fn(u32) -> bool,
) -> std::result::Result<BTreeMap<u64, Vec<u8>>, String> {
    let hdr = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("ELF header (offset 0): {e}"))?;
    let endian = hdr
        .endian()
        .map_err(|e| format!("e_ident (offset 5): {e}"))?;
    let phdrs = hdr
        .program_headers(endian, data)
        .map_err(|e| format!("program headers (e_phoff, offset 0x20): {e}"))?;
    let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (i, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != PT_LOAD || !want(ph.p_flags(endian)) || ph.p_memsz(endian) == 0 {
            continue;
        }
        let addr = ph.p_paddr(endian);
        let memsz = ph.p_memsz(endian);
        let bytes = ph
            .data(endian, data)
            .map_err(|_| format!("program header {i}: file bytes outside the file"))?;
        let first = addr & !0xfff;
        let end = (addr + memsz + 0xfff) & !0xfff;
        for p in (first..end).step_by(4096) {
            pages.entry(p).or_insert_with(|| vec![0u8; 4096]);
        }
        for (j, b) in bytes.iter().enumerate() {
            let a = addr + j as u64;
            if let Some(pg) = pages.get_mut(&(a & !0xfff)) {
                pg[(a & 0xfff) as usize] = *b;
            }
        }
    }
    Ok(pages)
}

/// The launch digest of the emulated platform (docs/emulated.md): Vigil's non-writable
/// PT_LOAD pages, then the guest's PT_LOAD pages, ascending,
/// as NORMAL pages.
pub fn launch_digest(
    kernel: &[u8],
    guest: &[u8],
) -> std::result::Result<([u8; 48], usize, usize), String> {
    let k = loaded_pages(kernel, |f| f & PF_W == 0).map_err(|e| format!("kernel: {e}"))?;
    let g = loaded_pages(guest, |_| true).map_err(|e| format!("guest: {e}"))?;
    let mut d = [0u8; 48];
    for (a, p) in k.iter().chain(g.iter()) {
        let contents: [u8; 48] = Sha384::digest(p).into();
        d = page_info::extend(&d, &contents, PageType::Normal, *a);
    }
    Ok((d, k.len(), g.len()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What a platform's guest run must show: its steps and attacks, and those it may
/// report as skipped (with the guest's reason on the line).
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// Steps every run has.
    pub steps: &'static [&'static str],
    /// Steps only this platform has.
    pub extra_steps: &'static [&'static str],
    /// Attacks every run has.
    pub attacks: &'static [&'static str],
    /// Steps, or attacks as `attack <name>`, that may say `skipped ...` here.
    pub may_skip: &'static [&'static str],
}

/// On `emulated`: every step and attack runs.
pub const ON_EMULATED: Expected = Expected {
    steps: &STEPS,
    extra_steps: &[],
    attacks: &ATTACKS,
    may_skip: &[],
};

/// On SNP (the machine model): Vigil serves the second vCPU (issue 10, "APs on SNP"),
/// so `create-vcpu` and `linux-cpu-online` run; `ovmf-create-vcpu` starts APIC ID 2,
/// which the model's two-vCPU VM does not have; cpuid-policy is not Vigil's on SNP
/// (CPUID answers come from the CPUID page); the three attacks whose refusal is a
/// nested page fault fault to the host, not to the guest (firmware/src/guest/mod.rs
/// says so where it skips). The CREATE_VCPU of `create-vcpu` is reported on its own
/// there, as `create-vcpu-vmsa`.
pub const ON_SNP: Expected = Expected {
    steps: &STEPS,
    extra_steps: &["create-vcpu-vmsa"],
    attacks: &ATTACKS,
    may_skip: &[
        "ovmf-create-vcpu",
        "cpuid-policy",
        "attack touch-vigil-image",
        "attack write-vigil-heap",
        "attack write-own-vmsa",
    ],
};

/// What the guest reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestResult {
    /// Steps that said ok.
    pub ok: Vec<String>,
    /// Attacks refused.
    pub refused: Vec<String>,
    /// Failures (step or attack, with the reason).
    pub failures: Vec<String>,
    /// Steps (or `attack <name>`) that said `skipped ...`.
    pub skipped: Vec<String>,
    /// The summary line's numbers: passed, failed, skipped (0 when the line has none).
    pub summary: Option<(u32, u32, u32)>,
}

/// Reads the guest's result lines.
pub fn parse_guest(lines: &[String]) -> GuestResult {
    let mut r = GuestResult::default();
    for l in lines {
        let Some(rest) = l.strip_prefix("guest: ") else {
            continue;
        };
        if let Some((name, verdict)) = rest.split_once(" ... ") {
            if verdict.starts_with("skipped") {
                r.skipped.push(name.to_string());
            } else if let Some(a) = name.strip_prefix("attack ") {
                if verdict.starts_with("refused") {
                    r.refused.push(a.to_string());
                } else {
                    r.failures.push(format!("attack {a}: {verdict}"));
                }
            } else if verdict == "ok" {
                r.ok.push(name.to_string());
            } else {
                r.failures.push(format!("{name}: {verdict}"));
            }
        } else if let Some(sum) = parse_summary(rest) {
            r.summary = Some(sum);
        }
    }
    r
}

/// `N passed, N failed` or `N passed, N failed, N skipped`.
fn parse_summary(s: &str) -> Option<(u32, u32, u32)> {
    let (p, rest) = s.split_once(" passed, ")?;
    let (f, skipped) = match rest.split_once(" failed, ") {
        Some((f, k)) => (f, k.strip_suffix(" skipped")?.parse().ok()?),
        None => (rest.strip_suffix(" failed")?, 0),
    };
    Some((p.parse().ok()?, f.parse().ok()?, skipped))
}

/// Checks a guest result against what the platform's run must show.
pub fn judge_guest(r: &GuestResult, want: &Expected) -> std::result::Result<(), String> {
    let mut errs = r.failures.clone();
    // `name` is how the guest's line names it: `<step>` or `attack <attack>`.
    let mut check = |name: String, passed: bool| {
        let label = if name.starts_with("attack ") {
            name.clone()
        } else {
            format!("step {name}")
        };
        let failed = r
            .failures
            .iter()
            .any(|f| f.starts_with(&format!("{name}:")));
        let skipped = r.skipped.contains(&name);
        if skipped && !want.may_skip.contains(&name.as_str()) {
            errs.push(format!(
                "{label}: skipped, which this platform's run may not"
            ));
        } else if !passed && !failed && !skipped {
            errs.push(format!("{label}: no result line"));
        }
    };
    for s in want.steps.iter().chain(want.extra_steps) {
        check(s.to_string(), r.ok.iter().any(|x| x == s));
    }
    for a in want.attacks {
        check(format!("attack {a}"), r.refused.iter().any(|x| x == a));
    }
    let counted = (r.ok.len() + r.refused.len()) as u32;
    let (failed, skipped) = (r.failures.len() as u32, r.skipped.len() as u32);
    match r.summary {
        None => errs.push("no summary line `guest: N passed, N failed[, N skipped]`".into()),
        Some(sum) if sum != (counted, failed, skipped) => errs.push(format!(
            "summary says {} passed, {} failed, {} skipped; the lines say {counted} passed, {failed} failed, {skipped} skipped",
            sum.0, sum.1, sum.2
        )),
        Some(_) => {}
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Finds and checks the evidence frame; returns the record.
pub fn extract_record(lines: &[String]) -> std::result::Result<Vec<u8>, String> {
    let start = lines
        .iter()
        .position(|l| l.starts_with(evidence::FRAME_BEGIN))
        .ok_or("no evidence frame on the serial port")?;
    let head: Vec<&str> = lines[start].split_whitespace().collect();
    let (len, sha) = match head.as_slice() {
        [_, _, len, sha] => (
            len.parse::<usize>()
                .map_err(|_| format!("evidence frame: bad length {len:?}"))?,
            sha.to_string(),
        ),
        _ => return Err(format!("evidence frame: bad first line {:?}", lines[start])),
    };
    let mut b64 = String::new();
    let mut ended = false;
    for l in &lines[start + 1..] {
        if l == evidence::FRAME_END {
            ended = true;
            break;
        }
        b64.push_str(l.trim());
    }
    if !ended {
        return Err("evidence frame: no end line".into());
    }
    let rec = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("evidence frame: base64: {e}"))?;
    if rec.len() != len {
        return Err(format!(
            "evidence frame: {} bytes, header says {len}",
            rec.len()
        ));
    }
    let got = hex(&Sha256::digest(&rec));
    if got != sha {
        return Err(format!("evidence frame: SHA-256 {got}, header says {sha}"));
    }
    Ok(rec)
}

/// The parts of a record.
#[derive(Debug, Default)]
pub struct Parts {
    /// REPORT.
    pub report: Option<Vec<u8>>,
    /// The certificates, named as `vigil-verify --certs` reads them.
    pub certs: Vec<(&'static str, Vec<u8>)>,
    /// MANIFEST.
    pub manifest: Option<Vec<u8>>,
    /// EVENT_LOG.
    pub log: Option<Vec<u8>>,
    /// NONCE.
    pub nonce: Option<Vec<u8>>,
}

/// Splits a record into its parts (every item checked by the ABI's reader).
pub fn split_record(rec: &[u8]) -> std::result::Result<Parts, String> {
    let mut p = Parts::default();
    for it in evidence::items(rec).map_err(|e| e.to_string())? {
        let (t, _, b) = it.map_err(|e| e.to_string())?;
        let b = b.to_vec();
        match t {
            evidence::item::REPORT => p.report = Some(b),
            evidence::item::ARK_PEM => p.certs.push(("ark.pem", b)),
            evidence::item::ASK_PEM => p.certs.push(("ask.pem", b)),
            evidence::item::VCEK_PEM => p.certs.push(("vcek.pem", b)),
            evidence::item::MANIFEST => p.manifest = Some(b),
            evidence::item::EVENT_LOG => p.log = Some(b),
            evidence::item::NONCE => p.nonce = Some(b),
            _ => {}
        }
    }
    Ok(p)
}

/// One boot of Vigil with the guest.
pub struct Run {
    /// Serial lines.
    pub lines: Vec<String>,
    /// QEMU status.
    pub status: Option<i32>,
    /// Wall time.
    pub elapsed: Duration,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// QEMU's stderr.
    pub stderr: String,
}

/// Boots `kernel` with `guest` as its module; echoes Vigil's and the guest's lines.
pub fn boot(
    q: &Qemu,
    kernel: &Path,
    guest: &Path,
    append: &str,
    accel: Accel,
    timeout: Duration,
    echo: bool,
) -> Result<Run> {
    let mut args = qemu::machine_args(accel);
    args.extend([
        "-kernel".to_string(),
        kernel.to_string_lossy().into_owned(),
        "-initrd".to_string(),
        guest.to_string_lossy().into_owned(),
    ]);
    if !append.is_empty() {
        args.extend(["-append".to_string(), append.to_string()]);
    }
    let mut in_frame = false;
    let p = qemu::run(q, &args, timeout, move |l, _, _| {
        if !echo {
            return;
        }
        if l.starts_with(evidence::FRAME_BEGIN) {
            in_frame = true;
            println!("    | {l}  (record hidden)");
        } else if l == evidence::FRAME_END {
            in_frame = false;
        } else if !in_frame
            && (l.starts_with("guest:")
                || l.starts_with("vigil:")
                || l.contains("ERROR")
                || l.contains("***"))
        {
            println!("    | {l}");
        }
    })?;
    Ok(Run {
        lines: p.lines,
        status: p.status,
        elapsed: p.elapsed,
        timed_out: p.timed_out,
        stderr: p.stderr,
    })
}

/// Whether KVM can run this (with nested SVM, since Vigil is a hypervisor), and why not.
pub fn kvm_usable() -> std::result::Result<(), String> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Err("/dev/kvm cannot be opened read-write".into());
    }
    match std::fs::read_to_string("/sys/module/kvm_amd/parameters/nested") {
        Ok(s) if matches!(s.trim(), "1" | "Y") => Ok(()),
        Ok(s) => Err(format!("kvm_amd nested={} (nested SVM off)", s.trim())),
        Err(_) => Err("kvm_amd is not loaded (no AMD host, or no nested SVM)".into()),
    }
}

fn line_after<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

/// Judges one run and, with its evidence, runs the verifier. Returns a summary.
fn judge_run(
    ctx: &mut Ctx,
    run: &Run,
    accel: Accel,
    refs: &Path,
    verify: &Path,
    out: &Path,
) -> std::result::Result<String, String> {
    if run.timed_out {
        return Err(format!(
            "[{}] killed after the timeout; last lines:\n{}",
            accel.name(),
            run.lines[run.lines.len().saturating_sub(12)..].join("\n")
        ));
    }
    let g = parse_guest(&run.lines);
    judge_guest(&g, &ON_EMULATED).map_err(|e| format!("[{}] guest: {e}", accel.name()))?;
    if run.status != Some(33) {
        return Err(format!(
            "[{}] QEMU exited with {:?} (want 33: the guest's 0x10 through Vigil); last lines:\n{}\n{}",
            accel.name(),
            run.status,
            run.lines[run.lines.len().saturating_sub(8)..].join("\n"),
            run.stderr.trim()
        ));
    }
    let rec = extract_record(&run.lines).map_err(|e| format!("[{}] {e}", accel.name()))?;
    let parts =
        split_record(&rec).map_err(|e| format!("[{}] evidence record: {e}", accel.name()))?;
    let dir = out.join("evidence");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
    let write =
        |p: PathBuf, b: &[u8]| std::fs::write(&p, b).map_err(|e| format!("{}: {e}", p.display()));
    let (Some(report), Some(manifest), Some(log), Some(nonce)) =
        (&parts.report, &parts.manifest, &parts.log, &parts.nonce)
    else {
        return Err("evidence record lacks the report, manifest, event log or nonce".into());
    };
    let refused = check_refused_accesses(log).map_err(|e| format!("[{}] {e}", accel.name()))?;
    write(dir.join("report.bin"), report)?;
    write(dir.join("manifest.bin"), manifest)?;
    write(dir.join("event-log.bin"), log)?;
    write(dir.join("nonce.hex"), hex(nonce).as_bytes())?;
    for (n, b) in &parts.certs {
        write(certs.join(n), b)?;
    }
    let args: Vec<String> = vec![
        dir.join("report.bin").to_string_lossy().into_owned(),
        "--certs".into(),
        certs.to_string_lossy().into_owned(),
        "--nonce".into(),
        hex(nonce),
        "--manifest".into(),
        dir.join("manifest.bin").to_string_lossy().into_owned(),
        "--event-log".into(),
        dir.join("event-log.bin").to_string_lossy().into_owned(),
        "--refs".into(),
        refs.to_string_lossy().into_owned(),
        "--allow-test-root".into(),
        "--offline".into(),
    ];
    println!("    $ vigil-verify {}", args.join(" "));
    let o = Command::new(verify)
        .args(&args)
        .current_dir(&ctx.ws.root)
        .output()
        .map_err(|e| format!("{}: {e}", verify.display()))?;
    for l in String::from_utf8_lossy(&o.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&o.stderr).lines())
    {
        println!("    > {l}");
    }
    if !o.status.success() {
        return Err(format!(
            "[{}] vigil-verify rejected the evidence (exit {:?})",
            accel.name(),
            o.status.code()
        ));
    }
    // Negative control: the same evidence with one bit of the report's MEASUREMENT
    // flipped must be rejected (the verify step can fail).
    let mut bad = report.clone();
    bad[0x90] ^= 1;
    write(dir.join("report-tampered.bin"), &bad)?;
    let mut bad_args = args.clone();
    bad_args[0] = dir
        .join("report-tampered.bin")
        .to_string_lossy()
        .into_owned();
    let o = Command::new(verify)
        .args(&bad_args)
        .current_dir(&ctx.ws.root)
        .output()
        .map_err(|e| format!("{}: {e}", verify.display()))?;
    if o.status.code() != Some(1) {
        return Err(format!(
            "[{}] vigil-verify did not reject a report with a flipped MEASUREMENT bit (exit {:?})",
            accel.name(),
            o.status.code()
        ));
    }
    let events = line_after(&run.lines, "vigil: events: ")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?");
    let mediated = line_after(&run.lines, "vigil: events: ")
        .and_then(|s| s.split(", ").nth(1))
        .unwrap_or("? mediated faults");
    Ok(format!(
        "[{}] verified (a tampered copy rejected); guest steps {}/{} passed, attacks refused {}/{}, {} event-log records ({} refused accesses bound by the report), {}, boot to exit {:.2} s",
        accel.name(),
        g.ok.len(),
        STEPS.len(),
        g.refused.len(),
        ATTACKS.len(),
        events,
        refused,
        mediated,
        run.elapsed.as_secs_f64()
    ))
}

/// The step: build, refs, boot (TCG, and KVM where usable), judge, verify.
pub fn step_e2e(ctx: &mut Ctx) -> Result<String> {
    println!();
    let (kernel, facts, _) = build_kernel(ctx, Flavour::Release)?;
    let guest = build_guest(ctx)?;
    ctx.cargo(&["build", "-p", "attestation", "--bin", "vigil-verify"])?;
    let verify = ctx.ws.target.join("debug").join("vigil-verify");
    let kb = std::fs::read(&kernel).map_err(io(&kernel))?;
    let gb = std::fs::read(&guest).map_err(io(&guest))?;
    let (digest, kp, gp) = launch_digest(&kb, &gb).map_err(XtaskError::Check)?;
    let out = ctx.ws.target.join("vigil-run");
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let refs = out.join("refs.json");
    // No "policy": the emulated security processor's POLICY is a constant of Vigil's own
    // (docs/emulated.md), so vigil-verify names refs.policy as not compared here. The SNP
    // path (step model-vigil) compares it with the policy vigil-igvm reads from the file.
    let json = format!(
        "{{\n  \"schema\": \"vigil-refs/1\",\n  \"launch_digest\": \"{}\",\n  \"guest_vmpl\": 2,\n  \"vcpus\": 1,\n  \"platform\": \"emulated\"\n}}\n",
        hex(&digest)
    );
    std::fs::write(&refs, json).map_err(io(&refs))?;
    println!(
        "    kernel {} KiB stripped, guest {} KiB; launch digest {} ({kp} Vigil pages + {gp} guest pages) -> {}",
        facts.size / 1024,
        gb.len() / 1024,
        hex(&digest),
        refs.display()
    );
    let q = ctx.qemu()?;
    let mut accels = vec![Accel::Tcg];
    let kvm_note = match kvm_usable() {
        Ok(()) => {
            accels.push(Accel::Kvm);
            "KVM: used (nested SVM on)".to_string()
        }
        Err(why) => {
            ctx.skipped
                .push(format!("e2e under KVM: {why} (ran under TCG only)"));
            format!("KVM: skipped ({why})")
        }
    };
    let mut parts = Vec::new();
    let mut errs = Vec::new();
    for accel in accels {
        println!("    booting Vigil with the test guest ({}):", accel.name());
        let run = boot(
            &q,
            &kernel,
            &guest,
            "",
            accel,
            Duration::from_secs(120),
            true,
        )?;
        if let Some(k) = line_after(&run.lines, "vigil: launch digest ")
            .and_then(|s| s.split_whitespace().next())
        {
            if k != hex(&digest) {
                println!(
                    "    note: the kernel reports launch digest {k}; the host computed {}",
                    hex(&digest)
                );
            }
        }
        match judge_run(ctx, &run, accel, &refs, &verify, &out) {
            Ok(s) => parts.push(s),
            Err(e) => errs.push(e),
        }
    }
    println!("    {kvm_note}");
    if errs.is_empty() {
        Ok(format!("{}; {kvm_note}", parts.join("; ")))
    } else {
        Err(XtaskError::Check(errs.join("\n")))
    }
}

/// `cargo xtask bench exits`: one run with the guest's benchmark on.
pub fn bench_exits(ctx: &mut Ctx, n: u64) -> Result<()> {
    let (kernel, facts, _) = build_kernel(ctx, Flavour::Release)?;
    let guest = build_guest(ctx)?;
    let q = ctx.qemu()?;
    let run = boot(
        &q,
        &kernel,
        &guest,
        &format!("bench={n}"),
        Accel::Tcg,
        Duration::from_secs(300),
        false,
    )?;
    let b = line_after(&run.lines, "guest: bench ").ok_or_else(|| {
        XtaskError::Check(format!(
            "no benchmark line; status {:?}; last lines:\n{}",
            run.status,
            run.lines[run.lines.len().saturating_sub(10)..].join("\n")
        ))
    })?;
    println!(
        "emulated platform benchmark (QEMU TCG, -cpu max; {}):",
        q.version
    );
    println!(
        "  guest-to-Vigil round trip (VMGEXIT exit to VMRUN back), guest-visible TSC cycles: {b}"
    );
    for p in ["vigil: exits: ", "vigil: events: "] {
        if let Some(l) = line_after(&run.lines, p) {
            println!("  {}{l}", &p[7..]);
        }
    }
    println!(
        "  kernel image {} bytes stripped; run {:.2} s wall",
        facts.size,
        run.elapsed.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    fn full_run() -> String {
        let mut s = String::new();
        for st in STEPS {
            s.push_str(&format!("guest: {st} ... ok\n"));
        }
        for a in ATTACKS {
            s.push_str(&format!(
                "guest: attack {a} ... refused (INVALID_ADDRESS)\n"
            ));
        }
        s.push_str(&format!(
            "guest: {} passed, 0 failed\n",
            STEPS.len() + ATTACKS.len()
        ));
        s
    }

    #[test]
    fn a_complete_run_passes() {
        let r = parse_guest(&lines(&full_run()));
        assert_eq!(judge_guest(&r, &ON_EMULATED), Ok(()));
    }

    #[test]
    fn an_attack_not_refused_fails_and_is_named() {
        let s = full_run().replace(
            "attack vmsa-vmpl0 ... refused (INVALID_ADDRESS)",
            "attack vmsa-vmpl0 ... NOT REFUSED (SUCCESS)",
        );
        let e = judge_guest(&parse_guest(&lines(&s)), &ON_EMULATED).unwrap_err();
        assert!(e.contains("attack vmsa-vmpl0: NOT REFUSED"), "{e}");
    }

    #[test]
    fn a_missing_step_or_lying_summary_fails() {
        let s = full_run().replace("guest: remap-ca ... ok\n", "");
        let e = judge_guest(&parse_guest(&lines(&s)), &ON_EMULATED).unwrap_err();
        assert!(e.contains("step remap-ca: no result line"), "{e}");
        assert!(e.contains("summary says"), "{e}");
        let s = full_run().replace(" passed, 0 failed", " passed, 1 failed");
        assert!(judge_guest(&parse_guest(&lines(&s)), &ON_EMULATED).is_err());
    }

    #[test]
    fn skips_pass_only_where_the_platform_allows_them() {
        let snp = full_run()
            .replace(
                "guest: cpuid-policy ... ok\n",
                "guest: cpuid-policy ... skipped on SNP (CPUID is the CPUID page's there)\n",
            )
            .replace(
                "guest: attack write-own-vmsa ... refused (INVALID_ADDRESS)\n",
                "guest: attack write-own-vmsa ... skipped on SNP (the fault goes to the host)\n",
            )
            .replace(
                &format!("guest: {} passed, 0 failed\n", STEPS.len() + ATTACKS.len()),
                &format!(
                    "guest: create-vcpu-vmsa ... ok\nguest: {} passed, 0 failed, 2 skipped\n",
                    STEPS.len() + ATTACKS.len() - 1
                ),
            );
        let r = parse_guest(&lines(&snp));
        assert_eq!(r.skipped, ["cpuid-policy", "attack write-own-vmsa"]);
        assert_eq!(judge_guest(&r, &ON_SNP), Ok(()));
        // The same lines on emulated: both skips refused by name.
        let e = judge_guest(&r, &ON_EMULATED).unwrap_err();
        assert!(e.contains("step cpuid-policy: skipped"), "{e}");
        assert!(e.contains("attack write-own-vmsa: skipped"), "{e}");
        // On SNP a skip outside the list, a missing SNP-only step, or a summary that
        // leaves the skips out fails.
        let other = snp.replace(
            "guest: remap-ca ... ok",
            "guest: remap-ca ... skipped on SNP (no reason)",
        );
        let e = judge_guest(&parse_guest(&lines(&other)), &ON_SNP).unwrap_err();
        assert!(e.contains("step remap-ca: skipped"), "{e}");
        let no_vmsa = snp.replace("guest: create-vcpu-vmsa ... ok\n", "");
        let e = judge_guest(&parse_guest(&lines(&no_vmsa)), &ON_SNP).unwrap_err();
        assert!(e.contains("step create-vcpu-vmsa: no result line"), "{e}");
        let lying = snp.replace(", 2 skipped", "");
        let e = judge_guest(&parse_guest(&lines(&lying)), &ON_SNP).unwrap_err();
        assert!(e.contains("summary says"), "{e}");
    }

    fn frame(rec: &[u8]) -> Vec<String> {
        let mut v = vec![format!(
            "{} {} {}",
            evidence::FRAME_BEGIN,
            rec.len(),
            hex(&Sha256::digest(rec))
        )];
        let b = base64::engine::general_purpose::STANDARD.encode(rec);
        for c in b.as_bytes().chunks(76) {
            v.push(String::from_utf8(c.to_vec()).unwrap());
        }
        v.push(evidence::FRAME_END.into());
        v
    }

    #[test]
    fn evidence_frames_round_trip_and_damage_is_caught() {
        let items: [(u16, &[u8]); 2] = [
            (evidence::item::NONCE, b"n0nce"),
            (evidence::item::REPORT, &[3u8; 100]),
        ];
        let mut rec = vec![0u8; evidence::encoded_len(items.iter().map(|(_, b)| b.len()))];
        evidence::encode(&items, &mut rec).unwrap();
        let mut l = vec!["noise".to_string()];
        l.extend(frame(&rec));
        let got = extract_record(&l).unwrap();
        assert_eq!(got, rec);
        let p = split_record(&got).unwrap();
        assert_eq!(p.nonce.as_deref(), Some(&b"n0nce"[..]));
        // One flipped base64 character: the SHA-256 no longer matches.
        let mut bad = l.clone();
        let line = bad[2].clone();
        let flipped: String = line
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 3 {
                    if c == 'A' {
                        'B'
                    } else {
                        'A'
                    }
                } else {
                    c
                }
            })
            .collect();
        bad[2] = flipped;
        assert!(extract_record(&bad).unwrap_err().contains("SHA-256"));
        // No end line.
        let cut = &l[..l.len() - 1];
        assert!(extract_record(cut).unwrap_err().contains("no end line"));
    }

    #[test]
    fn launch_digest_follows_the_page_info_chain() {
        // The expected chain is spelled out with PAGE_INFO here rather than with
        // `page_info::extend`, which the code under test uses.
        use svsm_abi::page_info::PageInfo;
        // A one-segment ELF at 16 MiB with 5 bytes of code.
        let mut e = vec![0u8; 64 + 56];
        e[0..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[6] = 1;
        e[0x10] = 2;
        e[0x12] = 0x3e;
        e[0x14] = 1;
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x34] = 64;
        e[0x36] = 56;
        e[0x38] = 1;
        let ph = 64;
        e[ph] = 1;
        e[ph + 4] = 5; // R+X
        e[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        e[ph + 0x10..ph + 0x18].copy_from_slice(&0x100_0000u64.to_le_bytes());
        e[ph + 0x18..ph + 0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        e[ph + 0x20..ph + 0x28].copy_from_slice(&5u64.to_le_bytes());
        e[ph + 0x28..ph + 0x30].copy_from_slice(&5u64.to_le_bytes());
        e.extend_from_slice(b"\x90\x90\x90\x90\xc3");
        let pages = loaded_pages(&e, |_| true).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(&pages[&0x100_0000][..5], b"\x90\x90\x90\x90\xc3");
        let (d, k, g) = launch_digest(&e, &e).unwrap();
        assert_eq!((k, g), (1, 1));
        // By hand: two NORMAL pages at the same GPA.
        let c: [u8; 48] = Sha384::digest(&pages[&0x100_0000]).into();
        let d1: [u8; 48] =
            Sha384::digest(PageInfo::new([0; 48], c, PageType::Normal, 0x100_0000).as_bytes())
                .into();
        let d2: [u8; 48] =
            Sha384::digest(PageInfo::new(d1, c, PageType::Normal, 0x100_0000).as_bytes()).into();
        assert_eq!(d, d2);
        // Writable segments are not Vigil's measured part.
        e[ph + 4] = 6;
        assert!(loaded_pages(&e, |f| f & PF_W == 0).unwrap().is_empty());
    }

    fn refused_record(seq: u64, reason: u32, acc: u32) -> Vec<u8> {
        let h = event_log::RecordHeader {
            sequence: seq,
            kind: event_log::kind::ACCESS_REFUSED,
            vmpl: 2,
            payload_len: 24,
            result: 0x8000_0001,
            ..Default::default()
        };
        let p = AccessRefusedPayload {
            gpa: 0x1000,
            access: acc,
            reason,
            ..Default::default()
        };
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(p.as_bytes());
        v
    }

    #[test]
    fn each_faulting_probe_needs_its_own_access_refused_record() {
        let mut log = Vec::new();
        for (i, (_, reason, acc)) in FAULTING_PROBES.iter().enumerate() {
            log.extend(refused_record(i as u64, *reason, *acc));
        }
        assert_eq!(check_refused_accesses(&log), Ok(4));
        // Only three records: the VMSA write has none.
        let three = log[..3 * 48].to_vec();
        let e = check_refused_accesses(&three).unwrap_err();
        assert!(e.contains("attack write-own-vmsa"), "{e}");
        // One record cannot stand for two attacks with the same reason.
        let mut dup = refused_record(0, refusal::NOT_VALIDATED, access::READ);
        dup.extend(refused_record(
            1,
            refusal::VIGIL_MEMORY,
            access::READ | access::WRITE,
        ));
        dup.extend(refused_record(2, refusal::VMSA, access::WRITE));
        let e = check_refused_accesses(&dup).unwrap_err();
        assert!(e.contains("attack write-vigil-heap"), "{e}");
        // A log that does not replay is an error, not an empty count.
        assert!(check_refused_accesses(&log[..50]).is_err());
    }
}
