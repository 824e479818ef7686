//! The GPU virtual-address range allocator: which parts of an address space are taken.
//!
//! The nova series first tracked VA with a second buddy allocator and was asked by its reviewers
//! to use an interval structure (the kernel maple tree) instead (`nova-series.md` §4.6, §5 item
//! 16): a buddy allocator rounds every range to a power of two and cannot reserve an arbitrary
//! fixed range. [`VaAllocator`] keeps the reservations as disjoint intervals in a balanced tree
//! (an AA tree keyed by start), each subtree annotated with its largest free gap, and offers:
//!
//! - [`VaAllocator::alloc`] / [`VaAllocator::alloc_in`]: the lowest free range of a given size
//!   and alignment, optionally inside a window `[lo, hi)` (first fit);
//! - [`VaAllocator::reserve`]: a fixed range (for example one the firmware already uses);
//! - [`VaAllocator::free`]: exactly a range returned or reserved before;
//! - [`VaAllocator::is_reserved`], [`VaAllocator::reservation_containing`],
//!   [`VaAllocator::iter`].
//!
//! # Example
//!
//! ```
//! use nova_mm_core::va_alloc::{VaAllocator, VaError, VaNode, VaRange};
//! use nova_mm_core::VirtAddr;
//!
//! // A 256 MiB BAR1-sized space with room for 16 reservations, in fixed storage.
//! let mut nodes = [VaNode::EMPTY; 16];
//! let (base, limit) = (VirtAddr::new(0), VirtAddr::new(256 << 20));
//! let mut va = VaAllocator::new(&mut nodes[..], base, limit, 4096)?;
//!
//! // The firmware already uses the first 1 MiB: reserve exactly that.
//! va.reserve(VaRange::new(VirtAddr::new(0), 1 << 20)?)?;
//! // 4 KiB anywhere: the lowest free address.
//! let a = va.alloc(4096, 4096)?;
//! assert_eq!(a.start(), VirtAddr::new(1 << 20));
//! // 2 MiB aligned to 2 MiB: first fit above the reservations.
//! let b = va.alloc(2 << 20, 2 << 20)?;
//! assert_eq!(b.start(), VirtAddr::new(2 << 20));
//! // Overlaps are refused with a typed error, before anything changes.
//! assert!(va.reserve(VaRange::new(VirtAddr::new(0x1000), 4096)?).is_err());
//!
//! va.free(a)?;
//! assert!(!va.is_reserved(VirtAddr::new(1 << 20)));
//! assert_eq!(va.iter().count(), 2);
//! # Ok::<(), VaError>(())
//! ```
//!
//! # Complexity
//!
//! With `n` reservations: `reserve`, `free`, the queries and each step of `iter` are
//! `O(log n)` in the worst case (the tree height is at most `2 log2(n + 1)`).
//!
//! `alloc` is an exact first fit (it returns the address a naive scan of the gaps in address
//! order would, which the tests check). Each subtree records its largest gap and, for the
//! alignment classes 64 KiB, 2 MiB, 512 MiB and 256 GiB (the large GPU page sizes), the most room
//! left after the first aligned start of any of its gaps. A subtree is entered only if one of
//! its gaps may hold the request, so:
//!
//! - when the alignment is at most the granularity, or exactly one of the classes, the test is
//!   exact and `alloc` is `O(log n)` in the worst case (a test counts at most 26 nodes entered
//!   for 8192 reservations whose gaps are all "near misses");
//! - for another alignment `2^j` the room of the largest class below `2^j` (or the gap length
//!   when there is none) is only a necessary condition: gaps that pass it but hold no
//!   `2^j`-aligned start ("near misses") below the answer are each visited, so the cost is
//!   `O((1 + m) log n)` for `m` near misses (the same test enters all 8192 nodes for a 32 KiB
//!   alignment). A gap of at least `size + align - granularity` always fits, so near misses are
//!   shorter than that.
//!
//! Subtrees outside the window are skipped in `O(1)`, and only the `O(log n)` subtrees that
//! straddle the window's ends can be entered without holding a fit inside it. We chose exact
//! first fit over a descent that only follows gaps of at least `size + align - granularity`
//! (always `O(log n)`, but it may skip a lower fitting address).
//!
//! # Storage
//!
//! One [`VaNode`] per reservation, in a [`NodeStore`] the embedder provides (a fixed slice or
//! array without the `alloc` feature; `Vec<VaNode>` grown with `try_reserve` with it). Freed
//! nodes go to a free list and are reused. [`VaAllocator::ensure_free_nodes`] makes the next
//! reservations infallible for lack of storage, for callers that must do all their allocation in
//! a prepare step.
//!
//! Every failure is a typed [`VaError`] returned before anything changes.

