//! The BAR1 user: map VRAM pages into a BAR1 address space and access them from the CPU
//! through a bounds-checked window.
//!
//! The nova series' `BarAccess` mapped one page per call with one TLB flush each, borrowed
//! everything mutably for its whole life, and unmapped page by page on drop while ignoring
//! errors (`nova-series.md` §4.7, §5 points 11 and 19). Here a window is mapped in one
//! operation (one `HUBTLB_ONLY` invalidate), accessed through [`Bar1Io`] with every offset
//! checked against the window, and unmapped by consuming it in one operation that reports its
//! error and hands the window back on failure.
//!
//! The address range and the accesses live on [`Bar1Span`], a `Copy` pair of VA and length;
//! [`Bar1Window`] (which adds the mapping, i.e. the right to unmap) and [`Bar1Guard`] both
//! dereference to it, so every offset check is written once and a guard is used like a window.
//!
//! # Unmapping on drop: [`Bar1Guard`]
//!
//! A [`Bar1Window`] is a plain token: dropping it unmaps nothing (its VA and pages stay mapped
//! until the space is destroyed), which `#[must_use]` warns about. For scoped use, a
//! [`Bar1Guard`] (from [`Bar1Window::into_guard`] or [`AddressSpace::bar1_map_guarded`])
//! mutably borrows everything an unmap needs (the address space, the page-table allocator,
//! VRAM, the TLB and the rollback storage for the saved entries) and unmaps the whole window in
//! one operation (one `HUBTLB_ONLY` invalidate, tables freed) when dropped, on every path out of
//! the scope, including `?` and unwinding.
//!
//! `Drop` cannot return an error and must not panic, so:
//!
//! - [`Bar1Guard::finish`] is the explicit, consuming unmap that returns the result; use it
//!   wherever the caller can act on an error;
//! - a failed unmap on drop is recorded in a `&mut Option<Bar1UnmapFailure>` slot the owner
//!   passes when creating the guard (a driver keeps it next to its BAR1 state, or on the stack
//!   around the scope). The failure carries the error and, when the unmap changed nothing (the
//!   all-or-nothing rule), the window itself, still mapped, so the owner can retry the unmap
//!   (e.g. after recovering the TLB-invalidate engine) or at least knows which BAR1 range is
//!   still live. A slot that already holds a failure keeps that first one; the later window then
//!   stays mapped until the space is destroyed, as a dropped [`Bar1Window`] would.
//!
//! The slot was chosen over a counter on the address space because it hands the window back
//! (a counter could only say that something leaked) and costs the address space nothing.

use super::{
    AddressSpace, Kids, Mapping, Node, OpStats, PageTableAllocator, PhysRun, Seg, Slab, SpaceKind,
    VaPlacement, VaRanges, VmmError,
};
use crate::addr::{PageSize, VirtAddr, VramAddress};
use crate::mmu::PteAttrs;
use crate::tlb::TlbInvalidate;
use crate::vram::VramAccess;
use crate::walk::PtFormat;

/// Why a BAR1 window access failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Bar1Error {
    /// `[offset, offset + size)` is not inside the window.
    #[error(
        "BAR1 access of {size} bytes at offset {offset:#x} is outside the {len:#x}-byte window"
    )]
    OutOfBounds {
        /// Offset into the window.
        offset: u64,
        /// Access size.
        size: u64,
        /// Window length.
        len: u64,
    },
    /// The offset is not a multiple of the access size.
    #[error("BAR1 access at offset {offset:#x} is not {size}-byte aligned")]
    Misaligned {
        /// Offset into the window.
        offset: u64,
        /// Access size.
        size: u64,
    },
    /// The BAR itself failed (the backend's code).
    #[error("BAR1 I/O error {0}")]
    Io(i32),
}

/// CPU access to the BAR1 aperture: offsets are BAR1 virtual addresses.
pub trait Bar1Io {
    /// Reads 32 bits at BAR1 address `va`.
    ///
    /// # Errors
    ///
    /// [`Bar1Error::Io`].
    fn read32(&mut self, va: VirtAddr) -> Result<u32, Bar1Error>;
    /// Writes 32 bits at BAR1 address `va`.
    ///
    /// # Errors
    ///
    /// [`Bar1Error::Io`].
    fn write32(&mut self, va: VirtAddr, value: u32) -> Result<(), Bar1Error>;
    /// Reads 64 bits at BAR1 address `va`.
    ///
    /// # Errors
    ///
    /// [`Bar1Error::Io`].
    fn read64(&mut self, va: VirtAddr) -> Result<u64, Bar1Error>;
    /// Writes 64 bits at BAR1 address `va`.
    ///
    /// # Errors
    ///
    /// [`Bar1Error::Io`].
    fn write64(&mut self, va: VirtAddr, value: u64) -> Result<(), Bar1Error>;
}

