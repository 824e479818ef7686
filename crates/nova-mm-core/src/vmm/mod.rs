//! The address-space manager (VMM): map, unmap, protect and sparse reservations over the page
//! tables of one GPU address space, generic over MMU v2 and v3.
//!
//! # The fence-safe protocol (`nova-series.md` §5, points 3-7, 18, 19)
//!
//! Every change is three steps:
//!
//! 1. **prepare** (`prepare_map`, `prepare_sparse`, `prepare_unmap`, `prepare_protect`):
//!    validates, reserves the VA range, allocates and zeroes every page table the operation
//!    needs, and reserves all host bookkeeping. It takes references on the tables it will use
//!    (nouveau's "ref"), so other operations prepared or executed in between cannot free them.
//!    It is the only step that allocates and the only one that can fail for lack of memory; it
//!    writes nothing the hardware can see.
//! 2. **execute** (`execute`): writes the entries bottom-up (leaf runs first, then the directory
//!    entries that link new tables or unlink emptied ones), each table's run in one bulk
//!    [`VramAccess`] call, then issues exactly **one** TLB invalidate with the minimal cache level
//!    (the highest level written, counted from the root of the right MMU version), ack
//!    `Globally` when translations are removed or downgraded, hub-TLB-only for BAR spaces. It
//!    allocates nothing and takes no lock. If a backend call fails, it writes back every old
//!    value and the operation is handed back unchanged, so the hardware sees exactly the state
//!    from before.
//! 3. **cleanup** ([`AddressSpace::cleanup`]): returns the tables that executed operations
//!    emptied and unlinked to the allocator, after their invalidate completed.
//!
//! A prepared operation is consumed by `execute` or by `cancel` (which returns everything it
//! took); the types carry `#[must_use]` so that forgetting either is a warning. Dropping one
//! without either keeps its reservation (VA, table references; for an unmap, the mapping
//! itself) until the address space is destroyed, which returns every table the space
//! allocated; it never panics and never changes what the hardware sees (see [`Prepared`]).
//!
//! # Storage
//!
//! Host bookkeeping lives in [`Slab`]s the embedder provides ([`FixedSlab`] over `&mut [T]`),
//! or in `Vec`s with the `alloc` feature ([`VecAddressSpace`]), grown only with `try_reserve`
//! and only in prepare. VA reservations go through [`VaRanges`], implemented by the interval
//! tree of [`crate::va_alloc`] (the default) and by the small [`SortedVa`].
//!
//! # Page sizes
//!
//! Without a pinned size, every aligned piece gets the largest page the chip allows
//! ([`crate::Chip::supports_page_size`]) that the VA alignment, the PA alignment and the run
//! length permit: 256 GiB (PD2, Blackwell), 512 MiB (PD1, Ampere+), 2 MiB (PD0), 64 KiB (big
//! page table under the dual PD0 entry), 4 KiB (small page table). Both page tables of a PD0
//! entry can be live at once; each 64 KiB slot of the big table that is not itself a big page
//! holds `0` (use the small table) while some 4 KiB PTE below it is live and "no valid 4 KiB"
//! otherwise, maintained from per-64 KiB counts as the small table fills and empties.
//!
//! # How the nova-series review points are answered (`nova-series.md` §5)
//!
//! - **3, 4 (DMA-fence rules, deadlock catalogue):** only prepare allocates (page tables
//!   through [`PageTableAllocator`], host bookkeeping through [`Slab::try_reserve`]); execute
//!   takes `&mut self`, allocates nothing, takes no lock of its own and can only fail when the
//!   backend fails. The embedder can therefore hold its page-table lock only around execute
//!   and run prepare (and cleanup) under a separate lock: the state execute needs was
//!   reserved by prepare.
//! - **5 (unmap shares the allocator lock):** execute of an unmap only unlinks emptied tables
//!   and queues them; [`AddressSpace::cleanup`] returns them to the allocator later, outside
//!   the fence path.
//! - **6 (nouveau ref/map/unmap/unref):** prepare = ref (tables created and referenced, so a
//!   concurrent unmap cannot free them), execute = map/unmap, cleanup = unref's free.
//!   Several prepared operations may be outstanding on disjoint VA; tables they share are
//!   reference-counted, and the one that executes first links them.
//! - **7 (amdgpu: only invalidations in the critical path):** tables are allocated and zeroed
//!   in prepare; execute is writes plus one invalidate.
//! - **9 (symmetric dual PDE):** both halves of a PD0 entry are tracked and linked on their
//!   own; the formats expose both (`DualPdeState::Tables { big, small }`).
//! - **11 (per-page flush):** one invalidate per operation, at the minimal cache level, with a
//!   VA range covering exactly what changed (aligned to the span of the highest entry
//!   written), `AckMode::Globally` for unmaps and protection changes, `hub_tlb_only` for BAR
//!   spaces.
//! - **14 (version dispatch):** everything is generic over [`crate::mmu::MmuFormat`] (static
//!   dispatch, `MmuV2`/`MmuV3`) through [`PtFormat`]; no per-entry runtime enum.
//! - **15 (VA layout, BAR1 size):** the level geometry comes from the format tables; the space
//!   limits come from [`SpaceConfig`] (e.g. the BAR1 size of the PCI resource).
//! - **16 (VA allocator):** reservations use the O(log n) interval tree of
//!   [`crate::va_alloc`], not a second buddy.
//! - **18 (page-table lifetime):** tables are reference-counted; an emptied table is unlinked
//!   in the same execute and freed by cleanup after the invalidate completed; unmapping
//!   everything leaves only the root.
//! - **19 (error handling):** prepared operations, mappings and BAR1 windows are consumed by
//!   the calls that release them and handed back on failure; nothing warns-and-leaks; a
//!   failed execute restores every entry it wrote (saved entries of unmap/protect are kept,
//!   compressed, in the operation).

