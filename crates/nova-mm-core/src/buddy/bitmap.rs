//! Bit-level access to the metadata: words, summaries, find-next/previous-set-bit, and the
//! free/clear chunk maps with all their derived views kept in step.
//!
//! Everything here is total: an index outside the metadata reads as 0 and is not written, so a
//! logic error shows up in [`Buddy::check`](super::Buddy::check), never as a panic.

use super::layout::{Layout, MAX_TREES, T_CLEAR, T_DIRTY, T_FREE, T_ORDER0};

/// Bits `[b, 64)` of a word (`b ≥ 64` gives 0).
#[inline]
pub(crate) fn mask_from(b: u64) -> u64 {
    u32::try_from(b)
        .ok()
        .and_then(|b| u64::MAX.checked_shl(b))
        .unwrap_or(0)
}

/// The bits of word `w` whose positions lie in `[lo, hi)`.
#[inline]
pub(crate) fn wmask(w: u64, lo: u64, hi: u64) -> u64 {
    let base = w.wrapping_shl(6);
    let lb = lo.saturating_sub(base).min(64);
    let hb = hi.saturating_sub(base).min(64);
    mask_from(lb) & !mask_from(hb)
}

/// Bit `i % 64` of a word.
#[inline]
pub(crate) fn bit(i: u64) -> u64 {
    1u64.wrapping_shl(u32::try_from(i & 63).unwrap_or(0))
}

/// `1 << s` for shifts below 64, else 0.
#[inline]
pub(crate) fn pow2(s: u32) -> u64 {
    1u64.checked_shl(s).unwrap_or(0)
}

/// Index of the highest set bit of a non-zero value.
#[inline]
pub(crate) fn msb(x: u64) -> u32 {
    63u32.saturating_sub(x.leading_zeros())
}

/// Order-0 free blocks of a free-chunk word: free chunks whose buddy is not free.
#[inline]
pub(crate) fn free0(f: u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let swapped = ((f >> 1) & EVEN) | ((f & EVEN) << 1);
    f & !swapped
}

/// Population count, fast for the common cases of the allocator: 0, one bit, and one
/// contiguous run of bits (the baseline x86-64 target has no `popcnt` instruction).
#[inline]
pub(crate) fn pc(x: u64) -> u64 {
    if x == 0 {
        return 0;
    }
    let t = x.trailing_zeros();
    let y = x >> t;
    if y & y.wrapping_add(1) == 0 {
        u64::from(64u32.saturating_sub(x.leading_zeros()).saturating_sub(t))
    } else {
        u64::from(x.count_ones())
    }
}

/// The metadata index range of words `[w0, w1)` of a region at `off`.
fn span(off: usize, w0: u64, w1: u64) -> Option<core::ops::Range<usize>> {
    let a = off.checked_add(usize::try_from(w0).ok()?)?;
    let b = off.checked_add(usize::try_from(w1).ok()?)?;
    (a <= b).then_some(a..b)
}

#[inline]
fn ix(off: usize, w: u64) -> usize {
    usize::try_from(w)
        .ok()
        .and_then(|w| off.checked_add(w))
        .unwrap_or(usize::MAX)
}

/// What happens to the clear bits of a range whose free bits are set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ClearMode {
    /// Leave them (internal undo and trim: the memory is as it was).
    Keep,
    /// Set them to this value.
    Set(bool),
}

/// A remembered search result: no run exists in the part of `[lo, hi)` it excludes, valid while
/// `gen` is unchanged (only frees and clear-state changes create new runs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hint {
    pub(crate) valid: bool,
    pub(crate) gen: u64,
    pub(crate) tree: usize,
    pub(crate) k: u32,
    pub(crate) a: u32,
    pub(crate) down: bool,
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    pub(crate) pos: u64,
}

/// Number of remembered searches.
pub(crate) const HINTS: usize = 8;

