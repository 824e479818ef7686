//! Level geometry of the page-table trees, as data.
//!
//! Both versions end in a dual PD0 whose 16-byte entries point at two alternative leaf
//! tables: a big page table (32 × 8 B = 256 B, 64 KiB pages, VA 20:16) and a small page
//! table (512 × 8 B, 4 KiB pages, VA 20:12) (`mmu-formats.md` §1.1, §2.1).

use core::fmt;

use crate::addr::{PageSize, VirtAddr};
use crate::chip::{Chip, MmuVersion};

use super::error::FormatError;

/// A level of the page-table tree, named as NVIDIA's manuals name them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Level {
    /// PD4: the v3 root (VA bit 56, 2 entries). Does not exist in v2.
    Pd4,
    /// PD3: the v2 root (VA 48:47, 4 entries); on v3 VA 55:47, 512 entries.
    Pd3,
    /// PD2: VA 46:38. May hold a 256 GiB PTE on Blackwell.
    Pd2,
    /// PD1: VA 37:29. May hold a 512 MiB PTE on Ampere, Ada and v3.
    Pd1,
    /// PD0: the dual level, VA 28:21, 16-byte entries. May hold a 2 MiB PTE.
    Pd0,
    /// The big page table under a PD0 entry: VA 20:16, 64 KiB pages.
    PtBig,
    /// The small page table under a PD0 entry: VA 20:12, 4 KiB pages.
    PtSmall,
}