/// VRAM pages mapped into a BAR1 address space. Not `Clone`; release it with
/// [`Bar1Window::unmap`], or wrap it in a [`Bar1Guard`] that unmaps it on drop. Dropping the
/// window itself unmaps nothing: the pages stay reachable through BAR1 and the VA reserved until
/// the address space is destroyed.
///
/// It dereferences to its [`Bar1Span`] for the address range and the bounds-checked accesses.
#[derive(Debug)]
#[must_use = "a BAR1 window stays mapped until unmapped: call `unmap`, or use `into_guard`"]
pub struct Bar1Window {
    /// The mapping's range, kept beside it so that `Deref` can lend it; set only by
    /// `Bar1Window::new`.
    span: Bar1Span,
    mapping: Mapping,
}

/// Coalesces 4 KiB VRAM pages into runs (adjacent pages become one run) in `out`; returns how
/// many runs were written.
///
/// # Errors
///
/// [`VmmError::BadRuns`] if a page is not 4 KiB aligned, [`VmmError::NoRoom`] if `out` is too
/// small.
pub fn pages_to_runs(pages: &[VramAddress], out: &mut [PhysRun]) -> Result<usize, VmmError> {
    let mut n = 0usize;
    for &p in pages {
        if !p.is_aligned_to(crate::addr::PAGE_BYTES) {
            return Err(VmmError::BadRuns);
        }
        let extend = n
            .checked_sub(1)
            .and_then(|i| out.get_mut(i))
            .filter(|r| r.addr.raw().checked_add(r.len) == Some(p.raw()));
        match extend {
            Some(r) => r.len = r.len.saturating_add(crate::addr::PAGE_BYTES),
            None => {
                let slot = out.get_mut(n).ok_or(super::NoRoom)?;
                *slot = PhysRun::vram(p, crate::addr::PAGE_BYTES);
                n = n.saturating_add(1);
            }
        }
    }
    Ok(n)
}

/// The BAR1 range of a mapped window, `[va, va + len)`, and the bounds-checked accesses into it.
///
/// Both a [`Bar1Window`] and a [`Bar1Guard`] dereference to their span, so the range and every
/// offset check are written once and the two are accessed alike (`window.read32(bar, off)`,
/// `guard.len()`). A span is a plain `Copy` value: it proves nothing about the range still being
/// mapped, only the window or guard it came from does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bar1Span {
    va: VirtAddr,
    len: u64,
}

impl Bar1Span {
    /// First BAR1 address of the window.
    #[must_use]
    pub fn va(&self) -> VirtAddr {
        self.va
    }

    /// Length of the window in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty (never).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The BAR1 address of an access of `size` bytes at `offset`: the one bounds and alignment
    /// check every access goes through.
    fn at(&self, offset: u64, size: u64) -> Result<VirtAddr, Bar1Error> {
        let Bar1Span { va, len } = *self;
        if offset.checked_rem(size) != Some(0) {
            return Err(Bar1Error::Misaligned { offset, size });
        }
        match offset.checked_add(size) {
            Some(end) if end <= len => {
                va.checked_add(offset)
                    .ok_or(Bar1Error::OutOfBounds { offset, size, len })
            }
            _ => Err(Bar1Error::OutOfBounds { offset, size, len }),
        }
    }

    /// Reads 32 bits at `offset` in the window.
    ///
    /// # Errors
    ///
    /// [`Bar1Error`]: out of the window, misaligned, or the BAR failed.
    pub fn read32<B: Bar1Io + ?Sized>(&self, bar: &mut B, offset: u64) -> Result<u32, Bar1Error> {
        bar.read32(self.at(offset, 4)?)
    }

    /// Writes 32 bits at `offset` in the window.
    ///
    /// # Errors
    ///
    /// [`Bar1Error`]: out of the window, misaligned, or the BAR failed.
    pub fn write32<B: Bar1Io + ?Sized>(
        &self,
        bar: &mut B,
        offset: u64,
        value: u32,
    ) -> Result<(), Bar1Error> {
        bar.write32(self.at(offset, 4)?, value)
    }