/// The allocator state outside the metadata words.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) layout: Layout,
    /// Managed chunks.
    pub(crate) n: u64,
    pub(crate) shift: u32,
    pub(crate) max_order: u32,
    pub(crate) base: u64,
    /// Free chunks.
    pub(crate) avail: u64,
    /// Free chunks known to be clear.
    pub(crate) clear_avail: u64,
    /// Maximal free blocks per order.
    pub(crate) counts: [u64; 64],
    /// Bit `k` set while `counts[k] != 0`.
    pub(crate) nonempty: u64,
    /// Bumped whenever a free run may have appeared.
    pub(crate) gen: u64,
    pub(crate) hints: [Hint; HINTS],
    pub(crate) hint_next: usize,
    /// Per tree, an upper bound (exclusive) of its set leaf bits: highest-block searches start
    /// there instead of at the top of the summaries.
    pub(crate) top: [u64; MAX_TREES],
}

/// The state and its metadata words, borrowed together for one operation.
#[derive(Debug)]
pub(crate) struct Ctx<C, M> {
    pub(crate) c: C,
    pub(crate) m: M,
}

impl<C: core::ops::Deref<Target = Core>, M: core::ops::Deref<Target = [u64]>> Ctx<C, M> {
    #[inline]
    pub(crate) fn rd(&self, i: usize) -> u64 {
        self.m.get(i).copied().unwrap_or(0)
    }

    /// Free-chunk word `w`.
    #[inline]
    pub(crate) fn fw(&self, w: u64) -> u64 {
        self.rd(ix(self.c.layout.f_off, w))
    }

    /// Clear-chunk word `w`.
    #[inline]
    pub(crate) fn cw(&self, w: u64) -> u64 {
        self.rd(ix(self.c.layout.c_off, w))
    }

    /// Whether chunk `i` is free.
    #[inline]
    pub(crate) fn f_bit(&self, i: u64) -> bool {
        self.fw(i >> 6) & bit(i) != 0
    }

    #[inline]
    pub(crate) fn levels(&self, t: usize) -> usize {
        self.c.layout.trees.get(t).map_or(0, |t| t.levels)
    }

    #[inline]
    pub(crate) fn level_bits(&self, t: usize, l: usize) -> u64 {
        self.c
            .layout
            .trees
            .get(t)
            .and_then(|t| t.bits.get(l).copied())
            .unwrap_or(0)
    }

    #[inline]
    fn level_off(&self, t: usize, l: usize) -> usize {
        self.c
            .layout
            .trees
            .get(t)
            .and_then(|t| t.off.get(l).copied())
            .unwrap_or(usize::MAX)
    }

    /// Word `w` of level `l` of tree `t` (level 0 of the derived views is computed).
    #[inline]
    pub(crate) fn lword(&self, t: usize, l: usize, w: u64) -> u64 {
        if l == 0 {
            match t {
                T_FREE => self.fw(w),
                T_CLEAR => self.fw(w) & self.cw(w),
                T_DIRTY => self.fw(w) & !self.cw(w),
                T_ORDER0 => free0(self.fw(w)),
                _ => self.rd(ix(self.level_off(t, 0), w)),
            }
        } else {
            self.rd(ix(self.level_off(t, l), w))
        }
    }

    /// Whether block `i` of order `k` is a maximal free block.
    #[inline]
    pub(crate) fn is_free(&self, k: u32, i: u64) -> bool {
        if k == 0 {
            free0(self.fw(i >> 6)) & bit(i) != 0
        } else {
            let t = tree_of(k);
            self.lword(t, 0, i >> 6) & bit(i) != 0
        }
    }

    /// Order of the root holding chunk `c` (roots are carved from the set bits of the chunk count).
    #[inline]
    pub(crate) fn root_order(&self, c: u64) -> u32 {
        msb(c ^ self.c.n)
    }

    /// Whether every chunk of `[s, e)` has the given free state (`want`), or, with `clear`, is
    /// clear.
    pub(crate) fn range_all(&self, s: u64, e: u64, want: bool, clear: bool) -> bool {
        if s >= e {
            return true;
        }
        let off = if clear {
            self.c.layout.c_off
        } else {
            self.c.layout.f_off
        };
        let target = if want { u64::MAX } else { 0 };
        let word_ok = |w: u64| {
            let mask = wmask(w, s, e);
            let x = self.rd(ix(off, w));
            if want {
                x & mask == mask
            } else {
                x & mask == 0
            }
        };
        let first = s >> 6;
        let last = e.saturating_sub(1) >> 6;
        if !word_ok(first) || !word_ok(last) {
            return false;
        }
        if last > first.saturating_add(1) {
            match span(off, first.saturating_add(1), last).and_then(|r| self.m.get(r)) {
                Some(ws) => ws.iter().fold(0, |a, &x| a | (x ^ target)) == 0,
                None => false,
            }
        } else {
            true
        }
    }