pub mod alloc_trait;
pub mod bar1;
pub mod buddy_tables;
mod engine;
pub mod node;
pub mod store;
#[cfg(test)]
mod tests;
pub mod va;

use core::fmt;
use core::marker::PhantomData;

use crate::addr::{PageSize, PhysAddr, VirtAddr, VramAddress};
use crate::chip::Chip;
use crate::mmu::{PteAperture, PteAttrs, PteMapping, PteState};
use crate::tlb::{CacheLevel, TlbError, TlbInvalidate};
use crate::vram::{VramAccess, VramError};
use crate::walk::{self, PtFormat, Translation, WalkError, WalkItem};

pub use alloc_trait::{PageTableAllocator, PtAllocError, TABLE_BYTES};
pub use bar1::{
    pages_to_runs, Bar1Error, Bar1Guard, Bar1Io, Bar1Span, Bar1UnmapFailure, Bar1Window,
};
pub use buddy_tables::{BuddyTables, TablePlacement};
pub use engine::Seg;
pub use node::{Kids, Node, NodeKind};
pub use store::{FixedSlab, NoRoom, Slab};
pub use va::{SortedVa, VaError, VaInterval, VaRanges};

use node::KID_NONE;

/// One physically contiguous piece of memory to map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysRun {
    /// Where it is.
    pub aperture: PteAperture,
    /// Peer slot (0..=7) when `aperture` is `Peer`, else 0.
    pub peer_id: u8,
    /// First byte (4 KiB aligned).
    pub addr: PhysAddr,
    /// Length in bytes (a multiple of 4 KiB).
    pub len: u64,
}

impl PhysRun {
    /// A run of VRAM.
    #[must_use]
    pub const fn vram(addr: VramAddress, len: u64) -> Self {
        Self {
            aperture: PteAperture::Vidmem,
            peer_id: 0,
            addr: PhysAddr::new(addr.raw()),
            len,
        }
    }
}

/// Where to put a new mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VaPlacement {
    /// Exactly at this VA.
    Fixed(VirtAddr),
    /// Anywhere free in the space, aligned to at least this (a power of two; the manager
    /// raises it to the largest page size the first run could use).
    Anywhere {
        /// Minimum alignment in bytes.
        align: u64,
    },
}

/// What kind of address space, which decides the TLB invalidate scope.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpaceKind {
    /// A GPU context's address space: invalidates reach every TLB.
    Gpu,
    /// A BAR1/BAR2 address space, used only by the host interface: `HUBTLB_ONLY` invalidates.
    Bar,
}

/// Limits and identity of an address space.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SpaceConfig {
    /// The chip, which decides the legal page sizes.
    pub chip: Chip,
    /// First usable VA.
    pub va_start: u64,
    /// Exclusive end of the usable VA (e.g. the BAR1 size, from the PCI resource).
    pub va_end: u64,
    /// GPU or BAR space.
    pub kind: SpaceKind,
}

