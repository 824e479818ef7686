//! What the walker and the address-space manager need from a page-table format, on top of the
//! bit-exact codecs of [`crate::mmu`].
//!
//! [`PtFormat`] is an extension of [`MmuFormat`] implemented for every format (static dispatch
//! over [`crate::MmuV2`] / [`crate::MmuV3`], review point 14 of `nova-series.md` §5). It numbers
//! the directory levels from the root (`0`) down to PD0 (`DIR_LEVELS - 1`, the dual level) and
//! wraps the codecs in the few shapes the walker uses. It writes no bit itself.

use crate::addr::{PageSize, PhysAddr, VramAddress};
use crate::chip::Chip;
use crate::mmu::{
    DualHalf, DualPdeState, FormatError, Level, LevelInfo, MmuFormat, PdeAttrs, PdeState, PdeTable,
    PteAttrs, PteMapping, PteState, TableAperture,
};

/// Number of 4 KiB slots in a small page table.
pub const SMALL_PT_ENTRIES: u64 = 512;
/// Number of 64 KiB slots in a big page table.
pub const BIG_PT_ENTRIES: u64 = 32;
/// Bytes of a small page table.
pub const SMALL_PT_BYTES: u64 = 4096;
/// Bytes of a big page table.
pub const BIG_PT_BYTES: u64 = 256;

/// A vidmem table pointer with default attributes (cached, ATS allowed).
fn vid_table(addr: VramAddress) -> PdeTable {
    PdeTable {
        aperture: TableAperture::Vidmem,
        address: PhysAddr::new(addr.raw()),
        attrs: PdeAttrs::default(),
    }
}

/// Level geometry and codec shapes for the walker; implemented for every [`MmuFormat`].
pub trait PtFormat: MmuFormat {
    /// Number of directory levels including the root and PD0 (v2: 4, v3: 5).
    const DIR_LEVELS: usize = Self::LEVELS.len().saturating_sub(2);

    /// The level description of directory level `l` (root = 0).
    fn dir_info(l: usize) -> Option<&'static LevelInfo> {
        Self::LEVELS.get(l)
    }
    /// The hardware name of directory level `l`.
    fn dir_level(l: usize) -> Level {
        Self::dir_info(l).map_or(Level::Pd0, |i| i.level)
    }
    /// log2 of the VA span of one entry at directory level `l`.
    fn dir_shift(l: usize) -> u32 {
        Self::dir_info(l).map_or(63, |i| i.va_shift)
    }
    /// Number of entries of a table at directory level `l`.
    fn dir_entries(l: usize) -> u64 {
        Self::dir_info(l).map_or(0, LevelInfo::entries)
    }
    /// Page size of a PTE stored at directory level `l`, if the format has one there.
    fn dir_leaf_size(l: usize) -> Option<PageSize> {
        Self::dir_info(l).and_then(|i| i.pte_size)
    }

    /// Decodes an upper PDE at directory level `l`.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn decode_upper(chip: Chip, l: usize, raw: u64) -> Result<PdeState, FormatError> {
        Self::decode_pde(chip, Self::dir_level(l), raw)
    }
    /// Encodes an upper PDE at directory level `l`.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn encode_upper(chip: Chip, l: usize, st: &PdeState) -> Result<u64, FormatError> {
        Self::encode_pde(chip, Self::dir_level(l), st)
    }
    /// An upper PDE at level `l` pointing at a vidmem table.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn upper_table(chip: Chip, l: usize, table: VramAddress) -> Result<u64, FormatError> {
        Self::encode_upper(chip, l, &PdeState::Table(vid_table(table)))
    }
    /// A dual PD0 entry with the given vidmem big and small tables.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn dual_tables(
        chip: Chip,
        big: Option<VramAddress>,
        small: Option<VramAddress>,
    ) -> Result<[u64; 2], FormatError> {
        let half =
            |a: Option<VramAddress>| a.map_or(DualHalf::Invalid, |a| DualHalf::Table(vid_table(a)));
        Self::encode_dual_pde(
            chip,
            &DualPdeState::Tables {
                big: half(big),
                small: half(small),
            },
        )
    }
    /// Decodes a small (`big == false`) or big PTE.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn decode_leaf(chip: Chip, raw: u64, big: bool) -> Result<PteState, FormatError> {
        Self::decode_pte(chip, pt_level(big), raw)
    }
    /// Encodes a small or big PTE.
    ///
    /// # Errors
    ///
    /// The codec's [`FormatError`].
    fn encode_leaf(chip: Chip, st: &PteState, big: bool) -> Result<u64, FormatError> {
        Self::encode_pte(chip, pt_level(big), st)
    }

    /// Changes the access attributes (read-only, privileged, volatile, atomic-disable) of a
    /// valid leaf stored at `slot` without touching anything else.
    ///
    /// # Errors
    ///
    /// [`FormatError`] if the word is not a valid PTE there or the result cannot be encoded.
    fn reprotect(
        chip: Chip,
        slot: LeafSlot,
        raw: u64,
        prot: &PteAttrs,
    ) -> Result<u64, FormatError> {
        let apply = |mut m: PteMapping| {
            m.attrs.read_only = prot.read_only;
            m.attrs.privileged = prot.privileged;
            m.attrs.volatile = prot.volatile;
            m.attrs.atomic_disable = prot.atomic_disable;
            m
        };
        let not_valid = FormatError::WrongLevel {
            level: Self::dir_level(0),
        };
        match slot {
            LeafSlot::Pt { big } => match Self::decode_leaf(chip, raw, big)? {
                PteState::Valid(m) => Self::encode_leaf(chip, &PteState::Valid(apply(m)), big),
                _ => Err(not_valid),
            },
            LeafSlot::Dual => match Self::decode_dual_pde(chip, [raw, 0])? {
                DualPdeState::Pte(m) => {
                    Ok(Self::encode_dual_pde(chip, &DualPdeState::Pte(apply(m)))?[0])
                }
                _ => Err(not_valid),
            },
            LeafSlot::Upper(l) => match Self::decode_upper(chip, l, raw)? {
                PdeState::Pte(m) => Self::encode_upper(chip, l, &PdeState::Pte(apply(m))),
                _ => Err(not_valid),
            },
        }
    }
}

impl<T: MmuFormat> PtFormat for T {}

/// Where a leaf entry lives, for [`PtFormat::reprotect`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LeafSlot {
    /// A big (`true`) or small page table.
    Pt {
        /// Big page table.
        big: bool,
    },
    /// The low qword of a dual PD0 entry (2 MiB PTE).
    Dual,
    /// An upper directory at this level (512 MiB or 256 GiB PTE).
    Upper(usize),
}

/// The hardware level of the big or small page table.
#[must_use]
pub const fn pt_level(big: bool) -> Level {
    if big {
        Level::PtBig
    } else {
        Level::PtSmall
    }
}

/// Bytes of a table at directory level `level`.
#[must_use]
pub fn dir_table_bytes<M: PtFormat>(level: usize) -> u64 {
    M::dir_info(level).map_or(0, LevelInfo::table_bytes)
}

/// Whether `level` is the dual PD0 level.
#[must_use]
pub fn is_dual<M: PtFormat>(level: usize) -> bool {
    level.checked_add(1) == Some(M::DIR_LEVELS)
}

/// Number of 64-bit words per entry at directory level `level`.
#[must_use]
pub fn dir_entry_words<M: PtFormat>(level: usize) -> u64 {
    if is_dual::<M>(level) {
        2
    } else {
        1
    }
}