    /// First allocated chunk in `[s, e)`.
    pub(crate) fn first_used(&self, s: u64, e: u64) -> Option<u64> {
        if s >= e {
            return None;
        }
        let mut w = s >> 6;
        let last = e.saturating_sub(1) >> 6;
        while w <= last {
            let x = !self.fw(w) & wmask(w, s, e);
            if x != 0 {
                return Some(w.wrapping_shl(6) | u64::from(x.trailing_zeros()));
            }
            w = w.saturating_add(1);
        }
        None
    }
}

impl<C: core::ops::DerefMut<Target = Core>, M: core::ops::DerefMut<Target = [u64]>> Ctx<C, M> {
    #[inline]
    pub(crate) fn wr(&mut self, i: usize, v: u64) {
        if let Some(x) = self.m.get_mut(i) {
            *x = v;
        }
    }

    /// Sets or clears bit `b` of level `l` of tree `t` and keeps the summaries above in step.
    #[inline]
    pub(crate) fn flip(&mut self, t: usize, mut l: usize, mut b: u64, on: bool) {
        let Some(tl) = self.c.layout.trees.get(t) else {
            return;
        };
        let m = &mut *self.m;
        while l < tl.levels {
            let w = b >> 6;
            let Some(off) = tl.off.get(l) else { return };
            let Some(x) = m.get_mut(ix(*off, w)) else {
                return;
            };
            let old = *x;
            let new = if on { old | bit(b) } else { old & !bit(b) };
            *x = new;
            if (old == 0) == (new == 0) || (!on && l >= 1) {
                return;
            }
            l = l.saturating_add(1);
            b = w;
        }
    }

    /// Records block `i` of order `k ≥ 1` as a maximal free block (or not).
    #[inline(always)]
    pub(crate) fn set_free(&mut self, k: u32, i: u64, on: bool) {
        if k == 0 {
            return;
        }
        let t = tree_of(k);
        self.flip(t, 0, i, on);
        if on {
            if let Some(h) = self.c.top.get_mut(t) {
                *h = (*h).max(i.wrapping_add(1));
            }
        }
        let ku = usize::try_from(k).unwrap_or(usize::MAX);
        if let Some(c) = self.c.counts.get_mut(ku) {
            *c = if on {
                c.wrapping_add(1)
            } else {
                c.wrapping_sub(1)
            };
            let nz = *c != 0;
            self.c.nonempty = if nz {
                self.c.nonempty | pow2(k)
            } else {
                self.c.nonempty & !pow2(k)
            };
        }
    }