/// Why an address-space operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VmmError {
    /// The chip does not use this page-table format.
    #[error("chip {0} does not use this MMU version")]
    WrongFormat(Chip),
    /// The VA range is empty, misaligned, or outside the space's limits.
    #[error("invalid VA range")]
    BadRange,
    /// The physical runs are misaligned, empty, do not add up to the length, or do not fit.
    #[error("invalid physical runs")]
    BadRuns,
    /// The requested page size is not legal on this chip, or the range/runs are not aligned to
    /// it.
    #[error("page size {0} cannot be used here")]
    BadPageSize(PageSize),
    /// The attributes cannot be encoded (kind, peer id).
    #[error("attributes cannot be encoded in this MMU version")]
    BadAttrs,
    /// A system-memory or peer run was passed to the safe entry point.
    #[error("non-VRAM aperture needs the unsafe entry point")]
    ExternalAperture,
    /// The VA range overlaps another mapping or reservation.
    #[error(transparent)]
    Va(#[from] VaError),
    /// A page table could not be allocated.
    #[error(transparent)]
    PtAlloc(#[from] PtAllocError),
    /// Host bookkeeping could not grow.
    #[error(transparent)]
    NoRoom(#[from] NoRoom),
    /// A VRAM access failed.
    #[error("VRAM access failed: {0}")]
    Vram(#[from] VramError),
    /// The TLB invalidate failed.
    #[error("TLB invalidate failed: {0}")]
    Tlb(#[from] TlbError),
    /// A VRAM access failed while rolling back after another failure: the hardware state of
    /// the range is unknown.
    #[error("rollback failed after {first}: {rollback}")]
    RollbackFailed {
        /// The failure that started the rollback.
        first: VramError,
        /// The failure during the rollback.
        rollback: VramError,
    },
    /// The operation was prepared on another address space.
    #[error("operation belongs to another address space")]
    WrongSpace,
    /// A protect range would split a page, or covers VA that is not mapped.
    #[error("range does not cover whole mapped pages")]
    SplitsPage,
    /// Reading or importing the existing tables failed.
    #[error("walk failed: {0}")]
    Walk(#[from] WalkError),
    /// The shadow and the request disagree (a bug or a corrupted shadow); nothing was changed.
    #[error("page-table shadow is inconsistent")]
    Inconsistent,
}

/// What an operation did, for statistics and the benchmarks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpStats {
    /// Page tables allocated (prepare).
    pub tables_allocated: u64,
    /// Page tables unlinked and queued for cleanup (execute).
    pub tables_unlinked: u64,
    /// Bulk VRAM write calls (execute).
    pub bulk_writes: u64,
    /// 64-bit words written (execute).
    pub words_written: u64,
    /// TLB invalidates (execute): 1, or 0 when nothing changed.
    pub invalidates: u64,
    /// The cache level of the invalidate.
    pub cache_level: Option<CacheLevel>,
    /// Leaf entries (PTEs of any size) written.
    pub leaves: u64,
}

/// A mapping or sparse reservation made by this address space. Not `Clone`: unmapping
/// consumes it, so a range cannot be unmapped twice.
#[derive(PartialEq, Eq, Debug)]
#[must_use = "a mapping is only released by unmapping it"]
pub struct Mapping {
    va: VirtAddr,
    len: u64,
    sparse: bool,
    space: u64,
}

impl Mapping {
    /// First VA.
    #[must_use]
    pub fn va(&self) -> VirtAddr {
        self.va
    }
    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether it is empty (never: mappings have a length).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether it is a sparse reservation rather than a mapping.
    #[must_use]
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }
}

/// The operation kinds a prepared operation can carry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpKind<'r> {
    Map {
        runs: &'r [PhysRun],
        attrs: PteAttrs,
        pinned: Option<PageSize>,
    },
    Sparse,
    Unmap,
    Protect(PteAttrs),
}

/// A prepared operation: tables allocated, references taken, VA reserved; nothing visible to
/// the hardware yet. Consume it with [`AddressSpace::execute`] or [`AddressSpace::cancel`].
///
/// # Dropping one
///
/// "Leaks are impossible" holds in this sense: the type cannot be copied, and the only ways to
/// consume it (execute, cancel) account for everything it holds; `Drop` does nothing (it has no
/// access to the space or the allocator, so it cannot return anything, and it never panics).
/// A `Prepared` dropped without execute or cancel therefore keeps, for the rest of the space's
/// life:
///
/// - a map or sparse reservation: its VA reservation and its references on the page tables it
///   allocated or shares, so those tables are never unlinked or freed by later unmaps;
/// - an unmap: the mapping it consumed, which stays mapped (and its VA reserved) with no
///   [`Mapping`] left to unmap it;
/// - a protect: nothing (only its saved entries, which are dropped with it).
///
/// Nothing visible to the hardware changes, and [`AddressSpace::destroy`] still returns every
/// table the space allocated, so the memory comes back when the space goes away.
#[must_use = "a prepared operation holds page tables and VA until executed or cancelled; \
              dropped, they stay reserved until the address space is destroyed"]
pub struct Prepared<'r, G> {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) kind: OpKind<'r>,
    pub(crate) space: u64,
    pub(crate) segs: G,
    pub(crate) stats: OpStats,
    /// Unmap: whether the VA is released (mapping) — always true for unmap.
    pub(crate) sparse_mapping: bool,
}

impl<G> fmt::Debug for Prepared<'_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("start", &format_args!("{:#x}", self.start))
            .field("end", &format_args!("{:#x}", self.end))
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<G> Prepared<'_, G> {
    /// The VA range the operation covers.
    #[must_use]
    pub fn range(&self) -> (VirtAddr, u64) {
        (
            VirtAddr::new(self.start),
            self.end.saturating_sub(self.start),
        )
    }
    /// Statistics of the prepare step.
    #[must_use]
    pub fn stats(&self) -> OpStats {
        self.stats
    }
}

/// What a successful execute returns.
#[derive(Debug)]
#[must_use = "holds the mapping of a map or sparse operation"]
pub enum Executed {
    /// A map or sparse reservation: the new mapping.
    Mapped(Mapping, OpStats),
    /// An unmap or protect.
    Done(OpStats),
}

/// A failed execute: the hardware state is as before, and the operation is handed back to be
/// retried or cancelled.
#[derive(Debug)]
#[must_use = "the failed operation still holds its reservations: retry it or cancel it"]
pub struct ExecFailed<'r, G> {
    /// The operation, still prepared.
    pub op: Prepared<'r, G>,
    /// Why it failed.
    pub error: VmmError,
}

/// One GPU address space: a root page directory and the tables under it.
pub struct AddressSpace<M, N, K, V> {
    pub(crate) cfg: SpaceConfig,
    pub(crate) root_addr: VramAddress,
    pub(crate) root_owned: bool,
    pub(crate) nodes: N,
    pub(crate) kids: K,
    pub(crate) va: V,
    pub(crate) free_nodes: u32,
    pub(crate) free_kids: u32,
    pub(crate) pending: u32,
    pub(crate) scratch: [u64; 512],
    pub(crate) id: u64,
    /// Bit `shift` set for every page size legal on the chip and the format.
    pub(crate) allowed_sizes: u64,
    _m: PhantomData<M>,
}

impl<M, N, K, V> fmt::Debug for AddressSpace<M, N, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressSpace")
            .field("cfg", &self.cfg)
            .field("root", &self.root_addr)
            .finish_non_exhaustive()
    }
}

