//! Where each bitmap lives in the metadata words, fixed at creation.
//!
//! The metadata is one array of `u64`:
//!
//! - `F`: one bit per chunk, set while the chunk is free;
//! - `C`: one bit per chunk, the clear (zeroed) state; meaningful for free chunks only;
//! - per order `k ≥ 6`, a bitmap with one bit per naturally aligned order-`k` block, set while
//!   that block is a maximal free block (buddies always merge, so the set is canonical);
//! - 64-ary "non-zero word" summaries over each of those bitmaps and over nine derived views of
//!   `F`/`C` whose words are computed on the fly: free chunks, clear free chunks, dirty free
//!   chunks, and the maximal free blocks of orders 0 to 5. A block of order below 6 lies inside
//!   one 64-chunk word of `F`, so the word alone says whether it is a maximal free block: those
//!   orders need no bitmap, and their views put block `i` of order `k` at bit `i << k` (the
//!   position of its first chunk).
//!
//! That is about 2.2 bits per chunk (0.27 byte), whatever the fragmentation.

/// Most levels a bitmap can need, leaf included. Word offsets are `u32` (see [`metadata_words`]),
/// so the `F` bitmap has under 2^32 words and a leaf under 2^38 bits: 2^38 → 2^32 → … → 2^2 is 7
/// levels.
pub(crate) const MAX_LEVELS: usize = 7;
/// Level offsets of all trees together: at most 9 × 7 for the derived views plus, per order
/// `k ≥ 6`, the levels of an `n >> k`-bit leaf (checked by a test for the largest addressable
/// pool).
pub(crate) const MAX_OFFS: usize = 176;
/// Tree numbers of the derived views.
pub(crate) const T_FREE: usize = 0;
/// Clear free chunks (`F & C`).
pub(crate) const T_CLEAR: usize = 1;
/// Dirty free chunks (`F & !C`).
pub(crate) const T_DIRTY: usize = 2;
/// Order-0 free blocks; order `k` uses tree `T_ORDER0 + k`.
pub(crate) const T_ORDER0: usize = 3;
/// Orders whose blocks lie inside one `F` word, so their maps are derived from it.
pub(crate) const DERIVED_ORDERS: u32 = 6;
/// The first tree with a stored leaf: order 6.
const FIRST_STORED_TREE: usize = T_ORDER0 + DERIVED_ORDERS as usize;
/// Trees at most: three chunk views plus orders 0..=51, rounded up to a power of two so that a
/// tree number masked with `MAX_TREES - 1` indexes the per-tree arrays without a bounds check.
pub(crate) const MAX_TREES: usize = 64;
const _: () = assert!(MAX_TREES.is_power_of_two() && MAX_TREES >= T_ORDER0 + 53);
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
/// the parameters are invalid or the count does not fit a `u32` (word offsets are stored as
/// `u32` to keep a `Buddy` small by value; 2^32 words of metadata cover about 2^36 chunks, 256
/// TiB of 4 KiB chunks).
#[must_use]
pub const fn metadata_words(size: u64, chunk: u64) -> usize {
    let Some((n, _)) = chunks_of(size, chunk) else {
        return 0;
    };
    let max_order = 63u32.saturating_sub(n.leading_zeros());
    let fc = words_for(n).saturating_mul(2);
    let derived = (T_ORDER0 as u64).saturating_add(derived_orders(max_order));
    let mut total = fc.saturating_add(tree_words(n, false).saturating_mul(derived));
    let mut k = DERIVED_ORDERS;
    while k <= max_order {
        total = total.saturating_add(tree_words(n >> k, true));
        k = k.saturating_add(1);
    }
    // Offsets into the words are stored as `u32` to keep the allocator small by value.
    if total > u32::MAX as u64 {
        return 0;
    }
    to_usize(total)
}

/// How many orders of a pool with `max_order` have derived maps.
const fn derived_orders(max_order: u32) -> u64 {
    let orders = (max_order as u64).saturating_add(1);
    if orders < DERIVED_ORDERS as u64 {
        orders
    } else {
        DERIVED_ORDERS as u64
    }
}

