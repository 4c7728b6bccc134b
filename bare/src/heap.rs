//! A heap for `alloc`: `linked_list_allocator::Heap` behind a `spin::Mutex`, over an
//! identity-mapped range the program chooses from the memory map.
//!
//! A library cannot declare the global allocator for its programs without clashing with
//! the kernel's own, so the program declares it:
//! `#[global_allocator] static HEAP: bare::heap::BareHeap = bare::heap::BareHeap::empty();`
//! Allocations never overlap and are aligned as asked; a failed allocation returns null,
//! which `alloc` turns into a panic (no silent null).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

/// The allocator.
pub struct BareHeap(Mutex<Heap>);

impl BareHeap {
    /// An allocator with no memory yet (every allocation fails until [`BareHeap::init`]).
    pub const fn empty() -> Self {
        BareHeap(Mutex::new(Heap::empty()))
    }

    /// Hands `[start, start + size)` to the allocator.
    ///
    /// # Safety
    /// The range must be RAM mapped read+write at the same virtual address, owned by the
    /// program alone and used for nothing else for as long as it runs.
    pub unsafe fn init(&self, start: u64, size: u64) -> Result<(), HeapError> {
        let mut heap = self.0.lock();
        if heap.size() != 0 {
            return Err(HeapError::AlreadyInitialised);
        }
        let size = usize::try_from(size).map_err(|_| HeapError::TooLarge)?;
        // SAFETY: forwarded to the caller (identity-mapped, exclusively owned, unused).
        unsafe { heap.init(start as *mut u8, size) };
        Ok(())
    }

    /// (bytes in use, bytes free).
    pub fn usage(&self) -> (usize, usize) {
        let heap = self.0.lock();
        (heap.used(), heap.free())
    }
}

impl Default for BareHeap {
    fn default() -> Self {
        Self::empty()
    }
}

// SAFETY: `Heap::allocate_first_fit` returns blocks that are inside the heap, disjoint
// from every other live block and aligned to `layout`; the mutex makes each call
// exclusive. `dealloc` hands back only pointers this allocator returned (GlobalAlloc
// contract on the caller).
unsafe impl GlobalAlloc for BareHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the GlobalAlloc contract: `ptr` came from `alloc` with `layout`.
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}

/// Why the heap could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// `init` was called twice.
    AlreadyInitialised,
    /// The range does not fit a `usize`.
    TooLarge,
}

/// The lowest `align`-aligned start of `size` bytes inside RAM region `[start, end)`
/// that lies at or above `floor` and ends at or below `ceiling`: the heap's place, chosen
/// from the memory map. None when the region cannot hold it.
pub fn place(start: u64, end: u64, floor: u64, ceiling: u64, size: u64, align: u64) -> Option<u64> {
    if !align.is_power_of_two() {
        return None;
    }
    let lo = start.max(floor).checked_add(align - 1)? & !(align - 1);
    let hi = end.min(ceiling);
    (lo.checked_add(size)? <= hi).then_some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_aligns_and_respects_bounds() {
        const MIB: u64 = 1 << 20;
        assert_eq!(
            place(MIB, 64 * MIB, 3 * MIB, u64::MAX, 8 * MIB, 2 * MIB),
            Some(4 * MIB)
        );
        assert_eq!(
            place(MIB, 9 * MIB, 3 * MIB, u64::MAX, 8 * MIB, 2 * MIB),
            None
        );
        assert_eq!(place(0, 64 * MIB, 0, 4 * MIB, 8 * MIB, 2 * MIB), None);
        assert_eq!(place(0, 64 * MIB, 0, u64::MAX, MIB, 3), None);
    }
}
