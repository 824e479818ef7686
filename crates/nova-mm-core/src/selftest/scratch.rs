//! Caller-provided memory for the self-tests that need more than the kernel stack allows.
//!
//! The kernel stack is 16 KiB, so a VRAM image, buddy metadata or the address-space manager's
//! bookkeeping (2 KiB per directory) cannot live there. [`Scratch`] is a set of plain slices the
//! caller allocates: the kernel module with `KVVec::from_elem` (vmalloc-backed when large, no
//! `unsafe`), the host test with `Vec`. The lengths the tests need are the `*_LEN` constants;
//! a shorter slice makes the tests that need it fail with a message, never panic. The runner
//! calls [`Scratch::reset`] before every test, so tests cannot see each other's leftovers.

use crate::buddy::Block;
use crate::vmm::{Node, Seg, VaInterval};

/// 32-bit words of the emulated VRAM: 1 MiB, the size of the PRAMIN window, holding the page
/// tables of the address-space tests (256 tables of 4 KiB) and the PRAMIN aperture of the
/// hardware tests.
pub const VRAM_WORDS_LEN: usize = 256 * 1024;
/// 64-bit words for buddy metadata and other scratch (128 KiB: a 256 MiB pool of 4 KiB chunks
/// needs about 4 Ki words).
pub const WORDS_LEN: usize = 16 * 1024;
/// Address-space manager nodes (one per page table).
pub const NODES_LEN: usize = 64;
/// Child arrays of directories (2 KiB each).
pub const KIDS_LEN: usize = 24;
/// VA reservations.
pub const IVS_LEN: usize = 32;
/// Saved-entry segments of unmap and protect.
pub const SEGS_LEN: usize = 64;
/// Blocks returned by buddy allocations.
pub const BLOCKS_LEN: usize = 256;

/// The memory the scratch self-tests work in (see the module docs).
#[derive(Debug)]
pub struct Scratch<'a> {
    /// Emulated VRAM, [`VRAM_WORDS_LEN`] words.
    pub vram: &'a mut [u32],
    /// General 64-bit words (buddy metadata), [`WORDS_LEN`] words.
    pub words: &'a mut [u64],
    /// Address-space nodes, [`NODES_LEN`].
    pub nodes: &'a mut [Node],
    /// Directory child arrays, [`KIDS_LEN`].
    pub kids: &'a mut [[u32; 512]],
    /// VA reservations, [`IVS_LEN`].
    pub ivs: &'a mut [VaInterval],
    /// Unmap/protect segments, [`SEGS_LEN`].
    pub segs: &'a mut [Seg],
    /// Buddy blocks, [`BLOCKS_LEN`].
    pub blocks: &'a mut [Block],
}

impl Scratch<'_> {
    /// Whether every slice has at least the length the tests need.
    #[must_use]
    pub fn is_big_enough(&self) -> bool {
        self.vram.len() >= VRAM_WORDS_LEN
            && self.words.len() >= WORDS_LEN
            && self.nodes.len() >= NODES_LEN
            && self.kids.len() >= KIDS_LEN
            && self.ivs.len() >= IVS_LEN
            && self.segs.len() >= SEGS_LEN
            && self.blocks.len() >= BLOCKS_LEN
    }

    /// Zeroes the VRAM image and the words, and resets the bookkeeping to defaults.
    pub fn reset(&mut self) {
        self.vram.fill(0);
        self.words.fill(0);
        self.nodes.fill(Node::default());
        for k in self.kids.iter_mut() {
            k.fill(0);
        }
        self.ivs.fill(VaInterval::default());
        self.segs.fill(Seg::default());
        self.blocks.fill(Block::EMPTY);
    }
}

/// Host-side storage for a [`Scratch`] (`Vec`s), for the `#[test]` that runs the table.
#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    pub(crate) struct HostScratch {
        vram: Vec<u32>,
        words: Vec<u64>,
        nodes: Vec<Node>,
        kids: Vec<[u32; 512]>,
        ivs: Vec<VaInterval>,
        segs: Vec<Seg>,
        blocks: Vec<Block>,
    }

    impl HostScratch {
        pub(crate) fn new() -> Self {
            Self {
                vram: vec![0; VRAM_WORDS_LEN],
                words: vec![0; WORDS_LEN],
                nodes: vec![Node::default(); NODES_LEN],
                kids: vec![[0; 512]; KIDS_LEN],
                ivs: vec![VaInterval::default(); IVS_LEN],
                segs: vec![Seg::default(); SEGS_LEN],
                blocks: vec![Block::EMPTY; BLOCKS_LEN],
            }
        }

        pub(crate) fn scratch(&mut self) -> Scratch<'_> {
            Scratch {
                vram: &mut self.vram,
                words: &mut self.words,
                nodes: &mut self.nodes,
                kids: &mut self.kids,
                ivs: &mut self.ivs,
                segs: &mut self.segs,
                blocks: &mut self.blocks,
            }
        }
    }

    #[test]
    fn host_scratch_is_big_enough() {
        let mut h = HostScratch::new();
        assert!(h.scratch().is_big_enough());
    }
}