    /// Reads 64 bits at `offset` in the window.
    ///
    /// # Errors
    ///
    /// [`Bar1Error`]: out of the window, misaligned, or the BAR failed.
    pub fn read64<B: Bar1Io + ?Sized>(&self, bar: &mut B, offset: u64) -> Result<u64, Bar1Error> {
        bar.read64(self.at(offset, 8)?)
    }

    /// Writes 64 bits at `offset` in the window.
    ///
    /// # Errors
    ///
    /// [`Bar1Error`]: out of the window, misaligned, or the BAR failed.
    pub fn write64<B: Bar1Io + ?Sized>(
        &self,
        bar: &mut B,
        offset: u64,
        value: u64,
    ) -> Result<(), Bar1Error> {
        bar.write64(self.at(offset, 8)?, value)
    }
}

impl core::ops::Deref for Bar1Window {
    type Target = Bar1Span;

    fn deref(&self) -> &Bar1Span {
        &self.span
    }
}

impl Bar1Window {
    /// The window of a BAR1 mapping; its span is the mapping's range.
    fn new(mapping: Mapping) -> Self {
        Bar1Window {
            span: Bar1Span {
                va: mapping.va(),
                len: mapping.len(),
            },
            mapping,
        }
    }

    /// Unmaps the whole window in one operation (one invalidate) and frees the tables it
    /// emptied. `segs` holds the saved entries for rollback (`Vec::new()` with `alloc`, or a
    /// [`super::FixedSlab`]).
    ///
    /// # Errors
    ///
    /// The unmap's error, with the window handed back (still mapped) when nothing changed.
    #[allow(clippy::too_many_arguments)]
    pub fn unmap<M, N, K, V, A, W, T, G>(
        self,
        space: &mut AddressSpace<M, N, K, V>,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        segs: G,
    ) -> Result<OpStats, (Option<Bar1Window>, VmmError)>
    where
        M: PtFormat,
        N: Slab<Node>,
        K: Slab<Kids>,
        V: VaRanges,
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
        G: Slab<super::Seg>,
    {
        space
            .unmap_in(alloc, vram, tlb, self.mapping, segs)
            .map_err(|(m, e)| (m.map(Bar1Window::new), e))
    }

    /// Wraps the window in a [`Bar1Guard`] that unmaps it in one operation when dropped,
    /// borrowing what [`Bar1Window::unmap`] needs until then. `failure` receives the error
    /// (and the window, if still mapped) should that unmap fail; see the module docs.
    #[allow(clippy::too_many_arguments)]
    pub fn into_guard<'a, M, N, K, V, A, W, T, G>(
        self,
        space: &'a mut AddressSpace<M, N, K, V>,
        alloc: &'a mut A,
        vram: &'a mut W,
        tlb: &'a mut T,
        segs: G,
        failure: &'a mut Option<Bar1UnmapFailure>,
    ) -> Bar1Guard<'a, M, N, K, V, A, W, T, G>
    where
        M: PtFormat,
        N: Slab<Node>,
        K: Slab<Kids>,
        V: VaRanges,
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
        G: Slab<Seg>,
    {
        Bar1Guard {
            span: self.span,
            mapping: Some(self.mapping),
            segs: Some(segs),
            space,
            alloc,
            vram,
            tlb,
            failure,
        }
    }
}

/// A failed unmap on drop of a [`Bar1Guard`], recorded in the slot given at its creation.
#[derive(Debug)]
#[must_use = "the window may still be mapped: retry `window.unmap` or keep it for destroy"]
pub struct Bar1UnmapFailure {
    /// The window, still mapped, when the unmap changed nothing (always, unless the unmap
    /// found the shadow inconsistent or the window belongs to another space).
    pub window: Option<Bar1Window>,
    /// Why the unmap failed.
    pub error: VmmError,
}

