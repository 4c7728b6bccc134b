//! Memory management: address types, the image layout, the page tables, the heap.

pub mod address;
pub mod heap;
#[cfg(target_os = "none")]
pub mod layout;
pub mod paging;
pub mod regions;
#[cfg(target_os = "none")]
mod setup;
#[cfg(target_os = "none")]
pub use setup::{init, init_snp, with_page_tables, MemError, MemoryInfo, SnpMemory};
