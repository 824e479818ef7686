//! A VRAM buddy allocator with the semantics of the kernel's `gpu_buddy` (formerly `drm_buddy`),
//! built on fixed-size bitmaps instead of per-block records.
//!
//! # Why bitmaps
//!
//! `gpu_buddy` keeps an 88-byte slab record per block, so a fully split 80 GiB pool of 4 KiB
//! chunks holds 3.7 GB of records, and every split can fail with `-ENOMEM`. Here the metadata is
//! one `u64` array sized at creation by [`metadata_words`] (about 0.27 byte per chunk: 5.4 MiB
//! for 80 GiB), and no operation allocates afterwards, so allocation and free can run on a
//! DMA-fence path.
//!
//! - `F`, one bit per chunk, is the ground truth: set while the chunk is free. Buddies always
//!   merge, so the maximal free blocks are a function of `F`, and an allocator state is exactly
//!   `F` plus the clear bits of the free chunks. That is what makes every request
//!   all-or-nothing: undoing a partial result restores the very same state.
//! - A block of order 0 to 5 lies inside one 64-chunk word of `F`, and that word alone says
//!   whether it is a maximal free block: those orders have no map of their own, their views are
//!   computed from `F` words. Freeing such a block is one read-modify-write of its `F` word plus
//!   bookkeeping; the order it merges up to is read off the word (the nearest allocated chunk on
//!   each side bounds it), so there is no merge loop until a whole word is free.
//! - Per order `k ≥ 6`, a bitmap of maximal free blocks. Every map and view has 64-ary
//!   "non-zero word" summaries that gain bits eagerly and lose them lazily (a search drops the
//!   stale bits it meets), exact counts per order and a `u64` mask of the non-empty orders: the
//!   default placement (smallest order, highest address) is O(levels) from a per-order upper
//!   bound, free is O(1) below order 6 and O(orders) above.
//! - `C`, one bit per chunk, is the clear (zeroed) state. It is decoupled from merging: no
//!   force-merge exists, and the VK-CTS pattern does not fragment the pool run after run.
//!   Clear preference searches the derived views "clear free" (`F & C`) and "dirty free"
//!   (`F & !C`) for aligned runs, and falls back silently, like `CLEAR_ALLOCATION`.
//! - Range, offset-aligned and top-down requests are find-next/previous-set-bit searches within
//!   `[start, end)` over the summaries, never a DFS with failed splits.
//! - Contiguous requests that do not fit a power of two search for an exact run of free chunks
//!   starting at a `min_block_size`-aligned offset, instead of reserving twice the memory.
//!
//! Offsets in the metadata are chunk indices (u64); byte offsets only appear at the API, and
//! every byte computation is checked, so `U64_MAX`-sized pools cannot overflow.
//!
//! # Example
//!
//! Kernel style: the metadata lives in caller storage sized by [`Buddy::metadata_words`], and
//! blocks are written into a caller array ([`SliceSink`]); with the `alloc` feature,
//! [`Buddy::new`] and [`Buddy::alloc_blocks`] do the same with `Vec`s.
//!
//! ```
//! use nova_mm_core::buddy::{
//!     AllocFlags, AllocMode, AllocRequest, Block, Buddy, BuddyError, BuddyParams, SliceSink,
//! };
//!
//! // 96 MiB of VRAM starting at 1 GiB, in 4 KiB chunks: not a power of two, so two roots.
//! let params = BuddyParams { base_offset: 1 << 30, size: 96 << 20, chunk_size: 4096 };
//! let mut meta = vec![0u64; Buddy::metadata_words(&params)];
//! let mut buddy = Buddy::with_storage(params, &mut meta)?;
//! assert_eq!((buddy.root_count(), buddy.avail()), (2, 96 << 20));
//!
//! // 3 MiB, physically contiguous: a 4 MiB block trimmed to exactly 3 MiB.
//! let mut out = [Block::EMPTY; 8];
//! let mut sink = SliceSink::new(&mut out);
//! let req =
//!     AllocRequest::new(AllocMode::Simple, 3 << 20, 4096).with_flags(AllocFlags::CONTIGUOUS);
//! buddy.alloc_into(&req, &mut sink)?;
//! let blocks = sink.as_slice().to_vec();
//! assert_eq!(blocks.iter().map(Block::size).sum::<u64>(), 3 << 20);
//! assert!(blocks.windows(2).all(|w| w[0].offset() + w[0].size() == w[1].offset()));
//!
//! // 64 KiB blocks in the first 1 MiB only (a range request), as 64 KiB pages need.
//! let mut out2 = [Block::EMPTY; 4];
//! let mut sink2 = SliceSink::new(&mut out2);
//! let low = AllocMode::Range { start: 1 << 30, end: (1 << 30) + (1 << 20) };
//! buddy.alloc_into(&AllocRequest::new(low, 128 << 10, 64 << 10), &mut sink2)?;
//! let low_blocks = sink2.as_slice().to_vec();
//! let in_window = |b: &Block| b.offset() % (64 << 10) == 0 && b.offset() < (1 << 30) + (1 << 20);
//! assert!(low_blocks.iter().all(in_window));
//! assert_eq!(buddy.avail(), (96 << 20) - (3 << 20) - (128 << 10));
//!
//! // Bad input is a typed error, not a panic; nothing changes.
//! let odd = AllocRequest::new(AllocMode::Simple, 5000, 4096);
//! let mut one = [Block::EMPTY; 1];
//! let refused = buddy.alloc_into(&odd, &mut SliceSink::new(&mut one));
//! assert!(matches!(refused, Err(BuddyError::Invalid(_))));
//!
//! // Free everything: buddies merge back and the invariant walker finds nothing wrong.
//! buddy.free_blocks(&blocks, false)?;
//! buddy.free_blocks(&low_blocks, true)?;
//! assert_eq!(buddy.avail(), 96 << 20);
//! buddy.check().expect("consistent");
//! assert!(buddy.leak_report().is_none());
//! # Ok::<(), BuddyError>(())
//! ```
//!
//! # Differences from gpu_buddy, by design
//!
//! - No force-merge: free blocks always merge, so a clear and a dirty buddy form one free block
//!   with mixed clear state. A block is reported clear only if every chunk of it is clear
//!   (stronger than the kernel, where clear/dirty buddies never merge).
//! - A freed block that is not (wholly) allocated is refused with
//!   [`BuddyError::NotAllocated`] (the kernel `BUG()`s).
//! - The metadata is dense: a pool needs [`metadata_words`] words, so `U64_MAX` bytes of 4 KiB
//!   chunks (2^52 chunks) cannot be built (the constructor returns [`BuddyError::NoMemory`]).

