//! The read-only page-table walker: translate one VA, or visit every effective leaf of a range.
//!
//! It reads the tables from VRAM through [`VramAccess`] and trusts nothing it reads: every table
//! address is checked against the VRAM size before it is followed, reserved encodings become
//! [`WalkError::Malformed`], a table that points back at one of its ancestors becomes
//! [`WalkError::Loop`], and the number of tables visited is bounded, so a corrupt or malicious
//! image gives a typed error, never a hang or a panic. Only present tables are read, so a walk
//! over a 192 GiB image costs what its tables cost.
//!
//! Dual PD0 precedence (`mmu-formats.md` §1.5): a valid big PTE wins over the small page table;
//! a sparse or "no valid 4 KiB" big PTE blocks it; an all-zero big PTE lets the small page table
//! decide. The walker reports exactly what the MMU would use.
//!
//! # Example
//!
//! Tables written by hand (MMU v2: PD3 → PD2 → PD1 → PD0 holding a 2 MiB PTE), then
//! translated and listed; a table that points back at the root gives typed errors, not a hang.
//!
//! ```
//! use core::ops::ControlFlow;
//! use nova_mm_core::mmu::{DualPdeState, MmuFormat, PteAperture, PteMapping};
//! use nova_mm_core::vram::check_access;
//! use nova_mm_core::walk::{self, PtFormat, Translation, WalkError, WalkItem};
//! use nova_mm_core::{
//!     Chip, MmuV2, PageSize, PhysAddr, VirtAddr, VramAccess, VramAddress, VramError,
//! };
//!
//! struct Vram(Vec<u32>);
//! impl VramAccess for Vram {
//!     fn size(&self) -> u64 { self.0.len() as u64 * 4 }
//!     fn read32(&mut self, a: VramAddress) -> Result<u32, VramError> {
//!         check_access(a, 4, 4, self.size())?;
//!         Ok(self.0[(a.raw() / 4) as usize])
//!     }
//!     fn write32(&mut self, a: VramAddress, v: u32) -> Result<(), VramError> {
//!         check_access(a, 4, 4, self.size())?;
//!         self.0[(a.raw() / 4) as usize] = v;
//!         Ok(())
//!     }
//! }
//!
//! let chip = Chip::Turing;
//! let mut vram = Vram(vec![0; (8 << 20) / 4]);
//! // Root (PD3) at 0, PD2 at 0x1000, PD1 at 0x2000, PD0 at 0x3000: entry 0 of each.
//! for level in 0..3 {
//!     let next = VramAddress::new((level as u64 + 1) * 0x1000);
//!     let pde = MmuV2::upper_table(chip, level, next)?;
//!     vram.write64(VramAddress::new(level as u64 * 0x1000), pde)?;
//! }
//! // PD0 entry 1 (VA 2 MiB): a 2 MiB page at VRAM 4 MiB.
//! let page = PteMapping::new(PteAperture::Vidmem, PhysAddr::new(4 << 20));
//! let dual = MmuV2::encode_dual_pde(chip, &DualPdeState::Pte(page))?;
//! vram.write_u64s(VramAddress::new(0x3000 + 16), &dual)?;
//!
//! let root = VramAddress::new(0);
//! let va = VirtAddr::new((2 << 20) + 0x345);
//! let t = walk::translate::<MmuV2, _>(chip, &mut vram, root, va)?;
//! assert!(matches!(t, Translation::Mapped { size: PageSize::Size2M, .. }));
//! assert_eq!(t.phys(va), Some((4 << 20) + 0x345));
//! assert_eq!(
//!     walk::translate::<MmuV2, _>(chip, &mut vram, root, VirtAddr::new(0))?,
//!     Translation::Unmapped
//! );
//!
//! // PD1 entry 1 points back at the root: `translate` reports the loop.
//! vram.write64(VramAddress::new(0x2000 + 8), MmuV2::upper_table(chip, 2, root)?)?;
//! let looped = walk::translate::<MmuV2, _>(chip, &mut vram, root, VirtAddr::new(512 << 20));
//! assert_eq!(looped, Err(WalkError::Loop(root)));
//!
//! // Every effective leaf of the first GiB, in VA order; the walk reports the loop as a bad
//! // subtree and carries on.
//! let mut items = Vec::new();
//! let (start, end) = (VirtAddr::new(0), VirtAddr::new(1 << 30));
//! walk::walk_range::<MmuV2, _>(chip, &mut vram, root, start, end, |item| {
//!     items.push(item);
//!     ControlFlow::Continue(())
//! })?;
//! assert!(matches!(items[0], WalkItem::Mapped { size: PageSize::Size2M, .. }));
//! assert!(matches!(items[1], WalkItem::Bad { error: WalkError::Loop(_), .. }));
//! assert_eq!(items.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod format;