mod node;
mod tree;

#[cfg(test)]
mod tests;

use core::fmt;

pub use node::{NodeStore, VaNode};
use tree::{Fit, NIL};

use crate::addr::VirtAddr;

/// Why a VA allocator operation failed. Nothing changed when one is returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VaError {
    /// A range of zero bytes was asked for.
    #[error("zero-sized VA range")]
    ZeroSize,
    /// The alignment is not a power of two.
    #[error("VA alignment {align:#x} is not a power of two")]
    InvalidAlignment {
        /// The alignment given.
        align: u64,
    },
    /// A size, start, base or limit is not a multiple of the space's granularity.
    #[error("{value:#x} is not a multiple of the VA granularity {granularity:#x}")]
    Misaligned {
        /// The offending value.
        value: u64,
        /// The granularity of the space (or the rejected granularity when it is not a power of
        /// two).
        granularity: u64,
    },
    /// The range does not lie inside the space `[base, limit)`, or its end does not fit in
    /// 64 bits.
    #[error("VA range of {size:#x} bytes at {start} is outside the address space")]
    OutOfSpace {
        /// First byte of the range.
        start: VirtAddr,
        /// Length of the range in bytes.
        size: u64,
    },
    /// The search window `[lo, hi)` is empty or not inside the space.
    #[error("VA window [{lo}, {hi}) is empty or outside the address space")]
    BadWindow {
        /// Window start.
        lo: VirtAddr,
        /// Window end (exclusive).
        hi: VirtAddr,
    },
    /// The space (base `>=` limit) is empty.
    #[error("empty VA space [{base}, {limit})")]
    EmptySpace {
        /// The base given.
        base: VirtAddr,
        /// The limit given.
        limit: VirtAddr,
    },
    /// No free range of that size and alignment exists (in the window).
    #[error("no free VA range of {size:#x} bytes aligned to {align:#x}")]
    NoSpace {
        /// The size asked for.
        size: u64,
        /// The effective alignment (at least the granularity).
        align: u64,
    },
    /// Part of the range is already reserved.
    #[error("VA range overlaps the reservation {existing}")]
    Overlap {
        /// The lowest reservation that overlaps.
        existing: VaRange,
    },
    /// No reservation starts at this address.
    #[error("no VA reservation starts at {start}")]
    NotFound {
        /// The start given.
        start: VirtAddr,
    },
    /// A reservation starts there, but its size differs: only whole reservations are freed.
    #[error("VA range to free does not match the reservation {reserved}")]
    SizeMismatch {
        /// The reservation that starts at that address.
        reserved: VaRange,
    },
    /// The node storage is full (or cannot grow).
    #[error("VA allocator node storage is full")]
    StorageFull,
}

/// A non-empty VA range `[start, start + size)` whose end fits in 64 bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VaRange {
    start: VirtAddr,
    size: u64,
}

impl VaRange {
    /// The range of `size` bytes at `start`.
    ///
    /// # Errors
    ///
    /// [`VaError::ZeroSize`], or [`VaError::OutOfSpace`] if the end does not fit in 64 bits.
    pub const fn new(start: VirtAddr, size: u64) -> Result<Self, VaError> {
        if size == 0 {
            return Err(VaError::ZeroSize);
        }
        if start.raw().checked_add(size).is_none() {
            return Err(VaError::OutOfSpace { start, size });
        }
        Ok(Self { start, size })
    }

    /// First byte.
    #[must_use]
    pub const fn start(self) -> VirtAddr {
        self.start
    }

    /// Length in bytes (never zero).
    #[must_use]
    pub const fn size(self) -> u64 {
        self.size
    }

    /// One past the last byte (exact: checked at construction).
    #[must_use]
    pub const fn end(self) -> VirtAddr {
        VirtAddr::new(self.start.raw().wrapping_add(self.size))
    }

    /// Whether `va` lies inside the range.
    #[must_use]
    pub const fn contains(self, va: VirtAddr) -> bool {
        va.raw() >= self.start.raw() && va.raw() < self.end().raw()
    }

    /// Whether the two ranges share a byte.
    #[must_use]
    pub const fn overlaps(self, other: VaRange) -> bool {
        self.start.raw() < other.end().raw() && other.start.raw() < self.end().raw()
    }

