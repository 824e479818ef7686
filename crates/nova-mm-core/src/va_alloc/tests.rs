//! Unit tests, an invariant checker and a state-machine test against a naive model.

extern crate std;

use std::vec::Vec;

use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use super::node::VaNode;
use super::tree::{CLASS_SHIFTS, NIL, VISITS};
use super::*;

const G: u64 = 0x1000;

fn va(x: u64) -> VirtAddr {
    VirtAddr::new(x)
}

fn r(start: u64, size: u64) -> VaRange {
    VaRange::new(va(start), size).unwrap()
}

/// A growable store with a hard cap, to exercise `try_grow_to` without the `alloc` feature.
#[derive(Debug)]
struct CappedVec {
    v: Vec<VaNode>,
    cap: usize,
}

impl NodeStore for CappedVec {
    fn nodes(&self) -> &[VaNode] {
        &self.v
    }
    fn nodes_mut(&mut self) -> &mut [VaNode] {
        &mut self.v
    }
    fn try_grow_to(&mut self, len: usize) -> Result<(), VaError> {
        if len > self.cap {
            return Err(VaError::StorageFull);
        }
        if len > self.v.len() {
            self.v.resize(len, VaNode::EMPTY);
        }
        Ok(())
    }
}

/// Checks every structural invariant; panics with a message on the first violation.
fn check<S: NodeStore>(a: &VaAllocator<S>) {
    let nodes = a.store.nodes();
    let mut seen = std::vec![false; a.used];
    let mut ranges = Vec::new();
    fn walk(
        nodes: &[VaNode],
        t: u32,
        seen: &mut [bool],
        out: &mut Vec<(u64, u64)>,
        depth: u32,
    ) -> Option<(u64, u64, u64)> {
        if t == NIL {
            return None;
        }
        assert!(depth <= 66, "tree too deep");
        let i = t as usize;
        assert!(!seen[i], "node {t} reached twice");
        seen[i] = true;
        let n = nodes[i];
        let l = walk(nodes, n.left, seen, out, depth + 1);
        out.push((n.start, n.end));
        let rr = walk(nodes, n.right, seen, out, depth + 1);
        // AA invariants.
        let lev = |x: u32| if x == NIL { 0 } else { nodes[x as usize].level };
        assert!(n.level >= 1);
        if n.left == NIL && n.right == NIL {
            assert_eq!(n.level, 1, "leaf level");
        }
        assert_eq!(lev(n.left) + 1, n.level, "left child level");
        assert!(
            lev(n.right) == n.level || lev(n.right) + 1 == n.level,
            "right level"
        );
        if n.right != NIL {
            assert!(
                lev(nodes[n.right as usize].right) < n.level,
                "right-right level"
            );
        }
        if n.level > 1 {
            assert!(
                n.left != NIL && n.right != NIL,
                "inner node has two children"
            );
        }
        // Summaries.
        let mut min_start = n.start;
        let mut max_end = n.end;
        let mut gap = 0;
        if let Some((ls, le, lg)) = l {
            assert!(le <= n.start, "left subtree overlaps");
            min_start = ls;
            gap = gap.max(lg).max(n.start - le);
        }
        if let Some((rs, re, rg)) = rr {
            assert!(rs >= n.end, "right subtree overlaps");
            max_end = re;
            gap = gap.max(rg).max(rs - n.end);
        }
        assert_eq!(
            (n.min_start, n.max_end, n.max_gap),
            (min_start, max_end, gap),
            "summary of node {t}"
        );
        Some((min_start, max_end, gap))
    }
    walk(nodes, a.root, &mut seen, &mut ranges, 0);
    check_rooms(nodes, a.root);
    assert_eq!(ranges.len(), a.count);
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "sorted and disjoint");
    }
    let mut bytes = 0;
    for &(s, e) in &ranges {
        assert!(s < e && s >= a.base && e <= a.limit);
        assert_eq!(s % a.granularity, 0);
        assert_eq!(e % a.granularity, 0);
        bytes += e - s;
    }
    assert_eq!(bytes, a.reserved_bytes);
    // Free list: disjoint from the tree, and every used slot is in exactly one of the two.
    let mut f = a.free_head;
    let mut listed = 0;
    while f != NIL {
        assert!(!seen[f as usize], "free slot {f} in tree or listed twice");
        seen[f as usize] = true;
        listed += 1;
        f = nodes[f as usize].left;
    }
    assert_eq!(listed, a.free_listed);
    assert!(seen.iter().all(|&s| s), "leaked slot");
    // The iterator and the queries agree with the walk.
    let it: Vec<(u64, u64)> = a.iter().map(|x| (x.start().raw(), x.end().raw())).collect();
    assert_eq!(it, ranges);
}

