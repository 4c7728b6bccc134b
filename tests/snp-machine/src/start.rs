//! Boot: PVH entry, console, descriptor tables, heap from the memory map, the IGVM file,
//! SVM, then the run.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use bare::boot::pvh::{self, BootInfo, MemKind};
use bare::boot::{BootMapReader, BOOT_MAP_END};
use bare::console::serial::Serial;
use bare::exit::qemu_exit;
use bare::heap::BareHeap;
use log::{error, info, LevelFilter};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::layout::choose_heap;
use crate::run::{run_machine, End, Settings, EXIT_STOPPED};
use crate::svm_cpu::SvmCpu;
use crate::{demo, layout};

/// isa-debug-exit value: a hand-made guest ended as expected (QEMU status 33).
pub const EXIT_OK: u32 = 0x10;
/// isa-debug-exit value: the run could not start or a hand-made guest failed (QEMU
/// status 35).
pub const EXIT_FAILED: u32 = 0x11;
/// isa-debug-exit value: panic or exception in the model (QEMU status 37).
pub const EXIT_FATAL: u32 = bare::cpu::exceptions::FATAL_EXIT;

#[global_allocator]
static HEAP: BareHeap = BareHeap::empty();

bare::pvh_entry!(machine_main, 256 * 1024);

extern "C" {
    static __image_end: u8;
}

#[panic_handler]
fn panic(p: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Serial, "snp-machine: panic: {p}");
    qemu_exit(EXIT_FATAL)
}

/// Ends the run with a message on COM1.
fn fail(what: core::fmt::Arguments<'_>) -> ! {
    error!("{what}");
    qemu_exit(EXIT_FAILED)
}

/// A page-sized, page-aligned block: guest memory and the host save area are made of
/// them.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);

extern "C" fn machine_main(start_info: u64) -> ! {
    bare::console::serial::init();
    bare::console::logger::init(LevelFilter::Info);
    // SAFETY: boot CPU, interrupts off (PVH entry), first and only call.
    unsafe { bare::cpu::init() };
    let info = pvh::parse(&BootMapReader, start_info)
        .unwrap_or_else(|e| fail(format_args!("boot information refused: {e}")));
    if let Some(level) = info
        .option("log")
        .and_then(bare::console::logger::parse_level)
    {
        log::set_max_level(level);
    }
    info!("snp-machine: SEV-SNP machine model, software SVM");
    setup_heap(&info);
    let igvm = copy_module(&info);
    info!("IGVM file: {} bytes (PVH module 0)", igvm.len());
    enable_svm();
    match info.option("probe") {
        Some("cbit") => run_cbit_probe(),
        Some("demo") => run_demo(),
        Some("fault") => fault(),
        _ => launch_and_run(&info, &igvm),
    }
}

/// The model proper: launch the IGVM file, run vCPU 0, write the record to debugcon.
fn launch_and_run(info: &BootInfo, igvm: &[u8]) -> ! {
    let settings = Settings::from_options(info.option("mem"), info.option("vcpus"));
    info!(
        "guest: {} MiB, {} vCPU(s)",
        settings.memory >> 20,
        settings.vcpus
    );
    let tsc_hz = bare::cpu::tsc::hz();
    info!("TSC: {tsc_hz:?} Hz");
    let (record, end) =
        run_machine(igvm, settings, tsc_hz).unwrap_or_else(|e| fail(format_args!("{e}")));
    bare::console::debugcon::write_bytes(record.as_bytes());
    let (used, free) = HEAP.usage();
    info!("heap: {} KiB used, {} KiB free", used >> 10, free >> 10);
    match end {
        End::DebugExit(v) => {
            info!("the guest wrote {v:#x} to isa-debug-exit");
            qemu_exit(v)
        }
        End::Stopped(stop) => {
            info!("vCPU 0 stopped: {} ({stop:?})", stop.reason());
            qemu_exit(EXIT_STOPPED)
        }
    }
}

fn setup_heap(info: &BootInfo) {
    let mut ranges: [layout::Range; pvh::MAX_MEMMAP_ENTRIES] = [(0, 0); pvh::MAX_MEMMAP_ENTRIES];
    let mut n = 0;
    for r in info.memory_map().iter().filter(|r| r.kind == MemKind::Ram) {
        ranges[n] = (r.start, r.end);
        n += 1;
    }
    let mut holes = [(0u64, 0u64); pvh::MAX_MODULES];
    for (h, m) in holes.iter_mut().zip(info.modules()) {
        *h = (m.start, m.end);
    }
    let image_end = &raw const __image_end as u64;
    let Some((start, end)) = choose_heap(
        &ranges[..n],
        image_end,
        BOOT_MAP_END,
        &holes[..info.modules().len()],
    ) else {
        fail(format_args!("no RAM for the heap above {image_end:#x}"))
    };
    // SAFETY: `[start, end)` is RAM from the memory map, above the model's image (so no
    // code, data, stack or bootstrap table is in it), below BOOT_MAP_END (identity mapped
    // read+write by the entry) and clear of every boot module; nothing else uses it.
    if let Err(e) = unsafe { HEAP.init(start, end - start) } {
        fail(format_args!("heap: {e:?}"));
    }
    info!("heap {start:#x}..{end:#x} ({} MiB)", (end - start) >> 20);
}

