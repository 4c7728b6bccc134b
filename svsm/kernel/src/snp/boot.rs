//! `kernel_main`'s SNP path: the boot sequence after the IGVM entry (`boot::igvm`).
//!
//! Order, each step relying on the previous (docs/kernel.md, "The SNP boot"):
//! 1. the SNP kernel platform is installed (exits become termination requests; the
//!    console drops output until the GHCB works) and the #VC handler with it;
//! 2. `BootParams` checked (`boot_params::check`);
//! 3. the CPUID page checked, its C-bit compared with the one the entry put in the
//!    page tables; from here CPUID (also through #VC) is answered from it;
//! 4. GHCB MSR protocol: SEV information (version 2 in the host's range, same C-bit),
//!    hypervisor features (SNP required);
//! 5. the GHCB page made shared (`shared`) and registered (REG_GPA, GFN echoed);
//! 6. console: COM1 programmed through #VC (IOIO), the logger, the banner;
//! 7. a #VC self-check (one CPUID instruction answered by the handler equals the page);
//! 8. Vigil's own memory (`own_memory`): the rest of the region validated, page tables
//!    with the C-bit loaded, the heap started;
//! 9. the guest prepared at its VMPL (`guest::make::start`), the monitor built over
//!    `SnpPlatform` (`serve`), the boot's report through the monitor's VMPCK0 channel
//!    (`report`);
//! 10. the guest entered and served by the monitor (`serve::on_snp::run`), for good;
//!     Vigil's own vCPU for each AP the guest creates (`ap`) serves that AP the same way.
//!
//! Any failure ends the boot with its own termination reason (`svsm_abi::ghcb::term`).

use svsm_abi::boot_params::BootParams;
use svsm_abi::cpuid::CpuidPage;
use svsm_abi::ghcb::{msr, term};

use super::boot_params::{check, SnpLayout};
use super::cpuid::CpuidTable;
use super::msr_protocol::{check_hv_features, check_register, check_sev_info, exchange};
use super::{fail, ghcb, shared, vc, CPUID_TABLE};
use crate::{kprintln, BANNER};

extern "C" {
    fn vigil_igvm_entry();
}

/// Runs the SNP boot; `bp_gpa` came in RSI, `c_bit_mask` is the bit the entry set in
/// the bootstrap page tables, `sev_status` the MSR's value.
pub fn run(bp_gpa: u64, c_bit_mask: u64, sev_status: u64) -> ! {
    crate::platform::install_snp();
    crate::cpu::exceptions::set_vc_handler(vc::handler::handle);
    let layout = boot_params(bp_gpa);
    let c_bit = cpuid_page(layout.cpuid_gpa, c_bit_mask);
    let info = check_sev_info(exchange(msr::SEV_INFO_REQ), c_bit)
        .unwrap_or_else(|e| fail(e.reason(), format_args!("{e}")));
    let features = check_hv_features(exchange(msr::HV_FEATURES_REQ))
        .unwrap_or_else(|e| fail(e.reason(), format_args!("{e}")));
    ghcb_page(c_bit_mask);

    crate::console::serial::init();
    crate::console::logger::init(log::LevelFilter::Info);
    kprintln!("{}", BANNER);
    kprintln!("platform: SEV-SNP (SEV_STATUS {sev_status:#x}), booted from IGVM");
    log::info!(
        "BootParams at {bp_gpa:#x}: Vigil region {:#x}-{:#x}, {} vCPU(s), guest VMPL {}, CPUID page {:#x}, secrets page {:#x}",
        layout.vigil.0,
        layout.vigil.1,
        layout.vcpus,
        layout.guest_vmpl,
        layout.cpuid_gpa,
        layout.secrets_gpa
    );
    log::info!(
        "GHCB protocol {}..={} (using {}), hypervisor features {features:#x}, C-bit {c_bit} (CPUID page; host agrees)",
        info.min,
        info.max,
        svsm_abi::ghcb::GHCB_PROTOCOL_VERSION
    );
    log::info!(
        "GHCB page {:#x}: rescinded, shared, C-bit cleared, registered",
        ghcb::page::gpa()
    );
    vc_self_check();
    own_memory(&layout, bp_gpa, c_bit_mask);
    let start = super::guest::make::GuestStart {
        layout: &layout,
        c_bit_mask,
        fw: layout.fw,
        sev_features: sev_status >> 2,
    };
    let plat = super::guest::make::start(&start);
    let vmpck0 = super::guest::make::secrets(&layout).vmpck0;
    let mut m = super::serve::on_snp::monitor(plat, &start, vmpck0);
    match super::report::check(&mut m) {
        Ok((v, meas)) => kprintln!(
            "vigil: boot report through the monitor's VMPCK0 channel: version {v}, measurement {}",
            crate::console::hex::Hex(&meas)
        ),
        Err(r) => fail(r.code(), format_args!("boot report through the monitor")),
    }
    kprintln!(
        "vigil: guest entry {:#x} at VMPL{} (run-VMPL exit), served by the monitor",
        layout.fw.2,
        layout.guest_vmpl
    );
    super::serve::on_snp::run(m, start.sev_features)
}