mod allocate;
mod bitmap;
mod check;
mod free;
mod layout;
mod search;
mod sink;
mod small;
mod types;

#[cfg(test)]
mod tests;

pub use layout::{metadata_bytes, metadata_words};
pub use sink::{BlockSink, SliceSink};
pub use types::{
    AllocFlags, AllocMode, AllocRequest, Block, BuddyError, BuddyParams, InvalidArg, Leak,
    Violation,
};

use bitmap::{ClearMode, Core, Ctx};

/// Where the metadata words live.
#[derive(Debug)]
enum Meta<'a> {
    Borrowed(&'a mut [u64]),
    #[cfg(feature = "alloc")]
    Owned(::alloc::vec::Vec<u64>),
}

impl Meta<'_> {
    #[cfg(feature = "alloc")]
    fn words_mut(&mut self) -> &mut [u64] {
        match self {
            Meta::Borrowed(s) => s,
            Meta::Owned(v) => v.as_mut_slice(),
        }
    }

    #[cfg(not(feature = "alloc"))]
    fn words_mut(&mut self) -> &mut [u64] {
        let Meta::Borrowed(s) = self;
        s
    }

    #[cfg(feature = "alloc")]
    fn words(&self) -> &[u64] {
        match self {
            Meta::Borrowed(s) => s,
            Meta::Owned(v) => v.as_slice(),
        }
    }

    #[cfg(not(feature = "alloc"))]
    fn words(&self) -> &[u64] {
        let Meta::Borrowed(s) = self;
        s
    }
}