/// The VA reservations of [`VecAddressSpace`]: the O(log n) interval allocator of
/// [`crate::va_alloc`] over a `Vec`.
#[cfg(feature = "alloc")]
pub type DefaultVa = crate::va_alloc::VaAllocator<alloc::vec::Vec<crate::va_alloc::VaNode>>;
/// The VA reservations of [`VecAddressSpace`] in unit tests built without `alloc`.
#[cfg(all(test, not(feature = "alloc")))]
pub type DefaultVa = SortedVa<alloc::vec::Vec<VaInterval>>;

#[cfg(feature = "alloc")]
fn default_va(cfg: &SpaceConfig) -> Result<DefaultVa, VmmError> {
    crate::va_alloc::VaAllocator::new_vec(
        VirtAddr::new(cfg.va_start),
        VirtAddr::new(cfg.va_end),
        crate::addr::PAGE_BYTES,
    )
    .map_err(|_| VmmError::BadRange)
}

#[cfg(all(test, not(feature = "alloc")))]
fn default_va(_: &SpaceConfig) -> Result<DefaultVa, VmmError> {
    Ok(SortedVa::new(alloc::vec::Vec::new()))
}

/// An address space whose bookkeeping lives in `Vec`s (the `alloc` feature).
#[cfg(any(feature = "alloc", test))]
pub type VecAddressSpace<M> =
    AddressSpace<M, alloc::vec::Vec<Node>, alloc::vec::Vec<Kids>, DefaultVa>;

#[cfg(any(feature = "alloc", test))]
impl<M: PtFormat> VecAddressSpace<M> {
    /// [`AddressSpace::new`] with `Vec` bookkeeping.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::new`].
    pub fn new_vec<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        cfg: SpaceConfig,
        alloc: &mut A,
        vram: &mut W,
    ) -> Result<Self, VmmError> {
        Self::new(
            cfg,
            alloc::vec::Vec::new(),
            alloc::vec::Vec::new(),
            default_va(&cfg)?,
            alloc,
            vram,
        )
    }

    /// [`AddressSpace::over_existing`] with `Vec` bookkeeping.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::over_existing`].
    pub fn over_existing_vec<W: VramAccess + ?Sized>(
        cfg: SpaceConfig,
        root: VramAddress,
        vram: &mut W,
    ) -> Result<Self, VmmError> {
        Self::over_existing(
            cfg,
            root,
            alloc::vec::Vec::new(),
            alloc::vec::Vec::new(),
            default_va(&cfg)?,
            vram,
        )
    }
}