    fn from_raw(start: u64, end: u64) -> Self {
        Self {
            start: VirtAddr::new(start),
            size: end.saturating_sub(start),
        }
    }
}

impl fmt::Display for VaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end())
    }
}

/// The VA range allocator of one address space `[base, limit)`; see the [module
/// documentation](self).
pub struct VaAllocator<S: NodeStore> {
    store: S,
    base: u64,
    limit: u64,
    granularity: u64,
    root: u32,
    /// Head of the list of released slots, linked through `VaNode::left`.
    free_head: u32,
    /// Length of that list.
    free_listed: usize,
    /// Slots `[0, used)` have been handed out at least once; the rest were never touched.
    used: usize,
    count: usize,
    reserved_bytes: u64,
}

impl<S: NodeStore> fmt::Debug for VaAllocator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaAllocator")
            .field("base", &VirtAddr::new(self.base))
            .field("limit", &VirtAddr::new(self.limit))
            .field("granularity", &self.granularity)
            .field("reservations", &self.count)
            .field("reserved_bytes", &self.reserved_bytes)
            .finish_non_exhaustive()
    }
}

/// The most slots the allocator can address (`u32` indices, `u32::MAX` means none).
// `usize` is at least 32 bits on every target the core builds for, so this does not truncate.
#[allow(clippy::cast_possible_truncation)]
const MAX_SLOTS: usize = u32::MAX as usize;

/// A VA allocator whose nodes live in a `Vec` grown with `try_reserve`.
#[cfg(feature = "alloc")]
pub type VecVaAllocator = VaAllocator<alloc::vec::Vec<VaNode>>;

#[cfg(feature = "alloc")]
impl VaAllocator<alloc::vec::Vec<VaNode>> {
    /// An empty allocator over `[base, limit)` with its nodes in a growable `Vec`.
    ///
    /// # Errors
    ///
    /// As [`VaAllocator::new`].
    pub fn new_vec(base: VirtAddr, limit: VirtAddr, granularity: u64) -> Result<Self, VaError> {
        Self::new(alloc::vec::Vec::new(), base, limit, granularity)
    }
}

impl<S: NodeStore> VaAllocator<S> {
    /// An empty allocator over `[base, limit)` in which every range is a multiple of
    /// `granularity` (a power of two, typically 4 KiB: the smallest GPU page). The storage's
    /// previous contents are ignored; it holds one node per reservation.
    ///
    /// # Errors
    ///
    /// [`VaError::Misaligned`] if `granularity` is not a power of two or `base` or `limit` is not
    /// a multiple of it; [`VaError::EmptySpace`] if `base >= limit`.
    pub fn new(
        store: S,
        base: VirtAddr,
        limit: VirtAddr,
        granularity: u64,
    ) -> Result<Self, VaError> {
        if !granularity.is_power_of_two() {
            return Err(VaError::Misaligned {
                value: granularity,
                granularity,
            });
        }
        for v in [base.raw(), limit.raw()] {
            if !VirtAddr::new(v).is_aligned_to(granularity) {
                return Err(VaError::Misaligned {
                    value: v,
                    granularity,
                });
            }
        }
        if base >= limit {
            return Err(VaError::EmptySpace { base, limit });
        }
        Ok(Self {
            store,
            base: base.raw(),
            limit: limit.raw(),
            granularity,
            root: NIL,
            free_head: NIL,
            free_listed: 0,
            used: 0,
            count: 0,
            reserved_bytes: 0,
        })
    }

    /// Start of the space.
    #[must_use]
    pub fn base(&self) -> VirtAddr {
        VirtAddr::new(self.base)
    }

    /// End of the space (exclusive).
    #[must_use]
    pub fn limit(&self) -> VirtAddr {
        VirtAddr::new(self.limit)
    }

    /// The granularity every range is a multiple of.
    #[must_use]
    pub fn granularity(&self) -> u64 {
        self.granularity
    }

    /// Number of reservations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is reserved.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes reserved in total.
    #[must_use]
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    /// Bytes free in total (not necessarily contiguous).
    #[must_use]
    pub fn free_bytes(&self) -> u64 {
        self.limit
            .saturating_sub(self.base)
            .saturating_sub(self.reserved_bytes)
    }

    /// The node storage.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the storage back.
    #[must_use]
    pub fn into_store(self) -> S {
        self.store
    }