/// Recomputes every node's per-class room from its subtree's ranges, with u128 arithmetic.
fn check_rooms(nodes: &[VaNode], t: u32) -> Vec<(u64, u64)> {
    if t == NIL {
        return Vec::new();
    }
    let n = nodes[t as usize];
    let mut ranges = check_rooms(nodes, n.left);
    ranges.push((n.start, n.end));
    ranges.extend(check_rooms(nodes, n.right));
    for (c, &k) in CLASS_SHIFTS.iter().enumerate() {
        let a = 1u128 << k;
        let want = ranges
            .windows(2)
            .map(|w| {
                let first = u128::from(w[0].1).div_ceil(a) * a;
                u128::from(w[1].0).saturating_sub(first) as u64
            })
            .max()
            .unwrap_or(0);
        assert_eq!(n.max_room[c], want, "room of class {k} at node {t}");
    }
    ranges
}

fn visits_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    VISITS.with(|v| v.set(0));
    let out = f();
    (out, VISITS.with(|v| v.get()))
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn page_size_alignments_skip_near_misses_in_log_time() {
    // 4096 blocks of 64 KiB, each with one free 8 KiB gap at +4 KiB: every gap is long enough for
    // 8 KiB but none holds a 64 KiB- (or 32 KiB-) aligned start.
    let n = 4096u64;
    let b = 0x1_0000u64;
    let mut a = small(2 * n as usize + 8);
    a = VaAllocator::new(a.into_store(), va(0), va((n + 1) * b), G).unwrap();
    for i in 0..n {
        a.reserve(r(i * b, G)).unwrap();
        a.reserve(r(i * b + 3 * G, b - 3 * G)).unwrap();
    }
    check(&a);
    // 64 KiB is an alignment class: the search is exact and logarithmic.
    let (got, visits) = visits_of(|| a.alloc(2 * G, b));
    assert_eq!(got.unwrap(), r(n * b, 2 * G));
    let height_bound = 2 * (64 - (2 * n + 1).leading_zeros()) as u64; // 2 log2(n + 1)
    assert!(visits <= 2 * height_bound + 2, "{visits} nodes entered");
    a.free(r(n * b, 2 * G)).unwrap();
    // 32 KiB is not a class: the answer is the same (exact first fit), but every near-miss gap
    // is visited, which is the O((1 + m) log n) bound the module documents.
    let (got, visits) = visits_of(|| a.alloc(2 * G, b / 2));
    assert_eq!(got.unwrap(), r(n * b, 2 * G));
    assert!(visits >= n, "{visits} nodes entered");
    // With the granularity as alignment, the first gap is taken right away.
    let (got, visits) = visits_of(|| a.alloc(2 * G, G));
    assert_eq!(got.unwrap(), r(G, 2 * G));
    assert!(visits <= 2 * height_bound + 2, "{visits} nodes entered");
    check(&a);
}

// ---------------------------------------------------------------------------------------------
// The naive model: a sorted Vec and a linear first-fit scan, with u128 arithmetic.

#[derive(Clone, Debug)]
struct Model {
    base: u64,
    limit: u64,
    gran: u64,
    cap: usize,
    ranges: Vec<(u64, u64)>,
    last: Option<Outcome>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Alloc(Result<VaRange, VaError>),
    Unit(Result<(), VaError>),
    Query(Option<VaRange>),
}

impl Model {
    fn gap_list(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut prev = self.base;
        for &(s, e) in &self.ranges {
            gaps.push((prev, s));
            prev = e;
        }
        gaps.push((prev, self.limit));
        gaps
    }

    fn add(&mut self, s: u64, e: u64) -> Result<(), VaError> {
        if self.ranges.len() >= self.cap {
            return Err(VaError::StorageFull);
        }
        let pos = self.ranges.partition_point(|x| x.0 < s);
        self.ranges.insert(pos, (s, e));
        Ok(())
    }

