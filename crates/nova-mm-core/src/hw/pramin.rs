//! The PRAMIN window: VRAM reached through a 1 MiB aperture of BAR0 (`mmu-formats.md` §3,
//! `nova-series.md` §4.1).
//!
//! [`Pramin`] owns the window register of its chip (the only code that writes it) and moves the
//! window in 64 KiB steps, only when an access falls outside the current 1 MiB window. It caches
//! the window position, so a run of page-table writes costs one or two MMIO writes per 64-bit
//! word and one register write per MiB. Exclusive use is the `&mut self` of every accessor; the
//! owner decides the lock (review point 17), none is buried here.
//!
//! Where a new window is placed: on the 1 MiB-aligned block holding the accessed address, as
//! nouveau does. Then a move happens only when an access enters another 1 MiB block than the
//! previous access, whatever the direction: page tables allocated top-down (the buddy
//! allocator's default for them) are written in descending address order for ascending VA, and
//! a window placed at the address rounded down to 64 KiB (full 1 MiB ahead of an ascending run)
//! moved every 64 KiB there (38 moves instead of 8 for a 1 GiB map of 4 KiB pages,
//! `tests/tests/vmm_regs_counts.rs`). A 4 KiB table never straddles a 1 MiB boundary.
//!
//! PRAMIN writes are posted; a read through the aperture orders them ("snooped and redirected",
//! RM `kbusFlushSingle_GM107`). [`Pramin::flush`] does that read, and a TLB invalidate must be
//! preceded by one ([`Flush`], used by [`super::tlb_regs::TlbRegs`]).

use crate::addr::VramAddress;
use crate::chip::Chip;
use crate::vram::{check_access, VramAccess, VramError};

use super::hal::{Hal, WindowRegister, PRAMIN_APERTURE, PRAMIN_BASE_SHIFT, PRAMIN_SIZE};
use super::mmio::{Mmio, MmioError};

/// Something that makes earlier VRAM writes visible to the GPU before a TLB invalidate.
pub trait Flush {
    /// Orders every earlier write before what follows.
    ///
    /// # Errors
    ///
    /// The MMIO access failed.
    fn flush(&mut self) -> Result<(), MmioError>;
}

impl<F: Flush + ?Sized> Flush for &mut F {
    fn flush(&mut self) -> Result<(), MmioError> {
        (**self).flush()
    }
}

/// A flush that does nothing, for embedders whose VRAM writes do not go through PRAMIN (e.g. a
/// write-combined BAR2 mapping flushed elsewhere) or for register-only tests.
#[derive(Clone, Copy, Default, Debug)]
pub struct NoFlush;

impl Flush for NoFlush {
    fn flush(&mut self) -> Result<(), MmioError> {
        Ok(())
    }
}

/// A flush that reads one word of the PRAMIN aperture through a BAR it shares with a [`Pramin`].
///
/// Any PRAMIN read orders all earlier PRAMIN writes, whatever the window position, so the TLB
/// path does not need to own the [`Pramin`]: both hold the same `&Bar`.
#[derive(Clone, Copy, Debug)]
pub struct PraminReadBack<M> {
    mmio: M,
}

impl<M: Mmio> PraminReadBack<M> {
    /// A read-back flush through `mmio`.
    pub const fn new(mmio: M) -> Self {
        PraminReadBack { mmio }
    }
}

impl<M: Mmio> Flush for PraminReadBack<M> {
    fn flush(&mut self) -> Result<(), MmioError> {
        self.mmio.read32(PRAMIN_APERTURE).map(|_| ())
    }
}

/// Counters of the MMIO work done by a [`Pramin`].
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct PraminStats {
    /// MMIO reads issued (a native 64-bit read counts once).
    pub mmio_reads: u64,
    /// MMIO writes issued through the aperture (a native 64-bit write counts once).
    pub mmio_writes: u64,
    /// Writes to the window register.
    pub window_moves: u64,
    /// Read-backs issued by [`Pramin::flush`].
    pub flushes: u64,
}

/// Why a [`Pramin`] could not be created.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PraminError {
    /// The VRAM size is zero.
    #[error("the VRAM size is zero")]
    NoVram,
    /// The VRAM extends beyond what the chip's window register can reach.
    #[error("{vram_size:#x} bytes of VRAM exceed the PRAMIN window reach of {reach:#x} bytes")]
    BeyondReach {
        /// The VRAM size given.
        vram_size: u64,
        /// The reach of the window register.
        reach: u64,
    },
    /// The BAR is too small to hold the PRAMIN aperture or the window register.
    #[error("BAR0 of {bar_size:#x} bytes does not hold the PRAMIN aperture and window register")]
    BarTooSmall {
        /// The BAR size.
        bar_size: u64,
    },
}

/// VRAM access through the PRAMIN window of BAR0.
#[derive(Debug)]
pub struct Pramin<M> {
    mmio: M,
    window: WindowRegister,
    vram_size: u64,
    /// VRAM address of the window, when known.
    base: Option<u64>,
    use_64: bool,
    dirty: bool,
    stats: PraminStats,
}

