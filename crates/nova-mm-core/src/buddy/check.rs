//! The invariant walker (gpu_buddy's `check_mm`/`check_block`, for the bitmap design): every map,
//! summary and counter is recomputed from the free-chunk map and compared.

use super::bitmap::{is_derived, msb, pow2, tree_of, wmask, Core, Ctx};
use super::types::Violation;

impl<C: core::ops::Deref<Target = Core>, M: core::ops::Deref<Target = [u64]>> Ctx<C, M> {
    pub(crate) fn check(&self) -> Result<(), Violation> {
        let n = self.c.n;
        let words = self.c.layout.fc_words;
        // Padding and counters of the chunk maps.
        let (mut avail, mut clear) = (0u64, 0u64);
        for w in 0..words {
            let f = self.fw(w);
            if f & !wmask(w, 0, n) != 0 {
                return Err(Violation::Padding);
            }
            avail = avail.wrapping_add(u64::from(f.count_ones()));
            clear = clear.wrapping_add(u64::from((f & self.cw(w)).count_ones()));
        }
        if avail != self.c.avail || clear != self.c.clear_avail {
            return Err(Violation::Avail);
        }
        // Summaries of every tree.
        for t in 0..self.c.layout.tree_count {
            for l in 1..self.levels(t) {
                let below = self.level_bits(t, l.saturating_sub(1));
                for w in 0..below.div_ceil(64) {
                    let want = self.lword(t, l.saturating_sub(1), w) != 0;
                    let have = self.lword(t, l, w >> 6) & super::bitmap::bit(w) != 0;
                    // A set bit over an empty word is allowed (clears are lazy).
                    if want && !have {
                        return Err(Violation::Summary {
                            tree: t,
                            level: l,
                            word: w,
                        });
                    }
                }
                let bits = self.level_bits(t, l);
                let last = bits.saturating_sub(1) >> 6;
                if self.lword(t, l, last) & !wmask(last, 0, bits) != 0 {
                    return Err(Violation::Padding);
                }
            }
        }
        // Maximal free blocks of every order, and the counts.
        let mut nonempty = 0u64;
        for k in 0..=self.c.max_order {
            let blocks = n >> k;
            let t = tree_of(k);
            let last = blocks.saturating_sub(1) >> 6;
            if !is_derived(k) && blocks > 0 && self.lword(t, 0, last) & !wmask(last, 0, blocks) != 0
            {
                return Err(Violation::Padding);
            }
            let mut count = 0u64;
            let size = pow2(k);
            for i in 0..blocks {
                let s = i.wrapping_shl(k);
                let all = self.range_all(s, s.wrapping_add(size), true, false);
                let want = all && {
                    let bs = (i ^ 1).wrapping_shl(k);
                    let has_parent = k < msb(s ^ n);
                    !(has_parent && self.range_all(bs, bs.wrapping_add(size), true, false))
                };
                let have = self.is_free(k, i);
                if want != have {
                    return Err(Violation::FreeMap { order: k, index: i });
                }
                if have {
                    count = count.wrapping_add(1);
                }
            }
            let ku = usize::try_from(k).unwrap_or(usize::MAX);
            if self.c.counts.get(ku).copied() != Some(count) {
                return Err(Violation::Count { order: k });
            }
            if count != 0 {
                nonempty |= pow2(k);
            }
        }
        if nonempty != self.c.nonempty {
            return Err(Violation::Count { order: 64 });
        }
        Ok(())
    }
}