impl Level {
    /// The manual's name of the level.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Level::Pd4 => "PD4",
            Level::Pd3 => "PD3",
            Level::Pd2 => "PD2",
            Level::Pd1 => "PD1",
            Level::Pd0 => "PD0",
            Level::PtBig => "PT(big)",
            Level::PtSmall => "PT(small)",
        }
    }

    /// Whether entries of this level are PTEs only (the two leaf tables).
    #[must_use]
    pub const fn is_leaf(self) -> bool {
        matches!(self, Level::PtBig | Level::PtSmall)
    }

    /// Whether this is the dual PD0 level (16-byte entries).
    #[must_use]
    pub const fn is_dual(self) -> bool {
        matches!(self, Level::Pd0)
    }

    /// The level whose entries map pages of `size`: 4 KiB → small PT, 64 KiB → big PT,
    /// 2 MiB → PD0, 512 MiB → PD1, 256 GiB → PD2 (same in both versions). Whether the chip
    /// allows it there is [`LevelInfo::allows_pte`].
    #[must_use]
    pub const fn for_page_size(size: PageSize) -> Level {
        match size {
            PageSize::Size4K => Level::PtSmall,
            PageSize::Size64K => Level::PtBig,
            PageSize::Size2M => Level::Pd0,
            PageSize::Size512M => Level::Pd1,
            PageSize::Size256G => Level::Pd2,
        }
    }

    /// The directory level below this one: `None` for PD0 (its children are the two leaf
    /// tables) and for the leaves.
    #[must_use]
    pub const fn next_directory(self) -> Option<Level> {
        match self {
            Level::Pd4 => Some(Level::Pd3),
            Level::Pd3 => Some(Level::Pd2),
            Level::Pd2 => Some(Level::Pd1),
            Level::Pd1 => Some(Level::Pd0),
            Level::Pd0 | Level::PtBig | Level::PtSmall => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The geometry of one level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LevelInfo {
    /// Which level.
    pub level: Level,
    /// The lowest VA bit indexed by this level (log2 of what one entry covers).
    pub va_shift: u32,
    /// How many VA bits index this level.
    pub index_bits: u32,
    /// Size of one entry in bytes (8, or 16 for the dual PD0).
    pub entry_bytes: u64,
    /// For a leaf: its page size. For a directory: the size of the large-page PTE it may
    /// hold, if the chip allows it ([`LevelInfo::allows_pte`]); `None` if it never holds one.
    pub pte_size: Option<PageSize>,
}

impl LevelInfo {
    /// Number of entries in a table of this level.
    #[must_use]
    pub const fn entries(&self) -> u64 {
        match 1u64.checked_shl(self.index_bits) {
            Some(n) => n,
            None => 0,
        }
    }

    /// Size of a table of this level in bytes (32 B for the v2 root, 16 B for the v3 root,
    /// 256 B for a big page table, 4 KiB otherwise).
    #[must_use]
    pub const fn table_bytes(&self) -> u64 {
        match self.entries().checked_mul(self.entry_bytes) {
            Some(n) => n,
            None => 0,
        }
    }

    /// The alignment a table of this level needs in memory: 256 B for a big page table
    /// (`ADDRESS_BIG` holds PA >> 8), 4 KiB for every other table, including the 32 B (v2) and
    /// 16 B (v3) roots, whose instance-block pointer `PAGE_DIR_BASE` holds PA >> 12. RM and UVM
    /// allocate a whole 4 KiB page for the root and initialise at least 32 B of it, because
    /// the walk cache fetches 32 B at a time (`mmu-formats.md` §1.1).
    #[must_use]
    pub const fn table_align(&self) -> u64 {
        match self.level {
            Level::PtBig => 256,
            _ => 4096,
        }
    }

    /// The bytes of VA one entry covers (`1 << va_shift`).
    #[must_use]
    pub const fn entry_coverage(&self) -> u64 {
        match 1u64.checked_shl(self.va_shift) {
            Some(n) => n,
            None => 0,
        }
    }

    /// The bytes of VA a whole table covers.
    #[must_use]
    pub const fn table_coverage(&self) -> u64 {
        match 1u64.checked_shl(self.va_shift.saturating_add(self.index_bits)) {
            Some(n) => n,
            None => 0,
        }
    }

    /// The index of `va` in a table of this level: VA bits
    /// `va_shift + index_bits - 1 : va_shift`. Higher bits are ignored; use
    /// [`MmuFormat::level_index`](super::MmuFormat::level_index) for a range-checked index.
    #[must_use]
    pub const fn index_of(&self, va: u64) -> u64 {
        let shifted = match va.checked_shr(self.va_shift) {
            Some(v) => v,
            None => 0,
        };
        shifted & self.entries().wrapping_sub(1)
    }

    /// Whether an entry of this level may be a PTE on `chip`: always for the leaves; for a
    /// directory, if it has a large-page size and the chip supports it.
    #[must_use]
    pub const fn allows_pte(&self, chip: Chip) -> bool {
        match self.pte_size {
            Some(size) => chip.supports_page_size(size),
            None => false,
        }
    }
}

const fn level(
    level: Level,
    va_shift: u32,
    index_bits: u32,
    entry_bytes: u64,
    pte_size: Option<PageSize>,
) -> LevelInfo {
    LevelInfo {
        level,
        va_shift,
        index_bits,
        entry_bytes,
        pte_size,
    }
}

/// MMU v2 levels, root first, then the big and the small page table (`mmu-formats.md` §1.1).
pub const V2_LEVELS: [LevelInfo; 6] = [
    level(Level::Pd3, 47, 2, 8, None),
    level(Level::Pd2, 38, 9, 8, None),
    level(Level::Pd1, 29, 9, 8, Some(PageSize::Size512M)),
    level(Level::Pd0, 21, 8, 16, Some(PageSize::Size2M)),
    level(Level::PtBig, 16, 5, 8, Some(PageSize::Size64K)),
    level(Level::PtSmall, 12, 9, 8, Some(PageSize::Size4K)),
];

/// MMU v3 levels, root first, then the big and the small page table (`mmu-formats.md` §2.1).
pub const V3_LEVELS: [LevelInfo; 7] = [
    level(Level::Pd4, 56, 1, 8, None),
    level(Level::Pd3, 47, 9, 8, None),
    level(Level::Pd2, 38, 9, 8, Some(PageSize::Size256G)),
    level(Level::Pd1, 29, 9, 8, Some(PageSize::Size512M)),
    level(Level::Pd0, 21, 8, 16, Some(PageSize::Size2M)),
    level(Level::PtBig, 16, 5, 8, Some(PageSize::Size64K)),
    level(Level::PtSmall, 12, 9, 8, Some(PageSize::Size4K)),
];

/// The level table of an MMU version, root first, ending with the big and small page table.
#[must_use]
pub const fn levels(version: MmuVersion) -> &'static [LevelInfo] {
    match version {
        MmuVersion::V2 => &V2_LEVELS,
        MmuVersion::V3 => &V3_LEVELS,
    }
}

/// The geometry of `level` in `version`.
///
/// # Errors
///
/// [`FormatError::NoSuchLevel`] for PD4 on v2.
pub fn level_info(version: MmuVersion, level: Level) -> Result<&'static LevelInfo, FormatError> {
    levels(version)
        .iter()
        .find(|l| l.level == level)
        .ok_or(FormatError::NoSuchLevel { level, version })
}

