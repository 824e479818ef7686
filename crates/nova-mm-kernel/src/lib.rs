//! `nova-mm-kernel`: the glue between a Linux kernel driver and nova-mm.
//!
//! `no_std`, no allocation, no `unsafe`: it only adapts shapes.
//!
//! - [`KernelBar`] is the shape of the kernel's BAR accessors (`try_read32`/`try_write32`
//!   returning errno-style results); [`KernelMmio`] turns any such BAR into the core's
//!   [`Mmio`], so [`nova_mm_core::hw::pramin::Pramin`] and
//!   [`nova_mm_core::hw::tlb_regs::TlbRegs`] run on it.
//! - [`KernelTime`] is the kernel's clock and delay (`ktime_get_ns`, `fsleep`/`udelay`);
//!   [`KernelClock`] turns it into the core's [`Clock`].
//! - [`ToErrno`] maps every core error to a kernel errno (hardware layer, buddy allocator, VA
//!   allocator, walker, page-table formats, address-space manager, BAR1 window), and
//!   [`impl_to_errno!`] lets later error types join with one declaration each.
//!
//! How a driver vendors and builds nova-mm inside the kernel tree, without Cargo, is described
//! in [`embedding`].
//!
//! # Example
//!
//! A stand-in for the kernel's `pci::Bar` (plain memory that can be "unbound"), turned into the
//! core's PRAMIN window; every failure comes back as an errno.
//!
//! ```
//! use std::cell::{Cell, RefCell};
//!
//! use nova_mm_core::hw::pramin::Pramin;
//! use nova_mm_core::{Chip, VramAccess, VramAddress};
//! use nova_mm_kernel::{Errno, KernelBar, KernelMmio, ToErrno};
//!
//! /// 16 MiB of BAR0 as plain memory.
//! struct Bar0 {
//!     regs: RefCell<Vec<u32>>,
//!     unbound: Cell<bool>,
//! }
//! impl KernelBar for Bar0 {
//!     fn maxsize(&self) -> usize {
//!         16 << 20
//!     }
//!     fn try_read32(&self, off: usize) -> Result<u32, Errno> {
//!         if self.unbound.get() {
//!             return Err(Errno::ENODEV);
//!         }
//!         self.regs.borrow().get(off / 4).copied().ok_or(Errno::EINVAL)
//!     }
//!     fn try_write32(&self, value: u32, off: usize) -> Result<(), Errno> {
//!         if self.unbound.get() {
//!             return Err(Errno::ENODEV);
//!         }
//!         *self.regs.borrow_mut().get_mut(off / 4).ok_or(Errno::EINVAL)? = value;
//!         Ok(())
//!     }
//! }
//!
//! let bar = Bar0 { regs: RefCell::new(vec![0; (16 << 20) / 4]), unbound: Cell::new(false) };
//! let mmio = KernelMmio::new(&bar);
//! let mut pramin = Pramin::new(&mmio, Chip::Ampere, 1 << 30).map_err(|e| e.to_errno())?;
//!
//! let addr = VramAddress::new(0x2000_0008);
//! pramin.write64(addr, 0x1234_5678_9abc_def0).map_err(|e| e.to_errno())?;
//! assert_eq!(pramin.read64(addr).map_err(|e| e.to_errno())?, 0x1234_5678_9abc_def0);
//! // The window register (NV_PBUS_BAR0_WINDOW, 0x1700) now holds VRAM 0x2000_0000 >> 16.
//! assert_eq!(bar.regs.borrow()[0x1700 / 4] & 0xff_ffff, 0x2000);
//!
//! // Beyond the VRAM size, and after the device went away: errnos, no panic.
//! let beyond = pramin.read32(VramAddress::new(1 << 30)).unwrap_err();
//! assert_eq!(beyond.to_errno(), Errno::ERANGE);
//! bar.unbound.set(true);
//! assert_eq!(pramin.read32(VramAddress::new(0)).unwrap_err().to_errno(), Errno::ENODEV);
//! # Ok::<(), Errno>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::unreachable,
    )
)]
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

pub mod embedding;
mod errno;
#[cfg(feature = "selftest")]
pub mod selftest;

pub use errno::{Errno, ToErrno};

use nova_mm_core::hw::mmio::{check_mmio, Mmio, MmioError};
use nova_mm_core::hw::tlb_regs::Clock;