/// Step 8: the free part of the Vigil region validated (`snp::memory`), Vigil's own
/// page tables loaded (C-bit on every private mapping, the GHCB page shared), the heap
/// started and tried.
fn own_memory(layout: &SnpLayout, bp_gpa: u64, c_bit_mask: u64) {
    use super::memory::{make::validate_range, split};
    use crate::mm::address::PhysRange;
    let img = crate::mm::layout::image_layout();
    let free = (img.image.end.next_multiple_of(4096), layout.params_low);
    let sp = split(free.0, free.1);
    let mut counts = (0, 0);
    for (s, e) in [sp.head, sp.heap, sp.tail] {
        let c = validate_range(s, e);
        counts = (counts.0 + c.0, counts.1 + c.1);
    }
    log::info!(
        "{:#x}-{:#x} private and validated: {} x 2M, {} x 4K",
        free.0,
        free.1,
        counts.0,
        counts.1
    );
    if sp.heap.1 - sp.heap.0 < super::memory::SIZE_2M {
        fail(
            term::HEAP,
            format_args!("no 2 MiB-aligned heap in {:#x}-{:#x}", free.0, free.1),
        );
    }
    let page = |g: u64| PhysRange {
        start: g,
        end: g + 4096,
    };
    let read_only = [
        page(bp_gpa),
        page(layout.cpuid_gpa),
        page(layout.secrets_gpa),
    ];
    let req = crate::mm::SnpMemory {
        c_bit_mask,
        heap: PhysRange {
            start: sp.heap.0,
            end: sp.heap.1,
        },
        shared_page: ghcb::page::gpa(),
        read_only: &read_only,
        read_write: &[
            PhysRange {
                start: sp.head.0,
                end: sp.head.1,
            },
            PhysRange {
                start: sp.tail.0,
                end: sp.tail.1,
            },
        ],
        window: super::memory::WINDOW_VA,
    };
    let mem = crate::mm::init_snp(&req).unwrap_or_else(|e| {
        let reason = match e {
            crate::mm::MemError::Heap(_) => term::HEAP,
            _ => term::PAGE_TABLES,
        };
        fail(reason, format_args!("Vigil's page tables / heap: {e:?}"))
    });
    super::memory::frames::init(sp.head, sp.tail);
    let probe = alloc::boxed::Box::new(0x5a5a_u64);
    if *probe != 0x5a5a {
        fail(term::HEAP, format_args!("heap self-check"));
    }
    drop(probe);
    log::info!(
        "page tables loaded ({} tables, C-bit), heap {:#x}-{:#x}, frames around it",
        mem.tables.0,
        mem.heap.start,
        mem.heap.end
    );
}

