//! The SNP machine model run (issue 9): the model's bare-metal program
//! (`tests/snp-machine`) boots in QEMU with software SVM and runs an IGVM file at VMPL0
//! the way an SNP host would; here the file holds the tests' own SNP program
//! (`tests/snp-probe`). The model's out-of-band record (QEMU's debugcon port, which no
//! guest can reach) is the oracle: its launch digest must equal `vigil-igvm measure` of
//! the same file, the probe must end with its success termination, and the probe's
//! report must verify with `vigil-verify --allow-test-root` with MEASUREMENT equal to
//! that digest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use snp_model::record::Record;

use crate::error::{Result, XtaskError};
use crate::paths::KERNEL_TARGET;
use crate::qemu::{self, Accel};
use crate::steps::Ctx;

/// The probe's steps, in the order it prints `probe-step <name> ok`.
pub const PROBE_STEPS: &[&str] = &[
    "entry",
    "ghcb",
    "vc-cpuid",
    "vc-ioio",
    "pvalidate",
    "vmpl2-vmsa",
    "ap-create",
    "run-vmpl",
    "report",
    "ap-run",
];

/// The termination the probe asks for when every step passed (reason set 1, code 0).
pub const PROBE_SUCCESS: (u8, u8) = (1, 0);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> XtaskError + '_ {
    move |source| XtaskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds one bare-metal binary of the workspace; returns its path.
pub fn build_bare(ctx: &mut Ctx, package: &str) -> Result<PathBuf> {
    let dir = ctx.ws.target.join("vigil-model");
    let d = dir.to_string_lossy().into_owned();
    ctx.cargo(&[
        "build",
        "-p",
        package,
        "--bin",
        package,
        "--target",
        KERNEL_TARGET,
        "--release",
        "--target-dir",
        &d,
    ])?;
    Ok(dir.join(KERNEL_TARGET).join("release").join(package))
}

/// The QEMU arguments of a model run: the project's machine with 1 GiB (the model
/// keeps the guest's memory and its own tables), two CPUs, the model as `-kernel`, the
/// IGVM file as its module, and the record on the debugcon port.
pub fn qemu_args(model: &Path, igvm: &Path, record: &Path) -> Vec<String> {
    let mut a = qemu::machine_args(Accel::Tcg);
    if let Some(i) = a.iter().position(|s| s == "256M") {
        a[i] = "1G".into();
    }
    // Guests of the model put the C-bit (51) in their page tables: QEMU accepts that bit
    // only with 52 physical-address bits (measured, docs/snp-model.md).
    if let Some(i) = a.iter().position(|s| s == "max") {
        a[i] = "max,phys-bits=52".into();
    }
    for s in [
        "-smp",
        "2",
        "-kernel",
        &model.to_string_lossy(),
        "-initrd",
        &igvm.to_string_lossy(),
        "-debugcon",
        &format!("file:{}", record.display()),
    ] {
        a.push(s.to_string());
    }
    a
}

/// What one model run printed and recorded.
pub struct ModelRun {
    /// COM1 lines (the model's log and the guest's console through the GHCB).
    pub lines: Vec<String>,
    /// QEMU's exit status.
    pub status: Option<i32>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// The record's text.
    pub record: String,
}

/// Runs QEMU with the model and `igvm`.
pub fn run_model(ctx: &mut Ctx, model: &Path, igvm: &Path, timeout: Duration) -> Result<ModelRun> {
    let q = ctx.qemu()?;
    let out = ctx.ws.target.join("vigil-model-run");
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let record = out.join("record.txt");
    let _ = std::fs::remove_file(&record);
    let p = qemu::run(&q, &qemu_args(model, igvm, &record), timeout, |_, _, _| {})?;
    let record = std::fs::read_to_string(&record).unwrap_or_default();
    Ok(ModelRun {
        lines: p.lines,
        status: p.status,
        timed_out: p.timed_out,
        elapsed: p.elapsed,
        record,
    })
}

