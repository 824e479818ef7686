//! [`VramAccess`]: how the core reads and writes video memory.
//!
//! A backend implements the four single accesses; the bulk operations have default methods built
//! on them that a backend overrides for speed (the PRAMIN backend groups a run by window, the
//! simulated VRAM copies slices). Every method is fallible, and none is silently partial: an
//! `Ok` means every word was transferred. After an `Err` from a bulk write, the words of the run
//! may hold old or new values; callers that need all-or-nothing behaviour (the address-space
//! manager) only bulk-write memory that the hardware cannot yet see, or roll back.
//!
//! Accesses take `&mut self` because the hardware path (the PRAMIN window) is an exclusive
//! resource; the owner chooses the lock.

use crate::addr::VramAddress;

/// Why a VRAM access failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VramError {
    /// `[addr, addr + len)` is not inside the VRAM the backend can reach.
    #[error("VRAM access of {len} bytes at {addr} is out of range")]
    OutOfRange {
        /// First byte of the access.
        addr: VramAddress,
        /// Length of the access in bytes.
        len: u64,
    },
    /// The address is not a multiple of the access size.
    #[error("VRAM access at {addr} is not {align}-byte aligned")]
    Misaligned {
        /// The address.
        addr: VramAddress,
        /// The required alignment in bytes.
        align: u64,
    },
    /// The device was removed or unbound.
    #[error("the GPU is gone")]
    DeviceGone,
    /// The backend failed in its own way (an MMIO error, an injected fault); the code is the
    /// backend's, for example a negative errno.
    #[error("VRAM backend error {0}")]
    Backend(i32),
}

/// Checks that `[addr, addr + len)` lies within `size` bytes and that `addr` is a multiple of
/// `align`.
///
/// # Errors
///
/// [`VramError::Misaligned`] or [`VramError::OutOfRange`].
pub fn check_access(addr: VramAddress, len: u64, align: u64, size: u64) -> Result<(), VramError> {
    if !addr.is_aligned_to(align) {
        return Err(VramError::Misaligned { addr, align });
    }
    match addr.raw().checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(VramError::OutOfRange { addr, len }),
    }
}

/// Fallible access to GPU video memory.
pub trait VramAccess {
    /// Size of the reachable VRAM in bytes; valid addresses are `0..size()`.
    fn size(&self) -> u64;

    /// Reads the little-endian 32-bit word at `addr` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a backend failure.
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError>;

    /// Writes the 32-bit word at `addr` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a backend failure.
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError>;

    /// Reads the little-endian 64-bit word at `addr` (8-byte aligned). The default reads the
    /// low half first, as two 32-bit accesses.
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a backend failure.
    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        check_access(addr, 8, 8, self.size())?;
        let hi_addr = addr
            .checked_add(4)
            .ok_or(VramError::OutOfRange { addr, len: 8 })?;
        let lo = self.read32(addr)?;
        let hi = self.read32(hi_addr)?;
        Ok(u64::from(lo) | (u64::from(hi) << 32))
    }

    /// Writes the 64-bit word at `addr` (8-byte aligned). The default writes the low half first,
    /// then the high half, as two 32-bit accesses.
    ///
    /// # Errors
    ///
    /// Out of range, misaligned, or a backend failure.
    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        check_access(addr, 8, 8, self.size())?;
        let hi_addr = addr
            .checked_add(4)
            .ok_or(VramError::OutOfRange { addr, len: 8 })?;
        let [l0, l1, l2, l3, h0, h1, h2, h3] = value.to_le_bytes();
        self.write32(addr, u32::from_le_bytes([l0, l1, l2, l3]))?;
        self.write32(hi_addr, u32::from_le_bytes([h0, h1, h2, h3]))
    }

    /// Reads `out.len()` consecutive 64-bit words starting at `addr`.
    ///
    /// # Errors
    ///
    /// Out of range or misaligned (checked before anything is read), or a backend failure.
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        let len = words_to_bytes(addr, out.len())?;
        check_access(addr, len, 8, self.size())?;
        let mut a = addr;
        for slot in out.iter_mut() {
            *slot = self.read64(a)?;
            a = a.checked_add(8).unwrap_or(a);
        }
        Ok(())
    }

    /// Writes consecutive 64-bit words starting at `addr`.
    ///
    /// # Errors
    ///
    /// Out of range or misaligned (checked before anything is written), or a backend failure.
    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        let len = words_to_bytes(addr, words.len())?;
        check_access(addr, len, 8, self.size())?;
        let mut a = addr;
        for &w in words {
            self.write64(a, w)?;
            a = a.checked_add(8).unwrap_or(a);
        }
        Ok(())
    }

    /// Writes `value` to `count` consecutive 64-bit words starting at `addr`.
    ///
    /// # Errors
    ///
    /// Out of range or misaligned (checked before anything is written), or a backend failure.
    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        let len = count.checked_mul(8).ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })?;
        check_access(addr, len, 8, self.size())?;
        let mut a = addr;
        for _ in 0..count {
            self.write64(a, value)?;
            a = a.checked_add(8).unwrap_or(a);
        }
        Ok(())
    }
}

