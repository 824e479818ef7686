//! Tests of the buddy allocator: the gpu_buddy KUnit suite ported (`kunit`), unit tests of the
//! pieces (`unit`) and a state-machine test against a model of live ranges (`state_machine`).

extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;

mod kunit;
mod state_machine;
mod unit;

pub(crate) const SZ_4K: u64 = 4096;
pub(crate) const SZ_1M: u64 = 1 << 20;

/// The fixed seeds every randomised test runs over.
pub(crate) const SEEDS: [u64; 4] = [1, 0xdead_beef, 0x1234_5678_9abc_def0, 42];

/// splitmix64: a tiny deterministic PRNG (kernel prandom stand-in).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A Fisher–Yates permutation of `0..n`.
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
        v
    }
}

/// A sink over a `std` vector (the crate's own `Vec` sink needs the `alloc` feature).
#[derive(Default, Debug)]
pub(crate) struct VecSink(pub(crate) Vec<Block>);

impl BlockSink for VecSink {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn try_push(&mut self, block: Block) -> bool {
        self.0.push(block);
        true
    }
    fn get(&self, index: usize) -> Option<Block> {
        self.0.as_slice().get(index).copied()
    }
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// A buddy over leaked test storage.
pub(crate) fn mk(size: u64, chunk: u64) -> Buddy<'static> {
    let p = BuddyParams {
        base_offset: 0,
        size,
        chunk_size: chunk,
    };
    let words = Buddy::metadata_words(&p);
    assert!(words > 0, "metadata size for {size:#x}/{chunk:#x}");
    let storage: &'static mut [u64] = Box::leak(vec![0u64; words].into_boxed_slice());
    Buddy::with_storage(p, storage).expect("init")
}

/// `gpu_buddy_alloc_blocks(start, end, size, min, flags)` with the kernel's argument shape.
pub(crate) fn alloc(
    b: &mut Buddy<'_>,
    mode: AllocMode,
    size: u64,
    min: u64,
    flags: AllocFlags,
) -> Result<Vec<Block>, BuddyError> {
    let mut s = VecSink::default();
    b.alloc_into(
        &AllocRequest {
            mode,
            size,
            min_block_size: min,
            flags,
        },
        &mut s,
    )?;
    Ok(s.0)
}

pub(crate) fn range(start: u64, end: u64) -> AllocMode {
    AllocMode::Range { start, end }
}

pub(crate) fn total(blocks: &[Block]) -> u64 {
    blocks.iter().map(Block::size).sum()
}

/// The `fini` of every KUnit test: no leak, consistent maps.
pub(crate) fn fini(b: &Buddy<'_>) {
    assert_eq!(b.leak_report(), None);
    assert_eq!(b.check(), Ok(()));
    assert_eq!(b.avail(), b.size());
}