/// The kernel's view of a PCI BAR mapping (`kernel::io::Io` / `pci::Bar` in Rust-for-Linux):
/// fallible accessors at byte offsets, returning an [`Errno`] on failure (e.g. `ENODEV` once
/// the device is unbound and the `Devres` is revoked).
///
/// The 8-, 16- and 64-bit accessors are optional; the defaults report `EOPNOTSUPP`.
pub trait KernelBar {
    /// Size of the mapping in bytes (`Io::maxsize`).
    fn maxsize(&self) -> usize;

    /// Reads 32 bits at `offset`.
    ///
    /// # Errors
    ///
    /// An errno: `EINVAL` for a bad offset, `ENODEV` when the device is gone.
    fn try_read32(&self, offset: usize) -> Result<u32, Errno>;

    /// Writes 32 bits at `offset` (value first, as the kernel's accessors take it).
    ///
    /// # Errors
    ///
    /// An errno: `EINVAL` for a bad offset, `ENODEV` when the device is gone.
    fn try_write32(&self, value: u32, offset: usize) -> Result<(), Errno>;

    /// Whether [`KernelBar::try_read64`]/[`KernelBar::try_write64`] are implemented (`readq`/
    /// `writeq` exist on 64-bit kernels).
    fn has_64(&self) -> bool {
        false
    }

    /// Reads 64 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_read32`].
    fn try_read64(&self, offset: usize) -> Result<u64, Errno> {
        let _ = offset;
        Err(Errno::EOPNOTSUPP)
    }

    /// Writes 64 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_write32`].
    fn try_write64(&self, value: u64, offset: usize) -> Result<(), Errno> {
        let _ = (value, offset);
        Err(Errno::EOPNOTSUPP)
    }

    /// Reads 8 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_read32`].
    fn try_read8(&self, offset: usize) -> Result<u8, Errno> {
        let _ = offset;
        Err(Errno::EOPNOTSUPP)
    }

    /// Reads 16 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_read32`].
    fn try_read16(&self, offset: usize) -> Result<u16, Errno> {
        let _ = offset;
        Err(Errno::EOPNOTSUPP)
    }

    /// Writes 8 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_write32`].
    fn try_write8(&self, value: u8, offset: usize) -> Result<(), Errno> {
        let _ = (value, offset);
        Err(Errno::EOPNOTSUPP)
    }

    /// Writes 16 bits at `offset`.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` by default, else as [`KernelBar::try_write32`].
    fn try_write16(&self, value: u16, offset: usize) -> Result<(), Errno> {
        let _ = (value, offset);
        Err(Errno::EOPNOTSUPP)
    }
}

impl<B: KernelBar + ?Sized> KernelBar for &B {
    fn maxsize(&self) -> usize {
        (**self).maxsize()
    }
    fn try_read32(&self, offset: usize) -> Result<u32, Errno> {
        (**self).try_read32(offset)
    }
    fn try_write32(&self, value: u32, offset: usize) -> Result<(), Errno> {
        (**self).try_write32(value, offset)
    }
    fn has_64(&self) -> bool {
        (**self).has_64()
    }
    fn try_read64(&self, offset: usize) -> Result<u64, Errno> {
        (**self).try_read64(offset)
    }
    fn try_write64(&self, value: u64, offset: usize) -> Result<(), Errno> {
        (**self).try_write64(value, offset)
    }
    fn try_read8(&self, offset: usize) -> Result<u8, Errno> {
        (**self).try_read8(offset)
    }
    fn try_read16(&self, offset: usize) -> Result<u16, Errno> {
        (**self).try_read16(offset)
    }
    fn try_write8(&self, value: u8, offset: usize) -> Result<(), Errno> {
        (**self).try_write8(value, offset)
    }
    fn try_write16(&self, value: u16, offset: usize) -> Result<(), Errno> {
        (**self).try_write16(value, offset)
    }
}

/// A [`KernelBar`] seen as the core's [`Mmio`].
#[derive(Debug)]
pub struct KernelMmio<B> {
    bar: B,
}

impl<B: KernelBar> KernelMmio<B> {
    /// Wraps `bar`.
    pub const fn new(bar: B) -> Self {
        KernelMmio { bar }
    }