use core::ops::ControlFlow;

use crate::addr::{PageSize, PhysAddr, VirtAddr, VramAddress};
use crate::chip::Chip;
use crate::mmu::{
    DualHalf, DualPdeState, FormatError, PdeAttrs, PdeState, PdeTable, PteMapping, PteState,
    TableAperture,
};
use crate::vram::{VramAccess, VramError};

use format::{dir_entry_words, dir_table_bytes, is_dual, BIG_PT_BYTES, SMALL_PT_BYTES};
pub use format::{LeafSlot, PtFormat};

/// Why a walk failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum WalkError {
    /// The VA is beyond the MMU version's VA width.
    #[error("virtual address {0} is outside the address space")]
    VaOutOfRange(VirtAddr),
    /// A VRAM access failed.
    #[error("VRAM access failed: {0}")]
    Vram(#[from] VramError),
    /// A directory entry points outside VRAM.
    #[error("table at {addr:#x} (directory level {level}) is outside VRAM")]
    WildTable {
        /// Directory level of the entry (root = 0).
        level: u8,
        /// The table address it names.
        addr: u64,
    },
    /// A directory entry points to a table in system memory, which this walker cannot read.
    #[error("table at {addr:#x} (directory level {level}) is in system memory")]
    SysmemTable {
        /// Directory level of the entry (root = 0).
        level: u8,
        /// The table address it names.
        addr: u64,
    },
    /// An entry has a reserved encoding.
    #[error("malformed entry at {entry} (directory level {level}): {error}")]
    Malformed {
        /// Directory level holding the entry; `DIR_LEVELS` for a page table.
        level: u8,
        /// VRAM address of the entry.
        entry: VramAddress,
        /// What is wrong.
        error: FormatError,
    },
    /// A table points back at one of its ancestors.
    #[error("page-table loop through table {0}")]
    Loop(VramAddress),
    /// More tables were visited than VRAM can hold distinct tables: tables are shared.
    #[error("walk visited more tables than VRAM can hold; tables are shared")]
    TooManyTables,
}

/// What one VA translates to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Translation {
    /// Mapped by a PTE of `size` bytes whose page starts at `page_va`.
    Mapped {
        /// VA of the first byte of the page.
        page_va: VirtAddr,
        /// Page size.
        size: PageSize,
        /// The PTE.
        pte: PteMapping,
    },
    /// Sparse at the given granularity: reads give zero, writes are dropped.
    Sparse {
        /// The size of the sparse entry covering the VA (for a sparse directory entry, the
        /// span of that entry, reported as the nearest page size at or below it).
        size: PageSize,
    },
    /// Nothing maps the VA: an access faults.
    Unmapped,
}

impl Translation {
    /// The physical address `va` reaches, if mapped (the aperture and peer id are in the PTE).
    #[must_use]
    pub fn phys(&self, va: VirtAddr) -> Option<u64> {
        match self {
            Translation::Mapped { page_va, pte, .. } => {
                let off = va.offset_from(*page_va)?;
                pte.address.raw().checked_add(off)
            }
            _ => None,
        }
    }
}

/// One effective leaf reported by [`walk_range`], in VA order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WalkItem {
    /// A mapped page.
    Mapped {
        /// First VA of the page.
        va: VirtAddr,
        /// Page size.
        size: PageSize,
        /// The PTE (aperture, physical address, permissions, kind, peer id).
        pte: PteMapping,
    },
    /// A sparse range `[va, va + len)`.
    Sparse {
        /// First VA.
        va: VirtAddr,
        /// Length in bytes.
        len: u64,
    },
    /// A subtree that could not be walked; the walk continues after it.
    Bad {
        /// First VA the bad entry covers.
        va: VirtAddr,
        /// Length of the range it covers.
        len: u64,
        /// Why.
        error: WalkError,
    },
}

