//! The 64-bit Task State Segment (AMD APM vol. 2, "64-bit TSS format"): only its
//! interrupt stack table is used.
//!
//! IST1 = #DF, IST2 = NMI, IST3 = #MC. These exceptions can arrive when the current stack
//! is unusable (a stack overflow ends in #DF because the CPU cannot push the #PF frame),
//! so they switch to stacks of their own, in `.bss`.

use core::cell::UnsafeCell;

/// IST slot (1-based, as in the IDT gate) for double faults.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u8 = 3;

/// Size of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// The hardware TSS layout, from the `x86_64` crate: `interrupt_stack_table[n - 1]` is
/// ISTn.
pub type Tss = x86_64::structures::tss::TaskStateSegment;

const _: () = assert!(core::mem::size_of::<Tss>() == 104);

/// The TSS's limit for its descriptor (104 bytes, no I/O bitmap).
pub const TSS_LIMIT: u32 = core::mem::size_of::<Tss>() as u32 - 1;

/// The three IST stacks.
#[repr(C, align(16))]
pub struct IstStacks(UnsafeCell<[[u8; IST_STACK_SIZE]; 3]>);

// SAFETY: only the CPU uses the stacks (on an IST switch); Rust code only takes their
// addresses.
unsafe impl Sync for IstStacks {}

static IST_STACKS: IstStacks = IstStacks(UnsafeCell::new([[0; IST_STACK_SIZE]; 3]));

impl IstStacks {
    /// The top (highest address, 16-byte aligned) of the stack for IST slot `slot`
    /// (1..=3).
    fn top(&self, slot: u8) -> u64 {
        let base = self.0.get() as u64;
        base + u64::from(slot) * IST_STACK_SIZE as u64
    }
}

/// The one TSS (one CPU).
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

    /// Fills the interrupt stack table with the three IST stacks.
    ///
    /// # Safety
    /// Must run before the TSS is loaded with `ltr` (the CPU reads it on every IST switch
    /// afterwards) and on one CPU only.
    pub unsafe fn init(&self) {
        let mut t = Tss::new();
        for slot in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK] {
            t.interrupt_stack_table[usize::from(slot - 1)] =
                x86_64::VirtAddr::new(IST_STACKS.top(slot));
        }
        // SAFETY: forwarded to the caller: no concurrent reader exists yet.
        unsafe { *self.0.get() = t }
    }
}