    /// The wrapped BAR.
    pub fn bar(&self) -> &B {
        &self.bar
    }

    /// Checks the access and converts the offset for the kernel accessor.
    fn at(&self, offset: u32, width: u8) -> Result<usize, MmioError> {
        check_mmio(offset, width, self.bar_size())?;
        usize::try_from(offset).map_err(|_| MmioError::OutOfRange { offset, width })
    }
}

/// An errno from the kernel accessor as an MMIO error: `ENODEV` (revoked `Devres`) means the
/// device is gone; `EOPNOTSUPP` an unsupported width; anything else is passed on, negated.
fn mmio_err(e: Errno, width: u8) -> MmioError {
    if e == Errno::ENODEV {
        MmioError::DeviceGone
    } else if e == Errno::EOPNOTSUPP {
        MmioError::Unsupported { width }
    } else {
        MmioError::Io(e.to_kernel())
    }
}

impl<B: KernelBar> Mmio for KernelMmio<B> {
    fn bar_size(&self) -> u64 {
        u64::try_from(self.bar.maxsize()).unwrap_or(u64::MAX)
    }
    fn read32(&self, offset: u32) -> Result<u32, MmioError> {
        let o = self.at(offset, 4)?;
        self.bar.try_read32(o).map_err(|e| mmio_err(e, 4))
    }
    fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
        let o = self.at(offset, 4)?;
        self.bar.try_write32(value, o).map_err(|e| mmio_err(e, 4))
    }
    fn has_native_64(&self) -> bool {
        self.bar.has_64()
    }
    fn read64(&self, offset: u32) -> Result<u64, MmioError> {
        let o = self.at(offset, 8)?;
        if self.bar.has_64() {
            return self.bar.try_read64(o).map_err(|e| mmio_err(e, 8));
        }
        let hi = o
            .checked_add(4)
            .ok_or(MmioError::OutOfRange { offset, width: 8 })?;
        let lo = self.bar.try_read32(o).map_err(|e| mmio_err(e, 4))?;
        let hi = self.bar.try_read32(hi).map_err(|e| mmio_err(e, 4))?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }
    fn write64(&self, offset: u32, value: u64) -> Result<(), MmioError> {
        let o = self.at(offset, 8)?;
        if self.bar.has_64() {
            return self.bar.try_write64(value, o).map_err(|e| mmio_err(e, 8));
        }
        let hi = o
            .checked_add(4)
            .ok_or(MmioError::OutOfRange { offset, width: 8 })?;
        let [l0, l1, l2, l3, h0, h1, h2, h3] = value.to_le_bytes();
        self.bar
            .try_write32(u32::from_le_bytes([l0, l1, l2, l3]), o)
            .map_err(|e| mmio_err(e, 4))?;
        self.bar
            .try_write32(u32::from_le_bytes([h0, h1, h2, h3]), hi)
            .map_err(|e| mmio_err(e, 4))
    }
    fn read8(&self, offset: u32) -> Result<u8, MmioError> {
        let o = self.at(offset, 1)?;
        self.bar.try_read8(o).map_err(|e| mmio_err(e, 1))
    }
    fn read16(&self, offset: u32) -> Result<u16, MmioError> {
        let o = self.at(offset, 2)?;
        self.bar.try_read16(o).map_err(|e| mmio_err(e, 2))
    }
    fn write8(&self, offset: u32, value: u8) -> Result<(), MmioError> {
        let o = self.at(offset, 1)?;
        self.bar.try_write8(value, o).map_err(|e| mmio_err(e, 1))
    }
    fn write16(&self, offset: u32, value: u16) -> Result<(), MmioError> {
        let o = self.at(offset, 2)?;
        self.bar.try_write16(value, o).map_err(|e| mmio_err(e, 2))
    }
}

/// The kernel's time and delay functions.
pub trait KernelTime {
    /// `ktime_get_ns()`: monotonic nanoseconds.
    fn ktime_get_ns(&self) -> u64;
    /// Waits `ns` nanoseconds: `ndelay`/`udelay` in atomic context, `fsleep` otherwise. The
    /// TLB path runs in the DMA-fence signalling path, so an implementation must not sleep in a
    /// way that waits on memory reclaim.
    fn delay_ns(&self, ns: u64);
}