/// A [`Bar1Window`] that is unmapped, in one operation, when the guard is dropped.
///
/// It mutably borrows the address space, the allocator, VRAM and the TLB for its whole life
/// (they are what the unmap needs), and owns the rollback storage `segs`. Like a
/// [`Bar1Window`] it dereferences to the window's [`Bar1Span`], so reads and writes are
/// bounds-checked against the window by the same code; the BAR1 aperture itself ([`Bar1Io`]) is
/// separate hardware (a different PCI BAR) and is passed per access.
/// [`Bar1Guard::backends`] reaches the borrowed VRAM and TLB meanwhile (e.g. for a PRAMIN
/// cross-check).
///
/// Drop never panics: a failed unmap is stored in the failure slot (see the module docs).
/// Prefer [`Bar1Guard::finish`] where the error can be handled.
#[must_use = "dropping the guard at once unmaps the window again"]
pub struct Bar1Guard<'a, M, N, K, V, A, W, T, G>
where
    M: PtFormat,
    N: Slab<Node>,
    K: Slab<Kids>,
    V: VaRanges,
    A: PageTableAllocator + ?Sized,
    W: VramAccess + ?Sized,
    T: TlbInvalidate + ?Sized,
    G: Slab<Seg>,
{
    /// The window, taken apart: its span serves the accesses for the guard's whole life, its
    /// mapping is `Some` until `finish` or `drop` takes it to unmap.
    span: Bar1Span,
    mapping: Option<Mapping>,
    segs: Option<G>,
    space: &'a mut AddressSpace<M, N, K, V>,
    alloc: &'a mut A,
    vram: &'a mut W,
    tlb: &'a mut T,
    failure: &'a mut Option<Bar1UnmapFailure>,
}

impl<M, N, K, V, A, W, T, G> core::fmt::Debug for Bar1Guard<'_, M, N, K, V, A, W, T, G>
where
    M: PtFormat,
    N: Slab<Node>,
    K: Slab<Kids>,
    V: VaRanges,
    A: PageTableAllocator + ?Sized,
    W: VramAccess + ?Sized,
    T: TlbInvalidate + ?Sized,
    G: Slab<Seg>,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bar1Guard")
            .field("va", &self.span.va)
            .field("len", &self.span.len)
            .finish_non_exhaustive()
    }
}

impl<M, N, K, V, A, W, T, G> core::ops::Deref for Bar1Guard<'_, M, N, K, V, A, W, T, G>
where
    M: PtFormat,
    N: Slab<Node>,
    K: Slab<Kids>,
    V: VaRanges,
    A: PageTableAllocator + ?Sized,
    W: VramAccess + ?Sized,
    T: TlbInvalidate + ?Sized,
    G: Slab<Seg>,
{
    type Target = Bar1Span;

    fn deref(&self) -> &Bar1Span {
        &self.span
    }
}

impl<M, N, K, V, A, W, T, G> Bar1Guard<'_, M, N, K, V, A, W, T, G>
where
    M: PtFormat,
    N: Slab<Node>,
    K: Slab<Kids>,
    V: VaRanges,
    A: PageTableAllocator + ?Sized,
    W: VramAccess + ?Sized,
    T: TlbInvalidate + ?Sized,
    G: Slab<Seg>,
{
    /// The address space the window is mapped in (read-only: e.g. to translate).
    #[must_use]
    pub fn space(&self) -> &AddressSpace<M, N, K, V> {
        self.space
    }

    /// The borrowed VRAM and TLB, for PRAMIN accesses while the window is mapped. Writing
    /// page tables behind the manager's back through them is the caller's responsibility.
    pub fn backends(&mut self) -> (&mut W, &mut T) {
        (&mut *self.vram, &mut *self.tlb)
    }

    /// Unmaps the window now, in one operation, and reports the result (the failure slot is
    /// not touched).
    ///
    /// # Errors
    ///
    /// As [`Bar1Window::unmap`]: the error, with the window handed back (still mapped) when
    /// nothing changed.
    pub fn finish(mut self) -> Result<OpStats, (Option<Bar1Window>, VmmError)> {
        self.unmap_now()
    }

    /// Takes the mapping and the rollback storage out and unmaps them as the window; afterwards
    /// `drop` has nothing left to do.
    fn unmap_now(&mut self) -> Result<OpStats, (Option<Bar1Window>, VmmError)> {
        match (self.mapping.take(), self.segs.take()) {
            (Some(m), Some(segs)) => Bar1Window::new(m).unmap(
                &mut *self.space,
                &mut *self.alloc,
                &mut *self.vram,
                &mut *self.tlb,
                segs,
            ),
            (m, _) => Err((m.map(Bar1Window::new), VmmError::Inconsistent)),
        }
    }
}

impl<M, N, K, V, A, W, T, G> Drop for Bar1Guard<'_, M, N, K, V, A, W, T, G>
where
    M: PtFormat,
    N: Slab<Node>,
    K: Slab<Kids>,
    V: VaRanges,
    A: PageTableAllocator + ?Sized,
    W: VramAccess + ?Sized,
    T: TlbInvalidate + ?Sized,
    G: Slab<Seg>,
{
    /// Unmaps the window in one operation; a failure goes to the slot (if it is empty).
    fn drop(&mut self) {
        if self.mapping.is_none() {
            return;
        }
        if let Err((window, error)) = self.unmap_now() {
            if self.failure.is_none() {
                *self.failure = Some(Bar1UnmapFailure { window, error });
            }
        }
    }
}

