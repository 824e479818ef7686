//! Blocks inside one 64-chunk word of the free-chunk map (orders 0 to 5): the hot paths of
//! allocation and free.
//!
//! Page tables and small buffers hammer these, so they skip the general machinery (`fc_range`,
//! a merge loop probing the order maps) and do the minimum: one read-modify-write of the
//! free-chunk word, the clear word only when it changes, summaries only when they gain a bit,
//! and the merge computed from the free-chunk word itself. Inside a word the free bits say
//! everything about orders 0 to 5: a freed block merges up to the largest naturally aligned block
//! around it that is all free, and every buddy it absorbed on the way was a maximal free block
//! (its parent held the block that was allocated). Only a merge that fills the whole word goes
//! on through the order-6+ maps.
//!
//! The state left is exactly the one the general paths define (the state machine and `check()`
//! hold them to it).

use super::bitmap::{bit, msb, pc, pow2, ClearMode, Core, Ctx};
use super::layout::{T_CLEAR, T_DIRTY, T_FREE};

/// Chunks per free-map word, as an order.
pub(crate) const WORD_ORDER: u32 = 6;

/// The chunks of order-`k` block `p` (`k < 6`) as a mask of their free-map word.
#[inline(always)]
fn block_mask(k: u32, p: u64) -> u64 {
    let s = p.wrapping_shl(k);
    pow2(1u32.wrapping_shl(k))
        .wrapping_sub(1)
        .wrapping_shl(u32::try_from(s & 63).unwrap_or(0))
}

/// Order of the largest naturally aligned block around bit `pos` of `f` that is all set (6 for
/// a full word); bit `pos` must be set.
#[inline(always)]
fn merged_order(f: u64, pos: u64) -> u32 {
    let b = bit(pos);
    let zeros = !f;
    let below = zeros & b.wrapping_sub(1);
    let above = zeros & !(b | b.wrapping_sub(1));
    // A block of order `j` around `pos` avoids the zero at `z` iff `pos >> j != z >> j`, that
    // is iff `j <= msb(pos ^ z)`: the nearest zero on each side bounds the order.
    let lo = if below == 0 {
        WORD_ORDER
    } else {
        msb(pos ^ u64::from(msb(below)))
    };
    let hi = if above == 0 {
        WORD_ORDER
    } else {
        msb(pos ^ u64::from(above.trailing_zeros()))
    };
    lo.min(hi)
}

impl<C: core::ops::DerefMut<Target = Core>, M: core::ops::DerefMut<Target = [u64]>> Ctx<C, M> {
    /// Allocates order-`k` block `p` (`k < 6`, every chunk free, the maximal free block holding
    /// it already split by the caller's [`Self::set_free`]s): clears its free bits and counts.
    /// Returns whether it was all clear. Summaries that lose a bit are left stale.
    #[inline(always)]
    pub(crate) fn take_small(&mut self, k: u32, p: u64) -> bool {
        let mask = block_mask(k, p);
        let w = p.wrapping_shl(k) >> 6;
        let fi = self.f_index(w);
        let f = self.rd(fi);
        self.wr(fi, f & !mask);
        let clear = self.cw(w) & mask;
        let core = &mut *self.c;
        core.avail = core.avail.wrapping_sub(pow2(k));
        core.clear_avail = core.clear_avail.wrapping_sub(pc(clear));
        clear == mask
    }

    /// Frees order-`k` block `p` (`k < 6`, every chunk allocated), applies `cm` to its clear
    /// bits, and merges it as far as it goes.
    #[inline(always)]
    pub(crate) fn give_small(&mut self, k: u32, p: u64, cm: ClearMode) {
        let s = p.wrapping_shl(k);
        let w = s >> 6;
        let mask = block_mask(k, p);
        let fi = self.f_index(w);
        let ci = self.c_index(w);
        let f = self.rd(fi);
        let c = self.rd(ci);
        let nf = f | mask;
        let nc = match cm {
            ClearMode::Keep => c,
            ClearMode::Set(true) => c | mask,
            ClearMode::Set(false) => c & !mask,
        };
        self.wr(fi, nf);
        if nc != c {
            self.wr(ci, nc);
        }
        // The chunk views gain bits: their summaries must show the word (they may already).
        if f == 0 {
            self.flip(T_FREE, 1, w, true);
        }
        let clear = nc & mask;
        if clear != 0 && f & c == 0 {
            self.flip(T_CLEAR, 1, w, true);
        }
        if clear != mask && f & !c == 0 {
            self.flip(T_DIRTY, 1, w, true);
        }
        {
            let core = &mut *self.c;
            core.avail = core.avail.wrapping_add(pow2(k));
            if clear != 0 {
                core.clear_avail = core.clear_avail.wrapping_add(pc(clear));
            }
            core.gen = core.gen.wrapping_add(1);
        }
        // No root bound needed inside a word: an aligned block that is all free lies inside the
        // pool, and every aligned block inside the pool lies inside one root (roots are the
        // maximal aligned blocks of `[0, n)`); the padding bits past `n` are never set.
        let top = merged_order(nf, s & 63);
        // Every buddy absorbed below order `top` was a maximal free block.
        let mut o = k;
        while o < top {
            self.set_free(o, (s >> o) ^ 1, false);
            o = o.saturating_add(1);
        }
        let mut q = s >> o;
        if o == WORD_ORDER {
            // The whole word is free: go on through the order-6+ maps.
            while o < self.root_order(q.wrapping_shl(o)) && self.is_free(o, q ^ 1) {
                self.set_free(o, q ^ 1, false);
                q >>= 1;
                o = o.saturating_add(1);
            }
        }
        self.set_free(o, q, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order from the definition: the largest `j` whose aligned block around `pos` is full.
    fn merged_order_model(f: u64, pos: u64) -> u32 {
        (0..=6u32)
            .rev()
            .find(|&j| {
                let start = pos >> j << j;
                (start..start + (1 << j)).all(|i| f >> i & 1 == 1)
            })
            .unwrap()
    }

    proptest::proptest! {
        #[test]
        fn merged_order_matches_the_definition(f: u64, pos in 0u64..64) {
            let f = f | 1 << pos;
            proptest::prop_assert_eq!(merged_order(f, pos), merged_order_model(f, pos));
        }
    }

    #[test]
    fn merged_order_edges() {
        assert_eq!(merged_order(u64::MAX, 0), 6);
        assert_eq!(merged_order(u64::MAX, 63), 6);
        assert_eq!(merged_order(1, 0), 0);
        assert_eq!(merged_order(0b11, 1), 1);
        assert_eq!(merged_order(0b1110, 1), 0);
        assert_eq!(merged_order(u64::MAX >> 1, 62), 0);
        assert_eq!(merged_order(u64::MAX << 32, 63), 5);
    }
}
