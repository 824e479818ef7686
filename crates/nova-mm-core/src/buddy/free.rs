//! Freeing with unconditional merging, user trims, and the clear-state reset.
//!
//! Clear state lives in a per-chunk bitmap, not in the blocks, so a freed block merges with its
//! buddy whatever either's clear state: there is no force-merge, and the free maps stay canonical.

use super::bitmap::{pow2, ClearMode, Core, Ctx};
use super::sink::BlockSink;
use super::small::WORD_ORDER;
use super::types::{Block, BuddyError, InvalidArg};

impl<C: core::ops::DerefMut<Target = Core>, M: core::ops::DerefMut<Target = [u64]>> Ctx<C, M> {
    /// Order and index of a block of this allocator, if it names a valid block position.
    #[inline]
    pub(crate) fn locate(&self, b: &Block) -> Option<(u32, u64)> {
        if u32::from(b.chunk_shift) != self.c.shift {
            return None;
        }
        let k = u32::from(b.order);
        let rel = b.offset.checked_sub(self.c.base)? >> self.c.shift;
        if b.offset.wrapping_sub(self.c.base) & pow2(self.c.shift).wrapping_sub(1) != 0 {
            return None;
        }
        if k > self.c.max_order || rel & pow2(k).wrapping_sub(1) != 0 {
            return None;
        }
        let end = rel.checked_add(pow2(k))?;
        if end > self.c.n || k > self.root_order(rel) {
            return None;
        }
        Some((k, rel >> k))
    }

    /// Like [`Self::locate`], and every chunk of the block is allocated.
    #[inline]
    fn locate_allocated(&self, b: &Block) -> Result<(u32, u64), BuddyError> {
        let bad = BuddyError::NotAllocated {
            offset: b.offset,
            order: b.order(),
        };
        let (k, p) = self.locate(b).ok_or(bad)?;
        let s = p.wrapping_shl(k);
        let allocated = if k < 6 {
            // Inside one word: one read.
            let m = pow2(1u32.wrapping_shl(k))
                .wrapping_sub(1)
                .wrapping_shl(u32::try_from(s & 63).unwrap_or(0));
            self.fw(s >> 6) & m == 0
        } else {
            self.range_all(s, s.wrapping_add(pow2(k)), false, false)
        };
        if !allocated {
            return Err(bad);
        }
        Ok((k, p))
    }

    /// Frees order-`k` block `p` (all its chunks allocated) and merges it up as far as it goes.
    #[inline]
    pub(crate) fn release(&mut self, k: u32, p: u64, cm: ClearMode) {
        if k < WORD_ORDER {
            self.give_small(k, p, cm);
            return;
        }
        let s = p.wrapping_shl(k);
        self.fc_range(s, s.wrapping_add(pow2(k)), true, cm);
        let mut o = k;
        let mut q = p;
        while o < self.root_order(q.wrapping_shl(o)) && self.is_free(o, q ^ 1) {
            self.set_free(o, q ^ 1, false);
            q >>= 1;
            o = o.saturating_add(1);
        }
        self.set_free(o, q, true);
    }

    /// Frees the chunk at absolute `offset`: [`Self::locate_allocated`] and [`Self::release`]
    /// for order 0, where every check is one comparison.
    #[inline]
    pub(crate) fn free_chunk_at(&mut self, offset: u64, cleared: bool) -> Result<(), BuddyError> {
        let bad = BuddyError::NotAllocated { offset, order: 0 };
        // An offset below the base wraps to at least 2^64 - base, which is at least the pool
        // size (base + size does not overflow, checked at creation): one comparison covers both
        // ends.
        let rel = offset.wrapping_sub(self.c.base);
        let p = rel >> self.c.shift;
        if p >= self.c.n || rel & pow2(self.c.shift).wrapping_sub(1) != 0 || self.f_bit(p) {
            return Err(bad);
        }
        self.give_small(0, p, ClearMode::Set(cleared));
        Ok(())
    }

    /// `gpu_buddy_free_list`: all or nothing.
    pub(crate) fn free_list(&mut self, blocks: &[Block], cleared: bool) -> Result<(), BuddyError> {
        for (i, b) in blocks.iter().enumerate() {
            match self.locate_allocated(b) {
                Ok((k, p)) => self.release(k, p, ClearMode::Set(cleared)),
                Err(e) => {
                    // Take back what this call freed, newest first. The clear bits of allocated
                    // chunks carry no meaning, so this restores every observable state.
                    for done in blocks.get(..i).unwrap_or(&[]).iter().rev() {
                        if let Some((k, p)) = self.locate(done) {
                            let _ = self.carve(k, p);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// `gpu_buddy_block_trim`: keeps `[start, start + new_size)` of `block` and frees the rest
    /// with the block's clear state.
    pub(crate) fn trim_user(
        &mut self,
        block: &Block,
        start: Option<u64>,
        new_size: u64,
        sink: &mut dyn BlockSink,
    ) -> Result<(), BuddyError> {
        let (k, p) = self.locate_allocated(block)?;
        let shift = self.c.shift;
        let chunk_mask = pow2(shift).wrapping_sub(1);
        let bad = Err(BuddyError::Invalid(InvalidArg::Trim));
        if new_size == 0 || new_size & chunk_mask != 0 || new_size > block.size() {
            return bad;
        }
        let bs = p.wrapping_shl(k);
        let be = bs.wrapping_add(pow2(k));
        let ks = match start {
            None => bs,
            Some(st) => {
                let Some(rel) = st.checked_sub(self.c.base) else {
                    return bad;
                };
                if rel & chunk_mask != 0 {
                    return bad;
                }
                rel >> shift
            }
        };
        let ke = match ks.checked_add(new_size >> shift) {
            Some(ke) if ks >= bs && ke <= be => ke,
            _ => return bad,
        };
        if new_size == block.size() {
            return if sink.try_push(*block) {
                Ok(())
            } else {
                Err(BuddyError::SinkFull)
            };
        }
        if !self.push_pieces(sink, ks, ke, Some(block.clear)) {
            return Err(BuddyError::SinkFull);
        }
        let cm = ClearMode::Set(block.clear);
        self.release_range(bs, ks, cm);
        self.release_range(ke, be, cm);
        Ok(())
    }

    /// `gpu_buddy_reset_clear`: every free chunk becomes clear (or dirty).
    pub(crate) fn reset_clear(&mut self, clear: bool) {
        let c = if clear { u64::MAX } else { 0 };
        let mut w = 0;
        while w < self.c.layout.fc_words {
            let f = self.fw(w);
            self.write_fc(w, f, c);
            w = w.saturating_add(1);
        }
    }
}
