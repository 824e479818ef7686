//! Where allocated blocks go: a caller sink, so the allocator itself never allocates.
//!
//! The allocator pushes blocks as it carves them and, if a request fails half-way, reads them back
//! to undo the work and truncates the sink to its previous length. That keeps every request
//! all-or-nothing without any scratch memory.

use super::types::Block;

/// A growable list of blocks owned by the caller.
pub trait BlockSink {
    /// Number of blocks held.
    fn len(&self) -> usize;
    /// Whether no block is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends a block; `false` if there is no room (nothing is changed then).
    fn try_push(&mut self, block: Block) -> bool;
    /// The block at `index`, if any.
    fn get(&self, index: usize) -> Option<Block>;
    /// Drops every block from `len` on.
    fn truncate(&mut self, len: usize);
}

/// A sink over a caller array: `blocks[..len]` are the results.
#[derive(Debug)]
pub struct SliceSink<'a> {
    blocks: &'a mut [Block],
    len: usize,
}

impl<'a> SliceSink<'a> {
    /// An empty sink writing into `blocks`.
    pub fn new(blocks: &'a mut [Block]) -> Self {
        Self { blocks, len: 0 }
    }

    /// The blocks written so far.
    #[must_use]
    pub fn as_slice(&self) -> &[Block] {
        self.blocks.get(..self.len).unwrap_or(&[])
    }
}

impl BlockSink for SliceSink<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn try_push(&mut self, block: Block) -> bool {
        match self.blocks.get_mut(self.len) {
            Some(slot) => {
                *slot = block;
                self.len = self.len.saturating_add(1);
                true
            }
            None => false,
        }
    }

    fn get(&self, index: usize) -> Option<Block> {
        self.as_slice().get(index).copied()
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

#[cfg(feature = "alloc")]
impl BlockSink for ::alloc::vec::Vec<Block> {
    fn len(&self) -> usize {
        ::alloc::vec::Vec::len(self)
    }

    fn try_push(&mut self, block: Block) -> bool {
        if self.try_reserve(1).is_err() {
            return false;
        }
        self.push(block);
        true
    }

    fn get(&self, index: usize) -> Option<Block> {
        self.as_slice().get(index).copied()
    }

    fn truncate(&mut self, len: usize) {
        ::alloc::vec::Vec::truncate(self, len);
    }
}
