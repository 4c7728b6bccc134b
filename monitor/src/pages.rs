//! The monitor's view of every 4 KiB page of guest RAM.
//!
//! The state machine (docs/monitor.md draws it):
//!
//! ```text
//!  Unvalidated --PVALIDATE(validate)--> Validated --PVALIDATE(rescind)--> Unvalidated
//!  Validated --DEPOSIT_MEM--> Deposited --WITHDRAW_MEM--> Validated
//!  Validated --CREATE_VCPU--> Vmsa --DELETE_VCPU--> Validated
//!  Validated --protection LOCK (text, read-only data)--> Locked: never leaves until reset
//!  Vigil: never changes (Vigil's own image, heap, stacks, secrets, CPUID page)
//! ```
//!
//! Only this table decides whether a guest request may touch a page; the RMP is the
//! enforcement below it. A page is validated at most once (invariant 2): validating a
//! page the table holds as anything but `Unvalidated` is refused before PVALIDATE runs.
use crate::addr::{Gpa, PageSize, PAGE_SIZE_4K};
use alloc::vec;
use alloc::vec::Vec;

/// State of one 4 KiB page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Guest RAM, not validated (or rescinded).
    Unvalidated,
    /// Validated for the guest; the guest VMPL has full access.
    Validated,
    /// Given to Vigil by DEPOSIT_MEM; the guest has no access.
    Deposited,
    /// A guest vCPU's VMSA; the guest has no access.
    Vmsa,
    /// Vigil's own memory.
    Vigil,
    /// Text or read-only data the guest locked with the protection protocol: the guest
    /// keeps the range's rights (never write), and no call may rescind, deposit, turn
    /// into a VMSA or calling area, or have Vigil write to it, until the VM resets.
    Locked,
}

/// Why a range is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Outside guest RAM (or overflows).
    OutOfRange,
    /// Overlaps Vigil's own memory.
    VigilMemory,
    /// Some page is not in the state the operation needs.
    WrongState(PageState),
}

/// The per-page table.
#[derive(Clone, Debug)]
pub struct PageTable {
    states: Vec<PageState>,
    vigil_base: u64,
    vigil_end: u64,
}

impl PageTable {
    /// Guest RAM is [0, ram_size); Vigil's memory is [vigil_base, vigil_base+vigil_size).
    pub fn new(ram_size: u64, vigil_base: Gpa, vigil_size: u64) -> Self {
        let pages = (ram_size / PAGE_SIZE_4K) as usize;
        let mut states = vec![PageState::Unvalidated; pages];
        let first = vigil_base.gfn() as usize;
        let last = ((vigil_base.0 + vigil_size).div_ceil(PAGE_SIZE_4K) as usize).min(pages);
        for s in states.iter_mut().take(last).skip(first) {
            *s = PageState::Vigil;
        }
        Self {
            states,
            vigil_base: vigil_base.0,
            vigil_end: vigil_base.0 + vigil_size,
        }
    }

    /// Bytes of guest RAM covered.
    pub fn ram_size(&self) -> u64 {
        self.states.len() as u64 * PAGE_SIZE_4K
    }

    /// State of the page holding `gpa`.
    pub fn get(&self, gpa: Gpa) -> Option<PageState> {
        self.states.get(gpa.gfn() as usize).copied()
    }

    /// Whether [gpa, gpa+len) touches Vigil's memory.
    pub fn overlaps_vigil(&self, gpa: Gpa, len: u64) -> bool {
        let end = gpa.0.saturating_add(len);
        gpa.0 < self.vigil_end && end > self.vigil_base
    }

    /// Checks that every 4 KiB page of [gpa, gpa+len) is in RAM, outside Vigil's memory
    /// and in state `want`.
    pub fn check_range(&self, gpa: Gpa, len: u64, want: PageState) -> Result<(), RangeError> {
        let end = gpa.0.checked_add(len).ok_or(RangeError::OutOfRange)?;
        if end > self.ram_size() || len == 0 {
            return Err(RangeError::OutOfRange);
        }
        if self.overlaps_vigil(gpa, len) {
            return Err(RangeError::VigilMemory);
        }
        let first = gpa.gfn() as usize;
        let last = end.div_ceil(PAGE_SIZE_4K) as usize;
        for s in &self.states[first..last] {
            if *s != want {
                return Err(RangeError::WrongState(*s));
            }
        }
        Ok(())
    }

    /// Checks a whole page of `size` at `gpa` (which must be aligned).
    pub fn check_page(&self, gpa: Gpa, size: PageSize, want: PageState) -> Result<(), RangeError> {
        self.check_range(gpa, size.bytes(), want)
    }

    /// Sets every 4 KiB page of the page at `gpa` to `s` (checked by the caller).
    pub fn set(&mut self, gpa: Gpa, size: PageSize, s: PageState) {
        let first = gpa.gfn() as usize;
        let last = first + size.frames() as usize;
        if let Some(slice) = self.states.get_mut(first..last) {
            for x in slice {
                *x = s;
            }
        }
    }

    /// Iterates (frame number, state).
    pub fn iter(&self) -> impl Iterator<Item = (u64, PageState)> + '_ {
        self.states.iter().enumerate().map(|(i, s)| (i as u64, *s))
    }
}