impl<M: Mmio> Pramin<M> {
    /// A PRAMIN accessor for `chip` through `mmio`, covering VRAM addresses `0..vram_size`.
    ///
    /// The window position is unknown until the first access, which programs it. 64-bit
    /// accesses are used when `mmio` has native 64-bit MMIO.
    ///
    /// # Errors
    ///
    /// [`PraminError`] when `vram_size` is zero or beyond the window register's reach, or the BAR
    /// does not contain the aperture.
    pub fn new(mmio: M, chip: Chip, vram_size: u64) -> Result<Self, PraminError> {
        let window = Hal::new(chip).window_register();
        if vram_size == 0 {
            return Err(PraminError::NoVram);
        }
        if vram_size > window.reach() {
            return Err(PraminError::BeyondReach {
                vram_size,
                reach: window.reach(),
            });
        }
        let bar_size = mmio.bar_size();
        let aperture_end = u64::from(PRAMIN_APERTURE).saturating_add(PRAMIN_SIZE);
        let reg_end = u64::from(window.offset).saturating_add(4);
        if bar_size < aperture_end || bar_size < reg_end {
            return Err(PraminError::BarTooSmall { bar_size });
        }
        let use_64 = mmio.has_native_64();
        Ok(Pramin {
            mmio,
            window,
            vram_size,
            base: None,
            use_64,
            dirty: false,
            stats: PraminStats::default(),
        })
    }

    /// Uses (or stops using) single 64-bit MMIO accesses for 64-bit words. Turning it on has no
    /// effect when the provider has no native 64-bit MMIO.
    pub fn set_use_64bit(&mut self, on: bool) {
        self.use_64 = on && self.mmio.has_native_64();
    }

    /// Whether 64-bit words are written with one MMIO access.
    #[must_use]
    pub fn uses_64bit(&self) -> bool {
        self.use_64
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> PraminStats {
        self.stats
    }

    /// Resets the counters.
    pub fn reset_stats(&mut self) {
        self.stats = PraminStats::default();
    }

    /// The VRAM address of the current window, if it is known.
    #[must_use]
    pub fn window_base(&self) -> Option<VramAddress> {
        self.base.map(VramAddress::new)
    }

    /// The window register this accessor programs.
    #[must_use]
    pub fn window_register(&self) -> WindowRegister {
        self.window
    }

    /// The MMIO provider.
    #[must_use]
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// Gives the MMIO provider back.
    pub fn into_inner(self) -> M {
        self.mmio
    }

    /// Forgets the cached window position, so the next access reprograms the register. Call it
    /// when something else may have moved the window (e.g. after a GPU reset).
    pub fn invalidate_window_cache(&mut self) {
        self.base = None;
    }

    /// Makes every earlier write through the window visible (reads one aperture word back). Does
    /// nothing when nothing was written since the last flush.
    ///
    /// # Errors
    ///
    /// [`VramError::Backend`] or [`VramError::DeviceGone`] when the read fails.
    pub fn flush(&mut self) -> Result<(), VramError> {
        if !self.dirty {
            return Ok(());
        }
        self.stats.flushes = self.stats.flushes.saturating_add(1);
        self.count_read();
        self.mmio.read32(PRAMIN_APERTURE)?;
        self.dirty = false;
        Ok(())
    }

    /// Reads the byte at `addr`.
    ///
    /// # Errors
    ///
    /// Out of range, or an MMIO failure.
    pub fn read8(&mut self, addr: VramAddress) -> Result<u8, VramError> {
        let off = self.locate(addr, 1)?;
        self.count_read();
        Ok(self.mmio.read8(off)?)
    }

    /// Reads the 16-bit word at `addr` (2-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or an MMIO failure.
    pub fn read16(&mut self, addr: VramAddress) -> Result<u16, VramError> {
        let off = self.locate(addr, 2)?;
        self.count_read();
        Ok(self.mmio.read16(off)?)
    }

    /// Writes the byte at `addr`. PRAMIN accepts byte writes; the MMIO provider must too.
    ///
    /// # Errors
    ///
    /// Out of range, or an MMIO failure (including a provider without 8-bit writes).
    pub fn write8(&mut self, addr: VramAddress, value: u8) -> Result<(), VramError> {
        let off = self.locate(addr, 1)?;
        self.count_write();
        Ok(self.mmio.write8(off, value)?)
    }

    /// Writes the 16-bit word at `addr` (2-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or an MMIO failure (including a provider without 16-bit
    /// writes).
    pub fn write16(&mut self, addr: VramAddress, value: u16) -> Result<(), VramError> {
        let off = self.locate(addr, 2)?;
        self.count_write();
        Ok(self.mmio.write16(off, value)?)
    }

    /// The lower layer of review point 17: a fixed window at `base` (a multiple of 64 KiB),
    /// addressed by offset, that never moves while it is borrowed. [`VramAccess`] on
    /// [`Pramin`] is the auto-repositioning layer above it.
    ///
    /// # Errors
    ///
    /// [`VramError::Misaligned`] when `base` is not 64 KiB aligned, [`VramError::OutOfRange`]
    /// when it is not inside VRAM, or an MMIO failure moving the window.
    pub fn window_at(&mut self, base: VramAddress) -> Result<PraminWindow<'_, M>, VramError> {
        let align = 1u64 << PRAMIN_BASE_SHIFT;
        check_access(base, 1, align, self.vram_size).map_err(|e| match e {
            VramError::Misaligned { addr, .. } => VramError::Misaligned { addr, align },
            other => other,
        })?;
        if self.base != Some(base.raw()) {
            self.move_window(base.raw())?;
        }
        let len = self.vram_size.saturating_sub(base.raw()).min(PRAMIN_SIZE);
        Ok(PraminWindow {
            pramin: self,
            base: base.raw(),
            len,
        })
    }

