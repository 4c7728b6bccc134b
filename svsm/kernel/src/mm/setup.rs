//! Building and loading the kernel's own page tables (boot step 3, see main.rs).

use core::cell::UnsafeCell;

use spin::Mutex;

use super::address::{page_align_up, PhysAddr, PhysRange, PAGE_SIZE};
use super::heap::{self, HEAP_ALIGN, HEAP_SIZE};
use super::layout::{image_layout, ImageLayout, Stack};
use super::paging::{MapError, PageTable, PageTables, Perm};
use super::regions::choose_heap;
use crate::boot::pvh::BootInfo;
use crate::cpu::instr::write_cr3;

/// Table pages available to the kernel's page tables (enough for the image, the 8 MiB
/// heap and later mappings: 4 tables per 2 MiB-aligned 8 MiB, a few for the image).
const POOL_TABLES: usize = 48;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[PageTable; POOL_TABLES]>);

// SAFETY: the pool is handed out once (guarded by TAKEN) as the only reference.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([PageTable::EMPTY; POOL_TABLES]));
static TAKEN: spin::Once<()> = spin::Once::new();
static TABLES: Mutex<Option<PageTables<'static>>> = Mutex::new(None);

/// What `init` set up, for the boot log.
#[derive(Clone, Copy, Debug)]
pub struct MemoryInfo {
    /// The image layout.
    pub image: ImageLayout,
    /// The heap range.
    pub heap: PhysRange,
    /// Table pages used / available.
    pub tables: (usize, usize),
}

/// Why memory setup failed.
#[derive(Clone, Copy, Debug)]
pub enum MemError {
    /// Called twice.
    AlreadyDone,
    /// No RAM region can hold the heap.
    NoRoomForHeap,
    /// A mapping failed.
    Map(MapError),
    /// The heap was initialised already.
    Heap(heap::HeapError),
}

impl From<MapError> for MemError {
    fn from(e: MapError) -> Self {
        MemError::Map(e)
    }
}

fn page_range(r: PhysRange) -> PhysRange {
    PhysRange {
        start: r.start & !(PAGE_SIZE - 1),
        end: page_align_up(r.end).unwrap_or(r.end),
    }
}

/// Chooses the heap, builds the final page tables, switches CR3 to them, and starts the
/// heap. Runs once, on the bootstrap identity map.
pub fn init(boot: &BootInfo) -> Result<MemoryInfo, MemError> {
    let mut first = false;
    TAKEN.call_once(|| first = true);
    if !first {
        return Err(MemError::AlreadyDone);
    }
    let img = image_layout();
    // The boot information pages were copied into `boot`; keep the heap off them anyway
    // (they are still the loader's, e.g. the option ROM's, not ours).
    let si = page_range(PhysRange {
        start: boot.start_info_paddr,
        end: boot.start_info_paddr + 56,
    });
    let heap_range = choose_heap(
        boot.memory_map(),
        &[img.image, si],
        HEAP_SIZE,
        HEAP_ALIGN,
        img.image.end,
    )
    .ok_or(MemError::NoRoomForHeap)?;

    // SAFETY: TAKEN guarantees this is the only reference to the pool, ever.
    let pool: &'static mut [PageTable; POOL_TABLES] = unsafe { &mut *POOL.0.get() };
    let base = PhysAddr(pool.as_ptr() as u64);
    let mut pt = PageTables::new(pool, base)?;
    map_image(&mut pt, &img, None)?;
    pt.identity_map(heap_range.start, heap_range.end, Perm::ReadWrite)?;

    // SAFETY: the new tables map all code (text), all data and .bss (including the pool
    // itself and every global), and every stack (the current one included), at the
    // addresses they are linked at; the bootstrap map was an identity map too, so every
    // pointer held by the running code stays valid.
    unsafe { write_cr3(pt.root().0) };

    // SAFETY: the heap range is RAM from the memory map, outside the image and the boot
    // pages, mapped read+write just above, and handed to nothing else.
    unsafe { heap::init(heap_range) }.map_err(MemError::Heap)?;

    let info = MemoryInfo {
        image: img,
        heap: heap_range,
        tables: pt.usage(),
    };
    *TABLES.lock() = Some(pt);
    Ok(info)
}

