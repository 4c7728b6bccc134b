//! The kernel heap: `linked_list_allocator::Heap` behind a `spin::Mutex`, as the global
//! allocator, over a range chosen from the memory map (see `mm::regions`).
//!
//! `alloc` users (the monitor crate, later) can rely on: allocations never overlap, are
//! aligned as asked, and a failed allocation ends in the panic handler (the default
//! `alloc` error handler panics), which reports and exits; there is no silent null.
//! Exception handlers never allocate, so the lock cannot be re-entered from a fault.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

use super::address::PhysRange;

/// The heap size taken from RAM (8 MiB, 2 MiB aligned).
pub const HEAP_SIZE: u64 = 8 << 20;
/// Alignment of the heap's start.
pub const HEAP_ALIGN: u64 = 2 << 20;

/// The global allocator.
pub struct KernelHeap(Mutex<Heap>);

#[cfg_attr(target_os = "none", global_allocator)]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: `Heap::allocate_first_fit` returns blocks that are inside the heap, disjoint
// from every other live block and aligned to `layout`; the mutex makes each call
// exclusive. `dealloc` hands back only pointers this allocator returned (GlobalAlloc
// contract on the caller).
unsafe impl GlobalAlloc for KernelHeap {
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
}

/// Hands `range` to the allocator.
///
/// # Safety
/// `range` must be RAM that is mapped read+write at the same virtual address, owned by
/// the kernel alone and used for nothing else for as long as the kernel runs.
pub unsafe fn init(range: PhysRange) -> Result<(), HeapError> {
    let mut heap = HEAP.0.lock();
    if heap.size() != 0 {
        return Err(HeapError::AlreadyInitialised);
    }
    // SAFETY: forwarded to the caller (identity-mapped, exclusively owned, unused).
    unsafe { heap.init(range.start as *mut u8, range.len() as usize) };
    Ok(())
}

/// (bytes in use, bytes free).
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.used(), heap.free())
}