/// The geometry of an upper directory level of `version` (one 8-byte PDE per entry), for the
/// v2 and v3 `encode_pde`/`decode_pde`, which take no PD0 and no leaf.
pub(super) fn upper_pd_level(
    version: MmuVersion,
    level: Level,
) -> Result<&'static LevelInfo, FormatError> {
    let info = level_info(version, level)?;
    if level.is_leaf() || level.is_dual() {
        return Err(FormatError::WrongLevel { level });
    }
    Ok(info)
}

/// The page size of a leaf level (64 KiB pages in the big page table, 4 KiB in the small),
/// the same in v2 and v3.
pub(super) fn leaf_page(level: Level) -> Result<PageSize, FormatError> {
    match level {
        Level::PtBig => Ok(PageSize::Size64K),
        Level::PtSmall => Ok(PageSize::Size4K),
        _ => Err(FormatError::WrongLevel { level }),
    }
}

/// The index of `va` in the table of `level`, after checking that `va` is inside the
/// version's VA space.
///
/// # Errors
///
/// [`FormatError::VaOutOfRange`] if `va >= 1 << version.va_bits()`,
/// [`FormatError::NoSuchLevel`] for PD4 on v2.
pub fn level_index(version: MmuVersion, va: VirtAddr, level: Level) -> Result<usize, FormatError> {
    let bits = version.va_bits();
    if va.raw().checked_shr(bits).unwrap_or(0) != 0 {
        return Err(FormatError::VaOutOfRange { va: va.raw(), bits });
    }
    let info = level_info(version, level)?;
    // At most 511: always fits a usize.
    usize::try_from(info.index_of(va.raw()))
        .map_err(|_| FormatError::VaOutOfRange { va: va.raw(), bits })
}

/// The size in bytes of a table of `level` in `version`.
///
/// # Errors
///
/// [`FormatError::NoSuchLevel`] for PD4 on v2.
pub fn table_bytes(version: MmuVersion, level: Level) -> Result<u64, FormatError> {
    Ok(level_info(version, level)?.table_bytes())
}

// Only evaluated at compile time, where an overflow or a bad index fails the build.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn check_levels(levels: &[LevelInfo], va_bits: u32) -> bool {
    // Directory levels tile the VA from va_bits down to bit 21 without gaps; both leaves
    // end at bit 21 (PD0's shift).
    let mut i = 0;
    let mut top = va_bits;
    while i < levels.len() {
        let l = &levels[i];
        match l.level {
            Level::PtBig | Level::PtSmall => {
                if l.va_shift + l.index_bits != 21 {
                    return false;
                }
            }
            _ => {
                if l.va_shift + l.index_bits != top {
                    return false;
                }
                top = l.va_shift;
            }
        }
        i += 1;
    }
    top == 21
}