    fn count_read(&mut self) {
        self.stats.mmio_reads = self.stats.mmio_reads.saturating_add(1);
    }

    fn count_write(&mut self) {
        self.stats.mmio_writes = self.stats.mmio_writes.saturating_add(1);
        self.dirty = true;
    }

    /// Checks an access of `width` bytes at `addr` (aligned to `width`) and returns its BAR0
    /// offset, moving the window if needed.
    fn locate(&mut self, addr: VramAddress, width: u64) -> Result<u32, VramError> {
        check_access(addr, width, width, self.vram_size)?;
        self.aperture_offset(addr.raw())
    }

    /// The BAR0 offset of VRAM address `a` (already checked), moving the window when `a` is not
    /// inside the current one. An aligned access of at most 8 bytes never crosses the window end,
    /// which is a multiple of 64 KiB.
    fn aperture_offset(&mut self, a: u64) -> Result<u32, VramError> {
        let base = match self.base {
            Some(b) if a >= b && a.wrapping_sub(b) < PRAMIN_SIZE => b,
            _ => self.move_window(a)?,
        };
        let inside = u32::try_from(a.wrapping_sub(base)).map_err(|_| oob(a))?;
        PRAMIN_APERTURE.checked_add(inside).ok_or_else(|| oob(a))
    }

    /// Moves the window to the 1 MiB-aligned block holding `a` (a multiple of 64 KiB too).
    fn move_window(&mut self, a: u64) -> Result<u64, VramError> {
        let base = a & !(PRAMIN_SIZE.wrapping_sub(1));
        let value = self.window.encode(base).ok_or_else(|| oob(a))?;
        self.base = None;
        self.stats.window_moves = self.stats.window_moves.saturating_add(1);
        self.mmio.write32(self.window.offset, value)?;
        self.base = Some(base);
        Ok(base)
    }

    /// Bytes left in the current window from `a` (which is inside it).
    fn window_left(&self, a: u64) -> u64 {
        match self.base {
            Some(b) => b.saturating_add(PRAMIN_SIZE).saturating_sub(a),
            None => 0,
        }
    }

    fn write_word(&mut self, off: u32, w: u64) -> Result<(), VramError> {
        if self.use_64 {
            self.count_write();
            self.mmio.write64(off, w)?;
        } else {
            let hi_off = off.checked_add(4).ok_or(VramError::Backend(-5))?;
            let [l0, l1, l2, l3, h0, h1, h2, h3] = w.to_le_bytes();
            self.count_write();
            self.mmio
                .write32(off, u32::from_le_bytes([l0, l1, l2, l3]))?;
            self.count_write();
            self.mmio
                .write32(hi_off, u32::from_le_bytes([h0, h1, h2, h3]))?;
        }
        Ok(())
    }

    fn read_word(&mut self, off: u32) -> Result<u64, VramError> {
        if self.use_64 {
            self.count_read();
            Ok(self.mmio.read64(off)?)
        } else {
            let hi_off = off.checked_add(4).ok_or(VramError::Backend(-5))?;
            self.count_read();
            let lo = self.mmio.read32(off)?;
            self.count_read();
            let hi = self.mmio.read32(hi_off)?;
            Ok(u64::from(lo) | (u64::from(hi) << 32))
        }
    }

    /// Runs `f(bar_offset, index)` for `count` consecutive 64-bit words from `addr` (already
    /// checked), grouped by window: one window check per window, not per word.
    fn for_each_word(
        &mut self,
        addr: VramAddress,
        count: u64,
        mut f: impl FnMut(&mut Self, u32, u64) -> Result<(), VramError>,
    ) -> Result<(), VramError> {
        let mut a = addr.raw();
        let mut done = 0u64;
        while done < count {
            let off = self.aperture_offset(a)?;
            let in_window = self.window_left(a) / 8;
            let n = in_window.min(count.saturating_sub(done));
            let mut o = off;
            for i in 0..n {
                f(self, o, done.saturating_add(i))?;
                o = o.checked_add(8).ok_or_else(|| oob(a))?;
            }
            done = done.saturating_add(n);
            a = a.saturating_add(n.saturating_mul(8));
            if n == 0 {
                // Cannot happen for a checked, aligned run; never loop forever.
                return Err(oob(a));
            }
        }
        Ok(())
    }
}

/// A PRAMIN window held at one position (see [`Pramin::window_at`]).
#[derive(Debug)]
pub struct PraminWindow<'a, M> {
    pramin: &'a mut Pramin<M>,
    base: u64,
    len: u64,
}