/// The VA span one entry at directory `level` covers, as a `PageSize` when one matches.
fn span_page_size(shift: u32) -> PageSize {
    match shift {
        s if s >= 38 => PageSize::Size256G,
        s if s >= 29 => PageSize::Size512M,
        s if s >= 21 => PageSize::Size2M,
        s if s >= 16 => PageSize::Size64K,
        _ => PageSize::Size4K,
    }
}

/// The VA width of format `M`, as the exclusive end of the address space.
#[must_use]
pub fn va_end<M: PtFormat>() -> u64 {
    1u64.checked_shl(M::VERSION.va_bits()).unwrap_or(u64::MAX)
}

/// A table pointer for the root.
fn root_ptr(root: VramAddress) -> PdeTable {
    PdeTable {
        aperture: TableAperture::Vidmem,
        address: PhysAddr::new(root.raw()),
        attrs: PdeAttrs::default(),
    }
}

/// Index of `va` in a table at directory level `level`.
fn dir_index<M: PtFormat>(level: usize, va: u64) -> u64 {
    let shift = M::dir_shift(level);
    (va >> shift) & M::dir_entries(level).wrapping_sub(1)
}

/// Checks that a table of `bytes` at `ptr` is in VRAM.
fn check_table(
    vram_size: u64,
    level: usize,
    ptr: PdeTable,
    bytes: u64,
) -> Result<VramAddress, WalkError> {
    let level = u8::try_from(level).unwrap_or(u8::MAX);
    let addr = ptr.address.raw();
    if ptr.aperture != TableAperture::Vidmem {
        return Err(WalkError::SysmemTable { level, addr });
    }
    match addr.checked_add(bytes) {
        Some(end) if end <= vram_size => Ok(VramAddress::new(addr)),
        _ => Err(WalkError::WildTable { level, addr }),
    }
}

fn entry_addr(table: VramAddress, index: u64, words: u64) -> Option<VramAddress> {
    table.checked_add(index.checked_mul(words)?.checked_mul(8)?)
}

fn malformed(level: usize, entry: VramAddress, error: FormatError) -> WalkError {
    WalkError::Malformed {
        level: u8::try_from(level).unwrap_or(u8::MAX),
        entry,
        error,
    }
}

fn oob(addr: VramAddress) -> WalkError {
    WalkError::Vram(VramError::OutOfRange { addr, len: 8 })
}

