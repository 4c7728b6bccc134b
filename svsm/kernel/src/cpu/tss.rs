//! The 64-bit Task State Segment: only its interrupt stack table is used.
//!
//! IST1 = #DF, IST2 = NMI, IST3 = #MC, IST4 = #VC (SNP only). These exceptions can arrive when the current stack
//! is unusable (a stack overflow into a guard page ends in #DF precisely because the CPU
//! cannot push the #PF frame), so they switch to stacks of their own, each with its own
//! guard page (see `mm::layout`).

use core::cell::UnsafeCell;

/// IST slot (1-based, as in the IDT gate) for double faults.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u8 = 3;
/// IST slot for #VC (raised only under SEV-ES/SNP).
pub const IST_VC: u8 = 4;

/// The hardware TSS layout (AMD APM vol. 2, "64-bit TSS format"), from the `x86_64`
/// crate: `interrupt_stack_table[n - 1]` is ISTn.
pub type Tss = x86_64::structures::tss::TaskStateSegment;

const _: () = assert!(core::mem::size_of::<Tss>() == 104);

/// The one TSS (single vCPU for now; SMP adds one per CPU).
pub struct TssCell(UnsafeCell<Tss>);

// SAFETY: written only by `cpu::init` before `ltr`, on the boot CPU, then read-only.
unsafe impl Sync for TssCell {}

/// The TSS static.
pub static TSS: TssCell = TssCell(UnsafeCell::new(Tss::new()));

/// The TSS's limit for its descriptor (104 bytes, no I/O bitmap).
pub const TSS_LIMIT: u32 = core::mem::size_of::<Tss>() as u32 - 1;

impl TssCell {
    /// Address for the TSS descriptor.
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }

    /// A copy of the current contents.
    pub fn get(&self) -> Tss {
        // SAFETY: the TSS is only written in `set`, which runs before any reader.
        unsafe { *self.0.get() }
    }

    /// Replaces the contents.
    ///
    /// # Safety
    /// Must run before the TSS is loaded with `ltr` (the CPU reads it asynchronously on
    /// every IST switch afterwards) and on one CPU only.
    pub unsafe fn set(&self, tss: Tss) {
        // SAFETY: forwarded to the caller: no concurrent reader exists yet.
        unsafe { *self.0.get() = tss }
    }
}
