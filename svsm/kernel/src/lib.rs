//! Vigil's VMPL0 kernel.
//!
//! Built for `x86_64-unknown-none` by `cargo xtask build`. Two entries: QEMU boots it
//! with `-kernel` through its PVH note (`vigil_pvh_entry`), and an IGVM file built by
//! `vigil-igvm build` starts it at the ELF entry (`vigil_igvm_entry`, `boot::igvm`) with
//! the BootParams GPA. Boot order (`kernel_main`), each step relying on the previous:
//!
//! 1. CPU: GDT, TSS with IST stacks for #DF/NMI/#MC/#VC, IDT (every later fault is caught);
//! 2. the platform (`platform::select`): SEV_STATUS first, before any port or CPUID
//!    (both raise #VC under SEV-ES/SNP); SNP after an IGVM entry takes the SNP path
//!    (`snp::boot`: GHCB, #VC handler, console, own memory and page tables, the guest
//!    prepared at VMPL2, the monitor over `SnpPlatform` with its boot report, then the
//!    guest entered and served), SEV-ES without SNP is refused, a native machine gets
//!    the native backend (COM1, isa-debug-exit, CPUID);
//! 3. console: the `log` backend over the platform's console, then the banner;
//! 4. boot information: `hvm_start_info`, memory map and command line, checked and copied;
//! 5. memory: the heap is placed from the memory map, the kernel's own page tables are
//!    built (text R+X, rodata R, data R+W+NX, guard pages unmapped) and loaded, the heap
//!    is started;
//! 6. the run itself: for now, report and exit; with the `ktest` feature, the in-kernel
//!    tests; on an AMD-V machine with a guest module, the emulated platform.
//!
//! On the host (any other target) the library builds without the boot path, so that
//! `cargo test --workspace` runs the unit tests of the kernel's pure modules (PVH parser,
//! page-table builder, heap placement, platform classifier, descriptor encodings).
//!
//! The kernel is this library plus a one-line binary (`src/main.rs`) that links it.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod cpu;
pub mod emulated;
pub mod exit;
#[cfg(all(target_os = "none", feature = "ktest"))]
pub mod ktest;
pub mod mm;
pub mod platform;
pub mod snp;

/// The banner, printed first (xtask's boot benchmark times its appearance).
pub const BANNER: &str = concat!("Vigil SVSM ", env!("CARGO_PKG_VERSION"), " (VMPL0 kernel)");

#[cfg(target_os = "none")]
use exit::{exit, ExitCode};

/// The first Rust code; called by the entry assembly with its argument (the PVH
/// start-info address, or the BootParams GPA after the IGVM entry), the entry kind
/// (0 = PVH, 1 = IGVM) and the C-bit mask the entry put in the bootstrap page tables.
/// Chooses the platform before anything touches a port or runs CPUID, then takes that
/// platform's path.
#[cfg(target_os = "none")]
#[no_mangle]
pub extern "C" fn kernel_main(boot_arg: u64, entry_kind: u64, c_bit_mask: u64) -> ! {
    use boot::igvm::EntryKind;
    use svsm_abi::ghcb::term;
    cpu::init();
    let entry = if entry_kind == 1 {
        EntryKind::Igvm
    } else {
        EntryKind::Pvh
    };
    match (platform::select(), entry) {
        (platform::BootChoice::Snp { sev_status }, EntryKind::Igvm) => {
            snp::boot::run(boot_arg, c_bit_mask, sev_status)
        }
        // SNP through the PVH note: no BootParams, no CPUID page; nothing to boot from.
        (platform::BootChoice::Snp { .. }, EntryKind::Pvh) => {
            platform::snp::terminate(term::BOOT_PARAMS)
        }
        (platform::BootChoice::SevEsWithoutSnp { .. }, _) => {
            platform::snp::terminate(term::SEV_ES_WITHOUT_SNP)
        }
        (platform::BootChoice::SevWithoutEs { sev_status }, _) => {
            kprintln!("{}", BANNER);
            kprintln!(
                "vigil: SEV without SEV-ES/SNP (SEV_STATUS {sev_status:#x}) is refused: Vigil needs VMPLs"
            );
            exit(ExitCode::Fatal);
        }
        (platform::BootChoice::Native(info), EntryKind::Pvh) => native_main(boot_arg, info),
        (platform::BootChoice::Native(_), EntryKind::Igvm) => {
            kprintln!("{}", BANNER);
            kprintln!(
                "vigil: IGVM boot without SEV-SNP (BootParams at {boot_arg:#x}): the native IGVM path is not written; boot with QEMU -kernel instead"
            );
            exit(ExitCode::Fatal);
        }
    }
}

