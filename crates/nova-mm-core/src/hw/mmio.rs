//! [`Mmio`]: fallible register access to PCI BAR0, the one thing every hardware backend provides.
//!
//! Everything the hardware layer does (moving the PRAMIN window, touching VRAM through it,
//! invalidating TLBs) is a sequence of 32-bit BAR0 accesses, so the kernel driver, the VFIO
//! driver and the simulated BAR0 only have to implement this trait.
//!
//! Offsets are byte offsets into BAR0 as `u32`: BAR0 is 16 or 32 MiB on every supported chip, and
//! a `u32` never truncates on any target (unlike `usize` on a 32-bit host).
//!
//! The methods take `&self`: a BAR is a set of independent registers, and the kernel's `Io`
//! accessors and a mapped BAR both work through a shared reference. Exclusive use of a *resource*
//! made of registers (the PRAMIN window, the invalidate engine) is expressed by the `&mut self` of
//! the type that owns that resource ([`super::pramin::Pramin`], [`super::tlb_regs::TlbRegs`]).

/// Linux errno values used to turn hardware-layer errors into [`crate::VramError::Backend`] and
/// [`crate::TlbError::Backend`] codes (negated, as the kernel does).
pub mod errno {
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
}

/// Why a BAR0 access failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum MmioError {
    /// The access `[offset, offset + width)` lies outside the BAR.
    #[error("MMIO access of {width} bytes at BAR0 + {offset:#x} is out of range")]
    OutOfRange {
        /// Byte offset into the BAR.
        offset: u32,
        /// Access width in bytes.
        width: u8,
    },
    /// The offset is not a multiple of the access width.
    #[error("MMIO access of {width} bytes at BAR0 + {offset:#x} is misaligned")]
    Misaligned {
        /// Byte offset into the BAR.
        offset: u32,
        /// Access width in bytes.
        width: u8,
    },
    /// The provider cannot perform an access of this width.
    #[error("{width}-byte MMIO accesses are not supported by this BAR provider")]
    Unsupported {
        /// Access width in bytes.
        width: u8,
    },
    /// The device was removed or unbound.
    #[error("the GPU is gone")]
    DeviceGone,
    /// The provider failed in its own way; the code is the provider's (e.g. a negative errno).
    #[error("MMIO provider error {0}")]
    Io(i32),
}

impl MmioError {
    /// A negative errno describing the error, for the `Backend` variants of the core's errors.
    #[must_use]
    pub const fn backend_code(self) -> i32 {
        match self {
            MmioError::OutOfRange { .. } | MmioError::Misaligned { .. } => -errno::EINVAL,
            MmioError::Unsupported { .. } => -errno::EOPNOTSUPP,
            MmioError::DeviceGone => -errno::EIO,
            MmioError::Io(code) => code,
        }
    }
}

impl From<MmioError> for crate::VramError {
    fn from(e: MmioError) -> Self {
        match e {
            MmioError::DeviceGone => crate::VramError::DeviceGone,
            other => crate::VramError::Backend(other.backend_code()),
        }
    }
}

impl From<MmioError> for crate::TlbError {
    fn from(e: MmioError) -> Self {
        match e {
            MmioError::DeviceGone => crate::TlbError::DeviceGone,
            other => crate::TlbError::Backend(other.backend_code()),
        }
    }
}

/// Checks that `[offset, offset + width)` lies within `bar_size` and that `offset` is a multiple of
/// `width` (a power of two). A helper for providers.
///
/// # Errors
///
/// [`MmioError::Misaligned`] or [`MmioError::OutOfRange`].
pub fn check_mmio(offset: u32, width: u8, bar_size: u64) -> Result<(), MmioError> {
    let w = u32::from(width);
    if w == 0 || offset.checked_rem(w) != Some(0) {
        return Err(MmioError::Misaligned { offset, width });
    }
    match u64::from(offset).checked_add(u64::from(w)) {
        Some(end) if end <= bar_size => Ok(()),
        _ => Err(MmioError::OutOfRange { offset, width }),
    }
}

/// Fallible access to BAR0 registers.
///
/// A provider implements [`Mmio::read32`] and [`Mmio::write32`]. The 64-bit accessors default to
/// two 32-bit accesses, low half first; a provider that can issue single 64-bit MMIO accesses
/// overrides them and returns `true` from [`Mmio::has_native_64`], which lets PRAMIN halve its
/// writes. The 8- and 16-bit accessors default to [`MmioError::Unsupported`] for writes and to an
/// extraction from the containing 32-bit word for reads.
pub trait Mmio {
    /// Size of the BAR in bytes.
    fn bar_size(&self) -> u64;

    /// Reads the 32-bit register at `offset` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a provider failure.
    fn read32(&self, offset: u32) -> Result<u32, MmioError>;

    /// Writes the 32-bit register at `offset` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a provider failure.
    fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError>;

    /// Whether [`Mmio::read64`]/[`Mmio::write64`] are single 64-bit bus accesses rather than the
    /// default pair of 32-bit ones.
    fn has_native_64(&self) -> bool {
        false
    }

    /// Reads 64 bits at `offset` (8-byte aligned). The default reads the low word first.
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a provider failure.
    fn read64(&self, offset: u32) -> Result<u64, MmioError> {
        check_mmio(offset, 8, self.bar_size())?;
        let hi_off = offset
            .checked_add(4)
            .ok_or(MmioError::OutOfRange { offset, width: 8 })?;
        let lo = self.read32(offset)?;
        let hi = self.read32(hi_off)?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }

