//! What the address-space manager needs from a VA range allocator, and a small default.
//!
//! The manager reserves a VA range when it prepares a map or a sparse reservation and releases
//! it when the mapping is gone; reservations never overlap, which is what lets several prepared
//! operations be in flight at once. [`VaRanges`] is the seam: the interval allocator of
//! `va_alloc` (O(log n), embedder storage) implements it; [`SortedVa`] is a sorted-array
//! stand-in (O(n) inserts) good for small spaces such as BAR1 and for tests.

use super::store::{NoRoom, Slab};

/// Why a VA reservation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VaError {
    /// The range overlaps an existing reservation.
    #[error("VA range is in use")]
    InUse,
    /// No free range of the requested size and alignment.
    #[error("no free VA range fits")]
    NoSpace,
    /// Host bookkeeping could not grow.
    #[error(transparent)]
    NoRoom(#[from] NoRoom),
    /// The range released was not reserved exactly.
    #[error("VA range was not reserved")]
    NotReserved,
    /// Zero length, misaligned, or beyond the limits.
    #[error("invalid VA range")]
    Invalid,
}

/// A VA range allocator: reservations are disjoint half-open intervals `[start, start + len)`.
pub trait VaRanges {
    /// Makes sure the next reservation cannot fail for lack of host storage (called by prepare).
    ///
    /// # Errors
    ///
    /// [`VaError::NoRoom`].
    fn reserve_room(&mut self) -> Result<(), VaError>;
    /// Reserves exactly `[start, start + len)`.
    ///
    /// # Errors
    ///
    /// [`VaError::InUse`] on overlap, [`VaError::NoRoom`] without storage.
    fn reserve_fixed(&mut self, start: u64, len: u64) -> Result<(), VaError>;
    /// Finds and reserves a free range of `len` bytes aligned to `align` inside `[lo, hi)`.
    ///
    /// # Errors
    ///
    /// [`VaError::NoSpace`] or [`VaError::NoRoom`].
    fn reserve_any(&mut self, len: u64, align: u64, lo: u64, hi: u64) -> Result<u64, VaError>;
    /// Releases a reservation made before, exactly. Never allocates.
    ///
    /// # Errors
    ///
    /// [`VaError::NotReserved`].
    fn release(&mut self, start: u64, len: u64) -> Result<(), VaError>;
    /// Whether `[start, start + len)` overlaps no reservation.
    fn is_free(&self, start: u64, len: u64) -> bool;
}

/// One reservation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VaInterval {
    /// First byte.
    pub start: u64,
    /// Exclusive end.
    pub end: u64,
}

/// Reservations in a sorted array (O(n) insert/remove, O(log n) lookup).
#[derive(Debug)]
pub struct SortedVa<S> {
    items: S,
}

impl<S: Slab<VaInterval>> SortedVa<S> {
    /// An allocator with no reservations, over `storage` (which should be empty).
    pub fn new(mut storage: S) -> Self {
        storage.truncate(0);
        Self { items: storage }
    }

    /// Index of the first interval whose end is above `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        let (mut lo, mut hi) = (0usize, self.items.len());
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            match self.items.get(mid) {
                Some(iv) if iv.end <= addr => lo = mid.saturating_add(1),
                _ => hi = mid,
            }
        }
        lo
    }
}

impl<S: Slab<VaInterval>> VaRanges for SortedVa<S> {
    fn reserve_room(&mut self) -> Result<(), VaError> {
        Ok(self.items.try_reserve(1)?)
    }

    fn reserve_fixed(&mut self, start: u64, len: u64) -> Result<(), VaError> {
        let end = start.checked_add(len).ok_or(VaError::Invalid)?;
        if len == 0 {
            return Err(VaError::Invalid);
        }
        let i = self.first_ending_after(start);
        if self.items.get(i).is_some_and(|iv| iv.start < end) {
            return Err(VaError::InUse);
        }
        self.items.try_reserve(1)?;
        Ok(self.items.insert_reserved(i, VaInterval { start, end })?)
    }