/// The probe's `probe-step` lines: (name, ok, detail).
pub fn probe_steps(lines: &[String]) -> Vec<(String, bool, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("probe-step "))
        .map(|rest| {
            let mut w = rest.splitn(3, ' ');
            let name = w.next().unwrap_or("").to_string();
            let ok = w.next() == Some("ok");
            (name, ok, w.next().unwrap_or("").to_string())
        })
        .collect()
}

/// The report between `probe-report-begin` and `probe-report-end`, as hex lines.
pub fn probe_report(lines: &[String]) -> std::result::Result<Vec<u8>, String> {
    let start = lines
        .iter()
        .position(|l| l.trim() == "probe-report-begin")
        .ok_or("no probe-report-begin line")?;
    let mut hexs = String::new();
    for l in &lines[start + 1..] {
        if l.trim() == "probe-report-end" {
            return decode_hex(&hexs);
        }
        hexs.push_str(l.trim());
    }
    Err("no probe-report-end line".into())
}

fn decode_hex(s: &str) -> std::result::Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("report: odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| format!("report: not hex at digit {i}: {:?}", &s[i..i + 2]))
        })
        .collect()
}

/// Judges a run against the expected digest: returns a summary or what is wrong.
pub fn judge(run: &ModelRun, digest_hex: &str) -> std::result::Result<String, String> {
    let tail = || run.lines[run.lines.len().saturating_sub(12)..].join("\n");
    if run.timed_out {
        return Err(format!(
            "model run killed after the timeout; last lines:\n{}",
            tail()
        ));
    }
    let rec = Record::parse(&run.record).map_err(|e| {
        format!(
            "the model's record, line {}: {} (record:\n{})",
            e.line, e.what, run.record
        )
    })?;
    let got = rec
        .launch_digest
        .map(|d| hex(&d))
        .ok_or("the model's record has no launch digest")?;
    if got != digest_hex {
        return Err(format!(
            "launch digest: the model measured {got}, vigil-igvm measure says {digest_hex}"
        ));
    }
    let steps = probe_steps(&run.lines);
    let failed: Vec<String> = steps
        .iter()
        .filter(|s| !s.1)
        .map(|s| format!("{} ({})", s.0, s.2))
        .collect();
    if !failed.is_empty() {
        return Err(format!("probe steps failed: {}", failed.join(", ")));
    }
    let missing: Vec<&str> = PROBE_STEPS
        .iter()
        .filter(|n| !steps.iter().any(|s| s.0 == **n))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "probe steps missing: {}; last lines:\n{}",
            missing.join(", "),
            tail()
        ));
    }
    let term = rec
        .terminations
        .first()
        .ok_or_else(|| format!("the record has no termination; last lines:\n{}", tail()))?;
    if (term.set, term.code) != PROBE_SUCCESS {
        return Err(format!(
            "the probe terminated with set {} code {} (want {} {})",
            term.set, term.code, PROBE_SUCCESS.0, PROBE_SUCCESS.1
        ));
    }
    // The model ends QEMU with 39 when the vCPU stopped (here: the termination
    // request), docs/snp-model.md "The bare-metal machine".
    if run.status != Some(39) {
        return Err(format!(
            "QEMU exited with {:?}, want 39 (the model stopped on the probe's termination); last lines:\n{}",
            run.status,
            tail()
        ));
    }
    let exits: u64 = rec.exits.values().sum();
    Ok(format!(
        "launch digest {}... equals vigil-igvm measure; {} probe steps ok; {exits} exits, {} RMP faults; {:.2} s",
        &got[..16],
        steps.len(),
        rec.faults_total,
        run.elapsed.as_secs_f64()
    ))
}

fn tool(ctx: &mut Ctx, package: &str, bin: &str) -> Result<PathBuf> {
    ctx.cargo(&["build", "-p", package, "--bin", bin])?;
    Ok(ctx.ws.target.join("debug").join(bin))
}