impl<M: Mmio> PraminWindow<'_, M> {
    /// VRAM address of the window's first byte.
    #[must_use]
    pub fn base(&self) -> VramAddress {
        VramAddress::new(self.base)
    }

    /// Bytes the window covers: 1 MiB, or less at the top of VRAM.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window covers nothing (never, for a window inside VRAM).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// BAR0 offset of an access of `width` bytes at window offset `off`.
    fn at(&self, off: u32, width: u64) -> Result<u32, VramError> {
        let addr = VramAddress::new(self.base.saturating_add(u64::from(off)));
        check_access(VramAddress::new(u64::from(off)), width, width, self.len).map_err(
            |e| match e {
                VramError::Misaligned { align, .. } => VramError::Misaligned { addr, align },
                _ => VramError::OutOfRange { addr, len: width },
            },
        )?;
        PRAMIN_APERTURE
            .checked_add(off)
            .ok_or(VramError::OutOfRange { addr, len: width })
    }

    /// Reads the 32-bit word at window offset `off`.
    ///
    /// # Errors
    ///
    /// Outside the window, misaligned, or an MMIO failure.
    pub fn read32(&mut self, off: u32) -> Result<u32, VramError> {
        let o = self.at(off, 4)?;
        self.pramin.count_read();
        Ok(self.pramin.mmio.read32(o)?)
    }

    /// Writes the 32-bit word at window offset `off`.
    ///
    /// # Errors
    ///
    /// Outside the window, misaligned, or an MMIO failure.
    pub fn write32(&mut self, off: u32, value: u32) -> Result<(), VramError> {
        let o = self.at(off, 4)?;
        self.pramin.count_write();
        Ok(self.pramin.mmio.write32(o, value)?)
    }

    /// Reads the 64-bit word at window offset `off`.
    ///
    /// # Errors
    ///
    /// Outside the window, misaligned, or an MMIO failure.
    pub fn read64(&mut self, off: u32) -> Result<u64, VramError> {
        let o = self.at(off, 8)?;
        self.pramin.read_word(o)
    }

    /// Writes the 64-bit word at window offset `off`.
    ///
    /// # Errors
    ///
    /// Outside the window, misaligned, or an MMIO failure.
    pub fn write64(&mut self, off: u32, value: u64) -> Result<(), VramError> {
        let o = self.at(off, 8)?;
        self.pramin.write_word(o, value)
    }
}

fn oob(a: u64) -> VramError {
    VramError::OutOfRange {
        addr: VramAddress::new(a),
        len: 8,
    }
}

fn run_len(addr: VramAddress, n: usize) -> Result<u64, VramError> {
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(8))
        .ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })
}

impl<M: Mmio> VramAccess for Pramin<M> {
    fn size(&self) -> u64 {
        self.vram_size
    }

    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        let off = self.locate(addr, 4)?;
        self.count_read();
        Ok(self.mmio.read32(off)?)
    }

    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        let off = self.locate(addr, 4)?;
        self.count_write();
        Ok(self.mmio.write32(off, value)?)
    }

    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        let off = self.locate(addr, 8)?;
        self.read_word(off)
    }

    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        let off = self.locate(addr, 8)?;
        self.write_word(off, value)
    }

    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        let len = run_len(addr, out.len())?;
        check_access(addr, len, 8, self.vram_size)?;
        let count = len / 8;
        self.for_each_word(addr, count, |s, off, i| {
            let w = s.read_word(off)?;
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| out.get_mut(i))
                .ok_or(VramError::Backend(-5))?;
            *slot = w;
            Ok(())
        })
    }

    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        let len = run_len(addr, words.len())?;
        check_access(addr, len, 8, self.vram_size)?;
        let count = len / 8;
        self.for_each_word(addr, count, |s, off, i| {
            let w = usize::try_from(i)
                .ok()
                .and_then(|i| words.get(i))
                .copied()
                .ok_or(VramError::Backend(-5))?;
            s.write_word(off, w)
        })
    }

    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        let len = count.checked_mul(8).ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        check_access(addr, len, 8, self.vram_size)?;
        self.for_each_word(addr, count, |s, off, _| s.write_word(off, value))
    }
}

