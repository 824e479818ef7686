//! Usable VRAM from the firmware's framebuffer region table (`nova-series.md` §4.8).
//!
//! GSP-RM reports VRAM as up to [`MAX_FB_REGIONS`] regions (`fbRegionInfoParams`): each has an
//! inclusive `[base, limit]` and flags. nova-core hands the buddy allocator the first region that
//! is neither reserved nor protected and supports both compression and ISO. This module makes
//! the same choice and additionally rejects tables it cannot trust, so a bad table yields a
//! typed error rather than an allocator over firmware memory.

use core::ops::Range;

/// Capacity of the firmware table (`MAX_FB_REGIONS` in RM's control-call parameters).
pub const MAX_FB_REGIONS: usize = 16;

/// One entry of the firmware's framebuffer region table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct FbRegion {
    /// First byte.
    pub base: u64,
    /// Last byte (inclusive).
    pub limit: u64,
    /// Bytes reserved by the firmware inside the region; non-zero makes it unusable.
    pub reserved: u64,
    /// Protected memory (e.g. confidential computing, WPR).
    pub protected: bool,
    /// Compressible kinds may be placed there.
    pub supports_compression: bool,
    /// Isochronous (display) traffic may use it.
    pub supports_iso: bool,
}

impl FbRegion {
    /// Whether `limit < base`: nova-core skips such entries.
    #[must_use]
    pub const fn is_inverted(&self) -> bool {
        self.limit < self.base
    }

    /// The nova-core usability test: not reserved, not protected, compression and ISO capable.
    #[must_use]
    pub const fn is_usable(&self) -> bool {
        self.reserved == 0 && !self.protected && self.supports_compression && self.supports_iso
    }

    /// `[base, limit + 1)`, or `None` when inverted or when `limit` is `u64::MAX`.
    #[must_use]
    pub fn range(&self) -> Option<Range<u64>> {
        if self.is_inverted() {
            return None;
        }
        self.limit.checked_add(1).map(|end| self.base..end)
    }
}

/// Why the region table was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FbError {
    /// The table claims more regions than it can hold or than were supplied.
    #[error("framebuffer region table claims {count} regions, but holds at most {capacity}")]
    BadCount {
        /// The claimed count.
        count: u32,
        /// The entries available (at most [`MAX_FB_REGIONS`]).
        capacity: usize,
    },
    /// A region ends at the top of the 64-bit space, so its length does not fit.
    #[error("framebuffer region {index} ends at the top of the address space")]
    Overflow {
        /// Index of the region.
        index: usize,
    },
    /// The chosen usable region overlaps a reserved or protected one.
    #[error("usable framebuffer region {usable} overlaps unusable region {other}")]
    Overlap {
        /// Index of the usable region.
        usable: usize,
        /// Index of the region it overlaps.
        other: usize,
    },
    /// No region qualifies.
    #[error("no usable framebuffer region")]
    NoUsableRegion,
}

/// The first `count` entries of `regions`, checked.
fn entries(count: u32, regions: &[FbRegion]) -> Result<&[FbRegion], FbError> {
    let capacity = regions.len().min(MAX_FB_REGIONS);
    usize::try_from(count)
        .ok()
        .filter(|&n| n <= capacity)
        .and_then(|n| regions.get(..n))
        .ok_or(FbError::BadCount { count, capacity })
}

/// The usable VRAM range, chosen as nova-core does: the first entry among the first `count`
/// that is not inverted, not reserved, not protected and supports compression and ISO.
///
/// # Errors
///
/// [`FbError::BadCount`] when `count` exceeds the entries (or [`MAX_FB_REGIONS`]),
/// [`FbError::Overflow`] when the chosen region's end does not fit in 64 bits,
/// [`FbError::Overlap`] when it overlaps a reserved or protected entry, and
/// [`FbError::NoUsableRegion`] when none qualifies.
pub fn usable_region(count: u32, regions: &[FbRegion]) -> Result<Range<u64>, FbError> {
    let table = entries(count, regions)?;
    let (index, region) = table
        .iter()
        .enumerate()
        .find(|(_, r)| !r.is_inverted() && r.is_usable())
        .ok_or(FbError::NoUsableRegion)?;
    let range = region.range().ok_or(FbError::Overflow { index })?;
    for (other, r) in table.iter().enumerate() {
        if other == index || r.is_inverted() || r.is_usable() {
            continue;
        }
        // Inclusive bounds: overlap when neither lies wholly before the other.
        if r.base < range.end && range.start <= r.limit {
            return Err(FbError::Overlap {
                usable: index,
                other,
            });
        }
    }
    Ok(range)
}