    /// Writes 64 bits at `offset` (8-byte aligned). The default writes the low word first.
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a provider failure.
    fn write64(&self, offset: u32, value: u64) -> Result<(), MmioError> {
        check_mmio(offset, 8, self.bar_size())?;
        let hi_off = offset
            .checked_add(4)
            .ok_or(MmioError::OutOfRange { offset, width: 8 })?;
        let [l0, l1, l2, l3, h0, h1, h2, h3] = value.to_le_bytes();
        self.write32(offset, u32::from_le_bytes([l0, l1, l2, l3]))?;
        self.write32(hi_off, u32::from_le_bytes([h0, h1, h2, h3]))
    }

    /// Reads the byte at `offset`. The default extracts it from the containing 32-bit word.
    ///
    /// # Errors
    ///
    /// Out of range or a provider failure.
    fn read8(&self, offset: u32) -> Result<u8, MmioError> {
        check_mmio(offset, 1, self.bar_size())?;
        let word = self.read32(offset & !3)?;
        let [b0, b1, b2, b3] = word.to_le_bytes();
        Ok(match offset & 3 {
            0 => b0,
            1 => b1,
            2 => b2,
            _ => b3,
        })
    }

    /// Reads the 16-bit value at `offset` (2-byte aligned). The default extracts it from the
    /// containing 32-bit word.
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a provider failure.
    fn read16(&self, offset: u32) -> Result<u16, MmioError> {
        check_mmio(offset, 2, self.bar_size())?;
        let word = self.read32(offset & !3)?;
        let [b0, b1, b2, b3] = word.to_le_bytes();
        Ok(if offset & 2 == 0 {
            u16::from_le_bytes([b0, b1])
        } else {
            u16::from_le_bytes([b2, b3])
        })
    }

    /// Writes the byte at `offset`. The default is [`MmioError::Unsupported`]: a read-modify-write
    /// of the containing word is not equivalent for registers.
    ///
    /// # Errors
    ///
    /// Out of range, unsupported, or a provider failure.
    fn write8(&self, offset: u32, value: u8) -> Result<(), MmioError> {
        let _ = (offset, value);
        Err(MmioError::Unsupported { width: 1 })
    }

    /// Writes the 16-bit value at `offset` (2-byte aligned). The default is
    /// [`MmioError::Unsupported`].
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, unsupported, or a provider failure.
    fn write16(&self, offset: u32, value: u16) -> Result<(), MmioError> {
        let _ = (offset, value);
        Err(MmioError::Unsupported { width: 2 })
    }
}

impl<M: Mmio + ?Sized> Mmio for &M {
    fn bar_size(&self) -> u64 {
        (**self).bar_size()
    }
    fn read32(&self, offset: u32) -> Result<u32, MmioError> {
        (**self).read32(offset)
    }
    fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
        (**self).write32(offset, value)
    }
    fn has_native_64(&self) -> bool {
        (**self).has_native_64()
    }
    fn read64(&self, offset: u32) -> Result<u64, MmioError> {
        (**self).read64(offset)
    }
    fn write64(&self, offset: u32, value: u64) -> Result<(), MmioError> {
        (**self).write64(offset, value)
    }
    fn read8(&self, offset: u32) -> Result<u8, MmioError> {
        (**self).read8(offset)
    }
    fn read16(&self, offset: u32) -> Result<u16, MmioError> {
        (**self).read16(offset)
    }
    fn write8(&self, offset: u32, value: u8) -> Result<(), MmioError> {
        (**self).write8(offset, value)
    }
    fn write16(&self, offset: u32, value: u16) -> Result<(), MmioError> {
        (**self).write16(offset, value)
    }
}

static_assertions::assert_obj_safe!(Mmio);

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    /// 16 bytes of registers with only the 32-bit accessors.
    struct Regs(RefCell<[u32; 4]>);

    impl Mmio for Regs {
        fn bar_size(&self) -> u64 {
            16
        }
        fn read32(&self, offset: u32) -> Result<u32, MmioError> {
            check_mmio(offset, 4, 16)?;
            Ok(self.0.borrow()[(offset / 4) as usize])
        }
        fn write32(&self, offset: u32, value: u32) -> Result<(), MmioError> {
            check_mmio(offset, 4, 16)?;
            self.0.borrow_mut()[(offset / 4) as usize] = value;
            Ok(())
        }
    }

    #[test]
    fn defaults_split_and_extract_little_endian() {
        let r = Regs(RefCell::new([0; 4]));
        r.write64(8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(r.0.borrow()[2], 0x5566_7788);
        assert_eq!(r.read64(8).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(r.read8(9).unwrap(), 0x77);
        assert_eq!(r.read16(10).unwrap(), 0x5566);
        assert_eq!(
            r.read16(9),
            Err(MmioError::Misaligned {
                offset: 9,
                width: 2
            })
        );
        assert_eq!(
            r.read64(12),
            Err(MmioError::Misaligned {
                offset: 12,
                width: 8
            })
        );
        assert_eq!(
            r.read32(16),
            Err(MmioError::OutOfRange {
                offset: 16,
                width: 4
            })
        );
        assert_eq!(r.write8(0, 1), Err(MmioError::Unsupported { width: 1 }));
        assert!(!r.has_native_64());
        assert_eq!(
            check_mmio(u32::MAX - 3, 4, u64::MAX),
            Ok(()),
            "no overflow at the top of the offset space"
        );
    }

    #[test]
    fn errors_map_to_core_errors() {
        assert_eq!(
            crate::VramError::from(MmioError::DeviceGone),
            crate::VramError::DeviceGone
        );
        assert_eq!(
            crate::TlbError::from(MmioError::Io(-7)),
            crate::TlbError::Backend(-7)
        );
        assert_eq!(
            MmioError::Unsupported { width: 1 }.backend_code(),
            -errno::EOPNOTSUPP
        );
    }
}