impl<M: PtFormat, N: Slab<Node>, K: Slab<Kids>, V: VaRanges> AddressSpace<M, N, K, V> {
    /// Maps VRAM runs into this BAR1 space anywhere it fits, in one operation, and returns the
    /// window. 4 KiB pages unless `page_size` is given.
    ///
    /// # Errors
    ///
    /// [`VmmError::BadRange`] if the space is not a BAR space; otherwise as
    /// [`AddressSpace::prepare_map`] and [`AddressSpace::execute`].
    pub fn bar1_map<A, W, T>(
        &mut self,
        alloc: &mut A,
        vram: &mut W,
        tlb: &mut T,
        runs: &[PhysRun],
        page_size: Option<PageSize>,
    ) -> Result<Bar1Window, VmmError>
    where
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
    {
        if self.cfg.kind != SpaceKind::Bar {
            return Err(VmmError::BadRange);
        }
        let op = self.prepare_map(
            alloc,
            vram,
            VaPlacement::Anywhere {
                align: crate::addr::PAGE_BYTES,
            },
            runs,
            PteAttrs::default(),
            page_size,
        )?;
        match self.execute(vram, tlb, op) {
            Ok(super::Executed::Mapped(mapping, _)) => Ok(Bar1Window::new(mapping)),
            Ok(super::Executed::Done(_)) => Err(VmmError::Inconsistent),
            Err(super::ExecFailed { op, error }) => {
                let _ = self.cancel(alloc, op);
                Err(error)
            }
        }
    }

    /// [`AddressSpace::bar1_map`], returning a [`Bar1Guard`] that unmaps the window when
    /// dropped; `segs` is the rollback storage of that unmap (`Vec::new()` with `alloc`, or a
    /// [`super::FixedSlab`]) and `failure` the slot that receives a failed unmap on drop.
    ///
    /// # Errors
    ///
    /// As [`AddressSpace::bar1_map`]; nothing is mapped then.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub fn bar1_map_guarded<'a, A, W, T, G>(
        &'a mut self,
        alloc: &'a mut A,
        vram: &'a mut W,
        tlb: &'a mut T,
        runs: &[PhysRun],
        page_size: Option<PageSize>,
        segs: G,
        failure: &'a mut Option<Bar1UnmapFailure>,
    ) -> Result<Bar1Guard<'a, M, N, K, V, A, W, T, G>, VmmError>
    where
        A: PageTableAllocator + ?Sized,
        W: VramAccess + ?Sized,
        T: TlbInvalidate + ?Sized,
        G: Slab<Seg>,
    {
        let window = self.bar1_map(alloc, vram, tlb, runs, page_size)?;
        Ok(window.into_guard(self, alloc, vram, tlb, segs, failure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one bounds and alignment check of [`Bar1Span`], at its edges.
    #[test]
    fn span_access_edges() {
        let span = Bar1Span {
            va: VirtAddr::new(0x1_0000),
            len: 0x2000,
        };
        assert_eq!(span.at(0, 8), Ok(VirtAddr::new(0x1_0000)));
        assert_eq!(span.at(0x1ffc, 4), Ok(VirtAddr::new(0x1_1ffc)));
        assert_eq!(
            span.at(0x2000, 4),
            Err(Bar1Error::OutOfBounds {
                offset: 0x2000,
                size: 4,
                len: 0x2000
            })
        );
        assert_eq!(
            span.at(0x1ffc, 8),
            Err(Bar1Error::Misaligned {
                offset: 0x1ffc,
                size: 8
            })
        );
        assert_eq!(
            span.at(u64::MAX - 3, 4),
            Err(Bar1Error::OutOfBounds {
                offset: u64::MAX - 3,
                size: 4,
                len: 0x2000
            })
        );
        // A window at the very top of the VA space cannot wrap.
        let top = Bar1Span {
            va: VirtAddr::new(u64::MAX - 0xfff),
            len: u64::MAX,
        };
        assert_eq!(top.at(0xffc, 4), Ok(VirtAddr::new(u64::MAX - 3)));
        assert!(matches!(
            top.at(0x1000, 4),
            Err(Bar1Error::OutOfBounds { .. })
        ));
    }
}