/// One past the last byte of any well-formed entry: the VRAM PRAMIN must reach, since the BAR1
/// page directory lives in reserved memory above the usable region (`nova-series.md` §4.1).
///
/// # Errors
///
/// [`FbError::BadCount`], [`FbError::Overflow`] for an entry ending at `u64::MAX`, or
/// [`FbError::NoUsableRegion`] when every entry is inverted.
pub fn total_fb_end(count: u32, regions: &[FbRegion]) -> Result<u64, FbError> {
    let table = entries(count, regions)?;
    let mut end = None;
    for (index, r) in table.iter().enumerate() {
        if r.is_inverted() {
            continue;
        }
        let e = r.range().ok_or(FbError::Overflow { index })?.end;
        end = Some(end.map_or(e, |x: u64| x.max(e)));
    }
    end.ok_or(FbError::NoUsableRegion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    extern crate std;

    fn usable(base: u64, limit: u64) -> FbRegion {
        FbRegion {
            base,
            limit,
            reserved: 0,
            protected: false,
            supports_compression: true,
            supports_iso: true,
        }
    }

    #[test]
    fn picks_first_usable_like_nova() {
        let table = [
            FbRegion {
                protected: true,
                ..usable(0, 0xFFFF)
            },
            usable(0x2_0000, 0x1_0000), // inverted: skipped
            FbRegion {
                supports_iso: false,
                ..usable(0x10_0000, 0x1F_FFFF)
            },
            usable(0x20_0000, 0x5_FFFF_FFFF),
            usable(0x6_0000_0000, 0x6_FFFF_FFFF),
            FbRegion {
                reserved: 0x1000,
                ..usable(0x7_0000_0000, 0x7_0FFF_FFFF)
            },
        ];
        assert_eq!(usable_region(6, &table), Ok(0x20_0000..0x6_0000_0000));
        assert_eq!(total_fb_end(6, &table), Ok(0x7_1000_0000));
        assert_eq!(usable_region(3, &table), Err(FbError::NoUsableRegion));
        assert_eq!(
            usable_region(7, &table),
            Err(FbError::BadCount {
                count: 7,
                capacity: 6
            })
        );
        let big = [usable(0, 1); 20];
        assert_eq!(
            usable_region(17, &big),
            Err(FbError::BadCount {
                count: 17,
                capacity: 16
            })
        );
    }

    #[test]
    fn malformed_tables_are_rejected() {
        assert_eq!(
            usable_region(1, &[usable(0, u64::MAX)]),
            Err(FbError::Overflow { index: 0 })
        );
        let overlapping = [
            usable(0, 0xFFFF_FFFF),
            FbRegion {
                protected: true,
                ..usable(0xFFFF_0000, 0x1_FFFF_FFFF)
            },
        ];
        assert_eq!(
            usable_region(2, &overlapping),
            Err(FbError::Overlap {
                usable: 0,
                other: 1
            })
        );
        assert_eq!(usable_region(0, &[]), Err(FbError::NoUsableRegion));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn never_panics_and_result_is_a_usable_entry(
            raw in proptest::collection::vec((any::<u64>(), any::<u64>(), 0..2u64, any::<[bool; 3]>()), 0..18),
            count in 0u32..20,
        ) {
            let table: std::vec::Vec<FbRegion> = raw.iter().map(|&(base, limit, reserved, [p, c, i])| FbRegion {
                base, limit, reserved, protected: p, supports_compression: c, supports_iso: i,
            }).collect();
            if let Ok(r) = usable_region(count, &table) {
                prop_assert!(r.start < r.end);
                prop_assert!(table.iter().take(count as usize).any(|e| e.is_usable() && e.range() == Some(r.clone())));
            }
            let _ = total_fb_end(count, &table);
        }
    }
}