    /// Forgets every reservation (`O(1)`).
    pub fn clear(&mut self) {
        self.root = NIL;
        self.free_head = NIL;
        self.free_listed = 0;
        self.used = 0;
        self.count = 0;
        self.reserved_bytes = 0;
    }

    /// Nodes available for new reservations without growing the storage.
    #[must_use]
    pub fn spare_nodes(&self) -> usize {
        let len = self.store.nodes().len().min(MAX_SLOTS);
        self.free_listed
            .saturating_add(len.saturating_sub(self.used))
    }

    /// Makes sure the next `n` reservations cannot fail with [`VaError::StorageFull`] (growing
    /// the storage now if it can), so that a caller can do all its allocation up front.
    ///
    /// # Errors
    ///
    /// [`VaError::StorageFull`] if the storage cannot hold `n` more nodes; nothing changed then.
    pub fn ensure_free_nodes(&mut self, n: usize) -> Result<(), VaError> {
        let spare = self.spare_nodes();
        let Some(missing) = n.checked_sub(spare).filter(|&m| m > 0) else {
            return Ok(());
        };
        let want = self
            .store
            .nodes()
            .len()
            .checked_add(missing)
            .filter(|&w| w <= MAX_SLOTS)
            .ok_or(VaError::StorageFull)?;
        self.store.try_grow_to(want)
    }

    /// Reserves the lowest free range of `size` bytes whose start is a multiple of `align`
    /// (raised to the granularity if smaller), anywhere in the space.
    ///
    /// # Errors
    ///
    /// See [`VaAllocator::alloc_in`].
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<VaRange, VaError> {
        self.alloc_in(size, align, self.base(), self.limit())
    }

    /// Reserves the lowest free range of `size` bytes whose start is a multiple of `align`
    /// (raised to the granularity if smaller) and which lies inside `[lo, hi)`.
    ///
    /// # Errors
    ///
    /// Checked in this order: [`VaError::ZeroSize`]; [`VaError::InvalidAlignment`] if `align`
    /// is not a power of two; [`VaError::Misaligned`] if `size` is not a multiple of the
    /// granularity; [`VaError::BadWindow`] unless `base <= lo < hi <= limit`;
    /// [`VaError::NoSpace`] if no such range is free; [`VaError::StorageFull`] if no node is
    /// left for the new reservation.
    pub fn alloc_in(
        &mut self,
        size: u64,
        align: u64,
        lo: VirtAddr,
        hi: VirtAddr,
    ) -> Result<VaRange, VaError> {
        if size == 0 {
            return Err(VaError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(VaError::InvalidAlignment { align });
        }
        self.check_granular(size)?;
        if lo.raw() < self.base || hi.raw() > self.limit || lo >= hi {
            return Err(VaError::BadWindow { lo, hi });
        }
        let align = align.max(self.granularity);
        let fit = Fit::new(size, align, lo.raw(), hi.raw());
        let start = tree::search(self.store.nodes(), self.root, self.base, self.limit, &fit)
            .ok_or(VaError::NoSpace { size, align })?;
        let range = VaRange::new(VirtAddr::new(start), size)?;
        self.insert(range)?;
        Ok(range)
    }

    /// Reserves exactly `range`.
    ///
    /// # Errors
    ///
    /// Checked in this order: [`VaError::Misaligned`] if its start or size is not a multiple of
    /// the granularity; [`VaError::OutOfSpace`] if it does not lie inside the space;
    /// [`VaError::Overlap`] if any part is already reserved; [`VaError::StorageFull`].
    pub fn reserve(&mut self, range: VaRange) -> Result<(), VaError> {
        self.check_granular(range.start.raw())?;
        self.check_granular(range.size)?;
        if range.start.raw() < self.base || range.end().raw() > self.limit {
            return Err(VaError::OutOfSpace {
                start: range.start,
                size: range.size,
            });
        }
        let nodes = self.store.nodes();
        let first = tree::first_ending_after(nodes, self.root, range.start.raw());
        if let Some(n) = tree::node(nodes, first) {
            if n.start < range.end().raw() {
                return Err(VaError::Overlap {
                    existing: VaRange::from_raw(n.start, n.end),
                });
            }
        }
        self.insert(range)
    }

    /// Frees `range`, which must be exactly a reservation (not a part of one, not several).
    ///
    /// # Errors
    ///
    /// [`VaError::NotFound`] if no reservation starts at `range.start()`;
    /// [`VaError::SizeMismatch`] if the one that does has another size.
    pub fn free(&mut self, range: VaRange) -> Result<(), VaError> {
        let key = range.start.raw();
        let idx = tree::find_start(self.store.nodes(), self.root, key);
        let Some(n) = tree::node(self.store.nodes(), idx) else {
            return Err(VaError::NotFound { start: range.start });
        };
        if n.end != range.end().raw() {
            return Err(VaError::SizeMismatch {
                reserved: VaRange::from_raw(n.start, n.end),
            });
        }
        let mut removed = NIL;
        self.root = tree::delete(self.store.nodes_mut(), self.root, key, &mut removed);
        self.release_slot(removed);
        self.count = self.count.saturating_sub(1);
        self.reserved_bytes = self.reserved_bytes.saturating_sub(range.size);
        Ok(())
    }

    /// Whether `va` lies in a reservation.
    #[must_use]
    pub fn is_reserved(&self, va: VirtAddr) -> bool {
        self.reservation_containing(va).is_some()
    }

    /// The reservation holding `va`, if any.
    #[must_use]
    pub fn reservation_containing(&self, va: VirtAddr) -> Option<VaRange> {
        let nodes = self.store.nodes();
        let n = tree::node(nodes, tree::floor(nodes, self.root, va.raw()))?;
        (va.raw() < n.end).then(|| VaRange::from_raw(n.start, n.end))
    }

    /// The reservations in address order (each step `O(log n)`).
    #[must_use]
    pub fn iter(&self) -> Iter<'_, S> {
        self.iter_from(VirtAddr::ZERO)
    }