    /// [`Self::fc_range`] for one chunk: the hot path of single-chunk allocation and free. Only
    /// the pair of chunks holding `p` can change its order-0 blocks, so every counter delta is
    /// known from a few bits, without population counts.
    #[inline(always)]
    fn fc_chunk(&mut self, p: u64, free: bool, cm: ClearMode) -> bool {
        let w = p >> 6;
        let b = bit(p);
        let fi = ix(self.c.layout.f_off, w);
        let ci = ix(self.c.layout.c_off, w);
        let f = self.rd(fi);
        let c = self.rd(ci);
        let was = f & c & b == b;
        let nf = if free { f | b } else { f & !b };
        let nc = match cm {
            ClearMode::Keep => c,
            ClearMode::Set(true) => c | b,
            ClearMode::Set(false) => c & !b,
        };
        if nf == f && nc == c {
            return was;
        }
        self.wr(fi, nf);
        if nc != c {
            self.wr(ci, nc);
        }
        if (f == 0) != (nf == 0) {
            self.flip(T_FREE, 1, w, nf != 0);
        }
        let (cl_o, cl_n) = (f & c, nf & nc);
        if (cl_o == 0) != (cl_n == 0) {
            self.flip(T_CLEAR, 1, w, cl_n != 0);
        }
        let (di_o, di_n) = (f & !c, nf & !nc);
        if (di_o == 0) != (di_n == 0) {
            self.flip(T_DIRTY, 1, w, di_n != 0);
        }
        // The pair of `p` holds one order-0 block iff exactly one of its chunks is free.
        let s2 = u32::try_from(p & 62).unwrap_or(0);
        let zo = ((f >> s2) ^ (f >> s2 >> 1)) & 1;
        let zn = ((nf >> s2) ^ (nf >> s2 >> 1)) & 1;
        if zo != zn {
            let rest = free0(f) & !3u64.wrapping_shl(s2);
            if rest == 0 {
                self.flip(T_ORDER0, 1, w, zn != 0);
            }
            let core = &mut *self.c;
            if let Some(c0) = core.counts.get_mut(0) {
                *c0 = c0.wrapping_add(zn).wrapping_sub(zo);
                core.nonempty = (core.nonempty & !1) | u64::from(*c0 != 0);
            }
            if zn != 0 {
                if let Some(h) = core.top.get_mut(T_ORDER0) {
                    *h = (*h).max(w.wrapping_shl(6).wrapping_add(64));
                }
            }
        }
        let core = &mut *self.c;
        let one = |x: u64| u64::from(x & b != 0);
        core.avail = core.avail.wrapping_add(one(nf)).wrapping_sub(one(f));
        core.clear_avail = core
            .clear_avail
            .wrapping_add(one(cl_n))
            .wrapping_sub(one(cl_o));
        if (nf & !f) != 0 || nc != c {
            core.gen = core.gen.wrapping_add(1);
        }
        was
    }

    /// Replaces free/clear word `w` and updates every derived summary and counter.
    pub(crate) fn write_fc(&mut self, w: u64, f_new: u64, c_new: u64) {
        let fi = ix(self.c.layout.f_off, w);
        let ci = ix(self.c.layout.c_off, w);
        let f_old = self.rd(fi);
        let c_old = self.rd(ci);
        if f_old == f_new && c_old == c_new {
            return;
        }
        self.wr(fi, f_new);
        self.wr(ci, c_new);
        let views = [
            (T_FREE, f_old, f_new),
            (T_CLEAR, f_old & c_old, f_new & c_new),
            (T_DIRTY, f_old & !c_old, f_new & !c_new),
            (T_ORDER0, free0(f_old), free0(f_new)),
        ];
        for (t, o, n) in views {
            if (o == 0) != (n == 0) {
                self.flip(t, 1, w, n != 0);
            }
        }
        let c = &mut *self.c;
        let (z_old, z_new) = (free0(f_old), free0(f_new));
        if z_old != z_new {
            if let Some(c0) = c.counts.get_mut(0) {
                *c0 = c0
                    .wrapping_add(pc(z_new & !z_old))
                    .wrapping_sub(pc(z_old & !z_new));
                c.nonempty = if *c0 != 0 {
                    c.nonempty | 1
                } else {
                    c.nonempty & !1
                };
            }
            if z_new & !z_old != 0 {
                let top = w.wrapping_shl(6).wrapping_add(64);
                if let Some(h) = c.top.get_mut(T_ORDER0) {
                    *h = (*h).max(top);
                }
            }
        }
        let fc_old = f_old & c_old;
        let fc_new = f_new & c_new;
        c.avail = c
            .avail
            .wrapping_add(pc(f_new & !f_old))
            .wrapping_sub(pc(f_old & !f_new));
        c.clear_avail = c
            .clear_avail
            .wrapping_add(pc(fc_new & !fc_old))
            .wrapping_sub(pc(fc_old & !fc_new));
        if f_new & !f_old != 0 || c_new != c_old {
            c.gen = c.gen.wrapping_add(1);
        }
    }

