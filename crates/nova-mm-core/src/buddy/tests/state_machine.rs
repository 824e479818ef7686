//! State-machine test: random alloc/free/trim/reset_clear sequences (every mode and flag) against
//! a model of live ranges and per-chunk clear state.
//!
//! The allocator's placement is not predictable from outside, so the reference machine only
//! fixes the pool shape and generates operations; the model lives beside the system under test
//! and every step checks: no overlap with live memory, blocks inside the pool and inside the
//! requested range, natural alignment, `min` alignment where gpu_buddy guarantees it, exact
//! sizes, a block reported clear is clear in the model, `avail`/`clear_avail` exact, a failed
//! request changes nothing, `check()` clean; at teardown everything is freed and every root is
//! one free block again.

use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use super::*;

const PS: u64 = SZ_4K;

#[derive(Clone, Debug)]
struct Shape {
    chunks: u64,
    base: u64,
}

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        mode: u8,
        a: u64,
        b: u64,
        size: u64,
        min_order: u32,
        flags: u8,
    },
    Free {
        pick: usize,
        cleared: bool,
    },
    Trim {
        pick: usize,
        keep: u64,
        shift: u64,
    },
    ResetClear(bool),
    /// `alloc_chunk`: one chunk without a request or sink.
    AllocChunk,
}

struct Model;

impl ReferenceStateMachine for Model {
    type State = Shape;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Shape> {
        (
            prop_oneof![
                Just(64u64),
                Just(48),
                Just(100),
                Just(127),
                Just(256),
                2u64..300
            ],
            0u64..4,
        )
            .prop_map(|(chunks, base)| Shape {
                chunks,
                base: base * (1 << 30),
            })
            .boxed()
    }

    fn transitions(s: &Shape) -> BoxedStrategy<Op> {
        let n = s.chunks;
        prop_oneof![
            5 => (0u8..4, 0..n + 2, 0..n + 2, 1..=n.min(40), 0u32..5, 0u8..8)
                .prop_map(|(mode, a, b, size, min_order, flags)| Op::Alloc { mode, a, b, size, min_order, flags }),
            3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, cleared)| Op::Free { pick, cleared }),
            1 => (any::<usize>(), 1u64..32, 0u64..32).prop_map(|(pick, keep, shift)| Op::Trim { pick, keep, shift }),
            1 => any::<bool>().prop_map(Op::ResetClear),
            2 => Just(Op::AllocChunk),
        ]
        .boxed()
    }

    fn apply(s: Shape, _: &Op) -> Shape {
        s
    }
}

struct Sut {
    b: Buddy<'static>,
    /// Live allocations (each the blocks of one request or trim).
    live: Vec<Vec<Block>>,
    /// Model: chunk free?
    free: Vec<bool>,
    /// Model: chunk clear (meaningful when free)?
    clear: Vec<bool>,
}

impl Sut {
    fn chunk(&self, off: u64) -> usize {
        ((off - self.b.base_offset()) / PS) as usize
    }

    fn snapshot(&self) -> (u64, u64, Vec<u64>) {
        let counts = (0..=self.b.max_order())
            .map(|k| self.b.free_count(k))
            .collect();
        (self.b.avail(), self.b.clear_avail(), counts)
    }

    fn take(&mut self, blocks: &[Block]) {
        let base = self.b.base_offset();
        for x in blocks {
            let rel = x.offset() - base;
            assert_eq!(rel % x.size(), 0, "block not naturally aligned: {x:?}");
            assert!(
                rel + x.size() <= self.b.size(),
                "block outside the pool: {x:?}"
            );
            let c = self.chunk(x.offset());
            let all_clear = (c..c + (x.size() / PS) as usize).all(|i| self.clear[i]);
            for i in c..c + (x.size() / PS) as usize {
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
            let c = self.chunk(x.offset());
            for i in c..c + (x.size() / PS) as usize {
                assert!(!self.free[i]);
                self.free[i] = true;
                self.clear[i] = clear;
            }
        }
    }
}

struct BuddyMachine;

impl StateMachineTest for BuddyMachine {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(s: &Shape) -> Sut {
        let p = BuddyParams {
            base_offset: s.base,
            size: s.chunks * PS + 123,
            chunk_size: PS,
        };
        let words = Buddy::metadata_words(&p);
        let storage: &'static mut [u64] = Box::leak(vec![0u64; words].into_boxed_slice());
        let b = Buddy::with_storage(p, storage).unwrap();
        assert_eq!(b.size(), s.chunks * PS);
        let n = s.chunks as usize;
        Sut {
            b,
            live: Vec::new(),
            free: vec![true; n],
            clear: vec![false; n],
        }
    }