    fn alloc_in(&mut self, size: u64, align: u64, lo: u64, hi: u64) -> Result<VaRange, VaError> {
        if size == 0 {
            return Err(VaError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(VaError::InvalidAlignment { align });
        }
        if size % self.gran != 0 {
            return Err(VaError::Misaligned {
                value: size,
                granularity: self.gran,
            });
        }
        if lo < self.base || hi > self.limit || lo >= hi {
            return Err(VaError::BadWindow {
                lo: va(lo),
                hi: va(hi),
            });
        }
        let align = align.max(self.gran);
        for (gs, ge) in self.gap_list() {
            let s = u128::from(gs.max(lo));
            let e = u128::from(ge.min(hi));
            let a128 = u128::from(align);
            let cand = s.div_ceil(a128) * a128;
            if cand + u128::from(size) <= e {
                let cand = cand as u64;
                self.add(cand, cand + size)?;
                return Ok(r(cand, size));
            }
        }
        Err(VaError::NoSpace { size, align })
    }

    fn reserve(&mut self, range: VaRange) -> Result<(), VaError> {
        let (s, e) = (range.start().raw(), range.end().raw());
        for v in [s, range.size()] {
            if v % self.gran != 0 {
                return Err(VaError::Misaligned {
                    value: v,
                    granularity: self.gran,
                });
            }
        }
        if s < self.base || e > self.limit {
            return Err(VaError::OutOfSpace {
                start: range.start(),
                size: range.size(),
            });
        }
        if let Some(&(os, oe)) = self.ranges.iter().find(|&&(os, oe)| os < e && s < oe) {
            return Err(VaError::Overlap {
                existing: r(os, oe - os),
            });
        }
        self.add(s, e)
    }

    fn free(&mut self, range: VaRange) -> Result<(), VaError> {
        let s = range.start().raw();
        let Some(pos) = self.ranges.iter().position(|x| x.0 == s) else {
            return Err(VaError::NotFound {
                start: range.start(),
            });
        };
        let (os, oe) = self.ranges[pos];
        if oe != range.end().raw() {
            return Err(VaError::SizeMismatch {
                reserved: r(os, oe - os),
            });
        }
        self.ranges.remove(pos);
        Ok(())
    }

    fn query(&self, v: u64) -> Option<VaRange> {
        self.ranges
            .iter()
            .find(|&&(s, e)| s <= v && v < e)
            .map(|&(s, e)| r(s, e - s))
    }
}

// ---------------------------------------------------------------------------------------------
// Unit tests.

fn small(cap: usize) -> VaAllocator<CappedVec> {
    VaAllocator::new(
        CappedVec { v: Vec::new(), cap },
        va(0x10_0000),
        va(0x20_0000),
        G,
    )
    .unwrap()
}

#[test]
fn node_size_is_documented() {
    // `VaNode` docs promise 88 bytes per reservation to embedders sizing a slab.
    assert_eq!(core::mem::size_of::<VaNode>(), 88);
}

#[test]
fn construction_errors() {
    let s = || [VaNode::EMPTY; 2];
    assert_eq!(
        VaAllocator::new(s(), va(0), va(0x1000), 3).unwrap_err(),
        VaError::Misaligned {
            value: 3,
            granularity: 3
        }
    );
    assert_eq!(
        VaAllocator::new(s(), va(0x800), va(0x2000), G).unwrap_err(),
        VaError::Misaligned {
            value: 0x800,
            granularity: G
        }
    );
    assert_eq!(
        VaAllocator::new(s(), va(0x2000), va(0x2000), G).unwrap_err(),
        VaError::EmptySpace {
            base: va(0x2000),
            limit: va(0x2000)
        }
    );
    assert_eq!(VaRange::new(va(5), 0), Err(VaError::ZeroSize));
    assert_eq!(
        VaRange::new(va(u64::MAX), 2),
        Err(VaError::OutOfSpace {
            start: va(u64::MAX),
            size: 2
        })
    );
    assert_eq!(r(u64::MAX - 1, 1).end(), va(u64::MAX));
}

#[test]
fn first_fit_alignment_and_window() {
    let mut a = small(64);
    assert_eq!(a.alloc(G, 1).unwrap(), r(0x10_0000, G));
    // Alignment 64 KiB skips the rest of the first 64 KiB.
    assert_eq!(a.alloc(2 * G, 0x1_0000).unwrap(), r(0x11_0000, 2 * G));
    // The gap [0x101000, 0x110000) is reused for small requests.
    assert_eq!(a.alloc(3 * G, G).unwrap(), r(0x10_1000, 3 * G));
    // Within a window.
    assert_eq!(
        a.alloc_in(G, G, va(0x18_0000), va(0x18_2000)).unwrap(),
        r(0x18_0000, G)
    );
    assert_eq!(
        a.alloc_in(2 * G, G, va(0x18_0000), va(0x18_2000)),
        Err(VaError::NoSpace {
            size: 2 * G,
            align: G
        })
    );
    // Unaligned window start is rounded up.
    assert_eq!(
        a.alloc_in(G, G, va(0x18_1001), va(0x18_3000)).unwrap(),
        r(0x18_2000, G)
    );
    check(&a);
    assert_eq!(
        a.alloc_in(G, G, va(0x0f_f000), va(0x18_0000)),
        Err(VaError::BadWindow {
            lo: va(0x0f_f000),
            hi: va(0x18_0000)
        })
    );
    assert_eq!(
        a.alloc_in(G, G, va(0x18_0000), va(0x18_0000)),
        Err(VaError::BadWindow {
            lo: va(0x18_0000),
            hi: va(0x18_0000)
        })
    );
    assert_eq!(a.alloc(0, G), Err(VaError::ZeroSize));
    assert_eq!(a.alloc(G, 3), Err(VaError::InvalidAlignment { align: 3 }));
    assert_eq!(a.alloc(G, 0), Err(VaError::InvalidAlignment { align: 0 }));
    assert_eq!(
        a.alloc(G + 1, G),
        Err(VaError::Misaligned {
            value: G + 1,
            granularity: G
        })
    );
    assert_eq!(
        a.alloc(0x20_0000, G),
        Err(VaError::NoSpace {
            size: 0x20_0000,
            align: G
        })
    );
    check(&a);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn near_miss_gaps_are_skipped_but_lower_fits_are_found() {
    // Gaps of exactly 2 pages at odd page offsets cannot hold a 2-page range aligned to 8 KiB.
    let mut a = small(256);
    let mut p = 0x10_0000;
    while p + 4 * G <= 0x20_0000 {
        a.reserve(r(p, G)).unwrap();
        a.reserve(r(p + 3 * G, G)).unwrap();
        p += 4 * G;
    }
    // Every gap is [p+1, p+3) pages: 2 pages, aligned start p+1 is odd -> 8 KiB aligned start p+2
    // leaves only one page. So a 2-page, 8 KiB aligned request fails...
    assert_eq!(
        a.alloc(2 * G, 2 * G),
        Err(VaError::NoSpace {
            size: 2 * G,
            align: 2 * G
        })
    );
    // ...while 2 pages at 4 KiB alignment fit the first gap.
    assert_eq!(a.alloc(2 * G, G).unwrap(), r(0x10_1000, 2 * G));
    check(&a);
}

#[test]
fn reserve_free_and_queries() {
    let mut a = small(64);
    a.reserve(r(0x14_0000, 0x1_0000)).unwrap();
    a.reserve(r(0x12_0000, G)).unwrap();
    assert_eq!(
        a.reserve(r(0x13_f000, 2 * G)),
        Err(VaError::Overlap {
            existing: r(0x14_0000, 0x1_0000)
        })
    );
    assert_eq!(
        a.reserve(r(0x11_f000, 0x3_0000)),
        Err(VaError::Overlap {
            existing: r(0x12_0000, G)
        })
    );
    assert_eq!(
        a.reserve(r(0x1f_f000, 2 * G)),
        Err(VaError::OutOfSpace {
            start: va(0x1f_f000),
            size: 2 * G
        })
    );
    assert_eq!(
        a.reserve(r(0x0f_f000, G)),
        Err(VaError::OutOfSpace {
            start: va(0x0f_f000),
            size: G
        })
    );
    assert_eq!(
        a.reserve(r(0x15_0800, G)),
        Err(VaError::Misaligned {
            value: 0x15_0800,
            granularity: G
        })
    );
    assert!(a.is_reserved(va(0x14_ffff)));
    assert!(!a.is_reserved(va(0x15_0000)));
    assert!(!a.is_reserved(va(0)));
    assert_eq!(
        a.reservation_containing(va(0x14_8000)),
        Some(r(0x14_0000, 0x1_0000))
    );
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        [r(0x12_0000, G), r(0x14_0000, 0x1_0000)]
    );
    assert_eq!(
        a.iter_from(va(0x12_0001)).collect::<Vec<_>>(),
        [r(0x14_0000, 0x1_0000)]
    );
    assert_eq!(a.reserved_bytes(), 0x1_1000);
    assert_eq!(a.free_bytes(), 0x10_0000 - 0x1_1000);
    assert_eq!(
        a.free(r(0x14_0000, G)),
        Err(VaError::SizeMismatch {
            reserved: r(0x14_0000, 0x1_0000)
        })
    );
    assert_eq!(
        a.free(r(0x14_1000, G)),
        Err(VaError::NotFound {
            start: va(0x14_1000)
        })
    );
    check(&a);
    a.free(r(0x14_0000, 0x1_0000)).unwrap();
    a.free(r(0x12_0000, G)).unwrap();
    assert!(a.is_empty());
    check(&a);
}

#[test]
fn fixed_storage_fills_and_recycles() {
    let mut slab = [VaNode::EMPTY; 3];
    let mut a = VaAllocator::new(&mut slab[..], va(0), va(0x10_0000), G).unwrap();
    assert_eq!(a.spare_nodes(), 3);
    let x: Vec<VaRange> = (0..3).map(|_| a.alloc(G, G).unwrap()).collect();
    assert_eq!(a.alloc(G, G), Err(VaError::StorageFull));
    assert_eq!(a.reserve(r(0x8_0000, G)), Err(VaError::StorageFull));
    assert_eq!(a.ensure_free_nodes(1), Err(VaError::StorageFull));
    assert_eq!(a.len(), 3);
    check(&a);
    a.free(x[1]).unwrap();
    a.ensure_free_nodes(1).unwrap();
    assert_eq!(a.alloc(G, G).unwrap(), x[1]);
    check(&a);
    a.clear();
    assert!(a.is_empty() && a.spare_nodes() == 3);
    check(&a);
}

#[test]
fn ensure_free_nodes_grows_up_front() {
    let mut a = small(4);
    a.ensure_free_nodes(4).unwrap();
    assert_eq!(a.store().v.len(), 4);
    assert_eq!(a.ensure_free_nodes(5), Err(VaError::StorageFull));
    for _ in 0..4 {
        a.alloc(G, G).unwrap();
    }
    assert_eq!(a.alloc(G, G), Err(VaError::StorageFull));
    check(&a);
}

#[cfg(feature = "alloc")]
#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn vec_storage_grows() {
    let mut a = VecVaAllocator::new_vec(va(0), va(1 << 40), G).unwrap();
    for i in 0..1000u64 {
        assert_eq!(a.alloc(G, G).unwrap(), r(i * G, G));
    }
    for i in (0..1000u64).step_by(2) {
        a.free(r(i * G, G)).unwrap();
    }
    check(&a);
    assert_eq!(a.alloc(2 * G, G).unwrap(), r(1000 * G, 2 * G));
}

