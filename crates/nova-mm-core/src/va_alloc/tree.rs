//! The AA tree (Andersson's balanced binary search tree) under the allocator, over a slice of
//! [`VaNode`]s addressed by `u32` index.
//!
//! Nodes are keyed by the start of their reservation. Reservations never overlap, so the ends are
//! sorted too. Each node carries, for its subtree, the smallest start, the largest end and the
//! largest free gap *between two reservations of that subtree*. These depend on the subtree only
//! (not on its neighbours), so a rotation recomputes them from the two children alone; the gaps at
//! a subtree's edges are supplied by the caller of the search, who knows the neighbours.
//!
//! The largest gap alone makes the search exact only when any long-enough gap fits; with an
//! alignment a gap can be long enough and still hold no aligned start. So each node also keeps,
//! for a few alignment classes (the GPU's large page sizes, [`CLASS_SHIFTS`]), the largest
//! *room* of its gaps: `gap_end - align_up(gap_start, 2^k)`. A request aligned to `2^k` fits a
//! gap exactly when the room is at least its size, so for those alignments (and for alignments up
//! to the granularity, where every long-enough gap fits) no subtree without a fit is entered. For
//! another alignment `2^j`, the room of the largest class `k <= j` (or the gap length) is still a
//! necessary condition and prunes most subtrees.
//!
//! AA trees keep every path at most `2 log2(n + 1)` nodes long, so the recursion here is at most
//! 64 frames deep for the largest possible tree (`u32` indices).
//!
//! Every accessor tolerates an out-of-range index by treating it as the empty tree: the tree code
//! never creates one, and this keeps the module free of panics without `unwrap`.

#[cfg(test)]
extern crate std;

use super::node::VaNode;

/// "No node".
pub(super) const NIL: u32 = u32::MAX;

/// The alignment classes whose room each subtree tracks: 64 KiB, 2 MiB, 512 MiB and 256 GiB,
/// the big page sizes a VA range for the GPU MMU is aligned to.
pub(super) const CLASS_SHIFTS: [u32; CLASSES] = [16, 21, 29, 38];
/// Number of alignment classes.
pub(super) const CLASSES: usize = 4;

/// Room of the free gap `[s, e)` for each class: `e - align_up(s, 2^k)`, 0 if none.
fn rooms(s: u64, e: u64) -> [u64; CLASSES] {
    CLASS_SHIFTS.map(|k| {
        align_up(s, 1u64 << k)
            .and_then(|a| e.checked_sub(a))
            .unwrap_or(0)
    })
}

fn max_rooms(a: [u64; CLASSES], b: [u64; CLASSES]) -> [u64; CLASSES] {
    let mut out = a;
    for (o, v) in out.iter_mut().zip(b) {
        *o = (*o).max(v);
    }
    out
}