fn run_tool(bin: &Path, args: &[&str]) -> Result<(i32, String)> {
    let o = Command::new(bin)
        .args(args)
        .output()
        .map_err(|source| XtaskError::Spawn {
            program: bin.to_string_lossy().into_owned(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    Ok((o.status.code().unwrap_or(-1), text))
}

/// What the report binds besides itself, for `vigil-verify --nonce --manifest
/// [--event-log]`.
pub struct Bound<'a> {
    /// The guest's nonce.
    pub nonce: &'a [u8],
    /// The services manifest.
    pub manifest: &'a [u8],
    /// The event log, when the evidence carries it.
    pub event_log: Option<&'a [u8]>,
}

/// The evidence the test guest prints on SNP after its `attest` step: the frame of
/// `svsm_abi::evidence` read by e2e's reader, with a 1184-byte report, a manifest and a
/// 64-byte nonce (the event log if there is one) and no certificates (the model signs
/// with the TEST chain, which xtask supplies).
pub fn snp_evidence(lines: &[String]) -> std::result::Result<crate::e2e::Parts, String> {
    let rec = crate::e2e::extract_record(lines)?;
    let p = crate::e2e::split_record(&rec).map_err(|e| format!("evidence record: {e}"))?;
    match (&p.report, &p.manifest, &p.nonce) {
        (Some(r), Some(_), Some(n)) if r.len() == 0x4a0 && n.len() == 64 => {}
        (Some(r), Some(_), Some(n)) => {
            return Err(format!(
                "evidence record: report {} bytes (want 1184), nonce {} bytes (want 64)",
                r.len(),
                n.len()
            ))
        }
        _ => return Err("evidence record lacks the report, manifest or nonce".into()),
    }
    if !p.certs.is_empty() {
        return Err(
            "evidence record carries certificates: on SNP the verifier gets the TEST chain from xtask"
                .into(),
        );
    }
    Ok(p)
}

/// Verifies a report with vigil-verify against `vigil-igvm refs` of the same file and
/// the TEST chain (with what it binds, if given), then a copy with one MEASUREMENT bit
/// flipped, which must be refused.
fn verify_report(
    ctx: &mut Ctx,
    report: &[u8],
    bound: Option<&Bound<'_>>,
    igvm: &Path,
    igvm_tool: &Path,
    out: &Path,
) -> Result<String> {
    let verify = tool(ctx, "attestation", "vigil-verify")?;
    let (code, refs) = run_tool(igvm_tool, &["refs", &igvm.to_string_lossy()])?;
    if code != 0 {
        return Err(XtaskError::Check(format!(
            "vigil-igvm refs: exit {code}: {refs}"
        )));
    }
    let refs_p = out.join("refs.json");
    std::fs::write(&refs_p, refs).map_err(io(&refs_p))?;
    let certs = out.join("certs");
    std::fs::create_dir_all(&certs).map_err(io(&certs))?;
    let root = ctx
        .ws
        .root
        .join("attestation")
        .join("testdata")
        .join("test-root");
    for n in ["ark.pem", "ask.pem", "vcek.pem"] {
        let from = root.join(n);
        std::fs::copy(&from, certs.join(n)).map_err(io(&from))?;
    }
    let mut args: Vec<String> = vec![
        "--certs".into(),
        certs.to_string_lossy().into_owned(),
        "--refs".into(),
        refs_p.to_string_lossy().into_owned(),
    ];
    if let Some(b) = bound {
        let m = out.join("manifest.bin");
        std::fs::write(&m, b.manifest).map_err(io(&m))?;
        args.extend([
            "--nonce".into(),
            hex(b.nonce),
            "--manifest".into(),
            m.to_string_lossy().into_owned(),
        ]);
        if let Some(log) = b.event_log {
            let l = out.join("event-log.bin");
            std::fs::write(&l, log).map_err(io(&l))?;
            args.extend(["--event-log".into(), l.to_string_lossy().into_owned()]);
        }
    }
    args.extend(["--allow-test-root".into(), "--offline".into()]);
    let check = |report_p: &Path| -> Result<(i32, String)> {
        let mut a: Vec<&str> = vec![report_p.to_str().unwrap_or_default()];
        a.extend(args.iter().map(String::as_str));
        run_tool(&verify, &a)
    };
    let good = out.join("report.bin");
    std::fs::write(&good, report).map_err(io(&good))?;
    println!("    $ vigil-verify {} {}", good.display(), args.join(" "));
    let (code, text) = check(&good)?;
    for l in text.lines() {
        println!("    > {l}");
    }
    if code != 0 {
        return Err(XtaskError::Check(format!(
            "vigil-verify refused the report (exit {code})"
        )));
    }
    let mut bad = report.to_vec();
    if let Some(b) = bad.get_mut(0x90) {
        *b ^= 1;
    }
    let bad_p = out.join("report-tampered.bin");
    std::fs::write(&bad_p, &bad).map_err(io(&bad_p))?;
    let (code, _) = check(&bad_p)?;
    if code != 1 {
        return Err(XtaskError::Check(format!(
            "vigil-verify did not refuse a report with a flipped MEASUREMENT bit (exit {code})"
        )));
    }
    Ok(if bound.is_some() {
        "evidence verified against vigil-igvm refs (report, nonce, manifest; a tampered copy refused)".into()
    } else {
        "report verified against vigil-igvm refs (a tampered copy refused)".into()
    })
}

/// Packages `kernel` with `guest` as an SNP IGVM file with vigil-igvm; returns
/// `vigil-igvm measure`'s digest of it.
fn package(igvm_tool: &Path, kernel: &Path, guest: &Path, igvm: &Path) -> Result<String> {
    let (code, text) = run_tool(
        igvm_tool,
        &[
            "build",
            "--kernel",
            &kernel.to_string_lossy(),
            "--firmware",
            &guest.to_string_lossy(),
            "--platforms",
            "snp",
            "-o",
            &igvm.to_string_lossy(),
        ],
    )?;
    if code != 0 {
        return Err(XtaskError::Check(format!(
            "vigil-igvm build: exit {code}: {text}"
        )));
    }
    let (code, digest) = run_tool(igvm_tool, &["measure", &igvm.to_string_lossy()])?;
    // stdout's first line is the digest; stderr (appended) describes it.
    let digest = digest.lines().next().unwrap_or("").trim().to_string();
    if code != 0 || digest.len() != 96 {
        return Err(XtaskError::Check(format!(
            "vigil-igvm measure: exit {code}: {digest}"
        )));
    }
    Ok(digest)
}

/// The start of the line Vigil prints after its boot report (svsm/kernel/src/snp/boot.rs).
pub const BOOT_REPORT_MARKER: &str = "vigil: boot report through the monitor's VMPCK0 channel:";

/// The MEASUREMENT (lowercase hex) of Vigil's boot report line, if there is one.
pub fn boot_report_measurement(lines: &[String]) -> Option<String> {
    let l = lines.iter().find(|l| l.contains(BOOT_REPORT_MARKER))?;
    let m = l.split("measurement ").nth(1)?.trim();
    (m.len() == 96 && m.bytes().all(|b| b.is_ascii_hexdigit())).then(|| m.to_ascii_lowercase())
}

/// Judges Vigil's run in the model: the digest, the banner over the GHCB console, the
/// boot report (the security processor's MEASUREMENT, asked by the monitor over
/// VMPCK0, equals the launch digest), the test guest's steps and attacks at VMPL2 as
/// SNP allows them today (`e2e::ON_SNP`), no termination request and no stopped vCPU,
/// and QEMU's exit with the guest's success value.
pub fn judge_vigil(run: &ModelRun, digest_hex: &str) -> std::result::Result<String, String> {
    let tail = || run.lines[run.lines.len().saturating_sub(12)..].join("\n");
    if run.timed_out {
        return Err(format!(
            "model run killed after the timeout; last lines:\n{}",
            tail()
        ));
    }
    let rec = Record::parse(&run.record)
        .map_err(|e| format!("the model's record, line {}: {}", e.line, e.what))?;
    let got = rec.launch_digest.map(|d| hex(&d)).unwrap_or_default();
    if got != digest_hex {
        return Err(format!(
            "launch digest: the model measured {got:?}, vigil-igvm measure says {digest_hex}"
        ));
    }
    if !run
        .lines
        .iter()
        .any(|l| l.contains(crate::qemu::BANNER_MARKER))
    {
        return Err(format!(
            "Vigil's banner never reached COM1 through the GHCB; last lines:\n{}",
            tail()
        ));
    }
    let measured = boot_report_measurement(&run.lines).ok_or_else(|| {
        format!(
            "no '{BOOT_REPORT_MARKER} ... measurement <96 hex digits>' line from Vigil; last lines:\n{}",
            tail()
        )
    })?;
    if measured != digest_hex {
        return Err(format!(
            "Vigil's boot report has MEASUREMENT {measured}, the launch digest is {digest_hex}"
        ));
    }
    let guest = crate::e2e::parse_guest(&run.lines);
    crate::e2e::judge_guest(&guest, &crate::e2e::ON_SNP)
        .map_err(|e| format!("the test guest on SNP: {e}; last lines:\n{}", tail()))?;
    if let Some(t) = rec.terminations.first() {
        return Err(format!(
            "a termination request (vCPU {} VMPL{} set {} code {:#x}); last lines:\n{}",
            t.vcpu,
            t.vmpl,
            t.set,
            t.code,
            tail()
        ));
    }
    // The test guest parks its AP after the AP's call with AP reset hold, as Linux
    // parks an offline AP on SNP (`sev_es_play_dead`); the model counts that as a
    // stop. Any other stop, and any stop of the boot vCPU, fails.
    let stops: Vec<_> = rec
        .stops
        .iter()
        .filter(|((vcpu, reason), _)| *vcpu == 0 || reason != "ap-reset-hold")
        .collect();
    if !stops.is_empty() {
        return Err(format!("vCPUs stopped: {stops:?}; last lines:\n{}", tail()));
    }
    if run.status != Some(crate::qemu::STATUS_SUCCESS) {
        return Err(format!(
            "QEMU exited with {:?}, want {} (the guest's 0x10 at isa-debug-exit); last lines:\n{}",
            run.status,
            crate::qemu::STATUS_SUCCESS,
            tail()
        ));
    }
    let exits: u64 = rec.exits.values().sum();
    let (p, _, k) = guest.summary.unwrap_or_default();
    Ok(format!(
        "Vigil's IGVM file in the model: digest equals vigil-igvm measure, banner over the GHCB, the monitor's boot report over VMPCK0 carries that digest; the test guest at VMPL2 served by the monitor: {p} passed, 0 failed, {k} skipped, ended with its 0x10; {exits} exits, {} RMP faults, {:.2} s",
        rec.faults_total,
        run.elapsed.as_secs_f64()
    ))
}

/// The step `model-vigil`: Vigil's own IGVM file (kernel + test guest) in the model.
pub fn step_model_vigil(ctx: &mut Ctx) -> Result<String> {
    println!();
    let model = build_bare(ctx, "snp-machine")?;
    let (kernel, _, _) = crate::steps::build_kernel(ctx, crate::paths::Flavour::Release)?;
    let guest = crate::e2e::build_guest(ctx)?;
    let igvm_tool = tool(ctx, "vigil-igvm", "vigil-igvm")?;
    let out = ctx.ws.target.join("vigil-model-run");
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let igvm = out.join("vigil.igvm");
    let digest = package(&igvm_tool, &kernel, &guest, &igvm)?;
    println!(
        "    Vigil IGVM {} (vigil-igvm measure: {digest})",
        igvm.display()
    );
    let run = run_model(ctx, &model, &igvm, Duration::from_secs(180))?;
    for l in shown_lines(&run.lines).take(60) {
        println!("    | {l}");
    }
    let summary = judge_vigil(&run, &digest).map_err(XtaskError::Check)?;
    let ev = snp_evidence(&run.lines)
        .map_err(|e| XtaskError::Check(format!("the test guest's evidence on SNP: {e}")))?;
    let (Some(report), Some(manifest), Some(nonce)) = (&ev.report, &ev.manifest, &ev.nonce) else {
        return Err(XtaskError::Check("evidence record incomplete".into()));
    };
    let dir = out.join("evidence");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let bound = Bound {
        nonce,
        manifest,
        event_log: ev.log.as_deref(),
    };
    let verified = verify_report(ctx, report, Some(&bound), &igvm, &igvm_tool, &dir)?;
    Ok(format!("{summary}; {verified}"))
}

/// The lines of a run worth echoing: not the model's own (`[`), the evidence frame's
/// base64 hidden behind its first line.
pub fn shown_lines(lines: &[String]) -> impl Iterator<Item = &String> {
    let mut in_frame = false;
    lines.iter().filter(move |l| {
        if l.starts_with(svsm_abi::evidence::FRAME_BEGIN) {
            in_frame = true;
            return true;
        }
        if in_frame {
            in_frame = l.as_str() != svsm_abi::evidence::FRAME_END;
            return false;
        }
        !l.starts_with('[')
    })
}

/// The step: build the model, the probe and the test guest, package the probe as an
/// IGVM file, run it in the model, and judge the record and the report.
pub fn step_model(ctx: &mut Ctx) -> Result<String> {
    println!();
    let model = build_bare(ctx, "snp-machine")?;
    let probe = build_bare(ctx, "snp-probe")?;
    let guest = crate::e2e::build_guest(ctx)?;
    let igvm_tool = tool(ctx, "vigil-igvm", "vigil-igvm")?;
    let out = ctx.ws.target.join("vigil-model-run");
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let igvm = out.join("probe.igvm");
    let digest = package(&igvm_tool, &probe, &guest, &igvm)?;
    println!(
        "    probe IGVM {} (vigil-igvm measure: {digest})",
        igvm.display()
    );
    let run = run_model(ctx, &model, &igvm, Duration::from_secs(180))?;
    for l in run.lines.iter().filter(|l| l.starts_with("probe-step")) {
        println!("    | {l}");
    }
    let summary = judge(&run, &digest).map_err(XtaskError::Check)?;
    let report = probe_report(&run.lines).map_err(XtaskError::Check)?;
    let verified = verify_report(ctx, &report, None, &igvm, &igvm_tool, &out)?;
    Ok(format!("{summary}; {verified}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn probe_lines_are_read_with_their_verdicts() {
        let l = lines("x\nprobe-step cpuid ok leaf 0\nprobe-step ghcb fail no answer\n");
        let s = probe_steps(&l);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], ("cpuid".into(), true, "leaf 0".into()));
        assert_eq!(s[1], ("ghcb".into(), false, "no answer".into()));
    }

    #[test]
    fn report_frame_is_decoded_and_a_broken_one_named() {
        let l = lines("probe-report-begin\n0a0b\nff\nprobe-report-end");
        assert_eq!(probe_report(&l), Ok(vec![0x0a, 0x0b, 0xff]));
        assert!(probe_report(&lines("probe-report-begin\n0a")).is_err());
        assert!(
            probe_report(&lines("probe-report-begin\nzz\nprobe-report-end"))
                .unwrap_err()
                .contains("not hex")
        );
    }

    #[test]
    fn a_digest_that_differs_fails_the_run() {
        let run = ModelRun {
            lines: PROBE_STEPS
                .iter()
                .map(|n| format!("probe-step {n} ok"))
                .collect(),
            status: Some(39),
            timed_out: false,
            elapsed: Duration::from_secs(1),
            record: format!(
                "launch digest={}\nrmp-faults total=0\nterminate vcpu=0 vmpl=0 set=1 code=0\n",
                "ab".repeat(48)
            ),
        };
        assert!(judge(&run, &"ab".repeat(48)).is_ok());
        let e = judge(&run, &"cd".repeat(48)).unwrap_err();
        assert!(e.contains("launch digest"), "{e}");
        // A step missing, a step failed, or another termination: refused by name.
        let mut short = run.lines.clone();
        short.retain(|l| l != "probe-step report ok");
        let e = judge(
            &ModelRun {
                lines: short,
                ..clone(&run)
            },
            &"ab".repeat(48),
        )
        .unwrap_err();
        assert!(e.contains("missing: report"), "{e}");
        let mut failed = run.lines.clone();
        failed[0] = "probe-step entry fail no C-bit".into();
        let e = judge(
            &ModelRun {
                lines: failed,
                ..clone(&run)
            },
            &"ab".repeat(48),
        )
        .unwrap_err();
        assert!(e.contains("entry (no C-bit)"), "{e}");
        let other = ModelRun {
            record: run.record.replace("code=0", "code=3"),
            ..clone(&run)
        };
        let e = judge(&other, &"ab".repeat(48)).unwrap_err();
        assert!(e.contains("code 3"), "{e}");
    }

    /// A guest run as SNP allows it today: every step ok but the skippable ones.
    fn snp_guest_lines() -> Vec<String> {
        let e = crate::e2e::ON_SNP;
        let mut v = Vec::new();
        let (mut p, mut k) = (0, 0);
        for st in e.steps.iter().chain(e.extra_steps) {
            if e.may_skip.contains(st) {
                v.push(format!("guest: {st} ... skipped on SNP (why)"));
                k += 1;
            } else {
                v.push(format!("guest: {st} ... ok"));
                p += 1;
            }
        }
        for a in e.attacks {
            let name = format!("attack {a}");
            if e.may_skip.contains(&name.as_str()) {
                v.push(format!("guest: {name} ... skipped on SNP (why)"));
                k += 1;
            } else {
                v.push(format!("guest: {name} ... refused (INVALID_ADDRESS)"));
                p += 1;
            }
        }
        v.push(format!("guest: {p} passed, 0 failed, {k} skipped"));
        v
    }

    #[test]
    fn vigils_run_needs_the_boot_report_and_the_guests_run() {
        let d = "ab".repeat(48);
        let mut l = vec![
            format!("{} v1", crate::qemu::BANNER_MARKER),
            format!("{BOOT_REPORT_MARKER} version 5, measurement {d}"),
        ];
        l.extend(snp_guest_lines());
        let run = ModelRun {
            lines: l,
            status: Some(33),
            timed_out: false,
            elapsed: Duration::from_secs(1),
            record: format!("launch digest={d}\nrmp-faults total=0\n"),
        };
        assert!(judge_vigil(&run, &d).is_ok(), "{:?}", judge_vigil(&run, &d));
        // Another MEASUREMENT, or no boot report line.
        let mut other = clone(&run);
        other.lines[1] = format!(
            "{BOOT_REPORT_MARKER} version 5, measurement {}",
            "cd".repeat(48)
        );
        let e = judge_vigil(&other, &d).unwrap_err();
        assert!(e.contains("boot report has MEASUREMENT"), "{e}");
        let mut none = clone(&run);
        none.lines.remove(1);
        let e = judge_vigil(&none, &d).unwrap_err();
        assert!(e.contains(BOOT_REPORT_MARKER), "{e}");
        let short = vec![format!("{BOOT_REPORT_MARKER} version 5, measurement abcd")];
        assert_eq!(boot_report_measurement(&short), None);
        // A failed guest step, a termination request, a stopped vCPU, another exit.
        let mut failed = clone(&run);
        let i = failed
            .lines
            .iter()
            .position(|x| x == "guest: remap-ca ... ok")
            .unwrap();
        failed.lines[i] = "guest: remap-ca ... FAILED (x)".into();
        let e = judge_vigil(&failed, &d).unwrap_err();
        assert!(e.contains("remap-ca: FAILED"), "{e}");
        let term = ModelRun {
            record: run.record.clone() + "terminate vcpu=0 vmpl=0 set=1 code=19\n",
            ..clone(&run)
        };
        let e = judge_vigil(&term, &d).unwrap_err();
        assert!(e.contains("termination request"), "{e}");
        let stop = ModelRun {
            record: run.record.clone() + "stop vcpu=1 reason=halted count=1\n",
            ..clone(&run)
        };
        let e = judge_vigil(&stop, &d).unwrap_err();
        assert!(e.contains("vCPUs stopped"), "{e}");
        // The guest's AP parking with AP reset hold passes; the boot vCPU's does not.
        let parked = ModelRun {
            record: run.record.clone() + "stop vcpu=1 reason=ap-reset-hold count=3\n",
            ..clone(&run)
        };
        assert!(judge_vigil(&parked, &d).is_ok());
        let boot_held = ModelRun {
            record: run.record.clone() + "stop vcpu=0 reason=ap-reset-hold count=1\n",
            ..clone(&run)
        };
        let e = judge_vigil(&boot_held, &d).unwrap_err();
        assert!(e.contains("vCPUs stopped"), "{e}");
        let status = ModelRun {
            status: Some(35),
            ..clone(&run)
        };
        let e = judge_vigil(&status, &d).unwrap_err();
        assert!(e.contains("QEMU exited with Some(35)"), "{e}");
    }

    fn clone(r: &ModelRun) -> ModelRun {
        ModelRun {
            lines: r.lines.clone(),
            status: r.status,
            timed_out: r.timed_out,
            elapsed: r.elapsed,
            record: r.record.clone(),
        }
    }

    /// A frame as a guest prints it: svsm_abi's record, base64 in lines of 76.
    fn frame(items: &[(u16, &[u8])]) -> Vec<String> {
        use base64::Engine;
        use sha2::Digest;
        use svsm_abi::evidence as ev;
        let mut rec = vec![0u8; ev::encoded_len(items.iter().map(|(_, b)| b.len()))];
        let n = ev::encode(items, &mut rec).unwrap();
        rec.truncate(n);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&rec);
        let mut l = vec![format!(
            "{} {} {}",
            ev::FRAME_BEGIN,
            n,
            hex(&sha2::Sha256::digest(&rec))
        )];
        l.extend(
            b64.as_bytes()
                .chunks(ev::B64_LINE)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
        l.push(ev::FRAME_END.into());
        l
    }

    #[test]
    fn the_guests_snp_evidence_is_read_from_its_frame() {
        use svsm_abi::evidence::item;
        let report = [3u8; 0x4a0];
        let mut l = lines("guest: ok attest\nguest:   report 1184 bytes");
        l.extend(frame(&[
            (item::REPORT, &report),
            (item::MANIFEST, b"manifest"),
            (item::NONCE, &[9u8; 64]),
        ]));
        l.push("guest: 30 passed, 0 failed, 9 skipped".into());
        let p = snp_evidence(&l).unwrap();
        assert_eq!(p.report.as_deref(), Some(&report[..]));
        assert_eq!(p.manifest.as_deref(), Some(&b"manifest"[..]));
        assert_eq!(p.nonce.as_deref(), Some(&[9u8; 64][..]));
        assert!(p.log.is_none());
        // The echo shows the frame's first line, not its base64.
        let shown: Vec<&String> = shown_lines(&l).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown[2].starts_with(svsm_abi::evidence::FRAME_BEGIN));
        assert_eq!(shown[3], "guest: 30 passed, 0 failed, 9 skipped");
    }

    #[test]
    fn snp_evidence_that_is_missing_short_or_has_certs_is_named() {
        use svsm_abi::evidence::item;
        let e = snp_evidence(&lines("guest: ok attest")).unwrap_err();
        assert!(e.contains("no evidence frame"), "{e}");
        let e = snp_evidence(&frame(&[
            (item::REPORT, &[0u8; 0x4a0]),
            (item::NONCE, &[0u8; 64]),
        ]))
        .unwrap_err();
        assert!(e.contains("lacks the report, manifest or nonce"), "{e}");
        let e = snp_evidence(&frame(&[
            (item::REPORT, &[0u8; 100]),
            (item::MANIFEST, b"m"),
            (item::NONCE, &[0u8; 64]),
        ]))
        .unwrap_err();
        assert!(e.contains("report 100 bytes"), "{e}");
        let e = snp_evidence(&frame(&[
            (item::REPORT, &[0u8; 0x4a0]),
            (item::ARK_PEM, b"pem"),
            (item::MANIFEST, b"m"),
            (item::NONCE, &[0u8; 64]),
        ]))
        .unwrap_err();
        assert!(e.contains("carries certificates"), "{e}");
        // Transport damage: a base64 line changed.
        let mut l = frame(&[
            (item::REPORT, &[0u8; 0x4a0]),
            (item::MANIFEST, b"m"),
            (item::NONCE, &[0u8; 64]),
        ]);
        l[2] = l[2].replacen('A', "B", 1);
        let e = snp_evidence(&l).unwrap_err();
        assert!(e.contains("SHA-256"), "{e}");
    }
}
