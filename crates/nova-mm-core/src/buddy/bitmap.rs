//! Bit-level access to the metadata: words, summaries, find-next/previous-set-bit, and the
//! free/clear chunk maps with all their derived views kept in step.
//!
//! Everything here is total: an index outside the metadata reads as 0 and is not written, so a
//! logic error shows up in [`Buddy::check`](super::Buddy::check), never as a panic.

use super::layout::{
    chunks_of, derived_leaf, Layout, DERIVED_ORDERS, MAX_TREES, T_CLEAR, T_DIRTY, T_FREE, T_ORDER0,
};
use super::types::{BuddyError, BuddyParams, InvalidArg};

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

/// Positions (within a word) that are multiples of `2^a`, for `a < 6`.
pub(crate) const fn stride_mask(a: u32) -> u64 {
    match a {
        0 => u64::MAX,
        1 => 0x5555_5555_5555_5555,
        2 => 0x1111_1111_1111_1111,
        3 => 0x0101_0101_0101_0101,
        4 => 0x0001_0001_0001_0001,
        _ => 0x0000_0001_0000_0001,
    }
}

/// Bit `i` set iff bits `[i, i + 2^k)` of `x` are all set (`k < 6`).
#[inline]
pub(crate) fn run_mask(x: u64, k: u32) -> u64 {
    let mut r = x;
    let mut s = 0;
    while s < k {
        r &= r >> pow2(s);
        s = s.saturating_add(1);
    }
    r
}