#[cfg(test)]
std::thread_local! {
    /// Nodes entered by [`search`] on this thread, for the complexity tests.
    pub(super) static VISITS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

fn get(nodes: &[VaNode], i: u32) -> Option<&VaNode> {
    usize::try_from(i).ok().and_then(|i| nodes.get(i))
}

fn get_mut(nodes: &mut [VaNode], i: u32) -> Option<&mut VaNode> {
    usize::try_from(i).ok().and_then(|i| nodes.get_mut(i))
}

/// A copy of node `i`, if it exists.
pub(super) fn node(nodes: &[VaNode], i: u32) -> Option<VaNode> {
    get(nodes, i).copied()
}

fn left(nodes: &[VaNode], i: u32) -> u32 {
    get(nodes, i).map_or(NIL, |n| n.left)
}

fn right(nodes: &[VaNode], i: u32) -> u32 {
    get(nodes, i).map_or(NIL, |n| n.right)
}

fn level(nodes: &[VaNode], i: u32) -> u32 {
    get(nodes, i).map_or(0, |n| n.level)
}

fn start(nodes: &[VaNode], i: u32) -> u64 {
    get(nodes, i).map_or(0, |n| n.start)
}

fn set_left(nodes: &mut [VaNode], i: u32, v: u32) {
    if let Some(n) = get_mut(nodes, i) {
        n.left = v;
    }
}

fn set_right(nodes: &mut [VaNode], i: u32, v: u32) {
    if let Some(n) = get_mut(nodes, i) {
        n.right = v;
    }
}

fn set_level(nodes: &mut [VaNode], i: u32, v: u32) {
    if let Some(n) = get_mut(nodes, i) {
        n.level = v;
    }
}

/// Makes slot `i` a leaf holding `[start, end)`.
pub(super) fn init_leaf(nodes: &mut [VaNode], i: u32, start: u64, end: u64) {
    if let Some(n) = get_mut(nodes, i) {
        *n = VaNode {
            start,
            end,
            min_start: start,
            max_end: end,
            max_gap: 0,
            max_room: [0; CLASSES],
            left: NIL,
            right: NIL,
            level: 1,
        };
    }
}

/// Recomputes node `t`'s subtree summary from its own range and its children's summaries.
fn fix(nodes: &mut [VaNode], t: u32) {
    let Some(n) = node(nodes, t) else { return };
    let mut min_start = n.start;
    let mut max_end = n.end;
    let mut gap = 0;
    let mut room = [0; CLASSES];
    if let Some(l) = node(nodes, n.left) {
        min_start = l.min_start;
        gap = gap.max(l.max_gap).max(n.start.saturating_sub(l.max_end));
        room = max_rooms(max_rooms(room, l.max_room), rooms(l.max_end, n.start));
    }
    if let Some(r) = node(nodes, n.right) {
        max_end = r.max_end;
        gap = gap.max(r.max_gap).max(r.min_start.saturating_sub(n.end));
        room = max_rooms(max_rooms(room, r.max_room), rooms(n.end, r.min_start));
    }
    if let Some(m) = get_mut(nodes, t) {
        m.min_start = min_start;
        m.max_end = max_end;
        m.max_gap = gap;
        m.max_room = room;
    }
}

/// Removes a left horizontal link by a right rotation.
fn skew(nodes: &mut [VaNode], t: u32) -> u32 {
    let l = left(nodes, t);
    if t == NIL || l == NIL || level(nodes, l) != level(nodes, t) {
        return t;
    }
    set_left(nodes, t, right(nodes, l));
    set_right(nodes, l, t);
    fix(nodes, t);
    fix(nodes, l);
    l
}

/// Removes two consecutive right horizontal links by a left rotation and a promotion.
fn split(nodes: &mut [VaNode], t: u32) -> u32 {
    let r = right(nodes, t);
    if t == NIL || r == NIL {
        return t;
    }
    let rr = right(nodes, r);
    if rr == NIL || level(nodes, rr) != level(nodes, t) {
        return t;
    }
    set_right(nodes, t, left(nodes, r));
    set_left(nodes, r, t);
    set_level(nodes, r, level(nodes, r).saturating_add(1));
    fix(nodes, t);
    fix(nodes, r);
    r
}

/// Inserts the leaf `k` (already initialised, not overlapping any node) into the tree rooted at
/// `t`; returns the new root.
pub(super) fn insert(nodes: &mut [VaNode], t: u32, k: u32) -> u32 {
    if t == NIL {
        return k;
    }
    if start(nodes, k) < start(nodes, t) {
        let l = insert(nodes, left(nodes, t), k);
        set_left(nodes, t, l);
    } else {
        let r = insert(nodes, right(nodes, t), k);
        set_right(nodes, t, r);
    }
    fix(nodes, t);
    let t = skew(nodes, t);
    split(nodes, t)
}

/// Removes the node whose start is `key` from the tree rooted at `t`; returns the new root and
/// stores the index of the slot that left the tree in `removed` (it may be another node than the
/// one that held `key`: an inner node takes over its neighbour's range, and the neighbour's slot
/// is released).
pub(super) fn delete(nodes: &mut [VaNode], t: u32, key: u64, removed: &mut u32) -> u32 {
    let Some(n) = node(nodes, t) else { return NIL };
    if key > n.start {
        let r = delete(nodes, n.right, key, removed);
        set_right(nodes, t, r);
    } else if key < n.start {
        let l = delete(nodes, n.left, key, removed);
        set_left(nodes, t, l);
    } else if n.left == NIL && n.right == NIL {
        *removed = t;
        return NIL;
    } else if n.left == NIL {
        // Take over the successor's range and delete the successor instead.
        let Some(s) = node(nodes, leftmost(nodes, n.right)) else {
            return t;
        };
        let r = delete(nodes, n.right, s.start, removed);
        set_right(nodes, t, r);
        set_range(nodes, t, s.start, s.end);
    } else {
        let Some(p) = node(nodes, rightmost(nodes, n.left)) else {
            return t;
        };
        let l = delete(nodes, n.left, p.start, removed);
        set_left(nodes, t, l);
        set_range(nodes, t, p.start, p.end);
    }
    fix(nodes, t);
    rebalance_after_delete(nodes, t)
}

fn set_range(nodes: &mut [VaNode], i: u32, s: u64, e: u64) {
    if let Some(n) = get_mut(nodes, i) {
        n.start = s;
        n.end = e;
    }
}

fn rebalance_after_delete(nodes: &mut [VaNode], t: u32) -> u32 {
    // Decrease the level if a child is too low.
    let should_be = level(nodes, left(nodes, t))
        .min(level(nodes, right(nodes, t)))
        .saturating_add(1);
    if should_be < level(nodes, t) {
        set_level(nodes, t, should_be);
        let r = right(nodes, t);
        if should_be < level(nodes, r) {
            set_level(nodes, r, should_be);
        }
    }
    // Summaries depend on ranges, not levels, so only the rotations below need fixing up.
    let t = skew(nodes, t);
    let r = skew(nodes, right(nodes, t));
    set_right(nodes, t, r);
    if r != NIL {
        let rr = skew(nodes, right(nodes, r));
        set_right(nodes, r, rr);
        fix(nodes, r);
    }
    fix(nodes, t);
    let t = split(nodes, t);
    let r = split(nodes, right(nodes, t));
    set_right(nodes, t, r);
    fix(nodes, t);
    t
}

fn leftmost(nodes: &[VaNode], mut t: u32) -> u32 {
    while left(nodes, t) != NIL {
        t = left(nodes, t);
    }
    t
}

fn rightmost(nodes: &[VaNode], mut t: u32) -> u32 {
    while right(nodes, t) != NIL {
        t = right(nodes, t);
    }
    t
}

/// The node whose start is exactly `key`, or `NIL`.
pub(super) fn find_start(nodes: &[VaNode], mut t: u32, key: u64) -> u32 {
    while let Some(n) = get(nodes, t) {
        if key < n.start {
            t = n.left;
        } else if key > n.start {
            t = n.right;
        } else {
            return t;
        }
    }
    NIL
}

/// The node with the greatest start `<= key`, or `NIL`.
pub(super) fn floor(nodes: &[VaNode], mut t: u32, key: u64) -> u32 {
    let mut best = NIL;
    while let Some(n) = get(nodes, t) {
        if n.start <= key {
            best = t;
            t = n.right;
        } else {
            t = n.left;
        }
    }
    best
}

/// The node with the smallest start `>= key`, or `NIL`.
pub(super) fn ceil(nodes: &[VaNode], mut t: u32, key: u64) -> u32 {
    let mut best = NIL;
    while let Some(n) = get(nodes, t) {
        if n.start >= key {
            best = t;
            t = n.left;
        } else {
            t = n.right;
        }
    }
    best
}

/// The first node (lowest address) whose end is `> key`, or `NIL`. Ends are sorted like the
/// starts because reservations are disjoint.
pub(super) fn first_ending_after(nodes: &[VaNode], mut t: u32, key: u64) -> u32 {
    let mut best = NIL;
    while let Some(n) = get(nodes, t) {
        if n.end > key {
            best = t;
            t = n.left;
        } else {
            t = n.right;
        }
    }
    best
}

/// A first-fit request: `size` bytes at a multiple of `align` (a power of two) inside
/// `[lo, hi)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fit {
    pub(super) size: u64,
    pub(super) align: u64,
    pub(super) lo: u64,
    pub(super) hi: u64,
    /// The largest alignment class not above `align`, if any.
    class: Option<usize>,
}