impl<M: Mmio> Flush for Pramin<M> {
    fn flush(&mut self) -> Result<(), MmioError> {
        if !self.dirty {
            return Ok(());
        }
        self.stats.flushes = self.stats.flushes.saturating_add(1);
        self.count_read();
        self.mmio.read32(PRAMIN_APERTURE)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::mmio::check_mmio;
    use core::cell::{Cell, RefCell};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    extern crate std;

    /// A register model of BAR0 with a window register and sparse byte-addressed VRAM.
    struct TestBar {
        window: WindowRegister,
        reg: Cell<u32>,
        /// 4 KiB pages, allocated on first write.
        vram: RefCell<BTreeMap<u64, std::boxed::Box<[u8; 4096]>>>,
        native64: bool,
        writes: Cell<u64>,
        reads: Cell<u64>,
        reg_writes: Cell<u64>,
    }

    impl TestBar {
        fn new(chip: Chip, native64: bool) -> Self {
            TestBar {
                window: Hal::new(chip).window_register(),
                reg: Cell::new(0),
                vram: RefCell::new(BTreeMap::new()),
                native64,
                writes: Cell::new(0),
                reads: Cell::new(0),
                reg_writes: Cell::new(0),
            }
        }
        fn vram_addr(&self, offset: u32) -> Option<u64> {
            let inside = offset.checked_sub(PRAMIN_APERTURE)?;
            (u64::from(inside) < PRAMIN_SIZE)
                .then(|| self.window.decode(self.reg.get()).0 + u64::from(inside))
        }
        fn get(&self, a: u64, n: u64) -> u64 {
            let v = self.vram.borrow();
            let page = v.get(&(a >> 12));
            (0..n).fold(0, |acc, i| {
                let b = page.map_or(0, |p| p[((a + i) & 0xFFF) as usize]);
                acc | (u64::from(b) << (8 * i))
            })
        }
        fn put(&self, a: u64, n: u64, val: u64) {
            let mut v = self.vram.borrow_mut();
            let page = v
                .entry(a >> 12)
                .or_insert_with(|| std::boxed::Box::new([0; 4096]));
            for i in 0..n {
                page[((a + i) & 0xFFF) as usize] = (val >> (8 * i)) as u8;
            }
        }
        /// Flat copy of the first `size` bytes.
        fn flat(&self, size: u64) -> Vec<u8> {
            let mut out = std::vec![0u8; size as usize];
            for (pg, data) in self.vram.borrow().iter() {
                let start = (pg << 12) as usize;
                if start < out.len() {
                    out[start..start + 4096].copy_from_slice(&data[..]);
                }
            }
            out
        }
        fn access(&self, offset: u32, width: u8) -> Result<u64, MmioError> {
            check_mmio(offset, width, 16 << 20)?;
            self.vram_addr(offset).ok_or(MmioError::Io(-5))
        }
    }

    impl Mmio for TestBar {
        fn bar_size(&self) -> u64 {
            16 << 20
        }
        fn read32(&self, offset: u32) -> Result<u32, MmioError> {
            self.reads.set(self.reads.get() + 1);
            if offset == self.window.offset {
                return Ok(self.reg.get());
            }
            let a = self.access(offset, 4)?;
            Ok(self.get(a, 4) as u32)
        }
        fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
            if offset == self.window.offset {
                self.reg_writes.set(self.reg_writes.get() + 1);
                self.reg.set(value);
                return Ok(());
            }
            self.writes.set(self.writes.get() + 1);
            let a = self.access(offset, 4)?;
            self.put(a, 4, value.into());
            Ok(())
        }
        fn has_native_64(&self) -> bool {
            self.native64
        }
        fn read64(&self, offset: u32) -> Result<u64, MmioError> {
            assert!(self.native64);
            self.reads.set(self.reads.get() + 1);
            let a = self.access(offset, 8)?;
            Ok(self.get(a, 8))
        }
        fn write64(&self, offset: u32, value: u64) -> Result<(), MmioError> {
            assert!(self.native64);
            self.writes.set(self.writes.get() + 1);
            let a = self.access(offset, 8)?;
            self.put(a, 8, value);
            Ok(())
        }
        fn read8(&self, offset: u32) -> Result<u8, MmioError> {
            let a = self.access(offset, 1)?;
            Ok(self.get(a, 1) as u8)
        }
        fn read16(&self, offset: u32) -> Result<u16, MmioError> {
            let a = self.access(offset, 2)?;
            Ok(self.get(a, 2) as u16)
        }
        fn write8(&self, offset: u32, value: u8) -> Result<(), MmioError> {
            let a = self.access(offset, 1)?;
            self.put(a, 1, value.into());
            Ok(())
        }
        fn write16(&self, offset: u32, value: u16) -> Result<(), MmioError> {
            let a = self.access(offset, 2)?;
            self.put(a, 2, value.into());
            Ok(())
        }
    }

    #[test]
    fn construction_is_checked() {
        let bar = TestBar::new(Chip::Hopper, false);
        assert_eq!(
            Pramin::new(&bar, Chip::Hopper, 0).err(),
            Some(PraminError::NoVram)
        );
        assert_eq!(
            Pramin::new(&bar, Chip::Hopper, (1 << 38) + 1).err(),
            Some(PraminError::BeyondReach {
                vram_size: (1 << 38) + 1,
                reach: 1 << 38
            })
        );
        assert!(Pramin::new(&bar, Chip::Turing, 1 << 40).is_ok());
    }

    #[test]
    fn window_moves_only_when_leaving_it() {
        let bar = TestBar::new(Chip::Turing, false);
        let mut p = Pramin::new(&bar, Chip::Turing, 1 << 32).unwrap();
        p.write32(VramAddress::new(0x1000), 1).unwrap();
        assert_eq!(p.stats().window_moves, 1);
        assert_eq!(bar.reg.get(), 0);
        p.write32(VramAddress::new(0xF_FFFC), 2).unwrap();
        assert_eq!(p.stats().window_moves, 1);
        p.write32(VramAddress::new(0x10_0000), 3).unwrap();
        assert_eq!(p.stats().window_moves, 2);
        assert_eq!(bar.reg.get(), 0x10);
        // Going back below the window moves it again, to the 1 MiB block of the access.
        assert_eq!(p.read32(VramAddress::new(0xF_FFFC)).unwrap(), 2);
        assert_eq!(bar.reg.get(), 0);
        assert_eq!(p.stats().window_moves, 3);
        // A descending run moves once per 1 MiB block, not once per 64 KiB.
        for i in 1..=64u64 {
            p.write32(VramAddress::new(0x50_0000 - i * 0x1_0000), 4)
                .unwrap();
        }
        assert_eq!(p.stats().window_moves, 3 + 4);
        assert_eq!(bar.reg.get(), 0x10);
    }