/// A buddy allocator over `[base_offset, base_offset + size)`.
///
/// Locking is the caller's (every mutating method takes `&mut self`).
#[derive(Debug)]
pub struct Buddy<'a> {
    core: Core,
    meta: Meta<'a>,
}

// A `Buddy` lives on the 16 KiB kernel stack in the in-kernel self-tests: keep it small by value
// (the metadata is in caller storage).
static_assertions::const_assert!(core::mem::size_of::<Buddy<'static>>() <= 4096);

#[cfg(feature = "alloc")]
impl Buddy<'static> {
    /// Creates an allocator whose metadata is allocated here, fallibly.
    ///
    /// # Errors
    ///
    /// [`BuddyError::Invalid`] for bad parameters (`chunk_size` below 4 KiB or not a power of two,
    /// `size < chunk_size`, or `base_offset + size` overflowing), [`BuddyError::NoMemory`] if the
    /// metadata cannot be allocated.
    pub fn new(params: BuddyParams) -> Result<Self, BuddyError> {
        // Built in place: see `with_storage`.
        let mut b = Buddy {
            core: Core::EMPTY,
            meta: Meta::Owned(::alloc::vec::Vec::new()),
        };
        b.core.setup(&params)?;
        let words = b.core.layout.words;
        if let Meta::Owned(v) = &mut b.meta {
            v.try_reserve_exact(words)
                .map_err(|_| BuddyError::NoMemory)?;
            v.resize(words, 0);
        }
        b.init();
        Ok(b)
    }
}

impl<'a> Buddy<'a> {
    /// Metadata words needed for `params` (0 if they are invalid); a `const fn` so kernels can
    /// size static storage.
    #[must_use]
    pub const fn metadata_words(params: &BuddyParams) -> usize {
        metadata_words(params.size, params.chunk_size)
    }

    /// Creates an allocator over caller-provided metadata storage; allocates nothing.
    ///
    /// # Errors
    ///
    /// [`BuddyError::Invalid`] for bad parameters (see [`Buddy::new`]), [`BuddyError::NoMemory`]
    /// if `storage` is shorter than [`Buddy::metadata_words`].
    pub fn with_storage(params: BuddyParams, storage: &'a mut [u64]) -> Result<Self, BuddyError> {
        // Built in place, so the constructor's frame holds one `Buddy` and no `Core` or
        // `Layout` temporaries (the in-kernel self-tests run on a 16 KiB stack).
        let mut b = Buddy {
            core: Core::EMPTY,
            meta: Meta::Borrowed(&mut []),
        };
        b.core.setup(&params)?;
        let words = storage
            .get_mut(..b.core.layout.words)
            .ok_or(BuddyError::NoMemory)?;
        words.fill(0);
        b.meta = Meta::Borrowed(words);
        b.init();
        Ok(b)
    }

    fn ctx(&mut self) -> Ctx<&mut Core, &mut [u64]> {
        let m = self.meta.words_mut();
        Ctx {
            c: &mut self.core,
            m,
        }
    }

    fn ctx_ref(&self) -> (&Core, &[u64]) {
        let m = self.meta.words();
        (&self.core, m)
    }