impl Fit {
    /// A request for `size` bytes aligned to `align` (a power of two, at least the granularity)
    /// inside `[lo, hi)`.
    pub(super) fn new(size: u64, align: u64, lo: u64, hi: u64) -> Self {
        let class = CLASS_SHIFTS
            .iter()
            .rposition(|&k| u64::from(k) <= u64::from(align.trailing_zeros()));
        Self {
            size,
            align,
            lo,
            hi,
            class,
        }
    }

    /// Whether a subtree whose inner gaps have this summary may hold a fit (a necessary
    /// condition, exact when `align` is a class or at most the granularity).
    fn inner_may_fit(&self, n: &VaNode) -> bool {
        match self.class.and_then(|c| n.max_room.get(c)) {
            Some(&room) => room >= self.size,
            None => n.max_gap >= self.size,
        }
    }

    /// The lowest fitting start inside the free gap `[gap_start, gap_end)`.
    pub(super) fn in_gap(&self, gap_start: u64, gap_end: u64) -> Option<u64> {
        let s = gap_start.max(self.lo);
        let e = gap_end.min(self.hi);
        let a = align_up(s, self.align)?;
        let end = a.checked_add(self.size)?;
        (end <= e).then_some(a)
    }

    /// Whether `[lb, rb)`, clipped to the window, is too short to hold the request.
    fn window_too_small(&self, lb: u64, rb: u64) -> bool {
        let s = lb.max(self.lo);
        let e = rb.min(self.hi);
        e.checked_sub(s).is_none_or(|len| len < self.size)
    }
}

/// `v` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
pub(super) fn align_up(v: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(v.checked_add(mask)? & !mask)
}

/// The lowest start fitting `fit` in the free space of the subtree `t`, whose predecessor ends at
/// `lb` and whose successor starts at `rb` (the space's base and limit at the edges).
///
/// The walk is in address order and skips every subtree whose gaps (clipped to the window) are
/// all shorter than the request, so it returns the same address as a naive first-fit scan.
pub(super) fn search(nodes: &[VaNode], t: u32, lb: u64, rb: u64, fit: &Fit) -> Option<u64> {
    if fit.window_too_small(lb, rb) {
        return None;
    }
    let Some(n) = node(nodes, t) else {
        return fit.in_gap(lb, rb);
    };
    #[cfg(test)]
    VISITS.with(|v| v.set(v.get() + 1));
    if !fit.inner_may_fit(&n)
        && fit.in_gap(lb, n.min_start).is_none()
        && fit.in_gap(n.max_end, rb).is_none()
    {
        return None;
    }
    search(nodes, n.left, lb, n.start, fit).or_else(|| search(nodes, n.right, n.end, rb, fit))
}