/// Copies module 0 (the IGVM file) into the heap.
fn copy_module(info: &BootInfo) -> Vec<u8> {
    let Some(m) = info.modules().first() else {
        fail(format_args!(
            "no boot module: start QEMU with -initrd <file.igvm>"
        ))
    };
    if m.start == 0 || m.end > BOOT_MAP_END {
        fail(format_args!(
            "module 0 at {:#x}..{:#x} is not mapped",
            m.start, m.end
        ));
    }
    let len = (m.end - m.start) as usize;
    // SAFETY: the module lies inside the bootstrap identity map (checked above), QEMU's
    // loader wrote it before the entry ran, and the heap was placed clear of it, so
    // nothing writes these bytes while they are read here.
    let bytes = unsafe { core::slice::from_raw_parts(m.start as *const u8, len) };
    bytes.to_vec()
}

fn enable_svm() {
    // CPUID Fn8000_0001_ECX bit 2 = SVM (APM vol. 3, appendix E).
    let ecx = core::arch::x86_64::__cpuid(0x8000_0001).ecx;
    if ecx & (1 << 2) == 0 {
        fail(format_args!(
            "CPUID reports no SVM: start QEMU with -cpu EPYC-Milan,+svm"
        ));
    }
    let hsave: &'static mut Page = Box::leak(Box::new(Page([0; 4096])));
    let hsave_pa = hsave as *mut Page as u64;
    // SAFETY: CPUID reports SVM (checked above); the page is leaked, so the model owns it
    // for the rest of the run and nothing else uses it.
    if let Err(e) = unsafe { bare::svm::enable(hsave_pa) } {
        fail(format_args!("SVM: {e:?}"));
    }
    info!("SVM on, host save area {hsave_pa:#x}");
}

/// Guest memory for the hand-made guests: 2 MiB, page aligned.
fn small_guest() -> (Vec<Page>, SvmCpu) {
    const SIZE: usize = 2 << 20;
    let mem = vec![Page([0; 4096]); SIZE / 4096];
    let base = mem.as_ptr() as u64;
    (mem, SvmCpu::new(base, SIZE as u64))
}

/// The C-bit probe (`-append probe=cbit`): reports, ends with status 33 when the guest
/// reached HLT through a C-bit mapping, 35 otherwise.
fn run_cbit_probe() -> ! {
    let phys_bits = core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff;
    info!("cbit probe: CPUID 0x80000008 EAX[7:0] (phys-bits) = {phys_bits}");
    let (mut mem, mut cpu) = small_guest();
    let seen = crate::cbit_probe::run(&mut cpu, mem.as_mut_bytes());
    let c_seen = seen
        .iter()
        .any(|e| e.code == bare::svm::vmcb::exit::NPF && e.info2 & crate::cbit_probe::C_BIT != 0);
    info!("cbit probe: an NPF carried the C-bit in EXITINFO2: {c_seen}");
    if seen.last().map(|e| e.code) == Some(bare::svm::vmcb::exit::HLT) {
        info!("cbit probe: the guest ran through a PTE with bit 51 set and reached HLT");
        qemu_exit(EXIT_OK)
    }
    fail(format_args!("cbit probe: the guest did not reach HLT"))
}

/// `-append probe=fault`: an invalid opcode in the model itself, to show that an
/// exception is reported on COM1 and ends the run with status 37.
fn fault() -> ! {
    info!("probe=fault: executing UD2");
    // SAFETY: UD2 raises #UD, whose handler (`bare::cpu::exceptions`) reports it and
    // ends the run; no state is touched.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    fail(format_args!("UD2 returned"))
}

/// The hand-made guest (`-append probe=demo`): proves the SVM loop without the machine.
/// Its record (debugcon) is the bench's baseline: the TSC frequency, `mark
/// name=first-entry` just before its first VMRUN, `mark name=last-exit` after its last
/// exit, and its exits.
fn run_demo() -> ! {
    let (mut mem, mut cpu) = small_guest();
    let tsc_hz = bare::cpu::tsc::hz();
    let first = bare::svm::rdtsc();
    let exits = demo::run(&mut cpu, mem.as_mut_bytes());
    let last = bare::svm::rdtsc();
    demo::log_exits(&exits);
    let seen: alloc::vec::Vec<u64> = exits.iter().map(|(e, _)| e.code).collect();
    let mut record = snp_model::record::Record {
        tsc_hz,
        ..Default::default()
    };
    for (name, tsc) in [("first-entry", first), ("last-exit", last)] {
        record.marks.push(snp_model::record::Mark {
            name: name.into(),
            vcpu: 0,
            vmpl: 0,
            tsc,
        });
    }
    for code in &seen {
        record.exit(*code, 0);
    }
    bare::console::debugcon::write_bytes(record.render().as_bytes());
    let expected = [
        bare::svm::vmcb::exit::NPF,
        bare::svm::vmcb::exit::CPUID,
        bare::svm::vmcb::exit::IOIO,
        bare::svm::vmcb::exit::NPF,
        bare::svm::vmcb::exit::HLT,
    ];
    let mapped = cpu.mapped(0);
    cpu.unmap(demo::DATA_GPA);
    info!(
        "demo: {} exits, {mapped} pages mapped at VMPL0, {} after unmapping the data page",
        seen.len(),
        cpu.mapped(0)
    );
    if seen == expected && mapped == 2 && cpu.mapped(0) == 1 {
        info!("demo: PASS (NPF, CPUID, IOIO, NPF, HLT)");
        qemu_exit(EXIT_OK)
    }
    fail(format_args!("demo: FAIL, exits {seen:x?}"))
}