static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges> AddressSpace<M, N, K, V> {
    /// The space over `root` with empty bookkeeping. The result is returned, not patched
    /// afterwards (`root_owned` is an argument): an `AddressSpace` holds a 4 KiB table image,
    /// and every extra copy on the way to the caller costs that much kernel stack.
    ///
    /// `on_err` runs before an error is returned (`new` frees the root there), so that callers
    /// can return this function's result directly.
    fn empty(
        cfg: SpaceConfig,
        root: VramAddress,
        root_owned: bool,
        (nodes, kids, va): (N, K, V),
        on_err: impl FnOnce(),
    ) -> Result<Self, VmmError> {
        if cfg.chip.mmu_version() != M::VERSION {
            on_err();
            return Err(VmmError::WrongFormat(cfg.chip));
        }
        if cfg.va_start >= cfg.va_end
            || cfg.va_end > walk::va_end::<M>()
            || cfg.va_start % crate::addr::PAGE_BYTES != 0
            || cfg.va_end % crate::addr::PAGE_BYTES != 0
        {
            on_err();
            return Err(VmmError::BadRange);
        }
        let mut s = Self {
            cfg,
            root_addr: root,
            root_owned,
            nodes,
            kids,
            va,
            free_nodes: KID_NONE,
            free_kids: KID_NONE,
            pending: KID_NONE,
            scratch: [0; 512],
            id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            allowed_sizes: 0,
            _m: PhantomData,
        };
        for ps in PageSize::ALL {
            if s.size_allowed_pub(ps) {
                s.allowed_sizes |= 1 << ps.shift();
            }
        }
        s.nodes.truncate(0);
        s.kids.truncate(0);
        let root_node = match s.new_node(root, 0, NodeKind::Dir) {
            Ok(n) => n,
            Err(e) => {
                on_err();
                return Err(e);
            }
        };
        if let Some(n) = s.nodes.get_mut(engine::idx(root_node)) {
            // The root is pinned: always referenced and always "linked".
            n.refs = 1;
            n.live = 1;
        }
        Ok(s)
    }

    /// Creates an address space over a new, zeroed root it allocates.
    ///
    /// # Errors
    ///
    /// [`VmmError::WrongFormat`] / [`VmmError::BadRange`] for a bad configuration, or an
    /// allocation or VRAM failure (nothing is leaked).
    pub fn new<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        cfg: SpaceConfig,
        nodes: N,
        kids: K,
        va: V,
        alloc: &mut A,
        vram: &mut W,
    ) -> Result<Self, VmmError> {
        let root = alloc.alloc_table()?;
        if let Err(e) = vram.fill_u64(root, 0, TABLE_BYTES / 8) {
            alloc.free_table(root);
            return Err(e.into());
        }
        // Returned as built, without a local that holds the space (see `empty`).
        Self::empty(cfg, root, true, (nodes, kids, va), || {
            alloc.free_table(root)
        })
    }

    /// Creates an address space over an existing root page directory, such as the BAR1 page
    /// directory the GPU firmware set up (`bar1PdeBase`). The existing tables and entries are
    /// imported into the shadow as foreign: they are never freed or overwritten, and the VA
    /// they map is reserved.
    ///
    /// # Errors
    ///
    /// A bad configuration, a VRAM failure, corrupt existing tables ([`VmmError::Walk`]), or
    /// lack of bookkeeping storage.
    pub fn over_existing<W: VramAccess + ?Sized>(
        cfg: SpaceConfig,
        root: VramAddress,
        nodes: N,
        kids: K,
        va: V,
        vram: &mut W,
    ) -> Result<Self, VmmError> {
        let mut s = Self::empty(cfg, root, false, (nodes, kids, va), || ())?;
        if let Some(n) = s.nodes.get_mut(0) {
            n.foreign = true;
        }
        s.import(vram)?;
        Ok(s)
    }

    /// The root page directory (the PDB to put in an instance block).
    #[must_use]
    pub fn root(&self) -> VramAddress {
        self.root_addr
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> SpaceConfig {
        self.cfg
    }

    /// Translates one VA by walking the tables in VRAM (not the shadow).
    ///
    /// # Errors
    ///
    /// [`WalkError`] on VRAM failures or corrupt tables.
    pub fn translate<W: VramAccess + ?Sized>(
        &self,
        vram: &mut W,
        va: VirtAddr,
    ) -> Result<Translation, WalkError> {
        walk::translate::<M, W>(self.cfg.chip, vram, self.root_addr, va)
    }

    /// Visits every mapped page and sparse range in `[start, end)` (from VRAM), in VA order.
    ///
    /// # Errors
    ///
    /// As [`walk::walk_range`].
    pub fn for_each_mapping<W: VramAccess + ?Sized>(
        &self,
        vram: &mut W,
        start: VirtAddr,
        end: VirtAddr,
        visit: impl FnMut(WalkItem) -> core::ops::ControlFlow<()>,
    ) -> Result<walk::WalkStats, WalkError> {
        walk::walk_range::<M, W>(self.cfg.chip, vram, self.root_addr, start, end, visit)
    }

    /// Number of page tables the space holds (root and foreign tables included; pending ones
    /// too until cleanup).
    #[must_use]
    pub fn table_count(&self) -> usize {
        let mut n = 0usize;
        for i in 0..self.nodes.len() {
            if self.nodes.get(i).is_some_and(|x| x.kind != NodeKind::Free) {
                n = n.saturating_add(1);
            }
        }
        n
    }

    /// Returns the tables that executed operations unlinked to the allocator. Their
    /// invalidates have completed (execute only queues a table after its invalidate), so the
    /// GPU can no longer reach them. Returns how many tables were freed.
    pub fn cleanup<A: PageTableAllocator + ?Sized>(&mut self, alloc: &mut A) -> usize {
        let mut n = 0usize;
        let mut cur = self.pending;
        self.pending = KID_NONE;
        while node::is_node(cur) {
            let Some(node) = self.nodes.get(engine::idx(cur)).copied() else {
                break;
            };
            if !node.foreign {
                alloc.free_table(node.addr);
                n = n.saturating_add(1);
            }
            let next = node.link;
            self.release_node(cur);
            cur = next;
        }
        n
    }

    /// Destroys the space: every table it allocated (the root too, if it allocated it) goes
    /// back to the allocator, whatever mappings or prepared operations remain. The caller
    /// guarantees the GPU no longer uses the space (unbound from every instance block).
    pub fn destroy<A: PageTableAllocator + ?Sized>(mut self, alloc: &mut A) {
        let _ = self.cleanup(alloc);
        for i in 0..self.nodes.len() {
            let Some(n) = self.nodes.get(i).copied() else {
                continue;
            };
            if n.kind == NodeKind::Free || n.foreign {
                continue;
            }
            if i == 0 && !self.root_owned {
                continue;
            }
            alloc.free_table(n.addr);
        }
    }

    fn check_space(&self, id: u64) -> Result<(), VmmError> {
        if id == self.id {
            Ok(())
        } else {
            Err(VmmError::WrongSpace)
        }
    }

    /// Validates a range against the space limits and 4 KiB alignment.
    fn check_range(&self, start: u64, len: u64) -> Result<u64, VmmError> {
        let end = start.checked_add(len).ok_or(VmmError::BadRange)?;
        if len == 0
            || start < self.cfg.va_start
            || end > self.cfg.va_end
            || start % crate::addr::PAGE_BYTES != 0
            || len % crate::addr::PAGE_BYTES != 0
        {
            return Err(VmmError::BadRange);
        }
        Ok(end)
    }

    /// Prepares mapping VRAM runs (safe: the GPU only reaches its own memory).
    ///
    /// `runs` are mapped back to back from the chosen VA; their total length is the mapping's
    /// length. Without `page_size`, each aligned piece gets the largest page size the chip
    /// allows that fits it; with it, every page has that size and everything must be aligned to
    /// it.
    ///
    /// # Errors
    ///
    /// [`VmmError::ExternalAperture`] if a run is not VRAM; otherwise as
    /// [`AddressSpace::prepare_map_external`].
    pub fn prepare_map<'r, A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        placement: VaPlacement,
        runs: &'r [PhysRun],
        attrs: PteAttrs,
        page_size: Option<PageSize>,
    ) -> Result<Prepared<'r, ()>, VmmError> {
        if runs.iter().any(|r| r.aperture != PteAperture::Vidmem) {
            return Err(VmmError::ExternalAperture);
        }
        self.prepare_map_inner(alloc, vram, placement, runs, attrs, page_size)
    }

    /// Prepares mapping runs in any aperture, including system memory and peer GPUs.
    ///
    /// # Safety
    ///
    /// Once executed, the GPU can read (and unless `attrs.read_only`, write) the system or peer
    /// memory the runs name, by DMA, at any time until the mapping is unmapped and its
    /// invalidate completed. The caller guarantees that for that whole time the memory stays
    /// allocated to this purpose (pinned, not reused, not freed), that the addresses are the
    /// device's view (IOVA after the IOMMU), and that the peer slots named by `Peer(id)` are
    /// set up.
    ///
    /// # Errors
    ///
    /// [`VmmError::BadRange`], [`VmmError::BadRuns`], [`VmmError::BadPageSize`],
    /// [`VmmError::BadAttrs`] for bad input; [`VmmError::Va`] when the VA is taken;
    /// [`VmmError::PtAlloc`] / [`VmmError::NoRoom`] / [`VmmError::Vram`] when a table cannot be
    /// allocated or zeroed (everything taken is returned).
    pub unsafe fn prepare_map_external<
        'r,
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        placement: VaPlacement,
        runs: &'r [PhysRun],
        attrs: PteAttrs,
        page_size: Option<PageSize>,
    ) -> Result<Prepared<'r, ()>, VmmError> {
        self.prepare_map_inner(alloc, vram, placement, runs, attrs, page_size)
    }

    fn prepare_map_inner<'r, A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        placement: VaPlacement,
        runs: &'r [PhysRun],
        attrs: PteAttrs,
        page_size: Option<PageSize>,
    ) -> Result<Prepared<'r, ()>, VmmError> {
        let mut len = 0u64;
        let mut min_align = u64::MAX;
        for r in runs {
            if r.len == 0
                || r.len % crate::addr::PAGE_BYTES != 0
                || r.addr.raw() % crate::addr::PAGE_BYTES != 0
                || r.addr.raw().checked_add(r.len).is_none()
            {
                return Err(VmmError::BadRuns);
            }
            if r.peer_id > 7 || (r.peer_id != 0 && r.aperture != PteAperture::Peer) {
                return Err(VmmError::BadAttrs);
            }
            len = len.checked_add(r.len).ok_or(VmmError::BadRuns)?;
            min_align = min_align.min(1u64 << r.addr.raw().trailing_zeros().min(63));
        }
        if len == 0 {
            return Err(VmmError::BadRuns);
        }
        if let Some(ps) = page_size {
            if !self.size_allowed(ps) {
                return Err(VmmError::BadPageSize(ps));
            }
            let m = ps.bytes().wrapping_sub(1);
            if runs.iter().any(|r| r.addr.raw() & m != 0 || r.len & m != 0) {
                return Err(VmmError::BadPageSize(ps));
            }
        }
        // Check that every run's first and last page encode, so that execute cannot fail on
        // an encoding.
        for r in runs {
            for a in [
                r.addr.raw(),
                r.addr.raw().saturating_add(r.len).saturating_sub(4096),
            ] {
                let probe = PteMapping {
                    aperture: r.aperture,
                    address: PhysAddr::new(a),
                    peer_id: r.peer_id,
                    attrs,
                };
                M::encode_leaf(self.cfg.chip, &PteState::Valid(probe), false)
                    .map_err(|_| VmmError::BadAttrs)?;
            }
        }
        let kind = OpKind::Map {
            runs,
            attrs,
            pinned: page_size,
        };
        let align = page_size.map_or(crate::addr::PAGE_BYTES, PageSize::bytes);
        let best = self.best_align(min_align, len);
        self.prepare_add(alloc, vram, placement, len, kind, align, best)
    }

    /// Prepares a sparse reservation of `len` bytes: reads return zero, writes are dropped,
    /// nothing faults. Uses the largest sparse entries that fit.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::prepare_map`] (without the run errors).
    pub fn prepare_sparse<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        placement: VaPlacement,
        len: u64,
    ) -> Result<Prepared<'static, ()>, VmmError> {
        let best = self.best_align(u64::MAX, len);
        self.prepare_add(
            alloc,
            vram,
            placement,
            len,
            OpKind::Sparse,
            crate::addr::PAGE_BYTES,
            best,
        )
    }

    fn size_allowed(&self, ps: PageSize) -> bool {
        if !self.cfg.chip.supports_page_size(ps) {
            return false;
        }
        match ps {
            PageSize::Size4K | PageSize::Size64K | PageSize::Size2M => true,
            _ => (0..M::DIR_LEVELS).any(|l| M::dir_leaf_size(l) == Some(ps)),
        }
    }

    /// The alignment that lets the largest legal page size be used for a mapping of `len`
    /// bytes whose physical runs are aligned to `phys_align`.
    fn best_align(&self, phys_align: u64, len: u64) -> u64 {
        let mut best = crate::addr::PAGE_BYTES;
        for ps in PageSize::ALL {
            if self.size_allowed(ps) && ps.bytes() <= phys_align && ps.bytes() <= len {
                best = ps.bytes();
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_add<'r, A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        placement: VaPlacement,
        len: u64,
        kind: OpKind<'r>,
        min_align: u64,
        best_align: u64,
    ) -> Result<Prepared<'r, ()>, VmmError> {
        let start = match placement {
            VaPlacement::Fixed(va) => {
                self.check_range(va.raw(), len)?;
                if !va.is_aligned_to(min_align) {
                    return Err(VmmError::BadRange);
                }
                self.va.reserve_fixed(va.raw(), len)?;
                va.raw()
            }
            VaPlacement::Anywhere { align } => {
                if !align.is_power_of_two() {
                    return Err(VmmError::BadRange);
                }
                let a = align.max(min_align).max(best_align);
                match self
                    .va
                    .reserve_any(len, a, self.cfg.va_start, self.cfg.va_end)
                {
                    Ok(s) => s,
                    Err(VaError::NoSpace) if a > align.max(min_align) => self.va.reserve_any(
                        len,
                        align.max(min_align),
                        self.cfg.va_start,
                        self.cfg.va_end,
                    )?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let end = start.checked_add(len).ok_or(VmmError::BadRange)?;
        let mut op = Prepared {
            start,
            end,
            kind,
            space: self.id,
            segs: (),
            stats: OpStats::default(),
            sparse_mapping: matches!(kind, OpKind::Sparse),
        };
        match self.ref_range(alloc, vram, &op) {
            Ok(allocated) => {
                op.stats.tables_allocated = allocated;
                Ok(op)
            }
            Err((done_until, e)) => {
                self.unref_range(alloc, &op, done_until);
                let _ = self.va.release(start, len);
                Err(e)
            }
        }
    }

    /// Cancels a prepared operation. A map or sparse reservation drops its references, frees
    /// the tables only it needed (never linked, so no invalidate is needed) and releases its
    /// VA. An unmap hands the mapping back; a protect just drops its saved entries.
    ///
    /// # Errors
    ///
    /// [`VmmError::WrongSpace`] if the operation belongs to another address space (then
    /// nothing here is touched).
    pub fn cancel<A: PageTableAllocator + ?Sized, G>(
        &mut self,
        alloc: &mut A,
        op: Prepared<'_, G>,
    ) -> Result<Option<Mapping>, VmmError> {
        self.check_space(op.space)?;
        match op.kind {
            OpKind::Map { .. } | OpKind::Sparse => {
                self.unref_range(alloc, &op, op.end);
                let _ = self.va.release(op.start, op.end.saturating_sub(op.start));
                Ok(None)
            }
            OpKind::Unmap => Ok(Some(self.mapping(op.start, op.end, op.sparse_mapping))),
            OpKind::Protect(_) => Ok(None),
        }
    }

    /// Prepares unmapping a mapping or releasing a sparse reservation. Reads the entries it will
    /// clear into `segs` (compressed runs), so that a failed execute can write them back.
    ///
    /// # Errors
    ///
    /// [`VmmError::WrongSpace`], [`VmmError::Vram`] while reading, [`VmmError::NoRoom`] when
    /// `segs` cannot hold the saved entries, [`VmmError::Inconsistent`]. On error the mapping
    /// is handed back.
    pub fn prepare_unmap<W: VramAccess + ?Sized, G: Slab<Seg>>(
        &mut self,
        vram: &mut W,
        mapping: Mapping,
        segs: G,
    ) -> Result<Prepared<'static, G>, (Mapping, VmmError)> {
        if let Err(e) = self.check_space(mapping.space) {
            return Err((mapping, e));
        }
        let end = mapping.va.raw().saturating_add(mapping.len);
        let mut op = Prepared {
            start: mapping.va.raw(),
            end,
            kind: OpKind::Unmap,
            space: self.id,
            segs,
            stats: OpStats::default(),
            sparse_mapping: mapping.sparse,
        };
        op.segs.truncate(0);
        match self.read_old(vram, &mut op) {
            Ok(()) => Ok(op),
            Err(e) => Err((mapping, e)),
        }
    }

    /// Prepares changing the attributes of the mapped pages in `[va, va + len)`, which must
    /// cover whole pages of mappings of this space. Reads the PTEs into `segs`.
    ///
    /// # Errors
    ///
    /// [`VmmError::BadRange`], [`VmmError::SplitsPage`] when the range splits a page or covers
    /// VA that is not mapped, [`VmmError::BadAttrs`], [`VmmError::Vram`], [`VmmError::NoRoom`].
    pub fn prepare_protect<W: VramAccess + ?Sized, G: Slab<Seg>>(
        &mut self,
        vram: &mut W,
        va: VirtAddr,
        len: u64,
        attrs: PteAttrs,
        segs: G,
    ) -> Result<Prepared<'static, G>, VmmError> {
        let end = self.check_range(va.raw(), len)?;
        let mut op = Prepared {
            start: va.raw(),
            end,
            kind: OpKind::Protect(attrs),
            space: self.id,
            segs,
            stats: OpStats::default(),
            sparse_mapping: false,
        };
        op.segs.truncate(0);
        self.read_old(vram, &mut op)?;
        Ok(op)
    }

    /// Executes a prepared operation: writes bottom-up, one invalidate, then updates the
    /// shadow. Allocates nothing.
    ///
    /// # Errors
    ///
    /// [`ExecFailed`] when a VRAM write or the invalidate fails; every entry written has been
    /// restored (or [`VmmError::RollbackFailed`] says the restore itself failed), and the
    /// operation is handed back, still prepared.
    // The error hands the prepared operation back by value (no `alloc` to box it).
    #[allow(clippy::result_large_err)]
    pub fn execute<'r, W: VramAccess + ?Sized, T: TlbInvalidate + ?Sized, G: Slab<Seg>>(
        &mut self,
        vram: &mut W,
        tlb: &mut T,
        op: Prepared<'r, G>,
    ) -> Result<Executed, ExecFailed<'r, G>> {
        if let Err(error) = self.check_space(op.space) {
            return Err(ExecFailed { op, error });
        }
        self.execute_inner(vram, tlb, op)
    }

    /// Every node that is not free, for tests and dumps: (address, kind, level, refs, live).
    pub fn for_each_table(&self, mut f: impl FnMut(VramAddress, NodeKind, u8, u32, u32)) {
        for i in 0..self.nodes.len() {
            if let Some(n) = self.nodes.get(i) {
                if n.kind != NodeKind::Free {
                    f(n.addr, n.kind, n.level, n.refs, n.live);
                }
            }
        }
    }

    pub(crate) fn mapping(&self, start: u64, end: u64, sparse: bool) -> Mapping {
        Mapping {
            va: VirtAddr::new(start),
            len: end.saturating_sub(start),
            sparse,
            space: self.id,
        }
    }
}