/// Translates one VA through the tables rooted at `root`.
///
/// # Errors
///
/// [`WalkError`] when the VA is out of range, VRAM cannot be read, or the tables are corrupt.
pub fn translate<M: PtFormat, V: VramAccess + ?Sized>(
    chip: Chip,
    vram: &mut V,
    root: VramAddress,
    va: VirtAddr,
) -> Result<Translation, WalkError> {
    let v = va.raw();
    if v >= va_end::<M>() {
        return Err(WalkError::VaOutOfRange(va));
    }
    let size = vram.size();
    let mut table = check_table(size, 0, root_ptr(root), dir_table_bytes::<M>(0))?;
    // The directories entered so far (root first), to report a table that points back at one
    // of its ancestors as a loop, as `walk_range` does.
    let mut path = [u64::MAX; 8];
    for level in 0..M::DIR_LEVELS {
        if let Some(slot) = path.get_mut(level) {
            *slot = table.raw();
        }
        let idx = dir_index::<M>(level, v);
        let words = dir_entry_words::<M>(level);
        let ea = entry_addr(table, idx, words).ok_or(oob(table))?;
        let page_of = |shift: u32| VirtAddr::new(v & !((1u64 << shift).wrapping_sub(1)));
        if is_dual::<M>(level) {
            let mut raw = [0u64; 2];
            vram.read_u64s(ea, &mut raw)?;
            let st = M::decode_dual_pde(chip, raw).map_err(|e| malformed(level, ea, e))?;
            return match st {
                DualPdeState::Pte(pte) => Ok(Translation::Mapped {
                    page_va: page_of(21),
                    size: PageSize::Size2M,
                    pte,
                }),
                DualPdeState::Sparse => Ok(Translation::Sparse {
                    size: PageSize::Size2M,
                }),
                DualPdeState::Tables { big, small } => translate_pt::<M, V>(
                    chip,
                    vram,
                    level,
                    big.table().copied(),
                    small.table().copied(),
                    v,
                    page_of,
                ),
            };
        }
        let raw = vram.read64(ea)?;
        match M::decode_upper(chip, level, raw).map_err(|e| malformed(level, ea, e))? {
            PdeState::Invalid => return Ok(Translation::Unmapped),
            PdeState::Sparse => {
                return Ok(Translation::Sparse {
                    size: span_page_size(M::dir_shift(level)),
                })
            }
            PdeState::Pte(pte) => {
                let size = M::dir_leaf_size(level).ok_or(malformed(
                    level,
                    ea,
                    FormatError::WrongLevel {
                        level: M::dir_level(level),
                    },
                ))?;
                return Ok(Translation::Mapped {
                    page_va: page_of(size.shift()),
                    size,
                    pte,
                });
            }
            PdeState::Table(ptr) => {
                let next = level.saturating_add(1);
                table = check_table(size, next, ptr, dir_table_bytes::<M>(next))?;
                if path.get(..next).is_some_and(|p| p.contains(&table.raw())) {
                    return Err(WalkError::Loop(table));
                }
            }
        }
    }
    // DIR_LEVELS ends with the dual level, which always returns above.
    Err(malformed(
        M::DIR_LEVELS,
        table,
        FormatError::WrongLevel {
            level: M::dir_level(0),
        },
    ))
}

fn translate_pt<M: PtFormat, V: VramAccess + ?Sized>(
    chip: Chip,
    vram: &mut V,
    level: usize,
    big: Option<PdeTable>,
    small: Option<PdeTable>,
    v: u64,
    page_of: impl Fn(u32) -> VirtAddr,
) -> Result<Translation, WalkError> {
    let size = vram.size();
    let pt_level = level.saturating_add(1);
    if let Some(b) = big {
        let t = check_table(size, pt_level, b, BIG_PT_BYTES)?;
        let ea = entry_addr(t, (v >> 16) & 31, 1).ok_or(oob(t))?;
        match M::decode_leaf(chip, vram.read64(ea)?, true)
            .map_err(|e| malformed(pt_level, ea, e))?
        {
            PteState::Valid(pte) => {
                return Ok(Translation::Mapped {
                    page_va: page_of(16),
                    size: PageSize::Size64K,
                    pte,
                })
            }
            PteState::Sparse => {
                return Ok(Translation::Sparse {
                    size: PageSize::Size64K,
                })
            }
            PteState::NoValid4K | PteState::MappingNowhere => return Ok(Translation::Unmapped),
            PteState::Invalid => {}
        }
    }
    let Some(s) = small else {
        return Ok(Translation::Unmapped);
    };
    let t = check_table(size, pt_level, s, SMALL_PT_BYTES)?;
    let ea = entry_addr(t, (v >> 12) & 511, 1).ok_or(oob(t))?;
    Ok(
        match M::decode_leaf(chip, vram.read64(ea)?, false)
            .map_err(|e| malformed(pt_level, ea, e))?
        {
            PteState::Valid(pte) => Translation::Mapped {
                page_va: page_of(12),
                size: PageSize::Size4K,
                pte,
            },
            PteState::Sparse => Translation::Sparse {
                size: PageSize::Size4K,
            },
            PteState::NoValid4K | PteState::MappingNowhere | PteState::Invalid => {
                Translation::Unmapped
            }
        },
    )
}

/// Counters of one [`walk_range`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WalkStats {
    /// Tables read.
    pub tables: u64,
    /// Leaves reported (mapped + sparse).
    pub leaves: u64,
}

/// How many entries the walker reads at once (a stack buffer; small enough for a kernel stack
/// at six levels of recursion).
const CHUNK: usize = 32;

