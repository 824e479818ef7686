//! Page tables from the VRAM buddy allocator: [`PageTableAllocator`] for [`Buddy`].
//!
//! A page table is one 4 KiB block ([`TABLE_BYTES`]); on a pool with bigger chunks a table takes
//! one whole chunk. Placement is the caller's choice ([`TablePlacement`]); the default is
//! top-down, so page tables collect at the top of VRAM, away from the buffers that the default
//! (`Simple`) placement and range allocations hand out, and grouped together, which keeps PRAMIN
//! window moves few. Nothing here allocates host memory (the block goes into a one-slot
//! [`SliceSink`]), so it works over [`Buddy::with_storage`] inside a kernel.

use crate::addr::VramAddress;
use crate::buddy::{AllocMode, AllocRequest, Block, Buddy, BuddyError, SliceSink};

use super::alloc_trait::{PageTableAllocator, PtAllocError, TABLE_BYTES};

/// Where page tables go in the pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum TablePlacement {
    /// The highest free address (the default: tables stay away from buffers).
    #[default]
    TopDown,
    /// The buddy allocator's default placement (smallest free order, highest address there).
    Simple,
    /// Inside `[start, end)` (absolute addresses), e.g. a region reserved for page tables.
    Range {
        /// First allowed byte.
        start: u64,
        /// One past the last allowed byte.
        end: u64,
    },
}

impl TablePlacement {
    fn mode(self) -> AllocMode {
        match self {
            Self::TopDown => AllocMode::TopDown,
            Self::Simple => AllocMode::Simple,
            Self::Range { start, end } => AllocMode::Range { start, end },
        }
    }
}

/// The error a buddy failure becomes: no space is [`PtAllocError::OutOfMemory`], anything else
/// (bad parameters, a pool whose blocks are not 4 KiB aligned) is [`PtAllocError::Backend`] with
/// the errno gpu_buddy would return.
#[must_use]
pub const fn pt_alloc_error(e: BuddyError) -> PtAllocError {
    match e {
        BuddyError::NoSpace => PtAllocError::OutOfMemory,
        other => PtAllocError::Backend(other.errno()),
    }
}

/// `-EINVAL`: a block that cannot hold a page table (not 4 KiB aligned).
const EINVAL: i32 = -22;

/// Page tables from a [`Buddy`], placed as chosen, with counts.
#[derive(Debug)]
pub struct BuddyTables<'b, 'a> {
    buddy: &'b mut Buddy<'a>,
    placement: TablePlacement,
    allocated: u64,
    freed: u64,
    free_errors: u64,
}

impl<'b, 'a> BuddyTables<'b, 'a> {
    /// Page tables from `buddy`, placed by `placement`.
    pub fn new(buddy: &'b mut Buddy<'a>, placement: TablePlacement) -> Self {
        BuddyTables {
            buddy,
            placement,
            allocated: 0,
            freed: 0,
            free_errors: 0,
        }
    }

    /// The allocator.
    #[must_use]
    pub fn buddy(&self) -> &Buddy<'a> {
        self.buddy
    }

    /// The placement in use.
    #[must_use]
    pub fn placement(&self) -> TablePlacement {
        self.placement
    }

    /// Tables handed out so far.
    #[must_use]
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Tables returned so far.
    #[must_use]
    pub fn freed(&self) -> u64 {
        self.freed
    }

    /// Frees the buddy refused (a table it did not hand out, or a double free): the manager
    /// never does that, so this stays 0.
    #[must_use]
    pub fn free_errors(&self) -> u64 {
        self.free_errors
    }
}

/// Allocates one table from `buddy` at `placement`.
fn alloc_one(
    buddy: &mut Buddy<'_>,
    placement: TablePlacement,
) -> Result<VramAddress, PtAllocError> {
    let size = TABLE_BYTES.max(buddy.chunk_size());
    let req = AllocRequest::new(placement.mode(), size, size);
    let mut slot = [Block::EMPTY];
    let mut sink = SliceSink::new(&mut slot);
    buddy.alloc_into(&req, &mut sink).map_err(pt_alloc_error)?;
    let block = match sink.as_slice() {
        [b] => *b,
        // One request of one aligned block yields one block; anything else is given back.
        blocks => {
            let _ = buddy.free_blocks(blocks, false);
            return Err(PtAllocError::Backend(EINVAL));
        }
    };
    if block.offset() % TABLE_BYTES != 0 {
        // A pool whose base is not 4 KiB aligned cannot hold page tables.
        let _ = buddy.free_blocks(&[block], false);
        return Err(PtAllocError::Backend(EINVAL));
    }
    Ok(VramAddress::new(block.offset()))
}

/// Returns the table at `addr` (one block of order 0: a table is one chunk).
fn free_one(buddy: &mut Buddy<'_>, addr: VramAddress) -> Result<(), BuddyError> {
    // A table handed back held entries: it is dirty.
    buddy.free_at(addr.raw(), 0, false)
}

impl PageTableAllocator for BuddyTables<'_, '_> {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        let a = alloc_one(self.buddy, self.placement)?;
        self.allocated = self.allocated.saturating_add(1);
        Ok(a)
    }

    fn free_table(&mut self, addr: VramAddress) {
        match free_one(self.buddy, addr) {
            Ok(()) => self.freed = self.freed.saturating_add(1),
            Err(_) => self.free_errors = self.free_errors.saturating_add(1),
        }
    }
}