#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const _: () = {
    assert!(check_levels(&V2_LEVELS, 49));
    assert!(check_levels(&V3_LEVELS, 57));
    assert!(V2_LEVELS[0].table_bytes() == 32);
    assert!(V3_LEVELS[0].table_bytes() == 16);
    assert!(V2_LEVELS[3].table_bytes() == 4096 && V2_LEVELS[3].entry_bytes == 16);
    assert!(V2_LEVELS[4].table_bytes() == 256 && V2_LEVELS[4].entries() == 32);
    assert!(V2_LEVELS[5].table_bytes() == 4096 && V2_LEVELS[5].entries() == 512);
    assert!(V3_LEVELS[5].table_bytes() == 256);
    assert!(V3_LEVELS[6].table_bytes() == 4096);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_geometry() {
        let v = MmuVersion::V2;
        assert!(level_info(v, Level::Pd4).is_err());
        // VA 0x1_8000_0000_0000 = bit 48 and bit 47 set → PD3 index 3.
        let va = VirtAddr::new(0x1_8000_0000_0000);
        assert_eq!(level_index(v, va, Level::Pd3), Ok(3));
        // VA 0x1234_5678_9000: PD2 = bits 46:38 = 0x1234_5678_9000 >> 38 = 0x48 (& 0x1ff)
        let va = VirtAddr::new(0x1234_5678_9000);
        assert_eq!(level_index(v, va, Level::Pd2), Ok(0x48));
        // PD1 = >>29 = 0x91a2 & 0x1ff = 0x1a2
        assert_eq!(level_index(v, va, Level::Pd1), Ok(0x1a2));
        // PD0 = >>21 = 0x91a2b3 & 0xff = 0xb3
        assert_eq!(level_index(v, va, Level::Pd0), Ok(0xb3));
        // big PT = >>16 = 0x1234_5678 & 0x1f = 0x18
        assert_eq!(level_index(v, va, Level::PtBig), Ok(0x18));
        // small PT = >>12 = 0x1_2345_6789 & 0x1ff = 0x189
        assert_eq!(level_index(v, va, Level::PtSmall), Ok(0x189));
        assert_eq!(
            level_index(v, VirtAddr::new(1 << 49), Level::Pd3),
            Err(FormatError::VaOutOfRange {
                va: 1 << 49,
                bits: 49
            })
        );
        assert_eq!(table_bytes(v, Level::Pd3), Ok(32));
        assert_eq!(table_bytes(v, Level::PtBig), Ok(256));
        assert_eq!(level_info(v, Level::PtBig).unwrap().table_align(), 256);
        assert_eq!(level_info(v, Level::Pd3).unwrap().table_align(), 4096);
    }

    #[test]
    fn v3_geometry() {
        let v = MmuVersion::V3;
        assert_eq!(level_index(v, VirtAddr::new(1 << 56), Level::Pd4), Ok(1));
        assert_eq!(
            level_index(v, VirtAddr::new((1 << 56) - 1), Level::Pd4),
            Ok(0)
        );
        // VA bit 55..47 all ones → PD3 index 511.
        assert_eq!(
            level_index(v, VirtAddr::new(0x00ff_8000_0000_0000), Level::Pd3),
            Ok(511)
        );
        assert!(level_index(v, VirtAddr::new(1 << 57), Level::Pd4).is_err());
        assert_eq!(table_bytes(v, Level::Pd4), Ok(16));
        let pd2 = level_info(v, Level::Pd2).unwrap();
        assert!(pd2.allows_pte(Chip::BlackwellGb20x));
        assert!(!pd2.allows_pte(Chip::Hopper));
        assert_eq!(pd2.entry_coverage(), 256 << 30);
    }

    #[test]
    fn v3_indices_every_level() {
        let v = MmuVersion::V3;
        // VA 0x1AB_CDEF_1234_5678 (57 bits):
        // PD4 = bit 56 = 1
        // PD3 = bits 55:47 = (0x1AB_CDEF_1234_5678 >> 47) & 0x1ff = 0x357 & 0x1ff = 0x157
        // PD2 = >> 38 = 0x6AF37 & 0x1ff = 0x137
        // PD1 = >> 29 = 0xD5E6F78 & 0x1ff = 0x178
        // PD0 = >> 21 = 0xD_5E6F_7891 & 0xff = 0x91
        // big = >> 16 = 0x1AB_CDEF_1234 & 0x1f = 0x14
        // small = >> 12 = 0x1A_BCDE_F123_45 & 0x1ff = 0x145
        let va = VirtAddr::new(0x1AB_CDEF_1234_5678);
        let expect = [
            (Level::Pd4, 1),
            (Level::Pd3, 0x157),
            (Level::Pd2, 0x137),
            (Level::Pd1, 0x178),
            (Level::Pd0, 0x91),
            (Level::PtBig, 0x14),
            (Level::PtSmall, 0x145),
        ];
        for (level, index) in expect {
            assert_eq!(level_index(v, va, level), Ok(index), "{level}");
        }
        let bytes: [(Level, u64); 7] = [
            (Level::Pd4, 16),
            (Level::Pd3, 4096),
            (Level::Pd2, 4096),
            (Level::Pd1, 4096),
            (Level::Pd0, 4096),
            (Level::PtBig, 256),
            (Level::PtSmall, 4096),
        ];
        for (level, b) in bytes {
            assert_eq!(table_bytes(v, level), Ok(b), "{level}");
        }
    }

    #[test]
    fn page_sizes_map_to_levels() {
        for v in [MmuVersion::V2, MmuVersion::V3] {
            for l in levels(v) {
                if let Some(ps) = l.pte_size {
                    assert_eq!(Level::for_page_size(ps), l.level);
                    assert_eq!(l.entry_coverage(), ps.bytes());
                }
            }
        }
    }

    #[test]
    fn v2_large_pages_gated_by_chip() {
        let pd1 = level_info(MmuVersion::V2, Level::Pd1).unwrap();
        assert!(!pd1.allows_pte(Chip::Turing));
        assert!(pd1.allows_pte(Chip::Ampere));
        assert!(pd1.allows_pte(Chip::Ada));
        let pd2 = level_info(MmuVersion::V2, Level::Pd2).unwrap();
        assert!(!pd2.allows_pte(Chip::Ada));
        let pd0 = level_info(MmuVersion::V2, Level::Pd0).unwrap();
        assert!(pd0.allows_pte(Chip::Pascal));
    }
}