    #[test]
    fn narrow_accesses_and_rejections() {
        let bar = TestBar::new(Chip::Ampere, false);
        let mut p = Pramin::new(&bar, Chip::Ampere, 1 << 40).unwrap();
        let base = VramAddress::new(0x1000);
        p.write32(base, 0xDEAD_BEEF).unwrap();
        assert_eq!(p.read8(base).unwrap(), 0xEF);
        assert_eq!(p.read8(VramAddress::new(0x1003)).unwrap(), 0xDE);
        assert_eq!(p.read16(VramAddress::new(0x1002)).unwrap(), 0xDEAD);
        p.write8(VramAddress::new(0x1001), 0x55).unwrap();
        p.write16(VramAddress::new(0x1002), 0x1234).unwrap();
        assert_eq!(p.read32(base).unwrap(), 0x1234_55EF);
        for (addr, width) in [(0x1001u64, 2u64), (0x1002, 4), (0x1004, 8)] {
            let a = VramAddress::new(addr);
            let r = match width {
                2 => p.read16(a).map(u64::from),
                4 => p.read32(a).map(u64::from),
                _ => p.read64(a),
            };
            assert_eq!(
                r,
                Err(VramError::Misaligned {
                    addr: a,
                    align: width
                })
            );
        }
        // The 40-bit limit: the last word is reachable, the next byte is not.
        let top = VramAddress::new((1 << 40) - 8);
        p.write64(top, 0x0123_4567_89AB_CDEF).unwrap();
        assert_eq!(bar.reg.get(), 0xFF_FFF0);
        assert_eq!(p.read64(top).unwrap(), 0x0123_4567_89AB_CDEF);
        assert!(matches!(
            p.read8(VramAddress::new(1 << 40)),
            Err(VramError::OutOfRange { .. })
        ));
    }

    #[test]
    fn fixed_windows() {
        let bar = TestBar::new(Chip::Hopper, true);
        let mut p = Pramin::new(&bar, Chip::Hopper, (3 << 20) + (1 << 16)).unwrap();
        {
            let mut w = p.window_at(VramAddress::new(2 << 20)).unwrap();
            assert_eq!(w.len(), 1 << 20);
            w.write64(0xF_FFF8, 9).unwrap();
            assert_eq!(w.read32(0xF_FFF8).unwrap(), 9);
            assert!(matches!(
                w.read32(1 << 20),
                Err(VramError::OutOfRange { .. })
            ));
            assert!(matches!(
                w.write64(4, 0),
                Err(VramError::Misaligned { align: 8, .. })
            ));
        }
        assert_eq!(p.read64(VramAddress::new((3 << 20) - 8)).unwrap(), 9);
        assert_eq!(p.stats().window_moves, 1);
        // At the top of VRAM the window is shorter.
        let w = p.window_at(VramAddress::new(3 << 20)).unwrap();
        assert_eq!(w.len(), 1 << 16);
        assert!(matches!(
            p.window_at(VramAddress::new(0x1000)),
            Err(VramError::Misaligned {
                align: 0x1_0000,
                ..
            })
        ));
        assert!(matches!(
            p.window_at(VramAddress::new(4 << 20)),
            Err(VramError::OutOfRange { .. })
        ));
    }

    #[test]
    fn flush_reads_back_only_after_writes() {
        let bar = TestBar::new(Chip::Volta, false);
        let mut p = Pramin::new(&bar, Chip::Volta, 1 << 30).unwrap();
        p.flush().unwrap();
        assert_eq!(p.stats().flushes, 0);
        p.write64(VramAddress::new(0), 5).unwrap();
        let reads = bar.reads.get();
        Flush::flush(&mut p).unwrap();
        assert_eq!(bar.reads.get(), reads + 1);
        p.flush().unwrap();
        assert_eq!(p.stats().flushes, 1);
        let mut rb = PraminReadBack::new(&bar);
        rb.flush().unwrap();
        assert_eq!(bar.reads.get(), reads + 2);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // too slow under miri
    fn bulk_write_costs() {
        for native in [false, true] {
            let bar = TestBar::new(Chip::Hopper, native);
            let mut p = Pramin::new(&bar, Chip::Hopper, 1 << 30).unwrap();
            let words: Vec<u64> = (0..300_000u64).map(|i| i * 0x9E37_79B9).collect();
            let start = VramAddress::new(0x3_0000);
            p.write_u64s(start, &words).unwrap();
            let per_word = if native { 1 } else { 2 };
            assert_eq!(p.stats().mmio_writes, 300_000 * per_word);
            assert_eq!(bar.writes.get(), 300_000 * per_word);
            // 2.4 MB from 192 KiB: windows at 0x30000, +1 MiB, +2 MiB.
            assert_eq!(p.stats().window_moves, 3);
            assert_eq!(bar.reg_writes.get(), 3);
            let mut back = std::vec![0u64; 300_000];
            p.read_u64s(start, &mut back).unwrap();
            assert_eq!(back, words);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        W32(u64, u32),
        W64(u64, u64),
        R32(u64),
        R64(u64),
        Bulk(u64, Vec<u64>),
        Fill(u64, u64, u64),
        ReadBulk(u64, usize),
        W8(u64, u8),
    }

    const SIZE: u64 = 2 << 20;

    fn addr() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..SIZE + 64,
            (0..2u64).prop_map(|m| m * (1 << 20) + (1 << 20) - 16)
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (addr(), any::<u32>()).prop_map(|(a, v)| Op::W32(a & !3, v)),
            (addr(), any::<u64>()).prop_map(|(a, v)| Op::W64(a & !7, v)),
            addr().prop_map(|a| Op::R32(a & !3)),
            addr().prop_map(Op::R64),
            (addr(), proptest::collection::vec(any::<u64>(), 0..64))
                .prop_map(|(a, v)| Op::Bulk(a & !7, v)),
            (addr(), any::<u64>(), 0..20_000u64).prop_map(|(a, v, n)| Op::Fill(a & !7, v, n)),
            (addr(), 0..64usize).prop_map(|(a, n)| Op::ReadBulk(a & !7, n)),
            (addr(), any::<u8>()).prop_map(|(a, v)| Op::W8(a, v)),
        ]
    }