    /// Sets chunks `[s, e)` free or allocated and applies `cm` to their clear bits. Returns
    /// whether every chunk was free and clear before.
    #[inline(always)]
    pub(crate) fn fc_range(&mut self, s: u64, e: u64, free: bool, cm: ClearMode) -> bool {
        if s >= e {
            return true;
        }
        if e == s.wrapping_add(1) {
            return self.fc_chunk(s, free, cm);
        }
        let w = s >> 6;
        if w == e.wrapping_sub(1) >> 6 {
            return self.fc_word(w, wmask(w, s, e), free, cm);
        }
        self.fc_words(s, e, free, cm)
    }

    /// [`Self::fc_range`] for the chunks of `mask` in word `w` (blocks below 64 chunks).
    #[inline(always)]
    fn fc_word(&mut self, w: u64, mask: u64, free: bool, cm: ClearMode) -> bool {
        let fi = ix(self.c.layout.f_off, w);
        let ci = ix(self.c.layout.c_off, w);
        let f = self.rd(fi);
        let c = self.rd(ci);
        let all_clear = f & c & mask == mask;
        let nf = if free { f | mask } else { f & !mask };
        let nc = match cm {
            ClearMode::Keep => c,
            ClearMode::Set(true) => c | mask,
            ClearMode::Set(false) => c & !mask,
        };
        if nf == f && nc == c {
            return all_clear;
        }
        self.wr(fi, nf);
        if nc != c {
            self.wr(ci, nc);
        }
        if (f == 0) != (nf == 0) {
            self.flip(T_FREE, 1, w, nf != 0);
        }
        let (cl_o, cl_n) = (f & c, nf & nc);
        if (cl_o == 0) != (cl_n == 0) {
            self.flip(T_CLEAR, 1, w, cl_n != 0);
        }
        let (di_o, di_n) = (f & !c, nf & !nc);
        if (di_o == 0) != (di_n == 0) {
            self.flip(T_DIRTY, 1, w, di_n != 0);
        }
        let (z_o, z_n) = (free0(f), free0(nf));
        if z_o != z_n {
            if (z_o == 0) != (z_n == 0) {
                self.flip(T_ORDER0, 1, w, z_n != 0);
            }
            let core = &mut *self.c;
            let up = z_n & !z_o;
            if let Some(c0) = core.counts.get_mut(0) {
                *c0 = c0.wrapping_add(pc(up)).wrapping_sub(pc(z_o & !z_n));
                core.nonempty = (core.nonempty & !1) | u64::from(*c0 != 0);
            }
            if up != 0 {
                if let Some(h) = core.top.get_mut(T_ORDER0) {
                    *h = (*h).max(w.wrapping_shl(6).wrapping_add(64));
                }
            }
        }
        let core = &mut *self.c;
        core.avail = core
            .avail
            .wrapping_add(pc(nf & !f))
            .wrapping_sub(pc(f & !nf));
        core.clear_avail = core
            .clear_avail
            .wrapping_add(pc(cl_n & !cl_o))
            .wrapping_sub(pc(cl_o & !cl_n));
        if (nf & !f) != 0 || nc != c {
            core.gen = core.gen.wrapping_add(1);
        }
        all_clear
    }

    /// [`Self::fc_range`] for more than one chunk (`s < e`).
    fn fc_words(&mut self, s: u64, e: u64, free: bool, cm: ClearMode) -> bool {
        let mut all_clear = true;
        let mut w = s >> 6;
        let last = e.saturating_sub(1) >> 6;
        // Whole words in the middle go through the bulk path.
        let full_lo = s.div_ceil(64);
        let full_hi = e >> 6;
        while w <= last {
            if w == full_lo
                && full_hi > full_lo.saturating_add(1)
                && self.fc_full_words(full_lo, full_hi, free, cm, &mut all_clear)
            {
                w = full_hi;
                continue;
            }
            let mask = wmask(w, s, e);
            let f = self.fw(w);
            let c = self.cw(w);
            if f & c & mask != mask {
                all_clear = false;
            }
            let f_new = if free { f | mask } else { f & !mask };
            let c_new = match cm {
                ClearMode::Keep => c,
                ClearMode::Set(true) => c | mask,
                ClearMode::Set(false) => c & !mask,
            };
            self.write_fc(w, f_new, c_new);
            w = w.saturating_add(1);
        }
        all_clear
    }