/// Top-down page tables straight from the allocator ([`BuddyTables`] chooses the placement and
/// counts). A refused free (which the manager never causes) is ignored: `free_table` cannot fail.
impl PageTableAllocator for Buddy<'_> {
    fn alloc_table(&mut self) -> Result<VramAddress, PtAllocError> {
        alloc_one(self, TablePlacement::TopDown)
    }

    fn free_table(&mut self, addr: VramAddress) {
        let _ = free_one(self, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buddy::BuddyParams;
    use crate::mmu::{MmuV2, MmuV3, PteAttrs};
    use crate::vmm::tests::{LogTlb, MemVram};
    use crate::vmm::{PhysRun, SpaceConfig, SpaceKind, VaPlacement, VecAddressSpace};
    use crate::walk::PtFormat;
    use crate::{Chip, VirtAddr};

    extern crate std;

    const POOL: u64 = 64 << 20;

    fn params(base: u64, size: u64, chunk: u64) -> BuddyParams {
        BuddyParams {
            base_offset: base,
            size,
            chunk_size: chunk,
        }
    }

    #[test]
    fn top_down_tables_sit_at_the_top_and_come_back() {
        let p = params(16 << 20, POOL, 4096);
        let mut storage = [0u64; 4096];
        assert!(Buddy::metadata_words(&p) <= storage.len());
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        let full = b.avail();
        let mut t = BuddyTables::new(&mut b, TablePlacement::default());
        let a = t.alloc_table().unwrap();
        let c = t.alloc_table().unwrap();
        assert_eq!(a.raw(), (16 << 20) + POOL - 4096);
        assert_eq!(c.raw(), (16 << 20) + POOL - 8192);
        t.free_table(a);
        t.free_table(c);
        assert_eq!((t.allocated(), t.freed(), t.free_errors()), (2, 2, 0));
        // A double free is refused by the buddy and counted, nothing else.
        t.free_table(c);
        assert_eq!(t.free_errors(), 1);
        assert_eq!(b.avail(), full);
    }

    #[test]
    fn placement_is_a_choice() {
        let p = params(0, POOL, 4096);
        let mut storage = [0u64; 4096];
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        let mut t = BuddyTables::new(
            &mut b,
            TablePlacement::Range {
                start: 1 << 20,
                end: 2 << 20,
            },
        );
        for _ in 0..256 {
            let a = t.alloc_table().unwrap().raw();
            assert!((1 << 20..2 << 20).contains(&a) && a % 4096 == 0);
        }
        assert_eq!(t.alloc_table(), Err(PtAllocError::OutOfMemory));
        let mut t = BuddyTables::new(&mut b, TablePlacement::Simple);
        assert!(t.alloc_table().is_ok());
    }

    #[test]
    fn errors_are_mapped() {
        // Bigger chunks: a table takes one chunk.
        let p = params(0, POOL, 64 << 10);
        let mut storage = [0u64; 4096];
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        let a = b.alloc_table().unwrap();
        assert_eq!(a.raw() % (64 << 10), 0);
        assert_eq!(b.avail(), POOL - (64 << 10));
        b.free_table(a);
        assert_eq!(b.avail(), POOL);
        // Exhaustion.
        let p = params(0, 8192, 4096);
        let mut storage = [0u64; 64];
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        b.alloc_table().unwrap();
        b.alloc_table().unwrap();
        assert_eq!(b.alloc_table(), Err(PtAllocError::OutOfMemory));
        assert_eq!(
            pt_alloc_error(BuddyError::NoMemory),
            PtAllocError::Backend(-12)
        );
        assert_eq!(
            pt_alloc_error(BuddyError::NoSpace),
            PtAllocError::OutOfMemory
        );
        // A range outside the pool is a bad argument, not "no memory".
        let mut t = BuddyTables::new(
            &mut b,
            TablePlacement::Range {
                start: 1 << 40,
                end: (1 << 40) + 4096,
            },
        );
        assert!(matches!(t.alloc_table(), Err(PtAllocError::Backend(_))));
    }

    fn space_returns_to_avail<M: PtFormat>(chip: Chip) {
        let p = params(1 << 30, 256 << 20, 4096);
        let mut storage = std::vec![0u64; Buddy::metadata_words(&p)];
        let mut b = Buddy::with_storage(p, &mut storage).unwrap();
        let baseline = b.avail();
        let mut vram = MemVram::new(2 << 30);
        let mut tlb = LogTlb::default();
        let cfg = SpaceConfig {
            chip,
            va_start: 0,
            va_end: 1 << 48,
            kind: SpaceKind::Gpu,
        };
        let mut s = VecAddressSpace::<M>::new_vec(cfg, &mut b, &mut vram).unwrap();
        assert!(s.root().raw() >= 1 << 30);
        let runs = [PhysRun::vram(
            crate::VramAddress::new(0x1000_0000),
            0x40_5000,
        )];
        let (m, st) = s
            .map(
                &mut b,
                &mut vram,
                &mut tlb,
                VaPlacement::Fixed(VirtAddr::new(0x40_0000_0000 + 0x3000)),
                &runs,
                PteAttrs::default(),
                None,
            )
            .unwrap();
        assert!(st.tables_allocated > 2);
        assert!(b.avail() < baseline);
        s.unmap(&mut b, &mut vram, &mut tlb, m)
            .map_err(|(_, e)| e)
            .unwrap();
        s.destroy(&mut b);
        assert_eq!(b.avail(), baseline);
        assert!(b.leak_report().is_none());
    }

    #[test]
    fn vmm_over_buddy_returns_to_avail() {
        space_returns_to_avail::<MmuV2>(Chip::Ampere);
        space_returns_to_avail::<MmuV3>(Chip::Hopper);
    }
}