struct RangeWalk<'v, V: ?Sized, F> {
    chip: Chip,
    vram: &'v mut V,
    visit: F,
    start: u64,
    end: u64,
    stats: WalkStats,
    budget: u64,
    path: [u64; 8],
}

/// Visits every effective leaf PTE and sparse entry in `[start, end)` in VA order, through the
/// tables rooted at `root`, honouring dual-PD0 precedence. Items may extend beyond the range
/// when a page straddles its ends. A subtree that cannot be walked (wild, sysmem or malformed
/// entry, loop) is reported as [`WalkItem::Bad`] and skipped. The visitor may stop the walk by
/// returning `ControlFlow::Break`.
///
/// # Errors
///
/// [`WalkError::VaOutOfRange`] for a range beyond the VA width, [`WalkError::Vram`] when the
/// root cannot be read, [`WalkError::TooManyTables`] when the tables are shared so much that
/// the walk would not end in reasonable time.
pub fn walk_range<M: PtFormat, V: VramAccess + ?Sized>(
    chip: Chip,
    vram: &mut V,
    root: VramAddress,
    start: VirtAddr,
    end: VirtAddr,
    visit: impl FnMut(WalkItem) -> ControlFlow<()>,
) -> Result<WalkStats, WalkError> {
    if end.raw() > va_end::<M>() {
        return Err(WalkError::VaOutOfRange(end));
    }
    if start >= end {
        return Ok(WalkStats::default());
    }
    let size = vram.size();
    let root = check_table(size, 0, root_ptr(root), dir_table_bytes::<M>(0))?;
    let mut w = RangeWalk {
        chip,
        vram,
        visit,
        start: start.raw(),
        end: end.raw(),
        stats: WalkStats::default(),
        // Each distinct table takes at least 256 bytes of VRAM.
        budget: (size / BIG_PT_BYTES).saturating_add(1),
        path: [u64::MAX; 8],
    };
    let _ = w.dir::<M>(0, root, 0)?;
    Ok(w.stats)
}