    fn reserve_any(&mut self, len: u64, align: u64, lo: u64, hi: u64) -> Result<u64, VaError> {
        if len == 0 || !align.is_power_of_two() {
            return Err(VaError::Invalid);
        }
        let mask = align.wrapping_sub(1);
        let mut cand = lo.checked_add(mask).ok_or(VaError::NoSpace)? & !mask;
        let mut i = self.first_ending_after(cand);
        loop {
            let end = cand.checked_add(len).ok_or(VaError::NoSpace)?;
            if end > hi {
                return Err(VaError::NoSpace);
            }
            match self.items.get(i) {
                Some(iv) if iv.start < end => {
                    cand = iv.end.checked_add(mask).ok_or(VaError::NoSpace)? & !mask;
                    i = i.saturating_add(1);
                }
                _ => {
                    self.items.try_reserve(1)?;
                    self.items
                        .insert_reserved(i, VaInterval { start: cand, end })?;
                    return Ok(cand);
                }
            }
        }
    }

    fn release(&mut self, start: u64, len: u64) -> Result<(), VaError> {
        let i = self.first_ending_after(start);
        match self.items.get(i) {
            Some(iv) if iv.start == start && Some(iv.end) == start.checked_add(len) => {
                self.items.remove(i);
                Ok(())
            }
            _ => Err(VaError::NotReserved),
        }
    }

    fn is_free(&self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        let i = self.first_ending_after(start);
        self.items.get(i).is_none_or(|iv| iv.start >= end)
    }
}

/// The interval allocator of [`crate::va_alloc`] (an augmented balanced tree, O(log n)) as the
/// manager's VA reservations.
impl<S: crate::va_alloc::NodeStore> VaRanges for crate::va_alloc::VaAllocator<S> {
    fn reserve_room(&mut self) -> Result<(), VaError> {
        self.ensure_free_nodes(1)
            .map_err(|_| VaError::NoRoom(NoRoom))
    }

    fn reserve_fixed(&mut self, start: u64, len: u64) -> Result<(), VaError> {
        use crate::va_alloc::{VaError as E, VaRange};
        let range =
            VaRange::new(crate::addr::VirtAddr::new(start), len).map_err(|_| VaError::Invalid)?;
        self.reserve(range).map_err(|e| match e {
            E::Overlap { .. } => VaError::InUse,
            E::StorageFull => VaError::NoRoom(NoRoom),
            _ => VaError::Invalid,
        })
    }

    fn reserve_any(&mut self, len: u64, align: u64, lo: u64, hi: u64) -> Result<u64, VaError> {
        use crate::va_alloc::VaError as E;
        let lo = lo.max(self.base().raw());
        let hi = hi.min(self.limit().raw());
        self.alloc_in(
            len,
            align,
            crate::addr::VirtAddr::new(lo),
            crate::addr::VirtAddr::new(hi),
        )
        .map(|r| r.start().raw())
        .map_err(|e| match e {
            E::NoSpace { .. } | E::BadWindow { .. } => VaError::NoSpace,
            E::StorageFull => VaError::NoRoom(NoRoom),
            _ => VaError::Invalid,
        })
    }

    fn release(&mut self, start: u64, len: u64) -> Result<(), VaError> {
        let range = crate::va_alloc::VaRange::new(crate::addr::VirtAddr::new(start), len)
            .map_err(|_| VaError::NotReserved)?;
        self.free(range).map_err(|_| VaError::NotReserved)
    }

    fn is_free(&self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        self.reservation_containing(crate::addr::VirtAddr::new(start))
            .is_none()
            && self
                .iter_from(crate::addr::VirtAddr::new(start))
                .next()
                .is_none_or(|r| r.start().raw() >= end)
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::FixedSlab;
    use super::*;

    #[test]
    fn reservations_are_disjoint() {
        let mut buf = [VaInterval::default(); 4];
        let mut va = SortedVa::new(FixedSlab::new(&mut buf));
        va.reserve_fixed(0x1000, 0x1000).unwrap();
        assert_eq!(va.reserve_fixed(0x1800, 0x1000), Err(VaError::InUse));
        assert_eq!(va.reserve_any(0x2000, 0x1000, 0, 0x10000), Ok(0x2000));
        assert_eq!(va.reserve_any(0x1000, 0x1000, 0, 0x10000), Ok(0));
        assert!(!va.is_free(0, 0x4000));
        assert!(va.is_free(0x4000, 0x1000));
        assert_eq!(va.release(0x1000, 0x800), Err(VaError::NotReserved));
        va.release(0x1000, 0x1000).unwrap();
        assert!(va.is_free(0x1000, 0x1000));
        assert_eq!(va.reserve_any(0x8000, 0x8000, 0, 0x10000), Ok(0x8000));
        assert_eq!(
            va.reserve_any(0x8000, 0x8000, 0, 0x10000),
            Err(VaError::NoSpace)
        );
    }
}