/// Maps the image: text R+X, rodata R, data R+W+NX (except `shared_page`, mapped
/// without the C-bit), every stack R+W+NX; guard pages stay unmapped.
fn map_image(
    pt: &mut PageTables<'static>,
    img: &ImageLayout,
    shared_page: Option<u64>,
) -> Result<(), MapError> {
    use super::address::VirtAddr;
    pt.identity_map(img.text.start, img.text.end, Perm::ReadExec)?;
    pt.identity_map(img.rodata.start, img.rodata.end, Perm::Read)?;
    let mut a = img.data.start;
    while a < img.data.end {
        if Some(a) == shared_page {
            pt.map_page_shared(VirtAddr(a), PhysAddr(a), Perm::ReadWrite)?;
        } else {
            pt.map_page(VirtAddr(a), PhysAddr(a), Perm::ReadWrite)?;
        }
        a += PAGE_SIZE;
    }
    for s in Stack::ALL {
        let u = s.usable();
        pt.identity_map(u.start, u.end, Perm::ReadWrite)?;
        // The guard page below each stack stays unmapped.
    }
    Ok(())
}

/// What the SNP boot asks of [`init_snp`].
#[derive(Clone, Copy, Debug)]
pub struct SnpMemory<'a> {
    /// The C-bit mask (one bit, 32..=51).
    pub c_bit_mask: u64,
    /// The heap: validated private pages of the Vigil region, outside the image.
    pub heap: PhysRange,
    /// The one page of `.data`/`.bss` mapped shared (the GHCB page).
    pub shared_page: u64,
    /// Further pages mapped read-only and private (BootParams, CPUID and secrets page).
    pub read_only: &'a [PhysRange],
    /// Further validated pages mapped read+write and private (the 4 KiB frame pool).
    pub read_write: &'a [PhysRange],
    /// A virtual page reserved for [`with_page_tables`] users to re-point (the window
    /// through which the SNP platform reaches guest pages); mapped to `heap.start` at
    /// first.
    pub window: u64,
}

/// The SNP variant of [`init`]: the same image mappings, every one private (C-bit),
/// except `shared_page`; the heap and `read_only` pages; CR3 switched, heap started.
/// Runs once, on the bootstrap map (which maps all of these identity and private).
pub fn init_snp(req: &SnpMemory<'_>) -> Result<MemoryInfo, MemError> {
    use super::address::VirtAddr;
    let mut first = false;
    TAKEN.call_once(|| first = true);
    if !first {
        return Err(MemError::AlreadyDone);
    }
    let img = image_layout();
    // SAFETY: TAKEN guarantees this is the only reference to the pool, ever.
    let pool: &'static mut [PageTable; POOL_TABLES] = unsafe { &mut *POOL.0.get() };
    let base = PhysAddr(pool.as_ptr() as u64);
    let mut pt = PageTables::new_encrypted(pool, base, req.c_bit_mask)?;
    map_image(&mut pt, &img, Some(req.shared_page))?;
    pt.identity_map(req.heap.start, req.heap.end, Perm::ReadWrite)?;
    for r in req.read_only {
        pt.identity_map(r.start, r.end, Perm::Read)?;
    }
    for r in req.read_write {
        pt.identity_map(r.start, r.end, Perm::ReadWrite)?;
    }
    pt.map_page(VirtAddr(req.window), PhysAddr(req.heap.start), Perm::Read)?;
    // SAFETY: as in `init`: every page the running code uses (text, data, .bss with the
    // pool and the GHCB page, the stacks) is mapped at its linked address with the same
    // private/shared state the bootstrap map and the RMP give it; the heap range and the
    // read-only pages are validated private pages (the caller's check).
    unsafe { write_cr3(pt.root().0 | req.c_bit_mask) };
    // SAFETY: the heap is validated, private, mapped read+write just above and owned by
    // the kernel alone (the caller took it from the unvalidated part of the region).
    unsafe { heap::init(req.heap) }.map_err(MemError::Heap)?;
    let info = MemoryInfo {
        image: img,
        heap: req.heap,
        tables: pt.usage(),
    };
    *TABLES.lock() = Some(pt);
    Ok(info)
}

/// Runs `f` on the live page tables (for later mappings and for the in-kernel tests).
/// The caller flushes TLB entries of pages it changes (`cpu::instr::invlpg`).
pub fn with_page_tables<R>(f: impl FnOnce(&mut PageTables<'static>) -> R) -> Option<R> {
    TABLES.lock().as_mut().map(f)
}