    /// Frees every chunk: the roots, one per set bit of the chunk count, largest first.
    fn init(&mut self) {
        let mut cx = self.ctx();
        let n = cx.c.n;
        cx.fc_range(0, n, true, ClearMode::Set(false));
        let mut start = 0u64;
        let mut r = 64u32;
        while r > 0 {
            r = r.saturating_sub(1);
            if n & bitmap::pow2(r) != 0 {
                cx.set_free(r, start >> r, true);
                start = start.wrapping_add(bitmap::pow2(r));
            }
        }
    }

    /// Allocates `req`, appending the blocks to `sink` (no allocation by the allocator itself).
    ///
    /// # Errors
    ///
    /// [`BuddyError::Invalid`] for bad arguments (checked in gpu_buddy's order),
    /// [`BuddyError::NoSpace`] if the memory is not there, [`BuddyError::SinkFull`] if `sink`
    /// has no room. On error nothing is allocated and `sink` is as it was.
    pub fn alloc_into(
        &mut self,
        req: &AllocRequest,
        sink: &mut dyn BlockSink,
    ) -> Result<(), BuddyError> {
        self.ctx().alloc_request(req, sink)
    }

    /// Allocates one chunk with the default placement: [`Buddy::alloc_into`] for a
    /// [`AllocMode::Simple`] request of `chunk_size` bytes, without building the request or a
    /// sink (page tables, and the peer allocators' `alloc(1)`).
    ///
    /// # Errors
    ///
    /// [`BuddyError::NoSpace`] if no chunk is free; nothing changes then.
    pub fn alloc_chunk(&mut self) -> Result<Block, BuddyError> {
        let mut cx = self.ctx();
        if cx.chunk_path_ok() {
            return cx.take_chunk();
        }
        // Mixed clear state (the dirty-first preference applies) or a one-chunk pool (the
        // request is an exact range): the general path.
        let chunk = self.chunk_size();
        let mut one = [Block::EMPTY; 1];
        let mut sink = SliceSink::new(&mut one);
        self.alloc_into(
            &AllocRequest::new(AllocMode::Simple, chunk, chunk),
            &mut sink,
        )?;
        sink.as_slice().first().copied().ok_or(BuddyError::NoSpace)
    }

    /// Allocates `req` into a new vector (grown fallibly).
    ///
    /// # Errors
    ///
    /// As [`Buddy::alloc_into`]; [`BuddyError::SinkFull`] means the vector could not grow.
    #[cfg(feature = "alloc")]
    pub fn alloc_blocks(
        &mut self,
        req: &AllocRequest,
    ) -> Result<::alloc::vec::Vec<Block>, BuddyError> {
        let mut v = ::alloc::vec::Vec::new();
        self.alloc_into(req, &mut v)?;
        Ok(v)
    }

    /// Frees `blocks`; `cleared` says the caller zeroed them (gpu_buddy's `CLEARED`), otherwise
    /// they become dirty.
    ///
    /// # Errors
    ///
    /// [`BuddyError::NotAllocated`] if a block is not wholly allocated (double free, foreign
    /// block); then nothing is freed.
    pub fn free_blocks(&mut self, blocks: &[Block], cleared: bool) -> Result<(), BuddyError> {
        self.ctx().free_list(blocks, cleared)
    }

    /// Frees the block of `order` at absolute `offset` (for callers that keep offsets instead of
    /// [`Block`] values, like the peer allocators' `dealloc`).
    ///
    /// # Errors
    ///
    /// [`BuddyError::NotAllocated`] if no such block is wholly allocated.
    pub fn free_at(&mut self, offset: u64, order: u32, cleared: bool) -> Result<(), BuddyError> {
        if order == 0 {
            return self.ctx().free_chunk_at(offset, cleared);
        }
        let bad = BuddyError::NotAllocated { offset, order };
        let b = Block {
            offset,
            order: u8::try_from(order).map_err(|_| bad)?,
            chunk_shift: u8::try_from(self.core.shift).map_err(|_| bad)?,
            clear: false,
        };
        self.free_blocks(core::slice::from_ref(&b), cleared)
    }