    /// Frees (or allocates) the whole words `[w0, w1)`, which must all be allocated (or all
    /// free): a tight loop over the words and one summary update per 64 words, so large blocks
    /// cost a memset rather than a bit walk. Returns `false` (nothing done) if a word is not in
    /// the expected state.
    fn fc_full_words(
        &mut self,
        w0: u64,
        w1: u64,
        free: bool,
        cm: ClearMode,
        all_clear: &mut bool,
    ) -> bool {
        let (f_old, f_new) = if free { (0, u64::MAX) } else { (u64::MAX, 0) };
        let (f_off, c_off) = (self.c.layout.f_off, self.c.layout.c_off);
        let (Some(fr), Some(cr)) = (span(f_off, w0, w1), span(c_off, w0, w1)) else {
            return false;
        };
        match self.m.get_mut(fr) {
            // An OR-reduction (no early exit) so the scan vectorises.
            Some(f) if f.iter().fold(0, |a, &x| a | (x ^ f_old)) == 0 => f.fill(f_new),
            _ => return false,
        }
        let n = w1.wrapping_sub(w0).wrapping_shl(6);
        let cs = self.m.get_mut(cr).unwrap_or(&mut []);
        // Clear chunks among `cs`, fast for the common all-dirty and all-clear words.
        let count = |cs: &[u64]| -> u64 {
            if cs.iter().fold(0, |a, &x| a | x) == 0 {
                0
            } else if cs.iter().fold(u64::MAX, |a, &x| a & x) == u64::MAX {
                n
            } else {
                cs.iter()
                    .fold(0u64, |a, &x| a.wrapping_add(u64::from(x.count_ones())))
            }
        };
        let (clear_old, clear_new, c_changed) = match (free, cm) {
            // Allocating: the chunks were free, their clear bits count; they stay.
            (false, ClearMode::Keep) => (count(cs), 0, false),
            (false, ClearMode::Set(v)) => {
                let old = count(cs);
                let target = if v { n } else { 0 };
                cs.fill(if v { u64::MAX } else { 0 });
                (old, 0, old != target)
            }
            // Freeing: nothing was free before.
            (true, ClearMode::Keep) => (0, count(cs), false),
            (true, ClearMode::Set(v)) => {
                cs.fill(if v { u64::MAX } else { 0 });
                (0, if v { n } else { 0 }, true)
            }
        };
        // Every chunk was free and clear before only when allocating all-clear words.
        let any_not_clear = free || clear_old != n;
        if any_not_clear {
            *all_clear = false;
        }
        if free && cm == ClearMode::Keep {
            for w in w0..w1 {
                let c = self.cw(w);
                if c != 0 {
                    self.flip(T_CLEAR, 1, w, true);
                }
                if c != u64::MAX {
                    self.flip(T_DIRTY, 1, w, true);
                }
            }
        }
        self.level1_range(T_FREE, w0, w1, free);
        if !free {
            self.level1_range(T_CLEAR, w0, w1, false);
            self.level1_range(T_DIRTY, w0, w1, false);
        } else if cm == ClearMode::Set(true) {
            self.level1_range(T_CLEAR, w0, w1, true);
        } else if cm == ClearMode::Set(false) {
            self.level1_range(T_DIRTY, w0, w1, true);
        }
        let core = &mut *self.c;
        core.avail = if free {
            core.avail.wrapping_add(n)
        } else {
            core.avail.wrapping_sub(n)
        };
        core.clear_avail = core
            .clear_avail
            .wrapping_add(clear_new)
            .wrapping_sub(clear_old);
        if free || c_changed {
            core.gen = core.gen.wrapping_add(1);
        }
        true
    }

