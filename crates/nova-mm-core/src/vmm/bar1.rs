//! The BAR1 user: map VRAM pages into a BAR1 address space and access them from the CPU
//! through a bounds-checked window.
//!
//! The nova series' `BarAccess` mapped one page per call with one TLB flush each, borrowed
//! everything mutably for its whole life, and unmapped page by page on drop while ignoring
//! errors (`nova-series.md` §4.7, §5 points 11 and 19). Here a window is mapped in one
//! operation (one `HUBTLB_ONLY` invalidate), accessed through [`Bar1Io`] with every offset
//! checked against the window, and unmapped by consuming it in one operation that reports its
//! error and hands the window back on failure.

use super::{
    AddressSpace, Kids, Mapping, Node, OpStats, PageTableAllocator, PhysRun, Slab, SpaceKind,
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
/// [`Bar1Window::unmap`].
#[derive(Debug)]
#[must_use = "a BAR1 window stays mapped until unmapped"]
pub struct Bar1Window {
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

impl Bar1Window {
    /// First BAR1 address of the window.
    #[must_use]
    pub fn va(&self) -> VirtAddr {
        self.mapping.va()
    }

    /// Length of the window in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.mapping.len()
    }

    /// Whether the window is empty (never).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    fn at(&self, offset: u64, size: u64) -> Result<VirtAddr, Bar1Error> {
        let len = self.len();
        if offset.checked_rem(size) != Some(0) {
            return Err(Bar1Error::Misaligned { offset, size });
        }
        match offset.checked_add(size) {
            Some(end) if end <= len => self
                .va()
                .checked_add(offset)
                .ok_or(Bar1Error::OutOfBounds { offset, size, len }),
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
            .map_err(|(m, e)| (m.map(|mapping| Bar1Window { mapping }), e))
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
            Ok(super::Executed::Mapped(mapping, _)) => Ok(Bar1Window { mapping }),
            Ok(super::Executed::Done(_)) => Err(VmmError::Inconsistent),
            Err(super::ExecFailed { op, error }) => {
                let _ = self.cancel(alloc, op);
                Err(error)
            }
        }
    }
}
