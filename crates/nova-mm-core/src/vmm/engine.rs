//! The passes over the shadow tree that implement prepare, execute, cancel and import.
//!
//! Every pass visits the operation's VA range depth-first, in VA order, and classifies each
//! entry the same way, so the write pass, its rollback (the same pass writing old values) and
//! the commit pass agree run by run:
//! - a map or sparse operation places, at each VA, the largest piece the chip allows and the
//!   VA/PA alignment and run lengths permit (or the pinned size) — a pure function of the
//!   request;
//! - an unmap or protect follows what the shadow says is live.
//!
//! Per directory, the children are processed first (their leaf runs and their own links), then
//! the directory's changed entries go out as runs: bottom-up, one bulk write per run of
//! consecutive changed entries of a table.

use super::node::{
    is_node, Kids, Node, NodeKind, KID_FOREIGN, KID_LEAF_LIVE, KID_LEAF_REF, KID_NONE,
};
use super::{
    AddressSpace, ExecFailed, Executed, OpKind, PageTableAllocator, Prepared, Slab, VaRanges,
    VmmError, TABLE_BYTES,
};
use crate::addr::{PageSize, PhysAddr, VirtAddr, VramAddress};
use crate::chip::Chip;
use crate::mmu::{DualPdeState, PdeState, PdeTable, PteMapping, PteState, TableAperture};
use crate::tlb::{
    AckMode, CacheLevel, InvalidateRequest, PdbAperture, PdbTarget, TlbInvalidate, VaScope,
};
use crate::vram::{VramAccess, VramError};
use crate::walk::format::{dir_entry_words, is_dual, LeafSlot};
use crate::walk::{PtFormat, WalkError};

/// Saved old entries of an unmap or protect: `count` words `first, first + step, ...`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Seg {
    /// First word.
    pub first: u64,
    /// Difference between consecutive words.
    pub step: u64,
    /// Number of words.
    pub count: u32,
}

/// `u32` index to `usize` (lossless on every target the crate supports; saturates otherwise).
pub(crate) fn idx(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

fn uidx(i: u64) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

const SZ_4K: u64 = 1 << 12;
const SZ_64K: u64 = 1 << 16;
const SZ_2M: u64 = 1 << 21;

/// Monotonic cursor into the physical runs of a map.
#[derive(Clone, Copy, Default)]
struct Cur {
    run: usize,
    base: u64,
}

/// Write-pass modes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Write the new values.
    New,
    /// Write the old values of runs `0..=limit` (rollback).
    Old { limit: u64 },
    /// Read the leaf runs and save them (prepare of unmap/protect).
    Read,
}

/// Why a pass stopped.
#[derive(Clone, Copy, Debug)]
enum PassErr {
    Vram(VramError),
    Vmm(VmmError),
}

impl From<VramError> for PassErr {
    fn from(e: VramError) -> Self {
        PassErr::Vram(e)
    }
}
impl From<VmmError> for PassErr {
    fn from(e: VmmError) -> Self {
        PassErr::Vmm(e)
    }
}
impl From<PassErr> for VmmError {
    fn from(e: PassErr) -> Self {
        match e {
            PassErr::Vram(v) => VmmError::Vram(v),
            PassErr::Vmm(v) => v,
        }
    }
}

/// The request being processed, without its storage.
#[derive(Clone, Copy)]
struct Req<'r> {
    s: u64,
    e: u64,
    kind: OpKind<'r>,
}

/// State of one write pass.
struct Ctx<'a, 'r, W: ?Sized, G> {
    chip: Chip,
    vram: &'a mut W,
    req: Req<'r>,
    mode: Mode,
    cur: Cur,
    segs: &'a mut G,
    seg_i: usize,
    seg_off: u32,
    run_no: u64,
    top: Option<usize>,
    words: u64,
    leaves: u64,
    /// Large leaves of one physical run are linear in the PA: (level, next VA, next low word,
    /// step, exclusive end VA of the run).
    leaf_cache: Option<(usize, u64, u64, u64, u64)>,
    /// The same for 4 KiB PTEs: (next VA, next word, step, exclusive end VA of the run).
    small_cache: Option<(u64, u64, u64, u64)>,
}

/// How a directory entry takes part in an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Leaf,
    Child,
    Skip,
}

impl<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges> AddressSpace<M, N, K, V> {
    // ----- shadow storage -------------------------------------------------------------

    pub(crate) fn node(&self, i: u32) -> Option<Node> {
        self.nodes.get(idx(i)).copied()
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        self.nodes.get_mut(idx(i))
    }

    fn kid(&self, dir: &Node, slot: u64) -> u32 {
        self.kids
            .get(idx(dir.link))
            .and_then(|k| k.get(uidx(slot)))
            .copied()
            .unwrap_or(KID_NONE)
    }

    fn set_kid(&mut self, dir: &Node, slot: u64, v: u32) {
        if let Some(k) = self
            .kids
            .get_mut(idx(dir.link))
            .and_then(|k| k.get_mut(uidx(slot)))
        {
            *k = v;
        }
    }

    /// A node for a table at `addr` (reuses the free list, grows the slab otherwise).
    pub(crate) fn new_node(
        &mut self,
        addr: VramAddress,
        level: u8,
        kind: NodeKind,
    ) -> Result<u32, VmmError> {
        let mut kids_i = KID_NONE;
        if kind == NodeKind::Dir {
            if is_node(self.free_kids) {
                kids_i = self.free_kids;
                let next = self
                    .kids
                    .get(idx(kids_i))
                    .and_then(|k| k.first().copied())
                    .unwrap_or(KID_NONE);
                self.free_kids = next;
            } else {
                self.kids.try_reserve(1)?;
                kids_i = u32::try_from(self.kids.len()).map_err(|_| super::NoRoom)?;
                self.kids.push_reserved([KID_NONE; 512])?;
            }
            if let Some(k) = self.kids.get_mut(idx(kids_i)) {
                *k = [KID_NONE; 512];
            }
        }
        let node = Node {
            addr,
            level,
            kind,
            foreign: false,
            refs: 0,
            live: 0,
            link: kids_i,
            sub: [0; 32],
            dirty: (0, 0),
        };
        let got = if is_node(self.free_nodes) {
            let i = self.free_nodes;
            self.free_nodes = self.node(i).map_or(KID_NONE, |n| n.link);
            if let Some(n) = self.node_mut(i) {
                *n = node;
            }
            Ok(i)
        } else {
            match self.nodes.try_reserve(1) {
                Ok(()) => {
                    let i = u32::try_from(self.nodes.len()).map_err(|_| super::NoRoom);
                    match i {
                        Ok(i) if is_node(i) => self.nodes.push_reserved(node).map(|()| i),
                        _ => Err(super::NoRoom),
                    }
                }
                Err(e) => Err(e),
            }
        };
        match got {
            Ok(i) => Ok(i),
            Err(e) => {
                if is_node(kids_i) {
                    self.release_kids(kids_i);
                }
                Err(e.into())
            }
        }
    }

    fn release_kids(&mut self, k: u32) {
        let head = self.free_kids;
        if let Some(arr) = self.kids.get_mut(idx(k)) {
            arr[0] = head;
            self.free_kids = k;
        }
    }

    /// Puts a node (and its child array) back on the free lists.
    pub(crate) fn release_node(&mut self, i: u32) {
        let Some(n) = self.node(i) else { return };
        // A pending directory keeps its child array index in `sub[0..4]`.
        let kids = u32::from_le_bytes([n.sub[0], n.sub[1], n.sub[2], n.sub[3]]);
        if usize::from(n.level) < pt_level::<M>() && is_node(kids) && n.kind == NodeKind::Pending {
            self.release_kids(kids);
        } else if n.kind == NodeKind::Dir && is_node(n.link) {
            self.release_kids(n.link);
        }
        let head = self.free_nodes;
        if let Some(m) = self.node_mut(i) {
            *m = Node {
                link: head,
                ..Node::default()
            };
        }
        self.free_nodes = i;
    }

    /// Moves a node to the pending-free list (its table is freed by `cleanup`).
    fn make_pending(&mut self, i: u32) {
        let head = self.pending;
        if let Some(m) = self.node_mut(i) {
            if m.kind == NodeKind::Dir {
                m.sub[..4].copy_from_slice(&m.link.to_le_bytes());
            }
            m.kind = NodeKind::Pending;
            m.link = head;
        }
        self.pending = i;
    }

    /// Frees a never-linked node right away (cancel, failed prepare).
    fn free_now<A: PageTableAllocator + ?Sized>(&mut self, alloc: &mut A, i: u32) {
        if let Some(n) = self.node(i) {
            if !n.foreign {
                alloc.free_table(n.addr);
            }
        }
        self.release_node(i);
    }

    // ----- piece decisions ------------------------------------------------------------

    fn allowed(&self, ps: PageSize) -> bool {
        self.allowed_sizes & (1 << ps.shift()) != 0
    }

    pub(crate) fn size_allowed_pub(&self, ps: PageSize) -> bool {
        if !self.cfg.chip.supports_page_size(ps) {
            return false;
        }
        match ps {
            PageSize::Size4K | PageSize::Size64K | PageSize::Size2M => true,
            _ => (0..M::DIR_LEVELS).any(|l| M::dir_leaf_size(l) == Some(ps)),
        }
    }