    fn model_write(m: &mut [u8], a: u64, n: u64, v: u64) {
        for i in 0..n {
            m[(a + i) as usize] = (v >> (8 * i)) as u8;
        }
    }
    fn model_read(m: &[u8], a: u64, n: u64) -> u64 {
        (0..n).fold(0, |acc, i| {
            acc | (u64::from(m[(a + i) as usize]) << (8 * i))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 64 }))]

        /// Random access sequences through PRAMIN equal a flat-memory model, out-of-range
        /// accesses change nothing, and the window moves exactly when an access leaves it.
        #[test]
        #[cfg_attr(miri, ignore)] // too slow under miri (2 MiB model per case)
        fn pramin_equals_flat_memory(ops in proptest::collection::vec(op(), 1..24), native in any::<bool>()) {
            let bar = TestBar::new(Chip::BlackwellGb20x, native);
            let mut p = Pramin::new(&bar, Chip::BlackwellGb20x, SIZE).unwrap();
            let mut model = std::vec![0u8; SIZE as usize];
            let mut window: Option<u64> = None;
            let mut expected_moves = 0u64;
            let touch = |a: u64, window: &mut Option<u64>, moves: &mut u64| {
                match *window {
                    Some(b) if a >= b && a < b + (1 << 20) => {}
                    _ => { *window = Some(a & !0xF_FFFF); *moves += 1; }
                }
            };
            for op in ops {
                match op {
                    Op::W32(a, v) => {
                        let r = p.write32(VramAddress::new(a), v);
                        prop_assert_eq!(r.is_ok(), a + 4 <= SIZE);
                        if r.is_ok() { touch(a, &mut window, &mut expected_moves); model_write(&mut model, a, 4, v.into()); }
                    }
                    Op::W64(a, v) => {
                        let r = p.write64(VramAddress::new(a), v);
                        prop_assert_eq!(r.is_ok(), a + 8 <= SIZE);
                        if r.is_ok() { touch(a, &mut window, &mut expected_moves); model_write(&mut model, a, 8, v); }
                    }
                    Op::W8(a, v) => {
                        let r = p.write8(VramAddress::new(a), v);
                        prop_assert_eq!(r.is_ok(), a < SIZE);
                        if r.is_ok() { touch(a, &mut window, &mut expected_moves); model_write(&mut model, a, 1, v.into()); }
                    }
                    Op::R32(a) => {
                        let r = p.read32(VramAddress::new(a));
                        if a + 4 <= SIZE {
                            touch(a, &mut window, &mut expected_moves);
                            prop_assert_eq!(u64::from(r.unwrap()), model_read(&model, a, 4));
                        } else { prop_assert!(r.is_err()); }
                    }
                    Op::R64(a) => {
                        let r = p.read64(VramAddress::new(a));
                        if a % 8 == 0 && a + 8 <= SIZE {
                            touch(a, &mut window, &mut expected_moves);
                            prop_assert_eq!(r.unwrap(), model_read(&model, a, 8));
                        } else { prop_assert!(r.is_err()); }
                    }
                    Op::Bulk(a, v) => {
                        let n = v.len() as u64;
                        let r = p.write_u64s(VramAddress::new(a), &v);
                        prop_assert_eq!(r.is_ok(), a + 8 * n <= SIZE);
                        if r.is_ok() {
                            for (i, w) in v.iter().enumerate() {
                                touch(a + 8 * i as u64, &mut window, &mut expected_moves);
                                model_write(&mut model, a + 8 * i as u64, 8, *w);
                            }
                        }
                    }
                    Op::Fill(a, v, n) => {
                        let r = p.fill_u64(VramAddress::new(a), v, n);
                        prop_assert_eq!(r.is_ok(), a + 8 * n <= SIZE);
                        if r.is_ok() {
                            for i in 0..n {
                                touch(a + 8 * i, &mut window, &mut expected_moves);
                                model_write(&mut model, a + 8 * i, 8, v);
                            }
                        }
                    }
                    Op::ReadBulk(a, n) => {
                        let mut out = std::vec![0u64; n];
                        let r = p.read_u64s(VramAddress::new(a), &mut out);
                        prop_assert_eq!(r.is_ok(), a + 8 * n as u64 <= SIZE);
                        if r.is_ok() {
                            for (i, w) in out.iter().enumerate() {
                                touch(a + 8 * i as u64, &mut window, &mut expected_moves);
                                prop_assert_eq!(*w, model_read(&model, a + 8 * i as u64, 8));
                            }
                        }
                    }
                }
                prop_assert_eq!(p.stats().window_moves, expected_moves);
                prop_assert_eq!(bar.reg_writes.get(), expected_moves);
                prop_assert_eq!(p.window_base().map(VramAddress::raw), window);
            }
            prop_assert!(bar.flat(SIZE) == model);
        }
    }

    mod state_machine {
        //! `Pramin` as a state machine against a reference: a window cache and flat memory.

        use super::*;
        use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

        const SM_SIZE: u64 = 3 << 20;

        #[derive(Clone, Debug)]
        pub(super) struct Model {
            window: Option<u64>,
            moves: u64,
            words: BTreeMap<u64, u64>,
            dirty: bool,
        }

        impl Model {
            fn touch(&mut self, a: u64) {
                match self.window {
                    Some(b) if a >= b && a - b < PRAMIN_SIZE => {}
                    _ => {
                        self.window = Some(a & !0xF_FFFF);
                        self.moves += 1;
                    }
                }
            }
        }

        #[derive(Clone, Debug)]
        pub(super) enum Tr {
            Write(u64, u64),
            Read(u64),
            Run(u64, Vec<u64>),
            Flush,
            Forget,
        }

        pub(super) struct Reference;

        impl ReferenceStateMachine for Reference {
            type State = Model;
            type Transition = Tr;

            fn init_state() -> BoxedStrategy<Model> {
                Just(Model {
                    window: None,
                    moves: 0,
                    words: BTreeMap::new(),
                    dirty: false,
                })
                .boxed()
            }

            fn transitions(_: &Model) -> BoxedStrategy<Tr> {
                // Word addresses, biased to the 1 MiB boundaries.
                let addr = prop_oneof![
                    (0..SM_SIZE / 8).prop_map(|w| w * 8),
                    (1..3u64, 0..4u64).prop_map(|(m, d)| m * PRAMIN_SIZE - 16 + 8 * d),
                ];
                prop_oneof![
                    4 => (addr.clone(), any::<u64>()).prop_map(|(a, v)| Tr::Write(a, v)),
                    3 => addr.clone().prop_map(Tr::Read),
                    2 => (addr, proptest::collection::vec(any::<u64>(), 1..16))
                        .prop_map(|(a, v)| Tr::Run(a, v)),
                    1 => Just(Tr::Flush),
                    1 => Just(Tr::Forget),
                ]
                .boxed()
            }

            fn preconditions(_: &Model, t: &Tr) -> bool {
                match t {
                    Tr::Run(a, v) => a + 8 * v.len() as u64 <= SM_SIZE,
                    Tr::Write(a, _) | Tr::Read(a) => a + 8 <= SM_SIZE,
                    Tr::Flush | Tr::Forget => true,
                }
            }

            fn apply(mut m: Model, t: &Tr) -> Model {
                match t {
                    Tr::Write(a, v) => {
                        m.touch(*a);
                        m.words.insert(*a, *v);
                        m.dirty = true;
                    }
                    Tr::Read(a) => m.touch(*a),
                    Tr::Run(a, v) => {
                        for (i, w) in v.iter().enumerate() {
                            let at = a + 8 * i as u64;
                            m.touch(at);
                            m.words.insert(at, *w);
                        }
                        m.dirty = true;
                    }
                    Tr::Flush => m.dirty = false,
                    Tr::Forget => m.window = None,
                }
                m
            }
        }

        pub(super) struct PraminMachine;

        impl StateMachineTest for PraminMachine {
            type SystemUnderTest = Pramin<TestBar>;
            type Reference = Reference;

            fn init_test(_: &Model) -> Pramin<TestBar> {
                Pramin::new(TestBar::new(Chip::Turing, false), Chip::Turing, SM_SIZE).unwrap()
            }

            fn apply(mut p: Pramin<TestBar>, m: &Model, t: Tr) -> Pramin<TestBar> {
                match t {
                    Tr::Write(a, v) => p.write64(VramAddress::new(a), v).unwrap(),
                    Tr::Read(a) => {
                        let got = p.read64(VramAddress::new(a)).unwrap();
                        assert_eq!(got, m.words.get(&a).copied().unwrap_or(0));
                    }
                    Tr::Run(a, v) => p.write_u64s(VramAddress::new(a), &v).unwrap(),
                    Tr::Flush => {
                        let reads = p.mmio().reads.get();
                        let was_dirty = p.dirty;
                        p.flush().unwrap();
                        assert_eq!(p.mmio().reads.get(), reads + u64::from(was_dirty));
                    }
                    Tr::Forget => p.invalidate_window_cache(),
                }
                p
            }

            fn check_invariants(p: &Pramin<TestBar>, m: &Model) {
                assert_eq!(p.window_base().map(VramAddress::raw), m.window);
                assert_eq!(p.stats().window_moves, m.moves);
                assert_eq!(p.mmio().reg_writes.get(), m.moves);
                assert_eq!(p.dirty, m.dirty);
                if let Some(b) = m.window {
                    assert_eq!(u64::from(p.mmio().reg.get()) << 16, b);
                }
            }
        }

        prop_state_machine! {
            #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 96 }))]
            #[test]
            #[cfg_attr(miri, ignore)] // too slow under miri (large simulated BAR per case)
            fn pramin_state_machine(sequential 1..40 => PraminMachine);
        }
    }
}