#[test]
fn v3_sized_space_and_top_of_u64() {
    // An MMU v3 space: 2^57 bytes.
    let mut a = small(64);
    a = VaAllocator::new(a.into_store(), va(0), va(1 << 57), G).unwrap();
    assert_eq!(a.alloc(1 << 56, 1 << 56).unwrap(), r(0, 1 << 56));
    assert_eq!(a.alloc(G, 1 << 56).unwrap(), r(1 << 56, G));
    assert_eq!(
        a.alloc(1 << 56, 1),
        Err(VaError::NoSpace {
            size: 1 << 56,
            align: G
        })
    );
    assert_eq!(
        a.alloc((1 << 56) - G, G).unwrap(),
        r((1 << 56) + G, (1 << 56) - G)
    );
    assert_eq!(a.free_bytes(), 0);
    check(&a);
    // A space ending at the last granule of the 64-bit range; alignments whose round-up
    // overflows must give NoSpace, not wrap.
    let top = u64::MAX - (G - 1);
    let mut b = VaAllocator::new([VaNode::EMPTY; 8], va(top - 16 * G), va(top), G).unwrap();
    assert_eq!(
        b.alloc(G, 1 << 63),
        Err(VaError::NoSpace {
            size: G,
            align: 1 << 63
        })
    );
    assert_eq!(b.alloc(16 * G, G).unwrap(), r(top - 16 * G, 16 * G));
    assert_eq!(b.alloc(G, G), Err(VaError::NoSpace { size: G, align: G }));
    b.free(r(top - 16 * G, 16 * G)).unwrap();
    b.reserve(r(top - G, G)).unwrap();
    assert!(b.is_reserved(va(top - 1)));
    assert!(!b.is_reserved(va(u64::MAX - 1)));
    check(&b);
}

