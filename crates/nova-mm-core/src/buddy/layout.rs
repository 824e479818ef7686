//! Where each bitmap lives in the metadata words, fixed at creation.
//!
//! The metadata is one array of `u64`:
//!
//! - `F`: one bit per chunk, set while the chunk is free;
//! - `C`: one bit per chunk, the clear (zeroed) state; meaningful for free chunks only;
//! - per order `k ≥ 1`, a bitmap with one bit per naturally aligned order-`k` block, set while
//!   that block is a maximal free block (buddies always merge, so the set is canonical);
//! - 64-ary "non-zero word" summaries over each of those bitmaps and over four derived views of
//!   `F`/`C` whose words are computed on the fly: free chunks, clear free chunks, dirty free
//!   chunks and order-0 free blocks (`F & !buddy(F)`; order 0 needs no bitmap of its own).
//!
//! That is about 3.06 bits per chunk (0.38 byte), whatever the fragmentation.

/// Most summary levels a bitmap can need (2^52 bits → 9 levels including the leaf).
pub(crate) const MAX_LEVELS: usize = 10;
/// Tree numbers of the derived views.
pub(crate) const T_FREE: usize = 0;
/// Clear free chunks (`F & C`).
pub(crate) const T_CLEAR: usize = 1;
/// Dirty free chunks (`F & !C`).
pub(crate) const T_DIRTY: usize = 2;
/// Order-0 free blocks; order `k` uses tree `T_ORDER0 + k`.
pub(crate) const T_ORDER0: usize = 3;
/// Trees at most: four views plus orders 1..=51.
pub(crate) const MAX_TREES: usize = T_ORDER0 + 53;
/// The smallest chunk gpu_buddy accepts.
pub(crate) const MIN_CHUNK: u64 = 4096;

const fn words_for(bits: u64) -> u64 {
    bits.div_ceil(64)
}

/// Words taken by one bitmap of `leaf_bits` bits: its leaf (if stored) and its summaries.
const fn tree_words(leaf_bits: u64, stored_leaf: bool) -> u64 {
    let mut total = if stored_leaf { words_for(leaf_bits) } else { 0 };
    let mut bits = leaf_bits;
    while bits > 64 {
        bits = words_for(bits);
        total = total.saturating_add(words_for(bits));
    }
    total
}

/// Chunk count and `log2(chunk)` for valid init parameters (gpu_buddy_init's checks).
pub(crate) const fn chunks_of(size: u64, chunk: u64) -> Option<(u64, u32)> {
    if chunk < MIN_CHUNK || !chunk.is_power_of_two() || size < chunk {
        return None;
    }
    let shift = chunk.trailing_zeros();
    Some((size >> shift, shift))
}

/// Metadata words a [`Buddy`](super::Buddy) over `size` bytes of `chunk`-byte chunks needs; 0 if
/// the parameters are invalid or the count does not fit a `usize`.
#[must_use]
pub const fn metadata_words(size: u64, chunk: u64) -> usize {
    let Some((n, _)) = chunks_of(size, chunk) else {
        return 0;
    };
    let max_order = 63u32.saturating_sub(n.leading_zeros());
    let fc = words_for(n).saturating_mul(2);
    let mut total = fc.saturating_add(tree_words(n, false).saturating_mul(4));
    let mut k = 1;
    while k <= max_order {
        total = total.saturating_add(tree_words(n >> k, true));
        k = k.saturating_add(1);
    }
    to_usize(total)
}

/// `x` as a `usize`, or 0 if it does not fit (a `const` `try_from`).
const fn to_usize(x: u64) -> usize {
    let mut r: usize = 0;
    let mut i = 0u32;
    while i < 64 {
        if x & (1u64 << i) != 0 {
            let Some(b) = 1usize.checked_shl(i) else {
                return 0;
            };
            r |= b;
        }
        i = i.saturating_add(1);
    }
    r
}

/// [`metadata_words`] in bytes (saturating).
#[must_use]
pub const fn metadata_bytes(size: u64, chunk: u64) -> u64 {
    (metadata_words(size, chunk) as u64).saturating_mul(8)
}

/// The levels of one bitmap: level 0 is the leaf, level `l + 1` has a bit per word of level `l`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeLayout {
    pub(crate) levels: usize,
    pub(crate) bits: [u64; MAX_LEVELS],
    pub(crate) off: [usize; MAX_LEVELS],
}

impl TreeLayout {
    const EMPTY: Self = Self {
        levels: 0,
        bits: [0; MAX_LEVELS],
        off: [0; MAX_LEVELS],
    };
}

/// Offsets of every bitmap.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) f_off: usize,
    pub(crate) c_off: usize,
    pub(crate) fc_words: u64,
    pub(crate) trees: [TreeLayout; MAX_TREES],
    pub(crate) tree_count: usize,
    pub(crate) words: usize,
}

fn place(next: &mut u64, words: u64) -> Option<usize> {
    let at = usize::try_from(*next).ok()?;
    *next = next.checked_add(words)?;
    Some(at)
}

fn tree(next: &mut u64, leaf_bits: u64, stored_leaf: bool) -> Option<TreeLayout> {
    let mut t = TreeLayout::EMPTY;
    let mut bits = leaf_bits;
    let mut l = 0usize;
    loop {
        *t.bits.get_mut(l)? = bits;
        if l > 0 || stored_leaf {
            *t.off.get_mut(l)? = place(next, words_for(bits))?;
        }
        l = l.checked_add(1)?;
        if bits <= 64 {
            break;
        }
        bits = words_for(bits);
    }
    t.levels = l;
    Some(t)
}

impl Layout {
    /// The layout for `n` chunks; `None` if it cannot be addressed.
    pub(crate) fn new(n: u64, max_order: u32) -> Option<Self> {
        let fc_words = words_for(n);
        let mut next = 0u64;
        let f_off = place(&mut next, fc_words)?;
        let c_off = place(&mut next, fc_words)?;
        let mut trees = [TreeLayout::EMPTY; MAX_TREES];
        let mut count = 0usize;
        for t in 0..T_ORDER0.checked_add(1)? {
            *trees.get_mut(t)? = tree(&mut next, n, false)?;
            count = t.checked_add(1)?;
        }
        for k in 1..=max_order {
            let t = T_ORDER0.checked_add(usize::try_from(k).ok()?)?;
            *trees.get_mut(t)? = tree(&mut next, n.checked_shr(k)?, true)?;
            count = t.checked_add(1)?;
        }
        Some(Self {
            f_off,
            c_off,
            fc_words,
            trees,
            tree_count: count,
            words: usize::try_from(next).ok()?,
        })
    }
}
