//! Oracles for the VRAM buddy allocator (`nova_mm_core::buddy`) over arbitrary operation
//! sequences.
//!
//! A model beside the allocator keeps, per chunk, whether it is free and whether it is clear,
//! and the live allocations. After every operation:
//! - `check()` is clean, `avail` and `clear_avail` equal the model's counts;
//! - a successful allocation's blocks lie inside the pool (and the requested range), are
//!   naturally aligned, never overlap live memory, have the requested total size (more only
//!   where `TRIM_DISABLE` allows it), honour `min_block_size`, are contiguous when asked, and
//!   are reported clear only if every chunk is clear;
//! - a failed request, a double free, a free of a block that is not allocated and a bad trim
//!   change nothing (all-or-nothing);
//! - a trim keeps exactly the asked range;
//! - `reset_clear` marks every free chunk.
//!
//! At the end everything is freed: `avail == size` and no leak is reported.

use arbitrary::Arbitrary;
use nova_mm_core::buddy::{
    AllocFlags, AllocMode, AllocRequest, Block, Buddy, BuddyError, BuddyParams,
};

/// Largest pool, in chunks (the model keeps two flags per chunk).
pub const MAX_CHUNKS: u64 = 4096;
/// Most operations per input.
pub const MAX_OPS: usize = 256;

/// One allocator operation.
#[derive(Arbitrary, Debug, Clone)]
pub enum BuddyOp {
    /// An allocation request. Sizes and offsets are in chunks unless `raw` is set, in which
    /// case they are bytes (mostly invalid: unaligned, zero, huge).
    Alloc {
        /// 0 simple, 1 top-down, 2 range `[a, b)`, 3 exact range `[a, a + size)`.
        mode: u8,
        /// Range bound.
        a: u32,
        /// Range bound.
        b: u32,
        /// Size.
        size: u32,
        /// `min_block_size = chunk << min_order` (min_order % 12).
        min_order: u8,
        /// Bit 0 contiguous, 1 clear, 2 trim-disable; bit 7: sizes are raw bytes.
        flags: u8,
    },
    /// Free live allocation `pick`.
    Free {
        /// Which allocation.
        pick: u16,
        /// Freed as cleared.
        cleared: bool,
    },
    /// Free one block of a live allocation.
    FreeBlock {
        /// Which allocation.
        pick: u16,
        /// Which block of it.
        block: u16,
        /// Freed as cleared.
        cleared: bool,
    },
    /// `free_at` an arbitrary offset and order (skipped when that block is wholly allocated).
    FreeBogus {
        /// Offset in chunks from the base (or raw bytes when `raw`).
        offset: u64,
        /// Order.
        order: u8,
        /// Offset is absolute bytes.
        raw: bool,
    },
    /// Trim a block of a live allocation to `keep` chunks starting `shift` chunks in.
    Trim {
        /// Which allocation.
        pick: u16,
        /// Which block.
        block: u16,
        /// Chunks to keep (0 or too large: a refused trim).
        keep: u32,
        /// Start, in chunks from the block's start.
        shift: u32,
        /// Pass `None` as the start.
        no_start: bool,
    },
    /// `reset_clear`.
    ResetClear(bool),
    /// `alloc_chunk`: one chunk, default placement, no request.
    AllocChunk,
}

/// One input of the `buddy_ops` target.
#[derive(Arbitrary, Debug, Clone)]
pub struct BuddyInput {
    /// Pool size in chunks: `1 + chunks % MAX_CHUNKS`.
    pub chunks: u16,
    /// Bytes beyond the last whole chunk (ignored by the allocator).
    pub tail: u16,
    /// `chunk_size = 4 KiB << (chunk_shift % 10)`.
    pub chunk_shift: u8,
    /// Base offset: `base * 1 GiB` plus (when `base_odd`) one chunk.
    pub base: u8,
    /// Shift the base by one chunk (pools need not be aligned to their size).
    pub base_odd: bool,
    /// The operations.
    pub ops: Vec<BuddyOp>,
}

struct Model {
    b: Buddy<'static>,
    base: u64,
    chunk: u64,
    live: Vec<Vec<Block>>,
    free: Vec<bool>,
    clear: Vec<bool>,
}