/// The boot on a native machine (no SEV): PVH boot information, memory, then the run.
#[cfg(target_os = "none")]
fn native_main(start_info_paddr: u64, platform: platform::PlatformInfo) -> ! {
    console::logger::init(log::LevelFilter::Info);
    kprintln!("{}", BANNER);

    let boot = match boot::pvh::parse(&boot::BootMapReader, start_info_paddr) {
        Ok(b) => b,
        Err(e) => {
            log::error!("PVH boot information refused: {e}");
            exit(ExitCode::Fatal);
        }
    };
    if let Some(level) = boot.option("log") {
        match console::logger::parse_level(level) {
            Some(l) => log::set_max_level(l),
            None => log::warn!("unknown log level {level:?} on the command line"),
        }
    }
    log::info!("command line: {:?}", boot.cmdline());

    let mem = match mm::init(&boot) {
        Ok(m) => m,
        Err(e) => {
            log::error!("memory setup failed: {e:?}");
            exit(ExitCode::Fatal);
        }
    };
    log::info!(
        "image {:#x}-{:#x} (text {:#x}-{:#x}, rodata {:#x}-{:#x}, data {:#x}-{:#x}, stacks {:#x}-{:#x})",
        mem.image.image.start,
        mem.image.image.end,
        mem.image.text.start,
        mem.image.text.end,
        mem.image.rodata.start,
        mem.image.rodata.end,
        mem.image.data.start,
        mem.image.data.end,
        mem.image.stacks.start,
        mem.image.stacks.end
    );
    log::info!(
        "page tables loaded ({} of {} table pages); heap {:#x}-{:#x} ({} KiB)",
        mem.tables.0,
        mem.tables.1,
        mem.heap.start,
        mem.heap.end,
        mem.heap.len() / 1024
    );

    if let Some(p) = platform::current() {
        log::info!(
            "kernel platform: {}, boot CPU APIC ID {}",
            p.name(),
            p.apic_id()
        );
    }
    kprintln!("platform: {}", platform);
    kprintln!("memory map ({} entries):", boot.memory_map().len());
    for r in boot.memory_map() {
        kprintln!(
            "  {:#014x}-{:#014x} {:>10} KiB  {}",
            r.start,
            r.end,
            (r.end - r.start) / 1024,
            r.kind.name()
        );
    }

    #[cfg(feature = "ktest")]
    ktest::run(&boot, &mem);

    // The emulated platform (issue 5): run the guest module below Vigil.
    #[cfg(not(feature = "ktest"))]
    if matches!(
        platform.kind,
        platform::PlatformKind::EmulatedCapable {
            nested_paging: true,
            ..
        }
    ) && emulated::boot_module_present(&boot)
    {
        emulated::run(&boot, &mem);
    }

    #[cfg(not(feature = "ktest"))]
    {
        kprintln!("vigil: boot complete");
        exit(ExitCode::Success);
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let mut w = console::emergency();
    #[cfg(feature = "ktest")]
    ktest::note_panic(&mut w);
    let _ = write!(w, "\n*** PANIC");
    if let Some(loc) = info.location() {
        let _ = write!(w, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = writeln!(w, ": {} ***", info.message());
    exit(ExitCode::Fatal);
}
