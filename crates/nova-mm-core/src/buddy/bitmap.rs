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

/// Population count, fast for the common 0- and 1-bit cases (the baseline x86-64 target has no
/// `popcnt` instruction).
#[inline]
pub(crate) fn pc(x: u64) -> u64 {
    if x & x.wrapping_sub(1) == 0 {
        u64::from(x != 0)
    } else {
        u64::from(x.count_ones())
    }
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
        let mut w = s >> 6;
        let last = e.saturating_sub(1) >> 6;
        while w <= last {
            let mask = wmask(w, s, e);
            let x = if clear { self.cw(w) } else { self.fw(w) };
            let ok = if want {
                x & mask == mask
            } else {
                x & mask == 0
            };
            if !ok {
                return false;
            }
            w = w.saturating_add(1);
        }
        true
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
    #[inline]
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

    /// [`Self::fc_range`] for one chunk: the hot path of single-chunk allocation and free, with
    /// the counter updates known without population counts.
    #[inline]
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
        let (z_o, z_n) = (free0(f), free0(nf));
        if (z_o == 0) != (z_n == 0) {
            self.flip(T_ORDER0, 1, w, z_n != 0);
        }
        let core = &mut *self.c;
        if z_o != z_n {
            let up = z_n & !z_o;
            if let Some(c0) = core.counts.get_mut(0) {
                *c0 = c0.wrapping_add(pc(up)).wrapping_sub(pc(z_o & !z_n));
                core.nonempty = if *c0 != 0 {
                    core.nonempty | 1
                } else {
                    core.nonempty & !1
                };
            }
            if up != 0 {
                if let Some(h) = core.top.get_mut(T_ORDER0) {
                    *h = (*h).max(w.wrapping_shl(6).wrapping_add(64));
                }
            }
        }
        core.avail = core.avail.wrapping_add(pc(nf & b)).wrapping_sub(pc(f & b));
        core.clear_avail = core
            .clear_avail
            .wrapping_add(pc(cl_n & b))
            .wrapping_sub(pc(cl_o & b));
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
    pub(crate) fn fc_range(&mut self, s: u64, e: u64, free: bool, cm: ClearMode) -> bool {
        let mut all_clear = true;
        if s >= e {
            return all_clear;
        }
        if e == s.wrapping_add(1) {
            return self.fc_chunk(s, free, cm);
        }
        let mut w = s >> 6;
        let last = e.saturating_sub(1) >> 6;
        while w <= last {
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