/// Byte length of `n` 64-bit words, as an out-of-range error when it overflows.
fn words_to_bytes(addr: VramAddress, n: usize) -> Result<u64, VramError> {
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(8))
        .ok_or(VramError::OutOfRange {
            addr,
            len: u64::MAX,
        })
}

impl<T: VramAccess + ?Sized> VramAccess for &mut T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
        (**self).read32(addr)
    }
    fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
        (**self).write32(addr, value)
    }
    fn read64(&mut self, addr: VramAddress) -> Result<u64, VramError> {
        (**self).read64(addr)
    }
    fn write64(&mut self, addr: VramAddress, value: u64) -> Result<(), VramError> {
        (**self).write64(addr, value)
    }
    fn read_u64s(&mut self, addr: VramAddress, out: &mut [u64]) -> Result<(), VramError> {
        (**self).read_u64s(addr, out)
    }
    fn write_u64s(&mut self, addr: VramAddress, words: &[u64]) -> Result<(), VramError> {
        (**self).write_u64s(addr, words)
    }
    fn fill_u64(&mut self, addr: VramAddress, value: u64, count: u64) -> Result<(), VramError> {
        (**self).fill_u64(addr, value, count)
    }
}

static_assertions::assert_obj_safe!(VramAccess);

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 bytes of VRAM with only the 32-bit accesses implemented, to test the defaults.
    struct Tiny([u32; 16]);

    impl VramAccess for Tiny {
        fn size(&self) -> u64 {
            64
        }
        fn read32(&mut self, addr: VramAddress) -> Result<u32, VramError> {
            check_access(addr, 4, 4, 64)?;
            Ok(self.0[(addr.raw() / 4) as usize])
        }
        fn write32(&mut self, addr: VramAddress, value: u32) -> Result<(), VramError> {
            check_access(addr, 4, 4, 64)?;
            self.0[(addr.raw() / 4) as usize] = value;
            Ok(())
        }
    }

    #[test]
    fn defaults_are_little_endian_and_checked() {
        let mut v = Tiny([0; 16]);
        v.write64(VramAddress::new(8), 0x1122_3344_5566_7788)
            .unwrap();
        assert_eq!(v.0[2], 0x5566_7788);
        assert_eq!(v.0[3], 0x1122_3344);
        assert_eq!(
            v.read64(VramAddress::new(8)).unwrap(),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            v.read64(VramAddress::new(4)),
            Err(VramError::Misaligned {
                addr: VramAddress::new(4),
                align: 8
            })
        );
        assert!(matches!(
            v.write_u64s(VramAddress::new(48), &[1, 2, 3]),
            Err(VramError::OutOfRange { .. })
        ));
        // Nothing was written by the rejected bulk write.
        assert_eq!(v.0[12..], [0, 0, 0, 0]);
        v.fill_u64(VramAddress::new(0), u64::MAX, 8).unwrap();
        let mut out = [0u64; 8];
        v.read_u64s(VramAddress::new(0), &mut out).unwrap();
        assert_eq!(out, [u64::MAX; 8]);
    }
}
