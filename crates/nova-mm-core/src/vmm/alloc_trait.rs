//! [`PageTableAllocator`]: where page tables come from.
//!
//! The VRAM buddy allocator implements it in the driver; tests use a simple free list. It is
//! called only from the prepare step (allocation), `cleanup`, `cancel` and `destroy` (freeing),
//! never from execute.

use crate::addr::VramAddress;

/// Every page table occupies one 4 KiB-aligned 4 KiB block of VRAM. (The 32-byte v2 root and the
/// 256-byte big page tables could be packed; RM allocates the whole root page because the GMMU
/// may prefetch beyond the used entries, `mmu-formats.md` §1.1.)
pub const TABLE_BYTES: u64 = 4096;

/// Why a page table could not be allocated.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PtAllocError {
    /// No VRAM left for page tables.
    #[error("out of VRAM for page tables")]
    OutOfMemory,
    /// The allocator failed in its own way (an injected fault, an errno).
    #[error("page-table allocator error {0}")]
    Backend(i32),
}

/// A fallible source of page-table memory.
pub trait PageTableAllocator {
    /// Allocates [`TABLE_BYTES`] of VRAM aligned to [`TABLE_BYTES`]. The content is undefined;
    /// the manager zeroes it before use.
    ///
    /// # Errors
    ///
    /// [`PtAllocError`] when no table can be had.
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError>;

    /// Returns a table obtained from [`PageTableAllocator::alloc_table`]. The GPU can no longer
    /// reach it: the manager unlinked it and its TLB invalidate completed.
    fn free_table(&mut self, addr: VramAddress);
}

impl<T: PageTableAllocator + ?Sized> PageTableAllocator for &mut T {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        (**self).alloc_table()
    }
    fn free_table(&mut self, addr: VramAddress) {
        (**self).free_table(addr);
    }
}
