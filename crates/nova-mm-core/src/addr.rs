//! Typed addresses and page sizes.
//!
//! Every address is a `u64` newtype so that a VRAM address, a GPU virtual address and a system
//! physical address cannot be mixed up. All arithmetic is checked and returns `Option`; nothing
//! here casts with `as`.

use core::fmt;

/// The size of the smallest GPU page and of a page frame: 4 KiB.
pub const PAGE_SHIFT: u32 = 12;
/// 4 KiB in bytes.
pub const PAGE_BYTES: u64 = 1 << PAGE_SHIFT;

macro_rules! address_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Address zero.
            pub const ZERO: Self = Self(0);

            /// Wraps a raw address.
            #[must_use]
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw address.
            #[must_use]
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + bytes`, or `None` on overflow.
            #[must_use]
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self - bytes`, or `None` on underflow.
            #[must_use]
            pub const fn checked_sub(self, bytes: u64) -> Option<Self> {
                match self.0.checked_sub(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The distance `self - earlier` in bytes, or `None` if `earlier > self`.
            #[must_use]
            pub const fn offset_from(self, earlier: Self) -> Option<u64> {
                self.0.checked_sub(earlier.0)
            }

            /// Whether the address is a multiple of `align` (which must be a power of two;
            /// any other value gives `false`).
            #[must_use]
            pub const fn is_aligned_to(self, align: u64) -> bool {
                align.is_power_of_two() && self.0 & (align.wrapping_sub(1)) == 0
            }

            /// Rounds down to a multiple of `align` (a power of two; any other value returns
            /// the address unchanged).
            #[must_use]
            pub const fn align_down(self, align: u64) -> Self {
                if align.is_power_of_two() {
                    Self(self.0 & !(align.wrapping_sub(1)))
                } else {
                    self
                }
            }

            /// The 4 KiB frame number holding this address.
            #[must_use]
            pub const fn pfn(self) -> Pfn {
                Pfn(self.0 >> PAGE_SHIFT)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A byte address in the GPU's own video memory (VRAM, "vidmem").
    VramAddress
);
address_type!(
    /// A GPU virtual address, translated by the GPU MMU (GMMU) through page tables.
    VirtAddr
);
address_type!(
    /// A physical address in some aperture: VRAM, a peer GPU's VRAM, or system memory.
    /// The aperture travels beside it (see the page-table formats).
    PhysAddr
);

impl From<VramAddress> for PhysAddr {
    fn from(a: VramAddress) -> Self {
        Self(a.raw())
    }
}

/// A 4 KiB page frame number (address >> 12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(u64);

impl Pfn {
    /// Wraps a raw frame number.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw frame number.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The byte address of the frame, or `None` if it does not fit in 64 bits.
    #[must_use]
    pub const fn checked_addr(self) -> Option<u64> {
        if self.0 > (u64::MAX >> PAGE_SHIFT) {
            None
        } else {
            Some(self.0 << PAGE_SHIFT)
        }
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

/// The page sizes the GPU MMU can map. Which ones a chip allows is decided by
/// [`Chip::supports_page_size`](crate::Chip::supports_page_size).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PageSize {
    /// 4 KiB, a PTE in the small page table.
    Size4K,
    /// 64 KiB ("big page"), a PTE in the big page table under a dual PD0 entry.
    Size64K,
    /// 2 MiB, a PTE stored in a PD0 entry.
    Size2M,
    /// 512 MiB, a PTE stored in a PD1 entry (Ampere, Ada, Hopper, Blackwell).
    Size512M,
    /// 256 GiB, a PTE stored in a PD2 entry (Blackwell only).
    Size256G,
}

impl PageSize {
    /// All page sizes, smallest first.
    pub const ALL: [PageSize; 5] = [
        PageSize::Size4K,
        PageSize::Size64K,
        PageSize::Size2M,
        PageSize::Size512M,
        PageSize::Size256G,
    ];

    /// log2 of the size in bytes.
    #[must_use]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size64K => 16,
            PageSize::Size2M => 21,
            PageSize::Size512M => 29,
            PageSize::Size256G => 38,
        }
    }

    /// The size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        1u64 << self.shift()
    }

    /// The page size of exactly `bytes` bytes, if there is one.
    #[must_use]
    pub const fn from_bytes(bytes: u64) -> Option<PageSize> {
        match bytes {
            0x1000 => Some(PageSize::Size4K),
            0x1_0000 => Some(PageSize::Size64K),
            0x20_0000 => Some(PageSize::Size2M),
            0x2000_0000 => Some(PageSize::Size512M),
            0x40_0000_0000 => Some(PageSize::Size256G),
            _ => None,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4K",
            PageSize::Size64K => "64K",
            PageSize::Size2M => "2M",
            PageSize::Size512M => "512M",
            PageSize::Size256G => "256G",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_round_trip() {
        for ps in PageSize::ALL {
            assert_eq!(PageSize::from_bytes(ps.bytes()), Some(ps));
        }
        assert_eq!(PageSize::Size256G.bytes(), 256 << 30);
        assert_eq!(PageSize::from_bytes(8192), None);
    }

    #[test]
    fn checked_arithmetic() {
        let a = VramAddress::new(u64::MAX - 1);
        assert_eq!(a.checked_add(1), Some(VramAddress::new(u64::MAX)));
        assert_eq!(a.checked_add(2), None);
        assert_eq!(VramAddress::ZERO.checked_sub(1), None);
        assert!(VramAddress::new(0x20_0000).is_aligned_to(0x20_0000));
        assert!(!VramAddress::new(0x1000).is_aligned_to(0x3000));
        assert_eq!(VramAddress::new(0x12345).align_down(0x1000).raw(), 0x12000);
        assert_eq!(Pfn::new(u64::MAX).checked_addr(), None);
        assert_eq!(VramAddress::new(0x5000).pfn(), Pfn::new(5));
    }
}
