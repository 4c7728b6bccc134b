//! vCPU 1 on QEMU's second CPU: the boot CPU starts the AP (`bare::cpu::smp`,
//! INIT-SIPI-SIPI with a real-mode trampoline), and each CPU runs `Machine::step` for
//! its own vCPU, the boot CPU for vCPU 0, the AP for vCPU 1 once it is runnable.
//!
//! Locking: one big lock over the whole shared state (the machine and the CPU with its
//! nested tables and VMCBs), a `spin::TicketMutex` so that neither CPU starves the
//! other. The lock is held across a whole step, VMRUN included: `Machine::step` runs the
//! entry and the exit's handling as one call, so the two vCPUs' guest code does not run
//! at the same instant (a guest that spins without exiting holds the lock). Releasing it
//! during VMRUN needs `step` split into entry and exit halves (left).
//!
//! Per CPU: the host save area (VM_HSAVE_PA) and the FPU set-up; per (vCPU, VMPL): the
//! VMCB and the FXSAVE area (`svm_cpu`); shared: the nested tables, one per VMPL. TLB:
//! a nested-table change flushes on the next VMRUN of either CPU (`SvmCpu`'s dirty flag
//! and the change of (vCPU, VMPL) between entries), and QEMU flushes its TLB on every
//! VMRUN and #VMEXIT anyway; since the lock serialises VMRUNs, no CPU is inside the guest
//! while the other unmaps a page.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};

use snp_model::machine::Machine;
use snp_model::psp::Psp;
use spin::mutex::TicketMutex;

use crate::devices::ModelDevices;
use crate::svm_cpu::SvmCpu;

/// The state both CPUs use.
pub struct Shared {
    /// The machine.
    pub m: Machine<ModelDevices, Psp>,
    /// The CPU: nested tables, VMCBs, FXSAVE areas.
    pub cpu: SvmCpu,
}

/// The one lock (module docs).
pub static SHARED: TicketMutex<Option<Shared>> = TicketMutex::new(None);
/// The AP reached its loop.
static AP_ONLINE: AtomicBool = AtomicBool::new(false);
/// Whether vCPU 1 is runnable, published after every step by the CPU that stepped, so
/// that the AP takes the lock only when it has work (a lock taken for nothing slows
/// the boot CPU's every step under QEMU's TCG).
pub static VCPU1_RUNNABLE: AtomicBool = AtomicBool::new(false);
/// The AP's stack.
const AP_STACK: usize = 64 << 10;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// After a step on the boot CPU: publish whether vCPU 1 is runnable, and wake the AP
/// when it becomes so.
pub fn publish(runnable: bool) {
    if runnable && !VCPU1_RUNNABLE.swap(true, Ordering::AcqRel) {
        bare::cpu::smp::wake(1);
    } else if !runnable {
        VCPU1_RUNNABLE.store(false, Ordering::Release);
    }
}

/// Starts the AP (APIC ID 1) and waits up to 0.5 s for it; false if it did not come up.
pub fn start_ap(tsc_hz: u64) -> bool {
    let stack: &'static mut [u8] = Box::leak(alloc::vec![0u8; AP_STACK].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + AP_STACK as u64) & !0xf;
    // SAFETY: boot CPU, before the AP exists: nothing takes the two vectors yet.
    unsafe { bare::cpu::smp::install_wake() };
    // SAFETY: boot CPU, once; the trampoline page 0x8000 is low RAM the model does not
    // use (the PVH start info was parsed before); the stack is leaked for the AP; the
    // identity map of the first 4 GiB (xAPIC page, image, heap) stays in place.
    unsafe { bare::cpu::smp::start_ap(1, top, ap_main, tsc_hz) };
    let t0 = bare::svm::rdtsc();
    while bare::svm::rdtsc().wrapping_sub(t0) < tsc_hz / 2 {
        if AP_ONLINE.load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// The AP: descriptor tables, FPU, SVM with its own host save area, then vCPU 1's loop.
extern "C" fn ap_main() -> ! {
    // SAFETY: first thing on the AP, after the boot CPU's `cpu::init`; interrupts off.
    unsafe { bare::cpu::smp::ap_init() };
    bare::svm::fpu::enable();
    let hsave: &'static mut Page = Box::leak(Box::new(Page([0; 4096])));
    let hsave_pa = hsave as *mut Page as u64;
    // SAFETY: the boot CPU found SVM in CPUID (same CPU model); the page is leaked for
    // this CPU's host save area alone.
    if let Err(e) = unsafe { bare::svm::enable(hsave_pa) } {
        log::error!("AP: SVM: {e:?}");
        loop {
            core::hint::spin_loop();
        }
    }
    bare::cpu::smp::enable_local_apic();
    AP_ONLINE.store(true, Ordering::Release);
    log::info!("AP online (APIC ID 1): runs vCPU 1");
    loop {
        if VCPU1_RUNNABLE.load(Ordering::Acquire) {
            let mut g = SHARED.lock();
            if let Some(s) = g.as_mut() {
                if s.m.runnable(1) {
                    if let Err(stop) = s.m.step(&mut s.cpu, 1) {
                        log::info!("vCPU 1 stopped: {} ({stop:?})", stop.reason());
                    }
                }
                VCPU1_RUNNABLE.store(s.m.runnable(1), Ordering::Release);
            }
        } else {
            // Idle: sleep until the boot CPU's wake-up IPI (`publish`), so that an idle
            // AP takes no host time from QEMU's other CPU thread.
            bare::cpu::smp::sleep();
        }
    }
}