fn boot_params(gpa: u64) -> SnpLayout {
    const BOOT_MAP_END: u64 = 1 << 30;
    if gpa == 0 || !gpa.is_multiple_of(4096) || gpa >= BOOT_MAP_END {
        fail(
            term::BOOT_PARAMS,
            format_args!("BootParams GPA {gpa:#x} (RSI) unusable"),
        );
    }
    // SAFETY: a page-aligned page in the first GiB, which the bootstrap tables map
    // private; a page the launch did not validate raises #VC, which the handler refuses.
    let bp = unsafe { core::ptr::read(gpa as *const BootParams) };
    let img = crate::mm::layout::image_layout().image;
    check(
        &bp,
        gpa,
        (img.start, img.end),
        vigil_igvm_entry as *const () as u64,
    )
    .unwrap_or_else(|e| fail(term::BOOT_PARAMS, format_args!("{e}")))
}

fn cpuid_page(gpa: u64, c_bit_mask: u64) -> u8 {
    // SAFETY: `gpa` is a page of the Vigil region outside the image (checked), mapped
    // private; the launch placed the CPUID page there and nothing ever writes it.
    let page: &'static CpuidPage = unsafe { &*(gpa as *const CpuidPage) };
    let table =
        CpuidTable::new(page).unwrap_or_else(|e| fail(term::CPUID_PAGE, format_args!("{e}")));
    let c_bit = table
        .c_bit()
        .unwrap_or_else(|e| fail(term::CPUID_PAGE, format_args!("{e}")));
    if 1u64 << c_bit != c_bit_mask {
        fail(
            term::CPUID_PAGE,
            format_args!("C-bit {c_bit} differs from the entry's mask {c_bit_mask:#x}"),
        );
    }
    CPUID_TABLE.call_once(|| table);
    c_bit
}

fn ghcb_page(c_bit_mask: u64) {
    let gpa = ghcb::page::gpa();
    // SAFETY: the GHCB page is Vigil's static, reached only through `ghcb::page` with
    // volatile accesses; the bootstrap tables are loaded (nothing replaced them on SNP).
    if let Err(e) = unsafe { shared::make::page_shared(gpa, c_bit_mask) } {
        // The step's own value, not the error's Debug form (image size).
        let (reason, step, value) = match e {
            shared::make::SharedError::Pvalidate(o) => {
                (term::PVALIDATE, "PVALIDATE EAX", u64::from(o.ret))
            }
            shared::make::SharedError::Psc(p) => (p.reason(), "page-state change", 0),
            shared::make::SharedError::Map(shared::SplitError::NotA2MPage { pde }) => {
                (term::PAGE_STATE, "bootstrap PDE", pde)
            }
        };
        fail(
            reason,
            format_args!("GHCB page {gpa:#x}: {step} {value:#x}"),
        );
    }
    check_register(exchange(msr::register_ghcb_request(gpa >> 12)), gpa >> 12)
        .unwrap_or_else(|e| fail(e.reason(), format_args!("{e}")));
    ghcb::page::set_ready();
}

/// Runs one CPUID instruction, which raises #VC, and compares the handler's answer with
/// the page's: proves the #VC path (IST, frame, RIP advance) before anything relies on it.
fn vc_self_check() {
    let leaf = super::cpuid::LEAF_MEM_ENCRYPTION;
    let through_vc = crate::cpu::instr::cpuid(leaf, 0);
    let from_page = super::cpuid_answer(leaf, 0);
    if through_vc != from_page {
        fail(
            term::VC_UNEXPECTED,
            format_args!(
                "#VC self-check: CPUID {leaf:#x} gave {through_vc:x?}, page {from_page:x?}"
            ),
        );
    }
    log::info!("#VC handler: CPUID {leaf:#x} answered from the CPUID page ({through_vc:x?})");
}