    /// Sets (or clears) level-1 bits `[w0, w1)` of tree `t`, a word at a time.
    fn level1_range(&mut self, t: usize, w0: u64, w1: u64, on: bool) {
        if self.levels(t) < 2 {
            return;
        }
        let Some(off) = self
            .c
            .layout
            .trees
            .get(t)
            .and_then(|tl| tl.off.get(1).copied())
        else {
            return;
        };
        let mut u = w0 >> 6;
        let last = w1.saturating_sub(1) >> 6;
        while u <= last {
            let mask = wmask(u, w0, w1);
            let i = ix(off, u);
            let old = self.rd(i);
            let new = if on { old | mask } else { old & !mask };
            if new != old {
                self.wr(i, new);
                if (old == 0) != (new == 0) {
                    self.flip(t, 2, u, on);
                }
            }
            u = u.saturating_add(1);
        }
    }

    /// Lowest set bit of level `l` of tree `t` in `[lo, hi)`. Summary bits above level 1 may be
    /// stale (set over an empty word: clears do not propagate past level 1, which keeps
    /// toggling cheap); a search clears the stale bits it meets.
    pub(crate) fn find_next(&mut self, t: usize, l: usize, lo: u64, hi: u64) -> Option<u64> {
        let hi = hi.min(self.level_bits(t, l));
        if lo >= hi {
            return None;
        }
        let w = lo >> 6;
        let word = self.lword(t, l, w) & wmask(w, lo, hi);
        if word != 0 {
            return Some(w.wrapping_shl(6) | u64::from(word.trailing_zeros()));
        }
        if l.saturating_add(1) >= self.levels(t) {
            return None;
        }
        let hw = hi.div_ceil(64);
        let mut from = w.saturating_add(1);
        loop {
            let nw = self.find_next(t, l.saturating_add(1), from, hw)?;
            let full = self.lword(t, l, nw);
            let word = full & wmask(nw, lo, hi);
            if word != 0 {
                return Some(nw.wrapping_shl(6) | u64::from(word.trailing_zeros()));
            }
            if full != 0 {
                return None;
            }
            self.flip(t, l.saturating_add(1), nw, false);
            from = nw.saturating_add(1);
        }
    }

    /// Highest set bit of level `l` of tree `t` in `[lo, hi)` (stale summaries as in
    /// [`Self::find_next`]).
    pub(crate) fn find_prev(&mut self, t: usize, l: usize, lo: u64, hi: u64) -> Option<u64> {
        let hi = hi.min(self.level_bits(t, l));
        if lo >= hi {
            return None;
        }
        let w = hi.saturating_sub(1) >> 6;
        let word = self.lword(t, l, w) & wmask(w, lo, hi);
        if word != 0 {
            return Some(w.wrapping_shl(6) | u64::from(msb(word)));
        }
        if l.saturating_add(1) >= self.levels(t) {
            return None;
        }
        let mut to = w;
        loop {
            let nw = self.find_prev(t, l.saturating_add(1), lo >> 6, to)?;
            let full = self.lword(t, l, nw);
            let word = full & wmask(nw, lo, hi);
            if word != 0 {
                return Some(nw.wrapping_shl(6) | u64::from(msb(word)));
            }
            if full != 0 {
                return None;
            }
            self.flip(t, l.saturating_add(1), nw, false);
            to = nw;
        }
    }

    /// Lowest leaf word of tree `t` in `[w0, w1)` that is non-zero.
    pub(crate) fn next_word(&mut self, t: usize, w0: u64, w1: u64) -> Option<u64> {
        if self.levels(t) > 1 {
            self.find_next(t, 1, w0, w1)
        } else {
            (w0 == 0 && w1 > 0 && self.lword(t, 0, 0) != 0).then_some(0)
        }
    }

    /// Highest leaf word of tree `t` in `[w0, w1)` that is non-zero.
    pub(crate) fn prev_word(&mut self, t: usize, w0: u64, w1: u64) -> Option<u64> {
        if self.levels(t) > 1 {
            self.find_prev(t, 1, w0, w1)
        } else {
            (w0 == 0 && w1 > 0 && self.lword(t, 0, 0) != 0).then_some(0)
        }
    }
}

/// Tree number of the order-`k` free-block bitmap.
#[inline]
pub(crate) fn tree_of(k: u32) -> usize {
    T_ORDER0.saturating_add(usize::try_from(k).unwrap_or(MAX_TREES))
}