/// Whether tree `t` has a derived leaf (a chunk view or an order below 6).
#[inline]
pub(crate) const fn derived_leaf(t: usize) -> bool {
    t < FIRST_STORED_TREE
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

/// Offsets of every bitmap. Level `l + 1` of a tree has a bit per word of level `l`; the bit counts
/// are derived from the leaf's (see [`Layout::level_bits`]), only the word offsets are stored,
/// all trees' levels in one array, so the layout (and a `Buddy`) stays small by value.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) f_off: usize,
    pub(crate) c_off: usize,
    pub(crate) fc_words: u64,
    /// Chunks (leaf bits of the views; order `k` has `n >> k`).
    n: u64,
    /// Word offset of level `l` of tree `t` at `offs[first[t] + l]`.
    offs: [u32; MAX_OFFS],
    first: [u8; MAX_TREES],
    levels: [u8; MAX_TREES],
    /// Word offsets of levels 0 and 1 of each tree, the ones the hot paths touch, looked up
    /// without the level arithmetic. `u32::MAX` (none, or derived) is past the end of any
    /// metadata, which has at most `u32::MAX` words, so it reads as 0 and is never written.
    low: [[u32; 2]; MAX_TREES],
    pub(crate) tree_count: usize,
    pub(crate) words: usize,
}

fn place(next: &mut u64, words: u64) -> Option<u32> {
    let at = u32::try_from(*next).ok()?;
    *next = next.checked_add(words)?;
    Some(at)
}

/// Leaf bits of tree `t` over `n` chunks (a derived leaf has a bit per chunk).
#[inline]
const fn leaf_bits(n: u64, t: usize) -> u64 {
    if derived_leaf(t) {
        n
    } else {
        let k = t.wrapping_sub(T_ORDER0);
        if k >= 64 {
            0
        } else {
            n >> k
        }
    }
}

impl Layout {
    /// No trees, no words: what [`Self::init`] fills in.
    pub(crate) const EMPTY: Self = Self {
        f_off: 0,
        c_off: 0,
        fc_words: 0,
        n: 0,
        offs: [0; MAX_OFFS],
        first: [0; MAX_TREES],
        levels: [0; MAX_TREES],
        low: [[u32::MAX; 2]; MAX_TREES],
        tree_count: 0,
        words: 0,
    };

    /// The layout for `n` chunks; `None` if it cannot be addressed.
    #[cfg(test)]
    pub(crate) fn new(n: u64, max_order: u32) -> Option<Self> {
        let mut l = Self::EMPTY;
        l.init(n, max_order)?;
        Some(l)
    }

    /// Fills in the layout for `n` chunks in place (no layout-sized temporaries: the allocator
    /// is built on small kernel stacks); `None` if it cannot be addressed, leaving `self`
    /// meaningless.
    pub(crate) fn init(&mut self, n: u64, max_order: u32) -> Option<()> {
        let fc_words = words_for(n);
        let mut next = 0u64;
        self.f_off = usize::try_from(place(&mut next, fc_words)?).ok()?;
        self.c_off = usize::try_from(place(&mut next, fc_words)?).ok()?;
        self.fc_words = fc_words;
        self.n = n;
        self.offs = [0; MAX_OFFS];
        self.first = [0; MAX_TREES];
        self.levels = [0; MAX_TREES];
        self.low = [[u32::MAX; 2]; MAX_TREES];
        let trees = T_ORDER0
            .checked_add(1)?
            .checked_add(usize::try_from(max_order).ok()?)?;
        let mut slot = 0usize;
        for t in 0..trees {
            let stored_leaf = !derived_leaf(t);
            *self.first.get_mut(t)? = u8::try_from(slot).ok()?;
            let mut bits = leaf_bits(n, t);
            let mut lv = 0usize;
            loop {
                if lv >= MAX_LEVELS {
                    return None;
                }
                let o = self.offs.get_mut(slot)?;
                if lv > 0 || stored_leaf {
                    *o = place(&mut next, words_for(bits))?;
                }
                slot = slot.checked_add(1)?;
                lv = lv.checked_add(1)?;
                if bits <= 64 {
                    break;
                }
                bits = words_for(bits);
            }
            *self.levels.get_mut(t)? = u8::try_from(lv).ok()?;
        }
        self.tree_count = trees;
        for t in 0..trees {
            for l in 0..2 {
                let off = u32::try_from(self.level_off(t, l)).unwrap_or(u32::MAX);
                *self.low.get_mut(t)?.get_mut(l)? = off;
            }
        }
        // Every offset and the end fit a `u32` (`metadata_words` agrees).
        u32::try_from(next).ok()?;
        self.words = usize::try_from(next).ok()?;
        Some(())
    }

