//! The 64-bit Task State Segment: only its interrupt stack table is used.
//!
//! IST1 = #DF, IST2 = NMI, IST3 = #MC. These exceptions can arrive when the current stack
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

/// The hardware TSS layout (AMD APM vol. 2, "64-bit TSS format").
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub struct Tss {
    reserved0: u32,
    /// Stack pointers for privilege levels 0-2 (unused: Vigil has no ring 3 yet).
    pub rsp: [u64; 3],
    reserved1: u64,
    /// IST1..IST7.
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// Offset of the I/O permission bitmap; beyond the limit = no bitmap.
    pub iomap_base: u16,
}

const _: () = assert!(core::mem::size_of::<Tss>() == 104);
const _: () = assert!(core::mem::offset_of!(Tss, ist) == 36);
const _: () = assert!(core::mem::offset_of!(Tss, iomap_base) == 102);

impl Tss {
    /// A TSS with no stacks and no I/O bitmap.
    pub const fn new() -> Self {
        Tss {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist: [0; 7],
            reserved2: 0,
            reserved3: 0,
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

impl Default for Tss {
    fn default() -> Self {
        Self::new()
    }
}

/// The one TSS (single vCPU for now; SMP adds one per CPU).
pub struct TssCell(UnsafeCell<Tss>);

// SAFETY: written only by `cpu::init` before `ltr`, on the boot CPU, then read-only.
unsafe impl Sync for TssCell {}

/// The TSS static.
pub static TSS: TssCell = TssCell(UnsafeCell::new(Tss::new()));

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