impl<V: VramAccess + ?Sized, F: FnMut(WalkItem) -> ControlFlow<()>> RangeWalk<'_, V, F> {
    fn emit(&mut self, item: WalkItem) -> ControlFlow<()> {
        if !matches!(item, WalkItem::Bad { .. }) {
            self.stats.leaves = self.stats.leaves.saturating_add(1);
        }
        (self.visit)(item)
    }

    /// Counts a table visit; `Ok(true)` if `table` is one of its own ancestors (a loop).
    fn enter(&mut self, level: usize, table: VramAddress) -> Result<bool, WalkError> {
        self.stats.tables = self.stats.tables.saturating_add(1);
        if self.stats.tables > self.budget {
            return Err(WalkError::TooManyTables);
        }
        if self
            .path
            .get(..level)
            .is_some_and(|p| p.contains(&table.raw()))
        {
            return Ok(true);
        }
        if let Some(slot) = self.path.get_mut(level) {
            *slot = table.raw();
        }
        Ok(false)
    }

    /// Walks the directory `table` at `level` whose first entry covers VA `base`.
    fn dir<M: PtFormat>(
        &mut self,
        level: usize,
        table: VramAddress,
        base: u64,
    ) -> Result<ControlFlow<()>, WalkError> {
        if self.enter(level, table)? {
            return Ok(self.emit(WalkItem::Bad {
                va: VirtAddr::new(base),
                len: M::dir_entries(level).saturating_mul(1u64 << M::dir_shift(level)),
                error: WalkError::Loop(table),
            }));
        }
        let shift = M::dir_shift(level);
        let span = 1u64 << shift;
        let entries = M::dir_entries(level);
        let words = dir_entry_words::<M>(level);
        let first = self.start.saturating_sub(base) >> shift;
        let last_excl = (self
            .end
            .saturating_sub(base)
            .saturating_add(span.wrapping_sub(1))
            >> shift)
            .min(entries);
        let mut i = first;
        let mut buf = [0u64; CHUNK];
        while i < last_excl {
            let per_chunk = (CHUNK as u64).checked_div(words).unwrap_or(1);
            let n = per_chunk.min(last_excl.saturating_sub(i));
            let ea = entry_addr(table, i, words).ok_or(oob(table))?;
            let nwords = usize::try_from(n.saturating_mul(words)).unwrap_or(CHUNK);
            let chunk = buf.get_mut(..nwords).unwrap_or(&mut []);
            self.vram.read_u64s(ea, chunk)?;
            for k in 0..n {
                let idx = i.saturating_add(k);
                let va = base.saturating_add(idx.saturating_mul(span));
                let ka = usize::try_from(k.saturating_mul(words)).unwrap_or(0);
                let lo = buf.get(ka).copied().unwrap_or(0);
                let hi = buf.get(ka.saturating_add(1)).copied().unwrap_or(0);
                let eaddr = entry_addr(table, idx, words).ok_or(oob(table))?;
                let flow = if is_dual::<M>(level) {
                    self.dual_entry::<M>(level, eaddr, [lo, hi], va)?
                } else {
                    self.upper_entry::<M>(level, eaddr, lo, va, span)?
                };
                if flow.is_break() {
                    return Ok(flow);
                }
            }
            i = i.saturating_add(n);
        }
        Ok(ControlFlow::Continue(()))
    }

    fn upper_entry<M: PtFormat>(
        &mut self,
        level: usize,
        eaddr: VramAddress,
        raw: u64,
        va: u64,
        span: u64,
    ) -> Result<ControlFlow<()>, WalkError> {
        let bad = |error| WalkItem::Bad {
            va: VirtAddr::new(va),
            len: span,
            error,
        };
        let st = match M::decode_upper(self.chip, level, raw) {
            Ok(st) => st,
            Err(e) => return Ok(self.emit(bad(malformed(level, eaddr, e)))),
        };
        Ok(match st {
            PdeState::Invalid => ControlFlow::Continue(()),
            PdeState::Sparse => self.emit(WalkItem::Sparse {
                va: VirtAddr::new(va),
                len: span,
            }),
            PdeState::Pte(pte) => match M::dir_leaf_size(level) {
                Some(size) => self.emit(WalkItem::Mapped {
                    va: VirtAddr::new(va),
                    size,
                    pte,
                }),
                None => self.emit(bad(malformed(
                    level,
                    eaddr,
                    FormatError::WrongLevel {
                        level: M::dir_level(level),
                    },
                ))),
            },
            PdeState::Table(ptr) => {
                let next = level.saturating_add(1);
                match check_table(self.vram.size(), next, ptr, dir_table_bytes::<M>(next)) {
                    Ok(t) => self.dir::<M>(next, t, va)?,
                    Err(e) => self.emit(bad(e)),
                }
            }
        })
    }

    fn dual_entry<M: PtFormat>(
        &mut self,
        level: usize,
        eaddr: VramAddress,
        raw: [u64; 2],
        va: u64,
    ) -> Result<ControlFlow<()>, WalkError> {
        let bad = |error| WalkItem::Bad {
            va: VirtAddr::new(va),
            len: 1 << 21,
            error,
        };
        let st = match M::decode_dual_pde(self.chip, raw) {
            Ok(st) => st,
            Err(e) => return Ok(self.emit(bad(malformed(level, eaddr, e)))),
        };
        Ok(match st {
            DualPdeState::Pte(pte) => self.emit(WalkItem::Mapped {
                va: VirtAddr::new(va),
                size: PageSize::Size2M,
                pte,
            }),
            DualPdeState::Sparse => self.emit(WalkItem::Sparse {
                va: VirtAddr::new(va),
                len: 1 << 21,
            }),
            DualPdeState::Tables { big, small } => {
                self.page_tables::<M>(level, half(big), half(small), va)?
            }
        })
    }

    fn page_tables<M: PtFormat>(
        &mut self,
        level: usize,
        big: Option<PdeTable>,
        small: Option<PdeTable>,
        va: u64,
    ) -> Result<ControlFlow<()>, WalkError> {
        let pt_level = level.saturating_add(1);
        let size = self.vram.size();
        let mut big_words = [0u64; 32];
        let mut big_table = None;
        if let Some(b) = big {
            match check_table(size, pt_level, b, BIG_PT_BYTES) {
                Ok(t) => {
                    self.stats.tables = self.stats.tables.saturating_add(1);
                    self.vram.read_u64s(t, &mut big_words)?;
                    big_table = Some(t);
                }
                Err(e) => {
                    return Ok(self.emit(WalkItem::Bad {
                        va: VirtAddr::new(va),
                        len: 1 << 21,
                        error: e,
                    }))
                }
            }
        }
        let mut small_table = None;
        if let Some(s) = small {
            match check_table(size, pt_level, s, SMALL_PT_BYTES) {
                Ok(t) => {
                    self.stats.tables = self.stats.tables.saturating_add(1);
                    small_table = Some(t);
                }
                Err(e) => {
                    return Ok(self.emit(WalkItem::Bad {
                        va: VirtAddr::new(va),
                        len: 1 << 21,
                        error: e,
                    }))
                }
            }
        }
        if self.stats.tables > self.budget {
            return Err(WalkError::TooManyTables);
        }
        let first = self.start.saturating_sub(va) >> 16;
        let last_excl = (self.end.saturating_sub(va).saturating_add(0xffff) >> 16).min(32);
        for j in first..last_excl {
            let bva = va.saturating_add(j << 16);
            if let Some(bt) = big_table {
                let raw = big_words
                    .get(usize::try_from(j).unwrap_or(0))
                    .copied()
                    .unwrap_or(0);
                let ea = entry_addr(bt, j, 1).ok_or(oob(bt))?;
                let flow = match M::decode_leaf(self.chip, raw, true) {
                    Err(e) => self.emit(WalkItem::Bad {
                        va: VirtAddr::new(bva),
                        len: 1 << 16,
                        error: malformed(pt_level, ea, e),
                    }),
                    Ok(PteState::Valid(pte)) => self.emit(WalkItem::Mapped {
                        va: VirtAddr::new(bva),
                        size: PageSize::Size64K,
                        pte,
                    }),
                    Ok(PteState::Sparse) => self.emit(WalkItem::Sparse {
                        va: VirtAddr::new(bva),
                        len: 1 << 16,
                    }),
                    // Block the small page table.
                    Ok(PteState::NoValid4K | PteState::MappingNowhere) => ControlFlow::Continue(()),
                    Ok(PteState::Invalid) => {
                        self.small_slots::<M>(pt_level, small_table, j, bva)?
                    }
                };
                if flow.is_break() {
                    return Ok(flow);
                }
            } else if self
                .small_slots::<M>(pt_level, small_table, j, bva)?
                .is_break()
            {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The 16 small PTEs under big slot `j`.
    fn small_slots<M: PtFormat>(
        &mut self,
        pt_level: usize,
        small: Option<VramAddress>,
        j: u64,
        bva: u64,
    ) -> Result<ControlFlow<()>, WalkError> {
        let Some(t) = small else {
            return Ok(ControlFlow::Continue(()));
        };
        let mut words = [0u64; 16];
        let ea = entry_addr(t, j.saturating_mul(16), 1).ok_or(oob(t))?;
        self.vram.read_u64s(ea, &mut words)?;
        for (k, raw) in (0u64..).zip(words) {
            let sva = bva.saturating_add(k << 12);
            if sva.saturating_add(1 << 12) <= self.start || sva >= self.end {
                continue;
            }
            let flow = match M::decode_leaf(self.chip, raw, false) {
                Err(e) => self.emit(WalkItem::Bad {
                    va: VirtAddr::new(sva),
                    len: 1 << 12,
                    error: malformed(
                        pt_level,
                        ea.checked_add(k.saturating_mul(8)).unwrap_or(ea),
                        e,
                    ),
                }),
                Ok(PteState::Valid(pte)) => self.emit(WalkItem::Mapped {
                    va: VirtAddr::new(sva),
                    size: PageSize::Size4K,
                    pte,
                }),
                Ok(PteState::Sparse) => self.emit(WalkItem::Sparse {
                    va: VirtAddr::new(sva),
                    len: 1 << 12,
                }),
                Ok(_) => ControlFlow::Continue(()),
            };
            if flow.is_break() {
                return Ok(flow);
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

fn half(h: DualHalf) -> Option<PdeTable> {
    h.table().copied()
}

#[cfg(test)]
mod tests;