type Snapshot = (u64, u64, Vec<u64>);

impl Model {
    fn idx(&self, off: u64) -> usize {
        usize::try_from((off - self.base) / self.chunk).expect("small pool")
    }

    fn chunks_of(&self, x: &Block) -> core::ops::Range<usize> {
        let c = self.idx(x.offset());
        c..c + usize::try_from(x.size() / self.chunk).expect("small pool")
    }

    fn snapshot(&self) -> Snapshot {
        let counts = (0..=self.b.max_order())
            .map(|k| self.b.free_count(k))
            .collect();
        (self.b.avail(), self.b.clear_avail(), counts)
    }

    fn take(&mut self, blocks: &[Block]) {
        for x in blocks {
            assert!(x.offset() >= self.base, "block below the pool: {x:?}");
            let rel = x.offset() - self.base;
            assert!(x.size() >= self.chunk, "block below a chunk: {x:?}");
            assert_eq!(rel % x.size(), 0, "block not naturally aligned: {x:?}");
            assert!(
                rel.checked_add(x.size())
                    .is_some_and(|e| e <= self.b.size()),
                "block outside the pool: {x:?}"
            );
            let r = self.chunks_of(x);
            let all_clear = self.clear[r.clone()].iter().all(|c| *c);
            for i in r {
                assert!(self.free[i], "block {x:?} overlaps live memory");
                self.free[i] = false;
            }
            if x.is_clear() {
                assert!(
                    all_clear,
                    "block {x:?} reported clear but holds dirty chunks"
                );
            }
        }
    }

    fn give(&mut self, blocks: &[Block], clear: bool) {
        for x in blocks {
            for i in self.chunks_of(x) {
                assert!(!self.free[i], "model: freeing free chunk {i}");
                self.free[i] = true;
                self.clear[i] = clear;
            }
        }
    }

    fn invariants(&self) {
        let free = self.free.iter().filter(|f| **f).count() as u64;
        let clear = self
            .free
            .iter()
            .zip(&self.clear)
            .filter(|(f, c)| **f && **c)
            .count() as u64;
        assert_eq!(self.b.check(), Ok(()));
        assert_eq!(self.b.avail(), free * self.chunk, "avail");
        assert_eq!(self.b.clear_avail(), clear * self.chunk, "clear_avail");
    }

    fn pick(&self, pick: u16) -> Option<usize> {
        (!self.live.is_empty()).then(|| usize::from(pick) % self.live.len())
    }

