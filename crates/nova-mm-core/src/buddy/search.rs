//! Address-ordered searches over the chunk maps: aligned power-of-two runs (range, offset-aligned
//! and clear-preferring placement) and arbitrary-length runs (contiguous fallback).
//!
//! A search walks only the non-zero words the summaries point at, and a small cache of earlier
//! results ([`Hint`]) lets repeated requests of the same shape resume where the last one stopped,
//! so patterns such as VK-CTS's 4000 × 8 KiB at 256 KiB stay linear overall.

use super::bitmap::{msb, pow2, run_mask, stride_mask, wmask, Core, Ctx, Hint, HINTS};

fn align_up(x: u64, a: u32) -> Option<u64> {
    let m = pow2(a).checked_sub(1)?;
    Some(x.checked_add(m)? & !m)
}

fn align_down(x: u64, a: u32) -> u64 {
    x & !pow2(a).wrapping_sub(1)
}

impl<C: core::ops::DerefMut<Target = Core>, M: core::ops::DerefMut<Target = [u64]>> Ctx<C, M> {
    /// The lowest (or, with `down`, highest) position `p`, a multiple of `2^a` (`a ≥ k`), with
    /// `lo ≤ p`, `p + 2^k ≤ hi`, and bits `[p, p + 2^k)` of chunk view `t` all set.
    pub(crate) fn find_run(
        &mut self,
        t: usize,
        k: u32,
        a: u32,
        lo: u64,
        hi: u64,
        down: bool,
    ) -> Option<u64> {
        let hi = hi.min(self.c.n);
        let run = pow2(k);
        let p_min = align_up(lo, a)?;
        let p_max = align_down(hi.checked_sub(run)?, a);
        if p_min > p_max {
            return None;
        }
        if a < 6 {
            let stride = stride_mask(a);
            let p_end = p_max.saturating_add(1);
            let w_lo = p_min >> 6;
            let w_end = (p_max >> 6).saturating_add(1);
            if down {
                let mut w_hi = w_end;
                loop {
                    let w = self.prev_word(t, w_lo, w_hi)?;
                    let m = self.run_in_word(t, k, stride, w, p_min, p_end);
                    if m != 0 {
                        return Some(w.wrapping_shl(6) | u64::from(msb(m)));
                    }
                    w_hi = w;
                }
            } else {
                let mut w = w_lo;
                loop {
                    let c = self.next_word(t, w, w_end)?;
                    let m = self.run_in_word(t, k, stride, c, p_min, p_end);
                    if m != 0 {
                        return Some(c.wrapping_shl(6) | u64::from(m.trailing_zeros()));
                    }
                    w = c.saturating_add(1);
                }
            }
        } else {
            // Word-aligned starts: groups of `2^(a-6)` words, runs of `g` whole words (or the low
            // `2^k` bits of one word).
            let sa = a.saturating_sub(6);
            let step = pow2(sa);
            let w_lo = p_min >> 6;
            let w_max = p_max >> 6;
            if down {
                let mut w_hi = w_max.saturating_add(1);
                loop {
                    let c = self.prev_word(t, w_lo, w_hi)?;
                    let gs = align_down(c, sa);
                    if gs < w_lo {
                        return None;
                    }
                    if self.group_full(t, k, gs) {
                        return Some(gs.wrapping_shl(6));
                    }
                    w_hi = gs;
                }
            } else {
                let mut w = w_lo;
                while w <= w_max {
                    let c = self.next_word(t, w, w_max.saturating_add(1))?;
                    if c & step.wrapping_sub(1) != 0 {
                        w = align_up(c, sa)?;
                        continue;
                    }
                    if self.group_full(t, k, c) {
                        return Some(c.wrapping_shl(6));
                    }
                    w = c.checked_add(step)?;
                }
                None
            }
        }
    }

    /// Aligned run starts inside word `w` (`k < 6`).
    fn run_in_word(&self, t: usize, k: u32, stride: u64, w: u64, p_min: u64, p_end: u64) -> u64 {
        run_mask(self.lword(t, 0, w), k) & stride & wmask(w, p_min, p_end)
    }

    /// Whether the run of order `k` starting at word `gs` is all set (`k ≥ 0`, word-aligned).
    fn group_full(&self, t: usize, k: u32, gs: u64) -> bool {
        if k < 6 {
            let m = !super::bitmap::mask_from(pow2(k));
            self.lword(t, 0, gs) & m == m
        } else {
            let g = pow2(k.saturating_sub(6));
            (0..g).all(|i| self.lword(t, 0, gs.saturating_add(i)) == u64::MAX)
        }
    }

    /// [`Self::find_run`] through the hint cache.
    pub(crate) fn find_run_hinted(
        &mut self,
        t: usize,
        k: u32,
        a: u32,
        lo: u64,
        hi: u64,
        down: bool,
    ) -> Option<u64> {
        let gen = self.c.gen;
        let slot = self.c.hints.iter().position(|h| {
            h.valid
                && h.gen == gen
                && h.tree == t
                && h.k == k
                && h.a == a
                && h.down == down
                && h.lo == lo
                && h.hi == hi
        });
        let (s_lo, s_hi) = match slot.and_then(|i| self.c.hints.get(i)) {
            Some(h) if down => (lo, h.pos.min(hi)),
            Some(h) => (h.pos.max(lo), hi),
            None => (lo, hi),
        };
        let found = self.find_run(t, k, a, s_lo, s_hi, down);
        let pos = match (found, down) {
            (Some(p), true) => p.saturating_add(pow2(k)),
            (Some(p), false) => p,
            (None, true) => lo,
            (None, false) => hi,
        };
        let i = match slot {
            Some(i) => i,
            None => {
                let i = self.c.hint_next;
                self.c.hint_next = i.saturating_add(1) % HINTS;
                i
            }
        };
        if let Some(h) = self.c.hints.get_mut(i) {
            *h = Hint {
                valid: true,
                gen,
                tree: t,
                k,
                a,
                down,
                lo,
                hi,
                pos,
            };
        }
        found
    }

    /// The lowest `p`, a multiple of `2^a`, with `[p, p + len)` free and inside `[lo, hi)`.
    pub(crate) fn find_span(&mut self, len: u64, a: u32, lo: u64, hi: u64) -> Option<u64> {
        let hi = hi.min(self.c.n);
        let mut p = align_up(lo, a)?;
        loop {
            let end = p.checked_add(len)?;
            if end > hi {
                return None;
            }
            match self.first_used(p, end) {
                None => return Some(p),
                Some(z) => {
                    let next = self.find_next(super::layout::T_FREE, 0, z.saturating_add(1), hi)?;
                    p = align_up(next, a)?;
                }
            }
        }
    }
}
