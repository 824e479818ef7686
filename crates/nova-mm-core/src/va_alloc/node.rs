//! [`VaNode`] and [`NodeStore`]: where the allocator keeps its tree nodes.
//!
//! The allocator never allocates by itself. Its nodes live in storage the embedder provides: a
//! slice or array (for a kernel without the `alloc` crate, or to bound the bookkeeping), or, with
//! the `alloc` feature, a `Vec` that only grows through `try_reserve`.

use super::VaError;

/// One reservation in the allocator's tree, plus the bookkeeping that keeps the searches
/// logarithmic. Its contents are private; an embedder only provides slots
/// (`[VaNode::EMPTY; N]`), whose previous contents are ignored. A node is 88 bytes on 64-bit
/// targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaNode {
    /// First byte of the reservation.
    pub(super) start: u64,
    /// One past the last byte of the reservation.
    pub(super) end: u64,
    /// Smallest `start` in this subtree.
    pub(super) min_start: u64,
    /// Largest `end` in this subtree.
    pub(super) max_end: u64,
    /// Largest free gap between two reservations of this subtree (0 if it has one).
    pub(super) max_gap: u64,
    /// For each alignment class `k` of [`CLASS_SHIFTS`](super::tree::CLASS_SHIFTS): the most
    /// room after the first `2^k`-aligned start of any such gap.
    pub(super) max_room: [u64; super::tree::CLASSES],
    /// Left child (or the next free slot while the node is on the free list).
    pub(super) left: u32,
    /// Right child.
    pub(super) right: u32,
    /// AA-tree level (1 for a leaf).
    pub(super) level: u32,
}

impl VaNode {
    /// An unused slot.
    pub const EMPTY: VaNode = VaNode {
        start: 0,
        end: 0,
        min_start: 0,
        max_end: 0,
        max_gap: 0,
        max_room: [0; super::tree::CLASSES],
        left: u32::MAX,
        right: u32::MAX,
        level: 0,
    };
}

impl Default for VaNode {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Storage for the allocator's nodes: one node per reservation.
///
/// Implemented for `&mut [VaNode]` and `[VaNode; N]` (fixed capacity) and, with the `alloc`
/// feature, for `Vec<VaNode>` (grows fallibly).
pub trait NodeStore {
    /// The slots.
    fn nodes(&self) -> &[VaNode];

    /// The slots, mutably.
    fn nodes_mut(&mut self) -> &mut [VaNode];

    /// Makes `nodes().len()` at least `len`. New slots may hold anything.
    ///
    /// # Errors
    ///
    /// [`VaError::StorageFull`] if the storage cannot grow; then nothing changed. The default
    /// implementation (fixed storage) fails whenever `len` exceeds the current length.
    fn try_grow_to(&mut self, len: usize) -> Result<(), VaError> {
        if len <= self.nodes().len() {
            Ok(())
        } else {
            Err(VaError::StorageFull)
        }
    }
}

impl NodeStore for &mut [VaNode] {
    fn nodes(&self) -> &[VaNode] {
        self
    }
    fn nodes_mut(&mut self) -> &mut [VaNode] {
        self
    }
}

impl<const N: usize> NodeStore for [VaNode; N] {
    fn nodes(&self) -> &[VaNode] {
        self
    }
    fn nodes_mut(&mut self) -> &mut [VaNode] {
        self
    }
}

#[cfg(feature = "alloc")]
impl NodeStore for alloc::vec::Vec<VaNode> {
    fn nodes(&self) -> &[VaNode] {
        self
    }
    fn nodes_mut(&mut self) -> &mut [VaNode] {
        self
    }
    fn try_grow_to(&mut self, len: usize) -> Result<(), VaError> {
        let Some(additional) = len.checked_sub(self.len()) else {
            return Ok(());
        };
        // `try_reserve` grows geometrically, so one-at-a-time growth stays amortised O(1), and
        // `resize` within the reserved capacity cannot allocate (hence cannot abort).
        self.try_reserve(additional)
            .map_err(|_| VaError::StorageFull)?;
        self.resize(len, VaNode::EMPTY);
        Ok(())
    }
}