    fn alloc(&mut self, mode: u8, a: u32, b: u32, size: u32, min_order: u8, flags: u8) {
        let (base, ch) = (self.base, self.chunk);
        let raw = flags & 0x80 != 0;
        let unit = if raw { 1 } else { ch };
        let (lo, hi) = (u64::from(a.min(b)), u64::from(a.max(b)));
        let size = u64::from(size) * unit;
        let at = |x: u64| if raw { x } else { base + x * ch };
        let mode = match mode % 4 {
            0 => AllocMode::Simple,
            1 => AllocMode::TopDown,
            2 => AllocMode::Range {
                start: at(lo),
                end: at(hi),
            },
            _ => AllocMode::Range {
                start: at(lo),
                end: at(lo).saturating_add(size),
            },
        };
        let mut f = AllocFlags::NONE;
        if flags & 1 != 0 {
            f = f | AllocFlags::CONTIGUOUS;
        }
        if flags & 2 != 0 {
            f = f | AllocFlags::CLEAR;
        }
        if flags & 4 != 0 {
            f = f | AllocFlags::TRIM_DISABLE;
        }
        let min = ch << (min_order % 12);
        let req = AllocRequest::new(mode, size, min).with_flags(f);
        let before = self.snapshot();
        match self.b.alloc_blocks(&req) {
            Ok(blocks) => {
                let got: u64 = blocks.iter().map(Block::size).sum();
                let exact = matches!(mode, AllocMode::Range { start, end } if start + size == end);
                let offset_aligned = !exact
                    && !f.contains(AllocFlags::CONTIGUOUS)
                    && size < min
                    && size.is_power_of_two();
                if f.contains(AllocFlags::TRIM_DISABLE) && !exact && !offset_aligned {
                    assert!(got >= size, "{req:?} -> {blocks:?}");
                } else {
                    assert_eq!(got, size, "{req:?} -> {blocks:?}");
                }
                if let AllocMode::Range { start, end } = mode {
                    for x in &blocks {
                        assert!(
                            x.offset() >= start && x.offset() + x.size() <= end,
                            "{x:?} outside {mode:?}"
                        );
                    }
                }
                if offset_aligned {
                    assert_eq!(blocks.len(), 1, "{req:?} -> {blocks:?}");
                    assert_eq!(
                        (blocks[0].offset() - base) % min,
                        0,
                        "{req:?} -> {blocks:?}"
                    );
                } else if f.contains(AllocFlags::CONTIGUOUS) && !exact {
                    let mut v = blocks.clone();
                    v.sort_by_key(Block::offset);
                    assert!(
                        v.windows(2)
                            .all(|w| w[0].offset() + w[0].size() == w[1].offset()),
                        "{req:?} not contiguous: {v:?}"
                    );
                    assert_eq!((v[0].offset() - base) % min, 0, "{req:?} -> {v:?}");
                } else if !exact && (size % min == 0 || f.contains(AllocFlags::TRIM_DISABLE)) {
                    for x in &blocks {
                        assert!(
                            x.size() >= min && (x.offset() - base) % min == 0,
                            "{req:?}: {x:?} below min {min}"
                        );
                    }
                }
                self.take(&blocks);
                if !blocks.is_empty() {
                    self.live.push(blocks);
                }
            }
            Err(e) => {
                assert!(
                    matches!(e, BuddyError::Invalid(_) | BuddyError::NoSpace),
                    "{req:?}: {e:?}"
                );
                assert_eq!(
                    self.snapshot(),
                    before,
                    "failed {req:?} changed the allocator"
                );
            }
        }
    }