/// The maximal free blocks of order `k < 6` in free-chunk word `f`, each at the bit of its first
/// chunk: aligned all-free runs of `2^k` chunks whose parent is not all free. A whole free word
/// belongs to order 6 or above. (Roots below order 6 end the pool, where the padding bits are 0,
/// so a parent running past a root is never all free.)
#[inline]
pub(crate) fn maximal(k: u32, f: u64) -> u64 {
    let run = run_mask(f, k);
    let full = run & stride_mask(k);
    let parent = if k.saturating_add(1) >= DERIVED_ORDERS {
        u64::from(f == u64::MAX)
    } else {
        run & (run >> pow2(k)) & stride_mask(k.saturating_add(1))
    };
    full & !(parent | parent.wrapping_shl(1u32.wrapping_shl(k)))
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

impl Hint {
    /// `Hint::default()` as a constant.
    pub(crate) const EMPTY: Self = Self {
        valid: false,
        gen: 0,
        tree: 0,
        k: 0,
        a: 0,
        down: false,
        lo: 0,
        hi: 0,
        pos: 0,
    };
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

impl Core {
    /// No chunks: what [`Self::setup`] fills in.
    pub(crate) const EMPTY: Self = Self {
        layout: Layout::EMPTY,
        n: 0,
        shift: 0,
        max_order: 0,
        base: 0,
        avail: 0,
        clear_avail: 0,
        counts: [0; 64],
        nonempty: 0,
        gen: 0,
        hints: [Hint::EMPTY; HINTS],
        hint_next: 0,
        top: [0; MAX_TREES],
    };

    /// Fills in the state for `p` in place, all chunks allocated (the metadata is not touched).
    ///
    /// # Errors
    ///
    /// [`BuddyError::Invalid`] for bad parameters, [`BuddyError::NoMemory`] if the metadata
    /// cannot be addressed.
    pub(crate) fn setup(&mut self, p: &BuddyParams) -> Result<(), BuddyError> {
        let bad = BuddyError::Invalid(InvalidArg::Params);
        let (n, shift) = chunks_of(p.size, p.chunk_size).ok_or(bad)?;
        let rounded = n.checked_shl(shift).ok_or(bad)?;
        p.base_offset.checked_add(rounded).ok_or(bad)?;
        let max_order = msb(n);
        self.layout.init(n, max_order).ok_or(BuddyError::NoMemory)?;
        self.n = n;
        self.shift = shift;
        self.max_order = max_order;
        self.base = p.base_offset;
        self.avail = 0;
        self.clear_avail = 0;
        self.counts = [0; 64];
        self.nonempty = 0;
        self.gen = 0;
        self.hints = [Hint::EMPTY; HINTS];
        self.hint_next = 0;
        self.top = [0; MAX_TREES];
        Ok(())
    }
}

/// The state and its metadata words, borrowed together for one operation.
#[derive(Debug)]
pub(crate) struct Ctx<C, M> {
    pub(crate) c: C,
    pub(crate) m: M,
}

impl<C: core::ops::Deref<Target = Core>, M: core::ops::Deref<Target = [u64]>> Ctx<C, M> {
    #[inline(always)]
    pub(crate) fn rd(&self, i: usize) -> u64 {
        self.m.get(i).copied().unwrap_or(0)
    }

    /// Metadata index of free-chunk word `w`.
    #[inline]
    pub(crate) fn f_index(&self, w: u64) -> usize {
        ix(self.c.layout.f_off, w)
    }

    /// Metadata index of clear-chunk word `w`.
    #[inline]
    pub(crate) fn c_index(&self, w: u64) -> usize {
        ix(self.c.layout.c_off, w)
    }

    /// Free-chunk word `w`.
    #[inline(always)]
    pub(crate) fn fw(&self, w: u64) -> u64 {
        self.rd(ix(self.c.layout.f_off, w))
    }

    /// Clear-chunk word `w`.
    #[inline(always)]
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
        self.c.layout.levels(t)
    }

    #[inline]
    pub(crate) fn level_bits(&self, t: usize, l: usize) -> u64 {
        self.c.layout.level_bits(t, l)
    }

    /// Word `w` of level `l` of tree `t` (level 0 of the derived views is computed).
    #[inline]
    pub(crate) fn lword(&self, t: usize, l: usize, w: u64) -> u64 {
        if l == 0 {
            match t {
                T_FREE => self.fw(w),
                T_CLEAR => self.fw(w) & self.cw(w),
                T_DIRTY => self.fw(w) & !self.cw(w),
                _ if derived_leaf(t) => {
                    let k = u32::try_from(t.wrapping_sub(T_ORDER0)).unwrap_or(0);
                    maximal(k, self.fw(w))
                }
                _ => self.rd(ix(self.c.layout.off(t, 0), w)),
            }
        } else {
            self.rd(ix(self.c.layout.off(t, l), w))
        }
    }

    /// Whether block `i` of order `k` is a maximal free block.
    #[inline]
    pub(crate) fn is_free(&self, k: u32, i: u64) -> bool {
        let pos = leaf_pos(k, i);
        self.lword(tree_of(k), 0, pos >> 6) & bit(pos) != 0
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
    #[inline(always)]
    pub(crate) fn wr(&mut self, i: usize, v: u64) {
        if let Some(x) = self.m.get_mut(i) {
            *x = v;
        }
    }

    /// Sets bit `b` of level `l` of tree `t` and the summary bits above it, or clears it alone
    /// (the summaries above may then be stale; see [`Self::find_next`]).
    #[inline]
    pub(crate) fn flip(&mut self, t: usize, mut l: usize, mut b: u64, on: bool) {
        let layout = &self.c.layout;
        let levels = layout.levels(t);
        let m = &mut *self.m;
        while l < levels {
            let w = b >> 6;
            let off = layout.off(t, l);
            let Some(x) = m.get_mut(ix(off, w)) else {
                return;
            };
            let old = *x;
            let new = if on { old | bit(b) } else { old & !bit(b) };
            *x = new;
            // Summaries only ever gain bits here: a clear stops at the level it was asked for,
            // and a summary bit over an emptied word is left for the searches to drop.
            if !on || (old == 0) == (new == 0) {
                return;
            }
            l = l.saturating_add(1);
            b = w;
        }
    }

    /// Records block `i` of order `k` as a maximal free block (or not): its bit for orders 6 and
    /// above (the maps below are derived from the free-chunk words), the summaries when they
    /// gain a bit, the upper bound for highest-block searches, the count and the non-empty mask.
    #[inline(always)]
    pub(crate) fn set_free(&mut self, k: u32, i: u64, on: bool) {
        let t = tree_of(k);
        let pos = leaf_pos(k, i);
        if !is_derived(k) {
            let li = ix(self.c.layout.off0(t), i >> 6);
            if let Some(x) = self.m.get_mut(li) {
                *x = if on { *x | bit(i) } else { *x & !bit(i) };
            }
        }
        let core = &mut *self.c;
        let ku = usize::try_from(k).unwrap_or(usize::MAX);
        let mut only = false;
        // Without branches on the counts: which orders empty and fill follows the addresses
        // being freed, which no predictor learns.
        if let Some(c) = core.counts.get_mut(ku & 63) {
            if on {
                only = *c == 0;
                *c = c.wrapping_add(1);
                core.nonempty |= pow2(k);
            } else {
                *c = c.wrapping_sub(1);
                let emptied = 0u64.wrapping_sub(u64::from(*c == 0));
                core.nonempty &= !(pow2(k) & emptied);
            }
        }
        if on {
            if let Some(h) = core.top.get_mut(t & (MAX_TREES - 1)) {
                // The first block of an order makes the bound exact again.
                let end = pos.wrapping_add(1);
                let raised = (*h).max(end);
                *h = if only { end } else { raised };
            }
            self.flip(t, 1, pos >> 6, true);
        }
    }

    /// Replaces free/clear word `w` and updates the chunk views' summaries and the counters (the
    /// maximal-block maps are the caller's, through [`Self::set_free`]).
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
        ];
        for (t, o, n) in views {
            if (o == 0) != (n == 0) {
                self.flip(t, 1, w, n != 0);
            }
        }
        let c = &mut *self.c;
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

    /// Sets chunks `[s, e)` free or allocated and applies `cm` to their clear bits (the
    /// maximal-block maps are the caller's). Returns whether every chunk was free and clear
    /// before.
    #[inline(always)]
    pub(crate) fn fc_range(&mut self, s: u64, e: u64, free: bool, cm: ClearMode) -> bool {
        if s >= e {
            return true;
        }
        self.fc_words(s, e, free, cm)
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
        // Summaries gain bits here and lose them lazily (an allocation leaves them stale).
        if free {
            self.level1_range(T_FREE, w0, w1);
            match cm {
                ClearMode::Set(true) => self.level1_range(T_CLEAR, w0, w1),
                ClearMode::Set(false) => self.level1_range(T_DIRTY, w0, w1),
                ClearMode::Keep => {}
            }
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

    /// Sets level-1 bits `[w0, w1)` of tree `t`, a word at a time.
    fn level1_range(&mut self, t: usize, w0: u64, w1: u64) {
        if self.levels(t) < 2 {
            return;
        }
        let off = self.c.layout.off1(t);
        let mut u = w0 >> 6;
        let last = w1.saturating_sub(1) >> 6;
        while u <= last {
            let i = ix(off, u);
            let old = self.rd(i);
            let new = old | wmask(u, w0, w1);
            if new != old {
                self.wr(i, new);
                if old == 0 {
                    self.flip(t, 2, u, true);
                }
            }
            u = u.saturating_add(1);
        }
    }

    /// Lowest set bit of level `l` of tree `t` in `[lo, hi)`. Summary bits may be stale (set
    /// over an empty word: clears never propagate upwards, which keeps allocation and free from
    /// rewriting summaries as words empty and refill); a search clears the stale bits it meets.
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

    /// Lowest leaf word of tree `t` in `[w0, w1)` that is non-zero. Stale level-1 bits met on
    /// the way are dropped, a level-1 word at a time (no new descent per stale bit).
    pub(crate) fn next_word(&mut self, t: usize, w0: u64, w1: u64) -> Option<u64> {
        self.live_word(t, w0, w1, false)
    }

    /// Highest leaf word of tree `t` in `[w0, w1)` that is non-zero (stale level-1 bits dropped
    /// as in [`Self::next_word`]).
    pub(crate) fn prev_word(&mut self, t: usize, w0: u64, w1: u64) -> Option<u64> {
        self.live_word(t, w0, w1, true)
    }

    /// [`Self::next_word`], or with `down` [`Self::prev_word`].
    fn live_word(&mut self, t: usize, w0: u64, w1: u64, down: bool) -> Option<u64> {
        if self.levels(t) <= 1 {
            return (w0 == 0 && w1 > 0 && self.lword(t, 0, 0) != 0).then_some(0);
        }
        let (mut lo, mut hi) = (w0, w1);
        loop {
            let w = if down {
                self.find_prev(t, 1, lo, hi)?
            } else {
                self.find_next(t, 1, lo, hi)?
            };
            let u = w >> 6;
            let mask = if down {
                wmask(u, lo, w.saturating_add(1))
            } else {
                wmask(u, w, hi)
            };
            if let Some(found) = self.live_word_in(t, u, mask, down) {
                return Some(found);
            }
            if down {
                hi = u.wrapping_shl(6);
            } else {
                lo = u.saturating_add(1).wrapping_shl(6);
            }
        }
    }

    /// The first (lowest, or with `down` highest) leaf word among the set bits of level-1 word
    /// `u` of tree `t` inside `mask` that is non-zero; the stale bits passed on the way are
    /// cleared.
    fn live_word_in(&mut self, t: usize, u: u64, mask: u64, down: bool) -> Option<u64> {
        let i = ix(self.c.layout.off1(t), u);
        let mut bits = self.rd(i) & mask;
        let mut stale = 0u64;
        let mut found = None;
        while bits != 0 {
            let b = if down {
                msb(bits)
            } else {
                bits.trailing_zeros()
            };
            let cand = u.wrapping_shl(6) | u64::from(b);
            if self.lword(t, 0, cand) != 0 {
                found = Some(cand);
                break;
            }
            stale |= bit(cand);
            bits &= !bit(cand);
        }
        if stale != 0 {
            let x = self.rd(i);
            self.wr(i, x & !stale);
        }
        found
    }
}

/// Whether order `k`'s map is derived from the free-chunk words.
#[inline]
pub(crate) fn is_derived(k: u32) -> bool {
    k < DERIVED_ORDERS
}

/// Leaf bit of block `i` of order `k` in its tree: derived maps (orders below 6) put a block at
/// the bit of its first chunk, stored maps at bit `i`.
#[inline]
pub(crate) fn leaf_pos(k: u32, i: u64) -> u64 {
    if is_derived(k) {
        i.wrapping_shl(k)
    } else {
        i
    }
}

/// Tree number of the order-`k` free-block bitmap.
#[inline]
pub(crate) fn tree_of(k: u32) -> usize {
    T_ORDER0.saturating_add(usize::try_from(k).unwrap_or(MAX_TREES))
}
