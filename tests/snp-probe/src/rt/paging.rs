//! Shared pages in the probe's identity map. The entry code maps the first 1 GiB with
//! 2 MiB pages, all with the C-bit; a page made shared needs a 4 KiB entry without it, so
//! the 2 MiB page holding the probe's image is split into one page table (APM vol. 2
//! §5.3.3 for the entry layout, §15.34.5 for the C-bit).

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::instr::invlpg;

unsafe extern "C" {
    static mut probe_pd: [u64; 512];
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut PT: Table = Table([0; 512]);
static SPLIT: AtomicBool = AtomicBool::new(false);
/// The C-bit as a PTE mask.
pub static C_BIT: AtomicU64 = AtomicU64::new(0);

const PRESENT_WRITABLE: u64 = 0x3;

/// Map the 4 KiB page at `gpa` (inside the first 2 MiB) shared (`shared`) or private.
/// Returns false for a page outside the split region.
pub fn set_shared(gpa: u64, shared: bool) -> bool {
    if gpa >= 2 << 20 {
        return false;
    }
    let c = C_BIT.load(Ordering::Relaxed);
    let pt = addr_of_mut!(PT);
    let pd = addr_of_mut!(probe_pd);
    // SAFETY: the probe runs on one vCPU with interrupts off; the tables are its own
    // statics, identity-mapped; the PD entry 0 is replaced by an equivalent table before
    // any 4 KiB entry changes, and the TLB entries are flushed.
    unsafe {
        if !SPLIT.swap(true, Ordering::Relaxed) {
            for (i, e) in (*pt).0.iter_mut().enumerate() {
                *e = (i as u64) << 12 | PRESENT_WRITABLE | c;
            }
            (*pd)[0] = (pt as u64) | PRESENT_WRITABLE | c;
            for i in 0..512u64 {
                invlpg(i << 12);
            }
        }
        let e = &mut (*pt).0[(gpa >> 12) as usize];
        *e = if shared {
            (gpa & !0xfff) | PRESENT_WRITABLE
        } else {
            (gpa & !0xfff) | PRESENT_WRITABLE | c
        };
    }
    invlpg(gpa);
    true
}