    /// Word offset of level 0 of tree `t` (`usize::MAX` if it is derived or missing).
    #[inline(always)]
    pub(crate) fn off0(&self, t: usize) -> usize {
        self.low
            .get(t & (MAX_TREES - 1))
            .map_or(usize::MAX, |o| o[0] as usize)
    }

    /// Word offset of level 1 of tree `t` (`usize::MAX` if it has none).
    #[inline(always)]
    pub(crate) fn off1(&self, t: usize) -> usize {
        self.low
            .get(t & (MAX_TREES - 1))
            .map_or(usize::MAX, |o| o[1] as usize)
    }

    /// Word offset of level `l` of tree `t`, or one past any metadata (reads as 0, never
    /// written) if there is none or it is derived: levels 0 and 1, the ones the hot paths touch,
    /// from the table, the others through [`Self::level_off`].
    #[inline(always)]
    pub(crate) fn off(&self, t: usize, l: usize) -> usize {
        match l {
            0 => self.off0(t),
            1 => self.off1(t),
            _ => self.level_off(t, l),
        }
    }

    /// Levels of tree `t` (0 for a tree that does not exist).
    #[inline]
    pub(crate) fn levels(&self, t: usize) -> usize {
        self.levels.get(t).map_or(0, |&v| usize::from(v))
    }

    /// Bits of level `l` of tree `t`: the leaf's, ceil-divided by 64 per level (0 past the top).
    #[inline]
    pub(crate) fn level_bits(&self, t: usize, l: usize) -> u64 {
        if l >= self.levels(t) {
            return 0;
        }
        let leaf = leaf_bits(self.n, t);
        // `l < MAX_LEVELS`, so the shift is at most 36.
        let s = u32::try_from(l).unwrap_or(0).wrapping_mul(6);
        let q = leaf.checked_shr(s).unwrap_or(0);
        let rem = leaf & (1u64.checked_shl(s).unwrap_or(0).wrapping_sub(1));
        q.wrapping_add(u64::from(rem != 0))
    }

    /// Word offset of level `l` of tree `t` (`usize::MAX` if there is none, which reads as 0).
    #[inline]
    pub(crate) fn level_off(&self, t: usize, l: usize) -> usize {
        if l >= self.levels(t) || (l == 0 && derived_leaf(t)) {
            return usize::MAX;
        }
        self.first
            .get(t)
            .and_then(|&f| self.offs.get(usize::from(f).wrapping_add(l)))
            .and_then(|&o| usize::try_from(o).ok())
            .unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest chunk count whose metadata fits `u32` word offsets.
    fn largest_n() -> u64 {
        let (mut lo, mut hi) = (1u64, 1u64 << 52);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if metadata_words(mid << 12, MIN_CHUNK) != 0 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    #[test]
    fn largest_addressable_pool_has_a_layout() {
        let n = largest_n();
        assert!(n > 1 << 35, "{n}");
        let l = Layout::new(n, 63 - n.leading_zeros()).expect("layout of the largest pool");
        assert_eq!(l.words, metadata_words(n << 12, MIN_CHUNK));
        assert!(u32::try_from(l.words).is_ok());
        // One more chunk is refused by both.
        assert_eq!(metadata_words((n + 1) << 12, MIN_CHUNK), 0);
        assert!(Layout::new(n + 1, 63 - (n + 1).leading_zeros()).is_none());
    }

    #[test]
    fn derived_level_bits_match_repeated_ceil_division() {
        for n in [
            1u64,
            63,
            64,
            65,
            4095,
            4096,
            4097,
            262_145,
            (1 << 30) + 12_345,
        ] {
            let max_order = 63 - n.leading_zeros();
            let l = Layout::new(n, max_order).unwrap();
            for t in 0..l.tree_count {
                let mut bits = leaf_bits(n, t);
                let mut lv = 0;
                loop {
                    assert_eq!(l.level_bits(t, lv), bits, "n {n} tree {t} level {lv}");
                    lv += 1;
                    if bits <= 64 {
                        break;
                    }
                    bits = bits.div_ceil(64);
                }
                assert_eq!(l.levels(t), lv);
                assert_eq!(l.level_bits(t, lv), 0);
            }
        }
    }
}