    fn apply(mut t: Sut, s: &Shape, op: Op) -> Sut {
        let n = s.chunks;
        let base = s.base;
        match op {
            Op::Alloc {
                mode,
                a,
                b,
                size,
                min_order,
                flags,
            } => {
                let (lo, hi) = (a.min(b), a.max(b));
                let mut mode = match mode {
                    0 => AllocMode::Simple,
                    1 => AllocMode::TopDown,
                    _ => AllocMode::Range {
                        start: base + lo * PS,
                        end: base + hi * PS,
                    },
                };
                // Sometimes an exact range.
                if flags & 8 != 0 || (a % 5 == 0 && lo + size <= n) {
                    mode = AllocMode::Range {
                        start: base + lo * PS,
                        end: base + (lo + size) * PS,
                    };
                }
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
                let min = PS << min_order;
                let req = AllocRequest {
                    mode,
                    size: size * PS,
                    min_block_size: min,
                    flags: f,
                };
                let before = t.snapshot();
                let mut sink = VecSink::default();
                match t.b.alloc_into(&req, &mut sink) {
                    Ok(()) => {
                        let blocks = sink.0;
                        let got = total(&blocks);
                        let exact = matches!(mode, AllocMode::Range { start, end } if start + req.size == end);
                        let offset_aligned = !exact
                            && !f.contains(AllocFlags::CONTIGUOUS)
                            && req.size < min
                            && req.size.is_power_of_two();
                        if f.contains(AllocFlags::TRIM_DISABLE) && !exact && !offset_aligned {
                            assert!(got >= req.size);
                        } else {
                            assert_eq!(got, req.size, "{req:?} -> {blocks:?}");
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
                            assert_eq!(blocks.len(), 1);
                            assert_eq!((blocks[0].offset() - base) % min, 0);
                        } else if f.contains(AllocFlags::CONTIGUOUS) && !exact {
                            let mut v = blocks.clone();
                            v.sort_by_key(Block::offset);
                            assert!(v
                                .windows(2)
                                .all(|w| w[0].offset() + w[0].size() == w[1].offset()));
                            // The start honours the caller's min (try_harder's 2026 fix).
                            assert_eq!((v[0].offset() - base) % min, 0, "{req:?} -> {v:?}");
                        } else if !exact
                            && (req.size % min == 0 || f.contains(AllocFlags::TRIM_DISABLE))
                        {
                            for x in &blocks {
                                assert!(
                                    x.size() >= min && (x.offset() - base) % min == 0,
                                    "{x:?} below min {min}"
                                );
                            }
                        }
                        t.take(&blocks);
                        t.live.push(blocks);
                    }
                    Err(e) => {
                        assert!(
                            matches!(e, BuddyError::Invalid(_) | BuddyError::NoSpace),
                            "{e:?}"
                        );
                        assert!(sink.0.is_empty());
                        assert_eq!(t.snapshot(), before, "failed {req:?} changed the allocator");
                    }
                }
            }
            Op::AllocChunk => {
                let before = t.snapshot();
                match t.b.alloc_chunk() {
                    Ok(x) => {
                        assert_eq!(x.size(), PS);
                        t.take(&[x]);
                        t.live.push(vec![x]);
                    }
                    Err(e) => {
                        assert_eq!(e, BuddyError::NoSpace);
                        assert_eq!(t.b.avail(), 0);
                        assert_eq!(t.snapshot(), before);
                    }
                }
            }
            Op::Free { pick, cleared } => {
                if !t.live.is_empty() {
                    let blocks = t.live.swap_remove(pick % t.live.len());
                    if pick % 2 == 0 && blocks.iter().all(|x| x.order() == 0) {
                        // Chunk by chunk, as callers that keep offsets do.
                        for x in &blocks {
                            t.b.free_at(x.offset(), 0, cleared).unwrap();
                        }
                    } else {
                        t.b.free_blocks(&blocks, cleared).unwrap();
                    }
                    t.give(&blocks, cleared);
                    // Freeing again is refused and changes nothing.
                    let before = t.snapshot();
                    assert!(t.b.free_blocks(&blocks, cleared).is_err());
                    assert_eq!(t.snapshot(), before);
                }
            }
            Op::Trim { pick, keep, shift } => {
                if !t.live.is_empty() {
                    let i = pick % t.live.len();
                    let j = pick / 7 % t.live[i].len();
                    let blk = t.live[i][j];
                    let chunks = blk.size() / PS;
                    let keep = (keep % chunks) + 1;
                    let start = blk.offset() + (shift % (chunks - keep + 1)) * PS;
                    let mut sink = VecSink::default();
                    t.b.trim_into(&blk, Some(start), keep * PS, &mut sink)
                        .unwrap();
                    assert_eq!(total(&sink.0), keep * PS);
                    // Model: give back the whole block with its clear state, take the kept part.
                    t.give(&[blk], blk.is_clear());
                    t.take(&sink.0);
                    t.live[i].swap_remove(j);
                    if t.live[i].is_empty() {
                        t.live.swap_remove(i);
                    }
                    t.live.push(sink.0);
                }
            }
            Op::ResetClear(c) => {
                t.b.reset_clear(c);
                for i in 0..t.clear.len() {
                    if t.free[i] {
                        t.clear[i] = c;
                    }
                }
            }
        }
        t
    }

    fn check_invariants(t: &Sut, _: &Shape) {
        let free = t.free.iter().filter(|f| **f).count() as u64;
        let clear = t
            .free
            .iter()
            .zip(&t.clear)
            .filter(|(f, c)| **f && **c)
            .count() as u64;
        assert_eq!(t.b.avail(), free * PS);
        assert_eq!(t.b.clear_avail(), clear * PS);
        assert_eq!(t.b.check(), Ok(()));
    }

    fn teardown(mut t: Sut, s: Shape) {
        for blocks in core::mem::take(&mut t.live) {
            t.b.free_blocks(&blocks, false).unwrap();
        }
        assert_eq!(t.b.leak_report(), None);
        assert_eq!(t.b.check(), Ok(()));
        // Full coalescing: exactly one free block per root.
        for k in 0..=t.b.max_order() {
            assert_eq!(t.b.free_count(k), (s.chunks >> k) & 1, "order {k}");
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    #[cfg_attr(miri, ignore)] // too slow under miri, even with two cases
    fn buddy_state_machine(sequential 1..60 => BuddyMachine);
}