    fn step(&mut self, op: &BuddyOp) {
        match *op {
            BuddyOp::Alloc {
                mode,
                a,
                b,
                size,
                min_order,
                flags,
            } => self.alloc(mode, a, b, size, min_order, flags),
            BuddyOp::Free { pick, cleared } => {
                let Some(i) = self.pick(pick) else { return };
                let blocks = self.live.swap_remove(i);
                assert_eq!(self.b.free_blocks(&blocks, cleared), Ok(()));
                self.give(&blocks, cleared);
                let before = self.snapshot();
                assert!(self.b.free_blocks(&blocks, cleared).is_err(), "double free");
                assert_eq!(self.snapshot(), before, "double free changed the allocator");
            }
            BuddyOp::FreeBlock {
                pick,
                block,
                cleared,
            } => {
                let Some(i) = self.pick(pick) else { return };
                let j = usize::from(block) % self.live[i].len();
                let x = self.live[i].swap_remove(j);
                if self.live[i].is_empty() {
                    self.live.swap_remove(i);
                }
                assert_eq!(self.b.free_at(x.offset(), x.order(), cleared), Ok(()));
                self.give(&[x], cleared);
            }
            BuddyOp::FreeBogus { offset, order, raw } => {
                let off = if raw {
                    offset
                } else {
                    self.base.saturating_add(offset.saturating_mul(self.chunk))
                };
                let order = u32::from(order % 64);
                // Skip blocks that are wholly allocated: freeing a sub-block of a live block
                // is legal and would need the model to split it.
                let size = 1u64
                    .checked_shl(order)
                    .and_then(|s| s.checked_mul(self.chunk));
                let wholly_allocated = size.is_some_and(|s| {
                    off >= self.base
                        && (off - self.base).is_multiple_of(s)
                        && off
                            .checked_add(s)
                            .is_some_and(|e| e <= self.base + self.b.size())
                        && {
                            let c = self.idx(off);
                            let n = usize::try_from(s / self.chunk).unwrap_or(usize::MAX);
                            self.free[c..c + n].iter().all(|f| !*f)
                        }
                });
                if wholly_allocated {
                    return;
                }
                let before = self.snapshot();
                let r = self.b.free_at(off, order, false);
                assert!(
                    matches!(r, Err(BuddyError::NotAllocated { .. })),
                    "free_at({off:#x}, {order}) of a block that is not allocated: {r:?}"
                );
                assert_eq!(self.snapshot(), before, "bogus free changed the allocator");
            }
            BuddyOp::Trim {
                pick,
                block,
                keep,
                shift,
                no_start,
            } => {
                let Some(i) = self.pick(pick) else { return };
                let j = usize::from(block) % self.live[i].len();
                let blk = self.live[i][j];
                let chunks = blk.size() / self.chunk;
                let keep = u64::from(keep);
                let shift = u64::from(shift);
                let start = if no_start {
                    None
                } else {
                    Some(blk.offset() + shift % chunks * self.chunk)
                };
                let kept_start = start.unwrap_or(blk.offset());
                let valid = keep > 0 && (kept_start - blk.offset()) / self.chunk + keep <= chunks;
                let before = self.snapshot();
                match self.b.trim(&blk, start, keep * self.chunk) {
                    Ok(kept) => {
                        assert!(valid, "trim {blk:?} {start:?} {keep} accepted");
                        let total: u64 = kept.iter().map(Block::size).sum();
                        assert_eq!(total, keep * self.chunk, "{blk:?} -> {kept:?}");
                        let mut v = kept.clone();
                        v.sort_by_key(Block::offset);
                        assert_eq!(v.first().map(Block::offset), Some(kept_start));
                        assert!(v
                            .windows(2)
                            .all(|w| w[0].offset() + w[0].size() == w[1].offset()));
                        self.give(&[blk], blk.is_clear());
                        self.take(&kept);
                        self.live[i].swap_remove(j);
                        if self.live[i].is_empty() {
                            self.live.swap_remove(i);
                        }
                        self.live.push(kept);
                    }
                    Err(e) => {
                        assert!(!valid, "trim {blk:?} {start:?} {keep}: {e:?}");
                        assert_eq!(self.snapshot(), before, "failed trim changed the allocator");
                    }
                }
            }
            BuddyOp::AllocChunk => {
                let before = self.snapshot();
                match self.b.alloc_chunk() {
                    Ok(x) => {
                        assert_eq!(x.size(), self.chunk, "{x:?}");
                        self.take(&[x]);
                        self.live.push(vec![x]);
                    }
                    Err(e) => {
                        assert_eq!(e, BuddyError::NoSpace);
                        assert_eq!(self.b.avail(), 0, "alloc_chunk refused with memory free");
                        assert_eq!(
                            self.snapshot(),
                            before,
                            "failed alloc_chunk changed the allocator"
                        );
                    }
                }
            }
            BuddyOp::ResetClear(c) => {
                self.b.reset_clear(c);
                for i in 0..self.clear.len() {
                    if self.free[i] {
                        self.clear[i] = c;
                    }
                }
            }
        }
    }
}

/// Runs the buddy oracles on one input; panics on a violation.
pub fn check(input: &BuddyInput) {
    let chunk = 4096u64 << (input.chunk_shift % 10);
    let chunks = 1 + u64::from(input.chunks) % MAX_CHUNKS;
    let base = u64::from(input.base) * (1 << 30) + if input.base_odd { chunk } else { 0 };
    let params = BuddyParams {
        base_offset: base,
        size: chunks * chunk + u64::from(input.tail) % chunk,
        chunk_size: chunk,
    };
    let b = Buddy::new(params).expect("valid parameters");
    assert_eq!(b.size(), chunks * chunk);
    assert_eq!(b.avail(), b.size());
    let n = usize::try_from(chunks).expect("small pool");
    let mut m = Model {
        b,
        base,
        chunk,
        live: Vec::new(),
        free: vec![true; n],
        clear: vec![false; n],
    };
    m.invariants();
    for op in input.ops.iter().take(MAX_OPS) {
        m.step(op);
        m.invariants();
    }
    for blocks in core::mem::take(&mut m.live) {
        assert_eq!(m.b.free_blocks(&blocks, false), Ok(()));
        m.give(&blocks, false);
        m.invariants();
    }
    assert_eq!(m.b.avail(), m.b.size());
    assert!(m.b.leak_report().is_none());
}