    /// Shrinks an allocated `block` to `new_size` bytes starting at `start` (absolute; the
    /// block's start if `None`), freeing the rest with the block's clear state, and appends the
    /// resulting blocks (ascending) to `sink` (gpu_buddy_block_trim).
    ///
    /// # Errors
    ///
    /// [`BuddyError::NotAllocated`] for a block that is not allocated,
    /// [`BuddyError::Invalid`] if `new_size` is 0, not a multiple of the chunk size or larger than
    /// the block, or the kept range does not fit the block; [`BuddyError::SinkFull`]. On error
    /// nothing changes.
    pub fn trim_into(
        &mut self,
        block: &Block,
        start: Option<u64>,
        new_size: u64,
        sink: &mut dyn BlockSink,
    ) -> Result<(), BuddyError> {
        self.ctx().trim_user(block, start, new_size, sink)
    }

    /// [`Buddy::trim_into`] into a new vector.
    ///
    /// # Errors
    ///
    /// As [`Buddy::trim_into`].
    #[cfg(feature = "alloc")]
    pub fn trim(
        &mut self,
        block: &Block,
        start: Option<u64>,
        new_size: u64,
    ) -> Result<::alloc::vec::Vec<Block>, BuddyError> {
        let mut v = ::alloc::vec::Vec::new();
        self.trim_into(block, start, new_size, &mut v)?;
        Ok(v)
    }

    /// Marks every free byte clear or dirty (amdgpu on suspend/resume). A bitmap fill: no merge
    /// is needed because free blocks are always merged.
    pub fn reset_clear(&mut self, is_clear: bool) {
        self.ctx().reset_clear(is_clear);
    }

    /// Walks every map, summary and counter.
    ///
    /// # Errors
    ///
    /// The first [`Violation`] found.
    pub fn check(&self) -> Result<(), Violation> {
        let (c, m) = self.ctx_ref();
        Ctx { c, m }.check()
    }

    /// What is still allocated, or `None` if everything was freed (gpu_buddy_fini's leak check,
    /// as a value: it never panics).
    #[must_use]
    pub fn leak_report(&self) -> Option<Leak> {
        let size = self.size();
        let free = self.avail();
        (free != size).then(|| Leak {
            allocated_bytes: size.saturating_sub(free),
            free_bytes: free,
        })
    }

    /// Bytes managed (rounded down to the chunk size).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.core.n.wrapping_shl(self.core.shift)
    }

    /// Absolute address of the first managed byte.
    #[must_use]
    pub fn base_offset(&self) -> u64 {
        self.core.base
    }

    /// The smallest block in bytes.
    #[must_use]
    pub fn chunk_size(&self) -> u64 {
        bitmap::pow2(self.core.shift)
    }

    /// `log2(largest block / chunk_size)`.
    #[must_use]
    pub fn max_order(&self) -> u32 {
        self.core.max_order
    }

    /// Number of roots (one per set bit of the chunk count).
    #[must_use]
    pub fn root_count(&self) -> u32 {
        self.core.n.count_ones()
    }

    /// Free bytes.
    #[must_use]
    pub fn avail(&self) -> u64 {
        self.core.avail.wrapping_shl(self.core.shift)
    }

    /// Free bytes known to be clear.
    #[must_use]
    pub fn clear_avail(&self) -> u64 {
        self.core.clear_avail.wrapping_shl(self.core.shift)
    }

    /// Number of maximal free blocks of `order` (0 beyond `max_order`).
    #[must_use]
    pub fn free_count(&self, order: u32) -> u64 {
        usize::try_from(order)
            .ok()
            .and_then(|o| self.core.counts.get(o).copied())
            .unwrap_or(0)
    }

    /// Bytes of metadata this allocator uses.
    #[must_use]
    pub fn metadata_size(&self) -> u64 {
        u64::try_from(self.core.layout.words)
            .unwrap_or(u64::MAX)
            .saturating_mul(8)
    }
}