    /// Whether a leaf of `ps` can start at `v` for `req`.
    fn fits(&self, req: &Req<'_>, cur: &mut Cur, v: u64, ps: PageSize) -> bool {
        let size = ps.bytes();
        let Some(end) = v.checked_add(size) else {
            return false;
        };
        if v < req.s || end > req.e || v & (size.wrapping_sub(1)) != 0 || !self.allowed(ps) {
            return false;
        }
        match req.kind {
            OpKind::Sparse => true,
            OpKind::Map { runs, pinned, .. } => {
                if pinned.is_some_and(|p| p != ps) {
                    return false;
                }
                match locate(runs, cur, v.saturating_sub(req.s)) {
                    Some((run, off)) => {
                        let pa = run.addr.raw().saturating_add(off);
                        pa & (size.wrapping_sub(1)) == 0 && run.len.saturating_sub(off) >= size
                    }
                    None => false,
                }
            }
            OpKind::Unmap | OpKind::Protect(_) => false,
        }
    }

    fn pte_at(req: &Req<'_>, cur: &mut Cur, v: u64) -> Option<PteMapping> {
        match req.kind {
            OpKind::Map { runs, attrs, .. } => {
                let (run, off) = locate(runs, cur, v.saturating_sub(req.s))?;
                Some(PteMapping {
                    aperture: run.aperture,
                    address: PhysAddr::new(run.addr.raw().checked_add(off)?),
                    peer_id: run.peer_id,
                    attrs,
                })
            }
            _ => None,
        }
    }

    /// Classifies entry `i` of directory `dir` at `level` whose span starts at `es`.
    fn classify(
        &self,
        req: &Req<'_>,
        cur: &mut Cur,
        dir: &Node,
        level: usize,
        i: u64,
        es: u64,
    ) -> Class {
        let slot = if is_dual::<M>(level) {
            i.saturating_mul(2)
        } else {
            i
        };
        let kid = self.kid(dir, slot);
        match req.kind {
            OpKind::Map { .. } | OpKind::Sparse => match M::dir_leaf_size(level) {
                Some(ps) if self.fits(req, cur, es, ps) => Class::Leaf,
                _ => Class::Child,
            },
            OpKind::Unmap | OpKind::Protect(_) => {
                if kid == KID_LEAF_LIVE {
                    Class::Leaf
                } else if is_node(kid)
                    || (is_dual::<M>(level) && is_node(self.kid(dir, slot.saturating_add(1))))
                {
                    Class::Child
                } else {
                    Class::Skip
                }
            }
        }
    }

    /// For a PD0 entry at `eb`: which 64 KiB slots are big pieces, and how many 4 KiB pieces
    /// each other slot holds.
    fn pd0_plan(
        &self,
        req: &Req<'_>,
        cur: &mut Cur,
        eb: u64,
        big: Option<&Node>,
    ) -> (u32, [u8; 32]) {
        let mut mask = 0u32;
        let mut n = [0u8; 32];
        let lo = req.s.max(eb);
        let hi = req.e.min(eb.saturating_add(SZ_2M));
        if lo >= hi {
            return (0, n);
        }
        let j0 = lo.saturating_sub(eb) >> 16;
        let j1 = hi.saturating_sub(eb).saturating_add(SZ_64K.wrapping_sub(1)) >> 16;
        // 64 KiB pieces are possible at all only if the size is legal and not pinned away.
        let big_ok = match req.kind {
            OpKind::Map { pinned, .. } => {
                pinned.is_none_or(|p| p == PageSize::Size64K) && self.allowed(PageSize::Size64K)
            }
            OpKind::Sparse => self.allowed(PageSize::Size64K),
            OpKind::Unmap | OpKind::Protect(_) => big.is_some(),
        };
        if !big_ok {
            // Only 4 KiB pieces: whole slots hold 16, the edge slots what is in range.
            let j1 = j1.min(32);
            if let Some(mid) = n.get_mut(uidx(j0)..uidx(j1)) {
                mid.fill(16);
            }
            for j in [j0, j1.saturating_sub(1)] {
                let sb = eb.saturating_add(j << 16);
                let a = sb.max(lo);
                let b = sb.saturating_add(SZ_64K).min(hi);
                if let Some(c) = n.get_mut(uidx(j)) {
                    *c = u8::try_from(b.saturating_sub(a) >> 12).unwrap_or(16);
                }
            }
            return (0, n);
        }
        for j in j0..j1.min(32) {
            let sb = eb.saturating_add(j << 16);
            let is_big = big_ok
                && match req.kind {
                    OpKind::Map { .. } | OpKind::Sparse => {
                        self.fits(req, cur, sb, PageSize::Size64K)
                    }
                    OpKind::Unmap | OpKind::Protect(_) => {
                        big.is_some_and(|b| b.sub.get(uidx(j)).is_some_and(|&x| x != 0))
                    }
                };
            if is_big {
                mask |= 1 << j;
            } else {
                let a = sb.max(lo);
                let b = sb.saturating_add(SZ_64K).min(hi);
                if let Some(c) = n.get_mut(uidx(j)) {
                    *c = u8::try_from(b.saturating_sub(a) >> 12).unwrap_or(16);
                }
            }
        }
        (mask, n)
    }

    // ----- prepare: references ---------------------------------------------------------

