//! Where the kernel image and its stacks are, read from the linker script's symbols.
//!
//! The image is linked at 1 MiB and runs identity-mapped. Its regions, each page-aligned
//! by `linker.ld`, get these permissions from `mm::paging`:
//!
//! | region            | permissions      |
//! |-------------------|------------------|
//! | `.text`           | read, execute    |
//! | `.rodata`, notes  | read             |
//! | `.data`, `.bss`   | read, write      |
//! | stack area        | read, write; one unmapped guard page under every stack |
//!
//! The stack area is one page-aligned static in its own NOLOAD section: five stacks, each
//! with an unmapped guard page below it (stacks grow down, so an overflow runs into the
//! guard page and faults instead of silently corrupting what lies below).

use core::cell::UnsafeCell;

use super::address::{PhysRange, PAGE_SIZE};

/// Size of the main kernel stack (the one `kernel_main` and the tests run on).
pub const MAIN_STACK_SIZE: usize = 64 * 1024;
/// Size of each interrupt stack (IST) used for #DF, NMI and #MC.
pub const IST_STACK_SIZE: usize = 16 * 1024;
const GUARD: usize = PAGE_SIZE as usize;

/// The stacks, in address order (the guard page of each lies just below it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// The main kernel stack.
    Main,
    /// IST1: double fault.
    DoubleFault,
    /// IST2: NMI.
    Nmi,
    /// IST3: machine check.
    MachineCheck,
    /// IST4: #VC (SNP). Its own stack so that a #VC raised where the current stack is
    /// unusable still has one; a #VC inside the #VC handler would reuse it and is
    /// refused before it could return (`snp::vc`).
    Vc,
}

impl Stack {
    /// Every stack.
    pub const ALL: [Stack; 5] = [
        Stack::Main,
        Stack::DoubleFault,
        Stack::Nmi,
        Stack::MachineCheck,
        Stack::Vc,
    ];

    /// Human-readable name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Stack::Main => "main kernel stack",
            Stack::DoubleFault => "#DF IST stack",
            Stack::Nmi => "NMI IST stack",
            Stack::MachineCheck => "#MC IST stack",
            Stack::Vc => "#VC IST stack",
        }
    }

    const fn size(self) -> usize {
        match self {
            Stack::Main => MAIN_STACK_SIZE,
            _ => IST_STACK_SIZE,
        }
    }

    /// Offset of this stack's guard page from the start of the stack area.
    const fn guard_offset(self) -> usize {
        match self {
            Stack::Main => 0,
            Stack::DoubleFault => GUARD + MAIN_STACK_SIZE,
            Stack::Nmi => 2 * GUARD + MAIN_STACK_SIZE + IST_STACK_SIZE,
            Stack::MachineCheck => 3 * GUARD + MAIN_STACK_SIZE + 2 * IST_STACK_SIZE,
            Stack::Vc => 4 * GUARD + MAIN_STACK_SIZE + 3 * IST_STACK_SIZE,
        }
    }

    /// Offset of this stack's top (initial RSP) from the start of the stack area.
    pub const fn top_offset(self) -> usize {
        self.guard_offset() + GUARD + self.size()
    }

    /// Physical range of the guard page.
    pub fn guard(self) -> PhysRange {
        let start = stack_area_start() + self.guard_offset() as u64;
        PhysRange {
            start,
            end: start + GUARD as u64,
        }
    }

    /// Physical range of the usable stack.
    pub fn usable(self) -> PhysRange {
        let start = stack_area_start() + (self.guard_offset() + GUARD) as u64;
        PhysRange {
            start,
            end: start + self.size() as u64,
        }
    }

    /// The initial stack pointer (top of the stack).
    pub fn top(self) -> u64 {
        stack_area_start() + self.top_offset() as u64
    }
}

const STACK_AREA_SIZE: usize = Stack::Vc.top_offset();
const _: () = assert!(STACK_AREA_SIZE.is_multiple_of(GUARD));
const _: () =
    assert!(MAIN_STACK_SIZE.is_multiple_of(GUARD) && IST_STACK_SIZE.is_multiple_of(GUARD));

/// The stack area. Written only through stack pointers by the CPU.
#[repr(C, align(4096))]
pub struct StackArea(UnsafeCell<[u8; STACK_AREA_SIZE]>);

// SAFETY: the area is only ever touched as stack memory by the CPU (each stack by the
// one context that owns it); no Rust reference to its bytes is ever created.
unsafe impl Sync for StackArea {}

/// The stack area's symbol, also used by the entry assembly.
#[link_section = ".vigil_stacks"]
#[no_mangle]
pub static VIGIL_STACKS: StackArea = StackArea(UnsafeCell::new([0; STACK_AREA_SIZE]));

/// Offset of the main stack's top inside [`VIGIL_STACKS`], for the entry assembly.
pub const MAIN_STACK_TOP_OFFSET: usize = Stack::Main.top_offset();

fn stack_area_start() -> u64 {
    VIGIL_STACKS.0.get() as u64
}

extern "C" {
    static __image_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
    static __image_end: u8;
}

fn sym(s: &'static u8) -> u64 {
    s as *const u8 as u64
}

/// The image's regions, as placed by the linker.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// The whole image, from its first to its last page.
    pub image: PhysRange,
    /// Code.
    pub text: PhysRange,
    /// Read-only data (includes the PVH note).
    pub rodata: PhysRange,
    /// Writable data and .bss (includes the page-table pool).
    pub data: PhysRange,
    /// The stack area (guards included).
    pub stacks: PhysRange,
}

/// Reads the linker symbols.
pub fn image_layout() -> ImageLayout {
    // SAFETY: the linker script defines these symbols; only their addresses are taken,
    // the bytes behind them are never read.
    unsafe {
        ImageLayout {
            image: PhysRange {
                start: sym(&__image_start),
                end: sym(&__image_end),
            },
            text: PhysRange {
                start: sym(&__text_start),
                end: sym(&__text_end),
            },
            rodata: PhysRange {
                start: sym(&__rodata_start),
                end: sym(&__rodata_end),
            },
            data: PhysRange {
                start: sym(&__data_start),
                end: sym(&__data_end),
            },
            stacks: PhysRange {
                start: sym(&__stacks_start),
                end: sym(&__stacks_end),
            },
        }
    }
}

/// The stack whose guard page contains `addr`, if any.
pub fn guard_page_of(addr: u64) -> Option<Stack> {
    Stack::ALL.into_iter().find(|s| s.guard().contains(addr))
}