    /// The reservations that start at or after `va`, in address order.
    #[must_use]
    pub fn iter_from(&self, va: VirtAddr) -> Iter<'_, S> {
        Iter {
            alloc: self,
            next: Some(va.raw()),
        }
    }

    fn check_granular(&self, value: u64) -> Result<(), VaError> {
        if VirtAddr::new(value).is_aligned_to(self.granularity) {
            Ok(())
        } else {
            Err(VaError::Misaligned {
                value,
                granularity: self.granularity,
            })
        }
    }

    /// Links a new node for `range`, which is known to be free and inside the space.
    fn insert(&mut self, range: VaRange) -> Result<(), VaError> {
        let slot = self.take_slot()?;
        let nodes = self.store.nodes_mut();
        tree::init_leaf(nodes, slot, range.start.raw(), range.end().raw());
        self.root = tree::insert(nodes, self.root, slot);
        self.count = self.count.saturating_add(1);
        self.reserved_bytes = self.reserved_bytes.saturating_add(range.size);
        Ok(())
    }

    /// A free slot: from the free list, else a never-used one, else a new one from the storage.
    fn take_slot(&mut self) -> Result<u32, VaError> {
        if let Some(n) = tree::node(self.store.nodes(), self.free_head) {
            let slot = self.free_head;
            self.free_head = n.left;
            self.free_listed = self.free_listed.saturating_sub(1);
            return Ok(slot);
        }
        let slot = u32::try_from(self.used)
            .ok()
            .filter(|&s| s != NIL)
            .ok_or(VaError::StorageFull)?;
        let want = self.used.checked_add(1).ok_or(VaError::StorageFull)?;
        self.store.try_grow_to(want)?;
        self.used = want;
        Ok(slot)
    }

    fn release_slot(&mut self, slot: u32) {
        let head = self.free_head;
        if let Some(n) = usize::try_from(slot)
            .ok()
            .and_then(|i| self.store.nodes_mut().get_mut(i))
        {
            *n = VaNode {
                left: head,
                ..VaNode::EMPTY
            };
            self.free_head = slot;
            self.free_listed = self.free_listed.saturating_add(1);
        }
    }
}

/// Iterator over reservations in address order; see [`VaAllocator::iter`].
#[derive(Debug)]
pub struct Iter<'a, S: NodeStore> {
    alloc: &'a VaAllocator<S>,
    /// Smallest start still to report, `None` when done.
    next: Option<u64>,
}

impl<S: NodeStore> Iterator for Iter<'_, S> {
    type Item = VaRange;

    fn next(&mut self) -> Option<VaRange> {
        let key = self.next?;
        let nodes = self.alloc.store.nodes();
        let Some(n) = tree::node(nodes, tree::ceil(nodes, self.alloc.root, key)) else {
            self.next = None;
            return None;
        };
        self.next = n.start.checked_add(1);
        Some(VaRange::from_raw(n.start, n.end))
    }
}