impl<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges> AddressSpace<M, N, K, V> {
    /// Prepare + execute of a map, for callers outside any fence path (BAR1 setup, tests).
    /// There is no cleanup step: a map only links tables, it never empties one, so it queues
    /// nothing for [`AddressSpace::cleanup`].
    ///
    /// # Errors
    ///
    /// Any error of the two steps; on an execute failure the operation is cancelled (its
    /// tables and VA are returned).
    #[allow(clippy::too_many_arguments)]
    pub fn map<
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        placement: VaPlacement,
        runs: &[PhysRun],
        attrs: PteAttrs,
        page_size: Option<PageSize>,
    ) -> Result<(Mapping, OpStats), VmmError> {
        let op = self.prepare_map(alloc, vram, placement, runs, attrs, page_size)?;
        self.finish_add(alloc, vram, tlb, op)
    }

    /// Prepare + execute of a sparse reservation.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::map`].
    pub fn reserve_sparse<
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        placement: VaPlacement,
        len: u64,
    ) -> Result<(Mapping, OpStats), VmmError> {
        let op = self.prepare_sparse(alloc, vram, placement, len)?;
        self.finish_add(alloc, vram, tlb, op)
    }

    fn finish_add<
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        op: Prepared<'_, ()>,
    ) -> Result<(Mapping, OpStats), VmmError> {
        let prep = op.stats;
        match self.execute(vram, tlb, op) {
            Ok(Executed::Mapped(m, mut s)) => {
                s.tables_allocated = prep.tables_allocated;
                Ok((m, s))
            }
            Ok(Executed::Done(_)) => Err(VmmError::Inconsistent),
            Err(ExecFailed { op, error }) => {
                let _ = self.cancel(alloc, op);
                Err(error)
            }
        }
    }

    /// Prepare + execute + cleanup of an unmap, saving the old entries in `segs` (rollback
    /// storage: `Vec::new()` with `alloc`, or a [`FixedSlab`]).
    ///
    /// # Errors
    ///
    /// Any error of the steps; the mapping is handed back when nothing was changed.
    pub fn unmap_in<
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
        G: Slab<Seg>,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        mapping: Mapping,
        segs: G,
    ) -> Result<OpStats, (Option<Mapping>, VmmError)> {
        let op = self
            .prepare_unmap(vram, mapping, segs)
            .map_err(|(m, e)| (Some(m), e))?;
        match self.execute(vram, tlb, op) {
            Ok(Executed::Done(s)) => {
                let _ = self.cleanup(alloc);
                Ok(s)
            }
            Ok(Executed::Mapped(m, _)) => Err((Some(m), VmmError::Inconsistent)),
            Err(ExecFailed { op, error }) => {
                let m = self.cancel(alloc, op).ok().flatten();
                Err((m, error))
            }
        }
    }

    /// Prepare + execute of a protection change, saving the old entries in `segs`.
    ///
    /// # Errors
    ///
    /// Any error of the steps.
    pub fn protect_in<W: VramAccess + ?Sized, T: TlbInvalidate + ?Sized, G: Slab<Seg>>(
        &mut self,
        vram: &mut W,
        tlb: &mut T,
        va: VirtAddr,
        len: u64,
        attrs: PteAttrs,
        segs: G,
    ) -> Result<OpStats, VmmError> {
        let op = self.prepare_protect(vram, va, len, attrs, segs)?;
        match self.execute(vram, tlb, op) {
            Ok(Executed::Done(s)) => Ok(s),
            Ok(Executed::Mapped(..)) => Err(VmmError::Inconsistent),
            Err(ExecFailed { error, .. }) => Err(error),
        }
    }
}

#[cfg(any(feature = "alloc", test))]
impl<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges> AddressSpace<M, N, K, V> {
    /// [`AddressSpace::unmap_in`] with a `Vec` for the saved entries.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::unmap_in`].
    pub fn unmap<
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
    >(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        mapping: Mapping,
    ) -> Result<OpStats, (Option<Mapping>, VmmError)> {
        self.unmap_in(alloc, vram, tlb, mapping, alloc::vec::Vec::new())
    }

    /// [`AddressSpace::protect_in`] with a `Vec` for the saved entries.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::protect_in`].
    pub fn protect<W: VramAccess + ?Sized, T: TlbInvalidate + ?Sized>(
        &mut self,
        vram: &mut W,
        tlb: &mut T,
        va: VirtAddr,
        len: u64,
        attrs: PteAttrs,
    ) -> Result<OpStats, VmmError> {
        self.protect_in(vram, tlb, va, len, attrs, alloc::vec::Vec::new())
    }
}