#[test]
#[cfg_attr(miri, ignore)] // too slow under miri
fn many_random_operations_keep_the_tree_balanced() {
    // Deterministic pseudo-random churn, larger than the state machine's, checking the height
    // bound and the summaries.
    let mut a = small(100_000);
    a = VaAllocator::new(a.into_store(), va(0), va(1 << 40), G).unwrap();
    let mut model = Model {
        base: 0,
        limit: 1 << 40,
        gran: G,
        cap: usize::MAX,
        ranges: Vec::new(),
        last: None,
    };
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut live: Vec<VaRange> = Vec::new();
    for step in 0..6000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.is_empty() || x % 3 != 0 {
            let size = G * (1 + x % 7);
            let align = G << ((x >> 8) % 5);
            let got = a.alloc(size, align);
            assert_eq!(got, model.alloc_in(size, align, 0, 1 << 40));
            live.push(got.unwrap());
        } else {
            let k = (x >> 16) as usize % live.len();
            let gone = live.swap_remove(k);
            assert_eq!(a.free(gone), model.free(gone));
        }
        if step % 500 == 0 {
            check(&a);
        }
    }
    check(&a);
}

// ---------------------------------------------------------------------------------------------
// The state machine.

#[derive(Clone, Debug)]
enum Op {
    AllocIn {
        size: u64,
        align: u64,
        lo: u64,
        hi: u64,
    },
    Reserve(VaRange),
    Free(VaRange),
    Query(u64),
}