/// A [`KernelTime`] seen as the core's [`Clock`].
#[derive(Debug)]
pub struct KernelClock<K> {
    time: K,
}

impl<K: KernelTime> KernelClock<K> {
    /// Wraps `time`.
    pub const fn new(time: K) -> Self {
        KernelClock { time }
    }
}

impl<K: KernelTime> Clock for KernelClock<K> {
    fn now_ns(&mut self) -> u64 {
        self.time.ktime_get_ns()
    }
    fn delay_ns(&mut self, ns: u64) {
        self.time.delay_ns(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use nova_mm_core::hw::pramin::{Pramin, PraminReadBack};
    use nova_mm_core::hw::tlb_regs::TlbRegs;
    use nova_mm_core::{Chip, InvalidateRequest, TlbError, TlbInvalidate, VramAccess, VramAddress};

    extern crate std;
    use std::vec::Vec;

    /// A 16 MiB BAR of plain memory that can be "unbound".
    struct FakeBar {
        mem: RefCell<Vec<u32>>,
        gone: Cell<bool>,
    }

    impl KernelBar for FakeBar {
        fn maxsize(&self) -> usize {
            16 << 20
        }
        fn try_read32(&self, offset: usize) -> Result<u32, Errno> {
            if self.gone.get() {
                return Err(Errno::ENODEV);
            }
            Ok(self.mem.borrow()[offset / 4])
        }
        fn try_write32(&self, value: u32, offset: usize) -> Result<(), Errno> {
            if self.gone.get() {
                return Err(Errno::ENODEV);
            }
            self.mem.borrow_mut()[offset / 4] = value;
            Ok(())
        }
    }

    struct Time(Cell<u64>);
    impl KernelTime for &Time {
        fn ktime_get_ns(&self) -> u64 {
            self.0.set(self.0.get() + 100);
            self.0.get()
        }
        fn delay_ns(&self, ns: u64) {
            self.0.set(self.0.get() + ns);
        }
    }

    fn bar() -> FakeBar {
        FakeBar {
            mem: RefCell::new(std::vec![0; 4 << 20]),
            gone: Cell::new(false),
        }
    }

    #[test]
    fn mmio_adapter_checks_and_maps_errors() {
        let b = bar();
        let m = KernelMmio::new(&b);
        m.write64(0x10, 0x1_0000_0002).unwrap();
        assert_eq!(m.read32(0x14).unwrap(), 1);
        assert_eq!(m.read64(0x10).unwrap(), 0x1_0000_0002);
        assert_eq!(
            m.read32(16 << 20),
            Err(MmioError::OutOfRange {
                offset: 16 << 20,
                width: 4
            })
        );
        assert_eq!(
            m.read32(2),
            Err(MmioError::Misaligned {
                offset: 2,
                width: 4
            })
        );
        assert_eq!(m.write8(0, 1), Err(MmioError::Unsupported { width: 1 }));
        b.gone.set(true);
        assert_eq!(m.read32(0), Err(MmioError::DeviceGone));
    }

    #[test]
    fn pramin_and_tlb_run_on_a_kernel_bar() {
        let b = bar();
        let m = KernelMmio::new(&b);
        let mut p = Pramin::new(&m, Chip::Ampere, 1 << 30).unwrap();
        // Plain memory behind the aperture: the window register just holds its value.
        p.write64(VramAddress::new(0x10_0008), 0xABCD).unwrap();
        assert_eq!(b.mem.borrow()[0x1700 / 4], 0x10);
        assert_eq!(b.mem.borrow()[(0x70_0008) / 4], 0xABCD);
        let time = Time(Cell::new(0));
        let mut t = TlbRegs::new(
            &m,
            Chip::Ampere,
            KernelClock::new(&time),
            PraminReadBack::new(&m),
        );
        // TRIGGER stays set in plain memory: the invalidate must time out, not hang.
        assert_eq!(
            t.invalidate(&InvalidateRequest::EVERYTHING),
            Err(TlbError::Timeout)
        );
        assert_eq!(TlbError::Timeout.to_errno(), Errno::ETIMEDOUT);
        b.gone.set(true);
        let e = p.read32(VramAddress::new(0)).unwrap_err();
        assert_eq!(e.to_errno(), Errno::ENODEV);
    }
}