    /// Takes references on every table `op` needs, creating (allocating and zeroing) the
    /// missing ones. On failure returns the VA up to which references were taken.
    pub(crate) fn ref_range<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized, G>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        op: &Prepared<'_, G>,
    ) -> Result<u64, (u64, VmmError)> {
        let req = Req {
            s: op.start,
            e: op.end,
            kind: op.kind,
        };
        let mut cur = Cur::default();
        let mut made = 0u64;
        self.ref_dir(alloc, vram, &req, &mut cur, 0, 0, 0, &mut made)?;
        Ok(made)
    }

    fn create<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        level: usize,
        kind: NodeKind,
        made: &mut u64,
        keep: (u64, u64),
    ) -> Result<u32, VmmError> {
        let addr = alloc.alloc_table()?;
        // A big page table uses 256 bytes of its block; everything else is zeroed whole (the
        // GMMU may prefetch past the used part of a root, `mmu-formats.md` §1.1), except the
        // slots `keep` of a small table, which its creator writes before linking it.
        let words = if kind == NodeKind::Big {
            32
        } else {
            TABLE_BYTES / 8
        };
        let (k0, k1) = if kind == NodeKind::Small && keep.0 < keep.1 && keep.1 <= words {
            keep
        } else {
            (0, 0)
        };
        let zero = |vram: &mut W, a: u64, b: u64| -> Result<(), VmmError> {
            if a < b {
                let at = addr
                    .checked_add(a.saturating_mul(8))
                    .ok_or(VmmError::Inconsistent)?;
                vram.fill_u64(at, 0, b.saturating_sub(a))?;
            }
            Ok(())
        };
        let ok = M::dual_tables(self.cfg.chip, None, Some(addr))
            .map_err(|_| VmmError::PtAlloc(super::PtAllocError::Backend(-22)))
            .and_then(|_| {
                if k0 < k1 {
                    zero(vram, 0, k0).and_then(|()| zero(vram, k1, words))
                } else {
                    zero(vram, 0, words)
                }
            })
            .and_then(|()| self.new_node(addr, u8::try_from(level).unwrap_or(u8::MAX), kind));
        match ok {
            Ok(i) => {
                *made = made.saturating_add(1);
                if let Some(n) = self.node_mut(i) {
                    n.dirty = (
                        u16::try_from(k0).unwrap_or(0),
                        u16::try_from(k1).unwrap_or(0),
                    );
                }
                Ok(i)
            }
            Err(e) => {
                alloc.free_table(addr);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ref_dir<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        req: &Req<'_>,
        cur: &mut Cur,
        ni: u32,
        level: usize,
        base: u64,
        made: &mut u64,
    ) -> Result<(), (u64, VmmError)> {
        let shift = M::dir_shift(level);
        let span = 1u64 << shift;
        let (first, last) = entry_span(req, base, shift, M::dir_entries(level));
        let dual = is_dual::<M>(level);
        for i in first..last {
            let es = base.saturating_add(i << shift);
            let at = es.max(req.s);
            let Some(dir) = self.node(ni) else {
                return Err((at, VmmError::Inconsistent));
            };
            let slot = if dual { i.saturating_mul(2) } else { i };
            match self.classify(req, cur, &dir, level, i, es) {
                Class::Skip => {}
                Class::Leaf => {
                    if self.kid(&dir, slot) != KID_NONE
                        || (dual && self.kid(&dir, slot.saturating_add(1)) != KID_NONE)
                    {
                        return Err((at, VmmError::Inconsistent));
                    }
                    self.set_kid(&dir, slot, KID_LEAF_REF);
                    if let Some(d) = self.node_mut(ni) {
                        d.refs = d.refs.saturating_add(1);
                    }
                }
                Class::Child if dual => {
                    self.ref_pts(alloc, vram, req, cur, ni, i, es, made)?;
                }
                Class::Child => {
                    let mut kid = self.kid(&dir, slot);
                    let mut created = false;
                    if kid == KID_NONE {
                        kid = self
                            .create(
                                alloc,
                                vram,
                                level.saturating_add(1),
                                NodeKind::Dir,
                                made,
                                (0, 0),
                            )
                            .map_err(|e| (at, e))?;
                        self.set_kid(&dir, slot, kid);
                        if let Some(d) = self.node_mut(ni) {
                            d.refs = d.refs.saturating_add(1);
                        }
                        created = true;
                    } else if !is_node(kid) {
                        return Err((at, VmmError::Inconsistent));
                    }
                    let r = self.ref_dir(
                        alloc,
                        vram,
                        req,
                        cur,
                        kid,
                        level.saturating_add(1),
                        es,
                        made,
                    );
                    if let Err(err) = r {
                        if created && self.node(kid).is_some_and(|n| n.refs == 0) {
                            self.free_now(alloc, kid);
                            self.set_kid(&dir, slot, KID_NONE);
                            if let Some(d) = self.node_mut(ni) {
                                d.refs = d.refs.saturating_sub(1);
                            }
                        }
                        return Err(err);
                    }
                }
            }
            let _ = span;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ref_pts<A: PageTableAllocator + ?Sized, W: VramAccess + ?Sized>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        req: &Req<'_>,
        cur: &mut Cur,
        ni: u32,
        i: u64,
        eb: u64,
        made: &mut u64,
    ) -> Result<(), (u64, VmmError)> {
        let at = eb.max(req.s);
        let Some(dir) = self.node(ni) else {
            return Err((at, VmmError::Inconsistent));
        };
        let (bk, sk) = (
            self.kid(&dir, i.saturating_mul(2)),
            self.kid(&dir, i.saturating_mul(2).saturating_add(1)),
        );
        if !(bk == KID_NONE || is_node(bk)) || !(sk == KID_NONE || is_node(sk)) {
            return Err((at, VmmError::Inconsistent));
        }
        let (mask, n) = self.pd0_plan(req, cur, eb, None);
        let nsmall: u32 = n.iter().map(|&x| u32::from(x)).sum();
        let nbig = mask.count_ones();
        let lvl = pt_level::<M>();
        let mut new_b = None;
        let mut new_s = None;
        let mut res = Ok(());
        if nbig > 0 && bk == KID_NONE {
            match self.create(alloc, vram, lvl, NodeKind::Big, made, (0, 0)) {
                Ok(b) => new_b = Some(b),
                Err(e) => res = Err(e),
            }
        }
        if res.is_ok() && nsmall > 0 && sk == KID_NONE {
            // Without big pieces the op's small slots are one contiguous range it writes.
            let keep = if nbig == 0 {
                small_cover(req, eb)
            } else {
                (0, 0)
            };
            match self.create(alloc, vram, lvl, NodeKind::Small, made, keep) {
                Ok(s) => new_s = Some(s),
                Err(e) => res = Err(e),
            }
        }
        if let Err(e) = res {
            if let Some(b) = new_b {
                self.free_now(alloc, b);
            }
            return Err((at, e));
        }
        let b = new_b.unwrap_or(bk);
        let s = new_s.unwrap_or(sk);
        let mut added = 0u32;
        if let Some(b) = new_b {
            self.set_kid(&dir, i.saturating_mul(2), b);
            added = added.saturating_add(1);
        }
        if let Some(s) = new_s {
            self.set_kid(&dir, i.saturating_mul(2).saturating_add(1), s);
            added = added.saturating_add(1);
        }
        if let Some(d) = self.node_mut(ni) {
            d.refs = d.refs.saturating_add(added);
        }
        if nbig > 0 {
            if let Some(bn) = self.node_mut(b) {
                bn.refs = bn.refs.saturating_add(nbig);
            }
        }
        if nsmall > 0 {
            if let Some(sn) = self.node_mut(s) {
                sn.refs = sn.refs.saturating_add(nsmall);
            }
        }
        Ok(())
    }

    /// Drops the references a map/sparse `op` took on `[op.start, until)`, freeing tables
    /// (never linked) whose count reaches zero.
    pub(crate) fn unref_range<A: PageTableAllocator + ?Sized, G>(
        &mut self,
        alloc: &mut A,
        op: &Prepared<'_, G>,
        until: u64,
    ) {
        let req = Req {
            s: op.start,
            e: until.min(op.end),
            kind: op.kind,
        };
        if req.s >= req.e {
            return;
        }
        // Pieces are decided with the full request so that they match the ref pass.
        let full = Req {
            s: op.start,
            e: op.end,
            kind: op.kind,
        };
        let mut cur = Cur::default();
        self.unref_dir(alloc, &req, &full, &mut cur, 0, 0, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn unref_dir<A: PageTableAllocator + ?Sized>(
        &mut self,
        alloc: &mut A,
        req: &Req<'_>,
        full: &Req<'_>,
        cur: &mut Cur,
        ni: u32,
        level: usize,
        base: u64,
    ) {
        let shift = M::dir_shift(level);
        let (first, last) = entry_span(req, base, shift, M::dir_entries(level));
        let dual = is_dual::<M>(level);
        for i in first..last {
            let es = base.saturating_add(i << shift);
            let Some(dir) = self.node(ni) else { return };
            let slot = if dual { i.saturating_mul(2) } else { i };
            match self.classify(full, cur, &dir, level, i, es) {
                Class::Skip => {}
                Class::Leaf => {
                    if self.kid(&dir, slot) == KID_LEAF_REF {
                        self.set_kid(&dir, slot, KID_NONE);
                        if let Some(d) = self.node_mut(ni) {
                            d.refs = d.refs.saturating_sub(1);
                        }
                    }
                }
                Class::Child if dual => {
                    // Count only the part of the entry inside `req` (a failed prepare).
                    let (mask, n) = self.pd0_plan(full, cur, es, None);
                    for (half, cnt) in [
                        (0u64, mask.count_ones()),
                        (1, n.iter().map(|&x| u32::from(x)).sum()),
                    ] {
                        let k = self.kid(&dir, slot.saturating_add(half));
                        if cnt == 0 || !is_node(k) {
                            continue;
                        }
                        let left = self.node_mut(k).map_or(1, |c| {
                            c.refs = c.refs.saturating_sub(cnt);
                            c.refs
                        });
                        if left == 0 && self.node(k).is_some_and(|c| c.live == 0 && !c.foreign) {
                            self.free_now(alloc, k);
                            self.set_kid(&dir, slot.saturating_add(half), KID_NONE);
                            if let Some(d) = self.node_mut(ni) {
                                d.refs = d.refs.saturating_sub(1);
                            }
                        }
                    }
                }
                Class::Child => {
                    let k = self.kid(&dir, slot);
                    if !is_node(k) {
                        continue;
                    }
                    self.unref_dir(alloc, req, full, cur, k, level.saturating_add(1), es);
                    if self
                        .node(k)
                        .is_some_and(|c| c.refs == 0 && c.live == 0 && !c.foreign)
                    {
                        self.free_now(alloc, k);
                        self.set_kid(&dir, slot, KID_NONE);
                        if let Some(d) = self.node_mut(ni) {
                            d.refs = d.refs.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }

    // ----- write pass -------------------------------------------------------------------

    fn emit<W: VramAccess + ?Sized, G: SegStore>(
        &mut self,
        c: &mut Ctx<'_, '_, W, G>,
        addr: VramAddress,
        n: usize,
        leaf_mask: Option<&[bool]>,
    ) -> Result<(), PassErr> {
        let run = c.run_no;
        c.run_no = c.run_no.saturating_add(1);
        let words = self
            .scratch
            .get(..n)
            .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
        match c.mode {
            Mode::New => {}
            Mode::Old { limit } if run <= limit => {}
            Mode::Old { .. } => return Ok(()),
            Mode::Read => return Ok(()),
        }
        let first = words.first().copied().unwrap_or(0);
        // A run of one value (zeroes, sparse) goes out as a fill; a run of PTEs usually
        // differs at its ends already, so the full scan is rare.
        if words.last().copied().unwrap_or(0) == first && words.iter().all(|&w| w == first) {
            c.vram.fill_u64(addr, first, n as u64)?;
        } else {
            c.vram.write_u64s(addr, words)?;
        }
        let _ = leaf_mask;
        c.words = c.words.saturating_add(n as u64);
        Ok(())
    }

    /// Old (saved) value of the next leaf word, from the op's segments; in `Read` mode, the
    /// caller records instead.
    fn next_old<W: ?Sized, G: SegStore>(c: &mut Ctx<'_, '_, W, G>) -> u64 {
        let Some(sg) = c.segs.seg(c.seg_i) else {
            return 0;
        };
        let v = sg
            .first
            .wrapping_add(sg.step.wrapping_mul(u64::from(c.seg_off)));
        c.seg_off = c.seg_off.saturating_add(1);
        if c.seg_off >= sg.count {
            c.seg_i = c.seg_i.saturating_add(1);
            c.seg_off = 0;
        }
        v
    }

    /// Reads `n` words at `addr` and appends them to the op's segments.
    fn record<W: VramAccess + ?Sized, G: SegStore>(
        &mut self,
        c: &mut Ctx<'_, '_, W, G>,
        addr: VramAddress,
        n: u64,
        pick: Option<&[u64; 8]>,
        check_valid: Option<bool>,
    ) -> Result<(), PassErr> {
        // One bulk read per run, into the scratch.
        let buf = self
            .scratch
            .get_mut(..uidx(n))
            .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
        c.vram.read_u64s(addr, buf)?;
        if pick.is_none() && check_valid.is_none() {
            return c.segs.push_words(buf).map_err(|e| PassErr::Vmm(e.into()));
        }
        for (i, &w) in (0u64..).zip(buf.iter()) {
            if pick.is_some_and(|p| !get_bit(p, i)) {
                continue;
            }
            if let Some(big) = check_valid {
                // Protect: every leaf must be a valid PTE.
                let ok = matches!(M::decode_leaf(c.chip, w, big), Ok(PteState::Valid(_)));
                if !ok {
                    return Err(PassErr::Vmm(VmmError::SplitsPage));
                }
            }
            c.segs.push_word(w).map_err(|e| PassErr::Vmm(e.into()))?;
        }
        Ok(())
    }

    /// The write pass over one directory; returns its live count after the operation.
    fn wp_dir<W: VramAccess + ?Sized, G: SegStore>(
        &mut self,
        c: &mut Ctx<'_, '_, W, G>,
        ni: u32,
        level: usize,
        base: u64,
    ) -> Result<u32, PassErr> {
        let dir = self.node(ni).ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
        let shift = M::dir_shift(level);
        let (first, last) = entry_span(&c.req, base, shift, M::dir_entries(level));
        let dual = is_dual::<M>(level);
        let protect = matches!(c.req.kind, OpKind::Protect(_));
        let mut changed = [0u64; 8];
        // Per entry: after-state bits (upper: child linked; dual: bit 0 big, bit 1 small).
        let mut after = [0u64; 16];
        let mut live: i64 = i64::from(dir.live);
        for i in first..last {
            let es = base.saturating_add(i << shift);
            let slot = if dual { i.saturating_mul(2) } else { i };
            let class = self.classify(&c.req, &mut c.cur, &dir, level, i, es);
            match class {
                Class::Skip => {
                    if protect {
                        return Err(PassErr::Vmm(VmmError::SplitsPage));
                    }
                }
                Class::Leaf => {
                    let end = es.saturating_add(1 << shift);
                    if es < c.req.s || end > c.req.e {
                        return Err(PassErr::Vmm(VmmError::SplitsPage));
                    }
                    set_bit(&mut changed, i);
                    match c.req.kind {
                        OpKind::Map { .. } | OpKind::Sparse => live = live.saturating_add(1),
                        OpKind::Unmap => live = live.saturating_sub(1),
                        OpKind::Protect(_) => {}
                    }
                }
                Class::Child if dual => {
                    let b = self.node(self.kid(&dir, slot));
                    let s = self.node(self.kid(&dir, slot.saturating_add(1)));
                    let (ba, sa) = self.wp_pts(c, b, s, es)?;
                    let bb = b.is_some_and(|n| n.live > 0);
                    let sb = s.is_some_and(|n| n.live > 0);
                    if bb != (ba > 0) || sb != (sa > 0) {
                        set_bit(&mut changed, i);
                    }
                    if ba > 0 {
                        set_bit(&mut after, i.saturating_mul(2));
                    }
                    if sa > 0 {
                        set_bit(&mut after, i.saturating_mul(2).saturating_add(1));
                    }
                    live = live.saturating_add(delta(ba > 0, bb).saturating_add(delta(sa > 0, sb)));
                }
                Class::Child => {
                    let k = self.kid(&dir, slot);
                    let child = self.node(k).ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
                    let la = self.wp_dir(c, k, level.saturating_add(1), es)?;
                    let before = child.live > 0;
                    if before != (la > 0) {
                        set_bit(&mut changed, i);
                    }
                    if la > 0 {
                        set_bit(&mut after, i);
                    }
                    live = live.saturating_add(delta(la > 0, before));
                }
            }
        }
        // Phase B: this directory's changed entries, as runs.
        let words = dir_entry_words::<M>(level);
        let mut i = first;
        while i < last {
            if !get_bit(&changed, i) {
                i = i.saturating_add(1);
                continue;
            }
            let a = i;
            while i < last && get_bit(&changed, i) {
                i = i.saturating_add(1);
            }
            let n_entries = i.saturating_sub(a);
            let ea = dir
                .addr
                .checked_add(a.saturating_mul(words).saturating_mul(8))
                .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
            if c.mode == Mode::Read {
                // Save the leaf entries (low words only; the high word of a dual leaf is 0).
                let mut pick = [0u64; 8];
                for k in a..i {
                    let slot = if dual { k.saturating_mul(2) } else { k };
                    if self.kid(&dir, slot) == KID_LEAF_LIVE {
                        set_bit(&mut pick, k.saturating_sub(a).saturating_mul(words));
                    }
                }
                self.record(c, ea, n_entries.saturating_mul(words), Some(&pick), None)?;
                c.run_no = c.run_no.saturating_add(1);
                continue;
            }
            for k in a..i {
                let slot = if dual { k.saturating_mul(2) } else { k };
                let es = base.saturating_add(k << shift);
                let kid = self.kid(&dir, slot);
                let is_leaf = match c.req.kind {
                    OpKind::Map { .. } | OpKind::Sparse => kid == KID_LEAF_REF,
                    _ => kid == KID_LEAF_LIVE,
                };
                let new = c.mode == Mode::New;
                let val: [u64; 2] = if is_leaf {
                    c.leaves = c.leaves.saturating_add(1);
                    self.leaf_value(c, level, es, new)?
                } else if dual {
                    let b = self.kid(&dir, slot);
                    let s = self.kid(&dir, slot.saturating_add(1));
                    let (bl, sl) = if new {
                        (
                            get_bit(&after, k.saturating_mul(2)),
                            get_bit(&after, k.saturating_mul(2).saturating_add(1)),
                        )
                    } else {
                        (
                            self.node(b).is_some_and(|n| n.live > 0),
                            self.node(s).is_some_and(|n| n.live > 0),
                        )
                    };
                    let ba = if bl {
                        self.node(b).map(|n| n.addr)
                    } else {
                        None
                    };
                    let sa = if sl {
                        self.node(s).map(|n| n.addr)
                    } else {
                        None
                    };
                    M::dual_tables(c.chip, ba, sa)
                        .map_err(|_| PassErr::Vmm(VmmError::Inconsistent))?
                } else {
                    let linked = if new {
                        get_bit(&after, k)
                    } else {
                        self.node(kid).is_some_and(|n| n.live > 0)
                    };
                    let w = match (linked, self.node(kid)) {
                        (true, Some(n)) => M::upper_table(c.chip, level, n.addr)
                            .map_err(|_| PassErr::Vmm(VmmError::Inconsistent))?,
                        _ => 0,
                    };
                    [w, 0]
                };
                let off = uidx(k.saturating_sub(a).saturating_mul(words));
                for (w, v) in (0..uidx(words)).zip(val) {
                    if let Some(s) = self.scratch.get_mut(off.saturating_add(w)) {
                        *s = v;
                    }
                }
            }
            self.emit(c, ea, uidx(n_entries.saturating_mul(words)), None)?;
            c.top = Some(c.top.map_or(level, |t| t.min(level)));
        }
        Ok(u32::try_from(live.max(0)).unwrap_or(u32::MAX))
    }

    /// The value of a large leaf at directory `level` starting at `es`.
    fn leaf_value<W: ?Sized, G: SegStore>(
        &self,
        c: &mut Ctx<'_, '_, W, G>,
        level: usize,
        es: u64,
        new: bool,
    ) -> Result<[u64; 2], PassErr> {
        let dual = is_dual::<M>(level);
        let bad = PassErr::Vmm(VmmError::BadAttrs);
        let chip = c.chip;
        let slot = if dual {
            LeafSlot::Dual
        } else {
            LeafSlot::Upper(level)
        };
        Ok(match (c.req.kind, new) {
            (OpKind::Map { .. } | OpKind::Sparse, false) => [0, 0],
            (OpKind::Map { runs, .. }, true) => {
                if let Some((l, next, word, step, until)) = c.leaf_cache {
                    if l == level && next == es && es < until {
                        let span = 1u64 << M::dir_shift(level);
                        c.leaf_cache = Some((
                            l,
                            es.saturating_add(span),
                            word.wrapping_add(step),
                            step,
                            until,
                        ));
                        return Ok([word, 0]);
                    }
                }
                let enc = |v: &PteMapping| -> Result<[u64; 2], PassErr> {
                    if dual {
                        M::encode_dual_pde(chip, &DualPdeState::Pte(*v)).map_err(|_| bad)
                    } else {
                        Ok([
                            M::encode_upper(chip, level, &PdeState::Pte(*v)).map_err(|_| bad)?,
                            0,
                        ])
                    }
                };
                let v = Self::pte_at(&c.req, &mut c.cur, es).ok_or(bad)?;
                let first = enc(&v)?;
                // Within this physical run the following leaves step by a constant, checked
                // at the second and the last leaf the run can hold.
                let span = 1u64 << M::dir_shift(level);
                c.leaf_cache = None;
                if let Some((run, off)) = locate(runs, &mut c.cur, es.saturating_sub(c.req.s)) {
                    let left = run.len.saturating_sub(off).checked_div(span).unwrap_or(0);
                    if left >= 2 && first[1] == 0 {
                        let at = |k: u64| PteMapping {
                            address: crate::addr::PhysAddr::new(
                                v.address.raw().saturating_add(k.saturating_mul(span)),
                            ),
                            ..v
                        };
                        let second = enc(&at(1))?;
                        let last = enc(&at(left.saturating_sub(1)))?;
                        let step = second[0].wrapping_sub(first[0]);
                        if first[0].wrapping_add(step.wrapping_mul(left.saturating_sub(1)))
                            == last[0]
                            && second[1] == 0
                            && last[1] == 0
                        {
                            c.leaf_cache = Some((
                                level,
                                es.saturating_add(span),
                                second[0],
                                step,
                                es.saturating_add(left.saturating_mul(span)),
                            ));
                        }
                    }
                }
                first
            }
            (OpKind::Sparse, true) => {
                if dual {
                    M::encode_dual_pde(chip, &DualPdeState::Sparse).map_err(|_| bad)?
                } else {
                    [
                        M::encode_upper(chip, level, &PdeState::Sparse).map_err(|_| bad)?,
                        0,
                    ]
                }
            }
            (OpKind::Unmap, true) => [0, 0],
            (OpKind::Unmap | OpKind::Protect(_), false) => [Self::next_old(c), 0],
            (OpKind::Protect(a), true) => {
                let old = Self::next_old(c);
                [M::reprotect(chip, slot, old, &a).map_err(|_| bad)?, 0]
            }
        })
    }

    /// Value of a small (`big == false`) or big leaf slot at `v`.
    fn pte_value<W: ?Sized, G: SegStore>(
        c: &mut Ctx<'_, '_, W, G>,
        v: u64,
        big: bool,
        new: bool,
    ) -> Result<u64, PassErr> {
        let bad = PassErr::Vmm(VmmError::BadAttrs);
        let chip = c.chip;
        Ok(match (c.req.kind, new) {
            (OpKind::Map { .. } | OpKind::Sparse, false) => 0,
            (OpKind::Map { .. }, true) => {
                let p = Self::pte_at(&c.req, &mut c.cur, v).ok_or(bad)?;
                M::encode_leaf(chip, &PteState::Valid(p), big).map_err(|_| bad)?
            }
            (OpKind::Sparse, true) => {
                M::encode_leaf(chip, &PteState::Sparse, big).map_err(|_| bad)?
            }
            (OpKind::Unmap, true) => {
                if big {
                    M::encode_leaf(chip, &PteState::NoValid4K, true).map_err(|_| bad)?
                } else {
                    0
                }
            }
            (OpKind::Unmap | OpKind::Protect(_), false) => Self::next_old(c),
            (OpKind::Protect(a), true) => {
                let old = Self::next_old(c);
                M::reprotect(chip, LeafSlot::Pt { big }, old, &a).map_err(|_| bad)?
            }
        })
    }

    /// Write pass over the page tables of one PD0 entry at `eb`; returns the live counts of
    /// the big and small tables after the operation.
    fn wp_pts<W: VramAccess + ?Sized, G: SegStore>(
        &mut self,
        c: &mut Ctx<'_, '_, W, G>,
        big: Option<Node>,
        small: Option<Node>,
        eb: u64,
    ) -> Result<(u32, u32), PassErr> {
        let (mask, n) = self.pd0_plan(&c.req, &mut c.cur, eb, big.as_ref());
        let sign: i32 = match c.req.kind {
            OpKind::Map { .. } | OpKind::Sparse => 1,
            OpKind::Unmap => -1,
            OpKind::Protect(_) => 0,
        };
        let new = c.mode == Mode::New;
        let read = c.mode == Mode::Read;
        let protect = matches!(c.req.kind, OpKind::Protect(_));
        let sub_before = small.map_or([0u8; 32], |s| s.sub);
        let mut sub_after = sub_before;
        let mut nsmall: i64 = 0;
        for (j, (a, &d)) in sub_after.iter_mut().zip(n.iter()).enumerate() {
            if mask & (1 << j) != 0 {
                continue;
            }
            let v = i32::from(*a).saturating_add(sign.saturating_mul(i32::from(d)));
            *a = u8::try_from(v.clamp(0, 16)).unwrap_or(0);
            nsmall = nsmall.saturating_add(i64::from(d));
        }
        let lo = c.req.s.max(eb);
        let hi = c.req.e.min(eb.saturating_add(SZ_2M));
        // Small page table: runs of 4 KiB pieces, split at big pieces.
        let mut small_after = small.map_or(0, |s| s.live);
        if let Some(sn) = small {
            let linking = sn.live == 0 && nsmall > 0 && sign > 0;
            let (d0, d1) = (u64::from(sn.dirty.0), u64::from(sn.dirty.1));
            if linking && d0 < d1 && !(mask == 0 && small_cover(&c.req, eb) == (d0, d1)) && !read {
                // Created by another prepared operation that has not written its slots yet:
                // zero them before the table becomes visible.
                let buf = self
                    .scratch
                    .get_mut(..uidx(d1.saturating_sub(d0)))
                    .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
                buf.fill(0);
                let ea = sn
                    .addr
                    .checked_add(d0.saturating_mul(8))
                    .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
                self.emit(c, ea, uidx(d1.saturating_sub(d0)), None)?;
            }
            if nsmall > 0 {
                let mut v = lo;
                while v < hi {
                    let j = v.saturating_sub(eb) >> 16;
                    if mask & (1 << j) != 0 {
                        v = eb.saturating_add((j.saturating_add(1)) << 16);
                        continue;
                    }
                    // A run of consecutive small slots up to the next big piece or `hi`.
                    // Up to the next big piece or `hi`, a 64 KiB slot at a time.
                    let mut run_end = v;
                    while run_end < hi && mask & (1 << (run_end.saturating_sub(eb) >> 16)) == 0 {
                        run_end = (run_end | SZ_64K.wrapping_sub(1)).saturating_add(1);
                    }
                    let run_end = run_end.min(hi);
                    let first_slot = v.saturating_sub(eb) >> 12;
                    let cnt = run_end.saturating_sub(v) >> 12;
                    let ea = sn
                        .addr
                        .checked_add(first_slot.saturating_mul(8))
                        .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
                    if read {
                        self.record(c, ea, cnt, None, protect.then_some(false))?;
                        c.run_no = c.run_no.saturating_add(1);
                    } else {
                        self.small_values(c, v, cnt, new)?;
                        self.emit(c, ea, uidx(cnt), None)?;
                        c.leaves = c.leaves.saturating_add(cnt);
                    }
                    v = run_end;
                }
                small_after = u32::try_from(
                    (i64::from(sn.live).saturating_add(i64::from(sign).saturating_mul(nsmall)))
                        .max(0),
                )
                .unwrap_or(0);
            }
        }
        // Big page table.
        let nbig = i64::from(mask.count_ones());
        let mut big_after = big.map_or(0, |b| b.live);
        if let Some(bn) = big {
            big_after = u32::try_from(
                (i64::from(bn.live).saturating_add(i64::from(sign).saturating_mul(nbig))).max(0),
            )
            .unwrap_or(0);
            let linked_before = bn.live > 0;
            let linked_after = big_after > 0;
            let nv4k = M::encode_leaf(c.chip, &PteState::NoValid4K, true)
                .map_err(|_| PassErr::Vmm(VmmError::Inconsistent))?;
            let filler = |cnt: u8| if cnt > 0 { 0 } else { nv4k };
            let mut chg = 0u32;
            for j in 0..32u32 {
                let leaf = mask & (1 << j) != 0;
                let other_live = !leaf && bn.sub.get(uidx(u64::from(j))).is_some_and(|&x| x != 0);
                let jb = sub_before.get(uidx(u64::from(j))).copied().unwrap_or(0);
                let ja = sub_after.get(uidx(u64::from(j))).copied().unwrap_or(0);
                let ch = if !linked_before && linked_after {
                    !other_live
                } else if linked_before && linked_after {
                    leaf || (!other_live && filler(jb) != filler(ja))
                } else {
                    leaf && linked_before
                };
                if ch {
                    chg |= 1 << j;
                }
            }
            let mut j = 0u64;
            while j < 32 {
                if chg & (1 << j) == 0 {
                    j = j.saturating_add(1);
                    continue;
                }
                let a = j;
                while j < 32 && chg & (1 << j) != 0 {
                    j = j.saturating_add(1);
                }
                let ea = bn
                    .addr
                    .checked_add(a.saturating_mul(8))
                    .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
                if read {
                    let mut pick = [0u64; 8];
                    for k in a..j {
                        if mask & (1 << k) != 0 {
                            set_bit(&mut pick, k.saturating_sub(a));
                        }
                    }
                    self.record(
                        c,
                        ea,
                        j.saturating_sub(a),
                        Some(&pick),
                        protect.then_some(true),
                    )?;
                    c.run_no = c.run_no.saturating_add(1);
                    continue;
                }
                for k in a..j {
                    let leaf = mask & (1 << k) != 0;
                    let val = if leaf {
                        c.leaves = c.leaves.saturating_add(1);
                        Self::pte_value(c, eb.saturating_add(k << 16), true, new)?
                    } else {
                        let cnt = if new { sub_after } else { sub_before };
                        filler(cnt.get(uidx(k)).copied().unwrap_or(0))
                    };
                    if let Some(s) = self.scratch.get_mut(uidx(k.saturating_sub(a))) {
                        *s = val;
                    }
                }
                self.emit(c, ea, uidx(j.saturating_sub(a)), None)?;
            }
        }
        Ok((big_after, small_after))
    }

    /// Fills the scratch with `cnt` small PTE values from `v`.
    fn small_values<W: ?Sized, G: SegStore>(
        &mut self,
        c: &mut Ctx<'_, '_, W, G>,
        v: u64,
        cnt: u64,
        new: bool,
    ) -> Result<(), PassErr> {
        let bad = PassErr::Vmm(VmmError::BadAttrs);
        if new {
            if let OpKind::Map { runs, attrs, .. } = c.req.kind {
                // Within one physical run, consecutive PTEs differ by a constant: encode the
                // first and last of each stretch and step between them.
                let mut k = 0u64;
                while k < cnt {
                    let va = v.saturating_add(k << 12);
                    // Continue the stretch of the previous table when this one follows it in
                    // the same physical run (checked linear over the whole run below).
                    if let Some((next, word, step, until)) = c.small_cache {
                        if next == va && va < until {
                            let n = (until.saturating_sub(va) >> 12).min(cnt.saturating_sub(k));
                            let mut w = word;
                            for s in self
                                .scratch
                                .get_mut(uidx(k)..uidx(k.saturating_add(n)))
                                .ok_or(PassErr::Vmm(VmmError::Inconsistent))?
                            {
                                *s = w;
                                w = w.wrapping_add(step);
                            }
                            k = k.saturating_add(n);
                            c.small_cache = Some((va.saturating_add(n << 12), w, step, until));
                            continue;
                        }
                    }
                    let (run, off) =
                        locate(runs, &mut c.cur, va.saturating_sub(c.req.s)).ok_or(bad)?;
                    let run_left = run.len.saturating_sub(off) >> 12;
                    let in_run = run_left.min(cnt.saturating_sub(k));
                    let chip = c.chip;
                    let enc = |o: u64| {
                        let m = PteMapping {
                            aperture: run.aperture,
                            address: PhysAddr::new(run.addr.raw().saturating_add(o)),
                            peer_id: run.peer_id,
                            attrs,
                        };
                        M::encode_leaf(chip, &PteState::Valid(m), false).map_err(|_| bad)
                    };
                    let first = enc(off)?;
                    let mut step = 0;
                    c.small_cache = None;
                    if in_run > 1 {
                        let second = enc(off.saturating_add(SZ_4K))?;
                        step = second.wrapping_sub(first);
                        // Linear up to the end of the run, not only of this table.
                        let last = enc(off.saturating_add((run_left.saturating_sub(1)) << 12))?;
                        if first.wrapping_add(step.wrapping_mul(run_left.saturating_sub(1))) != last
                        {
                            // Not linear (cannot happen with in-place address fields): encode
                            // each one.
                            for t in 0..in_run {
                                let w = enc(off.saturating_add(t << 12))?;
                                if let Some(s) = self.scratch.get_mut(uidx(k.saturating_add(t))) {
                                    *s = w;
                                }
                            }
                            k = k.saturating_add(in_run);
                            continue;
                        }
                    }
                    let mut w = first;
                    for s in self
                        .scratch
                        .get_mut(uidx(k)..uidx(k.saturating_add(in_run)))
                        .ok_or(PassErr::Vmm(VmmError::Inconsistent))?
                    {
                        *s = w;
                        w = w.wrapping_add(step);
                    }
                    k = k.saturating_add(in_run);
                    if in_run > 1 {
                        let until = va.saturating_add(run_left << 12);
                        c.small_cache = Some((va.saturating_add(in_run << 12), w, step, until));
                    }
                }
                return Ok(());
            }
        }
        let buf = self
            .scratch
            .get_mut(..uidx(cnt))
            .ok_or(PassErr::Vmm(VmmError::Inconsistent))?;
        match (c.req.kind, new) {
            (OpKind::Map { .. } | OpKind::Sparse, false) | (OpKind::Unmap, true) => buf.fill(0),
            (OpKind::Sparse, true) => {
                buf.fill(M::encode_leaf(c.chip, &PteState::Sparse, false).map_err(|_| bad)?)
            }
            (OpKind::Unmap | OpKind::Protect(_), false) => Self::old_into(c, buf),
            _ => {
                for (k, s) in (0u64..).zip(buf.iter_mut()) {
                    *s = Self::pte_value(c, v.saturating_add(k << 12), false, new)?;
                }
            }
        }
        Ok(())
    }

    /// Fills `buf` with the next saved words, a segment at a time.
    fn old_into<W: ?Sized, G: SegStore>(c: &mut Ctx<'_, '_, W, G>, buf: &mut [u64]) {
        let mut i = 0usize;
        while i < buf.len() {
            let Some(sg) = c.segs.seg(c.seg_i) else {
                if let Some(rest) = buf.get_mut(i..) {
                    rest.fill(0);
                }
                return;
            };
            let left = usize::try_from(sg.count.saturating_sub(c.seg_off)).unwrap_or(0);
            let take = left.min(buf.len().saturating_sub(i));
            let mut w = sg
                .first
                .wrapping_add(sg.step.wrapping_mul(u64::from(c.seg_off)));
            if let Some(out) = buf.get_mut(i..i.saturating_add(take)) {
                for o in out {
                    *o = w;
                    w = w.wrapping_add(sg.step);
                }
            }
            i = i.saturating_add(take);
            c.seg_off = c
                .seg_off
                .saturating_add(u32::try_from(take).unwrap_or(u32::MAX));
            if c.seg_off >= sg.count {
                c.seg_i = c.seg_i.saturating_add(1);
                c.seg_off = 0;
            }
            if take == 0 {
                // An empty segment: skip it.
                c.seg_i = c.seg_i.saturating_add(1);
                c.seg_off = 0;
            }
        }
    }

    // ----- commit -----------------------------------------------------------------------

    /// Applies the operation to the shadow after its writes and invalidate succeeded; returns
    /// the number of tables queued for cleanup. Cannot fail.
    fn commit_dir(
        &mut self,
        req: &Req<'_>,
        cur: &mut Cur,
        ni: u32,
        level: usize,
        base: u64,
        unlinked: &mut u64,
    ) -> u32 {
        let Some(dir) = self.node(ni) else { return 0 };
        let shift = M::dir_shift(level);
        let (first, last) = entry_span(req, base, shift, M::dir_entries(level));
        let dual = is_dual::<M>(level);
        let mut live = i64::from(dir.live);
        let mut refs = i64::from(dir.refs);
        for i in first..last {
            let es = base.saturating_add(i << shift);
            let slot = if dual { i.saturating_mul(2) } else { i };
            match self.classify(req, cur, &dir, level, i, es) {
                Class::Skip => {}
                Class::Leaf => match req.kind {
                    OpKind::Map { .. } | OpKind::Sparse => {
                        self.set_kid(&dir, slot, KID_LEAF_LIVE);
                        live = live.saturating_add(1);
                    }
                    OpKind::Unmap => {
                        self.set_kid(&dir, slot, KID_NONE);
                        live = live.saturating_sub(1);
                        refs = refs.saturating_sub(1);
                    }
                    OpKind::Protect(_) => {}
                },
                Class::Child if dual => {
                    let bk = self.kid(&dir, slot);
                    let sk = self.kid(&dir, slot.saturating_add(1));
                    let b = self.node(bk);
                    let (mask, n) = self.pd0_plan(req, cur, es, b.as_ref());
                    let sign: i64 = match req.kind {
                        OpKind::Map { .. } | OpKind::Sparse => 1,
                        OpKind::Unmap => -1,
                        OpKind::Protect(_) => 0,
                    };
                    if sign == 0 {
                        continue;
                    }
                    // Small table.
                    let nsmall: i64 = n.iter().map(|&x| i64::from(x)).sum();
                    if nsmall > 0 {
                        if let Some(sn) = self.node_mut(sk) {
                            let before = sn.live > 0;
                            for (j, (a, &d)) in sn.sub.iter_mut().zip(n.iter()).enumerate() {
                                if mask & (1 << j) == 0 {
                                    let v = i64::from(*a)
                                        .saturating_add(sign.saturating_mul(i64::from(d)));
                                    *a = u8::try_from(v.clamp(0, 16)).unwrap_or(0);
                                }
                            }
                            sn.dirty = (0, 0);
                            sn.live = u32::try_from(
                                (i64::from(sn.live).saturating_add(sign.saturating_mul(nsmall)))
                                    .max(0),
                            )
                            .unwrap_or(0);
                            if sign < 0 {
                                sn.refs = u32::try_from(
                                    (i64::from(sn.refs).saturating_sub(nsmall)).max(0),
                                )
                                .unwrap_or(0);
                            }
                            let after = sn.live > 0;
                            live = live.saturating_add(delta(after, before));
                        }
                        if sign < 0 && self.node(sk).is_some_and(|s| s.refs == 0) {
                            self.make_pending(sk);
                            self.set_kid(&dir, slot.saturating_add(1), KID_NONE);
                            refs = refs.saturating_sub(1);
                            *unlinked = unlinked.saturating_add(1);
                        }
                    }
                    let nbig = i64::from(mask.count_ones());
                    if nbig > 0 {
                        if let Some(bn) = self.node_mut(bk) {
                            let before = bn.live > 0;
                            for (j, s) in bn.sub.iter_mut().enumerate() {
                                if mask & (1 << j) != 0 {
                                    *s = u8::from(sign > 0);
                                }
                            }
                            bn.live = u32::try_from(
                                (i64::from(bn.live).saturating_add(sign.saturating_mul(nbig)))
                                    .max(0),
                            )
                            .unwrap_or(0);
                            if sign < 0 {
                                bn.refs =
                                    u32::try_from((i64::from(bn.refs).saturating_sub(nbig)).max(0))
                                        .unwrap_or(0);
                            }
                            live = live.saturating_add(delta(bn.live > 0, before));
                        }
                        if sign < 0 && self.node(bk).is_some_and(|s| s.refs == 0) {
                            self.make_pending(bk);
                            self.set_kid(&dir, slot, KID_NONE);
                            refs = refs.saturating_sub(1);
                            *unlinked = unlinked.saturating_add(1);
                        }
                    }
                }
                Class::Child => {
                    let k = self.kid(&dir, slot);
                    let before = self.node(k).is_some_and(|n| n.live > 0);
                    let la = self.commit_dir(req, cur, k, level.saturating_add(1), es, unlinked);
                    live = live.saturating_add(delta(la > 0, before));
                    if matches!(req.kind, OpKind::Unmap)
                        && self.node(k).is_some_and(|n| n.refs == 0 && !n.foreign)
                    {
                        self.make_pending(k);
                        self.set_kid(&dir, slot, KID_NONE);
                        refs = refs.saturating_sub(1);
                        *unlinked = unlinked.saturating_add(1);
                    }
                }
            }
        }
        let (live, refs) = if ni == 0 {
            (1, refs.max(1))
        } else {
            (live, refs)
        };
        if let Some(d) = self.node_mut(ni) {
            d.live = u32::try_from(live.max(0)).unwrap_or(0);
            d.refs = u32::try_from(refs.max(0)).unwrap_or(0);
        }
        u32::try_from(live.max(0)).unwrap_or(0)
    }

    // ----- execute -----------------------------------------------------------------------

    pub(crate) fn read_old<W: VramAccess + ?Sized, G: Slab<Seg>>(
        &mut self,
        vram: &mut W,
        op: &mut Prepared<'_, G>,
    ) -> Result<(), VmmError> {
        let req = Req {
            s: op.start,
            e: op.end,
            kind: op.kind,
        };
        let mut store = SegSlab(&mut op.segs);
        let mut c = Ctx {
            chip: self.cfg.chip,
            vram,
            req,
            mode: Mode::Read,
            cur: Cur::default(),
            segs: &mut store,
            seg_i: 0,
            seg_off: 0,
            run_no: 0,
            top: None,
            words: 0,
            leaves: 0,
            leaf_cache: None,
            small_cache: None,
        };
        self.wp_dir(&mut c, 0, 0, 0)
            .map(|_| ())
            .map_err(VmmError::from)
    }

    #[allow(clippy::result_large_err)]
    pub(crate) fn execute_inner<
        'r,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
        G: Slab<Seg>,
    >(
        &mut self,
        vram: &mut W,
        tlb: &mut T,
        mut op: Prepared<'r, G>,
    ) -> Result<Executed, ExecFailed<'r, G>> {
        let req = Req {
            s: op.start,
            e: op.end,
            kind: op.kind,
        };
        let mut store = SegSlab(&mut op.segs);
        let mut c = Ctx {
            chip: self.cfg.chip,
            vram: &mut *vram,
            req,
            mode: Mode::New,
            cur: Cur::default(),
            segs: &mut store,
            seg_i: 0,
            seg_off: 0,
            run_no: 0,
            top: None,
            words: 0,
            leaves: 0,
            leaf_cache: None,
            small_cache: None,
        };
        let res = self.wp_dir(&mut c, 0, 0, 0);
        let (runs, top, words, leaves) = (c.run_no, c.top, c.words, c.leaves);
        let fail = |s: &mut Self,
                    vram: &mut W,
                    op: &mut Prepared<'r, G>,
                    limit: u64|
         -> Option<VramError> {
            let mut store = SegSlab(&mut op.segs);
            let mut c = Ctx {
                chip: s.cfg.chip,
                vram,
                req,
                mode: Mode::Old { limit },
                cur: Cur::default(),
                segs: &mut store,
                seg_i: 0,
                seg_off: 0,
                run_no: 0,
                top: None,
                words: 0,
                leaves: 0,
                leaf_cache: None,
                small_cache: None,
            };
            match s.wp_dir(&mut c, 0, 0, 0) {
                Err(PassErr::Vram(e)) => Some(e),
                _ => None,
            }
        };
        if let Err(e) = res {
            // Runs 0..runs-1 were written; run `runs - 1` may be partial.
            let limit = runs.saturating_sub(1);
            let rb = if runs > 0 {
                fail(self, vram, &mut op, limit)
            } else {
                None
            };
            let error = match (e, rb) {
                (PassErr::Vram(first), Some(rollback)) => {
                    VmmError::RollbackFailed { first, rollback }
                }
                (e, _) => e.into(),
            };
            return Err(ExecFailed { op, error });
        }
        let cache_level = match top {
            None => CacheLevel::PteOnly,
            Some(l) => {
                let pde =
                    u32::try_from(M::DIR_LEVELS.saturating_sub(1).saturating_sub(l)).unwrap_or(0);
                CacheLevel::up_to_pde(pde).unwrap_or(CacheLevel::All)
            }
        };
        let align = match top {
            None => SZ_64K,
            Some(l) => 1u64 << M::dir_shift(l),
        };
        let a_start = req.s & !(align.wrapping_sub(1));
        let a_end = req.e.saturating_add(align.wrapping_sub(1)) & !(align.wrapping_sub(1));
        let ack = match req.kind {
            OpKind::Map { .. } | OpKind::Sparse => AckMode::None,
            OpKind::Unmap | OpKind::Protect(_) => AckMode::Globally,
        };
        let inv = InvalidateRequest {
            pdb: PdbTarget::One {
                addr: self.root_addr.raw(),
                aperture: PdbAperture::Vidmem,
            },
            va: VaScope::Range {
                start: VirtAddr::new(a_start),
                size: a_end.saturating_sub(a_start),
            },
            hub_tlb_only: self.cfg.kind == super::SpaceKind::Bar,
            cache_level,
            ack,
        };
        let mut stats = op.stats;
        stats.bulk_writes = runs;
        stats.words_written = words;
        stats.leaves = leaves;
        if runs > 0 {
            if let Err(e) = tlb.invalidate(&inv) {
                let rb = fail(self, vram, &mut op, runs.saturating_sub(1));
                // Drop whatever the TLB may have picked up from the new entries.
                let _ = tlb.invalidate(&inv);
                let error = match rb {
                    Some(rollback) => VmmError::RollbackFailed {
                        first: VramError::DeviceGone,
                        rollback,
                    },
                    None => VmmError::Tlb(e),
                };
                return Err(ExecFailed { op, error });
            }
            stats.invalidates = 1;
            stats.cache_level = Some(cache_level);
        }
        let mut cur = Cur::default();
        let mut unlinked = 0u64;
        let _ = self.commit_dir(&req, &mut cur, 0, 0, 0, &mut unlinked);
        stats.tables_unlinked = unlinked;
        match req.kind {
            OpKind::Map { .. } | OpKind::Sparse => Ok(Executed::Mapped(
                self.mapping(req.s, req.e, op.sparse_mapping),
                stats,
            )),
            OpKind::Unmap => {
                let _ = self.va.release(req.s, req.e.saturating_sub(req.s));
                Ok(Executed::Done(stats))
            }
            OpKind::Protect(_) => Ok(Executed::Done(stats)),
        }
    }

    // ----- import ------------------------------------------------------------------------

    /// Imports the tables under the root as foreign nodes and reserves the VA they map.
    pub(crate) fn import<W: VramAccess + ?Sized>(&mut self, vram: &mut W) -> Result<(), VmmError> {
        let mut pend: Option<(u64, u64)> = None;
        self.import_dir(vram, 0, 0, 0, &mut pend)?;
        if let Some((a, b)) = pend {
            self.reserve_foreign(a, b)?;
        }
        Ok(())
    }

    fn reserve_foreign(&mut self, a: u64, b: u64) -> Result<(), VmmError> {
        let a = a.max(self.cfg.va_start);
        let b = b.min(self.cfg.va_end);
        if a < b {
            self.va.reserve_fixed(a, b.saturating_sub(a))?;
        }
        Ok(())
    }

    fn note_va(&mut self, pend: &mut Option<(u64, u64)>, a: u64, b: u64) -> Result<(), VmmError> {
        match pend {
            Some((_, e)) if *e == a => *e = b,
            _ => {
                if let Some((x, y)) = pend.take() {
                    self.reserve_foreign(x, y)?;
                }
                *pend = Some((a, b));
            }
        }
        Ok(())
    }

    fn import_node(
        &mut self,
        vram_size: u64,
        level: usize,
        ptr: PdeTable,
        kind: NodeKind,
        bytes: u64,
    ) -> Result<u32, VmmError> {
        let l8 = u8::try_from(level).unwrap_or(u8::MAX);
        let addr = ptr.address.raw();
        if ptr.aperture != TableAperture::Vidmem {
            return Err(WalkError::SysmemTable { level: l8, addr }.into());
        }
        if addr.checked_add(bytes).is_none_or(|e| e > vram_size) {
            return Err(WalkError::WildTable { level: l8, addr }.into());
        }
        let i = self.new_node(VramAddress::new(addr), l8, kind)?;
        if let Some(n) = self.node_mut(i) {
            n.foreign = true;
            n.refs = 1;
            n.live = 1;
        }
        Ok(i)
    }

    fn import_dir<W: VramAccess + ?Sized>(
        &mut self,
        vram: &mut W,
        ni: u32,
        level: usize,
        base: u64,
        pend: &mut Option<(u64, u64)>,
    ) -> Result<(), VmmError> {
        if level >= M::DIR_LEVELS {
            return Err(VmmError::Inconsistent);
        }
        let dir = self.node(ni).ok_or(VmmError::Inconsistent)?;
        let shift = M::dir_shift(level);
        let span = 1u64 << shift;
        let dual = is_dual::<M>(level);
        let words = dir_entry_words::<M>(level);
        let size = vram.size();
        let mut counted = 0u32;
        for i in 0..M::dir_entries(level) {
            let es = base.saturating_add(i.saturating_mul(span));
            let ea = dir
                .addr
                .checked_add(i.saturating_mul(words).saturating_mul(8))
                .ok_or(VmmError::Inconsistent)?;
            let lo = vram.read64(ea)?;
            if dual {
                let hi = vram.read64(ea.checked_add(8).ok_or(VmmError::Inconsistent)?)?;
                let st = M::decode_dual_pde(self.cfg.chip, [lo, hi]).map_err(|error| {
                    WalkError::Malformed {
                        level: u8::try_from(level).unwrap_or(0),
                        entry: ea,
                        error,
                    }
                })?;
                match st {
                    DualPdeState::Pte(_) | DualPdeState::Sparse => {
                        self.set_kid(&dir, i.saturating_mul(2), KID_FOREIGN);
                        counted = counted.saturating_add(1);
                        self.note_va(pend, es, es.saturating_add(span))?;
                    }
                    DualPdeState::Tables { big, small } => {
                        let (big, small) = (big.table().copied(), small.table().copied());
                        let lvl = pt_level::<M>();
                        let mut big_live = 0u32;
                        if let Some(b) = big {
                            let bi = self.import_node(size, lvl, b, NodeKind::Big, 256)?;
                            self.set_kid(&dir, i.saturating_mul(2), bi);
                            counted = counted.saturating_add(1);
                            big_live = self.import_pt(vram, bi, true, es, pend)?;
                        }
                        if let Some(s) = small {
                            let si = self.import_node(size, lvl, s, NodeKind::Small, 4096)?;
                            self.set_kid(&dir, i.saturating_mul(2).saturating_add(1), si);
                            counted = counted.saturating_add(1);
                            let _ = self.import_pt(vram, si, false, es, pend)?;
                        }
                        let _ = big_live;
                    }
                }
                continue;
            }
            let st = M::decode_upper(self.cfg.chip, level, lo).map_err(|error| {
                WalkError::Malformed {
                    level: u8::try_from(level).unwrap_or(0),
                    entry: ea,
                    error,
                }
            })?;
            match st {
                PdeState::Invalid => {}
                PdeState::Sparse | PdeState::Pte(_) => {
                    self.set_kid(&dir, i, KID_FOREIGN);
                    counted = counted.saturating_add(1);
                    self.note_va(pend, es, es.saturating_add(span))?;
                }
                PdeState::Table(ptr) => {
                    let next = level.saturating_add(1);
                    let bytes = crate::walk::format::dir_table_bytes::<M>(next);
                    let k = self.import_node(size, next, ptr, NodeKind::Dir, bytes)?;
                    self.set_kid(&dir, i, k);
                    counted = counted.saturating_add(1);
                    self.import_dir(vram, k, next, es, pend)?;
                }
            }
        }
        if let Some(d) = self.node_mut(ni) {
            d.refs = d.refs.saturating_add(counted);
            d.live = d.live.saturating_add(counted);
        }
        Ok(())
    }

    /// Imports a page table's live slots; returns how many there are.
    fn import_pt<W: VramAccess + ?Sized>(
        &mut self,
        vram: &mut W,
        ni: u32,
        big: bool,
        eb: u64,
        pend: &mut Option<(u64, u64)>,
    ) -> Result<u32, VmmError> {
        let n = self.node(ni).ok_or(VmmError::Inconsistent)?;
        let (count, shift) = if big { (32u64, 16u32) } else { (512, 12) };
        let mut buf = [0u64; 32];
        let mut live = 0u32;
        let mut sub = [0u8; 32];
        let mut k = 0u64;
        while k < count {
            vram.read_u64s(
                n.addr
                    .checked_add(k.saturating_mul(8))
                    .ok_or(VmmError::Inconsistent)?,
                &mut buf,
            )?;
            for (t, &w) in (0u64..).zip(buf.iter()) {
                let slot = k.saturating_add(t);
                let st = M::decode_leaf(self.cfg.chip, w, big).map_err(|error| {
                    WalkError::Malformed {
                        level: u8::try_from(M::DIR_LEVELS).unwrap_or(0),
                        entry: n.addr,
                        error,
                    }
                })?;
                if matches!(st, PteState::Valid(_) | PteState::Sparse) {
                    live = live.saturating_add(1);
                    let j = if big { slot } else { slot >> 4 };
                    if let Some(x) = sub.get_mut(uidx(j)) {
                        *x = x.saturating_add(1);
                    }
                    let a = eb.saturating_add(slot << shift);
                    self.note_va(pend, a, a.saturating_add(1 << shift))?;
                }
            }
            k = k.saturating_add(32);
        }
        if let Some(m) = self.node_mut(ni) {
            m.refs = m.refs.saturating_add(live);
            m.live = m.live.saturating_add(live);
            m.sub = sub;
        }
        Ok(live)
    }
}

/// The small-table slots `[first, end)` that `req` covers in the PD0 entry at `eb`.
fn small_cover(req: &Req<'_>, eb: u64) -> (u64, u64) {
    let lo = req.s.max(eb);
    let hi = req.e.min(eb.saturating_add(SZ_2M));
    if lo >= hi {
        return (0, 0);
    }
    (lo.saturating_sub(eb) >> 12, hi.saturating_sub(eb) >> 12)
}

/// The level number of page tables (one below PD0).
pub(crate) fn pt_level<M: PtFormat>() -> usize {
    M::DIR_LEVELS
}

/// Entries `[first, last)` of a table at `base` (entry span `1 << shift`) that overlap the
/// request.
fn entry_span(req: &Req<'_>, base: u64, shift: u32, entries: u64) -> (u64, u64) {
    let span = 1u64 << shift;
    let first = req.s.saturating_sub(base) >> shift;
    let last = (req
        .e
        .saturating_sub(base)
        .saturating_add(span.wrapping_sub(1))
        >> shift)
        .min(entries);
    (first.min(entries), last)
}

/// Locates op offset `off` in `runs`: the run and the offset inside it.
fn locate<'r>(
    runs: &'r [super::PhysRun],
    cur: &mut Cur,
    off: u64,
) -> Option<(&'r super::PhysRun, u64)> {
    if off < cur.base {
        *cur = Cur::default();
    }
    loop {
        let r = runs.get(cur.run)?;
        let end = cur.base.checked_add(r.len)?;
        if off < end {
            return Some((r, off.saturating_sub(cur.base)));
        }
        cur.base = end;
        cur.run = cur.run.checked_add(1)?;
    }
}

fn set_bit(bits: &mut [u64], i: u64) {
    if let Some(w) = bits.get_mut(uidx(i >> 6)) {
        *w |= 1 << (i & 63);
    }
}

fn get_bit(bits: &[u64], i: u64) -> bool {
    bits.get(uidx(i >> 6))
        .is_some_and(|w| w & (1 << (i & 63)) != 0)
}

/// Saved-entry storage used by the passes.
pub(crate) trait SegStore {
    fn seg(&self, i: usize) -> Option<Seg>;
    fn push_word(&mut self, w: u64) -> Result<(), super::NoRoom>;
    /// Appends a run of words, extending arithmetic stretches without a call per word.
    fn push_words(&mut self, ws: &[u64]) -> Result<(), super::NoRoom> {
        let mut i = 0usize;
        while let Some(&w) = ws.get(i) {
            self.push_word(w)?;
            i = i.saturating_add(1);
            // Extend the last segment over every following word that continues it.
            let Some((next, step)) = self.tail() else {
                continue;
            };
            let mut n = 0u32;
            let mut want = next;
            while ws.get(i).is_some_and(|&x| x == want) && n < u32::MAX / 2 {
                want = want.wrapping_add(step);
                i = i.saturating_add(1);
                n = n.saturating_add(1);
            }
            self.extend_tail(n);
        }
        Ok(())
    }
    /// The word that would continue the last segment, and its step (segments of two or more).
    fn tail(&self) -> Option<(u64, u64)>;
    /// Lengthens the last segment by `n` words.
    fn extend_tail(&mut self, n: u32);
}

/// Adapter from a `Slab<Seg>` to [`SegStore`], compressing arithmetic runs.
pub(crate) struct SegSlab<'a, G>(pub(crate) &'a mut G);

impl<G: Slab<Seg>> SegStore for SegSlab<'_, G> {
    fn seg(&self, i: usize) -> Option<Seg> {
        self.0.get(i).copied()
    }
    fn tail(&self) -> Option<(u64, u64)> {
        let last = self.0.len().checked_sub(1).and_then(|i| self.0.get(i))?;
        (last.count >= 2).then(|| {
            (
                last.first
                    .wrapping_add(last.step.wrapping_mul(u64::from(last.count))),
                last.step,
            )
        })
    }
    fn extend_tail(&mut self, n: u32) {
        let n_len = self.0.len();
        if let Some(last) = n_len.checked_sub(1).and_then(|i| self.0.get_mut(i)) {
            last.count = last.count.saturating_add(n);
        }
    }
    fn push_word(&mut self, w: u64) -> Result<(), super::NoRoom> {
        let n = self.0.len();
        if let Some(last) = n.checked_sub(1).and_then(|i| self.0.get_mut(i)) {
            if last.count == 1 {
                last.step = w.wrapping_sub(last.first);
                last.count = 2;
                return Ok(());
            }
            let next = last
                .first
                .wrapping_add(last.step.wrapping_mul(u64::from(last.count)));
            if next == w && last.count < u32::MAX {
                last.count = last.count.saturating_add(1);
                return Ok(());
            }
        }
        self.0.try_reserve(1)?;
        self.0.push_reserved(Seg {
            first: w,
            step: 0,
            count: 1,
        })
    }
}

/// `a - b` for two flags, as a count change.
fn delta(a: bool, b: bool) -> i64 {
    i64::from(a).saturating_sub(i64::from(b))
}