/// Either a small space low in the address range or one that ends at the top of the 64-bit range.
fn spaces() -> impl Strategy<Value = (u64, u64)> {
    let top = u64::MAX - (G - 1);
    prop_oneof![
        Just((16 * G, 112 * G)),
        Just((0, 64 * G)),
        Just((top - 96 * G, top)),
    ]
}

struct VaRef;

impl ReferenceStateMachine for VaRef {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        // Prefilled with up to 40 reservations (gap, size in pages), so the trees are deep
        // enough to have gaps inside subtrees from the first step.
        let prefill = proptest::collection::vec((0u64..6, 1u64..5), 0..40);
        (
            spaces(),
            prop_oneof![Just(4usize), Just(12), Just(64)],
            prefill,
        )
            .prop_map(|((base, limit), cap, prefill)| {
                let mut ranges = Vec::new();
                let mut at = base;
                for (gap, size) in prefill {
                    let Some((s, e)) = at
                        .checked_add(gap * G)
                        .and_then(|s| Some((s, s.checked_add(size * G)?)))
                        .filter(|&(_, e)| e <= limit)
                    else {
                        break;
                    };
                    if ranges.len() == cap {
                        break;
                    }
                    ranges.push((s, e));
                    at = e;
                }
                Model {
                    base,
                    limit,
                    gran: G,
                    cap,
                    ranges,
                    last: None,
                }
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let (base, limit) = (state.base, state.limit);
        // Pages relative to the base, a little beyond both ends.
        let page = move |p: i64| base.wrapping_add_signed(p * G as i64);
        let size = prop_oneof![
            8 => (1u64..8).prop_map(|p| p * G),
            1 => Just(0u64),
            1 => (1u64..4).prop_map(|p| p * G + 0x10),
            1 => Just(1u64 << 62),
        ];
        let align = prop_oneof![
            4 => (0u32..5).prop_map(|s| G << s),
            3 => prop_oneof![Just(0x8000u64), Just(0x1_0000), Just(0x2_0000)],
            1 => Just(1u64),
            1 => Just(0u64),
            1 => Just(3 * G),
            1 => Just(1u64 << 63),
        ];
        let span = ((limit - base) / G) as i64;
        let pages = -4i64..span + 4;
        let window = (pages.clone(), 0i64..span + 4, 0u64..2).prop_map(move |(lo, len, off)| {
            (page(lo) + off, page(lo).wrapping_add(len as u64 * G))
        });
        let full = Just((base, limit));
        // Sizes equal to existing gaps, so exact fits (and near misses) are common.
        let mut gap_sizes: Vec<u64> = state
            .gap_list()
            .iter()
            .map(|&(s, e)| e - s)
            .filter(|&g| g > 0)
            .collect();
        gap_sizes.push(G);
        let alloc_size = prop_oneof![
            1 => size.clone(),
            1 => proptest::sample::select(gap_sizes),
        ];
        let alloc = (alloc_size, align, prop_oneof![3 => full, 2 => window]).prop_map(
            |(size, align, (lo, hi))| Op::AllocIn {
                size,
                align,
                lo,
                hi,
            },
        );
        let reserve = (pages.clone(), size, 0u64..2)
            .prop_filter_map("range end overflows", move |(p, size, off)| {
                VaRange::new(va(page(p) + off * 0x800), size).ok()
            });
        let reserve = reserve.prop_map(Op::Reserve);
        let random_free = (pages.clone(), 1u64..8)
            .prop_filter_map("range end overflows", move |(p, n)| {
                VaRange::new(va(page(p)), n * G).ok()
            })
            .prop_map(Op::Free);
        let query = (pages, 0u64..G).prop_map(move |(p, o)| Op::Query(page(p).wrapping_add(o)));
        if state.ranges.is_empty() {
            prop_oneof![4 => alloc, 2 => reserve, 1 => random_free, 1 => query].boxed()
        } else {
            let live: Vec<VaRange> = state.ranges.iter().map(|&(s, e)| r(s, e - s)).collect();
            let free_live = proptest::sample::select(live).prop_map(Op::Free);
            prop_oneof![
                4 => alloc,
                2 => reserve,
                3 => free_live,
                1 => random_free,
                2 => query
            ]
            .boxed()
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        let out = match *op {
            Op::AllocIn {
                size,
                align,
                lo,
                hi,
            } => Outcome::Alloc(state.alloc_in(size, align, lo, hi)),
            Op::Reserve(range) => Outcome::Unit(state.reserve(range)),
            Op::Free(range) => Outcome::Unit(state.free(range)),
            Op::Query(v) => Outcome::Query(state.query(v)),
        };
        state.last = Some(out);
        state
    }
}

struct VaSut;

impl StateMachineTest for VaSut {
    type SystemUnderTest = VaAllocator<CappedVec>;
    type Reference = VaRef;

    fn init_test(m: &Model) -> Self::SystemUnderTest {
        let mut a = VaAllocator::new(
            CappedVec {
                v: Vec::new(),
                cap: m.cap,
            },
            va(m.base),
            va(m.limit),
            m.gran,
        )
        .unwrap();
        for &(s, e) in &m.ranges {
            a.reserve(r(s, e - s)).unwrap();
        }
        a
    }

    fn apply(mut a: Self::SystemUnderTest, m: &Model, op: Op) -> Self::SystemUnderTest {
        let out = match op {
            Op::AllocIn {
                size,
                align,
                lo,
                hi,
            } => Outcome::Alloc(a.alloc_in(size, align, va(lo), va(hi))),
            Op::Reserve(range) => Outcome::Unit(a.reserve(range)),
            Op::Free(range) => Outcome::Unit(a.free(range)),
            Op::Query(v) => {
                let got = a.reservation_containing(va(v));
                assert_eq!(a.is_reserved(va(v)), got.is_some());
                Outcome::Query(got)
            }
        };
        assert_eq!(Some(out), m.last, "result differs from the model");
        a
    }

    fn check_invariants(a: &Self::SystemUnderTest, m: &Model) {
        check(a);
        let got: Vec<(u64, u64)> = a.iter().map(|x| (x.start().raw(), x.end().raw())).collect();
        assert_eq!(got, m.ranges);
        assert!(a.len() <= m.cap);
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 192 }))]
    #[test]
    #[cfg_attr(miri, ignore)] // too slow under miri
    fn va_allocator_matches_naive_first_fit(sequential 1..80 => VaSut);
}
